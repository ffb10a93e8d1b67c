"""The soak's memory figures: each service process's resident set, sampled on a thread, and how
it settles."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import psutil


class RssSampler:
    """The resident set of each service process (the runners of `pids` and their workers), every
    `interval` seconds, on a thread."""

    def __init__(self, pids: list[int], interval: float = 30.0) -> None:
        self.pids, self.interval, self.samples = pids, interval, []
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def by_process(self) -> dict[str, float]:
        """MiB per process, named `instance N runner`, `instance N worker PID` (a process of the
        runner's, serving) or `instance N training PID` (a worker's child: a training)."""
        sizes = {}
        for instance, pid in enumerate(self.pids, 1):
            try:
                root = psutil.Process(pid)
                processes = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for process in processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    mb = round(process.memory_info().rss / 2**20, 1)
                    sizes[f"instance {instance} {role(root, process)}"] = mb
        return sizes

    def _run(self) -> None:
        while True:
            sizes = self.by_process()
            at = round(time.perf_counter() - self.started)
            serving = round(sum(mb for name, mb in sizes.items() if not is_training(name)), 1)
            self.samples.append({"at_s": at, "mb": serving, "processes": sizes})
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def role(runner: psutil.Process, process: psutil.Process) -> str:
    if process.pid == runner.pid:
        return "runner"
    return f"{'worker' if process.ppid() == runner.pid else 'training'} {process.pid}"


def is_training(name: str) -> bool:
    return " training " in name


def settling(samples: list[dict[str, Any]], from_s: float) -> dict[str, dict[str, float]]:
    """From `from_s` on, the RSS of all serving processes together (`serving`), of each, and of the
    largest training (`training`, sampled while one ran): its least, its most, their spread (most
    over least, in %) and the last sample."""
    late = [s for s in samples if s["at_s"] >= from_s] or samples[-1:]
    series: dict[str, list[float]] = {"serving": [s["mb"] for s in late], "training": []}
    for sample in late:
        trainings = [mb for name, mb in sample["processes"].items() if is_training(name)]
        series["training"] += [max(trainings)] if trainings else []
        for name, mb in sample["processes"].items():
            if not is_training(name):
                series.setdefault(name, []).append(mb)
    return {
        name: {
            "min": min(mb),
            "max": max(mb),
            "spread_pct": round(100 * (max(mb) / min(mb) - 1), 1) if min(mb) else 0.0,
            "end": mb[-1],
        }
        for name, mb in series.items()
        if mb
    }

"""What every benchmark report shares: `bench/results.json` (each script replaces its own keys
and keeps the others), the machine and code a figure was measured on, and one markdown table."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from bench.db import scalar

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCH_DIR / "results.json"

# A column: its header and the row's key, or a function of the row.
Column = tuple[str, "str | Callable[[dict[str, Any]], Any]"]


def log(message: str) -> None:
    print(time.strftime("%H:%M:%S"), message, flush=True)


def code_version() -> str:
    """The app's commit, with `-dirty` when tracked files differ from it (the app may change
    between runs, so every row says which code it measured)."""
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def stamp() -> dict[str, str]:
    """When and on which code a row was measured."""
    return {"measured": time.strftime("%Y-%m-%d %H:%M"), "code": code_version()}


def machine(server: Any) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        models = [
            line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        ]
        cpu = models[0].split(":", 1)[1].strip() if models else cpu
    except OSError:
        pass
    uri = server.get_uri()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgres": scalar(uri, "SHOW server_version"),
        "pgvector": scalar(uri, "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'"),
        "shared_buffers": scalar(uri, "SHOW shared_buffers"),
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_gib')} GiB RAM, {m.get('os')};"
        f" Python {m.get('python')}; embedded PostgreSQL {m.get('postgres')}"
        f" (shared_buffers {m.get('shared_buffers')}) with pgvector {m.get('pgvector')}."
    )


def update_results(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read results.json, let `change` edit it in place, write it back; returns it."""
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    change(results)
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    return results


def merge(old: list[dict], new: list[dict], key: Callable[[dict], tuple]) -> list[dict]:
    """New rows replace the old ones with the same key; the others stay."""
    fresh = {key(r) for r in new}
    return [r for r in old if key(r) not in fresh] + new


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(columns: list[Column], rows: list[dict[str, Any]]) -> str:
    """A markdown table; a column's value is `row.get(key)`, or `key(row)` when it is a function."""
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        values = (get(row) if callable(get) else row.get(get) for _, get in columns)
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"

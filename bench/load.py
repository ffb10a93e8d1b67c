"""A small closed-loop load generator: N asyncio workers over one httpx client.

Each worker sends its next request as soon as the previous one answered, until the requests
run out or the time limit passes. Latency is what the client observes over loopback
(`time.perf_counter` around each request, connection set-up included once per connection).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    json: Any = None


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, after the warm-up
    errors: dict[str, int] = field(default_factory=dict)  # status or exception name → count
    seconds: float = 0.0  # wall time of the measured part
    completed: int = 0  # answered with an expected status, warm-up included
    flagged: int = 0  # measured answers whose JSON body has `flag` true

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def summary(self) -> dict[str, float]:
        if not self.latencies:
            return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "rps": 0.0, "requests": 0}
        p50, p95, p99 = np.percentile(np.array(self.latencies) * 1000, [50, 95, 99])
        return {
            "p50_ms": round(float(p50), 1),
            "p95_ms": round(float(p95), 1),
            "p99_ms": round(float(p99), 1),
            "rps": round(self.requests / self.seconds, 2) if self.seconds else 0.0,
            "requests": self.requests,
        }


async def _run(
    base_url: str,
    requests: Iterator[Request],
    concurrency: int,
    time_limit: float,
    warmup: int,
    expect: frozenset[int],
    flag: str | None,
) -> Result:
    result = Result()
    sent = 0
    measured_from: float | None = None
    deadline = time.perf_counter() + time_limit
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal sent, measured_from
            while time.perf_counter() < deadline:
                request = next(requests, None)
                if request is None:
                    return
                sent += 1
                counted = sent > warmup
                if counted and measured_from is None:
                    measured_from = time.perf_counter()
                started = time.perf_counter()
                try:
                    response = await client.request(request.method, request.path, json=request.json)
                    outcome = None if response.status_code in expect else str(response.status_code)
                except httpx.HTTPError as exc:
                    outcome = type(exc).__name__
                elapsed = time.perf_counter() - started
                if outcome is not None:
                    result.errors[outcome] = result.errors.get(outcome, 0) + 1
                    continue
                result.completed += 1
                if counted:
                    result.latencies.append(elapsed)
                    result.flagged += bool(flag and response.json().get(flag))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if measured_from is not None:
        result.seconds = time.perf_counter() - measured_from
    return result


def run(
    base_url: str,
    requests: Iterator[Request],
    concurrency: int,
    time_limit: float,
    warmup: int = 0,
    expect: frozenset[int] = frozenset({200}),
    flag: str | None = None,
) -> Result:
    """Send `requests` with `concurrency` workers for at most `time_limit` seconds.

    The first `warmup` requests are sent but not measured; requests answered with a status not
    in `expect` are counted in `errors`, not in the latencies; with `flag`, measured answers
    whose body has that field true are counted in `flagged`.
    """
    return asyncio.run(_run(base_url, iter(requests), concurrency, time_limit, warmup, expect, flag))

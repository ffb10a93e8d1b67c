"""PNG charts of the benchmark results, shown next to their tables: precision@5 per page for each
method of the real-data replay (bench/REAL_RESULTS.md) and recommend latency per catalogue size
against the naive baseline (bench/RESULTS.md).

`python -m bench.charts` redraws both from bench/results.json into bench/charts/. Drawn with
matplotlib's Agg canvas: no display, nothing fetched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCH_DIR / "results.json"
CHARTS_DIR = BENCH_DIR / "charts"
PRECISION_PNG = CHARTS_DIR / "precision_at_5.png"
LATENCY_PNG = CHARTS_DIR / "recommend_latency.png"

LATENCY_DIMS = 384  # the dimension measured at every catalogue size
LATENCY_CLIENTS = 4  # the concurrency measured for ours and the baseline alike
LATENCY_LINES = (  # (label, system, cache, A/B split) of each line
    ("ours, new listeners (cold)", "ours", "cold", "default"),
    ("ours, returning listeners (warm)", "ours", "warm", "default"),
    ("naive baseline", "baseline", "cold", None),
)


def new_figure() -> Figure:
    figure = Figure(figsize=(8, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def precision_chart(results: dict[str, Any], path: Path) -> Path:
    """Precision@5 of each page of the replay (results["real"]), one line per method; the
    service's two arms solid, the offline baselines dashed."""
    real = results["real"]
    axes = new_figure().add_subplot()
    for name, figures in real["systems"].items():
        values = figures["precision_at_5"]
        service = name.startswith("service")
        axes.plot(
            range(1, len(values) + 1),
            values,
            marker="o",
            linestyle="-" if service else "--",
            linewidth=2.5 if service else 1.5,
            label=name,
        )
    axes.set(
        title=f"Precision@{real['page_size']} per page of the real-data replay",
        xlabel="page (feedback on each page before the next)",
        ylabel=f"precision@{real['page_size']}",
        ylim=(0, None),
        xticks=range(1, real["pages"] + 1),
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return save(axes.figure, path)


def latency_chart(results: dict[str, Any], path: Path) -> Path:
    """Recommend p50 latency per catalogue size (results["recommend"]) for ours, cold and warm,
    against the naive baseline; the bar of each point reaches its p95. Both axes logarithmic."""
    axes = new_figure().add_subplot()
    for label, system, cache, split in LATENCY_LINES:
        rows = sorted(
            (
                row
                for row in results.get("recommend", [])
                if (row["system"], row["cache"], row.get("ab_split"), row["dims"], row["concurrency"])
                == (system, cache, split, LATENCY_DIMS, LATENCY_CLIENTS)
            ),
            key=lambda row: row["catalog_size"],
        )
        sizes = [row["catalog_size"] for row in rows]
        p50 = [row["p50_ms"] for row in rows]
        above = [row["p95_ms"] - row["p50_ms"] for row in rows]
        axes.errorbar(sizes, p50, yerr=[[0] * len(rows), above], marker="o", capsize=4, label=label)
        for size, value in zip(sizes, p50, strict=True):
            axes.annotate(f"{value:.0f} ms", (size, value), textcoords="offset points", xytext=(6, 4))
    axes.set(
        title=f"Recommend latency, p50 with p95 bars ({LATENCY_CLIENTS} clients, {LATENCY_DIMS}-d vectors)",
        xlabel="episodes in the catalogue",
        ylabel="milliseconds",
        xscale="log",
        yscale="log",
    )
    axes.grid(alpha=0.3, which="both")
    axes.legend(fontsize="small")
    return save(axes.figure, path)


def main() -> int:
    results = json.loads(RESULTS_JSON.read_text())
    written = []
    if results.get("real"):
        written.append(precision_chart(results, PRECISION_PNG))
    if results.get("recommend"):
        written.append(latency_chart(results, LATENCY_PNG))
    for path in written:
        print(f"wrote {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

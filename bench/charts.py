"""PNG charts of the benchmark results, shown next to their tables: precision@5 per page for each
method of each real-data replay (bench/REAL_RESULTS.md) and recommend latency per catalogue size
against the naive baseline (bench/RESULTS.md). Drawn with matplotlib's Agg canvas: no display,
nothing fetched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

CHARTS_DIR = Path(__file__).resolve().parent / "charts"
LATENCY_PNG = CHARTS_DIR / "recommend_latency.png"

LATENCY_DIMS = 384  # the dimension measured at every catalogue size
LATENCY_CLIENTS = 4  # the concurrency measured for ours and the baseline alike
LATENCY_LINES = (  # (label, system, cache, A/B split) of each line
    ("ours, new listeners (cold)", "ours", "cold", "default"),
    ("ours, returning listeners (warm)", "ours", "warm", "default"),
    ("naive baseline", "baseline", "cold", None),
)


def axes() -> Axes:
    figure = Figure(figsize=(8, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure.add_subplot()


def save(chart: Axes, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    chart.figure.savefig(path)
    return path


def precision_png(data_set: str) -> Path:
    """Where a data set's precision chart goes (Last.fm's keeps the name it had alone)."""
    return CHARTS_DIR / ("precision_at_5.png" if data_set == "lastfm" else f"precision_at_5_{data_set}.png")


def precision_chart(real: dict[str, Any]) -> Path:
    """Precision@5 of each page of one data set's replay (an entry of results["real"]), first split
    seed, one line per method; the service's arms solid, the offline baselines dashed."""
    chart = axes()
    for name, figures in real["systems"].items():
        values, service = figures["precision_at_5"], name.startswith("service")
        style = {"linestyle": "-" if service else "--", "linewidth": 2.5 if service else 1.5}
        chart.plot(range(1, len(values) + 1), values, marker="o", label=name, **style)
    chart.set(
        title=f"Precision@{real['page_size']} per page of the real-data replay ({real['data_set_name']})",
        xlabel="page (feedback on each page before the next)",
        ylabel=f"precision@{real['page_size']}",
        ylim=(0, None),
        xticks=range(1, real["pages"] + 1),
    )
    chart.grid(alpha=0.3)
    chart.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return save(chart, precision_png(real["data_set_name"]))


def latency_chart(results: dict[str, Any], path: Path) -> Path:
    """Recommend p50 latency per catalogue size (results["recommend"]) for ours, cold and warm,
    against the naive baseline; the bar of each point reaches its p95. Both axes logarithmic."""
    chart = axes()
    for label, system, cache, split in LATENCY_LINES:
        wanted = (system, cache, split, LATENCY_DIMS, LATENCY_CLIENTS)
        rows = sorted(
            (r for r in results.get("recommend", []) if
             (r["system"], r["cache"], r.get("ab_split"), r["dims"], r["concurrency"]) == wanted),
            key=lambda row: row["catalog_size"],
        )  # fmt: skip
        sizes, p50 = [r["catalog_size"] for r in rows], [r["p50_ms"] for r in rows]
        above = [r["p95_ms"] - r["p50_ms"] for r in rows]
        chart.errorbar(sizes, p50, yerr=[[0] * len(rows), above], marker="o", capsize=4, label=label)
        for size, value in zip(sizes, p50, strict=True):
            chart.annotate(f"{value:.0f} ms", (size, value), textcoords="offset points", xytext=(6, 4))
    chart.set(
        title=f"Recommend latency, p50 with p95 bars ({LATENCY_CLIENTS} clients, {LATENCY_DIMS}-d vectors)",
        xlabel="episodes in the catalogue",
        ylabel="milliseconds",
        xscale="log",
        yscale="log",
    )
    chart.grid(alpha=0.3, which="both")
    chart.legend(fontsize="small")
    return save(chart, path)

"""bench/results.json (merged with what earlier runs left) and its human form, bench/RESULTS.md."""

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

from bench import charts
from bench.db import scalar
from config import Settings

APP_EF_SEARCH = Settings.model_fields["hnsw_ef_search"].default

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCH_DIR / "results.json"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
FINDINGS_MD = BENCH_DIR / "findings.md"  # hand-written analysis, included in RESULTS.md
RECALL_TARGET = 0.95
WRITER_OFF = "ours, writer off"  # recommend rows measured with PREPARE_PAGES=false
SYSTEMS = ("ours", WRITER_OFF, "baseline")  # the order of the recommend rows


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


def machine(server: Any) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
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


def _key(row: dict[str, Any]) -> tuple:
    return (row.get("catalog_size"), row.get("dims"), row.get("storage", "vector"))


def _index_key(row: dict[str, Any]) -> tuple:
    return (*_key(row), row.get("m"), row.get("ef_construction"))


def _ingest_key(row: dict[str, Any]) -> tuple:
    return (row.get("path"),)


def _collab_key(row: dict[str, Any]) -> tuple:
    return (row.get("episodes"), row.get("events"))


def merge(old: list[dict], new: list[dict], key=_key) -> list[dict]:
    """New rows replace the old ones of the same catalogs (and index, for recall); others stay."""
    fresh = {key(r) for r in new}
    return [r for r in old if key(r) not in fresh] + new


def ratios(recommend: list[dict]) -> list[dict]:
    """Ours against the baseline, same catalog, concurrency and LLM delay (baseline has no cache)."""

    def same(r: dict[str, Any]) -> tuple:
        return (r["catalog_size"], r["dims"], r["concurrency"], r.get("llm_delay_ms"))

    naive = {same(r): r for r in recommend if r["system"] == "baseline"}
    out = []
    for r in recommend:
        b = naive.get(same(r))
        if r["system"] != "ours" or b is None or not r["p50_ms"] or not b["rps"]:
            continue
        out.append(
            {
                "catalog_size": r["catalog_size"],
                "dims": r["dims"],
                "concurrency": r["concurrency"],
                "cache": r["cache"],
                "ab_split": r.get("ab_split"),
                "p50_ratio": round(r["p50_ms"] / b["p50_ms"], 4),
                "throughput_ratio": round(r["rps"] / b["rps"], 1),
                "llm_calls_ratio": round(r["llm_calls_per_request"] / b["llm_calls_per_request"], 3)
                if b["llm_calls_per_request"]
                else None,
            }
        )
    return out


def save(sections: dict[str, list], *, quick: bool, server: Any) -> dict[str, Any]:
    """Merge `sections` into results.json (keeping "loop" and other catalogs), then render."""
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    now = time.strftime("%Y-%m-%d %H:%M %Z")
    if quick:
        results["quick"] = {**sections, "ratios": ratios(sections["recommend"]), "date": now}
    else:
        for key in ("recommend", "memory", "floor", "written_ahead"):
            results[key] = merge(results.get(key, []), sections[key])
        results["recall"] = merge(results.get("recall", []), sections["recall"], key=_index_key)
        results["ingest"] = merge(results.get("ingest", []), sections["ingest"], key=_ingest_key)
        results["collaborative"] = merge(
            results.get("collaborative", []), sections.get("collaborative", []), key=_collab_key
        )
        results["ratios"] = ratios(results["recommend"])
        results["date"] = now
    results["machine"] = machine(server)
    results.setdefault("date", now)
    results.setdefault("loop", None)
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    RESULTS_MD.write_text(render(results))
    charts.latency_chart(results, charts.LATENCY_PNG)
    return results


def save_collaborative(rows: list[dict], *, quick: bool) -> dict[str, Any]:
    """Merge rows of `bench.collab` into results.json (every other key kept), then render."""
    results = json.loads(RESULTS_JSON.read_text()) if RESULTS_JSON.exists() else {}
    if quick:
        results.setdefault("quick", {})["collaborative"] = rows
    else:
        results["collaborative"] = merge(results.get("collaborative", []), rows, key=_collab_key)
    results.setdefault("loop", None)
    RESULTS_JSON.write_text(json.dumps(results, indent=2) + "\n")
    RESULTS_MD.write_text(render(results))
    return results


# --- RESULTS.md ------------------------------------------------------------------------------

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.1f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def table(columns: list[Column], rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(h for h, _ in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(get(r)) for _, get in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def field(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get(name)


def size_label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def catalog(row: dict[str, Any]) -> str:
    return size_label(row["catalog_size"])


RECOMMEND_COLUMNS: list[Column] = [
    ("system", field("system")),
    ("catalog", catalog),
    ("dims", field("dims")),
    ("clients", field("concurrency")),
    ("listeners", field("cache")),
    ("LLM delay ms", field("llm_delay_ms")),
    ("p50 ms", field("p50_ms")),
    ("p95 ms", field("p95_ms")),
    ("p99 ms", field("p99_ms")),
    ("req/s", field("rps")),
    ("LLM calls/req", field("llm_calls_per_request")),
    ("served as prepared", field("prepared_share")),
    ("requests", field("requests")),
]
RATIO_COLUMNS: list[Column] = [
    ("catalog", catalog),
    ("dims", field("dims")),
    ("clients", field("concurrency")),
    ("ours, listeners", field("cache")),
    ("p50 ours/baseline", field("p50_ratio")),
    ("throughput ours/baseline", lambda r: f"{r['throughput_ratio']}×"),
    ("LLM calls ours/baseline", field("llm_calls_ratio")),
]
RECALL_COLUMNS: list[Column] = [
    ("catalog", catalog),
    ("dims", field("dims")),
    ("storage", lambda r: r.get("storage", "vector")),
    ("index", lambda r: "variant (bench.hnsw)" if r.get("variant") else "migrations'"),
    ("m", field("m")),
    ("ef_construction", field("ef_construction")),
    ("ef_search", field("ef_search")),
    ("recall@10", field("recall_at_10")),
    ("recall@40", field("recall_at_40")),
    ("query p50 ms", field("query_p50_ms")),
    ("exact query ms", field("exact_query_ms")),
    ("build s", field("build_seconds")),
    ("index MiB", field("index_mb")),
]
INGEST_COLUMNS: list[Column] = [
    ("path", field("path")),
    ("LLM delay ms", field("llm_delay_ms")),
    ("episodes/s", field("episodes_per_second")),
    ("embedding requests/episode", field("embedding_requests_per_episode")),
    ("embedded texts/episode", field("embedding_inputs_per_episode")),
    ("chat requests/episode", field("chat_requests_per_episode")),
    ("episodes", field("episodes")),
    ("clients", field("concurrency")),
    ("episodes/request", field("batch")),
    ("note", field("skipped")),
]


def recommend_table(rows: list[dict]) -> str:
    order = sorted(
        rows,
        key=lambda r: (
            r["dims"],
            r["catalog_size"],
            SYSTEMS.index(r["system"]),
            r["cache"],
            r["concurrency"],
        ),
    )
    return table(RECOMMEND_COLUMNS, order)


def ratio_table(rows: list[dict]) -> str:
    return table(
        RATIO_COLUMNS,
        sorted(rows, key=lambda r: (r["dims"], r["catalog_size"], r["cache"], r["concurrency"])),
    )


def recall_table(rows: list[dict]) -> str:
    order = sorted(
        rows,
        key=lambda r: (r["dims"], r["catalog_size"], r.get("storage", "vector"), r["m"], r["ef_construction"],
                       r["ef_search"]),
    )  # fmt: skip
    return table(RECALL_COLUMNS, order)


def _ours(
    recommend: list[dict], row: dict[str, Any], cache: str, clients: int, system: str = "ours"
) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in recommend
            if r["system"] == system
            and _key(r) == _key(row)
            and (r["cache"], r["concurrency"]) == (cache, clients)
        ),
        None,
    )


def floor_table(floor: list[dict], recommend: list[dict]) -> str:
    """The floor next to the service's warm requests at the same number of clients."""
    rows = []
    for f in sorted(floor, key=lambda r: (r["dims"], r["catalog_size"], r["clients"])):
        warm = _ours(recommend, f, "warm", f["clients"]) or {}
        alone = _ours(recommend, f, "warm", f["clients"], WRITER_OFF) or {}
        share = round(warm["rps"] / f["rps"], 3) if warm.get("rps") and f["rps"] else None
        alone_share = round(alone["rps"] / f["rps"], 3) if alone.get("rps") and f["rps"] else None
        rows.append(
            {**f, "warm_p50": warm.get("p50_ms"), "warm_rps": warm.get("rps"), "share": share}
            | {"alone_rps": alone.get("rps"), "alone_share": alone_share}
        )
    columns: list[Column] = [
        ("catalog", catalog),
        ("dims", field("dims")),
        ("clients", field("clients")),
        ("floor p50 ms", field("p50_ms")),
        ("floor req/s", field("rps")),
        ("ours warm p50 ms", field("warm_p50")),
        ("ours warm req/s", field("warm_rps")),
        ("ours / floor throughput", field("share")),
        ("writer off req/s", field("alone_rps")),
        ("writer off / floor", field("alone_share")),
    ]
    return table(columns, rows)


def _naive(recommend: list[dict], row: dict[str, Any]) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in recommend
            if r["system"] == "baseline"
            and _key(r) == _key(row)
            and r.get("llm_delay_ms") == row["llm_delay_ms"]
        ),
        None,
    )


def written_ahead_table(ahead: list[dict], recommend: list[dict]) -> str:
    rows = []
    for w in sorted(ahead, key=lambda r: (r["dims"], r["catalog_size"])):
        naive = _naive(recommend, w) or {}
        ratio = round(naive["p50_ms"] / w["p50_ms"]) if naive.get("p50_ms") and w["p50_ms"] else None
        rows.append({**w, "naive_p50": naive.get("p50_ms"), "ratio": ratio})
    columns: list[Column] = [
        ("catalog", catalog),
        ("dims", field("dims")),
        ("LLM delay ms", field("llm_delay_ms")),
        ("listeners", field("clients")),
        ("pages (returning)", lambda r: f"{r['pages']:,} ({r['returning_pages']:,})"),
        ("p50 ms", field("p50_ms")),
        ("p95 ms", field("p95_ms")),
        ("pages/s", field("rps")),
        ("LLM-written reasons", field("llm_reason_share")),
        ("LLM calls/page", field("llm_calls_per_page")),
        ("naive p50 ms (same LLM)", field("naive_p50")),
        ("naive p50 / ours", lambda r: None if r["ratio"] is None else f"{r['ratio']:,}×"),
    ]
    return table(columns, rows)


def storage_table(recall: list[dict], memory: list[dict]) -> str:
    """vector against halfvec on the same catalog: sizes and recall at the app's ef_search."""
    rows = []
    for m in sorted(
        (m for m in memory if m["dims"] > 384), key=lambda m: (m["catalog_size"], m.get("storage", "vector"))
    ):
        at = {
            r["ef_search"]: r["recall_at_10"] for r in recall if _key(r) == _key(m) and not r.get("variant")
        }
        rows.append({**m, "at_40": at.get(40), "at_100": at.get(100), "at_200": at.get(200)})
    columns: list[Column] = [
        ("catalog", catalog),
        ("dims", field("dims")),
        ("storage", lambda r: r.get("storage", "vector")),
        ("table MiB", field("table_mb")),
        ("HNSW index MiB", field("index_mb")),
        ("recall@10, ef_search 40", field("at_40")),
        *(
            (f"ef_search {ef}" + (" (app default)" if ef == APP_EF_SEARCH else ""), field(f"at_{ef}"))
            for ef in (100, 200)
        ),
    ]
    return table(columns, rows)


def ingest_table(rows: list[dict]) -> str:
    return table(INGEST_COLUMNS, sorted(rows, key=_ingest_key))


def _step(name: str, key: str) -> Callable[[dict[str, Any]], Any]:
    return lambda row: row.get("steps", {}).get(name, {}).get(key)


def _db_seconds(row: dict[str, Any]) -> float | None:
    save = row.get("steps", {}).get("save")
    return None if save is None else round(sum(v for k, v in save.items() if k.startswith("db_")), 2)


def _events(row: dict[str, Any]) -> str:
    return f"{row['events']:,} ({row['listens']:,} listens + {row['feedback_events']:,} events)"


COLLAB_COLUMNS: list[Column] = [
    ("episodes", field("episodes")),
    ("listeners", field("users")),
    ("events", _events),
    ("interactions read", field("interactions")),
    ("episodes with neighbours", field("episodes_with_neighbours")),
    ("refresh s", field("refresh_s")),
    ("peak RSS MiB (over imports)", field("peak_rss_mb")),
    ("read: COPY query s", _step("read", "sql_s")),
    ("read: parse s", _step("read", "parse_s")),
    ("build s", _step("build", "seconds")),
    ("of which X'X blocks s", _step("build", "products_s")),
    ("of which per-row top-K s", _step("build", "per_row_loop_s")),
    ("save: format s", _step("save", "format_s")),
    ("save: SQL s", _db_seconds),
    ("podcast_engagement rows", field("engagement_rows")),
    ("its MiB (with dead rows)", field("engagement_mb")),
    ("Postgres temp MiB", field("postgres_temp_mb")),
    ("WAL MiB", field("wal_mb")),
]


def _spread(get: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[[dict[str, Any]], str]:
    def show(row: dict[str, Any]) -> str:
        probes = get(row) or {}
        return "{} / {} / {}".format(*(cell(probes.get(k)) for k in ("p50_ms", "p95_ms", "max_ms")))

    return show


PROBE_COLUMNS: list[Column] = [
    ("episodes", field("episodes")),
    ("events", field("events")),
    ("no refresh p50 / p95 / max ms", _spread(lambda r: r["probe_idle"])),
    (
        "of which listener_items / neighbour_scores p50 ms",
        lambda r: "{} / {}".format(
            *(r["probe_idle"].get(f"{q}_p50_ms") for q in ("listener_items", "neighbour_scores"))
        ),
    ),
    ("during refresh", _spread(lambda r: r["probe_during"])),
    ("during its read", _spread(lambda r: r["probe_during_step"].get("read"))),
    ("during its build", _spread(lambda r: r["probe_during_step"].get("build"))),
    ("during its save", _spread(lambda r: r["probe_during_step"].get("save"))),
    ("after it", _spread(lambda r: r["probe_after"])),
    (
        "probes idle / during / after",
        lambda r: "{} / {} / {}".format(
            r["probe_idle"]["probes"], r["probe_during"]["probes"], r["probe_after"]["probes"]
        ),
    ),
    ("listener episodes / scored per probe", lambda r: f"{r['probe_items_mean']} / {r['probe_scored_mean']}"),
]

COLLAB_NOTE = """\
Written by `bench/collab.py` (`python -m bench.collab`, a phase of `make bench`; `--quick` is
10k × 1M). Synthetic behaviour on the catalog generator's episodes: listeners with one to three
taste topics and lognormal activity, Zipf-like popularity within a topic, 15 % of events off
taste; listens in `user_listens` (one per listener and episode), the rest in `feedback_events`
(complete and like +1, skip −0.3, dislike −1), over 180 days. `collaborative.refresh_if_due(force=True)`
runs in a fresh interpreter with the default settings (100 neighbours, 500 episodes per
listener); its peak RSS is the peak resident set (VmHWM) minus the resident set after imports,
and its steps are timed by wrapping `collaborative`'s functions in that process (read = the COPY
query until its text is received, then the parse; build = matrix, X'X blocks, the per-episode
top-K loop; save = formatting the rows, then the SQL of the replacing transaction). WAL and
temp MiB are Postgres' during the refresh. Meanwhile this process runs the request-time queries
(`listener_items` + `neighbour_scores` for a random active listener, 40 candidates asked, 40
content ids included, their own episodes excluded) on one plain connection, about 15 a second:
before the refresh, during each of its steps, and after it. Every process shares the same 2
cores (and other work ran on the machine), so slower probes during the read and build are CPU
contention; a probe blocked by the refresh would show as a maximum of the step's length.
"""


def collab_tables(rows: list[dict]) -> str:
    order = sorted(rows, key=_collab_key)
    return (
        table(COLLAB_COLUMNS, order)
        + "\nRequest-time probes (listener_items + neighbour_scores):\n\n"
        + table(PROBE_COLUMNS, order)
    )


def min_ef_table(rows: list[dict]) -> str:
    """Per catalog: the smallest ef_search reaching the recall target, and recall at the default
    (the migrations' index only; `bench.hnsw` variants are in the full table)."""
    rows = [r for r in rows if not r.get("variant")]
    out = []
    for dims, size, storage in sorted(
        {(r["dims"], r["catalog_size"], r.get("storage", "vector")) for r in rows}
    ):
        mine = sorted((r for r in rows if _key(r) == (size, dims, storage)), key=field("ef_search"))
        reaching = [r["ef_search"] for r in mine if r["recall_at_10"] >= RECALL_TARGET]
        default = next((r["recall_at_10"] for r in mine if r["ef_search"] == APP_EF_SEARCH), None)
        out.append(
            {
                "catalog_size": size,
                "dims": dims,
                "storage": storage,
                "ef": reaching[0] if reaching else "not reached",
                "at": default,
            }
        )
    columns: list[Column] = [
        ("catalog", catalog),
        ("dims", field("dims")),
        ("storage", field("storage")),
        (f"smallest ef_search with recall ≥ {RECALL_TARGET}", field("ef")),
        (f"recall at ef_search {APP_EF_SEARCH} (app default)", field("at")),
    ]
    return table(columns, out)


def scale_table(recommend: list[dict], memory: list[dict]) -> str:
    def p50(system: str, cache: str, clients: int, delay: int = 300) -> Callable[[dict], Any]:
        wanted = (system, cache, clients, delay)

        def get(m: dict[str, Any]) -> Any:
            for r in recommend:
                if (
                    _key(r) == _key(m)
                    and (r["system"], r["cache"], r["concurrency"], r.get("llm_delay_ms")) == wanted
                ):
                    return r["p50_ms"]
            return None

        return get

    columns: list[Column] = [
        ("catalog", catalog),
        ("dims", field("dims")),
        ("warm p50 ms (1 client)", p50("ours", "warm", 1)),
        ("warm p50 ms (4)", p50("ours", "warm", 4)),
        ("warm p50 ms (16)", p50("ours", "warm", 16)),
        ("cold p50 ms (4)", p50("ours", "cold", 4)),
        ("baseline p50 ms (4)", p50("baseline", "cold", 4)),
        ("Postgres RSS MiB", field("rss_mb")),
        ("Postgres PSS MiB", field("pss_mb")),
        ("table MiB", field("table_mb")),
        ("index MiB", field("index_mb")),
    ]
    served = [m for m in memory if m.get("storage", "vector") == "vector"]  # halfvec: storage_table
    return table(columns, sorted(served, key=lambda m: (m["dims"], m["catalog_size"])))


def targets(results: dict[str, Any]) -> str:
    """Issue 11's targets (and the recall one kept from before), each with what was measured."""
    recommend, recall = results.get("recommend", []), results.get("recall", [])
    lines = []

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "**missed**")

    for w in results.get("written_ahead", []):
        if (w["catalog_size"], w["dims"]) != (100_000, 384):
            continue
        naive = _naive(recommend, w) or {}
        ratio = naive["p50_ms"] / w["p50_ms"] if naive.get("p50_ms") and w["p50_ms"] else None
        lines += [
            (
                f"written ahead, LLM {w['llm_delay_ms']} ms: p50 ≥ 100× under the naive baseline's at 100k",
                f"{w['p50_ms']} ms against {naive.get('p50_ms')} ms"
                + ("" if ratio is None else f" ({ratio:,.0f}×)"),
                verdict(None if ratio is None else ratio >= 100),
            ),
            (
                "≥ 95 % of served items carry an LLM-written reason",
                f"{w['llm_reason_share']} (pages after each listener's first)",
                verdict(w["llm_reason_share"] is not None and w["llm_reason_share"] >= 0.95),
            ),
            (
                "≤ 1.2 LLM calls per served page",
                f"{w['llm_calls_per_page']} (every call, interest profiles included)",
                verdict(w["llm_calls_per_page"] is not None and w["llm_calls_per_page"] <= 1.2),
            ),
        ]
    for r in results.get("ratios", []):
        if (r["catalog_size"], r["dims"], r["cache"], r["concurrency"]) == (100_000, 384, "cold", 16):
            lines.append(
                (
                    "cold throughput at 16 clients ≥ 20× the naive baseline at 100k",
                    f"{r['throughput_ratio']}×",
                    verdict(r["throughput_ratio"] >= 20),
                )
            )
    floors = [f for f in results.get("floor", []) if (f["catalog_size"], f["dims"]) == (100_000, 384)]
    pairs = [(w, f) for f in floors if (w := _ours(recommend, f, "warm", f["clients"])) and w.get("rps")]
    if pairs:  # throughput is what each side reaches at its best client count
        ours_best = max((w for w, _ in pairs), key=lambda w: w["rps"])
        floor_best = max((f for _, f in pairs), key=lambda f: f["rps"])
        share = ours_best["rps"] / floor_best["rps"]
        at_equal = ", ".join(f"{w['rps'] / f['rps']:.0%} at {f['clients']}" for w, f in pairs)
        alone = [(a, f) for f in floors if (a := _ours(recommend, f, "warm", f["clients"], WRITER_OFF))]
        at_equal += "".join(
            f"; the serving path alone (writer off) {a['rps'] / f['rps']:.0%} at {f['clients']}"
            for a, f in alone
        )
        lines.append(
            (
                "warm throughput ≥ 40 % of the floor's at 100k",
                f"best {ours_best['rps']} req/s ({ours_best['concurrency']} clients) against the floor's"
                f" best {floor_best['rps']} ({floor_best['clients']} clients): {share:.0%};"
                f" at equal clients {at_equal}",
                verdict(share >= 0.4),
            )
        )
    for r in results.get("ingest", []):
        if r["path"].endswith("add_podcasts"):
            rate = r.get("episodes_per_second")
            lines.append(
                (
                    f"bulk ingest ≥ 500 episodes/s with a {r.get('llm_delay_ms')} ms LLM",
                    r.get("skipped") or f"{rate} episodes/s",
                    verdict(None if rate is None else rate >= 500),
                )
            )
    at_default = [
        r
        for r in recall
        if r["ef_search"] == APP_EF_SEARCH and not r.get("variant") and r.get("storage", "vector") == "vector"
    ]
    for r in sorted(at_default, key=lambda r: (r["dims"], r["catalog_size"])):
        lines.append(
            (
                f"recall@10 ≥ {RECALL_TARGET} at {size_label(r['catalog_size'])} × {r['dims']}"
                f" (shipped ef_search {APP_EF_SEARCH})",
                f"{r['recall_at_10']}",
                verdict(r["recall_at_10"] >= RECALL_TARGET),
            )
        )
    columns: list[Column] = [
        ("target", lambda t: t[0]),
        ("measured", lambda t: t[1]),
        ("verdict", lambda t: t[2]),
    ]
    return table(columns, lines)


METHOD = """\
## How to reproduce

```bash
make bench         # 10k, 100k and 1M episodes at 384 dims, 100k at 1536 (vector and halfvec),
                   # the collaborative refresh and ingest: about an hour with the catalogs cached
make bench-quick   # 10k only, fewer requests: a few minutes
.venv/bin/python -m bench.run --sizes 10000,100000 --dims-1536 ''   # some sizes only
.venv/bin/python -m bench.hnsw --size 100000 --variants 16:128,24:128   # recall for other index parameters
.venv/bin/python -m bench.profile --size 100000   # cProfile of recommend in-process (--ingest N: bulk ingest)
.venv/bin/python -m bench.collab   # collaborative refresh, 100k x 10M events (--quick: 10k x 1M)
```

Built catalogs are cached in `bench/.work/pg18` (one database per size, dimension and storage)
and reused while the migrations in `sql/` are the same; otherwise they are rebuilt from empty.
Rows of catalogs not re-run are kept in `results.json`. Every row says when it was measured and
on which code (`git describe --always --dirty`).

## What the figures mean

- **Data.** Synthetic, clustered (not uniform noise): 300 cluster centres (topics) with Zipf-like
  popularity; each episode is its centre plus gaussian noise whose variance decays as 1/i over a
  random orthogonal basis (effective dimension about 25, like real sentence embeddings), then
  normalised. Listeners are drawn the same way, with that vector as their history and profile,
  so they sit near the episodes they would like. Loaded with binary `COPY` into a freshly
  migrated database (index dropped first), then the HNSW index is rebuilt exactly as
  `sql/001_initial.sql` defines it (`maintenance_work_mem` 2 GB, 6 GB for 1M, 1 parallel worker).
- **The service** is `local_runner.py --workers 2` (as `make run` starts it) on the embedded
  Postgres, with the `openai` provider pointed at the tests' fake OpenAI server (in its own
  process), whose chat answers are delayed by a fixed 300 ms (1 s in the written-ahead phase).
  Requests are `GET /api/recommend_podcasts?user_id=...&limit=10`. Latency is client-observed
  over loopback: a closed loop of N asyncio workers over one `httpx.AsyncClient`, each sending its
  next request when the previous one answered; p50/p95/p99 over every request after the first N;
  req/s = measured requests / wall time. **LLM calls/req** is the fake server's `chat_requests`
  counter over the phase divided by the requests answered: it tells whether reasons were written
  ahead rather than assuming it.
- **Written ahead** (section 1): 16 listeners, new when the phase starts, each asking for a page,
  liking its first item and asking for the next page 2-3 s later, for 60 s, against a 1 s LLM,
  the service with its default settings. p50/p95 and **LLM-written reasons** (the share of items
  whose `reason_source` is not `fallback`) are over the pages after each listener's first (a
  walk-in's first page has evidence sentences: nothing is prepared for a listener who may not
  come back); **LLM calls/page** divides every chat call of the phase (reasons and interest
  profiles) by every page served, first pages included. The naive baseline's p50 at the same 1 s
  delay comes from one client sending a few requests.
- **Cold** = every request is for a listener never seen before: a walk-in, served at once with
  evidence sentences and nothing prepared (no LLM call). **Warm** = 1,024 listeners served twice
  before (the second time queues their next page, which the writer computes, has its reasons
  written and stores), asked for in turn, so each comes back a few seconds after their last page
  (1,024 ÷ req/s), as a listener does; each served page queues the next, which the writer
  computes in the same processes while the phase runs. The runner is started with
  `RESUGGEST_WINDOW_HOURS=0`, so the same items come back with their written reasons (no LLM
  call). **Served as prepared**: the share of measured answers with `"prepared": true` (served as
  stored, without a probe or a ranking); the others were computed on the request. **Writer off**
  (`PREPARE_PAGES=false`): the same requests, every page computed on the request.
- **Baseline** (`bench/naive_app.py`, served by the same runner code in one process with 16
  threads, its best setting since it waits on the LLM, not the CPU): exact scan with `<->` L2
  distance and index scans disabled, one sequential LLM call per item through the `openai` client
  to the same fake server, a new connection and a separate INSERT + commit per item. Same data,
  same run. It has no cache, so its rows are "cold".
- **Floor** (section 4, `bench/floor.py`): N threads each running, per request, the service's own
  candidate query (`store.candidates.CANDIDATE_SQL` on the HNSW index, 40 candidates, the app's ef_search
  and plan settings, the vectors in binary) for a warm listener's stored profile vector, then
  inserting 10 suggestions, in one transaction with `synchronous_commit = off`, as the service
  commits its log. No HTTP, no Python ranking, no other query, no page prepared ahead: the
  physical limit of a recommendation on this machine.
- **Recall@10 / @40**: the app's candidate query (`ORDER BY embedding <=> q LIMIT 40`, status and
  category filters, exclusions as `id <> ALL(...)`) under `hnsw.ef_search`, against the same query
  with index scans disabled (exact), over 200 listener vectors. For the halfvec catalog the exact
  answers come from the full-precision catalog (same episodes, same ids), so its recall counts
  what halving the precision loses as well as what the index does. Query p50 is that SQL alone.
- **Ingest**: into a new, empty database, every LLM call (a batch of `SUMMARY_BATCH_SIZE`
  summaries) delayed 300 ms: `POST /api/add_podcast` with 4 clients and `POST /api/add_podcasts`
  in batches of 100 with 4 clients; AI requests per episode from the fake server's counters.
- **Memory**: after the warm phases, the sum over the postmaster and all its children (including
  the runner's pooled backends). RSS counts the shared buffers once per process that touched them;
  PSS divides shared pages among the processes and is the honest total. The index and table are
  mostly in the OS page cache, which neither counts.
- The CPU (2 cores) is shared by the clients, the two runner processes, the fake server and
  Postgres: absolute numbers are noisy, which is why the baseline and the floor run in the same
  run and the ratios are reported.
"""


def render(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    parts = [
        "# Benchmark results\n",
        f"Generated by `bench/run.py` on {results.get('date')}. Machine: {m.get('cpu')}, "
        f"{m.get('cores')} cores, {m.get('memory_gib')} GiB RAM, {m.get('os')}; Python {m.get('python')}; "
        f"embedded PostgreSQL {m.get('postgres')} (shared_buffers {m.get('shared_buffers')}) with pgvector "
        f"{m.get('pgvector')}. Machine-readable figures: `bench/results.json`.\n",
    ]
    if FINDINGS_MD.exists():
        parts.append(FINDINGS_MD.read_text().rstrip() + "\n")
    if results.get("recommend"):
        parts += [
            "## Targets\n",
            targets(results),
            "## 1. Reasons written ahead: listeners against a 1 s LLM\n",
            written_ahead_table(results.get("written_ahead", []), results["recommend"]),
            "## 2. Recommend latency and throughput\n",
            recommend_table(results["recommend"]),
            "## 3. Against the naive baseline (same data, same run)\n",
            "Ratios below 1 for p50 and LLM calls, above 1 for throughput, favour ours.\n",
            ratio_table(results.get("ratios", [])),
            "\n![Recommend latency per catalogue size, ours against the naive baseline]"
            "(charts/recommend_latency.png)\n",
            "## 4. Against the floor (the candidate query and the insert, straight SQL)\n",
            floor_table(results.get("floor", []), results["recommend"]),
            "## 5. Recall@10 of the HNSW query\n",
            min_ef_table(results.get("recall", [])),
            "\n" + recall_table(results.get("recall", [])),
            "## 6. vector or halfvec\n",
            storage_table(results.get("recall", []), results.get("memory", [])),
            "## 7. Ingest\n",
            ingest_table(results.get("ingest", [])),
            "## 8. Scale curve\n",
            scale_table(results["recommend"], results.get("memory", [])),
        ]
    parts.append("## 9. Feedback-loop simulation\n")
    if (BENCH_DIR / "LOOP_RESULTS.md").exists():
        parts.append("Written by `bench/simulate_loop.py`; its own report is `bench/LOOP_RESULTS.md`.\n")
    if results.get("loop"):
        parts.append(
            "\n".join(f"- `{key}`: `{json.dumps(value)}`" for key, value in results["loop"].items()) + "\n"
        )
    else:
        parts.append(
            'Not measured yet: a separate script writes its figures under `"loop"` in `results.json`.\n'
        )
    parts.append("## 10. Collaborative model: refresh at scale\n")
    if results.get("collaborative"):
        parts += [COLLAB_NOTE, collab_tables(results["collaborative"])]
    else:
        parts.append("Not measured yet: `python -m bench.collab`.\n")
    quick = results.get("quick")
    if quick:
        parts += [
            f"## Quick run (`make bench-quick`, {quick.get('date')})\n",
            "10k episodes only, few requests per phase: a smoke test of the whole suite,"
            " not a measurement to quote.\n",
            recommend_table(quick.get("recommend", [])),
            "\n" + ratio_table(quick.get("ratios", [])),
            "\n" + recall_table(quick.get("recall", [])),
            "\n" + ingest_table(quick.get("ingest", [])),
        ]
        if quick.get("collaborative"):
            parts.append("\n" + collab_tables(quick["collaborative"]))
    parts.append(METHOD)
    return "\n".join(parts)

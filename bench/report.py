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

from bench.db import scalar

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_JSON = BENCH_DIR / "results.json"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
FINDINGS_MD = BENCH_DIR / "findings.md"  # hand-written analysis, included in RESULTS.md
RECALL_TARGET = 0.95
APP_EF_SEARCH = 100  # the app's HNSW_EF_SEARCH default


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
    return (row.get("catalog_size"), row.get("dims"))


def _index_key(row: dict[str, Any]) -> tuple:
    return (row.get("catalog_size"), row.get("dims"), row.get("m"), row.get("ef_construction"))


def _ingest_key(row: dict[str, Any]) -> tuple:
    return (row.get("path"),)


def _collab_key(row: dict[str, Any]) -> tuple:
    return (row.get("episodes"), row.get("events"))


def merge(old: list[dict], new: list[dict], key=_key) -> list[dict]:
    """New rows replace the old ones of the same catalogs (and index, for recall); others stay."""
    fresh = {key(r) for r in new}
    return [r for r in old if key(r) not in fresh] + new


def ratios(recommend: list[dict]) -> list[dict]:
    """Ours against the baseline, same catalog and concurrency (baseline has no cache)."""
    naive = {
        (r["catalog_size"], r["dims"], r["concurrency"]): r for r in recommend if r["system"] == "baseline"
    }
    out = []
    for r in recommend:
        b = naive.get((r["catalog_size"], r["dims"], r["concurrency"]))
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
        for key in ("recommend", "memory"):
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
    ("reasons", field("cache")),
    ("AB_SPLIT", field("ab_split")),
    ("p50 ms", field("p50_ms")),
    ("p95 ms", field("p95_ms")),
    ("p99 ms", field("p99_ms")),
    ("req/s", field("rps")),
    ("LLM calls/req", field("llm_calls_per_request")),
    ("requests", field("requests")),
]
RATIO_COLUMNS: list[Column] = [
    ("catalog", catalog),
    ("dims", field("dims")),
    ("clients", field("concurrency")),
    ("ours with reasons", field("cache")),
    ("AB_SPLIT", field("ab_split")),
    ("p50 ours/baseline", field("p50_ratio")),
    ("throughput ours/baseline", lambda r: f"{r['throughput_ratio']}×"),
    ("LLM calls ours/baseline", field("llm_calls_ratio")),
]
RECALL_COLUMNS: list[Column] = [
    ("catalog", catalog),
    ("dims", field("dims")),
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
        key=lambda r: (r["dims"], r["catalog_size"], r["system"] != "ours", r["cache"], r["concurrency"]),
    )
    return table(RECOMMEND_COLUMNS, order)


def ratio_table(rows: list[dict]) -> str:
    return table(
        RATIO_COLUMNS,
        sorted(rows, key=lambda r: (r["dims"], r["catalog_size"], r["cache"], r["concurrency"])),
    )


def recall_table(rows: list[dict]) -> str:
    order = sorted(
        rows, key=lambda r: (r["dims"], r["catalog_size"], r["m"], r["ef_construction"], r["ef_search"])
    )
    return table(RECALL_COLUMNS, order)


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
    for dims, size in sorted({(r["dims"], r["catalog_size"]) for r in rows}):
        mine = sorted(
            (r for r in rows if (r["dims"], r["catalog_size"]) == (dims, size)), key=field("ef_search")
        )
        reaching = [r["ef_search"] for r in mine if r["recall_at_10"] >= RECALL_TARGET]
        default = next((r["recall_at_10"] for r in mine if r["ef_search"] == APP_EF_SEARCH), None)
        out.append(
            {
                "catalog_size": size,
                "dims": dims,
                "ef": reaching[0] if reaching else "not reached",
                "at": default,
            }
        )
    columns: list[Column] = [
        ("catalog", catalog),
        ("dims", field("dims")),
        (f"smallest ef_search with recall ≥ {RECALL_TARGET}", field("ef")),
        (f"recall at ef_search {APP_EF_SEARCH} (app default)", field("at")),
    ]
    return table(columns, out)


def scale_table(recommend: list[dict], memory: list[dict]) -> str:
    def p50(system: str, cache: str, clients: int, split: str | None = "default") -> Callable[[dict], Any]:
        wanted = (system, cache, clients, split)

        def get(m: dict[str, Any]) -> Any:
            for r in recommend:
                if (
                    _key(r) == _key(m)
                    and (r["system"], r["cache"], r["concurrency"], r.get("ab_split")) == wanted
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
        ("warm, no exploration, p50 ms (4)", p50("ours", "warm", 4, "history_only:100")),
        ("cold p50 ms (4)", p50("ours", "cold", 4)),
        ("baseline p50 ms (4)", p50("baseline", "cold", 4, None)),
        ("Postgres RSS MiB", field("rss_mb")),
        ("Postgres PSS MiB", field("pss_mb")),
        ("table MiB", field("table_mb")),
        ("index MiB", field("index_mb")),
    ]
    return table(columns, sorted(memory, key=lambda m: (m["dims"], m["catalog_size"])))


def targets(results: dict[str, Any]) -> str:
    recommend, recall = results.get("recommend", []), results.get("recall", [])

    def find(**match: Any) -> list[dict]:
        return [r for r in recommend if all(r.get(k) == v for k, v in match.items())]

    def verdict(ok: bool | None) -> str:
        return "–" if ok is None else ("met" if ok else "**missed**")

    lines = []
    for size, limit in ((100_000, 15), (1_000_000, 25)):
        for split in ("default", "history_only:100"):
            rows = find(system="ours", cache="warm", catalog_size=size, dims=384, ab_split=split)
            loaded = [r["p50_ms"] for r in rows if r["concurrency"] in (4, 16) and r["p50_ms"] is not None]
            alone = [r["p50_ms"] for r in rows if r["concurrency"] == 1]
            worst = max(loaded, default=None)
            measured = "not measured" if worst is None else f"{worst} ms (worst of 4 and 16 clients)"
            if alone:
                measured += f"; {alone[0]} ms with 1 client"
            lines.append(
                (
                    f"p50 ≤ {limit} ms at {size_label(size)}, reasons cached (AB_SPLIT {split})",
                    measured,
                    verdict(None if worst is None else worst <= limit),
                )
            )
    cold = [r["llm_calls_per_request"] for r in find(system="ours", cache="cold")]
    most = max((c for c in cold if c is not None), default=None)
    lines.append(
        ("≤ 1 LLM call per request, not cached", f"max {most}", verdict(None if most is None else most <= 1))
    )
    for r in results.get("ratios", []):
        if (r["catalog_size"], r["dims"], r["ab_split"]) == (100_000, 384, "default"):
            lines.append(
                (
                    f"≥ 10× baseline throughput, ≤ 1/10 its p50 at 100k"
                    f" ({r['cache']}, {r['concurrency']} clients)",
                    f"{r['throughput_ratio']}×, p50 ratio {r['p50_ratio']}",
                    verdict(r["throughput_ratio"] >= 10 and r["p50_ratio"] <= 0.1),
                )
            )
    at_default = [r for r in recall if r["ef_search"] == APP_EF_SEARCH and not r.get("variant")]
    worst = min((r["recall_at_10"] for r in at_default), default=None)
    lines.append(
        (
            f"recall@10 ≥ {RECALL_TARGET} at every size (ef_search {APP_EF_SEARCH})",
            "not measured" if worst is None else f"min {worst}",
            verdict(None if worst is None else worst >= RECALL_TARGET),
        )
    )
    for r in results.get("ingest", []):
        if r["path"].endswith("add_podcasts"):
            rate = r.get("episodes_per_second")
            lines.append(
                (
                    "bulk ingest ≥ 300 episodes/s",
                    r.get("skipped") or f"{rate} episodes/s",
                    verdict(None if rate is None else rate >= 300),
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
make bench         # 10k, 100k and 1M episodes at 384 dims, 100k at 1536 dims, ingest (about 25 min
                   # when the catalogs are cached; building them adds about 10 min, mostly the 1M index)
make bench-quick   # 10k only, fewer requests: under 3 minutes
.venv/bin/python -m bench.run --sizes 10000,100000 --dims-1536 ''   # some sizes only
.venv/bin/python -m bench.hnsw --size 100000 --variants 16:128,24:128   # recall for other index parameters
.venv/bin/python -m bench.profile --size 100000   # cProfile of recommend in-process (--ingest N: bulk ingest)
.venv/bin/python -m bench.collab   # collaborative refresh, 100k x 10M events (--quick: 10k x 1M)
```

Built catalogs are cached in `bench/.work/pg` (one database per size and dimension) and reused
while the migrations in `sql/` are the same; otherwise they are rebuilt from empty. Rows of
catalogs not re-run are kept in `results.json`, as is its `"loop"` key. Every row
says when it was measured and on which code (`git describe --always --dirty`).

## What the figures mean

- **Data.** Synthetic, clustered (not uniform noise): 300 cluster centres (topics) with Zipf-like
  popularity; each episode is its centre plus gaussian noise whose variance decays as 1/i over a
  random orthogonal basis (effective dimension about 25, like real sentence embeddings), then
  normalised. Listeners are drawn the same way, so they sit near the episodes they would like.
  Loaded with binary `COPY` into a freshly migrated database (index dropped first), then the
  HNSW index is rebuilt exactly as `sql/001_initial.sql` defines it (`maintenance_work_mem`
  2 GB, 6 GB for 1M, 1 parallel worker).
- **Recommend.** `GET /api/recommend_podcasts?user_id=...&limit=10` through `local_runner.py`
  (the real HTTP runner) on the embedded Postgres, with the `openai` provider pointed at the tests'
  fake OpenAI server, whose chat answer is delayed by a fixed **300 ms** (the reason-writing LLM).
  The fake server runs in its own process. Latency is **client-observed over loopback**: a closed
  loop of N asyncio workers over one `httpx.AsyncClient` (N = 4 or 16 concurrent clients, and 1
  for the warm phases: the service time without queueing), each sending its next request when
  the previous one answered; p50/p95/p99 over every request after the first N (warm-up),
  req/s = measured requests / wall time. Errors are excluded and listed in `results.json`.
- **Cold** = every request is for a listener never seen before (fresh users per phase), so no
  reason can be cached. **Warm** = repeated requests for 64 listeners who were each served once
  before, the runner started with `RESUGGEST_WINDOW_HOURS=0` so the same items come back; with a
  reason cache those requests need no LLM call. **LLM calls/req** is the fake server's
  `chat_requests` counter over the phase divided by the requests answered in it, so it tells
  whether a cache worked rather than assuming it. **AB_SPLIT** `default` is the app's split
  (90 % `loop` with one exploration slot per page, 10 % `history_only`); `history_only:100` is a
  diagnostic warm phase where no slot goes to exploration.
- **Baseline** (`bench/naive_app.py`, served by the same runner code): exact scan with `<->` L2
  distance and index scans disabled, one sequential LLM call per item through the `openai`
  client to the same fake server, a new connection and a separate INSERT + commit per item. Same
  data, same run, same clients. It has no cache, so its rows are "cold".
- **Recall@10 / @40**: the app's candidate query (`db_utils.candidate_podcasts`: status and
  category filters, exclusions as `id <> ALL(...)`, `ORDER BY embedding <=> q LIMIT 40`) under
  `hnsw.ef_search`, against the same query with index scans disabled (exact), over 200 listener
  vectors (50 in quick mode). Query p50 is that SQL alone, from a client on the same machine.
- **Ingest**: into a new, empty database: `POST /api/add_podcast` with 4 clients, and
  `POST /api/add_podcasts` in batches of 100 with 2 clients (measured only when the route
  exists), with AI answers undelayed, so it measures the service's own overhead; AI requests
  per episode come from the fake server's counters.
- **Memory**: after the warm phases, the sum over the postmaster and all its children (including
  the runner's pooled backends). RSS counts the shared buffers once per process that touched them;
  PSS divides shared pages among the processes and is the honest total. The index and table are
  mostly in the OS page cache, which neither counts.
- The CPU (2 cores) is shared by the clients, the runner, the fake server and Postgres, and other
  work (tests, the loop simulation) ran on the machine at the same time: absolute numbers are
  noisy, which is why the baseline runs in the same run and the ratios are reported.
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
            "## 1. Recommend latency and throughput\n",
            recommend_table(results["recommend"]),
            "## 2. Against the naive baseline (same data, same run)\n",
            "Ratios below 1 for p50 and LLM calls, above 1 for throughput, favour ours.\n",
            ratio_table(results.get("ratios", [])),
            "## 3. Recall@10 of the HNSW query\n",
            min_ef_table(results.get("recall", [])),
            "\n" + recall_table(results.get("recall", [])),
            "## 4. Ingest\n",
            ingest_table(results.get("ingest", [])),
            "## 5. Scale curve\n",
            scale_table(results["recommend"], results.get("memory", [])),
        ]
    parts.append("## 6. Feedback-loop simulation\n")
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
    parts.append("## 7. Collaborative model: refresh at scale\n")
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

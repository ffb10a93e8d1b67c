"""The tables of bench/RESULTS.md, each from the rows of one or two sections of results.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.report import Column, cell, table
from config import Settings

APP_EF_SEARCH = Settings.model_fields["hnsw_ef_search"].default
RECALL_TARGET = 0.95
WRITER_OFF = "ours, writer off"  # recommend rows measured with PREPARE_PAGES=false
SYSTEMS = ("ours", WRITER_OFF, "baseline")  # the order of the recommend rows


def catalog_key(row: dict[str, Any]) -> tuple:
    return (row.get("catalog_size"), row.get("dims"), row.get("storage", "vector"))


def by(*keys: str) -> Callable[[dict[str, Any]], tuple]:
    """A sort key: the rows' values of `keys` (storage "vector" when not said)."""
    return lambda r: tuple(r.get(k, "vector" if k == "storage" else None) for k in keys)


def size_label(size: int) -> str:
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


def find(rows: list[dict], like: dict[str, Any], **wanted: Any) -> dict[str, Any]:
    """The first row of the catalog of `like` with the `wanted` values, or {}."""
    key = catalog_key(like)
    match = (r for r in rows if catalog_key(r) == key and all(r.get(k) == v for k, v in wanted.items()))
    return next(match, {})


def naive_of(recommend: list[dict], row: dict[str, Any]) -> dict[str, Any]:
    return find(recommend, row, system="baseline", llm_delay_ms=row["llm_delay_ms"])


def share(a: dict, b: dict, key: str = "rps") -> float | None:
    return round(a[key] / b[key], 3) if a.get(key) and b.get(key) else None


CATALOG: list[Column] = [("catalog", lambda r: size_label(r["catalog_size"])), ("dims", "dims")]
STORAGE: Column = ("storage", lambda r: r.get("storage", "vector"))


def ratios(recommend: list[dict]) -> list[dict]:
    """Ours against the baseline, same catalog, concurrency and LLM delay (baseline has no cache)."""
    out = []
    for r in recommend:
        same = {"concurrency": r["concurrency"], "llm_delay_ms": r.get("llm_delay_ms")}
        b = find(recommend, r, system="baseline", **same)
        if r["system"] != "ours" or not b or not r["p50_ms"] or not b["rps"]:
            continue
        calls = b["llm_calls_per_request"]
        out.append(
            {k: r.get(k) for k in ("catalog_size", "dims", "concurrency", "cache", "ab_split")}
            | {"p50_ratio": round(r["p50_ms"] / b["p50_ms"], 4)}
            | {"throughput_ratio": round(r["rps"] / b["rps"], 1)}
            | {"llm_calls_ratio": round(r["llm_calls_per_request"] / calls, 3) if calls else None}
        )
    return out


def recommend_table(rows: list[dict]) -> str:
    columns: list[Column] = [
        ("system", "system"), *CATALOG, ("clients", "concurrency"), ("listeners", "cache"),
        ("LLM delay ms", "llm_delay_ms"), ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms"), ("p99 ms", "p99_ms"),
        ("req/s", "rps"), ("LLM calls/req", "llm_calls_per_request"),
        ("served as prepared", "prepared_share"), ("requests", "requests"),
    ]  # fmt: skip
    order = by("dims", "catalog_size", "system", "cache", "concurrency")
    return table(columns, sorted(rows, key=lambda r: order({**r, "system": SYSTEMS.index(r["system"])})))


def ratio_table(rows: list[dict]) -> str:
    columns: list[Column] = [
        *CATALOG, ("clients", "concurrency"), ("ours, listeners", "cache"),
        ("p50 ours/baseline", "p50_ratio"),
        ("throughput ours/baseline", lambda r: f"{r['throughput_ratio']}×"),
        ("LLM calls ours/baseline", "llm_calls_ratio"),
    ]  # fmt: skip
    return table(columns, sorted(rows, key=by("dims", "catalog_size", "cache", "concurrency")))


def recall_table(rows: list[dict]) -> str:
    columns: list[Column] = [
        *CATALOG, STORAGE, ("index", lambda r: "variant (bench.hnsw)" if r.get("variant") else "migrations'"),
        ("m", "m"), ("ef_construction", "ef_construction"), ("ef_search", "ef_search"),
        ("recall@10", "recall_at_10"), ("recall@40", "recall_at_40"), ("query p50 ms", "query_p50_ms"),
        ("exact query ms", "exact_query_ms"), ("build s", "build_seconds"), ("index MiB", "index_mb"),
    ]  # fmt: skip
    order = by("dims", "catalog_size", "storage", "m", "ef_construction", "ef_search")
    return table(columns, sorted(rows, key=order))


def min_ef_table(rows: list[dict]) -> str:
    """Per catalog: the smallest ef_search reaching the recall target, and recall at the default
    (the migrations' index only; `bench.hnsw` variants are in the full table)."""
    rows = [r for r in rows if not r.get("variant")]
    out = []
    for key in sorted({catalog_key(r) for r in rows}, key=lambda k: (k[1], k[0], k[2])):
        mine = sorted((r for r in rows if catalog_key(r) == key), key=lambda r: r["ef_search"])
        reaching = [r["ef_search"] for r in mine if r["recall_at_10"] >= RECALL_TARGET]
        default = next((r["recall_at_10"] for r in mine if r["ef_search"] == APP_EF_SEARCH), None)
        ef = reaching[0] if reaching else "not reached"
        out.append({"catalog_size": key[0], "dims": key[1], "storage": key[2], "ef": ef, "at": default})
    columns: list[Column] = [
        *CATALOG, ("storage", "storage"), (f"smallest ef_search with recall ≥ {RECALL_TARGET}", "ef"),
        (f"recall at ef_search {APP_EF_SEARCH} (app default)", "at"),
    ]  # fmt: skip
    return table(columns, out)


def floor_table(floor: list[dict], recommend: list[dict]) -> str:
    """The floor next to the service's warm requests at the same number of clients."""
    rows = []
    for f in sorted(floor, key=by("dims", "catalog_size", "clients")):
        warm = find(recommend, f, system="ours", cache="warm", concurrency=f["clients"])
        alone = find(recommend, f, system=WRITER_OFF, cache="warm", concurrency=f["clients"])
        rows.append(
            {**f, "warm_p50": warm.get("p50_ms"), "warm_rps": warm.get("rps"), "share": share(warm, f)}
            | {"alone_rps": alone.get("rps"), "alone_share": share(alone, f)}
        )
    columns: list[Column] = [
        *CATALOG, ("clients", "clients"), ("floor p50 ms", "p50_ms"), ("floor req/s", "rps"),
        ("ours warm p50 ms", "warm_p50"), ("ours warm req/s", "warm_rps"),
        ("ours / floor throughput", "share"), ("writer off req/s", "alone_rps"),
        ("writer off / floor", "alone_share"),
    ]  # fmt: skip
    return table(columns, rows)


def written_ahead_table(ahead: list[dict], recommend: list[dict]) -> str:
    rows = []
    for w in sorted(ahead, key=by("dims", "catalog_size")):
        naive = naive_of(recommend, w)
        ratio = round(naive["p50_ms"] / w["p50_ms"]) if naive.get("p50_ms") and w["p50_ms"] else None
        rows.append({**w, "naive_p50": naive.get("p50_ms"), "ratio": ratio})
    columns: list[Column] = [
        *CATALOG, ("LLM delay ms", "llm_delay_ms"), ("listeners", "clients"),
        ("pages (returning)", lambda r: f"{r['pages']:,} ({r['returning_pages']:,})"),
        ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms"), ("pages/s", "rps"),
        ("LLM-written reasons", "llm_reason_share"), ("LLM calls/page", "llm_calls_per_page"),
        ("naive p50 ms (same LLM)", "naive_p50"),
        ("naive p50 / ours", lambda r: None if r["ratio"] is None else f"{r['ratio']:,}×"),
    ]  # fmt: skip
    return table(columns, rows)


def storage_table(recall: list[dict], memory: list[dict]) -> str:
    """vector against halfvec on the same catalog: sizes and recall at the app's ef_search."""
    rows = []
    for m in sorted((m for m in memory if m["dims"] > 384), key=by("catalog_size", "storage")):
        mine = [r for r in recall if catalog_key(r) == catalog_key(m) and not r.get("variant")]
        at = {r["ef_search"]: r["recall_at_10"] for r in mine}
        rows.append({**m, **{f"at_{ef}": at.get(ef) for ef in (40, 100, 200)}})
    default = {ef: " (app default)" if ef == APP_EF_SEARCH else "" for ef in (100, 200)}
    columns: list[Column] = [
        *CATALOG, STORAGE, ("table MiB", "table_mb"), ("HNSW index MiB", "index_mb"),
        ("recall@10, ef_search 40", "at_40"),
        *((f"ef_search {ef}{note}", f"at_{ef}") for ef, note in default.items()),
    ]  # fmt: skip
    return table(columns, rows)


def ingest_table(rows: list[dict]) -> str:
    columns: list[Column] = [
        ("path", "path"), ("LLM delay ms", "llm_delay_ms"), ("episodes/s", "episodes_per_second"),
        ("embedding requests/episode", "embedding_requests_per_episode"),
        ("embedded texts/episode", "embedding_inputs_per_episode"),
        ("chat requests/episode", "chat_requests_per_episode"), ("episodes", "episodes"),
        ("clients", "concurrency"), ("episodes/request", "batch"),
    ]  # fmt: skip
    return table(columns, sorted(rows, key=by("path")))


def scale_table(recommend: list[dict], memory: list[dict]) -> str:
    def p50(system: str, cache: str, clients: int) -> Callable[[dict], Any]:
        wanted = {"system": system, "cache": cache, "concurrency": clients, "llm_delay_ms": 300}
        return lambda m: find(recommend, m, **wanted).get("p50_ms")

    columns: list[Column] = [
        *CATALOG, ("warm p50 ms (1 client)", p50("ours", "warm", 1)),
        ("warm p50 ms (4)", p50("ours", "warm", 4)), ("warm p50 ms (16)", p50("ours", "warm", 16)),
        ("cold p50 ms (4)", p50("ours", "cold", 4)), ("baseline p50 ms (4)", p50("baseline", "cold", 4)),
        ("Postgres RSS MiB", "rss_mb"), ("Postgres PSS MiB", "pss_mb"),
        ("table MiB", "table_mb"), ("index MiB", "index_mb"),
    ]  # fmt: skip
    served = [m for m in memory if m.get("storage", "vector") == "vector"]  # halfvec: storage_table
    return table(columns, sorted(served, key=by("dims", "catalog_size")))


def collab_tables(rows: list[dict]) -> str:
    def step(name: str, key: str) -> Callable[[dict], Any]:
        return lambda r: r.get("steps", {}).get(name, {}).get(key)

    def spread(get: Callable[[dict], Any]) -> Callable[[dict], str]:
        return lambda r: " / ".join(cell((get(r) or {}).get(k)) for k in ("p50_ms", "p95_ms", "max_ms"))

    def during(name: str) -> Callable[[dict], str]:
        return spread(lambda r: r["probe_during_step"].get(name))

    def joined(get: Callable[[dict, str], Any], *keys: str) -> Callable[[dict], str]:
        return lambda r: " / ".join(str(get(r, k)) for k in keys)

    def index_build(r: dict) -> Any:
        """`SELECT swap_in_factors()` builds the index since sql/019; a `CREATE INDEX` of its own before."""
        return step("save_factors", "db_select")(r) or step("save_factors", "db_create")(r)

    events = lambda r: f"{r['events']:,} ({r['listens']:,} listens + {r['feedback_events']:,} events)"  # noqa: E731
    refresh: list[Column] = [
        ("episodes", "episodes"), ("listeners", "users"), ("events", events),
        ("interactions read", "interactions"), ("episodes with neighbours", "episodes_with_neighbours"),
        ("refresh s", "refresh_s"), ("peak RSS MiB (over imports)", "peak_rss_mb"),
        ("read: COPY query s", step("read", "sql_s")), ("read: parse s", step("read", "parse_s")),
        ("signal (EASE per signal tried) s", step("signal", "seconds")),
        ("signals tried", step("signal", "signals_tried")), ("build s", step("build", "seconds")),
        ("of which X'X blocks s", step("build", "products_s")),
        ("of which per-row top-K s", step("build", "per_row_loop_s")),
        ("factors s", step("factors", "seconds")), ("save s", step("save", "seconds")),
        ("save factors s", step("save_factors", "seconds")),
        ("of which index build s", index_build),
        ("podcast_engagement rows", "engagement_rows"), ("its MiB (with dead rows)", "engagement_mb"),
        ("Postgres temp MiB", "postgres_temp_mb"), ("WAL MiB", "wal_mb"),
    ]  # fmt: skip
    idle_parts = joined(lambda r, q: r["probe_idle"].get(f"{q}_p50_ms"), "listener_items", "neighbour_scores")
    probes: list[Column] = [
        ("episodes", "episodes"), ("events", "events"),
        ("no refresh p50 / p95 / max ms", spread(lambda r: r["probe_idle"])),
        ("of which listener_items / neighbour_scores p50 ms", idle_parts),
        ("during refresh", spread(lambda r: r["probe_during"])), ("during its read", during("read")),
        ("during its factors", during("factors")), ("during its build", during("build")),
        ("during its saves", during("save")), ("during its factor save", during("save_factors")),
        ("after it", spread(lambda r: r["probe_after"])),
        ("probes idle / during / after",
         joined(lambda r, k: r[k]["probes"], "probe_idle", "probe_during", "probe_after")),
        ("listener episodes / scored per probe", joined(dict.get, "probe_items_mean", "probe_scored_mean")),
    ]  # fmt: skip
    order = sorted(rows, key=by("episodes", "events"))
    probing = "\nRequest-time probes (listener_items + neighbour_scores):\n\n"
    return table(refresh, order) + probing + table(probes, order)


def targets(results: dict[str, Any]) -> str:
    """Issue 11's targets (and the recall one kept from before), each with what was measured."""
    recommend, recall = results.get("recommend", []), results.get("recall", [])
    lines: list[tuple[str, str, bool | None]] = []  # target, measured, met
    at_100k = (100_000, 384, "vector")
    for w in (w for w in results.get("written_ahead", []) if catalog_key(w) == at_100k):
        naive = naive_of(recommend, w)
        ratio = naive["p50_ms"] / w["p50_ms"] if naive.get("p50_ms") and w["p50_ms"] else None
        against = f"{w['p50_ms']} ms against {naive.get('p50_ms')} ms"
        reasons, calls = w["llm_reason_share"], w["llm_calls_per_page"]
        lines += [
            (f"written ahead, LLM {w['llm_delay_ms']} ms: p50 ≥ 100× under the naive baseline's at 100k",
             against + ("" if ratio is None else f" ({ratio:,.0f}×)"), ratio and ratio >= 100),
            ("≥ 95 % of served items carry an LLM-written reason",
             f"{reasons} (pages after each listener's first)", reasons is not None and reasons >= 0.95),
            ("≤ 1.2 LLM calls per served page",
             f"{calls} (every call, interest profiles included)", calls is not None and calls <= 1.2),
        ]  # fmt: skip
    for r in results.get("ratios", []):
        if (*catalog_key(r), r["cache"], r["concurrency"]) == (*at_100k, "cold", 16):
            target = "cold throughput at 16 clients ≥ 20× the naive baseline at 100k"
            lines.append((target, f"{r['throughput_ratio']}×", r["throughput_ratio"] >= 20))
    floors = [f for f in results.get("floor", []) if catalog_key(f) == at_100k]
    warm = [(find(recommend, f, system="ours", cache="warm", concurrency=f["clients"]), f) for f in floors]
    pairs = [(w, f) for w, f in warm if w.get("rps")]
    if pairs:  # throughput is what each side reaches at its best client count
        ours_best = max((w for w, _ in pairs), key=lambda w: w["rps"])
        floor_best = max((f for _, f in pairs), key=lambda f: f["rps"])
        best = ours_best["rps"] / floor_best["rps"]
        at_equal = ", ".join(f"{w['rps'] / f['rps']:.0%} at {f['clients']}" for w, f in pairs)
        alone = [
            (find(recommend, f, system=WRITER_OFF, cache="warm", concurrency=f["clients"]), f) for f in floors
        ]
        at_equal += "".join(
            f"; the serving path alone (writer off) {a['rps'] / f['rps']:.0%} at {f['clients']}"
            for a, f in alone
            if a
        )
        measured = (
            f"best {ours_best['rps']} req/s ({ours_best['concurrency']} clients) against the floor's best"
            f" {floor_best['rps']} ({floor_best['clients']} clients): {best:.0%}; at equal clients {at_equal}"
        )
        lines.append(("warm throughput ≥ 40 % of the floor's at 100k", measured, best >= 0.4))
    for r in (r for r in results.get("ingest", []) if r["path"].endswith("add_podcasts")):
        rate = r.get("episodes_per_second")
        target = f"bulk ingest ≥ 500 episodes/s with a {r.get('llm_delay_ms')} ms LLM"
        lines.append((target, f"{rate} episodes/s", None if rate is None else rate >= 500))
    shipped = (r for r in recall if r["ef_search"] == APP_EF_SEARCH and not r.get("variant"))
    for r in sorted(
        (r for r in shipped if r.get("storage", "vector") == "vector"), key=by("dims", "catalog_size")
    ):
        where = f"{size_label(r['catalog_size'])} × {r['dims']} (shipped ef_search {APP_EF_SEARCH})"
        at = r["recall_at_10"]
        lines.append((f"recall@10 ≥ {RECALL_TARGET} at {where}", f"{at}", at >= RECALL_TARGET))
    verdict = {None: "–", True: "met", False: "**missed**"}
    columns: list[Column] = [("target", lambda t: t[0]), ("measured", lambda t: t[1])]
    return table([*columns, ("verdict", lambda t: verdict[t[2]])], lines)

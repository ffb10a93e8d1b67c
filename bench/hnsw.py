"""Recall against the HNSW build parameters: rebuild a catalog's index with other m and
ef_construction, sweep ef_search, then restore the index exactly as the migrations define it.

    python -m bench.hnsw --size 100000 --variants 16:128,24:128

The rows join the "recall" section of bench/results.json (the default index's rows stay).
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from bench import catalog, recall, results_md
from bench.db import connect, start_server
from bench.report import log, stamp
from bench.run import EF_SEARCH_SWEEP


def with_parameters(definition: str, m: int, ef_construction: int) -> str:
    definition = re.sub(r"m\s*=\s*'?\d+'?", f"m = {m}", definition)
    return re.sub(r"ef_construction\s*=\s*'?\d+'?", f"ef_construction = {ef_construction}", definition)


def measure_variants(
    server: Any, spec: catalog.Spec, variants: list[tuple[int, int]], queries: int
) -> list[dict]:
    info = catalog.build(server, spec)
    vectors = catalog.user_vectors(spec, queries, salt=999_999)  # the queries bench.run uses
    memory = "6GB" if spec.size * spec.dims > 50_000_000 else "2GB"
    conn = connect(info["dsn"], autocommit=True)
    record = {k: v for k, v in info.items() if k != "dsn"}
    with conn.cursor() as cur:  # if this is killed midway, the next run rebuilds the catalog
        cur.execute("DELETE FROM bench_catalog WHERE key = 'catalog'")
    rows = []
    try:
        for m, ef_construction in variants:
            definition = with_parameters(info["index_definition"], m, ef_construction)
            index = catalog.build_index(conn, definition, memory)
            log(f"{spec.database}: m={m}, ef_construction={ef_construction}: {index['build_seconds']} s")
            variant = {**info, "m": m, "ef_construction": ef_construction, **index}
            measured = recall.measure(info["dsn"], vectors, EF_SEARCH_SWEEP, variant)
            rows += [{**r, "variant": True, **stamp()} for r in measured]
    finally:
        log(f"{spec.database}: restoring the index of the migrations")
        catalog.build_index(conn, info["index_definition"], memory)
        catalog.record(conn, "catalog", record)
        conn.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--variants", default="16:128,24:128", help="m:ef_construction pairs")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args(argv)
    variants = [tuple(int(x) for x in v.split(":")) for v in args.variants.split(",") if v]
    server = start_server()
    rows = measure_variants(server, catalog.Spec(args.size, args.dims), variants, args.queries)
    results_md.save({"recall": rows}, quick=False, server=server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""bench/REAL_RESULTS.md: the real-data replay's figures (results.json's "real") in words."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bench.lastfm import TAGS_PER_ARTIST
from bench.report import BENCH_DIR, Column, machine_line, table

RESULTS_MD = BENCH_DIR / "REAL_RESULTS.md"
TARGET = 1.10  # with feedback vs the best baseline, and vs without feedback
MEAN = "mean_precision_at_5_pages_2_6"  # what the targets are judged on


def ratios(systems: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures the targets are judged by: mean precision@5 over pages 2-6."""
    later = {name: f[MEAN] for name, f in systems.items()}
    best = max((n for n in later if not n.startswith("service")), key=later.get)
    with_feedback = later["service, with feedback"]
    r = {
        "best_baseline": best,
        "vs_best_baseline": round(with_feedback / later[best], 3),
        "with_vs_without_feedback": round(with_feedback / later["service, without feedback"], 3),
    }
    targets = ("vs_best_baseline", "with_vs_without_feedback")
    return r | {"targets": {k: {"target": TARGET, "met": r[k] >= TARGET} for k in targets}}


def systems_table(systems: dict[str, dict[str, Any]], pages: int, final_size: int) -> str:
    """Precision@5 per page, its mean over pages 2.., recall and coverage of each system."""
    columns: list[Column] = [("system", "name")]
    columns += [
        (f"p@5 page {n}", lambda r, n=n: f"{r['precision_at_5'][n - 1]:.3f}") for n in range(1, pages + 1)
    ]
    columns += [
        (f"**mean p@5 pages 2-{pages}**", lambda r: f"**{r[MEAN]:.3f}**"),
        (f"recall@{final_size}", lambda r: f"{r['recall_at_20']:.3f}"),
        ("coverage", lambda r: f"{r['coverage']:.3f}"),
    ]
    return table(columns, [{"name": name, **f} for name, f in systems.items()])


def tuning_table(real: dict[str, Any]) -> str:
    """Per split seed and model: the hyper-parameters the validation grid chose, and its score."""
    runs = {str(real["seed"]): real.get("tuning", {})}
    runs |= {seed: run.get("tuning", {}) for seed, run in real.get("offline_seeds", {}).items()}
    rows = [
        {
            "seed": seed,
            "model": model,
            "params": ", ".join(f"{k} {v:g}" for k, v in chosen["params"].items()),
            "validation": f"{chosen['validation']:.3f}",
            "grid": str(len(chosen["grid"])),
        }
        for seed, tuning in runs.items()
        for model, chosen in tuning.items()
    ]
    columns: list[Column] = [
        ("split seed", "seed"),
        ("model", "model"),
        ("chosen hyper-parameters", "params"),
        ("validation mean p@5 pages 2-6", "validation"),
        ("grid points", "grid"),
    ]
    return table(columns, rows)


def other_seeds(real: dict[str, Any]) -> str:
    """The offline baselines on the other split seeds, each with its best baseline."""
    parts = []
    for seed, run in real.get("offline_seeds", {}).items():
        systems = run["systems"]
        best = max(systems, key=lambda n: systems[n][MEAN])
        parts += [
            f"### Split seed {seed} (offline baselines only)",
            "",
            systems_table(systems, real["pages"], real["final_size"]),
            "",
            f"Best baseline on seed {seed}: {best}, {systems[best][MEAN]:.3f}.",
            "",
        ]
    return "\n".join(parts)


def summary(real: dict[str, Any]) -> str:
    """The table, the targets, latency and import rate: what stdout and the report share."""
    pages = real["pages"]
    met = {True: "met", False: "**missed**"}
    best, targets = real["best_baseline"], real["targets"]
    latency = "; ".join(
        f"{arm} p50 {v['p50']} ms, p95 {v['p95']} ms ({v['requests']} requests)"
        for arm, v in real["recommend_latency_ms"].items()
    )
    imported = real["feedback_import"]
    return "\n".join(
        [
            systems_table(real["systems"], pages, real["final_size"]),
            f"- **The number to beat**: the best baseline, {best}, mean p@5 pages 2-{pages}"
            f" {real['systems'][best][MEAN]:.3f}.",
            f"- Service with feedback / best baseline ({best}): {real['vs_best_baseline']:.3f}"
            f" (target >= {TARGET:.2f}: {met[targets['vs_best_baseline']['met']]})",
            f"- Service with / without feedback: {real['with_vs_without_feedback']:.3f}"
            f" (target >= {TARGET:.2f}: {met[targets['with_vs_without_feedback']['met']]})",
            f"- Recommend latency over the replay's requests: {latency}. Under the replay's own"
            " load (4 listeners, their feedback, model rebuilds) on a machine shared with whatever"
            " else runs; the speed figures of record are in `bench/RESULTS.md`.",
            f"- Feedback import: {imported['events']} likes in {imported['seconds']:.1f} s"
            f" ({imported['events_per_second']:.0f} events/s)",
            *(
                f"- Page items by the service's strategy, {arm}: "
                + ", ".join(f"{s} {v['items']} ({v['hit_rate']:.1%} hits)" for s, v in by.items())
                for arm, by in real["page_items_by_strategy"].items()
            ),
        ]
    )


def render(real: dict[str, Any]) -> str:
    r = real
    return f"""# Real-data replay (HetRec 2011 Last.fm)

Written by `bench/real_replay.py` on {datetime.fromisoformat(r["date"]):%Y-%m-%d %H:%M} UTC in \
{r["seconds"]:.0f} s, code `{r["code"]}`.
{machine_line(r.get("machine", {}))}

Command: `{r["command"]}` (`make bench-real` runs it with the defaults).

## Protocol

- **Catalogue**: each of the {r["catalogue_size"]} artists is an episode (title: the artist's
  name; transcript: their {TAGS_PER_ARTIST} most used tags), posted through
  `POST /api/add_podcasts` and embedded by the offline `local` provider (all-MiniLM-L6-v2).
- **Split** (`bench/lastfm.py`, seed {r["seed"]}): {r["evaluated_users"]} evaluated listeners with
  at least 20 artists start from {r["seeds_per_user"]} random artists of theirs (sent as listens with
  `update_user_history`); the rest of their artists are held out. The other
  {r["background_users"]} listeners are the background: all their artists as listens, and a
  `like` of each one's {r.get("background_likes", 10)} most played artists through the bulk
  `POST /api/feedback`.
- **Arms**: everything is loaded once into one database (runner with `COLLAB_REFRESH_SECONDS=0`,
  waited on until `GET /api/health` says the collaborative model has seen every event); two copies
  (`CREATE DATABASE ... TEMPLATE`) each get a `local_runner.py` with `AB_SPLIT=loop:100`.
- **Replay**: each evaluated listener asks for {r["pages"]} pages of {r["page_size"]}
  (`GET /api/recommend_podcasts`), then one list of {r["final_size"]}. In `with feedback`, after each
  page every item gets `like` (held out) or `skip` (not), with its `suggestion_id`, as one bulk
  request; `without feedback` posts nothing. {r.get("threads", 4)} listeners at a time.
- **Metrics**: precision@{r["page_size"]} of a page = held-out artists on it / {r["page_size"]};
  recall@{r["final_size"]} = held-out artists in the final list not shown before / min({r["final_size"]},
  held-out artists not shown yet) (listeners with none left are not counted); coverage = distinct
  episodes on all pages of all listeners / catalogue size. The targets are judged on mean
  precision@{r["page_size"]} over pages 2-{r["pages"]}, i.e. after feedback could act.
- **Baselines** (`bench/real_baselines.py`), offline on the same split and the same pages and
  feedback rule (hits join the positives, misses the negatives; nothing is shown twice): random;
  popularity (background listeners per artist); item-kNN (cosine between artists' binary
  background listener sets, top 100 neighbours per artist, score = sum of similarities to the
  positives); content (cosine to the mean of the positives' vectors, read from the service's
  database). "no feedback" rows rank from the seeds alone.
- **Strong baselines** (`bench/strong_baselines.py`), fed what the service is fed: every
  background listen weighs 1 and each background listener's {r.get("background_likes", 10)} liked
  (most played) artists 1 + {r.get("like_weight", 1.0):g}; the evaluated listener is folded in at
  request time from their positives (seeds 1, hits, which the service gets as likes,
  1 + {r.get("like_weight", 1.0):g}); these classic models ignore the negatives. EASE (Steck 2019,
  closed form, on the {r.get("ease_items", 3000)} artists with the most background listeners; the
  others rank last); RP3beta (Paudel et al. 2017, as in Dacrema et al.'s reference code: transition
  matrices raised to alpha, popularity^beta, top k neighbours); iALS (`implicit` 0.7, conjugate
  gradient; the listener's factors are solved exactly against the fixed artist factors); item-kNN
  with asymmetric cosine and shrinkage (|a & b| / (|a|^alpha |b|^(1-alpha) + shrink), top k).
  Hyper-parameters: a small grid scored on {r.get("validation_users", 150)} background listeners
  held out as validation listeners and replayed offline through the same protocol against models
  trained on the other background listeners (never on the test listeners); the chosen point is
  refitted on the whole background.

## Results

{summary(r)}

![Precision@{r["page_size"]} per page for each method](charts/precision_at_5.png)

### Hyper-parameters chosen on the validation listeners

{tuning_table(r)}

{other_seeds(r)}
## Data licence

The HetRec 2011 Last.fm data set (GroupLens / Last.fm, http://ir.ii.uam.es/hetrec2011) is for
non-commercial research use. It is read from `--data` (default `../shared/data/hetrec2011-lastfm-2k`)
and never copied into this repository; this file and `results.json` hold aggregate figures only.
"""

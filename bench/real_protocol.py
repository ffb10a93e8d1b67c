"""The protocol of the real-data replays in words, for bench/REAL_RESULTS.md: what every data set's
replay does alike, and what the Last.fm and the ratings replays each do their own way."""

from __future__ import annotations

from typing import Any

from bench import lastfm as listening
from bench import ratings as rating_file
from config import Settings
from recommender.model.factors import DIMENSIONS as FACTORS


def shared(r: dict[str, Any]) -> str:
    """What every data set's replay does alike (`r`: any data set's entry, for the run's sizes)."""
    s = Settings()
    return f"""## Protocol shared by every data set

- **Catalogue**: every item is an episode, posted through `POST /api/add_podcasts` and embedded by
  the offline `local` provider (all-MiniLM-L6-v2); what an item's text is depends on the data set.
- **Split**: per split seed (the first, then each other one below), evaluated listeners start from
  a few random items of theirs and the rest is held out; everyone else is the background. What a
  hit is, and what the background sends, depend on the data set (below).
- **Arms**: the catalogue is loaded once; per split seed, its background into a copy of it (runner
  with `COLLAB_REFRESH_SECONDS=0`, waited on until `GET /api/health` says the collaborative model,
  neighbours and factors, has seen every event, and the ranker and the blend's weights were first
  trained, from held-out interactions: `service/bootstrap.py`); three copies of that (`CREATE
  DATABASE ... TEMPLATE`) each get a `local_runner.py` with `AB_SPLIT=loop:100`, the default settings
  otherwise: `with feedback`, `without feedback`, and `with feedback no exploration`
  (`EXPLORATION_SHARE=0`). Each arm trains the ranker and the blend again from its own log as it
  goes.
- **The service** runs with its defaults (`docs/settings.md`). Where they come from: λ and α are
  the best 64-factor point of the iALS grid on Last.fm seed 7's validation listeners (never the test
  listeners); the content and popularity weights are older defaults; the two behaviour weights are
  equal, a neutral prior. The factor model: {FACTORS} factors,
  `FACTOR_REGULARIZATION` {s.factor_regularization:g}, `FACTOR_ALPHA` {s.factor_alpha:g},
  `FACTOR_ITERATIONS` {s.factor_iterations}; the configured blend: `BLEND_COLLABORATIVE`
  {s.blend_collaborative:g}, `BLEND_FACTORS` {s.blend_factors:g}, `BLEND_CONTENT` {s.blend_content:g},
  `BLEND_POPULARITY` {s.blend_popularity:g}; co-engagement: `COLLAB_NEIGHBORS` {s.collab_neighbors},
  `COLLAB_ALPHA` {s.collab_alpha:g}; `EXPLORATION_SHARE` {s.exploration_share:g}.
- **Replay**: each evaluated listener asks for {r["pages"]} pages of {r["page_size"]}
  (`GET /api/recommend_podcasts`), then one list of {r["final_size"]}. In `with feedback`, after each
  page every item gets the data set's feedback, with its `suggestion_id`, as one bulk request
  (`with feedback no exploration` too); `without feedback` posts nothing. {r.get("threads", 4)}
  listeners at a time.
- **Metrics**: precision@{r["page_size"]} of a page = hits on it / {r["page_size"]};
  recall@{r["final_size"]} = hits in the final list not shown before / min({r["final_size"]}, hits not
  shown yet) (listeners with none left are not counted); coverage = distinct episodes on all pages
  of all listeners / catalogue size. The targets are judged on mean precision@{r["page_size"]} over
  pages 2-{r["pages"]}, i.e. after feedback could act, against the best baseline of the same split
  seed: the ratio of the means, and the **paired** comparison: per listener, the service's mean
  precision minus the baseline's, with a bootstrap 95 % interval (10,000 resamples of listeners,
  fixed seed), absolute and relative to the baseline's mean.
- **Baselines** (`bench/real_baselines.py`), offline on the same split and the same pages and
  feedback rule (hits join the positives, misses the negatives; nothing is shown twice): random;
  popularity (background listeners per item); item-kNN (cosine between items' binary background
  listener sets, top 100 neighbours per item, score = sum of similarities to the positives);
  content (cosine to the mean of the positives' vectors, read from the service's database). "no
  feedback" rows rank from the seeds alone.
- **Strong baselines** (`bench/strong_baselines.py`), fed what the service is fed (each data set's
  matrix below); the evaluated listener is folded in at request time from their positives (seeds 1,
  hits, which the service gets as likes, 1 + {r.get("like_weight", 1.0):g}); these classic models
  ignore the negatives. EASE (Steck 2019, closed form, on the {r.get("ease_items", 3000)} items with
  the most background listeners; the others rank last); RP3beta (Paudel et al. 2017, as in Dacrema
  et al.'s reference code: transition matrices raised to alpha, popularity^beta, top k neighbours);
  iALS (`implicit` 0.7, conjugate gradient; the listener's factors are solved exactly against the
  fixed item factors); item-kNN with asymmetric cosine and shrinkage (|a & b| / (|a|^alpha
  |b|^(1-alpha) + shrink), top k). Hyper-parameters: a small grid scored on
  {r.get("validation_users", 150)} background listeners held out as validation listeners and
  replayed offline through the same protocol against models trained on the other background
  listeners (never on the test listeners); the chosen point is refitted on the whole background."""


def lastfm(r: dict[str, Any]) -> str:
    """What the Last.fm replay's catalogue, split and feedback are."""
    liked = r.get("liked", f"their {listening.LIKED} most played artists")
    return f"""- **Catalogue**: each of the {r["catalogue_size"]} artists is an episode (title: the artist's
  name; transcript: their {listening.TAGS_PER_ARTIST} most used tags).
- **Split** (`bench/datasets.py`): {r["evaluated_users"]} evaluated listeners with at least 20
  artists start from {r["seeds_per_user"]} random artists of theirs (sent as listens with
  `update_user_history`); the rest of their artists are held out, and every one of them is a hit.
  The other {r["background_users"]} listeners are the background: all their artists as listens, and
  a `like` of {liked} through the bulk `POST /api/feedback`.
- **Feedback** after each page: `like` (held out) or `skip` (not).
- **Strong baselines' matrix**: a listen weighs 1, a liked artist ({liked}) 1 + {r.get("like_weight", 1.0):g}.
- **Times**: `user_artists.dat` has play counts and no times (only the tag assignments are dated),
  so the replay sends no `occurred_at`: every event happened when it was imported, and the split
  is at random per listener, not in time. A data set with times imports them through
  `cli.py import-events` (an `occurred_at` or Unix `timestamp` column).
- **Data licence**: the HetRec 2011 Last.fm data set (GroupLens / Last.fm,
  http://ir.ii.uam.es/hetrec2011) is for non-commercial research use. It is read from `--data`
  (default `../shared/data/hetrec2011-lastfm-2k`) and never copied into this repository; this file
  and `results.json` hold aggregate figures only."""


def ratings(r: dict[str, Any]) -> str:
    """What a ratings replay's catalogue, split and feedback are (`bench/ratings.py`)."""
    low, high = rating_file.STARS
    filmtrust = r["data_set_name"] == "filmtrust"
    licence = (
        'FilmTrust (Guo, Zhang and Yorke-Smith, "A Novel Bayesian Similarity Measure for'
        ' Recommender Systems", IJCAI 2013) is for research use: cite the paper. It is read from'
        " `--data` (default `../shared/data/filmtrust/ratings.txt`)"
        if filmtrust
        else "The ratings file's own licence applies. It is read from `--data`"
    )
    every = r["catalogue_size"] <= r.get("ease_items", 3000)
    ease = "EASE covers every item" if every else "EASE covers the items with the most background listeners"
    return f"""- **Catalogue**: each of the {r["catalogue_size"]} rated items is an episode with a neutral
  title (`Film 123`) and a transcript that says nothing about it: content cannot help, the
  collaborative side must. Items and users are ids only; the data has no times, so no event has
  an `occurred_at`.
- **Liked**: {r.get("liked")} (from min + {rating_file.LIKED_FROM:g} (max - min) of the data's scale); a
  rating r reaches the service as `rate` {low:g} + {high - low:g} (r - min) / (max - min).
- **Split** (`bench/datasets.py`): {r["evaluated_users"]} evaluated listeners among those with at
  least {rating_file.MIN_RATED} ratings and {rating_file.MIN_LIKED} liked items start from
  {r["seeds_per_user"]} random rated items of theirs (listens with `update_user_history`, then
  their ratings as `rate` events); the rest is held out, and only the held-out **liked** items are
  hits. The other {r["background_users"]} listeners are the background: all their rated items as
  listens, then each rating as a `rate` event (bulk `POST /api/feedback`, with `event_id`s).
- **Feedback** after each page: `like` (a held-out liked item), `dislike` (held out, rated lower),
  `skip` (not rated), each with its `suggestion_id`, as one bulk request.
- **Strong baselines' matrix**: a rated item weighs 1, a liked one 1 + {r.get("like_weight", 1.0):g};
  the evaluated listener is folded in from seeds and hits. {ease}.
- **Data licence**: {licence} and never copied into this repository; this file and `results.json`
  hold aggregate figures only."""

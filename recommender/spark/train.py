"""The collaborative model trained on Apache Spark: MLlib's ALS factors and the co-engagement
neighbours, written through the training tables' contract (docs/loop.md), so the service serves
them as it serves its own worker's.

    spark-submit --jars postgresql.jar --driver-class-path postgresql.jar train.py \\
        --jdbc-url 'jdbc:postgresql://host:5432/podcasts?sslmode=require'

One file, pyspark and the standard library only (nothing of the service), so it can be uploaded
alone to Azure Databricks or Synapse (docs/deployment.md). The database user and password come
from `--user`/`--password` or, better (a command line is visible to other processes), from
PGUSER/PGPASSWORD; neither is ever printed.

What it reads: the rows of `engagements` (sql/017_engagements.sql, one per listener and episode,
their netted engagement) of episodes not deleted, each listener's most recent
`--max-items-per-listener`, without the pairs the service holds out for its ranker's bootstrap
(`HELD_OUT`, the same SQL as `store.collaborative.HELD_OUT`: a test holds them equal). It learns
from the judgement signal, the net clipped to [-1, 1]; choosing the consumption signal and EASE
stay with the service's own worker (`podcast_engagement`'s EASE columns are left empty, so
BLEND_EASE then weighs nothing).

The co-engagement neighbours are `model.collaborative.build`'s definition, as joins and a window:
for episode i its `--neighbors` episodes j by c_ij / (n_i^a * n_j^(1-a)), c_ij the listeners who
enjoyed (positive net) both, n_i those who enjoyed i; popularity the sum of net * 0.5 ** (age /
half-life) over every row of the episode; listeners those with positive engagement.

The factors: the service folds a listener in (`model.factors.fold_in`) as the exact least squares of
iALS against the stored Y, with confidence c = alpha * |w| for each engaged episode (1 for the rest)
and a plain lambda:  (Y'Y + lambda I + sum (c - 1) y y') x = sum_(w > 0) c y.  MLlib's implicit ALS
solves  (Y'Y + lambda_m n_u I + sum alpha_m |r| y y') x = sum_(r > 0) (1 + alpha_m |r|) y,  n_u the
listener's positive ratings (ALS-WR). So the job trains MLlib on r = sign(w) * max(alpha |w| - 1,
MIN_EXCESS) with alpha_m = 1: its confidence 1 + |r| is then exactly the service's alpha |w| (wherever
alpha |w| >= 1: a like, a listen, a dislike, a skip at the default alpha 5; below, 1 instead), and the
`factor_alpha` written is `--alpha` itself. The lambda cannot match for every listener (MLlib scales
it by n_u); the job trains with lambda_m = lambda / (mean n_u), so a listener with the mean number of
positives is folded in exactly as MLlib solved them, and writes `factor_regularization` = lambda.
Listeners with no positive net and episodes nobody enjoyed are left out of the ALS input (MLlib would
solve them unregularized: singular when there are fewer than 64 of the others); such episodes get no
factors, which the contract allows. Y'Y is computed from the float32 factors as stored, in float64.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

DIMENSIONS = 64  # the contract's vector(64)
MIN_EXCESS = 1e-6  # the least confidence over 1 MLlib is given, which keeps r > 0 a positive
FACTORS_STAGING = "trained_factors"  # sql/019_training_import.sql
ENGAGEMENT_STAGING = "trained_engagement"

# The service's held-out pairs (`model.ranker.held_out`, `store.collaborative.HELD_OUT`), in SQL.
BOOTSTRAP_LISTENER_SHARE = 0.1
HIDDEN_SHARE = 0.2


def unit_hash(text: str) -> str:
    """SQL for a stable number in [0, 1) of the text expression `text` (`model.ranker.unit_hash`)."""
    return f"(('x' || substr(md5({text}), 1, 8))::bit(32)::bigint / 4294967296.0)"


BOOTSTRAP_LISTENER = f"{unit_hash('user_id')} < {BOOTSTRAP_LISTENER_SHARE}"
PAIR = "user_id || ':' || podcast_id"
HELD_OUT = f"({BOOTSTRAP_LISTENER} AND {unit_hash(PAIR)} < {HIDDEN_SHARE})"

ENGAGEMENTS = f"""
    SELECT (dense_rank() OVER (ORDER BY user_id) - 1)::int AS listener, podcast_id::int AS podcast_id,
           greatest(-1, least(1, net))::float8 AS net, age_days::float8 AS age_days
    FROM (
        SELECT e.user_id, e.podcast_id, e.net, e.consumed,
               extract(epoch FROM now() - e.last_at) / 86400 AS age_days,
               row_number() OVER (PARTITION BY e.user_id ORDER BY e.last_at DESC) AS recency
        FROM engagements e JOIN podcasts p ON p.id = e.podcast_id AND p.deleted_at IS NULL
    ) net
    WHERE (net <> 0 OR consumed) AND recency <= {{max_items}} AND NOT {HELD_OUT}
"""
# How far the rows reach: events after these marks are the service's next refresh's. Read before
# the rows, so an event stored in between counts as new (one early refresh), never as seen.
MARKS = """
    SELECT (SELECT coalesce(max(id), 0) FROM feedback_events)::text,
           (SELECT coalesce(max(created_at), '-infinity') FROM user_listens)::text
"""
INSTALL = (
    "SELECT install_trained_model(?::vector, ?::real, ?::real, ?::text, ?::integer, ?::bigint,"
    " ?::timestamptz, ?::real, ?::real)"
)


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """The job's options; the defaults are the service's settings (config.py) of the same meaning."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--jdbc-url", required=True, help="jdbc:postgresql://host:5432/db?sslmode=require")
    add("--user", default=os.environ.get("PGUSER"), help="default: $PGUSER")
    add("--password", default=os.environ.get("PGPASSWORD"), help="default: $PGPASSWORD (prefer it)")
    add("--neighbors", type=int, default=100, help="COLLAB_NEIGHBORS")
    add("--collab-alpha", type=float, default=0.7, help="COLLAB_ALPHA")
    add("--max-items-per-listener", type=int, default=500, help="COLLAB_MAX_ITEMS_PER_LISTENER")
    add("--half-life-days", type=float, default=14.0, help="POPULARITY_HALF_LIFE_DAYS")
    add("--min-listeners", type=int, default=100, help="FACTOR_MIN_LISTENERS")
    add("--regularization", type=float, default=1.0, help="FACTOR_REGULARIZATION (the fold-in's)")
    add("--alpha", type=float, default=5.0, help="FACTOR_ALPHA (the fold-in's)")
    add("--iterations", type=int, default=15, help="FACTOR_ITERATIONS")
    add("--write-connections", type=int, default=4, help="JDBC connections writing the staging tables")
    return parser.parse_args(argv)


class Jdbc:
    """The database, over JDBC: DataFrames read and written by Spark, and single statements run
    from the driver (the Postgres driver must be on its class path: `--driver-class-path`)."""

    def __init__(self, spark: SparkSession, args: argparse.Namespace) -> None:
        self.spark, self.url = spark, args.jdbc_url
        self.credentials = {k: v for k, v in (("user", args.user), ("password", args.password)) if v}
        self.options = {"url": self.url, "driver": "org.postgresql.Driver", **self.credentials}
        self.write_connections = args.write_connections

    def read(self, query: str) -> DataFrame:
        """The rows of `query`, run by Postgres (pushed down), on one connection."""
        return self.spark.read.format("jdbc").options(**self.options, query=query, fetchsize="10000").load()

    def write(self, frame: DataFrame, table: str) -> None:
        """Replace the rows of `table` (created by the migration: truncated, never dropped)."""
        frame.write.format("jdbc").options(
            **self.options, dbtable=table, truncate="true", batchsize="5000",
            numPartitions=str(self.write_connections),
        ).mode("overwrite").save()  # fmt: skip

    def call(self, sql: str, params: list[str | None]) -> list[str | None]:
        """One statement in its own transaction, its text parameters bound; its first row as text."""
        jvm = self.spark.sparkContext._jvm
        properties = jvm.java.util.Properties()
        for key, value in self.credentials.items():
            properties.setProperty(key, value)
        conn = jvm.java.sql.DriverManager.getConnection(self.url, properties)
        try:
            statement = conn.prepareStatement(sql)
            for index, value in enumerate(params, 1):
                if value is None:
                    statement.setNull(index, jvm.java.sql.Types.VARCHAR)
                else:
                    statement.setString(index, value)
            result = statement.executeQuery()
            result.next()
            return [result.getString(i + 1) for i in range(result.getMetaData().getColumnCount())]
        finally:
            conn.close()


@dataclass(frozen=True)
class Factors:
    """What ALS trained: each episode's factors as pgvector text, Y'Y as text, and the listeners."""

    rows: DataFrame  # podcast_id, factors
    gram: str
    listeners: int


def train_factors(rows: DataFrame, args: argparse.Namespace) -> Factors | None:
    """MLlib's implicit ALS on the net engagement, scaled so the service's fold-in is its own least
    squares (the module's docstring); None with fewer than `--min-listeners` who enjoyed anything."""
    from pyspark.ml.recommendation import ALS
    from pyspark.mllib.linalg import Vectors
    from pyspark.mllib.linalg.distributed import RowMatrix
    from pyspark.sql import functions as F

    signed = rows.where(F.col("net") != 0)
    positive = signed.where(F.col("net") > 0)
    listeners = positive.select("listener").distinct().persist()
    count = listeners.count()
    if count < max(args.min_listeners, 1):
        listeners.unpersist()
        return None
    enjoyed = positive.select("podcast_id").distinct()
    confidence = F.greatest(F.lit(args.alpha) * F.abs("net") - 1.0, F.lit(MIN_EXCESS))
    ratings = signed.join(listeners, "listener").join(F.broadcast(enjoyed), "podcast_id")
    ratings = ratings.select("listener", "podcast_id", (F.signum("net") * confidence).alias("rating"))
    per_listener = positive.count() / count
    als = ALS(
        rank=DIMENSIONS,
        maxIter=args.iterations,
        regParam=args.regularization / per_listener,
        implicitPrefs=True,
        alpha=1.0,
        nonnegative=False,
        userCol="listener",
        itemCol="podcast_id",
        ratingCol="rating",
        seed=0,
    )
    y = als.fit(ratings).itemFactors.persist()
    listeners.unpersist()
    gram = RowMatrix(y.rdd.map(lambda row: Vectors.dense(row.features))).computeGramianMatrix()
    text = _vector(gram.toArray().ravel().tolist())
    factors = y.select(
        F.col("id").cast("bigint").alias("podcast_id"),
        F.concat(F.lit("["), _joined("features"), F.lit("]")).alias("factors"),
    )
    return Factors(factors, text, count)


def engagement(rows: DataFrame, args: argparse.Namespace) -> tuple[DataFrame, int]:
    """`podcast_engagement`'s rows (arrays as Postgres text) and the listeners who enjoyed anything."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    positive = rows.where(F.col("net") > 0).select("listener", "podcast_id").persist()
    enjoyed = positive.groupBy("podcast_id").agg(F.count("*").cast("int").alias("listeners")).persist()
    mine, theirs = positive.alias("mine"), positive.alias("theirs")
    together = (
        mine.join(theirs, "listener")
        .where(F.col("mine.podcast_id") != F.col("theirs.podcast_id"))
        .groupBy(F.col("mine.podcast_id").alias("i"), F.col("theirs.podcast_id").alias("j"))
        .agg(F.count("*").alias("together"))
    )
    n_i = enjoyed.select(F.col("podcast_id").alias("i"), F.col("listeners").alias("n_i"))
    n_j = enjoyed.select(F.col("podcast_id").alias("j"), F.col("listeners").alias("n_j"))
    a = args.collab_alpha
    score = F.col("together") / (F.pow("n_i", a) * F.pow("n_j", 1.0 - a))
    scored = together.join(F.broadcast(n_i), "i").join(F.broadcast(n_j), "j").withColumn("score", score)
    rank = F.row_number().over(Window.partitionBy("i").orderBy(F.desc("score"), "j"))
    best = scored.withColumn("rank", rank).where(F.col("rank") <= args.neighbors)
    lists = best.groupBy(F.col("i").alias("podcast_id")).agg(
        F.sort_array(F.collect_list(F.struct("rank", "j", "score"))).alias("best")
    )
    neighbours = lists.select(
        "podcast_id",
        F.concat(F.lit("{"), F.array_join(F.col("best.j").cast("array<string>"), ","), F.lit("}")).alias(
            "neighbor_ids"
        ),
        F.concat(F.lit("{"), _joined("best.score"), F.lit("}")).alias("neighbor_scores"),
    )
    decay = F.pow(F.lit(0.5), F.col("age_days") / args.half_life_days)
    popularity = rows.groupBy("podcast_id").agg(F.sum(F.col("net") * decay).cast("float").alias("popularity"))
    frame = (
        popularity.join(enjoyed, "podcast_id", "left")
        .join(neighbours, "podcast_id", "left")
        .select(
            F.col("podcast_id").cast("bigint"),
            "popularity",
            F.coalesce("listeners", F.lit(0)).alias("listeners"),
            F.coalesce("neighbor_ids", F.lit("{}")).alias("neighbor_ids"),
            F.coalesce("neighbor_scores", F.lit("{}")).alias("neighbor_scores"),
        )
    )
    return frame, positive.select("listener").distinct().count()


def _joined(column: str) -> Column:
    """The float array `column` as comma-separated text (Java's shortest exact float digits)."""
    from pyspark.sql import functions as F

    return F.array_join(F.transform(column, lambda x: x.cast("float").cast("string")), ",")


def _vector(values: list[float]) -> str:
    return "[" + ",".join(map(repr, values)) + "]"


def run(spark: SparkSession, args: argparse.Namespace) -> dict[str, Any]:
    """Read, train, write the staging tables, install them in one transaction; what it did."""
    jdbc = Jdbc(spark, args)
    started = time.perf_counter()
    event_mark, listen_mark = jdbc.call(MARKS, [])
    rows = jdbc.read(ENGAGEMENTS.format(max_items=int(args.max_items_per_listener))).persist()
    interactions = rows.count()  # the one read: everything after works on these rows
    read = time.perf_counter()
    factors = train_factors(rows, args)
    if factors is not None:
        jdbc.write(factors.rows, FACTORS_STAGING)
    factors_done = time.perf_counter()
    frame, listeners = engagement(rows, args)
    jdbc.write(frame, ENGAGEMENT_STAGING)
    written = time.perf_counter()
    trained_by = f"spark {spark.version} mllib als"
    params = [
        None if factors is None else factors.gram,
        str(args.regularization),
        str(args.alpha),
        trained_by,
        str(listeners),
        event_mark,
        listen_mark,
        str(factors_done - read),
        str(read - started + written - factors_done),
    ]
    [factor_episodes] = jdbc.call(INSTALL, params)
    done = time.perf_counter()
    return {
        "interactions": interactions,
        "listeners": listeners,
        "factor_episodes": int(factor_episodes or 0),
        "trained_by": trained_by,
        "read_seconds": round(read - started, 2),
        "factors_seconds": round(factors_done - read, 2),
        "neighbours_seconds": round(written - factors_done, 2),
        "install_seconds": round(done - written, 2),
        "total_seconds": round(done - started, 2),
    }


def main(argv: list[str] | None = None) -> None:
    args = arguments(argv)
    from pyspark.sql import SparkSession

    # Not stopped at the end: on Databricks the session is the cluster's, and spark-submit stops its own.
    spark = SparkSession.builder.appName("podcast-recommender-training").getOrCreate()
    print(json.dumps(run(spark, args)), flush=True)


if __name__ == "__main__":
    main()

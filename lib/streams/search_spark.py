"""The stream search on Spark: thin adapters around :func:`gaialake.streams.search.score_group`.

- :func:`search_rows`: ``patch_stars`` x signal regions, the rows of every (patch, pm axis,
  signal region) group, inside the proper-motion range of the search;
- :func:`score_groups_in_tasks`: one task per group and retraining (``groupBy(...)
  .applyInPandas`` of :func:`group_task`; ``streams.retrainings`` K copies of every group,
  retraining k seeded by :func:`group_seed`), trained on ``cuda`` when Spark gave the task a
  GPU, else on CPU with torch threads = task cpus. Tasks return score rows and one model row
  each (weights, metrics, loss curves, or the reason the group was skipped), staged as Parquet
  in :data:`TASK_SCHEMA`.
  The groups are repartitioned by their key and adaptive coalescing is set by
  ``streams.adaptive_coalesce`` for the stage (off: groups spread over executors instead of
  running in one Python worker);
- :func:`big_groups`: the groups too large for a task, which
  :func:`gaialake.streams.streaming.stream_group` trains instead;
- :func:`collect_models`: the model rows, the only rows brought to the driver;
- :func:`stream_aucs`: member-vs-background ROC AUC per injected stream (``truth_streams``);
- :func:`score_frame`: a registered search model scoring ``patch_stars`` rows on executors.
"""
from __future__ import annotations

import pickle
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pandas as pd

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists
from gaialake.streams.regions import SignalRegion, signal_regions_from_conf
from gaialake.streams.search import GroupResult, SearchSettings, score_group

__all__ = ["GROUP_KEY", "TASK_KEY", "TASK_SCHEMA", "STAR_COLUMNS", "search_rows", "big_groups",
           "group_seed", "group_task", "group_payload", "spread_tasks", "score_groups_in_tasks",
           "adaptive_coalescing", "task_rows", "model_row", "collect_models", "stream_aucs",
           "score_frame"]

#: The columns that identify a group.
GROUP_KEY = ["patch_id", "pm_axis", "sr_index"]
#: The columns that identify a task: a group and its retraining (0 .. streams.retrainings - 1).
TASK_KEY = GROUP_KEY + ["retraining"]
#: What group tasks return (staged as Parquet): ``kind`` "score" rows (method, source_id,
#: score) and one "model" row per group (``payload``: the pickled :func:`group_payload`).
TASK_SCHEMA = ("kind string, patch_id long, pm_axis string, sr_index int, retraining int, "
               "sr_lo double, sr_hi double, method string, source_id long, score double, "
               "payload binary")
TASK_COLUMNS = [c.split()[0] for c in TASK_SCHEMA.split(", ")]
#: The ``patch_stars`` columns a group is trained on.
STAR_COLUMNS = ["patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp",
                "fiducial"]
_ADAPTIVE_COALESCE = "spark.sql.adaptive.coalescePartitions.enabled"


def search_rows(spark, conf: Conf, settings: SearchSettings):
    """(rows, number of signal regions): ``patch_stars`` crossed with every signal region
    (``pm_axis``, ``sr_index``, ``sr_lo``, ``sr_hi``; mas/yr), keeping the rows whose proper
    motion on the region's axis is inside ``settings.row_range()`` (``streams.pm_range_masyr``,
    widened by the sidebands when CWoLa is run)."""
    from pyspark.sql import functions as F

    regions = signal_regions_from_conf(conf)
    lo, hi = settings.row_range()
    frame = spark.createDataFrame(pd.DataFrame(
        [(s.axis, s.index, s.lo, s.hi) for s in regions],
        columns=["pm_axis", "sr_index", "sr_lo", "sr_hi"]))
    stars = read_table(spark, conf, tables.PATCH_STARS).select(*STAR_COLUMNS)
    m = F.when(F.col("pm_axis") == "pm_phi", F.col("pm_phi")).otherwise(F.col("pm_lam"))
    return stars.crossJoin(F.broadcast(frame)).where((m >= lo) & (m < hi)), len(regions)


def big_groups(rows, max_group_rows: int) -> pd.DataFrame:
    """(patch_id, pm_axis, sr_index, sr_lo, sr_hi, count) of the groups of more than
    ``max_group_rows`` rows (none when it is 0)."""
    cols = GROUP_KEY + ["sr_lo", "sr_hi", "count"]
    if max_group_rows <= 0:
        return pd.DataFrame(columns=cols)
    sizes = (rows.groupBy(*GROUP_KEY, "sr_lo", "sr_hi").count()
             .where(f"count > {int(max_group_rows)}").toPandas())
    return sizes[cols].sort_values(GROUP_KEY).reset_index(drop=True)


def group_payload(result: GroupResult, n_stars: int) -> dict[str, Any]:
    """The model row's content of a scored group: weights, feature map, metrics, loss curves,
    the reason it was skipped ("" when trained) and its number of stars."""
    return {"weights": result.weights, "feature_map": result.feature_map,
            "metrics": result.metrics, "curves": result.curves, "skipped": result.skipped,
            "n_stars": n_stars}


def group_seed(conf: Conf, patch_id: int, axis: str, sr_index: int, retraining: int = 0) -> int:
    """The seed of one group's training: ``conf.seed_for("anomaly", patch_id, axis, sr_index)``
    for retraining 0 (the seed of a search without retrainings), ``conf.seed_for("anomaly",
    patch_id, axis, sr_index, "retraining", k)`` for retraining k >= 1; the same in both paths."""
    parts = ("anomaly", int(patch_id), str(axis), int(sr_index))
    return conf.seed_for(*parts) if retraining == 0 else conf.seed_for(*parts, "retraining",
                                                                         int(retraining))


def group_task(conf: Conf, settings: SearchSettings
               ) -> Callable[[tuple, pd.DataFrame], pd.DataFrame]:
    """The function each task applies to one group's rows of one retraining (pandas in, rows of
    :data:`TASK_SCHEMA` out; key: :data:`TASK_KEY`), seeded by :func:`group_seed`."""

    def task(key, pdf: pd.DataFrame) -> pd.DataFrame:
        from gaialake.io.feeding import task_device

        patch_id, axis, sr_index, k = int(key[0]), str(key[1]), int(key[2]), int(key[3])
        sr = SignalRegion(axis, sr_index, float(pdf["sr_lo"].iloc[0]), float(pdf["sr_hi"].iloc[0]))
        stars = pdf.sort_values("source_id", kind="stable").reset_index(drop=True)
        t0 = time.perf_counter()
        seed = group_seed(conf, patch_id, axis, sr_index, k)
        result = score_group(stars, sr, settings, seed, device=task_device())
        result.metrics["group_seconds"] = time.perf_counter() - t0
        head = {"patch_id": patch_id, "pm_axis": axis, "sr_index": sr_index, "retraining": k,
                "sr_lo": sr.lo, "sr_hi": sr.hi}
        scores = result.scores.assign(kind="score", payload=None, **head)
        model = pd.DataFrame([{**head, "kind": "model", "method": None, "source_id": None,
                               "score": None,
                               "payload": pickle.dumps(group_payload(result, len(stars)))}])
        return pd.concat([scores, model], ignore_index=True)[TASK_COLUMNS]

    return task


@contextmanager
def adaptive_coalescing(spark, enabled: bool) -> Iterator[None]:
    """Spark's adaptive partition coalescing set to ``enabled`` inside the block, then restored
    (off keeps one task per group instead of many groups in one Python worker)."""
    before = spark.conf.get(_ADAPTIVE_COALESCE, "true")
    spark.conf.set(_ADAPTIVE_COALESCE, str(bool(enabled)).lower())
    try:
        yield
    finally:
        spark.conf.set(_ADAPTIVE_COALESCE, before)


def spread_tasks(rows, n_partitions: int):
    """``rows`` in ``n_partitions`` partitions by range of :data:`TASK_KEY`: every task's rows
    in one partition and about as many rows in each (hashing the key can put two tasks in one
    partition while another stays empty, leaving a core idle)."""
    return rows.repartitionByRange(n_partitions, *TASK_KEY)


def score_groups_in_tasks(rows, conf: Conf, settings: SearchSettings, out_path: str) -> None:
    """Train and score every group of ``rows`` ``settings.retrainings`` times, each retraining
    in its own task (:func:`group_task`); the rows (:data:`TASK_SCHEMA`) overwrite the Parquet at
    ``out_path``. At most ``4 * spark.shuffle_partitions`` partitions (:func:`spread_tasks`)."""
    from pyspark.sql import functions as F

    spark = rows.sparkSession
    n_partitions = max(1, int(conf.get("spark.shuffle_partitions")) * 4)
    copies = spark.createDataFrame(pd.DataFrame({"retraining": range(settings.retrainings)}),
                                   "retraining int")
    with adaptive_coalescing(spark, bool(conf.get("streams.adaptive_coalesce"))):
        out = (spread_tasks(rows.crossJoin(F.broadcast(copies)), n_partitions)
               .groupBy(*TASK_KEY).applyInPandas(group_task(conf, settings), TASK_SCHEMA))
        out.write.mode("overwrite").parquet(out_path)


def _group_literals(group: dict) -> list:
    from pyspark.sql import functions as F

    return [F.lit(int(group["patch_id"])).cast("long").alias("patch_id"),
            F.lit(str(group["pm_axis"])).alias("pm_axis"),
            F.lit(int(group["sr_index"])).cast("int").alias("sr_index"),
            F.lit(int(group.get("retraining", 0))).cast("int").alias("retraining"),
            F.lit(float(group["sr_lo"])).cast("double").alias("sr_lo"),
            F.lit(float(group["sr_hi"])).cast("double").alias("sr_hi")]


def task_rows(df, group: dict):
    """Score rows (source_id, method, score) of one group as rows of :data:`TASK_SCHEMA`;
    ``group``: patch_id, pm_axis, sr_index, sr_lo, sr_hi and retraining (absent: 0)."""
    from pyspark.sql import functions as F

    return df.select(F.lit("score").alias("kind"), *_group_literals(group),
                     F.col("method").cast("string"), F.col("source_id").cast("long"),
                     F.col("score").cast("double"), F.lit(None).cast("binary").alias("payload"))


def model_row(spark, group: dict, payload: dict):
    """The one model row of a group (:data:`TASK_SCHEMA`) holding the pickled ``payload``."""
    row = pd.DataFrame([{"kind": "model", "patch_id": int(group["patch_id"]),
                         "pm_axis": str(group["pm_axis"]), "sr_index": int(group["sr_index"]),
                         "retraining": int(group.get("retraining", 0)),
                         "sr_lo": float(group["sr_lo"]), "sr_hi": float(group["sr_hi"]),
                         "method": None, "source_id": None, "score": None,
                         "payload": bytearray(pickle.dumps(payload))}])
    return spark.createDataFrame(row, TASK_SCHEMA)


def collect_models(staged) -> list[dict]:
    """The model rows of every group and retraining (task key, sr_lo, sr_hi and the unpickled
    payload), sorted by task key: the only rows brought to the driver."""
    out = []
    for r in staged.where("kind = 'model'").select(*TASK_KEY, "sr_lo", "sr_hi", "payload") \
            .toLocalIterator():
        out.append({"patch_id": int(r["patch_id"]), "pm_axis": r["pm_axis"],
                    "sr_index": int(r["sr_index"]), "retraining": int(r["retraining"]),
                    "sr_lo": r["sr_lo"], "sr_hi": r["sr_hi"], **pickle.loads(r["payload"])})
    return sorted(out, key=lambda g: (g["patch_id"], g["pm_axis"], g["sr_index"],
                                      g["retraining"]))


def stream_aucs(spark, conf: Conf) -> dict[str, float]:
    """Member-vs-background ROC AUC per injected stream and method (``"<stream>.<method>"``),
    in the group (patch, axis, SR) holding most (at least 5) of the stream's scored members,
    retraining 0's scores; {} when the sky has no ``truth_streams``."""
    from pyspark.sql import functions as F
    from sklearn.metrics import roc_auc_score

    if not table_exists(spark, conf.table_path(tables.TRUTH_STREAMS.name)):
        return {}
    truth = read_table(spark, conf, tables.TRUTH_STREAMS).select("source_id", "stream")
    scores = read_table(spark, conf, tables.ANOMALY_SCORES).where("retraining = 0")
    counts = (scores.join(truth, "source_id")
              .groupBy("stream", "method", "patch_id", "pm_axis", "sr_lo").count().collect())
    top: dict[tuple, tuple] = {}
    for r in counts:
        k = (r["stream"], r["method"])
        if k not in top or r["count"] > top[k][1]:
            top[k] = ((r["patch_id"], r["pm_axis"], r["sr_lo"]), r["count"])
    chosen = pd.DataFrame([(stream, method, *grp) for (stream, method), (grp, n) in top.items()
                           if n >= 5],
                          columns=["stream", "method", "patch_id", "pm_axis", "sr_lo"])
    if chosen.empty:
        return {}
    on = ["method", "patch_id", "pm_axis", "sr_lo"]
    rows = (scores.join(F.broadcast(spark.createDataFrame(chosen)), on)
            .join(truth.withColumnRenamed("stream", "member_of"), "source_id", "left")
            .select("stream", "method", "score",
                    (F.col("member_of") == F.col("stream")).alias("member"))
            .toPandas())
    rows["member"] = rows["member"].fillna(False).astype(bool)
    out = {}
    for (stream, method), d in rows.groupby(["stream", "method"]):
        if d["member"].any() and not d["member"].all():
            out[f"{stream}.{method}"] = float(roc_auc_score(d["member"], d["score"]))
    return out


# -- registered-model scoring on executors -------------------------------------------------

#: Score rows of a registered search model (the ``anomaly_scores`` columns but run_id).
SCORE_SCHEMA = tables.ANOMALY_SCORES.schema_without("run_id")
_SCORED_STAR_COLUMNS = ["patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp"]
_MODULES: dict[str, Any] = {}


def _module(key: str, payload):
    """The SearchModel of a broadcast (config, state bytes), built once per Python worker."""
    if key not in _MODULES:
        from gaialake.io.tracking import state_from_bytes
        from gaialake.streams.scorer import build_search_model

        config, state = payload.value
        module = build_search_model(config)
        module.load_state_dict(state_from_bytes(state))
        _MODULES.clear()
        _MODULES[key] = module.eval()
    return _MODULES[key]


def score_frame(stars, config: dict, state: dict, key: str):
    """``stars`` (a Spark DataFrame of patch_stars rows) scored on executors with the
    :class:`gaialake.streams.scorer.SearchModel` of ``config`` and ``state``: (DataFrame of
    :data:`SCORE_SCHEMA` rows, the broadcast to unpersist after use). ``key`` names the model
    version (the cache key of the rebuilt module in each Python worker)."""
    from gaialake.io.tracking import state_to_bytes
    from gaialake.streams.scorer import score_stars

    payload = stars.sparkSession.sparkContext.broadcast((config, state_to_bytes(state)))

    def fn(batches):
        from gaialake.io.feeding import task_device

        module = _module(key, payload)
        module.to(task_device())
        for pdf in batches:
            yield score_stars(module, pdf)

    return stars.select(*_SCORED_STAR_COLUMNS).mapInPandas(fn, SCORE_SCHEMA), payload

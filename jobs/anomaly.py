"""``gaialake anomaly``: ``patch_stars`` -> ``anomaly_scores``, the stream search's per-star scores.

One Spark task per (patch, pm axis, signal region) group (``groupBy(...).applyInPandas``):
the task trains the control-region flow and scores the group's fiducial SR stars with every
method of ``streams.methods`` (:func:`gaialake.models.search.score_group`), on ``cuda`` when
Spark gave it a GPU, else on CPU with torch threads = task cpus. Tasks return score rows and
one model row (weights, metrics, loss curves, or the reason the group was skipped); nothing
else comes back to the driver. The groups are repartitioned by their key and adaptive
coalescing is off for the stage (``streams.adaptive_coalesce``), so groups spread over
executors instead of running in one Python worker.

The driver then does every MLflow write: a parent run for the search, a child run per patch
(params, metrics, loss curves, weights as artifacts), and registers ``gaialake-anode`` /
``gaialake-cathode`` (:mod:`gaialake.models.scorer`) with alias ``champion``. When the sky has
truth (``truth_streams``), the member-vs-background ROC AUC per injected stream is logged.
"""
from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np
import pandas as pd

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.delta import read_table, table_exists, write_table
from gaialake.jobs.patches import job_run_id
from gaialake.log import get_logger, stage
from gaialake.models.search import SearchSettings, score_group
from gaialake.regions import SignalRegion, signal_regions_from_conf
from gaialake.spark import get_spark

__all__ = ["run", "group_task", "stream_aucs", "TASK_SCHEMA", "SCORE_COLUMNS"]

log = get_logger("anomaly")

TABLE = "anomaly_scores"
KEY = ["patch_id", "pm_axis", "sr_index"]
TASK_SCHEMA = ("kind string, patch_id long, pm_axis string, sr_index int, sr_lo double, "
               "sr_hi double, method string, source_id long, score double, payload binary")
SCORE_COLUMNS = ["patch_id", "source_id", "pm_axis", "sr_lo", "sr_hi", "method", "score"]
STAR_COLUMNS = ["patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp",
                "fiducial"]


def group_task(conf: Conf, settings: SearchSettings):
    """The function each task applies to one group's rows (pandas in, pandas rows out)."""

    def task(key, pdf: pd.DataFrame) -> pd.DataFrame:
        from gaialake.models.flows import task_device

        patch_id, axis, sr_index = int(key[0]), str(key[1]), int(key[2])
        sr = SignalRegion(axis, sr_index, float(pdf["sr_lo"].iloc[0]), float(pdf["sr_hi"].iloc[0]))
        stars = pdf.sort_values("source_id", kind="stable").reset_index(drop=True)
        t0 = time.perf_counter()
        result = score_group(stars, sr, settings, conf.seed_for("anomaly", patch_id, axis, sr_index),
                             device=task_device())
        result.metrics["group_seconds"] = time.perf_counter() - t0
        payload = pickle.dumps({"weights": result.weights, "feature_map": result.feature_map,
                                "metrics": result.metrics, "curves": result.curves,
                                "skipped": result.skipped, "n_stars": len(stars)})
        head = {"patch_id": patch_id, "pm_axis": axis, "sr_index": sr_index, "sr_lo": sr.lo,
                "sr_hi": sr.hi}
        scores = result.scores.assign(kind="score", payload=None, **head)
        model = pd.DataFrame([{**head, "kind": "model", "method": None, "source_id": None,
                               "score": None, "payload": payload}])
        cols = [c.split()[0] for c in TASK_SCHEMA.split(", ")]
        return pd.concat([scores, model], ignore_index=True)[cols]

    return task


def _groups_frame(spark, conf: Conf):
    from pyspark.sql import functions as F

    srs = signal_regions_from_conf(conf)
    lo, hi = (float(v) for v in conf.get("streams.pm_range_masyr"))
    regions = spark.createDataFrame(pd.DataFrame(
        [(s.axis, s.index, s.lo, s.hi) for s in srs],
        columns=["pm_axis", "sr_index", "sr_lo", "sr_hi"]))
    stars = read_table(spark, conf, "patch_stars").select(*STAR_COLUMNS)
    m = F.when(F.col("pm_axis") == "pm_phi", F.col("pm_phi")).otherwise(F.col("pm_lam"))
    return (stars.crossJoin(F.broadcast(regions)).where((m >= lo) & (m < hi))), len(srs)


def run(conf: Conf) -> dict:
    spark = get_spark(conf)
    settings = SearchSettings.from_conf(conf)
    rows, n_regions = _groups_frame(spark, conf)
    n_groups_max = max(1, int(conf.get("spark.shuffle_partitions")) * 4)
    staging = conf.table_path("_staging_anomaly")
    key = "spark.sql.adaptive.coalescePartitions.enabled"
    before = spark.conf.get(key, "true")
    with job_run_id(conf, "anomaly", methods=",".join(settings.methods)) as run_id:
        with stage(log, "train and score groups on executors") as st:
            spark.conf.set(key, str(bool(conf.get("streams.adaptive_coalesce"))).lower())
            try:
                out = (rows.repartition(n_groups_max, *KEY).groupBy(*KEY)
                       .applyInPandas(group_task(conf, settings), TASK_SCHEMA))
                out.write.mode("overwrite").parquet(staging)
            finally:
                spark.conf.set(key, before)
            staged = spark.read.parquet(staging)
            st.count = staged.where("kind = 'score'").count()
        models = _collect_models(staged)
        summary = _log_to_mlflow(conf, settings, models)
        with stage(log, f"write {TABLE}") as st:
            from pyspark.sql import functions as F

            scores = (staged.where("kind = 'score'").select(*SCORE_COLUMNS)
                      .withColumn("run_id", F.lit(run_id)))
            write_table(scores, conf, TABLE, mode="overwrite", partition_by=["method"])
            counts = {r["method"]: int(r["count"]) for r in
                      read_table(spark, conf, TABLE).groupBy("method").count().collect()}
            st.count = sum(counts.values())
        aucs = stream_aucs(spark, conf)
        _log_metrics({f"auc.{k}": v for k, v in aucs.items() if np.isfinite(v)})
    for k, v in sorted(aucs.items()):
        log.info("member-vs-background ROC AUC %s: %.3f", k, v)
    return {**summary, "scores": counts, "stream_auc": aucs, "run_id": run_id,
            "signal_regions": n_regions}


def _collect_models(staged) -> list[dict]:
    """The model rows (weights + metrics) of every group: the only rows brought to the driver."""
    out = []
    for r in staged.where("kind = 'model'").select(*KEY, "sr_lo", "sr_hi", "payload") \
            .toLocalIterator():
        out.append({"patch_id": int(r["patch_id"]), "pm_axis": r["pm_axis"],
                    "sr_index": int(r["sr_index"]), "sr_lo": r["sr_lo"], "sr_hi": r["sr_hi"],
                    **pickle.loads(r["payload"])})
    return sorted(out, key=lambda g: (g["patch_id"], g["pm_axis"], g["sr_index"]))


def _log_metrics(metrics: dict, step: int | None = None) -> None:
    import mlflow

    if mlflow.active_run() is not None and metrics:
        mlflow.log_metrics({k.replace(":", "_"): float(v) for k, v in metrics.items()}, step=step)


def _log_to_mlflow(conf: Conf, settings: SearchSettings, models: list[dict]) -> dict:
    """Child run per patch, then the registered models; returns group counts."""
    import mlflow

    from gaialake.models import tracking
    from gaialake.models.scorer import group_key, state_for_groups

    by_patch: dict[int, list[dict]] = defaultdict(list)
    for g in models:
        by_patch[g["patch_id"]].append(g)
    trained, skipped, seconds = [], 0, 0.0
    for patch_id, groups in sorted(by_patch.items()):
        with tracking.child_run(f"patch {patch_id}", patch_id=str(patch_id)):
            mlflow.log_params({"patch_id": patch_id, "groups": len(groups)})
            for g in groups:
                name = f"{g['pm_axis']}.sr{g['sr_index']}"
                if g["skipped"]:
                    skipped += 1
                    log.info("patch %d %s [%.1f, %.1f) mas/yr skipped: %s", patch_id,
                             g["pm_axis"], g["sr_lo"], g["sr_hi"], g["skipped"])
                    mlflow.set_tag(f"skipped.{name}", g["skipped"][:250])
                    continue
                g["key"] = group_key(patch_id, g["pm_axis"], g["sr_index"])
                trained.append(g)
                seconds += float(g["metrics"].get("group_seconds", 0.0))
                _log_metrics({f"{name}.{k}": v for k, v in g["metrics"].items()
                              if isinstance(v, (int, float)) and np.isfinite(v)})
                for curve, values in g["curves"].items():
                    for step, v in enumerate(values):
                        if np.isfinite(v):
                            _log_metrics({f"{name}.{curve}": v}, step=step)
            mlflow.log_dict({f"{g['pm_axis']}.sr{g['sr_index']}": g["feature_map"]
                             for g in groups if not g["skipped"]}, "feature_maps.json")
            weights = {group_key(patch_id, g["pm_axis"], g["sr_index"]): g["weights"]
                       for g in groups if not g["skipped"]}
            if weights:
                with tempfile.TemporaryDirectory() as tmp:
                    path = os.path.join(tmp, f"patch_{patch_id}_weights.pkl")
                    with open(path, "wb") as fh:
                        pickle.dump(weights, fh)
                    mlflow.log_artifact(path, "weights")
    versions = {}
    for method in settings.methods:
        if not trained:
            log.warning("no group was trained: %s is not registered", f"gaialake-{method}")
            continue
        groups = [{"key": g["key"], "patch_id": g["patch_id"], "pm_axis": g["pm_axis"],
                   "sr_lo": g["sr_lo"], "sr_hi": g["sr_hi"], "feature_map": g["feature_map"],
                   "classifier_bytes": len(g["weights"].get("classifiers", b""))}
                  for g in trained]
        state = state_for_groups(method, groups, {g["key"]: g["weights"] for g in trained})
        config = {"method": method, "flow": settings.flow, "groups": groups,
                  "predict": "gaialake.models.scorer:predict"}
        with stage(log, f"register gaialake-{method}"):
            v = tracking.log_torch_model(f"{method}_model", "gaialake.models.scorer:build_search_model",
                                         config, state, registered_name=f"gaialake-{method}")
        versions[method] = getattr(v, "version", None)
    summary = {"groups": len(models), "groups_trained": len(trained), "groups_skipped": skipped,
               "patches": len(by_patch), "task_seconds": round(seconds, 1),
               "model_versions": versions}
    _log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float))})
    return summary


def stream_aucs(spark, conf: Conf) -> dict[str, float]:
    """Member-vs-background ROC AUC per injected stream and method, in the group (patch, axis,
    SR) holding most of the stream's scored members; {} when the sky has no ``truth_streams``."""
    from pyspark.sql import functions as F
    from sklearn.metrics import roc_auc_score

    if not table_exists(spark, conf.table_path("truth_streams")):
        return {}
    truth = read_table(spark, conf, "truth_streams").select("source_id", "stream")
    scores = read_table(spark, conf, TABLE)
    members = scores.join(truth, "source_id")
    best = (members.groupBy("stream", "method", "patch_id", "pm_axis", "sr_lo").count()
            .collect())
    top: dict[tuple, tuple] = {}
    for r in best:
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


if __name__ == "__main__":
    sys.exit(job_main("anomaly"))

"""``gaialake anomaly``: ``patch_stars`` -> ``anomaly_scores``, the stream search's per-star scores.

One Spark task per (patch, pm axis, signal region) group (``groupBy(...).applyInPandas``):
the task trains the control-region flow and scores the group's fiducial SR stars with every
method of ``streams.methods`` (:func:`gaialake.streams.search.score_group`), on ``cuda`` when
Spark gave it a GPU, else on CPU with torch threads = task cpus. Tasks return score rows and
one model row (weights, metrics, loss curves, or the reason the group was skipped); nothing
else comes back to the driver. The groups are repartitioned by their key and adaptive
coalescing is off for the stage (``streams.adaptive_coalesce``), so groups spread over
executors instead of running in one Python worker.

The driver then does every MLflow write: a parent run for the search, a child run per patch
(params, metrics, loss curves, weights as artifacts), and registers ``gaialake-anode`` /
``gaialake-cathode`` (:mod:`gaialake.streams.scorer`) with alias ``champion``. When the sky has
truth (``truth_streams``), the member-vs-background ROC AUC per injected stream is logged.

Groups larger than task memory (more than ``streams.max_group_rows`` rows; 0 turns this off)
do not go through ``applyInPandas``: :func:`stream_group` trains their flows in a driver-side
loop fed by Petastorm (:func:`gaialake.io.feeding.torch_loader`, ``make_spark_converter`` ->
``make_torch_dataloader``), so no process ever holds the group as one pandas frame:

- the feature map is fitted on a seeded sample of at most ``streams.stream.sample_rows`` rows;
- executors map every row (``mapInPandas``) and split it by a seeded hash of ``source_id``
  (:func:`gaialake.streams.search.hash_unit`): validation (at most ``streams.stream.val_rows``
  rows, held in memory) and training (streamed, reshuffled every epoch);
- ANODE's log R is computed on executors with the two flows broadcast;
- CATHODE's k-fold classifier is trained on at most ``streams.stream.classifier_rows`` signal-
  region stars (a hash sample); those get out-of-fold scores, every other star (seen by no
  classifier) the mean of the k classifiers, computed on executors.

The streamed groups return the same model rows as the others (``metrics["streamed"] = 1``).
"""
from __future__ import annotations

import os
import pickle
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists, write_table
from gaialake.jobs.patches import job_run_id
from gaialake.log import get_logger, stage
from gaialake.streams.search import (SearchSettings, group_seeds, hash_unit, score_group,
                                    train_flow_batches)
from gaialake.streams.regions import FeatureMap, SignalRegion, features, signal_regions_from_conf
from gaialake.io.spark import get_spark

__all__ = ["run", "group_task", "stream_group", "StreamSettings", "stream_aucs", "TASK_SCHEMA",
           "SCORE_COLUMNS"]

log = get_logger("anomaly")

TABLE = "anomaly_scores"
KEY = ["patch_id", "pm_axis", "sr_index"]
TASK_SCHEMA = ("kind string, patch_id long, pm_axis string, sr_index int, sr_lo double, "
               "sr_hi double, method string, source_id long, score double, payload binary")
SCORE_COLUMNS = ["patch_id", "source_id", "pm_axis", "sr_lo", "sr_hi", "method", "score"]
STAR_COLUMNS = ["patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp",
                "fiducial"]
Z_COLUMNS = ["z0", "z1", "z2", "z3", "z4"]
MAPPED_SCHEMA = ("source_id long, fiducial boolean, in_sr boolean, u double, v double, "
                 + ", ".join(f"{z} float" for z in Z_COLUMNS) + ", c float")


@dataclass(frozen=True)
class StreamSettings:
    """When and how a group is streamed (conf ``streams.max_group_rows``, ``streams.stream``)."""

    max_group_rows: int = 0
    sample_rows: int = 200_000
    val_rows: int = 50_000
    classifier_rows: int = 400_000

    @classmethod
    def from_conf(cls, conf: Conf) -> "StreamSettings":
        s = conf.get("streams.stream", {}) or {}
        return cls(max_group_rows=int(conf.get("streams.max_group_rows", 0) or 0),
                   sample_rows=int(s.get("sample_rows", cls.sample_rows)),
                   val_rows=int(s.get("val_rows", cls.val_rows)),
                   classifier_rows=int(s.get("classifier_rows", cls.classifier_rows)))


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
    streaming = StreamSettings.from_conf(conf)
    with job_run_id(conf, "anomaly", methods=",".join(settings.methods)) as run_id:
        big = _big_groups(rows, streaming.max_group_rows)
        if len(big):
            from pyspark.sql import functions as F

            log.info("%d groups over streams.max_group_rows=%d rows are streamed through "
                     "Petastorm", len(big), streaming.max_group_rows)
            in_tasks = rows.join(F.broadcast(spark.createDataFrame(big[KEY])), KEY, "left_anti")
        else:
            in_tasks = rows
        with stage(log, "train and score groups on executors") as st:
            spark.conf.set(key, str(bool(conf.get("streams.adaptive_coalesce"))).lower())
            try:
                out = (in_tasks.repartition(n_groups_max, *KEY).groupBy(*KEY)
                       .applyInPandas(group_task(conf, settings), TASK_SCHEMA))
                out.write.mode("overwrite").parquet(staging)
            finally:
                spark.conf.set(key, before)
        for group in big.to_dict("records"):
            with stage(log, f"stream group patch {group['patch_id']} {group['pm_axis']} "
                            f"sr{group['sr_index']} ({group['count']:,} rows)"):
                stream_group(conf, settings, streaming, rows, group, staging)
        staged = spark.read.parquet(staging)
        log.info("%d score rows staged", staged.where("kind = 'score'").count())
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
            "signal_regions": n_regions, "groups_streamed": int(len(big))}


def _big_groups(rows, max_group_rows: int) -> pd.DataFrame:
    """(patch_id, pm_axis, sr_index, sr_lo, sr_hi, count) of the groups over the threshold."""
    cols = KEY + ["sr_lo", "sr_hi", "count"]
    if max_group_rows <= 0:
        return pd.DataFrame(columns=cols)
    sizes = (rows.groupBy(*KEY, "sr_lo", "sr_hi").count()
             .where(f"count > {int(max_group_rows)}").toPandas())
    return sizes[cols].sort_values(KEY).reset_index(drop=True)


def _task_rows(spark, df, group: dict):
    """Score rows (source_id, method, score) of one streamed group in ``TASK_SCHEMA``."""
    from pyspark.sql import functions as F

    return df.select(
        F.lit("score").alias("kind"), F.lit(int(group["patch_id"])).cast("long").alias("patch_id"),
        F.lit(str(group["pm_axis"])).alias("pm_axis"),
        F.lit(int(group["sr_index"])).cast("int").alias("sr_index"),
        F.lit(float(group["sr_lo"])).cast("double").alias("sr_lo"),
        F.lit(float(group["sr_hi"])).cast("double").alias("sr_hi"),
        F.col("method").cast("string"), F.col("source_id").cast("long"),
        F.col("score").cast("double"), F.lit(None).cast("binary").alias("payload"))


def _model_row(spark, group: dict, payload: dict):
    row = pd.DataFrame([{"kind": "model", "patch_id": int(group["patch_id"]),
                         "pm_axis": str(group["pm_axis"]), "sr_index": int(group["sr_index"]),
                         "sr_lo": float(group["sr_lo"]), "sr_hi": float(group["sr_hi"]),
                         "method": None, "source_id": None, "score": None,
                         "payload": bytearray(pickle.dumps(payload))}])
    return spark.createDataFrame(row, TASK_SCHEMA)


def _map_rows(fmap: dict, axis: str, sr: SignalRegion, seeds: tuple[int, int]):
    """mapInPandas function: patch stars -> ``MAPPED_SCHEMA`` (mapped features and hashes)."""

    def fn(batches):
        f = FeatureMap.from_dict(fmap)
        for pdf in batches:
            x, m = features(pdf, axis)
            z, c = f.transform(x, m)
            ids = pdf["source_id"].to_numpy(np.int64)
            out = pd.DataFrame(z, columns=Z_COLUMNS)
            out.insert(0, "source_id", ids)
            out.insert(1, "fiducial", pdf["fiducial"].to_numpy(bool))
            out.insert(2, "in_sr", sr.contains(m))
            out.insert(3, "u", hash_unit(ids, seeds[0]))
            out.insert(4, "v", hash_unit(ids, seeds[1]))
            out["c"] = c[:, 0]
            yield out

    return fn


def _val_cut(settings: SearchSettings, streaming: StreamSettings, n_rows: int) -> float:
    """Hash cut of the validation rows: val_fraction, lowered to keep at most ``val_rows``."""
    vf = float(settings.train.val_fraction)
    return vf * min(1.0, streaming.val_rows / max(vf * n_rows, 1.0))


def _fit_streamed(conf: Conf, settings: SearchSettings, train_rows, n_train: int,
                  val: pd.DataFrame, flow_config: dict, seed: int, device):
    """A flow trained on ``train_rows`` (``MAPPED_SCHEMA``, ``n_train`` of them) fed by
    Petastorm, validated on ``val`` (in memory); (flow, TrainResult).

    ceil(n_train / batch_size) batches an epoch from a loader that reshuffles every epoch.
    """
    from gaialake.io.feeding import stack_batch, torch_loader
    from gaialake.models.flows import build_flow

    tc = settings.train
    if n_train < 10 or val.empty:
        raise ValueError(f"stream: {n_train} training / {len(val)} validation rows are too few")
    steps = int(np.ceil(n_train / tc.batch_size))
    flow = build_flow(flow_config, seed=seed)
    with torch_loader(train_rows.select(*Z_COLUMNS, "c"), Z_COLUMNS + ["c"],
                      batch_size=tc.batch_size, conf=conf, shuffle=True, seed=seed % 2**32,
                      num_epochs=None) as loader:
        stream = iter(loader)

        def batches(epoch: int):
            for _ in range(steps):
                batch = next(stream)
                yield stack_batch(batch, Z_COLUMNS), stack_batch(batch, ["c"])

        fit = train_flow_batches(flow, batches, (val[Z_COLUMNS].to_numpy(np.float32),
                                                 val[["c"]].to_numpy(np.float32)),
                                 tc, seed, device)
    return flow, fit


def _anode_scorer(flow_config: dict, states):
    """mapInPandas function: mapped rows -> (source_id, method, score = log R)."""

    def fn(batches):
        from gaialake.streams.anode import anode_log_ratio
        from gaialake.models.flows import build_flow
        from gaialake.io.tracking import state_from_bytes

        from gaialake.io.feeding import task_device

        device = task_device()
        flows = []
        for data in states.value:
            f = build_flow(flow_config)
            f.load_state_dict(state_from_bytes(data))
            flows.append(f.to(device).eval())
        for pdf in batches:
            z = pdf[Z_COLUMNS].to_numpy(np.float32)
            c = pdf[["c"]].to_numpy(np.float32)
            yield pd.DataFrame({"source_id": pdf["source_id"].to_numpy(np.int64),
                                "method": "anode",
                                "score": anode_log_ratio(flows[1], flows[0], z, c)})

    return fn


def _cathode_scorer(classifiers):
    """mapInPandas function: mapped rows -> (source_id, method, mean of the k classifiers)."""

    def fn(batches):
        models = pickle.loads(classifiers.value)
        for pdf in batches:
            z = pdf[Z_COLUMNS].to_numpy(np.float32)
            score = np.mean([m.predict_proba(z)[:, 1] for m in models], axis=0) if len(z) \
                else np.zeros(0)
            yield pd.DataFrame({"source_id": pdf["source_id"].to_numpy(np.int64),
                                "method": "cathode", "score": score})

    return fn


def stream_group(conf: Conf, settings: SearchSettings, streaming: StreamSettings, rows,
                 group: dict, out_path: str) -> dict:
    """Train and score one group too large for a task, fed by Petastorm (module docstring).

    ``rows``: the search's rows (``patch_stars`` x signal regions); ``group``: patch_id,
    pm_axis, sr_index, sr_lo, sr_hi, count. Appends the group's rows in ``TASK_SCHEMA`` (scores
    and the one model row) to the Parquet at ``out_path`` and returns the model payload.
    Seeds are those of :func:`gaialake.streams.search.score_group`.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from gaialake.io.feeding import task_device
    from gaialake.streams.cathode import cathode_scores
    from gaialake.io.tracking import state_to_bytes

    spark = rows.sparkSession
    t0 = time.perf_counter()
    patch_id, axis, sr_index = int(group["patch_id"]), str(group["pm_axis"]), int(group["sr_index"])
    n = int(group["count"])
    sr = SignalRegion(axis, sr_index, float(group["sr_lo"]), float(group["sr_hi"]))
    seed = conf.seed_for("anomaly", patch_id, axis, sr_index)
    seeds = [int(s) for s in group_seeds(seed)]
    device = task_device()
    stars = rows.where((F.col("patch_id") == patch_id) & (F.col("pm_axis") == axis)
                       & (F.col("sr_index") == sr_index)).select(*STAR_COLUMNS)
    payload = {"weights": {}, "feature_map": {}, "metrics": {"n_stars": n, "streamed": 1},
               "curves": {}, "skipped": "", "n_stars": n}
    if n < settings.min_patch_stars:
        payload["skipped"] = f"{n} stars < min_patch_stars {settings.min_patch_stars}"
        _model_row(spark, group, payload).write.mode("append").parquet(out_path)
        return payload
    frac = min(1.0, streaming.sample_rows / n)
    sample = (stars if frac >= 1.0 else stars.sample(fraction=frac, seed=seed % 2**31)).toPandas()
    x, m = features(sample.sort_values("source_id", kind="stable"), axis)
    fmap = FeatureMap(disc_radius_deg=settings.fmap.disc_radius_deg,
                      bounds=dict(settings.fmap.bounds)).fit(x, m)
    mapped = (stars.mapInPandas(_map_rows(fmap.to_dict(), axis, sr, (seeds[0], seeds[1])),
                                MAPPED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK))
    broadcasts = []
    vf = float(settings.train.val_fraction)
    try:
        agg = mapped.groupBy("in_sr").agg(
            F.count(F.lit(1)).alias("n"), F.sum((F.col("u") >= vf).cast("long")).alias("train"),
            F.sum(F.col("fiducial").cast("long")).alias("fiducial")).collect()
        counts = {bool(r["in_sr"]): r for r in agg}
        n_sr = int(counts[True]["n"]) if True in counts else 0
        n_cr = int(counts[False]["n"]) if False in counts else 0
        if n_sr < settings.min_sr_stars:
            payload["skipped"] = f"{n_sr} SR stars < min_sr_stars {settings.min_sr_stars}"
            _model_row(spark, group, payload).write.mode("append").parquet(out_path)
            return payload
        cut_cr, cut_sr = (_val_cut(settings, streaming, k) for k in (n_cr, n_sr))
        val = (mapped.where(F.col("u") < max(cut_cr, cut_sr))
               .select("in_sr", "u", *Z_COLUMNS, "c").toPandas())
        val_cr = val[~val.in_sr & (val.u < cut_cr)]
        val_sr = val[val.in_sr & (val.u < cut_sr)]
        flow_config = {**settings.flow, "features": len(Z_COLUMNS), "context": 1}
        cr_flow, cr_fit = _fit_streamed(
            conf, settings, mapped.where(~F.col("in_sr") & (F.col("u") >= vf)),
            int(counts[False]["train"]) if n_cr else 0, val_cr, flow_config, seeds[0], device)
        metrics = {"n_stars": n, "n_sr": n_sr, "n_cr": n_cr, "streamed": 1,
                   **{f"cr_{k}": v for k, v in cr_fit.metrics().items()}}
        weights = {"cr": cr_fit.state_dict}
        curves = {"cr_train_loss": cr_fit.train_loss, "cr_val_loss": cr_fit.val_loss}
        sr_rows = mapped.where(F.col("in_sr"))
        scored = sr_rows.where(F.col("fiducial")).select("source_id", *Z_COLUMNS, "c")
        parts = []
        if "cathode" in settings.methods:
            rate = min(1.0, streaming.classifier_rows / n_sr)
            fit_rows = (sr_rows.where(F.col("v") < rate)
                        .select("source_id", "fiducial", *Z_COLUMNS, "c").toPandas()
                        .sort_values("source_id", kind="stable").reset_index(drop=True))
            s, cm, classifiers = cathode_scores(
                fit_rows[Z_COLUMNS].to_numpy(np.float32), fit_rows[["c"]].to_numpy(np.float32),
                cr_flow, seed=seeds[1], n_folds=settings.folds, oversample=settings.oversample,
                classifier=settings.classifier)
            metrics.update(cm)
            metrics["cathode_classifier_rows"] = int(len(fit_rows))
            blob = pickle.dumps(classifiers)
            weights["classifiers"] = blob
            fid = fit_rows["fiducial"].to_numpy(bool)
            oof = pd.DataFrame({"source_id": fit_rows["source_id"].to_numpy(np.int64)[fid],
                                "method": "cathode", "score": s[fid]})
            parts.append(_task_rows(spark, spark.createDataFrame(
                oof, "source_id long, method string, score double"), group))
            if rate < 1.0:
                rest = sr_rows.where(F.col("fiducial") & (F.col("v") >= rate))
                bc = spark.sparkContext.broadcast(blob)
                broadcasts.append(bc)
                parts.append(_task_rows(spark, rest.mapInPandas(
                    _cathode_scorer(bc), "source_id long, method string, score double"), group))
        if "anode" in settings.methods:
            sr_flow, sr_fit = _fit_streamed(
                conf, settings, sr_rows.where(F.col("u") >= vf), int(counts[True]["train"]),
                val_sr, flow_config, seeds[2], device)
            metrics.update({f"sr_{k}": v for k, v in sr_fit.metrics().items()})
            weights["sr"] = sr_fit.state_dict
            curves.update({"sr_train_loss": sr_fit.train_loss, "sr_val_loss": sr_fit.val_loss})
            bc = spark.sparkContext.broadcast((state_to_bytes(cr_fit.state_dict),
                                               state_to_bytes(sr_fit.state_dict)))
            broadcasts.append(bc)
            parts.append(_task_rows(spark, scored.mapInPandas(
                _anode_scorer(flow_config, bc), "source_id long, method string, score double"),
                group))
        for part in parts:
            part.write.mode("append").parquet(out_path)
        metrics["n_scored"] = int(counts[True]["fiducial"])
        metrics["group_seconds"] = time.perf_counter() - t0
        payload.update(weights=weights, feature_map=fmap.to_dict(), metrics=metrics,
                       curves=curves)
        _model_row(spark, group, payload).write.mode("append").parquet(out_path)
        return payload
    finally:
        for bc in broadcasts:
            bc.unpersist()
        mapped.unpersist()


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

    from gaialake.io import tracking
    from gaialake.streams.scorer import group_key, state_for_groups

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
                  "predict": "gaialake.streams.scorer:predict"}
        with stage(log, f"register gaialake-{method}"):
            v = tracking.log_torch_model(f"{method}_model", "gaialake.streams.scorer:build_search_model",
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

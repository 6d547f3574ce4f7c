"""Stream-search groups larger than task memory, trained in a driver-side loop fed by Petastorm.

A group with more than ``streams.max_group_rows`` rows (0 turns this off) does not go through
``applyInPandas``: :func:`stream_group` trains its flows over a Petastorm loader
(:func:`gaialake.io.feeding.torch_loader`, ``make_spark_converter`` ->
``make_torch_dataloader``) with :func:`gaialake.models.flows.train_flow_batches`, so no process
ever holds the group as one pandas frame:

- the feature map is fitted on a seeded sample of at most ``streams.stream.sample_rows`` rows;
- executors map every row (``mapInPandas``) and split it by a seeded hash of ``source_id``
  (:func:`gaialake.streams.search.hash_unit`): validation (at most ``streams.stream.val_rows``
  rows, held in memory) and training (streamed, reshuffled every epoch);
- ANODE's log R is computed on executors with the two flows broadcast;
- R-ANODE's signal flow and fraction are fitted (the CR flow frozen) on at most
  ``streams.stream.classifier_rows`` signal-region stars (the classifiers' hash sample), held in
  memory, and its log P_sig - log P_CR computed on executors like ANODE's;
- CATHODE's k-fold classifier is trained on at most ``streams.stream.classifier_rows`` signal-
  region stars (a hash sample); those get out-of-fold scores, every other star (seen by no
  classifier) the mean of the k classifiers, computed on executors;
- CWoLa's likewise, against at most ``classifier_rows`` sideband stars (a hash sample); a
  search of CWoLa alone trains no flow.

The streamed groups return the same rows as the tasks of
:func:`gaialake.streams.search_spark.score_groups_in_tasks` (``metrics["streamed"] = 1``), with
the seeds of :func:`gaialake.streams.search.score_group`; with ``streams.retrainings`` K > 1
``gaialake anomaly`` streams each group K times, retraining k seeded by
:func:`gaialake.streams.search_spark.group_seed` as in the tasks.
"""
from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from gaialake.conf import Conf, settings_from
from gaialake.log import get_logger
from gaialake.models.flows import build_flow, train_flow_batches
from gaialake.models.train import TrainResult
from gaialake.streams.cwola import sidebands
from gaialake.streams.regions import FeatureMap, SignalRegion, features
from gaialake.streams.search import FLOW_METHODS, SearchSettings, group_seeds, hash_unit
from gaialake.streams.search_spark import STAR_COLUMNS, group_seed, model_row, task_rows

__all__ = ["StreamSettings", "stream_group", "MAPPED_SCHEMA"]

log = get_logger("anomaly")

Z_COLUMNS = ["z0", "z1", "z2", "z3", "z4"]
#: Rows mapped on executors: mapped features z, context c, SR, control-region (the pm range
#: outside the SR) and sideband membership and the two hashes (u: validation/training split,
#: v: the classifiers' sample).
MAPPED_SCHEMA = ("source_id long, fiducial boolean, in_sr boolean, in_cr boolean, "
                 "in_sb boolean, u double, "
                 "v double, " + ", ".join(f"{z} float" for z in Z_COLUMNS) + ", c float")
_SCORE_ROWS = "source_id long, method string, score double"


@dataclass(frozen=True)
class StreamSettings:
    """When and how a group is streamed (conf ``streams.max_group_rows``, ``streams.stream``):
    groups of more than ``max_group_rows`` rows (0: none); rows of the feature map's sample,
    at most ``val_rows`` validation rows per flow, at most ``classifier_rows`` SR rows that
    CATHODE's classifiers train on."""

    max_group_rows: int = 0
    sample_rows: int = 200_000
    val_rows: int = 50_000
    classifier_rows: int = 400_000

    @classmethod
    def from_conf(cls, conf: Conf) -> "StreamSettings":
        """The settings of ``conf``."""
        return settings_from(cls, conf.get("streams.stream", None), "streams.stream",
                             max_group_rows=int(conf.get("streams.max_group_rows", 0) or 0))


def _map_rows(fmap: dict, sr: SignalRegion, seeds: tuple[int, int], settings: SearchSettings
              ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """mapInPandas function: patch stars -> :data:`MAPPED_SCHEMA` (mapped features, hashes;
    the control region inside ``settings.pm_range``, sidebands ``settings.sideband_masyr``
    wide)."""

    def fn(batches):
        f = FeatureMap.from_dict(fmap)
        for pdf in batches:
            x, m = features(pdf, sr.axis)
            z, c = f.transform(x, m)
            ids = pdf["source_id"].to_numpy(np.int64)
            out = pd.DataFrame(z, columns=Z_COLUMNS)
            out.insert(0, "source_id", ids)
            out.insert(1, "fiducial", pdf["fiducial"].to_numpy(bool))
            in_sr = sr.contains(m)
            out.insert(2, "in_sr", in_sr)
            out.insert(3, "in_cr", settings.in_range(m) & ~in_sr)
            out.insert(4, "in_sb", sidebands(m, sr, settings.sideband_masyr))
            out.insert(5, "u", hash_unit(ids, seeds[0]))
            out.insert(6, "v", hash_unit(ids, seeds[1]))
            out["c"] = c[:, 0]
            yield out

    return fn


def _val_cut(settings: SearchSettings, streaming: StreamSettings, n_rows: int) -> float:
    """Hash cut of the validation rows: val_fraction, lowered to keep at most ``val_rows``."""
    vf = float(settings.train.val_fraction)
    return vf * min(1.0, streaming.val_rows / max(vf * n_rows, 1.0))


def _fit_streamed(conf: Conf, settings: SearchSettings, train_rows, n_train: int,
                  val: pd.DataFrame, flow_config: dict, seed: int, device: torch.device
                  ) -> tuple[torch.nn.Module, TrainResult]:
    """A flow trained on ``train_rows`` (:data:`MAPPED_SCHEMA`, ``n_train`` of them) fed by
    Petastorm, validated on ``val`` (in memory); (flow, TrainResult).

    ceil(n_train / batch_size) batches an epoch from a loader that reshuffles every epoch.
    """
    from gaialake.io.feeding import stack_batch, torch_loader

    train = settings.train
    if n_train < 10 or val.empty:
        raise ValueError(f"stream: {n_train} training / {len(val)} validation rows are too few")
    steps = int(np.ceil(n_train / train.batch_size))
    flow = build_flow(flow_config, seed=seed)
    with torch_loader(train_rows.select(*Z_COLUMNS, "c"), Z_COLUMNS + ["c"],
                      batch_size=train.batch_size, conf=conf, shuffle=True, seed=seed % 2**32,
                      num_epochs=None) as loader:
        stream = iter(loader)

        def batches(epoch: int):
            for _ in range(steps):
                batch = next(stream)
                yield stack_batch(batch, Z_COLUMNS), stack_batch(batch, ["c"])

        fit = train_flow_batches(flow, batches, (val[Z_COLUMNS].to_numpy(np.float32),
                                                 val[["c"]].to_numpy(np.float32)),
                                 train, seed, device)
    return flow, fit


def _log_ratio_scorer(method: str, configs: tuple[dict, dict], states
                      ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """mapInPandas function: mapped rows -> (source_id, ``method``, score = log p_1 - log p_0)
    of two conditional flows (``configs``; ``states``: a broadcast of their state bytes): ANODE's
    log R with (CR, SR) flows, R-ANODE's with (CR, signal)."""

    def fn(batches):
        from gaialake.io.feeding import task_device
        from gaialake.io.tracking import state_from_bytes
        from gaialake.streams.anode import anode_log_ratio

        device = task_device()
        flows = []
        for config, data in zip(configs, states.value):
            f = build_flow(config)
            f.load_state_dict(state_from_bytes(data))
            flows.append(f.to(device).eval())
        for pdf in batches:
            z = pdf[Z_COLUMNS].to_numpy(np.float32)
            c = pdf[["c"]].to_numpy(np.float32)
            yield pd.DataFrame({"source_id": pdf["source_id"].to_numpy(np.int64),
                                "method": method,
                                "score": anode_log_ratio(flows[1], flows[0], z, c)})

    return fn


def _classifier_scorer(classifiers, method: str
                       ) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """mapInPandas function: mapped rows -> (source_id, ``method``, mean of the k
    classifiers); ``classifiers``: a broadcast of the pickled classifiers."""

    def fn(batches):
        models = pickle.loads(classifiers.value)
        for pdf in batches:
            z = pdf[Z_COLUMNS].to_numpy(np.float32)
            score = np.mean([m.predict_proba(z)[:, 1] for m in models], axis=0) if len(z) \
                else np.zeros(0)
            yield pd.DataFrame({"source_id": pdf["source_id"].to_numpy(np.int64),
                                "method": method, "score": score})

    return fn


def _classifier_rows(spark, group: dict, method: str, fit_rows: pd.DataFrame,
                     scores: np.ndarray, blob: bytes, sr_rows, rate: float,
                     broadcasts: list) -> list:
    """The score rows of a k-fold classifier method: out-of-fold ``scores`` of the fiducial
    ``fit_rows``, and (when ``rate`` < 1) the mean of the pickled classifiers ``blob`` on the
    other fiducial SR rows, on executors (the broadcast is added to ``broadcasts``)."""
    from pyspark.sql import functions as F

    fid = fit_rows["fiducial"].to_numpy(bool)
    out_of_fold = pd.DataFrame({"source_id": fit_rows["source_id"].to_numpy(np.int64)[fid],
                                "method": method, "score": scores[fid]})
    parts = [task_rows(spark.createDataFrame(out_of_fold, _SCORE_ROWS), group)]
    if rate < 1.0:
        rest = sr_rows.where(F.col("fiducial") & (F.col("v") >= rate))
        shared = spark.sparkContext.broadcast(blob)
        broadcasts.append(shared)
        parts.append(task_rows(rest.mapInPandas(_classifier_scorer(shared, method),
                                                _SCORE_ROWS), group))
    return parts


def stream_group(conf: Conf, settings: SearchSettings, streaming: StreamSettings, rows,
                 group: dict, out_path: str) -> dict:
    """Train and score one group too large for a task, fed by Petastorm (module docstring).

    ``rows``: the search's rows (``patch_stars`` x signal regions); ``group``: patch_id,
    pm_axis, sr_index, sr_lo, sr_hi (mas/yr), count and retraining (absent: 0). Appends the
    group's rows in :data:`gaialake.streams.search_spark.TASK_SCHEMA` (scores and the one model
    row) to the Parquet at ``out_path`` and returns the model payload.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from gaialake.io.feeding import task_device
    from gaialake.io.tracking import state_to_bytes
    from gaialake.streams.cathode import cathode_scores
    from gaialake.streams.cwola import cwola_scores
    from gaialake.streams.ranode import fit_ranode, ranode_record

    spark = rows.sparkSession
    t0 = time.perf_counter()
    patch_id, axis, sr_index = int(group["patch_id"]), str(group["pm_axis"]), int(group["sr_index"])
    n = int(group["count"])
    sr = SignalRegion(axis, sr_index, float(group["sr_lo"]), float(group["sr_hi"]))
    seed = group_seed(conf, patch_id, axis, sr_index, int(group.get("retraining", 0)))
    seeds = [int(s) for s in group_seeds(seed)]
    device = task_device()
    stars = rows.where((F.col("patch_id") == patch_id) & (F.col("pm_axis") == axis)
                       & (F.col("sr_index") == sr_index)).select(*STAR_COLUMNS)
    payload = {"weights": {}, "feature_map": {}, "metrics": {"n_stars": n, "streamed": 1},
               "curves": {}, "skipped": "", "n_stars": n}

    def skip(reason: str) -> dict:
        payload["skipped"] = reason
        model_row(spark, group, payload).write.mode("append").parquet(out_path)
        return payload

    if n < settings.min_patch_stars:   # the group's rows bound its stars in the pm range
        return skip(f"{n} stars < min_patch_stars {settings.min_patch_stars}")
    frac = min(1.0, streaming.sample_rows / n)
    sample = (stars if frac >= 1.0 else stars.sample(fraction=frac, seed=seed % 2**31)).toPandas()
    x, m = features(sample.sort_values("source_id", kind="stable"), axis)
    in_rng = settings.in_range(m)
    fmap = FeatureMap(disc_radius_deg=settings.fmap.disc_radius_deg,
                      bounds=dict(settings.fmap.bounds)).fit(x[in_rng], m[in_rng])
    mapped = (stars.mapInPandas(_map_rows(fmap.to_dict(), sr, (seeds[0], seeds[1]), settings),
                                MAPPED_SCHEMA).persist(StorageLevel.MEMORY_AND_DISK))
    broadcasts = []
    vf = float(settings.train.val_fraction)
    try:
        def total(cond):
            return F.sum(cond.cast("long"))

        train = F.col("u") >= vf
        counts = mapped.agg(
            total(F.col("in_sr")).alias("sr"), total(F.col("in_cr")).alias("cr"),
            total(F.col("in_sr") & train).alias("sr_train"),
            total(F.col("in_cr") & train).alias("cr_train"),
            total(F.col("in_sr") & F.col("fiducial")).alias("fiducial"),
            total(F.col("in_sb")).alias("sb")).collect()[0]
        counts = {k: int(v or 0) for k, v in counts.asDict().items()}
        n_sr, n_cr, n_sb = counts["sr"], counts["cr"], counts["sb"]
        if n_sr + n_cr < settings.min_patch_stars:   # as score_group: stars in the pm range
            return skip(f"{n_sr + n_cr} stars < min_patch_stars {settings.min_patch_stars}")
        if n_sr < settings.min_sr_stars:
            return skip(f"{n_sr} SR stars < min_sr_stars {settings.min_sr_stars}")
        cut_cr, cut_sr = (_val_cut(settings, streaming, k) for k in (n_cr, n_sr))
        flow_config = {**settings.flow, "features": len(Z_COLUMNS), "context": 1}
        metrics = {"n_stars": n_sr + n_cr, "n_sr": n_sr, "n_cr": n_cr, "n_sb": n_sb,
                   "streamed": 1}
        weights, curves, val_sr = {}, {}, None
        if any(method in FLOW_METHODS for method in settings.methods):
            val = (mapped.where(F.col("u") < max(cut_cr, cut_sr))
                   .select("in_sr", "in_cr", "u", *Z_COLUMNS, "c").toPandas())
            val_cr = val[val.in_cr & (val.u < cut_cr)]
            val_sr = val[val.in_sr & (val.u < cut_sr)]
            cr_flow, cr_fit = _fit_streamed(
                conf, settings, mapped.where(F.col("in_cr") & train), counts["cr_train"], val_cr,
                flow_config, seeds[0], device)
            metrics.update({f"cr_{k}": v for k, v in cr_fit.metrics().items()})
            weights["cr"] = cr_fit.state_dict
            curves.update({"cr_train_loss": cr_fit.train_loss, "cr_val_loss": cr_fit.val_loss})
        sr_rows = mapped.where(F.col("in_sr"))
        scored = sr_rows.where(F.col("fiducial")).select("source_id", *Z_COLUMNS, "c")
        parts = []
        rate = min(1.0, streaming.classifier_rows / n_sr)
        fit_rows = None
        cwola = "cwola" in settings.methods and n_sb >= settings.min_sr_stars
        if any(method in settings.methods for method in ("cathode", "ranode")) or cwola:
            fit_rows = (sr_rows.where(F.col("v") < rate)
                        .select("source_id", "fiducial", *Z_COLUMNS, "c").toPandas()
                        .sort_values("source_id", kind="stable").reset_index(drop=True))
        if "cathode" in settings.methods:
            s, cathode_metrics, classifiers = cathode_scores(
                fit_rows[Z_COLUMNS].to_numpy(np.float32), fit_rows[["c"]].to_numpy(np.float32),
                cr_flow, seed=seeds[1], n_folds=settings.folds, oversample=settings.oversample,
                classifier=settings.classifier)
            metrics.update(cathode_metrics)
            metrics["cathode_classifier_rows"] = int(len(fit_rows))
            weights["classifiers"] = pickle.dumps(classifiers)
            parts += _classifier_rows(spark, group, "cathode", fit_rows, s, weights["classifiers"],
                                      sr_rows, rate, broadcasts)
        if "cwola" in settings.methods and not cwola:
            metrics["cwola_skipped"] = 1       # too few sideband stars: no CWoLa score here
        if cwola:
            rate_sb = min(1.0, streaming.classifier_rows / n_sb)
            sb_rows = (mapped.where(F.col("in_sb") & (F.col("v") < rate_sb))
                       .select("source_id", *Z_COLUMNS).toPandas()
                       .sort_values("source_id", kind="stable"))
            s, cwola_metrics, classifiers = cwola_scores(
                fit_rows[Z_COLUMNS].to_numpy(np.float32),
                sb_rows[Z_COLUMNS].to_numpy(np.float32), seed=seeds[4],
                n_folds=settings.folds, classifier=settings.classifier)
            metrics.update(cwola_metrics)
            metrics["cwola_classifier_rows"] = int(len(fit_rows))
            weights["cwola_classifiers"] = pickle.dumps(classifiers)
            parts += _classifier_rows(spark, group, "cwola", fit_rows, s,
                                      weights["cwola_classifiers"], sr_rows, rate, broadcasts)
        if "ranode" in settings.methods:   # fitted on the classifiers' sample, in memory
            mixture, sig_fit = fit_ranode(
                fit_rows[Z_COLUMNS].to_numpy(np.float32), fit_rows[["c"]].to_numpy(np.float32),
                cr_flow, settings.ranode, seeds[3], device)
            for part, new in zip((metrics, weights, curves),
                                 ranode_record(mixture, sig_fit, settings.ranode, len(Z_COLUMNS))):
                part.update(new)
            metrics["ranode_fit_rows"] = int(len(fit_rows))
            sig_config = weights["sig_config"]["flow"]
            shared = spark.sparkContext.broadcast((state_to_bytes(cr_fit.state_dict),
                                                   state_to_bytes(mixture.signal.state_dict())))
            broadcasts.append(shared)
            parts.append(task_rows(scored.mapInPandas(
                _log_ratio_scorer("ranode", (flow_config, sig_config), shared), _SCORE_ROWS),
                group))
        if "anode" in settings.methods:
            sr_flow, sr_fit = _fit_streamed(
                conf, settings, sr_rows.where(train), counts["sr_train"],
                val_sr, flow_config, seeds[2], device)
            metrics.update({f"sr_{k}": v for k, v in sr_fit.metrics().items()})
            weights["sr"] = sr_fit.state_dict
            curves.update({"sr_train_loss": sr_fit.train_loss, "sr_val_loss": sr_fit.val_loss})
            shared = spark.sparkContext.broadcast((state_to_bytes(cr_fit.state_dict),
                                                   state_to_bytes(sr_fit.state_dict)))
            broadcasts.append(shared)
            parts.append(task_rows(scored.mapInPandas(
                _log_ratio_scorer("anode", (flow_config, flow_config), shared), _SCORE_ROWS),
                group))
        for part in parts:
            part.write.mode("append").parquet(out_path)
        metrics["n_scored"] = counts["fiducial"]
        metrics["group_seconds"] = time.perf_counter() - t0
        payload.update(weights=weights, feature_map=fmap.to_dict(), metrics=metrics,
                       curves=curves)
        model_row(spark, group, payload).write.mode("append").parquet(out_path)
        return payload
    finally:
        for shared in broadcasts:
            shared.unpersist()
        mapped.unpersist()

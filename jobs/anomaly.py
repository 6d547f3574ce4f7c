"""``gaialake anomaly``: ``patch_stars`` -> ``anomaly_scores``, the stream search's per-star scores.

One Spark task per (patch, pm axis, signal region) group
(:func:`gaialake.streams.search_spark.score_groups_in_tasks`): the task trains the
control-region flow and scores the group's fiducial SR stars with every method of
``streams.methods`` (:func:`gaialake.streams.search.score_group`). Groups larger than task memory
(more than ``streams.max_group_rows`` rows; 0 turns this off) are trained in a driver-side loop
fed by Petastorm instead (:func:`gaialake.streams.streaming.stream_group`). Both return score
rows and one model row per group (weights, metrics, loss curves, or the reason the group was
skipped); nothing else comes back to the driver. With ``streams.retrainings`` K > 1 both paths
train and score every group K times, retraining k with the seed
:func:`gaialake.streams.search_spark.group_seed` (k = 0: the seed of a search without
retrainings), into the ``retraining`` column that find_streams' consistency filter reads.

The driver then writes ``anomaly_scores`` and, only once it is committed, does the MLflow
writes: a child run per patch (params, metrics, loss curves, feature maps, weights as
artifacts; retraining k >= 1 under ``.r<k>`` names) under the search's parent run, and
registers retraining 0's ``gaialake-anode`` / ``gaialake-cathode``
(:mod:`gaialake.streams.scorer`) with alias ``champion``: a run that fails or is killed before
the commit moves no champion (its MLflow run ends FAILED or KILLED). No score row (an empty
``patch_stars``, every group skipped) fails the job and keeps ``anomaly_scores`` as it is,
unless ``--allow-empty`` (``run.allow_empty``). When the sky has truth (``truth_streams``), the
member-vs-background ROC AUC per injected stream is logged.
"""
from __future__ import annotations

import os
import pickle
import sys
import tempfile
from collections import defaultdict

from gaialake import tables
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io import tracking
from gaialake.io.delta import read_table, refuse_empty, write_table
from gaialake.io.spark import get_spark
from gaialake.log import get_logger, stage
from gaialake.streams.scorer import group_key, search_model
from gaialake.streams.search import SearchSettings
from gaialake.streams.search_spark import (GROUP_KEY, TASK_SCHEMA, big_groups, collect_models,
                                           score_groups_in_tasks, search_rows, stream_aucs)
from gaialake.streams.streaming import StreamSettings, stream_group

__all__ = ["run"]

log = get_logger("anomaly")


def run(conf: Conf) -> dict:
    """Score every group of ``patch_stars``; write ``anomaly_scores``; register the models."""
    from pyspark.sql import functions as F

    spark = get_spark(conf)
    settings = SearchSettings.from_conf(conf)
    streaming = StreamSettings.from_conf(conf)
    rows, n_regions = search_rows(spark, conf, settings)
    empty = rows.isEmpty()
    if empty:
        refuse_empty(conf, tables.ANOMALY_SCORES, "anomaly: patch_stars holds no star in "
                     f"streams.pm_range_masyr {conf.get('streams.pm_range_masyr')} (run "
                     "`gaialake patches` first; check patches.* and the sky)")
    staging = conf.table_path("_staging_anomaly")
    with tracking.job_run(conf, "anomaly", methods=",".join(settings.methods)) as run:
        run_id = run.info.run_id
        big = big_groups(rows, streaming.max_group_rows)
        in_tasks = rows
        if len(big):
            log.info("%d groups over streams.max_group_rows=%d rows are streamed through "
                     "Petastorm", len(big), streaming.max_group_rows)
            in_tasks = rows.join(F.broadcast(spark.createDataFrame(big[GROUP_KEY])), GROUP_KEY,
                                 "left_anti")
        with stage(log, "train and score groups on executors"):
            score_groups_in_tasks(in_tasks, conf, settings, staging)
        for group, k in ((g, k) for g in big.to_dict("records")
                         for k in range(settings.retrainings)):
            again = f" retraining {k}" if k else ""
            with stage(log, f"stream group patch {group['patch_id']} {group['pm_axis']} "
                            f"sr{group['sr_index']}{again} ({group['count']:,} rows)"):
                stream_group(conf, settings, streaming, rows, {**group, "retraining": k},
                             staging)
        staged = (spark.createDataFrame([], TASK_SCHEMA) if empty
                  else spark.read.parquet(staging))
        n_staged = staged.where("kind = 'score'").count()
        log.info("%d score rows staged", n_staged)
        models = collect_models(staged)
        if n_staged == 0 and not empty:
            skipped = sorted({g["skipped"] for g in models if g["skipped"]})
            refuse_empty(conf, tables.ANOMALY_SCORES, f"anomaly: no star scored: all "
                         f"{len(models)} groups skipped ({'; '.join(skipped)[:300]})")
        with stage(log, f"write {tables.ANOMALY_SCORES.name}") as st:
            columns = [c for c in tables.ANOMALY_SCORES.columns if c != "run_id"]
            scores = (staged.where("kind = 'score'").select(*columns)
                      .withColumn("run_id", F.lit(run_id)))
            write_table(scores, conf, tables.ANOMALY_SCORES, mode="overwrite")
            counts = {r["method"]: int(r["count"]) for r in read_table(
                spark, conf, tables.ANOMALY_SCORES).groupBy("method").count().collect()}
            st.count = sum(counts.values())
        # anomaly_scores is committed: now the models may become @champion
        summary = _log_groups(settings, models)
        aucs = stream_aucs(spark, conf)
        tracking.log_metrics({f"auc.{k}": v for k, v in aucs.items()})
    for k, v in sorted(aucs.items()):
        log.info("member-vs-background ROC AUC %s: %.3f", k, v)
    return {**summary, "scores": counts, "stream_auc": aucs, "run_id": run_id,
            "signal_regions": n_regions, "groups_streamed": int(len(big)),
            "retrainings": settings.retrainings}


def _log_patch(patch_id: int, groups: list[dict]) -> list[dict]:
    """One patch's child run: params, skip reasons (tags), metrics and loss curves per group
    and retraining, feature maps and weights as artifacts; returns its trained groups (with
    their ``key``)."""
    trained = []
    with tracking.child_run(f"patch {patch_id}", patch_id=str(patch_id)):
        tracking.log_params({"patch_id": patch_id, "groups": len(groups)})
        metrics, curves, skipped = {}, {}, {}
        for g in groups:
            again = f".r{g['retraining']}" if g["retraining"] else ""
            name = g["name"] = f"{g['pm_axis']}.sr{g['sr_index']}{again}"
            if g["skipped"]:
                log.info("patch %d %s [%.1f, %.1f) mas/yr skipped: %s", patch_id,
                         g["pm_axis"], g["sr_lo"], g["sr_hi"], g["skipped"])
                skipped[f"skipped.{name}"] = g["skipped"]
                continue
            g["key"] = group_key(patch_id, g["pm_axis"], g["sr_index"]) + again.replace(".", "_")
            trained.append(g)
            metrics.update({f"{name}.{k}": v for k, v in g["metrics"].items()})
            curves.update({f"{name}.{curve}": v for curve, v in g["curves"].items()})
        tracking.set_tags(skipped)
        tracking.log_metrics(metrics)
        tracking.log_curves(curves)
        tracking.log_dict({g["name"]: g["feature_map"] for g in trained}, "feature_maps.json")
        if trained:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, f"patch_{patch_id}_weights.pkl")
                with open(path, "wb") as fh:
                    pickle.dump({g["key"]: g["weights"] for g in trained}, fh)
                tracking.log_figures([path], "weights")
    return trained


def _log_groups(settings: SearchSettings, models: list[dict]) -> dict:
    """A child run per patch, then the registered models (retraining 0's groups); returns the
    group counts (every retraining)."""
    by_patch: dict[int, list[dict]] = defaultdict(list)
    for g in models:
        by_patch[g["patch_id"]].append(g)
    trained = [g for patch_id, groups in sorted(by_patch.items())
               for g in _log_patch(patch_id, groups)]
    versions = {}
    for method in settings.methods:
        if not trained:
            log.warning("no group was trained: %s is not registered", f"gaialake-{method}")
            continue
        config, state = search_model(method, settings.flow,
                                     [g for g in trained if g["retraining"] == 0])
        if not config["groups"]:
            log.warning("no group trained %s: gaialake-%s is not registered", method, method)
            continue
        with stage(log, f"register gaialake-{method}"):
            version = tracking.log_torch_model(
                f"{method}_model", "gaialake.streams.scorer:build_search_model", config, state,
                registered_name=f"gaialake-{method}")
        versions[method] = getattr(version, "version", None)
    seconds = sum(float(g["metrics"].get("group_seconds", 0.0)) for g in trained)
    summary = {"groups": len(models), "groups_trained": len(trained),
               "groups_skipped": len(models) - len(trained), "patches": len(by_patch),
               "task_seconds": round(seconds, 1), "model_versions": versions}
    tracking.log_metrics(summary)
    return summary


if __name__ == "__main__":
    sys.exit(job_main("anomaly"))

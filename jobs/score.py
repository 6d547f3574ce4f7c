"""``gaialake score``: a registered stream-search model scores ``patch_stars`` (``anomaly_scores``).

The driver loads ``gaialake-<score.method>@<score.alias>`` (``score.method`` null: the
``streams.method``) with :func:`gaialake.io.tracking.load_torch_state` and broadcasts its
config and weights; executors rebuild the :class:`gaialake.streams.scorer.SearchModel` once per
Python worker and score the ``patch_stars`` rows of the model's patches
(:func:`gaialake.streams.search_spark.score_frame`, ``mapInPandas``, on ``cuda`` when Spark
gave the task a GPU). Each star is scored by every group (patch, pm axis,
signal region) whose patch and signal region hold it, as the anomaly job does.

What the registered models score on new stars:

- ANODE: log R = log P_SR(x|m) - log P_CR(x|m) with the group's two flows and feature map:
  exactly the anomaly job's score (same flows, same map).
- CATHODE: the mean over the k fold classifiers of their output. The anomaly job scored each
  star with the one classifier that had not seen it (out-of-fold); a registered model does not
  know which fold a new star would have been in, and no classifier has seen a new star, so the
  fold average is the natural (lower-variance) estimate. The control-region flow is stored in
  the model (to draw background samples when the classifiers are retrained) but not used to
  score. On the stars the search trained on, fold averages are in-sample (4 of 5 classifiers
  saw each star): hence ``score.mode``.

``score.mode``:

- ``new`` (default): score only stars of the model's patches that the run which trained the
  model did not score (``anomaly_scores`` rows with its run_id), e.g. stars ingested since.
  The out-of-fold rows of the training run are kept. When ``anomaly_scores`` holds no row of
  that run for the method (its table was replaced by a later search, or the run never
  committed it), the stars it trained on cannot be told apart: the job fails and changes
  nothing (promote the version of the run whose rows the table holds, re-run
  ``gaialake anomaly``, or rescore everything with ``score.mode=all``).
- ``all``: rescore every star of the model's patches and replace all their rows of the method
  (for CATHODE, in-sample on the training stars).

Idempotent: the rows are written with ``replaceWhere`` on the method, the model's patches and
(``new``) every run but the training run, so a re-run replaces its own rows, and
``anomaly_scores`` keeps one score per (star, group, method) for ``find_streams``. A
registered model is retraining 0 of its search (``streams.retrainings``): the job writes and
replaces only retraining-0 rows, so the other retrainings' scores stay for the consistency filter.
The registry holds one model for a whole search: it is broadcast whole, which suits searches
of up to a few hundred groups (tens of MB of weights).
"""
from __future__ import annotations

import sys

from gaialake import tables
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io import tracking
from gaialake.io.delta import read_table, refuse_empty, table_exists, write_table
from gaialake.io.spark import get_spark
from gaialake.log import get_logger, stage
from gaialake.streams.scorer import ScoreSettings
from gaialake.streams.search_spark import score_frame

__all__ = ["run"]

log = get_logger("score")


def run(conf: Conf) -> dict:
    """Score ``patch_stars`` with a registered search model into ``anomaly_scores``."""
    from pyspark.sql import functions as F

    settings = ScoreSettings.from_conf(conf)
    method, alias, mode = settings.method, settings.alias, settings.mode
    name = settings.registered_name
    config, state, version = tracking.load_torch_state(conf, name, alias)
    if config.get("method") != method:
        raise ValueError(f"{name}@{alias} (v{version.version}) holds a {config.get('method')!r} "
                         "model, not a stream-search model of that method")
    train_run = str(version.run_id)
    patches = sorted({int(g["patch_id"]) for g in config["groups"]})
    log.info("%s@%s = v%s (trained in run %s): %d groups over %d patches, mode %s", name, alias,
             version.version, train_run, len(config["groups"]), len(patches), mode)
    spark = get_spark(conf)
    stars = read_table(spark, conf, tables.PATCH_STARS).where(F.col("patch_id").isin(patches))
    if settings.fiducial_only:
        stars = stars.where(F.col("fiducial"))
    if stars.isEmpty():
        refuse_empty(conf, tables.ANOMALY_SCORES,
                     f"score: patch_stars holds no star of {name}@{alias}'s patches")
    have_table = table_exists(spark, conf.table_path(tables.ANOMALY_SCORES.name))
    if mode == "new" and have_table:
        table = read_table(spark, conf, tables.ANOMALY_SCORES).where(F.col("method") == method)
        trained = (table.where((F.col("run_id") == train_run) & (F.col("retraining") == 0))
                   .select("patch_id", "source_id").distinct())
        if trained.isEmpty() and not table.isEmpty():
            holders = sorted(r[0] for r in table.select("run_id").distinct().limit(5).collect())
            at = conf.table_path(tables.ANOMALY_SCORES.name)
            raise LookupError(
                f"score.mode=new: {name}@{alias} (v{version.version}) was trained in run "
                f"{train_run}, but anomaly_scores at {at} holds no {method} row of that run "
                f"(it holds runs {holders}): the stars the model trained on cannot be told "
                f"apart, and rescoring them would replace "
                f"out-of-fold rows with in-sample ones. Nothing was changed. Promote the version "
                f"of the run the table holds (`gaialake models list`, `gaialake models promote`), "
                f"re-run `gaialake anomaly`, or set score.mode=all to rescore every star")
        stars = stars.join(trained, ["patch_id", "source_id"], "left_anti")
    ids = ", ".join(str(p) for p in patches)
    where = f"method = '{method}' AND retraining = 0 AND patch_id IN ({ids})"
    if mode == "new":
        where += f" AND run_id <> '{train_run}'"
    with tracking.job_run(conf, "score", method=method,
                          model_version=str(version.version)) as run:
        run_id = run.info.run_id
        tracking.log_params({"model": name, "alias": alias, "model_version": version.version,
                             "train_run": train_run, "mode": mode, "patches": len(patches)})
        with stage(log, f"score patch_stars with {name} v{version.version}") as st:
            scores, payload = score_frame(stars, config, state,
                                          f"{name}/{version.version}/{train_run}")
            try:
                write_table(scores.withColumn("run_id", F.lit(run_id)), conf,
                            tables.ANOMALY_SCORES, replace_where=where)
            finally:
                payload.unpersist()
            n = (read_table(spark, conf, tables.ANOMALY_SCORES)
                 .where(f"method = '{method}' AND run_id = '{run_id}'").count())
            st.count = n
        tracking.log_metrics({"rows_scored": n})
    return {"method": method, "model_version": int(version.version), "mode": mode,
            "rows": n, "patches": len(patches), "run_id": run_id, "train_run": train_run}


if __name__ == "__main__":
    sys.exit(job_main("score"))

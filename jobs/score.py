"""``gaialake score``: a registered stream-search model scores ``patch_stars`` (``anomaly_scores``).

The driver loads ``gaialake-<score.method>@<score.alias>`` (``score.method`` null: the
``streams.method``) with :func:`gaialake.io.tracking.load_torch_state` and broadcasts its
config and weights; executors rebuild the :class:`gaialake.streams.scorer.SearchModel` once per
Python worker and score the ``patch_stars`` rows of the model's patches (``mapInPandas``, on
``cuda`` when Spark gave the task a GPU). Each star is scored by every group (patch, pm axis,
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
  The out-of-fold rows of the training run are kept.
- ``all``: rescore every star of the model's patches and replace all their rows of the method
  (for CATHODE, in-sample on the training stars).

Idempotent: the rows are written with ``replaceWhere`` on the method, the model's patches and
(``new``) every run but the training run, so a re-run replaces its own rows, and
``anomaly_scores`` keeps one score per (star, group, method) for ``find_streams``.
The registry holds one model for a whole search: it is broadcast whole, which suits searches
of up to a few hundred groups (tens of MB of weights).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists, write_table
from gaialake.jobs.patches import job_run_id
from gaialake.log import get_logger, stage
from gaialake.io.spark import get_spark

__all__ = ["run", "score_stars", "score_frame", "resolve_method", "SCORE_SCHEMA", "MODES"]

log = get_logger("score")

TABLE = "anomaly_scores"
MODES = ("new", "all")
SCORE_SCHEMA = ("patch_id long, source_id long, pm_axis string, sr_lo double, sr_hi double, "
                "method string, score double")
SCORE_COLUMNS = [c.split()[0] for c in SCORE_SCHEMA.split(", ")]
STAR_COLUMNS = ["patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp"]


def resolve_method(conf: Conf) -> str:
    """``score.method``, or ``streams.method`` when it is null."""
    method = conf.get("score.method", None) or conf.get("streams.method")
    if method not in ("anode", "cathode"):
        raise ValueError(f"score.method must be anode or cathode, got {method!r}")
    return str(method)


def score_stars(module, stars: pd.DataFrame) -> pd.DataFrame:
    """Scores (``SCORE_SCHEMA``) of ``patch_stars`` rows by every group of a SearchModel whose
    patch and signal region [sr_lo, sr_hi) (mas/yr on the group's pm axis) hold them.

    Pure (pandas in, pandas out): groups are looked up by patch_id, so a batch costs its rows
    times the groups of its own patches.
    """
    from gaialake.streams.regions import SignalRegion

    by_patch: dict[int, list[dict]] = {}
    for g in module.config["groups"]:
        by_patch.setdefault(int(g["patch_id"]), []).append(g)
    out = []
    for patch_id, sub in stars.groupby("patch_id", sort=True):
        for g in by_patch.get(int(patch_id), []):
            sr = SignalRegion(g["pm_axis"], 0, float(g["sr_lo"]), float(g["sr_hi"]))
            rows = sub[sr.contains(sub[g["pm_axis"]].to_numpy(np.float64))]
            if len(rows):
                out.append(pd.DataFrame({
                    "patch_id": np.int64(patch_id),
                    "source_id": rows["source_id"].to_numpy(np.int64),
                    "pm_axis": g["pm_axis"], "sr_lo": float(g["sr_lo"]),
                    "sr_hi": float(g["sr_hi"]), "method": module.method,
                    "score": np.asarray(module.score_group(g, rows), np.float64)}))
    if not out:
        return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in
                             zip(SCORE_COLUMNS, ["int64", "int64", "object", "float64",
                                                 "float64", "object", "float64"])})
    return pd.concat(out, ignore_index=True)[SCORE_COLUMNS]


_MODULES: dict[str, object] = {}


def _module(key: str, payload):
    """The SearchModel of a broadcast (config, state bytes), built once per Python worker."""
    if key not in _MODULES:
        from gaialake.streams.scorer import build_search_model
        from gaialake.io.tracking import state_from_bytes

        config, state = payload.value
        module = build_search_model(config)
        module.load_state_dict(state_from_bytes(state))
        _MODULES.clear()
        _MODULES[key] = module.eval()
    return _MODULES[key]


def score_frame(stars, config: dict, state: dict, key: str):
    """``stars`` (a Spark DataFrame of patch_stars rows) scored on executors: (DataFrame in
    ``SCORE_SCHEMA``, the broadcast to unpersist). ``key`` names the model version (cache key
    of the rebuilt module in each Python worker)."""
    from gaialake.io.tracking import state_to_bytes

    payload = stars.sparkSession.sparkContext.broadcast((config, state_to_bytes(state)))

    def fn(batches):
        from gaialake.io.feeding import task_device

        module = _module(key, payload)
        module.to(task_device())
        for pdf in batches:
            yield score_stars(module, pdf)

    return stars.select(*STAR_COLUMNS).mapInPandas(fn, SCORE_SCHEMA), payload


def run(conf: Conf) -> dict:
    from pyspark.sql import functions as F

    from gaialake.io.tracking import load_torch_state

    method = resolve_method(conf)
    alias = str(conf.get("score.alias"))
    mode = str(conf.get("score.mode"))
    if mode not in MODES:
        raise ValueError(f"score.mode must be one of {MODES}, got {mode!r}")
    name = f"gaialake-{method}"
    config, state, version = load_torch_state(conf, name, alias)
    if config.get("method") != method:
        raise ValueError(f"{name}@{alias} (v{version.version}) holds a {config.get('method')!r} "
                         "model, not a stream-search model of that method")
    train_run = str(version.run_id)
    patches = sorted({int(g["patch_id"]) for g in config["groups"]})
    log.info("%s@%s = v%s (trained in run %s): %d groups over %d patches, mode %s", name, alias,
             version.version, train_run, len(config["groups"]), len(patches), mode)
    spark = get_spark(conf)
    stars = read_table(spark, conf, "patch_stars").where(F.col("patch_id").isin(patches))
    if bool(conf.get("score.fiducial_only")):
        stars = stars.where(F.col("fiducial"))
    path = conf.table_path(TABLE)
    have_table = table_exists(spark, path)
    if mode == "new" and have_table:
        trained = (read_table(spark, conf, TABLE)
                   .where((F.col("method") == method) & (F.col("run_id") == train_run))
                   .select("patch_id", "source_id").distinct())
        stars = stars.join(trained, ["patch_id", "source_id"], "left_anti")
    ids = ", ".join(str(p) for p in patches)
    where = f"method = '{method}' AND patch_id IN ({ids})"
    if mode == "new":
        where += f" AND run_id <> '{train_run}'"
    with job_run_id(conf, "score", method=method, model_version=str(version.version)) as run_id:
        _log_params({"model": name, "alias": alias, "model_version": version.version,
                     "train_run": train_run, "mode": mode, "patches": len(patches)})
        with stage(log, f"score patch_stars with {name} v{version.version}") as st:
            scores, payload = score_frame(stars, config, state,
                                          f"{name}/{version.version}/{train_run}")
            try:
                write_table(scores.withColumn("run_id", F.lit(run_id)), conf, TABLE,
                            partition_by=["method"], replace_where=where)
            finally:
                payload.unpersist()
            n = (read_table(spark, conf, TABLE)
                 .where(f"method = '{method}' AND run_id = '{run_id}'").count())
            st.count = n
        _log_metrics({"rows_scored": n})
    return {"method": method, "model_version": int(version.version), "mode": mode,
            "rows": n, "patches": len(patches), "run_id": run_id, "train_run": train_run}


def _log_params(params: dict) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_params({k: str(v) for k, v in params.items()})


def _log_metrics(metrics: dict) -> None:
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


if __name__ == "__main__":
    sys.exit(job_main("score"))

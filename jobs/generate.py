"""``gaialake generate``: write the synthetic Gaia sky as DR3 bulk files, and its truth tables.

1. driver: build the sky model (:func:`gaialake.sky.skymodel.build_sky_model`: potential, mock
   streams (cached), expected counts per pixel, file ranges);
2. one Spark task per file range (``sky.tasks`` tasks when set: ranges are spread over them; the
   files are the same bytes either way) samples its stars, writes
   ``<paths.raw>/GaiaSource_AAAAAA-BBBBBB.csv.gz`` and returns its truth rows;
3. driver: Delta tables ``truth_origin`` (source_id, origin, component, run_id) and
   ``truth_streams`` (source_id, stream, run_id); the model's parameters go to
   ``<paths.raw>/sky_model.json`` (and to MLflow when ``gaialake.io.tracking`` exists).

Re-running replaces the output: bulk files of an earlier generate run (recognised by its
``sky_model.json`` in ``paths.raw``) are removed first, the truth tables are overwritten.
"""
from __future__ import annotations

import glob
import json
import os
import sys
import time
import uuid
from contextlib import nullcontext

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.delta import write_table
from gaialake.log import get_logger, stage
from gaialake.io.bulkfile import write_bulk_file
from gaialake.io.dr3schema import DR3_COLUMNS
from gaialake.sky.skymodel import SkyModel, build_sky_model, sample_range
from gaialake.io.spark import get_spark

log = get_logger("generate")

TRUTH_SCHEMA = "source_id long, origin string, component string, stream string, file_index int"
PARAMS_FILE = "sky_model.json"


def _tracking_run(conf: Conf):
    """MLflow parent run of the job when the tracking module exists, else a null context."""
    try:
        from gaialake.io import tracking
    except ImportError:
        return nullcontext(None), None
    return tracking.job_run(conf, "generate"), tracking


def _clean_raw(raw: str) -> int:
    """Remove the bulk files of an earlier generate run in a local ``raw`` directory."""
    if "://" in raw or not os.path.exists(os.path.join(raw, PARAMS_FILE)):
        return 0
    old = glob.glob(os.path.join(raw, "GaiaSource_*.csv.gz"))
    for path in old:
        os.remove(path)
    return len(old)


def _write_params(raw: str, params: dict) -> None:
    text = json.dumps(params, indent=1, default=str)
    if "://" in raw:
        import fsspec

        with fsspec.open(f"{raw.rstrip('/')}/{PARAMS_FILE}", "w") as fh:
            fh.write(text)
        return
    os.makedirs(raw, exist_ok=True)
    with open(os.path.join(raw, PARAMS_FILE), "w") as fh:
        fh.write(text)


def _task(model: SkyModel, raw: str, seconds):
    """mapInPandas function: each input row is a range index; writes its file, yields truth."""
    def generate(batches):
        import pandas as pd

        for batch in batches:
            for i in batch["id"].tolist():
                t0 = time.perf_counter()
                fr = model.ranges[int(i)]
                table, truth = sample_range(model, fr)
                write_bulk_file(f"{raw.rstrip('/')}/{fr.file_name}", table, DR3_COLUMNS)
                seconds.add(time.perf_counter() - t0)
                truth["file_index"] = int(i)
                yield pd.DataFrame(truth)
    return generate


def write_files(spark, model: SkyModel, raw: str, n_tasks: int = 0):
    """Run the tasks lazily: a DataFrame of truth rows (``TRUTH_SCHEMA``) whose computation
    writes the bulk files; and the accumulator of task seconds. ``n_tasks`` 0: one per file."""
    n_tasks = min(n_tasks or len(model.ranges), len(model.ranges))
    seconds = spark.sparkContext.accumulator(0.0)
    df = (spark.range(len(model.ranges), numPartitions=n_tasks)
          .mapInPandas(_task(model, raw, seconds), TRUTH_SCHEMA))
    return df, seconds


def run(conf: Conf) -> dict:
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    spark = get_spark(conf)
    raw = conf.path("paths.raw")
    with stage(log, "sky model") as st:
        model = build_sky_model(conf)
        st.extra = (f"galaxy {model.galaxy}, {len(model.ranges)} files, expected "
                    f"{model.n_stars:,.0f} stars (model's natural count {model.natural_count:,.0f}), "
                    f"streams {model.parameters()['streams']}")
    removed = _clean_raw(raw)
    if removed:
        log.info("removed %d bulk files of an earlier generate run in %s", removed, raw)
    params = model.parameters()
    params["files"] = [fr.file_name for fr in model.ranges]
    _write_params(raw, params)

    run_cm, tracking = _tracking_run(conf)
    with run_cm as mlrun:
        run_id = getattr(getattr(mlrun, "info", None), "run_id", None) or uuid.uuid4().hex
        n_tasks = min(int(conf.get("sky.tasks", 0) or 0) or len(model.ranges), len(model.ranges))
        t0 = time.perf_counter()
        df, seconds = write_files(spark, model, raw, n_tasks)
        truth = df.withColumn("run_id", F.lit(run_id)).persist(StorageLevel.MEMORY_AND_DISK)
        with stage(log, f"generate {len(model.ranges)} files in {n_tasks} tasks") as st:
            counts = {r["component"]: r["count"] for r in truth.groupBy("component").count().collect()}
            st.count = total = int(sum(counts.values()))
        wall = time.perf_counter() - t0
        with stage(log, "truth tables"):
            write_table(truth.select("source_id", "origin", "component", "run_id"), conf,
                        "truth_origin")
            write_table(truth.where(F.col("stream").isNotNull()).select("source_id", "stream", "run_id"),
                        conf, "truth_streams")
        truth.unpersist()
        task_s = float(seconds.value)
        summary = {"files": len(model.ranges), "stars": total, "tasks": n_tasks,
                   "galaxy": model.galaxy, "components": counts,
                   "stars_per_s_per_core": round(total / task_s) if task_s else None,
                   "task_seconds": round(task_s, 1), "wall_seconds": round(wall, 1), "run_id": run_id}
        if tracking is not None:
            import mlflow

            mlflow.log_dict(params, "sky_model.json")
            mlflow.log_metrics({"stars": total, "files": len(model.ranges),
                                "stars_per_s_per_core": summary["stars_per_s_per_core"] or 0.0})
    return summary


if __name__ == "__main__":
    sys.exit(job_main("generate"))

"""``gaialake generate``: write the synthetic Gaia sky as DR3 bulk files, and its truth tables.

1. driver: build the sky model (:func:`gaialake.sky.skymodel.build_sky_model`: potential, mock
   streams (cached), expected counts per pixel, file ranges);
2. one Spark task per file range (``sky.tasks`` tasks when set: ranges are spread over them; the
   files are the same bytes either way; :func:`gaialake.sky.skyfiles.write_files`) samples its
   stars, writes ``<paths.raw>/GaiaSource_AAAAAA-BBBBBB.csv.gz`` and returns its truth rows;
3. driver: Delta tables ``truth_origin`` (source_id, origin, component, run_id) and
   ``truth_streams`` (source_id, stream, run_id); the model's parameters, with each stream's
   ratio to the field in the searched fiducial discs after the patch cuts
   (``stream_to_field``), go to ``<paths.raw>/sky_model.json`` and to the job's MLflow run.

``paths.raw`` defaults to a folder of generate's own (``data/synthetic/raw``). Re-running
replaces the output: the bulk files the folder's manifest (``generated_files.json``, written
before the tasks run) lists are removed first, the truth tables are overwritten. A folder
holding bulk files that no manifest lists (real DR3 files, a user's download) is refused before
anything is written: generate never deletes or overwrites a file it did not write
(:func:`gaialake.sky.skyfiles.prepare_raw`).
"""
from __future__ import annotations

import sys
import time

from gaialake import tables
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io import tracking
from gaialake.io.delta import write_table
from gaialake.io.spark import get_spark
from gaialake.log import get_logger, stage
from gaialake.sky.skyfiles import PARAMS_FILE, check_raw, prepare_raw, write_files, write_params
from gaialake.sky.skymodel import SkyModel, StarCuts, build_sky_model, stream_field_ratios
from gaialake.streams.patch_grid import PatchCutSettings, searched_patches

log = get_logger("generate")


def stream_to_field(conf: Conf, model: SkyModel) -> dict[str, dict]:
    """Each injected stream's ratio to the field in the fiducial discs the search will score
    (:func:`gaialake.streams.patch_grid.searched_patches`), after the patch cuts; logged."""
    cuts = PatchCutSettings.from_conf(conf)
    ratios = stream_field_ratios(model, searched_patches(conf), cuts.fiducial_deg,
                                 StarCuts(cuts.g_max, cuts.bp_rp_min, cuts.bp_rp_max,
                                          cuts.parallax_max_mas))
    for name, r in ratios.items():
        log.info("stream %s: %.1f members / %.0f field stars after the patch cuts in the fiducial "
                 "discs of patches %s: stream-to-field ratio %.2e", name, r["members"], r["field"],
                 r["patches"], r["ratio"])
    return ratios


def run(conf: Conf) -> dict:
    """Generate the sky of ``sky.*`` into ``paths.raw`` and its truth tables; returns counts of
    files and stars, task and wall seconds, and the rate (stars/s per core)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    raw = conf.path("paths.raw")
    check_raw(raw)   # before the model is built and Spark started: nothing is touched
    spark = get_spark(conf)
    with stage(log, "sky model") as st:
        model = build_sky_model(conf)
        st.extra = (f"galaxy {model.galaxy}, {len(model.ranges)} files, expected "
                    f"{model.n_stars:,.0f} stars (model's natural count {model.natural_count:,.0f}), "
                    f"streams {model.parameters()['streams']}")
    removed = prepare_raw(raw, [fr.file_name for fr in model.ranges])
    if removed:
        log.info("removed %d bulk files of an earlier generate run (its manifest) in %s",
                 removed, raw)
    params = model.parameters()
    params["files"] = [fr.file_name for fr in model.ranges]
    params["stream_to_field"] = stream_to_field(conf, model)
    write_params(raw, params)

    with tracking.job_run(conf, "generate") as mlrun:
        run_id = mlrun.info.run_id
        n_tasks = min(int(conf.get("sky.tasks", 0) or 0) or len(model.ranges), len(model.ranges))
        t0 = time.perf_counter()
        df, seconds = write_files(spark, model, raw, n_tasks)
        truth = df.withColumn("run_id", F.lit(run_id)).persist(StorageLevel.MEMORY_AND_DISK)
        with stage(log, f"generate {len(model.ranges)} files in {n_tasks} tasks") as st:
            counts = {r["component"]: r["count"] for r in truth.groupBy("component").count().collect()}
            st.count = total = int(sum(counts.values()))
        wall = time.perf_counter() - t0
        with stage(log, "truth tables"):
            write_table(truth.withColumn("parent_id", F.lit(None).cast("long"))
                        .select(*tables.TRUTH_ORIGIN.columns), conf, tables.TRUTH_ORIGIN)
            write_table(truth.where(F.col("stream").isNotNull()).select(*tables.TRUTH_STREAMS.columns),
                        conf, tables.TRUTH_STREAMS)
        truth.unpersist()
        task_s = float(seconds.value)
        summary = {"files": len(model.ranges), "stars": total, "tasks": n_tasks,
                   "galaxy": model.galaxy, "components": counts,
                   "stars_per_s_per_core": round(total / task_s) if task_s else None,
                   "task_seconds": round(task_s, 1), "wall_seconds": round(wall, 1), "run_id": run_id}
        tracking.log_dict(params, PARAMS_FILE)
        tracking.log_metrics({"stars": total, "files": len(model.ranges),
                              "stars_per_s_per_core": summary["stars_per_s_per_core"] or 0.0,
                              **{f"stream_to_field_{k}": v["ratio"]
                                 for k, v in params["stream_to_field"].items()}})
    return summary


if __name__ == "__main__":
    sys.exit(job_main("generate"))

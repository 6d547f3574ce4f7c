"""``gaialake patches``: ``gaia_source`` -> ``patch_stars``, the stars of each patch in its frame.

For each searched patch (:func:`gaialake.streams.patch_grid.searched_patches`: a rule blind to
where streams are, or the user's ``patches.only``), the ``hpx``
partitions touching its disc at ``catalog.partition_order`` come from
:func:`gaialake.streams.patch_grid.patch_pixels`; the (patch, pixel) pairs are a small
broadcast table joined to ``gaia_source`` on ``hpx``, so Delta reads only those partitions and
a star lands once in every patch whose pixels hold it. Each task then filters exactly by
angular distance, applies the cuts and rotates positions and proper motions into the patch
frame (:func:`gaialake.streams.patch_grid.select_patch_stars`).
``patch_stars`` is rewritten whole (partitioned by ``patch_id``). No star in any patch (a
sky that misses the patches, cuts that keep nothing) fails the job and keeps ``patch_stars``
as it is, unless ``--allow-empty`` (``run.allow_empty``).
"""
from __future__ import annotations

import sys

from gaialake import tables
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io import tracking
from gaialake.io.delta import read_table, refuse_empty, write_table
from gaialake.io.spark import get_spark
from gaialake.log import get_logger, stage
from gaialake.streams.patch_grid import (PATCH_COLUMNS, PatchCutSettings, patch_pixels,
                                         searched_patches, select_patch_stars)

__all__ = ["run"]

log = get_logger("patches")

SOURCE_COLUMNS = ["source_id", "ra", "dec", "pmra", "pmdec", "parallax", "phot_g_mean_mag",
                  "bp_rp", "hpx"]


def run(conf: Conf) -> dict:
    """Select and rotate the stars of every patch of the grid into ``patch_stars``."""
    from pyspark.sql import functions as F

    spark = get_spark(conf)
    cuts = PatchCutSettings.from_conf(conf)
    order = int(conf.get("catalog.partition_order"))
    centers = searched_patches(conf)
    log.info("searched patches (patches.only, else |b| >= %.0f deg%s): %s",
             float(conf.get("patches.b_min_deg")),
             ", fiducial disc inside sky.region" if conf.get("patches.within_region") else "",
             [int(p) for p in centers["patch_id"]])
    grid = patch_pixels(centers, float(conf.get("patches.radius_deg")), order)
    n_patches = grid["patch_id"].nunique()
    log.info("%d patches of radius %.1f deg over %d partition pixels (order %d)", n_patches,
             cuts.radius_deg, grid["hpx"].nunique(), order)
    source = read_table(spark, conf, tables.GAIA_SOURCE)
    missing = [c for c in SOURCE_COLUMNS if c not in source.columns]
    if missing:
        raise KeyError(f"gaia_source at {conf.table_path(tables.GAIA_SOURCE.name)} lacks "
                       f"columns {missing}")
    pixels = sorted(int(p) for p in grid["hpx"].unique())
    stars = (source.select(*SOURCE_COLUMNS).where(F.col("hpx").isin(pixels))
             .join(F.broadcast(spark.createDataFrame(grid)), "hpx"))

    def select(batches):
        for pdf in batches:
            yield select_patch_stars(pdf, cuts)[PATCH_COLUMNS]

    with tracking.job_run(conf, "patches", n_patches=str(n_patches)) as run:
        run_id = run.info.run_id
        out = (stars.mapInPandas(select, tables.PATCH_STARS.schema_without("run_id"))
               .withColumn("run_id", F.lit(run_id)))
        if out.isEmpty():   # stops at the first partition holding a star
            refuse_empty(conf, tables.PATCH_STARS,
                         f"patches: no star of gaia_source in the {n_patches} patches of "
                         f"radius {cuts.radius_deg} deg (patches.only, patches.within_region, "
                         f"patches.radius_deg, the cuts)")
        with stage(log, f"write {tables.PATCH_STARS.name}") as st:
            write_table(out, conf, tables.PATCH_STARS, mode="overwrite")
            counts = {int(r["patch_id"]): int(r["count"]) for r in read_table(
                spark, conf, tables.PATCH_STARS).groupBy("patch_id").count().collect()}
            st.count = sum(counts.values())
        tracking.log_metrics({"patches": n_patches, "patches_with_stars": len(counts),
                              "patch_star_rows": sum(counts.values())})
    return {"patches": n_patches, "patches_with_stars": len(counts),
            "rows": sum(counts.values()), "run_id": run_id,
            "stars_per_patch_max": max(counts.values(), default=0)}


if __name__ == "__main__":
    sys.exit(job_main("patches"))

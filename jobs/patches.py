"""``gaialake patches``: ``gaia_source`` -> ``patch_stars``, the stars of each sky patch in its frame.

For each patch of the grid (:func:`gaialake.streams.patch_grid.patch_centers`), the ``hpx`` partitions
touching its disc come from :func:`gaialake.astro.healpix.disc_pixels` at ``catalog.partition_order``;
the (patch, pixel) pairs are a small broadcast table joined to ``gaia_source`` on ``hpx``, so
Delta reads only those partitions and a star lands once in every patch whose pixels hold it.
Each task then filters exactly by angular distance, applies the cuts and rotates positions and
proper motions into the patch frame (:func:`gaialake.streams.patch_grid.select_patch_stars`).
``patch_stars`` is rewritten whole (partitioned by ``patch_id``).
"""
from __future__ import annotations

import sys
import uuid
from contextlib import contextmanager
from typing import Iterator

import pandas as pd

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.delta import read_table, write_table
from gaialake.astro.healpix import disc_pixels
from gaialake.log import get_logger, stage
from gaialake.streams.patch_grid import PATCH_COLUMNS, PatchCuts, patch_centers, select_patch_stars
from gaialake.io.spark import get_spark

__all__ = ["run", "patch_grid", "job_run_id", "PATCH_STARS_SCHEMA"]

log = get_logger("patches")

TABLE = "patch_stars"
PATCH_STARS_SCHEMA = ("patch_id long, source_id long, ra double, dec double, phi double, "
                      "lam double, pm_phi double, pm_lam double, g double, bp_rp double, "
                      "fiducial boolean")
SOURCE_COLUMNS = ["source_id", "ra", "dec", "pmra", "pmdec", "parallax", "phot_g_mean_mag",
                  "bp_rp", "hpx"]


@contextmanager
def job_run_id(conf: Conf, job: str, **tags) -> Iterator[str]:
    """The MLflow parent run of a job (gaialake.io.tracking when present), as its run_id."""
    try:
        from gaialake.io import tracking
    except ImportError:
        log.warning("gaialake.io.tracking not available: %s runs without MLflow", job)
        yield uuid.uuid4().hex
        return
    tracking.configure(conf)
    with tracking.job_run(conf, job, **tags) as run:
        yield getattr(getattr(run, "info", None), "run_id", None) or str(run)


def patch_grid(conf: Conf) -> pd.DataFrame:
    """(patch_id, hpx, patch_ra, patch_dec) for every patch and partition pixel its disc touches."""
    centers = patch_centers(int(conf.get("patches.grid_order")),
                            float(conf.get("patches.b_min_deg")),
                            [int(p) for p in conf.get("patches.only", []) or []])
    order = int(conf.get("catalog.partition_order"))
    radius = float(conf.get("patches.radius_deg"))
    rows = [(int(c.patch_id), int(pix), float(c.ra), float(c.dec))
            for c in centers.itertuples()
            for pix in disc_pixels(c.ra, c.dec, radius, order)]
    return pd.DataFrame(rows, columns=["patch_id", "hpx", "patch_ra", "patch_dec"])


def run(conf: Conf) -> dict:
    from pyspark.sql import functions as F

    spark = get_spark(conf)
    cuts = PatchCuts.from_conf(conf)
    grid = patch_grid(conf)
    n_patches = grid["patch_id"].nunique()
    log.info("%d patches of radius %.1f deg over %d partition pixels (order %d)", n_patches,
             cuts.radius_deg, grid["hpx"].nunique(), int(conf.get("catalog.partition_order")))
    source = read_table(spark, conf, "gaia_source")
    missing = [c for c in SOURCE_COLUMNS if c not in source.columns]
    if missing:
        raise KeyError(f"gaia_source at {conf.table_path('gaia_source')} lacks columns {missing}")
    pixels = sorted(int(p) for p in grid["hpx"].unique())
    stars = (source.select(*SOURCE_COLUMNS).where(F.col("hpx").isin(pixels))
             .join(F.broadcast(spark.createDataFrame(grid)), "hpx"))

    def select(batches):
        for pdf in batches:
            yield select_patch_stars(pdf, cuts)[PATCH_COLUMNS]

    with job_run_id(conf, "patches", n_patches=str(n_patches)) as run_id:
        out = (stars.mapInPandas(select, PATCH_STARS_SCHEMA)
               .withColumn("run_id", F.lit(run_id)))
        with stage(log, f"write {TABLE}") as st:
            write_table(out, conf, TABLE, mode="overwrite", partition_by=["patch_id"])
            counts = {int(r["patch_id"]): int(r["count"]) for r in
                      read_table(spark, conf, TABLE).groupBy("patch_id").count().collect()}
            st.count = sum(counts.values())
        _log_metrics({"patches": n_patches, "patches_with_stars": len(counts),
                      "patch_star_rows": sum(counts.values())})
    return {"patches": n_patches, "patches_with_stars": len(counts),
            "rows": sum(counts.values()), "run_id": run_id,
            "stars_per_patch_max": max(counts.values(), default=0)}


def _log_metrics(metrics: dict) -> None:
    try:
        import mlflow
    except ImportError:
        return
    if mlflow.active_run() is not None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})


if __name__ == "__main__":
    sys.exit(job_main("patches"))

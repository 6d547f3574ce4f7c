"""`gaialake upsample`: GalaxyFlow upsampling of star particles, judged by the 3-sample test.

Stages (conf section ``upsample``):

1. **particles**: a star-particle snapshot (``upsample.snapshot``: Parquet, HDF5, Gizmo, Arepo,
   tipsy, see :mod:`gaialake.upsample.particles`) or, when null, the default galaxy near the Sun;
   split (seeded) into ``train`` / ``val`` (the flow's early-stopping set; both are the *training
   particles*) and ``heldout``; written to Delta ``star_particles``.
2. **flow**: GalaxyFlow trained mass-weighted on the ``train`` rows, fed by the Petastorm loader
   (``upsample.feed: memory`` trains from an in-memory copy), on the GPU when there is one
   (:func:`gaialake.upsample.mock_spark.train_galaxyflow_df`); logged to MLflow and registered
   ``gaialake-galaxyflow`` (alias champion).
3. **sample**: ``multiple`` x (training particles) stars, drawn by ``mapInPandas`` over
   ``sample_partitions`` partitions, partition p seeded with ``conf.seed_for("upsample", p)``.
4. **baseline**: the EnBiD-like kernel upsampler (:mod:`gaialake.upsample.enbid`): kernels from the
   training particles in one task (k-NN needs them all), children spawned by partition.
5. **mock**: Delta ``upsampled_mock`` (rows of :mod:`gaialake.upsample.mock`): ``method`` is
   ``galaxyflow`` or ``enbid``; ``split`` is the row's role in the 3-sample test (``fit``,
   ``eval``, ``mock``); ``parent_id``: the EnBiD child's particle, or the flow star's nearest
   training particle (standardised phase space, k-d tree) when the particles carry labels
   (``upsample.labels``) or ``upsample.dr3_out`` is set; ``origin``: the parent's label.
6. **3-sample test** (:mod:`gaialake.upsample.three_sample`): AUC table to MLflow, Delta
   ``upsample_auc`` and ``<upsample.report_dir>/auc.json`` + ``auc.md``.
7. **DR3 files** (``upsample.dr3_out``: a folder; null: skipped): the flow stars observed like
   Gaia (:mod:`gaialake.upsample.dr3out`) as ``GaiaSource_*.csv.gz`` with
   ``truth_origin.parquet`` (source_id, origin, component, parent_id) beside them, written by
   the tasks; ``gaialake ingest --set paths.raw=<dr3_out>`` makes them a catalog.
"""
from __future__ import annotations

import json
import sys
import time

from gaialake import tables
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io import tracking
from gaialake.log import get_logger, stage
from gaialake.upsample.particles import ParticleSet

__all__ = ["run", "load_particles", "REGISTERED_NAME"]

log = get_logger("upsample")

REGISTERED_NAME = "gaialake-galaxyflow"


def load_particles(conf: Conf) -> ParticleSet:
    """The snapshot of ``upsample.snapshot``, or the default synthetic galaxy when null."""
    from gaialake.upsample.host import HostSettings
    from gaialake.upsample.particles import make_galaxy, read_snapshot

    upsample_conf = conf.get("upsample")
    radius = upsample_conf.get("radius_kpc")
    if upsample_conf.get("snapshot"):
        labels = conf.path("upsample.labels") if upsample_conf.get("labels") else None
        return read_snapshot(conf.path("upsample.snapshot"), format=str(upsample_conf["format"]),
                             group=str(upsample_conf.get("hdf5_group", "/")),
                             radius_kpc=None if radius is None else float(radius),
                             host=HostSettings.from_conf(upsample_conf), labels=labels)
    galaxy = upsample_conf["galaxy"]
    return make_galaxy(int(galaxy["n_particles"]), conf.seed_for("upsample", "galaxy") % 2**32,
                       radius_kpc=float(radius), n_clumps=int(galaxy["n_clumps"]),
                       with_chemistry=bool(galaxy["with_chemistry"]))


def run(conf: Conf) -> dict:
    """Run the job (see the module docstring); returns a summary (run id, row counts, AUCs)."""
    import torch
    from pyspark.sql import functions as F

    from gaialake.io.delta import read_table, write_table
    from gaialake.io.spark import get_spark
    from gaialake.models.galaxyflow import (BUILDER, flow_shape, galaxyflow_config,
                                            train_settings)
    from gaialake.upsample import mock, mock_spark
    from gaialake.upsample.three_sample import three_sample_of_mock

    upsample_conf = conf.get("upsample")
    flow_conf = upsample_conf["flow"]
    multiple = float(upsample_conf["multiple"])
    torch.set_num_threads(int(upsample_conf.get("torch_threads", 1)))
    t0 = time.perf_counter()
    spark = get_spark(conf)
    with tracking.job_run(conf, "upsample") as mlflow_run:
        run_id = mlflow_run.info.run_id
        with stage(log, "particles") as st:
            particles = load_particles(conf)
            columns = particles.columns
            table = particles.to_arrow().to_pandas()
            table["split"] = mock.split_labels(
                len(particles), float(upsample_conf["heldout_fraction"]),
                float(flow_conf["val_fraction"]), conf.seed_for("upsample", "split"))
            table["run_id"] = run_id
            dr3_out = upsample_conf.get("dr3_out")
            parents = None
            if "origin" in table or dr3_out:
                parents = mock.ParentIndex.from_frame(table[table["split"] != "heldout"])
            write_table(spark.createDataFrame(table), conf, tables.STAR_PARTICLES)
            st.count = len(table)
            st.extra = f"{particles.source}, columns {columns}"
        del table
        particles_df = read_table(spark, conf, tables.STAR_PARTICLES) \
            .where(F.col("run_id") == run_id)
        in_split = lambda *splits: particles_df.where(F.col("split").isin(*splits))
        train_df, training_df = in_split("train"), in_split("train", "val")
        radius = particles.radius_kpc
        del particles

        with stage(log, "train flow") as st:
            config = galaxyflow_config(
                None, columns, stats=mock_spark.model_space_stats(train_df, columns),
                radius_kpc=radius, **flow_shape(flow_conf))
            val_pdf = in_split("val").select(*columns, "mass").toPandas()
            model, fit = mock_spark.train_galaxyflow_df(
                train_df, val_pdf, config, train_settings(flow_conf),
                seed=conf.seed_for("upsample", "flow") % 2**31, conf=conf,
                feed=str(upsample_conf.get("feed", "petastorm")), logger=log)
            st.count = fit.samples
            st.extra = json.dumps(fit.metrics())

        n_training = training_df.count()
        n_mock = int(round(multiple * n_training))
        f_role = mock.role_fraction(n_mock, upsample_conf["classifier_rows"])
        n_parts = int(upsample_conf["sample_partitions"])
        with stage(log, "sample flow") as st:
            seeds = {p: conf.seed_for("upsample", p) % 2**62 for p in range(n_parts)}
            write_table(mock_spark.flow_mock(spark, model, n_mock, seeds, f_role, f_role, run_id,
                                             parents),
                        conf, tables.UPSAMPLED_MOCK, replace_where="method = 'galaxyflow'")
            st.count = n_mock

        with stage(log, "baseline (EnBiD)") as st:
            seeds = {p: conf.seed_for("upsample", "enbid", p) % 2**62 for p in range(n_parts)}
            write_table(mock_spark.enbid_mock(training_df, columns, upsample_conf["enbid"],
                                              multiple, seeds, radius, f_role, f_role, run_id),
                        conf, tables.UPSAMPLED_MOCK, replace_where="method = 'enbid'")
            st.count = n_mock

        mock_df = read_table(spark, conf, tables.UPSAMPLED_MOCK).where(F.col("run_id") == run_id)
        with stage(log, "3-sample test") as st:
            rows = mock_df.where(F.col("split").isin("fit", "eval")) \
                .select(*columns, "split", "method").toPandas()
            heldout = in_split("heldout").select(*columns, "mass").toPandas()
            result = three_sample_of_mock(rows, heldout, columns,
                                          conf.seed_for("upsample", "classifier") % 2**31,
                                          classifier=str(upsample_conf["classifier"]))
            st.count = len(rows) + len(heldout)
            st.extra = json.dumps(result.metrics())
        log.info("3-sample test (GalaxyFlow vs EnBiD-like baseline):\n%s", result.markdown())

        write_table(spark.createDataFrame(result.table(run_id), tables.UPSAMPLE_AUC.schema),
                    conf, tables.UPSAMPLE_AUC)
        report = result.write_report(conf.report_path("upsample.report_dir"), run_id)
        mock_counts = {str(m): int(c) for m, c in mock_df.groupBy("method").count().collect()}
        tracking.log_metrics({**result.metrics(),
                              **{f"flow_{k}": v for k, v in fit.metrics().items()},
                              "n_particles": len(val_pdf) + n_training, "n_mock": n_mock})
        tracking.log_figures(report, folder=None)
        version = tracking.log_torch_model(
            "galaxyflow", BUILDER, config, model.cpu().state_dict(),
            registered_name=REGISTERED_NAME,
            metadata={"columns": columns, "auc": result.metrics()})
        log.info("registered %s version %s (alias champion)", REGISTERED_NAME,
                 getattr(version, "version", None))
        dr3_rows = _write_dr3(conf, mock_df, particles_df, str(dr3_out)) if dr3_out else None
    return {"run_id": run_id, "particles": int(particles_df.count()), "mock_rows": mock_counts,
            "dr3_rows": dr3_rows,
            **{k: round(v, 4) for k, v in result.metrics().items()},
            "seconds": round(time.perf_counter() - t0, 1)}


def _write_dr3(conf: Conf, mock_df, particles_df, out_dir: str) -> int:
    """Stage 7: the flow stars as DR3 files in ``out_dir`` (component: the parent's, when the
    particles have one); returns the stars written."""
    from pyspark.sql import functions as F

    from gaialake.upsample import mock_spark
    from gaialake.upsample.dr3out import Dr3OutSettings

    settings = Dr3OutSettings.from_conf(conf)
    stars = mock_df.where(F.col("method") == "galaxyflow")
    if "component" in particles_df.columns:
        stars = stars.join(particles_df.select(F.col("particle_id").alias("parent_id"),
                                               "component"), "parent_id", "left")
    if "origin" not in particles_df.columns:
        log.warning("upsample.dr3_out without upsample.labels: truth_origin.parquet has null "
                    "origins")
    with stage(log, f"DR3 files -> {out_dir}") as st:
        seeds = {i: conf.seed_for("upsample", "dr3", i) for i in range(settings.n_files)}
        counts = mock_spark.write_dr3(stars, conf.path("upsample.dr3_out"), settings, seeds)
        st.count = sum(counts.values())
        st.extra = f"{len(counts)} files"
    tracking.log_metrics({"dr3_rows": st.count, "dr3_files": len(counts)})
    return st.count


if __name__ == "__main__":
    sys.exit(job_main("upsample"))

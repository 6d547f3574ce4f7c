"""`gaialake upsample`: GalaxyFlow upsampling of star particles, judged by the 3-sample test.

Stages (conf section ``upsample``; the logic is in :mod:`gaialake.upsample`):

1. **particles**: a snapshot (``upsample.snapshot``: Parquet, HDF5, Gizmo, Arepo, tipsy) or the
   default galaxy near the Sun (:func:`~gaialake.upsample.particles.particles_from_conf`), split
   (seeded) into ``train`` / ``val`` (the flow's early-stopping set) and ``heldout``; Delta
   ``star_particles``.
2. **flow**: GalaxyFlow trained mass-weighted on the ``train`` rows (``upsample.feed``: in
   memory up to ``upsample.memory_max_rows`` rows, else through Petastorm; the GPU when there
   is one); registered ``gaialake-galaxyflow``.
3. **sample**: ``multiple`` x (training particles) stars by ``mapInPandas`` over
   ``sample_partitions`` partitions, partition p seeded ``conf.seed_for("upsample", p)``; each
   star's parent (nearest training particle) and its label when there are labels or DR3 files.
4. **baseline**: the EnBiD-like kernel upsampler (:mod:`gaialake.upsample.enbid`).
5. **mock**: Delta ``upsampled_mock`` (:mod:`gaialake.upsample.mock`; ``split``: the row's role
   in the 3-sample test).
6. **3-sample test** (:mod:`gaialake.upsample.three_sample`): the seed's protocol (a classifier
   trained baseline vs flow, ``upsample.classifier``) and the strong judge (classifiers trained
   for particles vs flow and particles vs baseline, k-fold held out, ``upsample.judge``): one
   AUC table to MLflow, Delta ``upsample_auc`` and ``<upsample.report_dir>/auc.json`` + ``auc.md``.
7. **DR3 files** (``upsample.dr3_out``; null: none): the flow stars as DR3 bulk files with
   ``truth_origin.parquet`` (:func:`~gaialake.upsample.mock_spark.write_dr3_of_run`), for
   ``gaialake ingest --set paths.raw=<dr3_out>``.
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

__all__ = ["run", "REGISTERED_NAME"]

log = get_logger("upsample")

REGISTERED_NAME = "gaialake-galaxyflow"


def run(conf: Conf) -> dict:
    """Run the job (see the module docstring); returns a summary (run id, row counts, AUCs)."""
    import torch
    from pyspark.sql import functions as F

    from gaialake.io.delta import read_table, write_table
    from gaialake.io.spark import get_spark
    from gaialake.models.galaxyflow import (BUILDER, flow_shape, galaxyflow_config,
                                            train_settings)
    from gaialake.upsample import mock, mock_spark, three_sample
    from gaialake.upsample.particles import particles_from_conf

    upsample_conf = conf.get("upsample")
    flow_conf, dr3_out = upsample_conf["flow"], upsample_conf.get("dr3_out")
    multiple = float(upsample_conf["multiple"])
    torch.set_num_threads(int(upsample_conf.get("torch_threads", 1)))
    t0 = time.perf_counter()
    spark = get_spark(conf)
    with tracking.job_run(conf, "upsample") as mlflow_run:
        run_id = mlflow_run.info.run_id
        with stage(log, "particles") as st:
            particles = particles_from_conf(conf)
            columns, radius = particles.columns, particles.radius_kpc
            table = mock.particle_rows(particles, float(upsample_conf["heldout_fraction"]),
                                       float(flow_conf["val_fraction"]),
                                       conf.seed_for("upsample", "split"), run_id)
            parents = (mock.ParentIndex.from_frame(table[table["split"] != "heldout"])
                       if "origin" in table or dr3_out else None)
            write_table(spark.createDataFrame(table), conf, tables.STAR_PARTICLES)
            st.count, st.extra = len(table), f"{particles.source}, columns {columns}"
        del table, particles
        particles_df = read_table(spark, conf, tables.STAR_PARTICLES) \
            .where(F.col("run_id") == run_id)
        in_split = lambda *splits: particles_df.where(F.col("split").isin(*splits))
        train_df, training_df = in_split("train"), in_split("train", "val")
        with stage(log, "train flow") as st:
            config = galaxyflow_config(
                None, columns, stats=mock_spark.model_space_stats(train_df, columns),
                radius_kpc=radius, **flow_shape(flow_conf))
            val_pdf = in_split("val").select(*columns, "mass").toPandas()
            n_train = train_df.count()
            feed = mock_spark.choose_feed(str(upsample_conf["feed"]), n_train,
                                          int(upsample_conf["memory_max_rows"]))
            model, fit = mock_spark.train_galaxyflow_df(
                train_df, val_pdf, config, train_settings(flow_conf),
                seed=conf.seed_for("upsample", "flow") % 2**31, conf=conf, feed=feed, logger=log,
                n_rows=n_train)
            st.count, st.extra = fit.samples, json.dumps({"feed": feed, **fit.metrics()})

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
            rows, heldout = mock_spark.judge_frames(mock_df, in_split("heldout"), columns)
            result = three_sample.three_sample_of_mock(
                rows, heldout, columns, conf.seed_for("upsample", "classifier") % 2**31,
                classifier=str(upsample_conf["classifier"]))
            st.count, st.extra = len(rows) + len(heldout), json.dumps(result.metrics())
        with stage(log, "strong judge") as st:
            strong = three_sample.strong_judge_of_mock(
                rows, heldout, columns, conf.seed_for("upsample", "judge") % 2**31,
                three_sample.JudgeSettings.from_conf(upsample_conf["judge"]))
            result.rows += strong
            st.count = sum(r["n_positive"] + r["n_negative"] for r in strong)
            st.extra = json.dumps({r["key"]: round(r["auc"], 4) for r in strong})
        log.info("3-sample test (GalaxyFlow vs EnBiD-like baseline; seed's protocol, then the "
                 "strong judge):\n%s", result.markdown())

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
        dr3_rows = None
        if dr3_out:
            with stage(log, f"DR3 files -> {dr3_out}") as st:
                counts = mock_spark.write_dr3_of_run(conf, mock_df, particles_df)
                dr3_rows = st.count = sum(counts.values())
                st.extra = f"{len(counts)} files"
            tracking.log_metrics({"dr3_rows": dr3_rows, "dr3_files": len(counts)})
    return {"run_id": run_id, "particles": int(particles_df.count()), "mock_rows": mock_counts,
            "dr3_rows": dr3_rows, **{k: round(v, 4) for k, v in result.metrics().items()},
            "flow_epochs": len(fit.train_loss), "flow_best_epoch": fit.best_epoch,
            "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    sys.exit(job_main("upsample"))

"""``gaialake accreted``: train the accreted-star classifier on one labelled catalog (A), test
it blind on another (B), write ``accreted_catalog``.

1. Sources: the training catalog is the warehouse ``accreted.train_warehouse`` and the test
   catalog ``accreted.test_warehouse`` (``gaia_source`` + ``truth_origin``, e.g. an ingested
   simulation mock); when null, the synthetic galaxies ``accreted.train_galaxy`` /
   ``eval_galaxy``: each its own sky (``accreted.side_sky`` over the main sky settings),
   generated and ingested once (``gaialake generate`` + ``ingest``) under
   ``<accreted.side_root>/<galaxy>`` (:mod:`gaialake.accreted.sources`).
2. Train (catalog A): features of the stars passing the quality cuts,
   joined with ``truth_origin``, split by a hash of source_id; each variant's MLP (``5d``,
   ``6d``) streams its training rows from Spark through Petastorm with class weights and is
   Platt-calibrated on the validation rows (:mod:`gaialake.accreted.classifier_spark`).
3. Transfer: for each catalog it scores, the ``5d`` net is fine-tuned on that catalog's own
   radial-velocity stars labelled by the ``6d`` net (no truth; after Ostdiek et al. 2020).
4. Evaluate: ROC AUC on A's held-out stars and on B; purity/completeness on B against the
   Toomre cut |v - v_LSR| > ``accreted.baseline_cut_kms``; the catalog threshold is the most
   complete selection with purity >= ``accreted.target_purity`` on A's held-out stars, and B
   is evaluated blind at it (:func:`gaialake.accreted.evaluation.catalog_threshold`).
5. Apply: the main ``gaia_source`` scored on executors -> Delta ``accreted_catalog``
   (:data:`gaialake.tables.ACCRETED_CATALOG`); MLflow run, registered ``gaialake-accreted``
   (alias champion); figures under ``accreted.figures_dir``: the accreted stars in
   (v_r, v_phi), purity vs completeness on B.
"""
from __future__ import annotations

import sys
import time

from gaialake import tables
from gaialake.cli import job_main, run_job
from gaialake.conf import Conf
from gaialake.log import get_logger, stage

__all__ = ["run", "REGISTERED_NAME", "BUILDER"]

log = get_logger("accreted")

REGISTERED_NAME = "gaialake-accreted"
BUILDER = "gaialake.models.accreted_net:build_accreted_model"


def _build_sky(side: Conf) -> int:
    """Generate and ingest the sky of ``side``; returns its number of stars."""
    stars = run_job("generate", side)["stars"]
    run_job("ingest", side)
    return stars


def run(conf: Conf) -> dict:
    """Train on catalog A, transfer, evaluate on B, score the main catalog; returns the
    summary (metric suffix ``_A``: the training catalog's held-out stars, ``_B``: the test
    catalog's)."""
    import torch
    from pyspark import StorageLevel

    from gaialake.accreted import evaluation
    from gaialake.accreted.classifier_spark import (catalog_counts, catalog_rows, evaluate,
                                                    score_catalog, train_streaming,
                                                    training_rows, transfer_streaming,
                                                    velocity_sample)
    from gaialake.accreted.settings import AccretedSettings
    from gaialake.accreted.sources import labelled_source
    from gaialake.io import tracking
    from gaialake.io.delta import read_table, refuse_empty, write_table
    from gaialake.io.feeding import task_device
    from gaialake.io.spark import get_spark
    from gaialake.models.accreted_net import build_accreted_model

    settings = AccretedSettings.from_conf(conf)
    torch.set_num_threads(settings.torch_threads)
    t0 = time.perf_counter()
    spark = get_spark(conf)
    if read_table(spark, conf, tables.GAIA_SOURCE).isEmpty():
        refuse_empty(conf, tables.ACCRETED_CATALOG, "accreted: gaia_source is empty")
    train_src, train_name = labelled_source(spark, conf, "train", _build_sky)
    eval_src, eval_name = labelled_source(spark, conf, "test", _build_sky)
    device = task_device()
    config = settings.model_config()
    cut_kms = settings.baseline_cut_kms
    with tracking.job_run(conf, "accreted", train_catalog=train_name,
                          test_catalog=eval_name) as mlrun:
        run_id = mlrun.info.run_id
        torch.manual_seed(conf.seed_for("accreted", "init") % (2**31))
        base = build_accreted_model(config)
        rows, names = training_rows(spark, conf, settings, train_src, config)
        rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
        train_info = train_streaming(conf, settings, rows, names, base, device)
        rows.unpersist()

        same_as_train = conf.path("paths.warehouse") == train_src.path("paths.warehouse")
        model_a = transfer_streaming(conf, settings, spark, train_src, base, device)
        model_b = transfer_streaming(conf, settings, spark, eval_src, base, device)
        model_main = model_a if same_as_train else transfer_streaming(
            conf, settings, spark, conf, base, device)

        with stage(log, "evaluate on A (held out) and B") as st:
            eval_a = evaluate(conf, settings, spark, train_src, model_a, split="val")
            eval_b = evaluate(conf, settings, spark, eval_src, model_b)
            st.count = len(eval_a) + len(eval_b)
        metrics = {**evaluation.labelled_metrics(eval_a, cut_kms, "A"),
                   **evaluation.labelled_metrics(eval_b, cut_kms, "B")}
        threshold, chosen = evaluation.catalog_threshold(eval_a, eval_b, settings.target_purity)
        metrics.update(chosen)
        for variant, info in train_info.items():
            metrics.update({f"{k}_{variant}": value for k, value in info.items()})
        if not chosen["threshold_found"]:
            log.warning("no threshold reaches purity %.2f on %s: the catalog selects nothing",
                        settings.target_purity, train_name)

        state = tracking.state_to_bytes(model_main.state_dict())
        version = tracking.log_torch_model(
            "accreted", BUILDER, {**config, "threshold": threshold}, state,
            registered_name=REGISTERED_NAME, alias=None,
            metadata={"threshold": threshold, "target_purity": settings.target_purity})
        model_version = str(version.version)

        with stage(log, "score gaia_source -> accreted_catalog") as st:
            scored = (score_catalog(read_table(spark, conf, tables.GAIA_SOURCE), state,
                                              config, extra=True)
                      .persist(StorageLevel.MEMORY_AND_DISK))
            write_table(catalog_rows(scored, threshold, model_version, run_id), conf,
                        tables.ACCRETED_CATALOG)
            counts = catalog_counts(read_table(spark, conf, tables.ACCRETED_CATALOG))
            st.count = counts["catalog_rows"]
        # @champion moves only once the catalog that names this version is committed
        tracking.promote(conf, REGISTERED_NAME, model_version)
        metrics.update(counts)

        figures = evaluation.catalog_figures(
            conf.report_path("accreted.figures_dir"),
            velocity_sample(spark, conf, settings, scored), eval_b, threshold, cut_kms,
            galaxy=str(conf.get("sky.galaxy")), held_out_galaxy=eval_name)
        scored.unpersist()
        tracking.log_metrics(metrics)
        tracking.log_figures(figures, "figures")
    return {"run_id": run_id, "model_version": model_version,
            "seconds": round(time.perf_counter() - t0, 1),
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()
               if not k.startswith(("platt", "pos_weight", "final_loss"))}}


if __name__ == "__main__":
    sys.exit(job_main("accreted"))

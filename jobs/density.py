"""`gaialake density`: dark-matter density from normalizing flows and the Boltzmann equation.

The stars: ``density.source: catalog`` reads the radial-velocity stars of ``gaia_source`` (cuts,
distances, the RV selection function estimated from the catalog:
:func:`gaialake.density.workflow.catalog_sample`; no truth, ``rho_true`` null, no figures);
``density.source: mock`` builds the validation mock of conf ``density`` (a disk-like slab with a
known dark-matter density by default, or a Plummer sphere), observed and selected like Gaia 6D
data; ``density.source: mock_catalog`` (``make run``) writes that mock as DR3 bulk files
(``gaialake density_mock``), ingests them into a warehouse of its own (``paths.warehouse`` +
``density.mock_catalog.suffix``; skipped while the ingested mock's settings are unchanged) and
measures it through the catalog path with its truth. Then it trains an ensemble of K
phase-space flows (n(x) and p(v|x), Poisson-bootstrap weights), fits a smooth potential to the
collisionless Boltzmann equation per member, and writes Delta ``density_grid`` (x, y, z kpc,
rho, rho_err M_sun/pc^3, a_x, a_y, a_z (km/s)^2/kpc, n_stars, rho_true, well_sampled,
cbe_residual, equilibrium_ok, source, run_id: the CBE residual is the non-equilibrium
diagnostic, cells above ``density.equilibrium.max_residual`` flagged and counted). Logs an
MLflow run (for a mock: errors against its truth overall and per height band, |z| for the slab,
r for the sphere, the 1/2-sigma coverage, and recovered vs true density plots), registers
``gaialake-density`` (alias champion). rho_DM at the Sun (disks): total density there minus the
baryon model of ``density.baryons``. The science is :mod:`gaialake.density.workflow`.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from gaialake import tables
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.log import get_logger, stage

__all__ = ["run", "mock_catalog"]

log = get_logger("density")


def run(conf: Conf) -> dict:
    """Run the density measurement of conf ``density`` (catalog or mock); returns the row
    count, run id and the metrics."""
    import torch

    from gaialake.density.workflow import (catalog_sample, density_grid,
                                           fit_member_potentials, registered_model,
                                           train_members)
    from gaialake.density.density_figures import plot_density_validation
    from gaialake.density.validation import build_validation_sample
    from gaialake.io import tracking

    density_conf = conf.get("density")
    torch.set_num_threads(int(density_conf.get("torch_threads", 1)))
    t0 = time.perf_counter()
    source = str(density_conf["source"])
    write = bool(density_conf.get("write_table", True))
    spark = None
    if density_conf["feed"] == "petastorm" or write or source != "mock":
        from gaialake.io.spark import get_spark

        spark = get_spark(conf)
    read_metrics: dict = {}
    resampler = None
    if source in ("catalog", "mock_catalog"):
        read_conf = mock_catalog(spark, conf) if source == "mock_catalog" else conf
        with stage(log, "catalog sample") as st:
            sample, read_metrics, resampler = catalog_sample(spark, read_conf, logger=log)
            st.count = sample.n_stars
            st.extra = f"{sample.n_drawn} RV stars read, {read_metrics['n_parent']} parent"
    elif source == "mock":
        with stage(log, "mock sample") as st:
            sample = build_validation_sample(density_conf,
                                             conf.seed_for("density", "mock") % (2**31))
            st.count = len(sample.x)
            st.extra = f"{sample.name}, {sample.n_drawn} drawn"
    else:
        raise ValueError(f"conf density.source: {source!r} is not mock, catalog or "
                         "mock_catalog")
    with tracking.job_run(conf, "density", mock=sample.name) as mlrun:
        run_id = mlrun.info.run_id
        with stage(log, "train flows") as st:
            members = train_members(conf, sample, spark, logger=log, reweight=resampler)
            st.count = sample.n_stars * len(members)
        with stage(log, "fit potentials") as st:
            potentials, n_fit = fit_member_potentials(conf, sample, members, logger=log)
            st.count = n_fit * len(members)
        with stage(log, "density grid") as st:
            table, metrics = density_grid(density_conf, sample, members, potentials, run_id,
                                          logger=log,
                                          seed=conf.seed_for("density", "equilibrium") % 2**31)
            st.count = len(table)
        if sample.stream is not None:
            sample.stream.close()
        metrics.update({f"catalog_{k}": v for k, v in read_metrics.items()})
        log.info("density metrics: %s", json.dumps(metrics))
        figures = (plot_density_validation(table, Path(conf.report_path("density.plots_dir")),
                                           sample.name) if sample.has_truth else [])
        if spark is not None and write:
            from gaialake.io.delta import write_table

            with stage(log, "write density_grid") as st:
                write_table(spark.createDataFrame(table, schema=tables.DENSITY_GRID.schema),
                            conf, tables.DENSITY_GRID,
                            replace_where=f"source = '{sample.table_source}'")
                st.count = len(table)
        tracking.log_metrics(metrics)
        tracking.log_figures(figures, "figures")
        model = registered_model(density_conf, members, potentials)
        if model is not None:
            tracking.log_torch_model("density", "gaialake.models.phase_space:build_density_model",
                                     model.config, model.state_dict(),
                                     registered_name="gaialake-density")
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return {"rows": int(len(table)), "run_id": run_id,
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}}


def mock_catalog(spark, conf: Conf) -> Conf:
    """The conf of the mock's own catalog (:func:`gaialake.density.mock_catalog.
    mock_catalog_conf`), its bulk files written and ingested unless the truth file beside them
    records the same settings; a changed mock replaces its warehouse."""
    from gaialake.cli import run_job
    from gaialake.density.mock_catalog import fingerprint, mock_catalog_conf
    from gaialake.io.densitymock import read_truth, remove_folder

    mock = mock_catalog_conf(conf)
    key = fingerprint(conf)
    truth = mock.path("density.catalog.truth")
    try:
        done = read_truth(truth).get("fingerprint") == key
    except FileNotFoundError:
        done = False
    warehouse = mock.path("paths.warehouse")
    if done:
        log.info("the mock catalog in %s is up to date (settings %s): not drawn again",
                 mock.path("paths.raw"), key[:12])
    else:
        if remove_folder(warehouse):
            log.info("removed %s: the ingested mock had other settings", warehouse)
        run_job("density_mock", mock)
    run_job("ingest", mock)   # idempotent: files ingested before are skipped
    return mock


if __name__ == "__main__":
    sys.exit(job_main("density"))

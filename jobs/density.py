"""`gaialake density`: dark-matter density from normalizing flows and the Boltzmann equation.

Builds the validation mock of conf ``density`` (a disk-like slab with a known dark-matter
density by default, or a Plummer sphere), observes and selects it like Gaia 6D data, trains an
ensemble of K phase-space flows (n(x) and p(v|x), Poisson-bootstrap weights), fits a smooth
potential to the collisionless Boltzmann equation per member, and writes Delta ``density_grid``
(x, y, z kpc, rho, rho_err M_sun/pc^3, a_x, a_y, a_z (km/s)^2/kpc, n_stars, rho_true,
well_sampled, source, run_id). Logs an MLflow run (errors against the mock's truth overall and
per height band: |z| for the slab, r for the sphere), registers ``gaialake-density`` (alias
champion) and plots recovered vs true density. rho_DM at the Sun: total density there minus the
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

__all__ = ["run"]

log = get_logger("density")


def run(conf: Conf) -> dict:
    """Run the density validation of conf ``density``; returns the row count, run id and the
    error metrics."""
    import torch

    from gaialake.density.workflow import (density_grid, fit_member_potentials,
                                           registered_model, train_members)
    from gaialake.density.density_figures import plot_density_validation
    from gaialake.density.validation import build_validation_sample
    from gaialake.io import tracking

    density_conf = conf.get("density")
    torch.set_num_threads(int(density_conf.get("torch_threads", 1)))
    t0 = time.perf_counter()
    with stage(log, "mock sample") as st:
        sample = build_validation_sample(density_conf,
                                         conf.seed_for("density", "mock") % (2**31))
        st.count = len(sample.x)
        st.extra = f"{sample.name}, {sample.n_drawn} drawn"
    write = bool(density_conf.get("write_table", True))
    spark = None
    if density_conf["feed"] == "petastorm" or write:
        from gaialake.io.spark import get_spark

        spark = get_spark(conf)
    with tracking.job_run(conf, "density", mock=sample.name) as mlrun:
        run_id = mlrun.info.run_id
        with stage(log, "train flows") as st:
            members = train_members(conf, sample, spark, logger=log)
            st.count = len(sample.x) * len(members)
        with stage(log, "fit potentials") as st:
            potentials, n_fit = fit_member_potentials(conf, sample, members, logger=log)
            st.count = n_fit * len(members)
        with stage(log, "density grid") as st:
            table, metrics = density_grid(density_conf, sample, members, potentials, run_id,
                                          logger=log)
            st.count = len(table)
        log.info("density errors in the well-sampled region: %s", json.dumps(metrics))
        figures = plot_density_validation(table, Path(conf.report_path("density.plots_dir")),
                                          sample.name)
        if spark is not None and write:
            from gaialake.io.delta import write_table

            with stage(log, "write density_grid") as st:
                write_table(spark.createDataFrame(table, schema=tables.DENSITY_GRID.schema),
                            conf, tables.DENSITY_GRID,
                            replace_where=f"source = 'mock_{sample.name}'")
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


if __name__ == "__main__":
    sys.exit(job_main("density"))

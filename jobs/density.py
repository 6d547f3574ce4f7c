"""`gaialake density`: dark-matter density from normalizing flows and the Boltzmann equation.

Builds the validation mock of conf ``density`` (a disk-like slab with a known dark-matter
density by default, or a Plummer sphere), observes and selects it like Gaia 6D data, trains an
ensemble of K phase-space flows (n(x) and p(v|x), Poisson-bootstrap weights), fits a smooth
potential to the collisionless Boltzmann equation per member, and writes Delta ``density_grid``
(x, y, z kpc, rho, rho_err M_sun/pc^3, a_x, a_y, a_z (km/s)^2/kpc, n_stars, rho_true,
well_sampled, source, run_id). Logs an MLflow run (errors against the mock's truth overall and
per height band: |z| for the slab, r for the sphere), registers ``gaialake-density`` (alias
champion) and plots recovered vs true density. rho_DM at the Sun: total density there minus the
baryon model of ``density.baryons``.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.log import get_logger, stage

__all__ = ["run", "train_members"]

log = get_logger("density")


def _tracking():
    try:
        from gaialake.io import tracking
    except ImportError:  # pragma: no cover - tracking is part of the package
        return None
    return tracking


def train_members(conf: Conf, sample, spark=None) -> list:
    """K flows members on Poisson-bootstrap weights, fed from memory or through Petastorm."""
    import torch

    from gaialake.models.phase_space import (build_flows, flow_config, loader_batches,
                                         train_ensemble, train_flows)

    fc = conf.get("density.flows")
    if str(fc["n_model"]) == "energy" and sample.ball_radius_kpc is None:
        raise ValueError(f"conf density.flows.n_model: 'energy' is normalized on the selection "
                         f"ball, and the {sample.name} sample has none: set "
                         "density.plummer.select_radius_kpc (e.g. 3.0) or "
                         "density.flows.n_model: flow")
    center = sample.ball_center_kpc
    config = flow_config(sample.x, sample.v, kind=str(fc.get("kind", "maf")),
                         transforms=int(fc["transforms"]),
                         hidden=fc["hidden"], activation=str(fc["activation"]),
                         marginal_components=int(fc["marginal_components"]),
                         n_model=str(fc["n_model"]),
                         n_hidden=fc.get("n_hidden"),
                         height_octaves=int(fc.get("height_octaves") or 0),
                         ball_center_kpc=center, ball_radius_kpc=sample.ball_radius_kpc)
    seed = conf.seed_for("density", "flows") % (2**31)
    members, epochs, bs = int(fc["members"]), int(fc["epochs"]), int(fc["batch_size"])
    # the same optimisation whichever feed brings the stars
    fit = {"lr": float(fc["lr"]), "ball_points": int(fc["ball_points"]), "device": _device(),
           "logger": log}
    feed = str(conf.get("density.feed"))
    if feed == "memory":
        return train_ensemble(sample.x, sample.v, sample.weight, config, members=members,
                              epochs=epochs, batch_size=bs, seed=seed,
                              bootstrap=bool(fc["bootstrap"]), **fit)
    if feed != "petastorm":
        raise ValueError(f"conf density.feed: {feed!r} is not memory or petastorm")
    import pandas as pd

    from gaialake.io.feeding import torch_loader

    rng = np.random.default_rng(seed)
    pdf = pd.DataFrame({"x": sample.x[:, 0], "y": sample.x[:, 1], "z": sample.x[:, 2],
                        "vx": sample.v[:, 0], "vy": sample.v[:, 1], "vz": sample.v[:, 2]})
    for k in range(members):
        count = rng.poisson(1.0, len(pdf)) if fc["bootstrap"] else np.ones(len(pdf))
        pdf[f"w_v{k}"] = count.astype(float)
        pdf[f"w_n{k}"] = count * sample.weight
    df = spark.createDataFrame(pdf)
    steps = max(1, int(np.ceil(len(pdf) / bs)))
    out = []
    with torch_loader(df, list(pdf.columns), batch_size=bs, conf=conf, shuffle=True, seed=seed,
                      num_epochs=None) as loader:
        stream = iter(loader)
        for k in range(members):
            torch.manual_seed(seed + k)
            flows = build_flows(config)
            flows.init_marginal(sample.x[pdf[f"w_v{k}"].to_numpy() > 0], seed + k)
            train_flows(flows, loader_batches(stream, steps, f"w_n{k}", f"w_v{k}"), epochs,
                        log_every=max(1, epochs // 4), **fit)
            out.append(flows.cpu())
    return out


def _device():
    try:
        from gaialake.io.feeding import task_device

        return task_device()
    except ImportError:  # pragma: no cover
        return "cpu"


def _fit_stars(conf: Conf, sample) -> tuple[np.ndarray, np.ndarray]:
    """Stars the potential is fitted on: inside fit_radius_frac of the ball, at most n_fit."""
    pc = conf.get("density.potential")
    x, v = sample.x, sample.v
    if sample.ball_radius_kpc is not None:
        keep = (np.linalg.norm(x - sample.ball_center_kpc, axis=1)
                < float(pc["fit_radius_frac"]) * sample.ball_radius_kpc)
    else:
        keep = np.linalg.norm(x - sample.grid_center_kpc, axis=1) < 1.5 * sample.grid_radius_kpc
    idx = np.flatnonzero(keep)
    rng = np.random.default_rng(conf.seed_for("density", "fit") % (2**31))
    idx = rng.permutation(idx)[: int(pc["n_fit"])]
    return x[idx], v[idx]


def run(conf: Conf) -> dict:
    import torch

    from gaialake.density.baryons import MSUN_PC3_TO_GEV_CM3, baryon_model, rho_dm_at_sun
    from gaialake.density.measure import (band_errors, count_stars, error_summary,
                                          estimate_fields, fit_potentials, grid_points)
    from gaialake.density.plots import plot_density_validation
    from gaialake.density.validation import build_validation_sample

    dconf = conf.get("density")
    torch.set_num_threads(int(dconf.get("torch_threads", 1)))
    t0 = time.perf_counter()
    with stage(log, "mock sample") as st:
        sample = build_validation_sample(dconf, conf.seed_for("density", "mock") % (2**31))
        st.count = len(sample.x)
        st.extra = f"{sample.name}, {sample.n_drawn} drawn"
    spark = None
    if dconf["feed"] == "petastorm" or dconf.get("write_table", True):
        from gaialake.io.spark import get_spark

        spark = get_spark(conf)
    tracking = _tracking()
    run_ctx = tracking.job_run(conf, "density", mock=sample.name) if tracking else nullcontext()
    with run_ctx as mlrun:
        run_id = mlrun.info.run_id if mlrun is not None else f"local-{int(time.time())}"
        with stage(log, "train flows") as st:
            members = train_members(conf, sample, spark)
            st.count = len(sample.x) * len(members)
        pc = dconf["potential"]
        with stage(log, "fit potentials") as st:
            xf, vf = _fit_stars(conf, sample)
            potentials = fit_potentials(
                members, xf, vf, kind=str(pc["kind"]), steps=int(pc["steps"]),
                batch=int(pc["batch"]), lr=float(pc["lr"]), hidden=pc["hidden"],
                n_intervals=int(pc["n_intervals"]),
                seed=conf.seed_for("density", "potential") % (2**31), logger=log)
            st.count = len(xf) * len(members)
        spacing = float(dconf["grid"]["spacing_kpc"])
        grid = grid_points(sample.grid_center_kpc, sample.grid_radius_kpc, spacing)
        n_stars = count_stars(sample.x, grid, spacing)
        region = n_stars >= int(dconf["grid"]["min_stars"])
        rho_true = sample.density_true(grid)
        a_true = sample.acceleration_true(grid)
        metrics: dict = {"n_stars_selected": int(len(sample.x)), "n_grid": int(len(grid))}
        with stage(log, "density grid") as st:
            fields = estimate_fields(members, grid, estimator=str(dconf["estimator"]),
                                     potentials=potentials, n_v=int(dconf["pointwise"]["n_v"]),
                                     step_kpc=float(dconf["pointwise"]["step_kpc"]))
            st.count = len(grid)
        metrics.update(error_summary(fields["rho"], fields["a"], rho_true, a_true, region,
                                     fields["rho_err"]))
        metrics.update(band_errors(fields["rho"], rho_true, region, sample.band_height_kpc(grid),
                                   [float(e) for e in dconf["grid"]["band_edges_kpc"]]))
        if dconf.get("compare_pointwise") and dconf["estimator"] != "pointwise":
            with stage(log, "pointwise comparison (well-sampled region)"):
                pw = estimate_fields(members, grid[region], estimator="pointwise",
                                     n_v=int(dconf["pointwise"]["n_v"]),
                                     step_kpc=float(dconf["pointwise"]["step_kpc"]))
            metrics.update({f"pointwise_{k}": v for k, v in error_summary(
                pw["rho"], pw["a"], rho_true[region], a_true[region],
                np.ones(int(region.sum()), bool)).items()})
        sun_fields = estimate_fields(members, sample.sun_kpc[None, :], estimator="potential",
                                     potentials=potentials) if dconf["estimator"] == "potential" \
            else None
        if sample.name == "slab" and sun_fields is not None:
            dm = rho_dm_at_sun(float(sun_fields["rho"][0]), float(sun_fields["rho_err"][0]),
                               float(sample.sun_kpc[2]), baryon_model(dconf["baryons"]))
            dm["rho_dm_true_gev_cm3"] = (float(dconf["slab"]["rho_dm_msun_pc3"])
                                         * MSUN_PC3_TO_GEV_CM3)
            metrics.update(dm)
        log.info("density errors in the well-sampled region: %s", json.dumps(metrics))

        import pandas as pd

        table = pd.DataFrame({"x": grid[:, 0], "y": grid[:, 1], "z": grid[:, 2],
                              "rho": fields["rho"], "rho_err": fields["rho_err"],
                              "a_x": fields["a"][:, 0], "a_y": fields["a"][:, 1],
                              "a_z": fields["a"][:, 2], "n_stars": n_stars,
                              "rho_true": rho_true, "well_sampled": region,
                              "source": f"mock_{sample.name}", "run_id": run_id})
        plots_dir = Path(conf.report_path("density.plots_dir"))
        figures = plot_density_validation(table, plots_dir, sample.name)
        if spark is not None and dconf.get("write_table", True):
            from gaialake.io.delta import write_table

            with stage(log, "write density_grid") as st:
                write_table(spark.createDataFrame(table), conf, "density_grid",
                            replace_where=f"source = 'mock_{sample.name}'")
                st.count = len(table)
        if mlrun is not None:
            _log_mlflow(tracking, metrics, figures, members, potentials, dconf)
    metrics["seconds"] = round(time.perf_counter() - t0, 1)
    return {"rows": int(len(grid)), "run_id": run_id,
            **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()}}


def _log_mlflow(tracking, metrics: dict, figures: list, members, potentials, dconf) -> None:
    import mlflow

    from gaialake.models.phase_space import density_model_config

    mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                        if isinstance(v, (int, float)) and np.isfinite(v)})
    for fig in figures:
        mlflow.log_artifact(str(fig), "figures")
    if dconf["estimator"] == "potential" and dconf["potential"]["kind"] == "mlp":
        from gaialake.models.phase_space import build_density_model

        config = density_model_config(members, potentials)
        model = build_density_model(config)
        for dst, src in zip(model.flows, members):
            dst.load_state_dict(src.state_dict())
        for dst, src in zip(model.potentials, potentials):
            dst.load_state_dict(src.state_dict())
        tracking.log_torch_model("density", "gaialake.models.phase_space:build_density_model",
                                 config, model.state_dict(), registered_name="gaialake-density")


if __name__ == "__main__":
    sys.exit(job_main("density"))

"""The density validation from conf section ``density``, step by step (the job's science).

:func:`train_members` trains the bootstrap ensemble of phase-space flows on a validation sample
(fed from memory or through Petastorm), :func:`fit_member_potentials` fits one potential per
member to the collisionless Boltzmann equation on the stars of :func:`fit_stars`,
:func:`density_grid` estimates density and acceleration on the grid and compares them with the
mock's truth (the ``density_grid`` rows and the error metrics), and :func:`registered_model`
packs members and potentials into the :class:`~gaialake.models.phase_space.DensityModel` that is
registered as ``gaialake-density``.

Units: kpc, km/s; rho in M_sun/pc^3, accelerations in (km/s)^2/kpc.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gaialake.conf import Conf
from gaialake.density.baryons import MSUN_PC3_TO_GEV_CM3, baryon_model, rho_dm_at_sun
from gaialake.density.ensemble import train_ensemble, train_ensemble_petastorm
from gaialake.density.measure import (band_errors, count_stars, error_summary, estimate_fields,
                                      fit_potentials, grid_points)
from gaialake.density.validation import ValidationSample
from gaialake.log import get_logger, stage

__all__ = ["train_members", "fit_stars", "fit_member_potentials", "density_grid",
           "registered_model"]

_log = get_logger("density")


def train_members(conf: Conf, sample: ValidationSample, spark=None, logger=None) -> list:
    """The K flows members of conf ``density.flows`` on Poisson-bootstrap weights of
    ``sample``, fed from memory or through Petastorm (conf ``density.feed``; needs ``spark``)."""
    from gaialake.io.feeding import task_device
    from gaialake.models.phase_space import flow_config

    flows_conf = conf.get("density.flows")
    if str(flows_conf["n_model"]) == "energy" and sample.ball_radius_kpc is None:
        raise ValueError(f"conf density.flows.n_model: 'energy' is normalized on the selection "
                         f"ball, and the {sample.name} sample has none: set "
                         "density.plummer.select_radius_kpc (e.g. 3.0) or "
                         "density.flows.n_model: flow")
    config = flow_config(sample.x, sample.v, kind=str(flows_conf.get("kind", "maf")),
                         transforms=int(flows_conf["transforms"]),
                         hidden=flows_conf["hidden"], activation=str(flows_conf["activation"]),
                         marginal_components=int(flows_conf["marginal_components"]),
                         n_model=str(flows_conf["n_model"]),
                         n_hidden=flows_conf.get("n_hidden"),
                         height_octaves=int(flows_conf.get("height_octaves") or 0),
                         ball_center_kpc=sample.ball_center_kpc,
                         ball_radius_kpc=sample.ball_radius_kpc)
    # the same members and optimisation whichever feed brings the stars
    fit = dict(members=int(flows_conf["members"]), epochs=int(flows_conf["epochs"]),
               batch_size=int(flows_conf["batch_size"]),
               seed=conf.seed_for("density", "flows") % (2**31),
               bootstrap=bool(flows_conf["bootstrap"]), lr=float(flows_conf["lr"]),
               ball_points=int(flows_conf["ball_points"]), device=task_device(), logger=logger)
    feed = str(conf.get("density.feed"))
    if feed == "memory":
        return train_ensemble(sample.x, sample.v, sample.weight, config, **fit)
    if feed != "petastorm":
        raise ValueError(f"conf density.feed: {feed!r} is not memory or petastorm")
    return train_ensemble_petastorm(spark, conf, sample.x, sample.v, sample.weight, config, **fit)


def fit_stars(sample: ValidationSample, potential_conf: Mapping[str, Any], seed: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Stars (x kpc, v km/s) the potential is fitted on: inside ``fit_radius_frac`` of the
    ball (no ball: within 1.5 grid radii of the grid centre), at most ``n_fit`` of them drawn
    at random (``seed``)."""
    x, v = sample.x, sample.v
    if sample.ball_radius_kpc is not None:
        keep = (np.linalg.norm(x - sample.ball_center_kpc, axis=1)
                < float(potential_conf["fit_radius_frac"]) * sample.ball_radius_kpc)
    else:
        keep = np.linalg.norm(x - sample.grid_center_kpc, axis=1) < 1.5 * sample.grid_radius_kpc
    idx = np.flatnonzero(keep)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(idx)[: int(potential_conf["n_fit"])]
    return x[idx], v[idx]


def fit_member_potentials(conf: Conf, sample: ValidationSample, members: list, logger=None
                          ) -> tuple[list, int]:
    """One potential per member (conf ``density.potential``) fitted on :func:`fit_stars`;
    returns the potentials and the number of stars each was fitted on."""
    potential_conf = conf.get("density.potential")
    xf, vf = fit_stars(sample, potential_conf, conf.seed_for("density", "fit") % (2**31))
    potentials = fit_potentials(
        members, xf, vf, kind=str(potential_conf["kind"]), steps=int(potential_conf["steps"]),
        batch=int(potential_conf["batch"]), lr=float(potential_conf["lr"]),
        hidden=potential_conf["hidden"], n_intervals=int(potential_conf["n_intervals"]),
        seed=conf.seed_for("density", "potential") % (2**31), logger=logger)
    return potentials, len(xf)


def density_grid(density_conf: Mapping[str, Any], sample: ValidationSample, members: list,
                 potentials: list, run_id: str, logger=None) -> tuple[Any, dict]:
    """The ``density_grid`` rows (pandas, columns of :data:`gaialake.tables.DENSITY_GRID`) and
    the error metrics against the mock's truth: overall and per height band in the
    well-sampled region, optionally the pointwise estimator's, and rho_DM at the Sun (slab)."""
    import pandas as pd

    grid_conf, pointwise = density_conf["grid"], density_conf["pointwise"]
    spacing = float(grid_conf["spacing_kpc"])
    grid = grid_points(sample.grid_center_kpc, sample.grid_radius_kpc, spacing)
    n_stars = count_stars(sample.x, grid, spacing)
    region = n_stars >= int(grid_conf["min_stars"])
    rho_true = sample.density_true(grid)
    a_true = sample.acceleration_true(grid)
    metrics: dict = {"n_stars_selected": int(len(sample.x)), "n_grid": int(len(grid))}
    estimator = str(density_conf["estimator"])
    fields = estimate_fields(members, grid, estimator=estimator, potentials=potentials,
                             n_v=int(pointwise["n_v"]), step_kpc=float(pointwise["step_kpc"]))
    metrics.update(error_summary(fields["rho"], fields["a"], rho_true, a_true, region,
                                 fields["rho_err"]))
    metrics.update(band_errors(fields["rho"], rho_true, region, sample.band_height_kpc(grid),
                               [float(e) for e in grid_conf["band_edges_kpc"]]))
    if density_conf.get("compare_pointwise") and estimator != "pointwise":
        with stage(logger or _log, "pointwise comparison (well-sampled region)"):
            pw = estimate_fields(members, grid[region], estimator="pointwise",
                                 n_v=int(pointwise["n_v"]), step_kpc=float(pointwise["step_kpc"]))
        metrics.update({f"pointwise_{k}": v for k, v in error_summary(
            pw["rho"], pw["a"], rho_true[region], a_true[region],
            np.ones(int(region.sum()), bool)).items()})
    if sample.name == "slab" and estimator == "potential":
        sun = estimate_fields(members, sample.sun_kpc[None, :], estimator="potential",
                              potentials=potentials)
        dm = rho_dm_at_sun(float(sun["rho"][0]), float(sun["rho_err"][0]),
                           float(sample.sun_kpc[2]), baryon_model(density_conf["baryons"]))
        dm["rho_dm_true_gev_cm3"] = (float(density_conf["slab"]["rho_dm_msun_pc3"])
                                     * MSUN_PC3_TO_GEV_CM3)
        metrics.update(dm)
    table = pd.DataFrame({"x": grid[:, 0], "y": grid[:, 1], "z": grid[:, 2],
                          "rho": fields["rho"], "rho_err": fields["rho_err"],
                          "a_x": fields["a"][:, 0], "a_y": fields["a"][:, 1],
                          "a_z": fields["a"][:, 2], "n_stars": n_stars,
                          "rho_true": rho_true, "well_sampled": region,
                          "source": f"mock_{sample.name}", "run_id": run_id})
    return table, metrics


def registered_model(density_conf: Mapping[str, Any], members: list, potentials: list):
    """The :class:`~gaialake.models.phase_space.DensityModel` holding ``members`` and their
    potentials (loaded with their weights), or None when the estimator is not an MLP potential
    (only that one is registered)."""
    from gaialake.models.phase_space import build_density_model, density_model_config

    if density_conf["estimator"] != "potential" or density_conf["potential"]["kind"] != "mlp":
        return None
    model = build_density_model(density_model_config(members, potentials))
    for dst, src in zip(model.flows, members):
        dst.load_state_dict(src.state_dict())
    for dst, src in zip(model.potentials, potentials):
        dst.load_state_dict(src.state_dict())
    return model

"""The density validation from conf section ``density``, step by step (the job's science).

:func:`train_members` trains the bootstrap ensemble of phase-space flows on a validation sample
(fed from memory or through Petastorm), :func:`fit_member_potentials` fits one potential per
member to the collisionless Boltzmann equation on the stars of :func:`fit_stars`,
:func:`density_grid` estimates density and acceleration on the grid and compares them with the
mock's truth (the ``density_grid`` rows and the error metrics), :func:`catalog_sample` reads
the sample of ``density.source: catalog`` from ``gaia_source``, and :func:`registered_model`
packs members and potentials into the :class:`~gaialake.models.phase_space.DensityModel` that is
registered as ``gaialake-density``.

Units: kpc, km/s; rho in M_sun/pc^3, accelerations in (km/s)^2/kpc.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from gaialake.conf import Conf
from gaialake.density.baryons import MSUN_PC3_TO_GEV_CM3, baryon_model, rho_dm_at_sun
from gaialake.density.ensemble import member_frame, train_ensemble, train_ensemble_petastorm
from gaialake.density.measure import (band_errors, coverage, equilibrium_residual,
                                      error_summary, estimate_fields, fit_potentials,
                                      grid_points)
from gaialake.density.validation import ValidationSample
from gaialake.log import get_logger, stage

__all__ = ["train_members", "streamed_feed", "fit_stars", "fit_member_potentials", "density_grid",
           "catalog_sample", "registered_model"]

_log = get_logger("density")


def train_members(conf: Conf, sample: ValidationSample, spark=None, logger=None,
                  reweight=None) -> list:
    """The K flows members of conf ``density.flows`` on Poisson-bootstrap weights of
    ``sample``, fed from memory or through Petastorm (conf ``density.feed``; needs ``spark``).
    ``reweight`` (a catalog's :class:`~gaialake.density.catalog.SelectionResampler`):
    each bootstrap member re-estimates the selection weights on its resample; p(v|x) carries
    the weights with conf ``density.flows.weight_velocity``."""
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
               ball_points=int(flows_conf["ball_points"]),
               weight_velocity=bool(flows_conf["weight_velocity"]), reweight=reweight,
               device=task_device(), logger=logger)
    feed = str(conf.get("density.feed"))
    if feed not in ("memory", "petastorm"):
        raise ValueError(f"conf density.feed: {feed!r} is not memory or petastorm")
    if sample.stream is not None:   # more stars than the driver holds: fed from the executors
        frame = streamed_feed(sample, fit, reweight)
    elif feed == "petastorm":
        frame = spark.createDataFrame(member_frame(
            sample.x, sample.v, sample.weight, sample.star_keys(), members=fit["members"],
            seed=fit["seed"], bootstrap=fit["bootstrap"],
            weight_velocity=fit["weight_velocity"], reweight=reweight))
    else:
        return train_ensemble(sample.x, sample.v, sample.weight, config,
                              keys=sample.star_keys(), **fit)
    n_rows = len(sample.x) if sample.stream is None else sample.stream.n_rows
    return train_ensemble_petastorm(conf, frame, n_rows, sample.x, sample.v, sample.weight,
                                    config, keys=sample.star_keys(), **fit)


def streamed_feed(sample: ValidationSample, fit: dict, reweight):
    """The Petastorm feed of a streamed catalog sample: its rows' x, v and each member's weight
    columns, made on the executors; with ``reweight`` (the catalog's resampler) member k's
    selection weights per cell come from its bootstrap counts summed per cell over the whole
    sample (one aggregation), as the in-memory feed's do."""
    from functools import partial

    import pandas as pd

    from gaialake.density.ensemble import bootstrap_counts, feed_columns, member_columns

    members, seed, bootstrap = fit["members"], fit["seed"], fit["bootstrap"]
    cell_weights: dict[int, np.ndarray] | None = None   # member seed -> weight per cell
    if reweight is not None and bootstrap:
        def counted(pdf: pd.DataFrame) -> pd.DataFrame:
            c = bootstrap_counts(pdf["source_id"].to_numpy(), members, seed)
            return pd.DataFrame({"cell": pdf["cell"], **{f"c{k}": c[k] for k in range(members)}})

        sums = sample.stream.sum_by("cell", counted, "cell long, " + ", ".join(
            f"c{k} double" for k in range(members)))
        n_cells = len(reweight.n_non_rv)
        cell_weights = {}
        for k in range(members):
            summed = np.zeros(n_cells)
            summed[sums["cell"].to_numpy(np.int64)] = sums[f"c{k}"].to_numpy(float)
            cell_weights[seed + k] = reweight.cell_weights(summed, seed + k)
    columns = partial(member_columns, members=members, seed=seed, bootstrap=bootstrap,
                      weight_velocity=fit["weight_velocity"])

    def rows(pdf: pd.DataFrame) -> pd.DataFrame:
        cell = pdf["cell"].to_numpy()
        per_cell = None if cell_weights is None else (
            lambda count, member_seed: cell_weights[member_seed][cell])
        weights = columns(pdf["source_id"].to_numpy(), pdf["weight"].to_numpy(),
                          reweight=per_cell)
        return pd.DataFrame({**{c: pdf[c] for c in ("x", "y", "z", "vx", "vy", "vz")},
                             **weights})

    return sample.stream.feed(rows, ", ".join(f"{c} double" for c in feed_columns(members)))


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
                 potentials: list, run_id: str, logger=None, seed: int = 0
                 ) -> tuple[Any, dict]:
    """The ``density_grid`` rows (pandas, columns of :data:`gaialake.tables.DENSITY_GRID`) and
    the metrics: the CBE residual per cell (velocities drawn from ``seed``), cells above conf
    ``density.equilibrium.max_residual`` flagged (``equilibrium_ok`` false) and counted in the
    well-sampled region; for a mock, errors against its truth overall and per height band in
    the well-sampled region and the 1/2-sigma coverage there, optionally the pointwise
    estimator's errors; for a disk (slab or catalog, potential estimator) rho_DM at the Sun,
    total minus conf ``density.baryons``. A catalog has no truth: ``rho_true`` is null."""
    import pandas as pd

    grid_conf, pointwise = density_conf["grid"], density_conf["pointwise"]
    spacing = float(grid_conf["spacing_kpc"])
    grid = grid_points(sample.grid_center_kpc, sample.grid_radius_kpc, spacing)
    n_stars = sample.count_stars(grid, spacing)
    region = n_stars >= int(grid_conf["min_stars"])
    metrics: dict = {"n_stars_selected": sample.n_stars, "n_grid": int(len(grid)),
                     "n_well_sampled": int(region.sum())}
    estimator = str(density_conf["estimator"])
    fields = estimate_fields(members, grid, estimator=estimator, potentials=potentials,
                             n_v=int(pointwise["n_v"]), step_kpc=float(pointwise["step_kpc"]))
    eq_conf = density_conf["equilibrium"]
    with stage(logger or _log, "CBE residual per cell") as st:
        residual = equilibrium_residual(members, grid, fields["a_members"],
                                        n_v=int(eq_conf["n_v"]), seed=seed)
        st.count = len(grid)
    equilibrium_ok = residual <= float(eq_conf["max_residual"])
    metrics["n_equilibrium_flagged"] = int((region & ~equilibrium_ok).sum())
    if region.any():
        metrics["cbe_residual_median"] = float(np.median(residual[region]))
    if metrics["n_equilibrium_flagged"]:
        (logger or _log).warning(
            "%d of %d well-sampled cells have a CBE residual above density.equilibrium."
            "max_residual %.2f: not in equilibrium there, their density cannot be trusted",
            metrics["n_equilibrium_flagged"], int(region.sum()), float(eq_conf["max_residual"]))
    rho_true = None
    if sample.has_truth:
        rho_true = sample.density_true(grid)
        a_true = sample.acceleration_true(grid)
        metrics.update(error_summary(fields["rho"], fields["a"], rho_true, a_true, region,
                                     fields["rho_err"]))
        metrics.update(coverage(fields["rho"], fields["rho_err"], rho_true, region))
        metrics.update(band_errors(fields["rho"], rho_true, region,
                                   sample.band_height_kpc(grid),
                                   [float(e) for e in grid_conf["band_edges_kpc"]]))
        inner = region & (np.linalg.norm(grid - sample.grid_center_kpc, axis=1)
                          < float(grid_conf["inner_radius_kpc"]))
        if inner.any():
            metrics["rho_rel_err_median_inner"] = float(np.median(
                np.abs(fields["rho"][inner] / rho_true[inner] - 1.0)))
            metrics.update({f"{k}_inner": v for k, v in coverage(
                fields["rho"], fields["rho_err"], rho_true, inner).items()})
    if sample.has_truth and density_conf.get("compare_pointwise") and estimator != "pointwise":
        with stage(logger or _log, "pointwise comparison (well-sampled region)"):
            pw = estimate_fields(members, grid[region], estimator="pointwise",
                                 n_v=int(pointwise["n_v"]), step_kpc=float(pointwise["step_kpc"]))
        metrics.update({f"pointwise_{k}": v for k, v in error_summary(
            pw["rho"], pw["a"], rho_true[region], a_true[region],
            np.ones(int(region.sum()), bool)).items()})
    if sample.has_truth and estimator == "potential":
        centre = estimate_fields(members, sample.grid_center_kpc[None, :],
                                 estimator="potential", potentials=potentials)
        metrics.update({"rho_centre_msun_pc3": float(centre["rho"][0]),
                        "rho_centre_err_msun_pc3": float(centre["rho_err"][0]),
                        "rho_centre_true_msun_pc3": float(
                            sample.density_true(sample.grid_center_kpc[None, :])[0])})
    if not sample.spherical and estimator == "potential":
        sun = estimate_fields(members, sample.sun_kpc[None, :], estimator="potential",
                              potentials=potentials)
        dm = rho_dm_at_sun(float(sun["rho"][0]), float(sun["rho_err"][0]),
                           float(sample.sun_kpc[2]), baryon_model(density_conf["baryons"]))
        rho_dm_true = getattr(sample.system, "rho_dm_msun_pc3", None)
        if rho_dm_true is not None:   # a slab's constant dark-matter density
            dm["rho_dm_true_gev_cm3"] = float(rho_dm_true) * MSUN_PC3_TO_GEV_CM3
        metrics.update(dm)
    table = pd.DataFrame({"x": grid[:, 0], "y": grid[:, 1], "z": grid[:, 2],
                          "rho": fields["rho"], "rho_err": fields["rho_err"],
                          "a_x": fields["a"][:, 0], "a_y": fields["a"][:, 1],
                          "a_z": fields["a"][:, 2], "n_stars": n_stars,
                          "rho_true": (np.full(len(grid), None, object) if rho_true is None
                                       else rho_true),
                          "well_sampled": region, "cbe_residual": residual,
                          "equilibrium_ok": equilibrium_ok, "source": sample.table_source,
                          "run_id": run_id})
    return table, metrics


def catalog_sample(spark, conf: Conf, logger=None) -> tuple[ValidationSample, dict, Any]:
    """The sample of ``density.source: catalog``: the RV stars of ``gaia_source`` and the
    selection-cell counts read by :mod:`gaialake.io.densityread` with the cuts of
    :mod:`gaialake.density.catalog`, weighted by the RV selection function estimated from the
    same read; returns it, the selection, distance and error metrics (logged) and its
    :class:`~gaialake.density.catalog.SelectionResampler` (for :func:`train_members`).

    Up to ``density.catalog.max_rows`` RV stars come to the driver; a larger sample stays on
    the executors (:class:`~gaialake.io.densityread.StarStream`, the sample's ``stream``): the
    driver holds a uniform subsample of ``max_rows`` stars (the flows' standardization and
    marginals, the potential's fit stars, the error budgets), the flows train on all of them
    through Petastorm and the grid counts are the whole sample's."""
    import json
    from dataclasses import replace
    from functools import partial

    from gaialake.astro.frame import SolarParameters
    from gaialake.density import catalog as cat
    from gaialake.io.densityread import StarStream, quantile_by, read_flagged_with_counts

    logger = logger or _log
    dconf = conf.get("density")
    settings = cat.CatalogSettings.from_conf(dconf)
    why = "density.source: catalog"
    stars, counts = read_flagged_with_counts(
        spark, conf, columns=cat.INPUT_COLUMNS, predicate=cat.pushdown_predicate(settings),
        annotate=partial(cat.annotate, s=settings), schema=cat.ANNOTATED_SCHEMA,
        cells=cat.CELL_COLUMNS, flag="has_rv", flag_count="n_rv", why=why)
    p90 = quantile_by(spark, conf, predicate=cat.reach_predicate(settings),
                      key_sql=cat.g_bin_sql(settings), key="g_bin", column="parallax_error",
                      q=0.9, alias="parallax_error_p90_mas", why=why)
    solar = SolarParameters.from_conf(dconf.get("solar"))
    frac = float(dconf["grid"]["radius_frac"])
    n_rv = int(counts["n_rv"].sum()) if len(counts) else 0
    if n_rv <= settings.max_rows:
        sample, metrics, resampler = cat.catalog_sample(stars.toPandas(), counts, settings,
                                                        solar, frac)
    else:
        cells = cat.selection_function(counts, settings.floor)
        metrics = cat.selection_summary(counts, cells, settings)
        logger.info("%d RV stars pass the cuts, more than density.catalog.max_rows %d: they "
                    "stay on the executors and reach the flows through Petastorm", n_rv,
                    settings.max_rows)
        stream = StarStream(stars, partial(cat.sample_rows, cells=cells, s=settings,
                                           solar=solar), cat.SAMPLE_SCHEMA)
        if settings.v_error_max_kms is not None:
            metrics["n_rv_v_error_cut"] = stream.keep_where(
                f"v_err_kms <= {settings.v_error_max_kms!r}")
        sub = stream.sample(settings.max_rows, conf.seed_for("density", "subsample"))
        sample = replace(cat.sample_of_rows(sub, settings, solar, frac, n_rv), stream=stream)
        metrics.update(cat.sample_metrics(sub, settings))
        per_cell = stream.sum_by("cell", lambda pdf: pdf[["cell", "weight"]],
                                 "cell long, weight double")
        n_in = np.zeros(len(cells))
        n_in[per_cell["cell"].to_numpy(np.int64)] = per_cell["n"].to_numpy(float)
        metrics.update({"sum_weights": float(per_cell["weight"].sum()),
                        "n_streamed": stream.n_rows, "n_subsample": len(sub)})
        resampler = cat.selection_resampler(cells, sub["cell"].to_numpy(np.int64), n_in)
    if dconf["catalog"].get("truth") is not None:
        sample = _with_truth(sample, conf.path("density.catalog.truth"), solar, logger)
    _, reach = cat.astrometric_reach(p90, settings)
    metrics.update(reach)
    logger.info("catalog selection: %s", json.dumps(metrics))
    if reach.get("n_g_bins_short_of_radius"):
        logger.warning("the parallax_over_error cut keeps 90%% of the stars only out to %.2f kpc "
                       "in %d G bins, short of density.radius_kpc %.2f: the parent sample is "
                       "incomplete there (lower density.catalog.abs_mag_max or the radius)",
                       reach["reach_min_kpc"], reach["n_g_bins_short_of_radius"],
                       settings.radius_kpc)
    return sample, metrics, resampler


def _with_truth(sample: ValidationSample, path: str, solar, logger) -> ValidationSample:
    """``sample`` (a catalog's) with the mock system of the truth file at ``path``
    (:mod:`gaialake.density.mock_catalog`) as its truth; warns when the mock was observed with
    other solar parameters than ``solar`` (the measurement's frame)."""
    from dataclasses import replace

    from gaialake.density.mock_catalog import system_from_truth
    from gaialake.io.densitymock import read_truth

    spec = read_truth(path)
    system, mock_solar = system_from_truth(spec)
    if mock_solar != solar:
        logger.warning("the mock of %s was observed with solar parameters %s, the density job "
                       "measures with %s (density.solar): its truth is in another frame",
                       path, mock_solar, solar)
    logger.info("truth of the catalog: the %s mock of %s (%s stars written)", spec["mock"],
                path, spec.get("stars_written"))
    return replace(sample, system=system, name=str(spec["mock"]),
                   spherical=spec["mock"] == "plummer")


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

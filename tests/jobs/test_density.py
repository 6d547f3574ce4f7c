"""`gaialake density` end to end: on a tiny slab mock (Petastorm feed, Delta table, registry),
and on a DR3-format warehouse (``density.source: catalog``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from gaialake.astro.healpix import pixel_of
from gaialake.density.validation import build_validation_sample
from tests.helpers import dr3_lines, dr3_table, write_dr3_file


def test_density_job_writes_grid_with_truth_and_registers_the_model(spark, conf, tmp_path):
    sets = {"density.source": "mock", "density.n_stars": 3000, "density.flows.members": 2,
            "density.flows.epochs": 2,
            "density.flows.batch_size": 512, "density.feed": "petastorm",
            "density.potential.steps": 20, "density.potential.n_fit": 2000,
            "density.grid.spacing_kpc": 0.5, "density.grid.min_stars": 1,
            "density.plots_dir": str(tmp_path / "figures")}
    for key, value in sets.items():
        conf.set(key, value)
    from gaialake.jobs.density import run

    summary = run(conf)
    from gaialake.io.delta import read_table

    table = read_table(spark, conf, "density_grid").toPandas()
    for col in ("x", "y", "z", "rho", "rho_err", "a_x", "a_y", "a_z", "n_stars", "rho_true",
                "cbe_residual", "equilibrium_ok", "run_id"):
        assert col in table.columns, col
    assert (table["cbe_residual"] >= 0).all()
    assert (table["equilibrium_ok"] == (table["cbe_residual"]
                                        <= conf.get("density.equilibrium.max_residual"))).all()
    assert summary["n_equilibrium_flagged"] == int((table["well_sampled"]
                                                    & ~table["equilibrium_ok"]).sum())
    assert 0 <= summary["coverage_1sigma"] <= summary["coverage_2sigma"] <= 1
    assert len(table) == summary["rows"] and (table["run_id"] == summary["run_id"]).all()
    sample = build_validation_sample(conf.get("density"), conf.seed_for("density", "mock") % 2**31)
    xyz = table[["x", "y", "z"]].to_numpy()
    np.testing.assert_allclose(table["rho_true"], sample.density_true(xyz), rtol=1e-12)
    assert table["n_stars"].sum() <= len(sample.x) and (table["rho_err"] > 0).all()
    assert np.isfinite(summary["rho_dm_gev_cm3"]) and summary["rho_dm_err_gev_cm3"] > 0
    assert len(list((tmp_path / "figures").glob("density_slab_*.png"))) == 2

    from gaialake.io.tracking import load_torch_model

    model = load_torch_model(conf, "gaialake-density")
    rho, _ = model.fields(xyz)
    np.testing.assert_allclose(rho, table["rho"], rtol=1e-4, atol=1e-7)



ZP = -0.017   # the DR3 parallax zero point the observed mock carries (mas)


def observed_slab_file(raw: Path, n: int, seed: int):
    """A slab mock observed like Gaia, written as one DR3 bulk file under ``raw``: parallax
    (with ZP) / pm / RV errors 0.02 mas, 0.02 mas/yr, 1 km/s; 5 % of the stars with ruwe 2;
    radial velocities for G < 11 (90 % of blue stars, 50 % of red ones) and 30 % of 11 <= G <
    12.5. Returns the written rows as pandas (the DR3 columns the density job reads)."""
    from gaialake.astro.frame import SolarParameters
    from gaialake.density.mocks import (SlabComponent, SlabMock, TracerPopulation,
                                        sample_absolute_mag)
    from gaialake.density.selection import observe
    from gaialake.io.dr3schema import DR3_COLUMNS, arrow_type

    solar = SolarParameters()
    mock = SlabMock((SlabComponent(0.084, 0.3),), 0.013,
                    (TracerPopulation(1.0, 25.0, 35.0, 25.0, 225.0),),
                    tuple(solar.position_kpc), 1.5)
    x, v = mock.sample(n, seed)
    obs = observe(x, v, sample_absolute_mag(n, 1.0, 1.0, seed + 1), seed + 2, solar,
                  parallax_error_mas=0.02, pm_error_masyr=0.02, rv_error_kms=1.0)
    rng = np.random.default_rng(seed + 3)
    g, colour = obs["phot_g_mean_mag"], rng.uniform(0.2, 2.0, n)
    p_rv = np.select([g < 11, g < 12.5], [np.where(colour < 1.0, 0.9, 0.5), 0.3], 0.0)
    has_rv = rng.random(n) < p_rv
    table = dr3_table(n, seed)
    values = {"ra": obs["ra"], "dec": obs["dec"], "parallax": obs["parallax"] + ZP,
              "parallax_error": obs["parallax_error"], "pmra": obs["pmra"],
              "pmra_error": obs["pmra_error"], "pmdec": obs["pmdec"],
              "pmdec_error": obs["pmdec_error"],
              "radial_velocity": np.where(has_rv, obs["radial_velocity"], np.nan),
              "radial_velocity_error": np.where(has_rv, 1.0, np.nan),
              "ruwe": np.where(rng.random(n) < 0.05, 2.0, 1.0),
              "astrometric_params_solved": np.full(n, 31), "phot_g_mean_mag": g,
              "bp_rp": colour,
              "source_id": (pixel_of(obs["ra"], obs["dec"], 12) << 35) + np.arange(n)}
    types = {c.name: arrow_type(c.datatype) for c in DR3_COLUMNS}
    for name, col in values.items():
        arr = pa.array(col, type=types[name], from_pandas=True)
        table = table.set_column(table.schema.get_field_index(name), name, arr)
    raw.mkdir(parents=True, exist_ok=True)
    write_dr3_file(raw / "GaiaSource_000000-000001.csv.gz", dr3_lines(table))
    return table.select(list(values)).to_pandas()


def small_catalog_run(conf, tmp_path, sets: dict) -> None:
    """Set ``conf`` for a fast ``density.source: catalog`` run on :func:`observed_slab_file`'s
    stars (2 members of 1 epoch, a coarse grid), with ``sets`` over it."""
    base = {"density.source": "catalog", "density.radius_kpc": 1.5,
            "density.catalog.abs_mag_max": 1.0, "density.catalog.parallax_zero_point_mas": ZP,
            "density.catalog.selection.hpx_order": 0,
            "density.flows.members": 2, "density.flows.epochs": 1,
            "density.flows.batch_size": 512, "density.potential.steps": 20,
            "density.potential.n_fit": 1000, "density.grid.spacing_kpc": 0.5,
            "density.grid.min_stars": 1, "density.plots_dir": str(tmp_path / "figures")}
    for key, value in {**base, **sets}.items():
        conf.set(key, value)


def test_density_job_on_a_catalog_weights_rv_stars_by_the_selection_it_estimates(spark, conf,
                                                                                  tmp_path):
    from gaialake.density.catalog import CatalogSettings, annotate
    from gaialake.io.delta import read_table
    from gaialake.jobs import density, ingest

    written = observed_slab_file(Path(conf.path("paths.raw")), 6000, seed=3)
    ingest.run(conf)
    small_catalog_run(conf, tmp_path, {"density.catalog.selection.g_step_mag": 0.5})
    summary = density.run(conf)

    table = read_table(spark, conf, "density_grid")
    assert table.count() == summary["rows"] > 0
    assert table.where("rho_true IS NULL AND source = 'catalog'").count() == summary["rows"]
    assert (table.where("cbe_residual >= 0 AND equilibrium_ok IS NOT NULL").count()
            == summary["rows"])
    assert "coverage_1sigma" not in summary   # no truth, no coverage
    # the Spark read (pushdown + annotate + groupBy) holds the stars the pure cuts keep
    parent = annotate(written, CatalogSettings.from_conf(conf.get("density")))
    assert summary["catalog_n_parent"] == len(parent) > 0
    assert summary["catalog_n_rv"] == int(parent.has_rv.sum())
    assert (summary["catalog_n_rv_kept"] + summary["catalog_n_rv_dropped"]
            == summary["catalog_n_rv"])
    assert summary["n_stars_selected"] == summary["catalog_n_rv_kept"]
    # the 1/s weights were applied: they sum to the parent stars of the kept cells
    assert summary["catalog_sum_weights"] == pytest.approx(summary["catalog_n_parent_kept"],
                                                           rel=1e-6)
    assert summary["catalog_sum_weights"] > 1.5 * summary["catalog_n_rv_kept"]
    assert np.isfinite(summary["rho_dm_gev_cm3"]) and summary["rho_dm_err_gev_cm3"] > 0


def test_a_catalog_sample_larger_than_the_driver_holds_streams_the_same_feed(spark, conf,
                                                                            tmp_path):
    """Beyond ``density.catalog.max_rows`` the RV stars stay on the executors: the Petastorm
    feed built there holds every star with the weights the in-memory feed gives it (the same
    bootstrap counts and per-member selection weights), and the grid counts are the whole
    sample's."""
    from gaialake.density.ensemble import member_frame
    from gaialake.density.measure import grid_points
    from gaialake.density.workflow import streamed_feed, catalog_sample
    from gaialake.io.delta import read_table
    from gaialake.jobs import density, ingest

    observed_slab_file(Path(conf.path("paths.raw")), 6000, seed=3)
    ingest.run(conf)
    small_catalog_run(conf, tmp_path, {   # 336 count cells (fewer than max_rows below)
        "density.catalog.selection.g_step_mag": 2.0,
        "density.catalog.selection.bp_rp_step_mag": 4.0})
    whole, metrics, resampler = catalog_sample(spark, conf)
    n = len(whole.x)
    conf.set("density.catalog.max_rows", n // 3)
    streamed, s_metrics, s_resampler = catalog_sample(spark, conf)
    assert whole.stream is None and streamed.stream is not None
    assert streamed.n_stars == s_metrics["n_streamed"] == n
    assert n // 4 < len(streamed.x) <= n // 3           # the driver's uniform subsample
    assert s_metrics["sum_weights"] == pytest.approx(metrics["sum_weights"], rel=1e-9)

    fit = {"members": 2, "seed": 11, "bootstrap": True, "weight_velocity": True}
    want = member_frame(whole.x, whole.v, whole.weight, whole.star_keys(), reweight=resampler,
                        **fit)
    got = streamed_feed(streamed, fit, s_resampler).toPandas()
    order = ["x", "y", "z"]
    want = want.sort_values(order).reset_index(drop=True)
    got = got.sort_values(order).reset_index(drop=True)
    assert len(got) == len(want) == n
    np.testing.assert_allclose(got.to_numpy(float), want.to_numpy(float), rtol=1e-12)
    assert (got["w_n0"] != got["w_n1"]).any()           # members differ

    spacing = 0.5
    grid = grid_points(whole.grid_center_kpc, whole.grid_radius_kpc, spacing)
    np.testing.assert_array_equal(streamed.count_stars(grid, spacing),
                                  whole.count_stars(grid, spacing))
    streamed.stream.close()

    summary = density.run(conf)        # the job end to end on the streamed sample
    assert summary["n_stars_selected"] == summary["catalog_n_rv_kept"] == n
    assert summary["catalog_n_subsample"] == len(streamed.x)
    table = read_table(spark, conf, "density_grid").toPandas()
    assert len(table) == summary["rows"] > 0 and np.isfinite(table["rho"]).all()

"""The density job's catalog input, pure part: cuts, distances, frame, RV selection, errors."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from gaialake.astro.frame import GALCEN_DEC_DEG, GALCEN_RA_DEG, SolarParameters
from gaialake.astro.healpix import pixel_of
from gaialake.conf import load_conf
from gaialake.density.catalog import (CELL_COLUMNS, K_KMS_PER_MASYR_KPC, CatalogSettings,
                                      annotate, catalog_sample, distance_bias_bound,
                                      distance_from_parallax, quality_mask, selection_function,
                                      selection_resampler, selection_summary, selection_weights,
                                      velocity_errors_kms)

ZP = -0.017


def stars(n: int, **cols) -> pd.DataFrame:
    """``n`` good 6D stars 0.5 kpc away (G 10, 5-parameter solutions), columns overridable."""
    base = {"source_id": np.arange(n, dtype=np.int64) + 1, "ra": np.full(n, 10.0),
            "dec": np.full(n, 20.0), "parallax": np.full(n, 2.0 + ZP),
            "parallax_error": np.full(n, 0.02), "pmra": np.full(n, 5.0),
            "pmra_error": np.full(n, 0.02), "pmdec": np.full(n, -3.0),
            "pmdec_error": np.full(n, 0.02), "radial_velocity": np.full(n, 12.0),
            "radial_velocity_error": np.full(n, 1.0), "ruwe": np.full(n, 1.0),
            "astrometric_params_solved": np.full(n, 31), "phot_g_mean_mag": np.full(n, 10.0),
            "bp_rp": np.full(n, 1.0)}
    base.update({k: np.asarray(v) for k, v in cols.items()})
    return pd.DataFrame(base)


SETTINGS = CatalogSettings(radius_kpc=3.0, zero_point_mas=ZP, abs_mag_max=2.5)


def test_quality_mask_applies_each_documented_cut():
    # star 0 passes; each other star fails exactly one cut
    df = stars(7, astrometric_params_solved=[31, 3, 95, 31, 31, 31, 31],
               ruwe=[1.0, 1.0, 1.0, 1.5, 1.0, 1.0, 1.0],
               parallax_error=[0.02, 0.02, 0.02, 0.02, 0.25, 0.02, 0.02],
               parallax=[2.0 + ZP] * 5 + [0.3 + ZP, 2.0 + ZP],      # star 5: 3.33 kpc
               phot_g_mean_mag=[10.0] * 6 + [12.0])                 # star 6: M_G = 3.5
    assert quality_mask(df, SETTINGS).tolist() == [True, False, True, False, False, False, False]
    assert quality_mask(df, replace(SETTINGS, abs_mag_max=None))[6]


def test_distance_subtracts_the_zero_point_and_its_bias_is_bounded_at_the_radius():
    np.testing.assert_allclose(distance_from_parallax([0.5 + ZP, 0.25 + ZP], ZP), [2.0, 4.0])
    assert np.isnan(distance_from_parallax([ZP - 0.1], ZP)[0])
    bound = distance_bias_bound(SETTINGS)
    assert bound["dist_bias_frac_noise"] == pytest.approx(0.01)
    assert bound["dist_bias_frac_zero_point"] == pytest.approx(3.0 * 0.015)
    # stars at the radius with true parallax / error = 12, kept at observed poe >= 10:
    # the mean fractional bias of 1/parallax stays inside the noise term of the bound
    rng = np.random.default_rng(0)
    true = 1.0 / 3.0
    obs = true + true / 12.0 * rng.standard_normal(400_000)
    kept = obs / (true / 12.0) >= 10.0
    bias = np.mean(1.0 / obs[kept]) * true - 1.0
    assert abs(bias) < bound["dist_bias_frac_noise"]


def test_a_star_towards_the_galactic_centre_lands_on_the_sun_centre_line():
    solar = SolarParameters()
    # 1 kpc towards the Galactic centre, at rest relative to the Sun but for 10 km/s outwards
    df = stars(1, ra=[GALCEN_RA_DEG], dec=[GALCEN_DEC_DEG], parallax=[1.0 + ZP],
               pmra=[0.0], pmdec=[0.0], radial_velocity=[-10.0], phot_g_mean_mag=[9.0])
    parent = annotate(df, SETTINGS)
    counts = parent.groupby(list(CELL_COLUMNS), as_index=False).agg(
        n_parent=("has_rv", "size"), n_rv=("has_rv", "sum"))
    sample, metrics, _ = catalog_sample(parent[parent.has_rv], counts, SETTINGS, solar, 0.8)
    sun = solar.position_kpc
    towards_gc = -sun / np.linalg.norm(sun)
    np.testing.assert_allclose(sample.x[0], sun + 1.0 * towards_gc, atol=1e-9)
    np.testing.assert_allclose(sample.v[0], np.array(solar.v_sun_kms) - 10.0 * towards_gc,
                               atol=1e-8)
    assert sample.weight.tolist() == [1.0] and not sample.has_truth
    assert sample.table_source == "catalog" and metrics["n_parent"] == 1


def test_rv_selection_weights_recover_an_injected_selection():
    rng = np.random.default_rng(1)
    n = 80_000
    s = replace(SETTINGS, abs_mag_max=None, g_range_mag=(8.0, 16.0), g_step_mag=1.0,
                bp_rp_range_mag=(0.0, 3.0), bp_rp_step_mag=0.5, hpx_order=0, floor=0.05)
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    g, colour = rng.uniform(8, 16, n), rng.uniform(0, 3, n)
    dist = rng.uniform(0.1, 2.9, n)
    # the injected selection: by G, colour and pixel; faint red stars almost never have an RV
    s_true = np.select([g < 12, g < 14], [0.9, 0.3], 0.02) * np.where(colour > 1.5, 0.5, 1.0) \
        * np.where(pixel_of(ra, dec, 0) % 2 == 1, 0.6, 1.0)
    has = rng.random(n) < s_true
    df = stars(n, ra=ra, dec=dec, phot_g_mean_mag=g, bp_rp=colour, parallax=1.0 / dist + ZP,
               radial_velocity=np.where(has, 5.0, np.nan))
    parent = annotate(df, s)
    assert len(parent) == n and parent.has_rv.sum() == has.sum()
    counts = parent.groupby(list(CELL_COLUMNS), as_index=False).agg(
        n_parent=("has_rv", "size"), n_rv=("has_rv", "sum"))
    cells = selection_function(counts, s.floor)
    rv = parent[parent.has_rv].reset_index(drop=True)
    weight, kept, cell = selection_weights(rv, cells)
    keys = ["g_bin", "c_bin", "pix"]   # each star's cell is the row holding its bins
    np.testing.assert_array_equal(cells[keys].to_numpy()[cell], rv[keys].to_numpy())

    # per cell, s within 4 binomial sigma of the injected value
    truth = parent.assign(s_true=s_true).groupby(["g_bin", "c_bin", "pix"])["s_true"].mean()
    cells = cells.set_index(["g_bin", "c_bin", "pix"]).join(truth)
    err = np.sqrt(cells.s_true * (1 - cells.s_true) / cells.n_parent)
    assert (np.abs(cells.s - cells.s_true) < 4 * err + 1e-12).all()
    # faint cells (s <= 0.02) fall below the floor; brighter ones are kept
    assert not cells.loc[cells.s_true <= 0.02, "kept"].any()
    assert cells.loc[cells.s_true >= 0.09, "kept"].all()

    # weights of a kept cell sum to its parent count; the weighted RV stars recover the
    # parent's distance distribution, which the raw RV stars do not
    summary = selection_summary(counts, cells.reset_index(), s)
    assert weight[kept].sum() == pytest.approx(summary["n_parent_kept"], rel=1e-9)
    assert summary["n_rv_kept"] + summary["n_rv_dropped"] == has.sum() == summary["n_rv"]
    assert summary["n_rv_dropped"] == int((~kept).sum())
    bright = parent.phot_g_mean_mag < 14
    d_rv = 1.0 / (rv.parallax - ZP)
    d_parent = 1.0 / (parent.parallax - ZP)
    edges = np.linspace(0.1, 2.9, 8)
    want = np.histogram(d_parent[bright], edges)[0] / bright.sum()
    got = np.histogram(d_rv[kept], edges, weights=weight[kept])[0] / weight[kept].sum()
    np.testing.assert_allclose(got, want, atol=0.01)
    # what the raw RV stars get wrong is the G distribution of the parent
    g_want = np.histogram(parent.phot_g_mean_mag[bright], np.arange(8, 15))[0] / bright.sum()
    g_got = np.histogram(rv.phot_g_mean_mag[kept], np.arange(8, 15), weights=weight[kept])[0]
    g_raw = np.histogram(rv.phot_g_mean_mag[kept], np.arange(8, 15))[0]
    np.testing.assert_allclose(g_got / g_got.sum(), g_want, atol=0.01)
    assert np.max(np.abs(g_raw / g_raw.sum() - g_want)) > 0.05
    lost = [v for k, v in summary.items() if k.startswith("lost_frac_")]
    assert len(lost) == 3 and all(0.2 < v < 0.4 for v in lost)   # ~1/4 of the stars are faint


def test_bootstrap_members_redraw_the_selection_function_by_its_binomial_spread():
    # cell 0: 2000 parent stars, 500 with an RV (s = 0.25), all in the sample; cell 1: 400
    # parent, 360 RV (s = 0.9), 10 of them cut from the sample (e.g. on their velocity error)
    cells = pd.DataFrame({"g_bin": [0, 1], "c_bin": [0, 0], "pix": [0, 0],
                          "n_parent": [2000, 400], "n_rv": [500, 360]})
    cells["s"] = cells["n_rv"] / cells["n_parent"]
    cell = np.repeat([0, 1], [500, 350])    # the sample stars' cells
    resample = selection_resampler(cells, cell, np.bincount(cell))
    n = len(cell)
    rng = np.random.default_rng(3)
    s_star, total0 = [], []
    for k in range(2000):   # members: Poisson(1) counts of the sample stars, as the ensemble draws
        count = rng.poisson(1.0, n).astype(float)
        w = resample(count, seed=k)
        assert np.all(w[count > 0] > 0)
        s_star.append([1.0 / w[:500][count[:500] > 0][0], 1.0 / w[500:][count[500:] > 0][0]])
        total0.append(float((count[:500] * w[:500]).sum()))
    s_star = np.array(s_star)
    for c, (n_parent, s_true) in enumerate([(2000, 0.25), (400, 0.9)]):
        binomial = np.sqrt(s_true * (1 - s_true) / n_parent)
        assert s_star[:, c].mean() == pytest.approx(s_true, abs=4 * binomial / np.sqrt(2000))
        assert s_star[:, c].std() == pytest.approx(binomial, rel=0.1)
    # a cell whose RV stars are all in the sample weighs as its resampled parent count:
    # Poisson(2000) (the fixed weights 1/s would give the RV stars' Poisson(500) x 4)
    assert np.mean(total0) == pytest.approx(2000, abs=4 * np.sqrt(2000 / 2000))
    assert np.std(total0) == pytest.approx(np.sqrt(2000), rel=0.1)
    # the same member seed gives the same weights
    count = np.ones(n)
    np.testing.assert_array_equal(resample(count, 5), resample(count, 5))
    assert not np.array_equal(resample(count, 5), resample(count, 6))


def test_velocity_error_propagation_matches_a_monte_carlo():
    rng = np.random.default_rng(2)
    df = stars(1, parallax=[0.5 + ZP], parallax_error=[0.04], pmra=[30.0], pmra_error=[0.05],
               pmdec=[-10.0], pmdec_error=[0.08], radial_velocity_error=[2.0])
    m = 200_000
    d = 1.0 / (0.5 + 0.04 * rng.standard_normal(m))
    va = K_KMS_PER_MASYR_KPC * (30.0 + 0.05 * rng.standard_normal(m)) * d
    vd = K_KMS_PER_MASYR_KPC * (-10.0 + 0.08 * rng.standard_normal(m)) * d
    mc = np.sqrt(va.var() + vd.var() + 2.0**2)
    assert velocity_errors_kms(df, ZP)[0] == pytest.approx(mc, rel=0.03)


def test_catalog_settings_come_from_the_default_conf_and_name_bad_keys():
    dconf = load_conf().get("density")
    s = CatalogSettings.from_conf(dconf)
    assert s.params_solved == (31, 95) and s.radius_kpc == dconf["radius_kpc"]
    dconf["catalog"]["selection"]["hpx_order"] = 9
    with pytest.raises(ValueError, match="density.catalog.max_rows"):
        CatalogSettings.from_conf(dconf)
    with pytest.raises(KeyError, match="radial_velocity_error"):
        annotate(stars(2).drop(columns=["radial_velocity_error"]), s)

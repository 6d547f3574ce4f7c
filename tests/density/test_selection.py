"""6D selection near the Sun, Galactocentric coordinates, completeness, the baryon model."""
from __future__ import annotations

import numpy as np

from gaialake.density.baryons import baryon_model, rho_dm_at_sun
from gaialake.density.mocks import SlabComponent, SlabMock, TracerPopulation, sample_absolute_mag
from gaialake.density.selection import (SolarParameters, completeness_gaussian_lf,
                                        completeness_weights, distance_kpc,
                                        galactocentric_to_icrs, icrs_to_galactocentric, observe,
                                        within_radius)


def test_sun_is_at_rest_at_origin_of_heliocentric_frame():
    solar = SolarParameters()
    np.testing.assert_allclose(solar.position_kpc, [-8.12197337, 0.0, 0.0208], atol=1e-6)
    # a star 1 pc from the Sun towards the Galactic centre, moving with the Sun
    obs = galactocentric_to_icrs(solar.position_kpc[None] + [[1e-3, 0, 0]],
                                 np.array([solar.v_sun_kms]), solar)
    assert abs(obs["parallax"][0] - 1000.0) < 1.0  # mas
    assert abs(obs["radial_velocity"][0]) < 1e-6 and abs(obs["pmra"][0]) < 1e-3


def test_icrs_galactocentric_round_trip():
    rng = np.random.default_rng(0)
    solar = SolarParameters()
    x = solar.position_kpc + rng.normal(0, 1.0, (500, 3))
    v = rng.normal(0, 50, (500, 3)) + [0, 230, 0]
    obs = galactocentric_to_icrs(x, v, solar)
    x2, v2 = icrs_to_galactocentric(obs["ra"], obs["dec"], obs["parallax"], obs["pmra"],
                                    obs["pmdec"], obs["radial_velocity"], solar)
    np.testing.assert_allclose(x2, x, atol=1e-9)
    np.testing.assert_allclose(v2, v, atol=1e-8)
    assert np.all(within_radius(x2, 10.0, solar) == (distance_kpc(x2, solar) < 10.0))


def test_completeness_weights_recover_true_counts_on_a_magnitude_limited_mock():
    solar = SolarParameters()
    mock = SlabMock((SlabComponent(0.084, 0.28),), 0.013,
                    (TracerPopulation(1.0, 40.0, 40.0, 30.0, 220.0),),
                    tuple(solar.position_kpc), 3.0)
    x, v = mock.sample(40000, seed=5)
    mag = sample_absolute_mag(len(x), 1.0, 1.5, seed=6)
    obs = observe(x, v, mag, seed=7, solar=solar)
    seen = obs["phot_g_mean_mag"] < 13.0  # a known selection: G < 13
    d = distance_kpc(x, solar)
    # the model completeness matches the observed fraction per distance shell
    edges = np.linspace(0.5, 2.5, 5)
    for lo, hi in zip(edges[:-1], edges[1:]):
        shell = (d >= lo) & (d < hi)
        model = completeness_gaussian_lf(d[shell], 13.0, 1.0, 1.5).mean()
        assert abs(seen[shell].mean() - model) < 4 * np.sqrt(model * (1 - model) / shell.sum())
    # weighting the selected stars by 1/c(d) restores the true counts; unweighted does not
    w, keep = completeness_weights(d[seen], 13.0, 1.0, 1.5, min_completeness=0.2)
    inner = d < 2.0
    for lo, hi in ((0.5, 1.0), (1.0, 1.5), (1.5, 2.0)):
        shell_true = ((d >= lo) & (d < hi)).sum()
        s = (d[seen] >= lo) & (d[seen] < hi) & keep
        assert abs(w[s].sum() - shell_true) < 4 * np.sqrt(np.sum(w[s] ** 2))
    assert seen[inner & (d > 1.5)].mean() < 0.8  # the selection really is incomplete there


def test_rho_dm_is_total_minus_mckee_baryons_in_gev():
    comps = baryon_model([{"name": "gas", "rho0_msun_pc3": 0.041, "rho0_err_msun_pc3": 0.004,
                           "h_kpc": 0.167},
                          {"name": "stars", "rho0_msun_pc3": 0.043, "rho0_err_msun_pc3": 0.004,
                           "h_kpc": 0.388}])
    out = rho_dm_at_sun(0.097, 0.0, 0.0, comps)
    assert abs(out["rho_dm_msun_pc3"] - 0.013) < 1e-12
    assert abs(out["rho_dm_gev_cm3"] - 0.4936) < 1e-3  # McKee et al. 2015: 0.49 GeV/cm^3
    assert abs(out["rho_dm_err_msun_pc3"] - np.hypot(0.004, 0.004)) < 1e-12

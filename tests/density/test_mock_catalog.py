"""The density mock observed like DR3 (pure numpy): its parallax zero point and the conf of its
own catalog."""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from gaialake.astro.frame import SolarParameters
from gaialake.conf import load_conf
from gaialake.density.mock_catalog import (MAX_STARS_PER_FILE, MockCatalogSettings, draw_mock,
                                           fingerprint, mock_catalog_conf, observe_stars)


def test_the_mock_parallaxes_carry_the_zero_point_and_nothing_else_changes():
    conf = load_conf()
    dconf = conf.get("density")
    settings = replace(MockCatalogSettings.from_conf(dconf), n_stars=3000)
    solar = SolarParameters.from_conf(dconf["solar"])
    _, x, v, feh = draw_mock(dconf, settings, solar, 7)
    with_zp, _ = observe_stars(np.random.default_rng(1), x, v, feh, settings, solar)
    without, _ = observe_stars(np.random.default_rng(1), x, v, feh,
                               replace(settings, parallax_zero_point_mas=0.0), solar)
    assert settings.parallax_zero_point_mas == -0.017 and with_zp.num_rows > 100
    np.testing.assert_allclose(with_zp.column("parallax").to_numpy(zero_copy_only=False)
                               - without.column("parallax").to_numpy(zero_copy_only=False),
                               -0.017, atol=1e-12)
    for name in ("source_id", "phot_g_mean_mag", "pmra", "radial_velocity"):
        assert with_zp.column(name).equals(without.column(name))


def test_the_mock_catalog_has_its_own_warehouse_and_database_and_a_settings_fingerprint(
        tmp_path):
    conf = load_conf(sets=[f"paths.warehouse={tmp_path / 'w'}",
                           f"density.mock_catalog.raw={tmp_path / 'raw'}"])
    mock = mock_catalog_conf(conf)
    assert mock.path("paths.warehouse") == str(tmp_path / "w_densitymock")
    assert mock.get("catalog.database") == conf.get("catalog.database") + "_densitymock"
    assert mock.path("paths.raw") == str(tmp_path / "raw")
    assert mock.get("density.source") == "catalog"
    assert mock.path("density.catalog.truth") == str(tmp_path / "raw" / "truth_density.json")
    # the sky's conf is untouched; the fingerprint follows the mock's settings, not the flows'
    assert conf.get("density.source") == "mock_catalog"
    before = fingerprint(conf)
    conf.set("density.flows.epochs", 1)
    assert fingerprint(conf) == before
    conf.set("density.mock_catalog.n_stars", 5)
    assert fingerprint(conf) != before


def test_a_big_mock_is_written_in_more_files_than_asked():
    settings = MockCatalogSettings.from_conf(load_conf().get("density"))
    assert settings.files == settings.n_files == 8           # 1e6 tracers: 125k per file
    big = replace(settings, n_stars=10_000_001)
    assert big.files == 41 and big.n_stars / big.files <= MAX_STARS_PER_FILE

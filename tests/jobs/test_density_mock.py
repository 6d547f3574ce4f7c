"""`gaialake density` with ``density.source: mock_catalog``: the validation mock written as DR3
bulk files (`gaialake density_mock`), ingested into its own warehouse (`gaialake ingest`) and
measured through the catalog path a user runs on DR3, with its truth."""
from __future__ import annotations

import os

import numpy as np


def test_density_mock_goes_through_ingest_and_the_catalog_path_with_its_truth(spark, conf,
                                                                               tmp_path):
    from gaialake.density.catalog import CatalogSettings, annotate, selection_function
    from gaialake.density.mock_catalog import mock_catalog_conf, rv_completeness, system_from_truth
    from gaialake.io.delta import read_table
    from gaialake.io.densitymock import read_truth
    from gaialake.jobs import density

    raw = tmp_path / "density_raw"
    # a small ball (G < 13.4 for M_G < 2.5 at 1.5 kpc) and an RV selection across its G range
    sets = {"density.source": "mock_catalog", "density.mock_catalog.raw": str(raw),
            "density.mock_catalog.n_stars": 8000, "density.mock_catalog.n_files": 2,
            "density.radius_kpc": 1.5, "density.mock_catalog.rv_selection.g50_mag": 12.0,
            "density.mock_catalog.rv_selection.width_mag": 0.5,
            "density.catalog.selection.hpx_order": 0,
            "density.catalog.selection.g_step_mag": 0.5,
            "density.catalog.selection.bp_rp_step_mag": 4.0,
            "density.flows.members": 2, "density.flows.epochs": 1,
            "density.flows.batch_size": 512, "density.potential.steps": 20,
            "density.potential.n_fit": 1000, "density.grid.spacing_kpc": 0.5,
            "density.grid.min_stars": 1, "density.equilibrium.n_v": 8,
            "density.plots_dir": str(tmp_path / "figures")}
    for key, value in sets.items():
        conf.set(key, value)
    summary = density.run(conf)

    # the mock went into a warehouse of its own, whole, nothing quarantined
    mock = mock_catalog_conf(conf)
    assert mock.path("paths.warehouse") == conf.path("paths.warehouse") + "_densitymock"
    truth_path = str(raw / "truth_density.json")
    truth = read_truth(truth_path)
    assert truth["stars_written"] > truth["stars_with_rv"] > 0
    stars = read_table(spark, mock, "gaia_source").toPandas()
    assert len(stars) == truth["stars_written"]
    assert read_table(spark, mock, "gaia_source_quarantine").count() == 0
    assert not os.path.exists(conf.table_path("gaia_source"))

    # the parallaxes carry DR3's zero point, which the catalog path removes
    zp = conf.get("density.mock_catalog.parallax_zero_point_mas")
    assert zp == conf.get("density.catalog.parallax_zero_point_mas") < 0

    # the RV subset is magnitude-limited: the fraction with an RV falls with G
    g, has_rv = stars["phot_g_mean_mag"].to_numpy(float), stars["radial_velocity"].notna()
    fractions = [has_rv[(g >= lo) & (g < hi)].mean() for lo, hi in ((6, 11), (11, 12.5),
                                                                      (12.5, 14))]
    assert fractions[0] > fractions[1] > fractions[2] > 0

    # the catalog path's selection estimate follows the RV selection the mock drew
    settings = CatalogSettings.from_conf(conf.get("density"))
    parent = annotate(stars, settings)
    counts = (parent.groupby(["g_bin", "c_bin", "pix", "shell"], as_index=False)
              .agg(n_parent=("has_rv", "size"), n_rv=("has_rv", "sum")))
    cells = selection_function(counts, settings.floor)
    rv = parent[parent["has_rv"]].merge(cells, on=["g_bin", "c_bin", "pix"])
    true_s = rv_completeness(rv["phot_g_mean_mag"], 12.0, 0.5)
    assert true_s.min() < 0.3 and np.corrcoef(rv["s"], true_s)[0, 1] > 0.5

    # the grid lands in the sky's warehouse, rho_true filled from the truth file
    table = read_table(spark, conf, "density_grid").toPandas()
    assert len(table) == summary["rows"] > 0 and (table["source"] == "catalog_slab").all()
    system, _ = system_from_truth(truth)
    np.testing.assert_allclose(table["rho_true"].astype(float),
                               system.density_msun_pc3(table[["x", "y", "z"]].to_numpy()),
                               rtol=1e-12)
    assert summary["n_stars_selected"] == summary["catalog_n_rv_kept"] > 0
    assert 0 <= summary["coverage_1sigma"] <= summary["coverage_2sigma"] <= 1
    assert summary["rho_dm_true_gev_cm3"] > 0 and summary["rho_centre_true_msun_pc3"] > 0

    # re-run with the same settings: the mock is not drawn again
    stamp = os.stat(truth_path).st_mtime_ns
    density.mock_catalog(spark, conf)
    assert os.stat(truth_path).st_mtime_ns == stamp

    # other settings: drawn again, and its warehouse holds only the new mock
    conf.set("density.mock_catalog.n_stars", 5000)
    density.mock_catalog(spark, conf)
    again = read_truth(truth_path)
    assert again["stars_drawn"] == 5000 and again["fingerprint"] != truth["fingerprint"]
    assert read_table(spark, mock, "gaia_source").count() == again["stars_written"]

"""`gaialake density_mock` -> bulk files -> `gaialake ingest` -> `gaialake density` with
``density.source: catalog``: the validation mock measured through the path a user runs on DR3."""
from __future__ import annotations

import numpy as np


def test_density_mock_goes_through_ingest_and_the_catalog_path_with_its_truth(spark, conf,
                                                                               tmp_path):
    from gaialake.density.catalog import CatalogSettings, annotate, selection_function
    from gaialake.density.mock_catalog import rv_completeness, system_from_truth
    from gaialake.io.delta import read_table
    from gaialake.io.densitymock import read_truth
    from gaialake.jobs import density, density_mock, ingest

    raw = tmp_path / "density_raw"
    # a small ball (G < 13.4 for M_G < 2.5 at 1.5 kpc) and an RV selection across its G range
    sets = {"density.mock_catalog.raw": str(raw), "density.mock_catalog.n_stars": 8000,
            "density.mock_catalog.n_files": 2, "density.radius_kpc": 1.5,
            "density.mock_catalog.rv_selection.g50_mag": 12.0,
            "density.mock_catalog.rv_selection.width_mag": 0.5}
    for key, value in sets.items():
        conf.set(key, value)
    written = density_mock.run(conf)
    assert written["stars_written"] > written["stars_with_rv"] > 0

    conf.set("paths.raw", str(raw))
    loaded = ingest.run(conf)
    assert loaded["failed"] == 0 and loaded["rows_quarantined"] == 0
    assert loaded["rows_kept"] == written["stars_written"]

    # the RV subset is magnitude-limited: the fraction with an RV falls with G
    stars = read_table(spark, conf, "gaia_source").toPandas()
    g, has_rv = stars["phot_g_mean_mag"].to_numpy(float), stars["radial_velocity"].notna()
    fractions = [has_rv[(g >= lo) & (g < hi)].mean() for lo, hi in ((6, 11), (11, 12.5),
                                                                      (12.5, 14))]
    assert fractions[0] > fractions[1] > fractions[2] > 0

    sets = {"density.source": "catalog", "density.catalog.truth": written["truth"],
            "density.catalog.parallax_zero_point_mas": 0.0,
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

    # the catalog path's selection estimate follows the RV selection the mock drew
    settings = CatalogSettings.from_conf(conf.get("density"))
    parent = annotate(stars, settings)
    counts = (parent.groupby(["g_bin", "c_bin", "pix", "shell"], as_index=False)
              .agg(n_parent=("has_rv", "size"), n_rv=("has_rv", "sum")))
    cells = selection_function(counts, settings.floor)
    rv = parent[parent["has_rv"]].merge(cells, on=["g_bin", "c_bin", "pix"])
    true_s = rv_completeness(rv["phot_g_mean_mag"], 12.0, 0.5)
    assert true_s.min() < 0.3 and np.corrcoef(rv["s"], true_s)[0, 1] > 0.5

    # rho_true filled from the truth file, on the catalog's rows
    table = read_table(spark, conf, "density_grid").toPandas()
    assert len(table) == summary["rows"] > 0 and (table["source"] == "catalog").all()
    system, _ = system_from_truth(read_truth(written["truth"]))
    np.testing.assert_allclose(table["rho_true"].astype(float),
                               system.density_msun_pc3(table[["x", "y", "z"]].to_numpy()),
                               rtol=1e-12)
    assert summary["n_stars_selected"] == summary["catalog_n_rv_kept"] > 0
    assert 0 <= summary["coverage_1sigma"] <= summary["coverage_2sigma"] <= 1
    assert summary["rho_dm_true_gev_cm3"] > 0 and summary["rho_centre_true_msun_pc3"] > 0

"""`gaialake density` end to end on a tiny slab mock: Petastorm feed, Delta table, registry."""
from __future__ import annotations

import numpy as np

from gaialake.density.validation import build_validation_sample


def test_density_job_writes_grid_with_truth_and_registers_the_model(spark, conf, tmp_path):
    sets = {"density.n_stars": 3000, "density.flows.members": 2, "density.flows.epochs": 2,
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
                "run_id"):
        assert col in table.columns, col
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


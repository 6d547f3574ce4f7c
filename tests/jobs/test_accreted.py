"""`gaialake accreted` on local Spark: Petastorm training, transfer, evaluation on B, the
catalog (null scores for missing astrometry), MLflow registration, deterministic scoring.

The two small skies (A as the main catalog, B as the side sky) are drawn with the sky's sampler
and written straight to Delta (``gaialake generate``/``ingest`` have their own tests), with
rows of missing astrometry added to the main catalog.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaialake.io.delta import read_table, write_table

COLUMNS = ["source_id", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec",
           "pmdec_error", "radial_velocity", "radial_velocity_error", "ruwe", "phot_g_mean_mag"]


def _write_sky(spark, conf, galaxy: str, n_stars: int, broken: int = 0) -> pd.DataFrame:
    from gaialake.sky.skymodel import build_sky_model, sample_range

    sky = conf.with_overrides([f"sky.galaxy={galaxy}", f"sky.n_stars={n_stars}",
                               "sky.streams=off", "sky.g_limit=17.5"])
    model = build_sky_model(sky)
    stars, truth = [], []
    for fr in model.ranges:
        table, t = sample_range(model, fr)
        stars.append(table.select(COLUMNS).to_pandas())
        truth.append(t[["source_id", "origin", "component"]])
    stars, truth = pd.concat(stars, ignore_index=True), pd.concat(truth, ignore_index=True)
    if broken:  # missing astrometry: null parallax, null proper motion, negative parallax
        bad = stars.iloc[:broken].copy()
        bad["source_id"] = -np.arange(1, broken + 1)
        bad.loc[bad.index[0::3], "parallax"] = None
        bad.loc[bad.index[1::3], "pmra"] = None
        bad.loc[bad.index[2::3], "parallax"] = -0.5
        stars = pd.concat([stars, bad], ignore_index=True)
    write_table(spark.createDataFrame(stars).repartition(2), conf, "gaia_source",
                partition_by=())  # the test rows have no hpx column
    write_table(spark.createDataFrame(truth), conf, "truth_origin")
    return stars


def test_accreted_job_trains_on_A_tests_on_B_and_writes_the_catalog(spark, conf, tmp_path):
    import mlflow

    from gaialake.accreted.scoring import score_stars
    from gaialake.accreted.sources import SOURCE_MARKER, side_conf
    from gaialake.accreted.classifier_spark import score_catalog
    from gaialake.io.tracking import load_torch_model, state_to_bytes
    from gaialake.jobs import accreted

    conf = conf.with_overrides([
        "sky.galaxy=A", f"accreted.side_root={tmp_path / 'skies'}",
        f"accreted.figures_dir={tmp_path / 'figures'}", "accreted.net.hidden=[32, 32]",
        "accreted.train.epochs=3", "accreted.transfer.epochs=1", "accreted.target_purity=0.5"])
    stars = _write_sky(spark, conf, "A", 25_000, broken=30)
    side, marker = side_conf(conf, "B")
    _write_sky(spark, side, "B", 25_000)
    root = Path(side.path("paths.raw")).parent
    (root / SOURCE_MARKER).write_text(marker)  # B's sky counts as made by the job

    summary = accreted.run(conf)
    print({k: v for k, v in summary.items() if not isinstance(v, dict)})
    # tiny skies, 3 epochs: the plumbing, not the science (tests/accreted/test_accreted.py checks that)
    assert summary["auc_A"] > 0.9 and summary["auc_B"] > 0.9
    assert 0.0 < summary["threshold"] < 1.0 and summary["purity_B_at_threshold"] >= 0.5
    assert summary["completeness_B_at_threshold"] > 0.2
    for key in ("auc_baseline_B", "baseline_purity_B", "completeness_at_baseline_purity_B",
                "auc_A_5d", "auc_A_6d"):
        assert key in summary

    catalog = spark.sql(f"SELECT * FROM {conf.get('catalog.database')}.accreted_catalog")
    cat = catalog.toPandas().set_index("source_id").sort_index()
    assert len(cat) == len(stars) and cat.index.is_unique
    bad = cat.loc[cat.index < 0]
    assert len(bad) == 30 and bad["p_accreted"].isna().all()
    assert (bad["unscored_reason"] == "missing_astrometry").all()
    scored = cat["p_accreted"].notna()
    assert scored.sum() > 0.7 * len(cat)
    assert cat.loc[scored, "p_accreted"].between(0, 1).all()
    assert set(cat.loc[scored, "variant"]) == {"5d", "6d"}
    assert (cat.loc[~scored, "unscored_reason"].isin(
        ["missing_astrometry", "parallax_over_error", "ruwe"])).all()
    assert (cat["model_version"] == summary["model_version"]).all()
    assert (cat["run_id"] == summary["run_id"]).all()

    # the registered champion reproduces the catalog (pyfunc wrapper and the torch module)
    module = load_torch_model(conf, accreted.REGISTERED_NAME)
    assert str(module.gaialake_version) == summary["model_version"]
    threshold = module.gaialake_config["threshold"]
    assert threshold == pytest.approx(summary["threshold"], abs=1e-4)
    assert (cat["is_accreted"] == (cat["p_accreted"] >= threshold)).all()  # False where null
    sample = stars.set_index("source_id").loc[cat.index[:2000]].reset_index()
    mine = score_stars(module, sample)
    np.testing.assert_allclose(mine["p_accreted"].to_numpy(),
                               cat["p_accreted"].iloc[:2000].to_numpy(), rtol=1e-5, atol=1e-9)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{accreted.REGISTERED_NAME}@champion")
    np.testing.assert_allclose(pyfunc.predict(sample)["p_accreted"].to_numpy(),
                               mine["p_accreted"].to_numpy(), rtol=1e-6)

    # scoring on executors is deterministic: the same rows twice give the same numbers
    gaia = read_table(spark, conf, "gaia_source")
    state = state_to_bytes(module.state_dict())
    first = score_catalog(gaia, state, module.gaialake_config).toPandas()
    again = score_catalog(gaia, state, module.gaialake_config).toPandas()
    pd.testing.assert_frame_equal(first.sort_values("source_id").reset_index(drop=True),
                                  again.sort_values("source_id").reset_index(drop=True),
                                  check_exact=False, rtol=1e-6, atol=1e-7)

    figures = sorted(p.name for p in (tmp_path / "figures").glob("*.png"))
    assert figures == ["purity_completeness_B.png", "velocity_space.png"]

"""`gaialake accreted` on local Spark: Petastorm training, transfer, evaluation on B, the
catalog (null scores for missing astrometry), MLflow registration, deterministic scoring; the
labelled catalogs named by ``accreted.train_warehouse`` / ``test_warehouse``, the threshold
chosen on the training catalog.

The small skies (A's and B's side skies, and a main catalog of galaxy A) are drawn with the
sky's sampler and written straight to Delta (``gaialake generate``/``ingest`` have their own
tests), with rows of missing astrometry added to the main catalog.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gaialake.io.delta import read_table, write_table

COLUMNS = ["source_id", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec",
           "pmdec_error", "radial_velocity", "radial_velocity_error", "ruwe", "phot_g_mean_mag",
           "bp_rp"]


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
    from gaialake.accreted.sources import SOURCE_MARKER, galaxy_source, side_conf
    from gaialake.accreted.classifier_spark import score_catalog
    from gaialake.io.tracking import load_torch_model, state_to_bytes
    from gaialake.jobs import accreted

    conf = conf.with_overrides([
        "sky.galaxy=A", f"accreted.side_root={tmp_path / 'skies'}",
        f"accreted.figures_dir={tmp_path / 'figures'}", "accreted.net.hidden=[32, 32]",
        "accreted.train.epochs=3", "accreted.transfer.epochs=1", "accreted.target_purity=0.5"])
    stars = _write_sky(spark, conf, "A", 15_000, broken=30)
    for galaxy in ("A", "B"):  # each galaxy's side sky; the main one is only scored
        side, marker = side_conf(conf, galaxy)
        _write_sky(spark, side, galaxy, 25_000)
        root = Path(side.path("paths.raw")).parent
        (root / SOURCE_MARKER).write_text(marker)  # the sky counts as made by the job

    summary = accreted.run(conf)
    print({k: v for k, v in summary.items() if not isinstance(v, dict)})
    # A trains on its own side sky although the main catalog is galaxy A with its truth
    source_a = galaxy_source(spark, conf, "A", lambda side: pytest.fail("side sky made again"))
    assert source_a.path("paths.warehouse") == str(tmp_path / "skies" / "A" / "warehouse")
    # tiny skies, 3 epochs: the plumbing, not the science (tests/accreted/test_accreted.py checks
    # that); the splash and the accreted disks keep even a good classifier near 0.95
    assert summary["auc_A"] > 0.85 and summary["auc_B"] > 0.85
    # the threshold reaches the target purity on A's held-out stars; B is scored blind at it
    assert 0.0 < summary["threshold"] < 1.0 and summary["purity_A_at_threshold"] >= 0.5
    assert summary["purity_B_at_threshold"] > 0.2 and summary["completeness_B_at_threshold"] > 0.2
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


def _labelled_warehouse(conf, where: Path, name: str):
    """``conf`` pointed at the warehouse ``where`` (its own catalog database ``name``)."""
    return conf.with_overrides([f"paths.warehouse={where}",
                                f"catalog.database={conf.get('catalog.database')}_{name}"])


def test_a_labelled_warehouse_needs_both_tables_and_both_origins(spark, conf, tmp_path):
    from gaialake.accreted.sources import warehouse_source

    where = tmp_path / "labelled"
    conf = conf.with_overrides([f"accreted.train_warehouse={where}"])
    side = _labelled_warehouse(conf, where, "labelled")
    stars = pd.DataFrame({c: [1.0, 2.0] for c in COLUMNS}).assign(source_id=[1, 2])
    write_table(spark.createDataFrame(stars), side, "gaia_source", partition_by=())
    with pytest.raises(ValueError, match=r"accreted\.train_warehouse=.*no table truth_origin"):
        warehouse_source(spark, conf, "accreted.train_warehouse")
    truth = pd.DataFrame({"source_id": [1, 2], "origin": ["in_situ", "in_situ"],
                          "component": ["thin_disk", "thin_disk"]})
    write_table(spark.createDataFrame(truth), side, "truth_origin")
    with pytest.raises(ValueError, match=r"accreted\.train_warehouse=.*0 accreted and 2 in_situ"):
        warehouse_source(spark, conf, "accreted.train_warehouse")
    write_table(spark.createDataFrame(truth.assign(origin=["in_situ", "accreted"])), side,
                "truth_origin")
    source = warehouse_source(spark, conf, "accreted.train_warehouse")
    assert source.path("paths.warehouse") == str(where)


def test_accreted_job_trains_on_one_warehouse_and_thresholds_blind_on_the_other(spark, conf,
                                                                                 tmp_path):
    from gaialake.accreted import evaluation as E
    from gaialake.accreted.classifier_spark import evaluate
    from gaialake.accreted.settings import AccretedSettings
    from gaialake.io.tracking import load_torch_model
    from gaialake.jobs import accreted

    train_dir = tmp_path / "train_warehouse"
    conf = conf.with_overrides([
        f"accreted.train_warehouse={train_dir}",
        f"accreted.test_warehouse={conf.path('paths.warehouse')}",
        f"accreted.side_root={tmp_path / 'no_side_skies'}",
        f"accreted.figures_dir={tmp_path / 'figures'}", "accreted.net.hidden=[16, 16]",
        "accreted.train.epochs=2", "accreted.transfer.enabled=false",
        "accreted.target_purity=0.5"])
    train = _labelled_warehouse(conf, train_dir, "train")
    _write_sky(spark, train, "A", 20_000)
    _write_sky(spark, conf, "B", 15_000)  # the test catalog is also the one the job scores

    summary = accreted.run(conf)
    print({k: v for k, v in summary.items() if not isinstance(v, dict)})
    assert not (tmp_path / "no_side_skies").exists()  # no synthetic sky was made
    assert summary["auc_A"] > 0.85 and summary["auc_B"] > 0.85
    # the catalog threshold is the training catalog's (held-out stars), not the test's
    module = load_torch_model(conf, accreted.REGISTERED_NAME)
    settings = AccretedSettings.from_conf(conf)
    held_out = evaluate(conf, settings, spark, train, module, split="val")
    test = evaluate(conf, settings, spark, conf, module)
    on_train = E.threshold_for_purity(held_out["p_accreted"], held_out["accreted"], 0.5)
    on_test = E.threshold_for_purity(test["p_accreted"], test["accreted"], 0.5)
    assert summary["threshold"] == pytest.approx(on_train["threshold"], abs=5e-5)  # 4 digits
    assert abs(on_test["threshold"] - summary["threshold"]) > 1e-3
    # the registered model's threshold, unrounded: stars between it and the summary's 4-digit
    # value would flip the purity's last digit
    config = module.gaialake_config
    assert config["threshold"] == pytest.approx(summary["threshold"], abs=5e-5)
    blind = E.cut_metrics(test["p_accreted"] >= config["threshold"], test["accreted"])
    assert summary["purity_B_at_threshold"] == pytest.approx(blind["purity"], abs=1e-4)

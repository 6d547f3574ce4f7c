"""`gaialake upsample` on local Spark (tiny: 3,000 particles, a 2-epoch flow): tables, registry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gaialake.jobs.upsample import flow_sampler, split_labels


def test_upsample_job_writes_mock_particles_and_auc_table(spark, conf, tmp_path):
    from gaialake.io.tracking import load_torch_model

    conf = conf.with_overrides([
        "upsample.galaxy.n_particles=3000", "upsample.flow.epochs=2", "upsample.multiple=1.5",
        "upsample.sample_partitions=2", f"upsample.report_dir={tmp_path / 'report'}"])
    from gaialake.jobs import upsample

    summary = upsample.run(conf)
    n_training = 3000 - 600
    mock = spark.table("gaialake.upsampled_mock").where(f"run_id = '{summary['run_id']}'")
    assert set("x y z vx vy vz age feh particle_id split method parent_id run_id".split()) \
        <= set(mock.columns)
    counts = {r["method"]: r["count"] for r in mock.groupBy("method").count().collect()}
    assert counts["galaxyflow"] == round(1.5 * n_training)
    assert abs(counts["enbid"] - 1.5 * n_training) < 0.05 * n_training      # stochastic rounding
    assert mock.select("particle_id", "method").distinct().count() == mock.count()
    parts = spark.table("gaialake.star_particles").groupBy("split").count().toPandas()
    assert dict(zip(parts["split"], parts["count"]))["heldout"] == 600
    auc = spark.table("gaialake.upsample_auc").toPandas()
    assert sorted(auc["key"]) == ["baseline_vs_flow", "baseline_vs_particles", "particles_vs_flow"]
    assert json.loads((tmp_path / "report" / "auc.json").read_text())["run_id"] == summary["run_id"]
    model = load_torch_model(conf, "gaialake-galaxyflow")
    assert model.columns == ["x", "y", "z", "vx", "vy", "vz", "age", "feh"]
    assert model.sample(10, seed=1).shape == (10, 8)


def test_flow_sampler_partitions_are_seeded_and_reproducible():
    from gaialake.models.galaxyflow import build_galaxyflow, galaxyflow_config
    from gaialake.io.tracking import state_to_bytes

    x = np.random.default_rng(0).normal(size=(500, 6)) + [-8, 0, 0, 0, 220, 0]
    config = galaxyflow_config(x, ["x", "y", "z", "vx", "vy", "vz"], transforms=1, hidden=8)
    state = state_to_bytes(build_galaxyflow(config).state_dict())
    tasks = pd.DataFrame({"partition": [0, 1], "n": [300, 200]})
    run = lambda seeds: pd.concat(flow_sampler(config, state, seeds, 0.3, 0.3, "r")([tasks]))
    a, b = run({0: 11, 1: 12}), run({0: 11, 1: 12})
    # the same stars to float rounding (MKL may differ in the last bit with memory alignment)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
    assert len(a) == 500 and a["particle_id"].is_unique
    c = run({0: 11, 1: 99})
    pd.testing.assert_frame_equal(a[a.particle_id < 2**32], c[c.particle_id < 2**32],
                                  check_exact=False, rtol=1e-9, atol=1e-9)
    assert not np.allclose(a[a.particle_id >= 2**32]["x"], c[c.particle_id >= 2**32]["x"])
    assert set(a["split"]) == {"fit", "eval", "mock"}


def test_split_labels_reserve_heldout_and_validation_particles():
    labels = split_labels(1000, 0.2, 0.1, seed=3)
    assert (labels == "heldout").sum() == 200 and (labels == "val").sum() == 80
    assert (split_labels(1000, 0.2, 0.1, seed=3) == labels).all()

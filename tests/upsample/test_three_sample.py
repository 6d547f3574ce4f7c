"""The 3-sample classifier test (the seed's protocol and the strong judge): known
distributions, a case the seed's protocol cannot see, and the assembly from mock rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaialake import tables
from gaialake.upsample.three_sample import (JudgeSettings, judge_auc, strong_judge,
                                            strong_judge_of_mock, three_sample_of_mock,
                                            three_sample_test)

JUDGE = JudgeSettings(kind="hgb", folds=3, max_rows=4000)


def test_three_sample_test_on_known_distributions():
    rng = np.random.default_rng(0)
    particles, flow = rng.normal(size=(3000, 3)), rng.normal(size=(6000, 3))
    baseline = rng.normal(size=(6000, 3)) * [1.0, 1.0, 1.6]       # puffed in one axis
    table = three_sample_test(particles, flow, baseline, seed=1)
    assert table.auc("particles_vs_flow") == pytest.approx(0.5, abs=0.03)
    assert table.auc("baseline_vs_flow") > 0.6
    assert table.auc("baseline_vs_particles") == pytest.approx(table.auc("baseline_vs_flow"),
                                                               abs=0.03)


def test_three_sample_of_mock_uses_the_fit_and_eval_rows_of_each_method(tmp_path):
    rng = np.random.default_rng(2)
    columns = ["x", "y"]
    sample = lambda n, scale: rng.normal(size=(n, 2)) * scale
    parts = {(m, s): sample(400, 1.5 if m == "enbid" else 1.0)
             for m in ("galaxyflow", "enbid") for s in ("fit", "eval")}
    rows = pd.concat([pd.DataFrame(v, columns=columns).assign(method=m, split=s)
                      for (m, s), v in parts.items()], ignore_index=True)
    heldout = pd.DataFrame(sample(300, 1.0), columns=columns).assign(mass=rng.uniform(1, 2, 300))
    result = three_sample_of_mock(rows, heldout, columns, seed=3, classifier="hgb")
    result.rows += strong_judge_of_mock(rows, heldout, columns, 4, JUDGE)
    direct = three_sample_test(heldout[columns].to_numpy(), parts["galaxyflow", "eval"],
                               parts["enbid", "eval"], 3,
                               particle_weight=heldout["mass"].to_numpy(), classifier="hgb",
                               flow_fit=parts["galaxyflow", "fit"],
                               baseline_fit=parts["enbid", "fit"])
    direct.rows += strong_judge(heldout[columns].to_numpy(), parts["galaxyflow", "eval"],
                                parts["enbid", "eval"], 4,
                                particle_weight=heldout["mass"].to_numpy(), settings=JUDGE)
    assert result.rows == direct.rows
    table = result.table("r")
    assert list(table.columns) == tables.UPSAMPLE_AUC.columns and len(table) == 5
    strong = table[table["key"].str.endswith("_strong")]
    assert list(strong["classifier"]) == ["hgb", "hgb"] and strong["seed_auc"].isna().all()
    assert {"auc_particles_vs_flow_strong", "auc_particles_vs_baseline_strong",
            "auc_particles_vs_flow"} <= set(result.metrics())
    assert "| n/a |" in result.markdown() and "3-fold held out" in result.markdown()
    paths = result.write_report(tmp_path / "report", "r")
    assert [p.name for p in paths] == ["auc.json", "auc.md"] and all(p.exists() for p in paths)


def _clumpy_particles(rng: np.random.Generator, n: int, clump_share: float) -> np.ndarray:
    """Gaussian particles in 3-d with ``clump_share`` of them in one tight clump in (x0, x1):
    a feature a smooth flow misses."""
    particles = rng.normal(size=(n, 3))
    k = int(clump_share * n)
    particles[:k, :2] = rng.normal(size=(k, 2)) * 0.05 + [0.5, -0.5]
    return particles


@pytest.mark.parametrize("kind", ["hgb", "mlp"])
def test_strong_judge_gives_half_on_one_distribution_and_separates_different_ones(kind):
    rng = np.random.default_rng(5)
    settings = JudgeSettings(kind=kind, folds=3, max_rows=4000)
    same = judge_auc(rng.normal(size=(2000, 3)), rng.normal(size=(3000, 3)), 1,
                     w_positive=rng.uniform(1.0, 2.0, 2000), settings=settings)
    other = judge_auc(rng.normal(size=(2000, 3)), rng.normal(size=(3000, 3)) + [2.0, 0.0, 0.0],
                      1, settings=settings)         # the best classifier's AUC: 0.92
    assert same.auc == pytest.approx(0.5, abs=0.03) and same.auc_std < 0.05
    assert other.auc > 0.8
    assert (same.n_positive, same.n_negative, same.n_fit) == (2000, 3000, 3333)


@pytest.mark.parametrize("seed_classifier", ["mlp", "hgb"])
def test_strong_judge_sees_what_the_seeds_protocol_misses(seed_classifier):
    # the flow misses the particles' clump; the baseline misses it too and is puffed along x2,
    # so a classifier trained baseline vs flow learns x2 and is blind to the clump
    rng = np.random.default_rng(6)
    particles = _clumpy_particles(rng, 2000, 0.2)
    flow, baseline = rng.normal(size=(4000, 3)), rng.normal(size=(4000, 3)) * [1.0, 1.0, 1.8]
    seeds = three_sample_test(particles, flow, baseline, seed=1, classifier=seed_classifier)
    strong = {r["key"]: r["auc"] for r in strong_judge(particles, flow, baseline, 2,
                                                         settings=JUDGE)}
    assert seeds.auc("baseline_vs_flow") > 0.6               # the seed's classifier works ...
    assert strong["particles_vs_flow_strong"] > 0.58          # ... but the clump is only seen
    assert strong["particles_vs_flow_strong"] > seeds.auc("particles_vs_flow") + 0.05
    assert strong["particles_vs_baseline_strong"] > strong["particles_vs_flow_strong"]


def test_strong_judge_weighs_particles_by_mass():
    # particles uniform in x0 with masses growing with x0; the flow is the mass-weighted density:
    # alike once weighted, unlike row by row
    rng = np.random.default_rng(7)
    particles = rng.uniform(0.0, 1.0, size=(4000, 2))
    mass = 0.2 + 2.0 * particles[:, 0]
    flow = rng.uniform(0.0, 1.0, size=(12000, 2))
    flow = flow[rng.uniform(0.0, 2.2, len(flow)) < 0.2 + 2.0 * flow[:, 0]][:4000]
    weighted = judge_auc(particles, flow, 3, w_positive=mass, settings=JUDGE)
    unweighted = judge_auc(particles, flow, 3, settings=JUDGE)
    assert weighted.auc == pytest.approx(0.5, abs=0.03)
    assert unweighted.auc > 0.58                 # the best score (x0) gives 0.64 unweighted


def test_judge_subsamples_to_max_rows_and_refuses_bad_settings():
    rng = np.random.default_rng(8)
    got = judge_auc(rng.normal(size=(500, 2)), rng.normal(size=(900, 2)), 1,
                    settings=JudgeSettings(folds=2, max_rows=300))
    assert (got.n_positive, got.n_negative, got.n_fit) == (300, 300, 300)
    with pytest.raises(ValueError, match="folds=1"):
        JudgeSettings(folds=1)
    with pytest.raises(ValueError, match="kind"):
        JudgeSettings(kind="svm")
    with pytest.raises(ValueError, match="same columns"):
        judge_auc(np.zeros((10, 2)), np.zeros((10, 3)), 1)

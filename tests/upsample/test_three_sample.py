"""The 3-sample classifier test: known distributions, and the assembly from mock rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaialake.upsample.three_sample import three_sample_of_mock, three_sample_test


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
    direct = three_sample_test(heldout[columns].to_numpy(), parts["galaxyflow", "eval"],
                               parts["enbid", "eval"], 3,
                               particle_weight=heldout["mass"].to_numpy(), classifier="hgb",
                               flow_fit=parts["galaxyflow", "fit"],
                               baseline_fit=parts["enbid", "fit"])
    assert result.rows == direct.rows
    table = result.table("r")
    assert list(table.columns)[-2:] == ["classifier", "run_id"] and len(table) == 3
    paths = result.write_report(tmp_path / "report", "r")
    assert [p.name for p in paths] == ["auc.json", "auc.md"] and all(p.exists() for p in paths)

"""Grid-level measures of the density estimate: coverage of the ensemble errors."""
from __future__ import annotations

import numpy as np
import pytest

from gaialake.density.measure import coverage


def test_coverage_counts_cells_whose_truth_lies_within_one_and_two_sigma():
    rng = np.random.default_rng(0)
    n = 20_000
    truth = rng.uniform(0.01, 0.1, n)
    err = 0.1 * truth
    rho = truth + err * rng.standard_normal(n)
    region = np.ones(n, bool)
    region[:100] = False
    rho[:100] = 100.0                    # far off, but outside the well-sampled region
    out = coverage(rho, err, truth, region)
    assert out["n_coverage"] == n - 100
    assert out["coverage_1sigma"] == pytest.approx(0.683, abs=0.015)
    assert out["coverage_2sigma"] == pytest.approx(0.954, abs=0.008)
    # errors quoted half as large as the scatter cover less: P(|z| < 0.5), P(|z| < 1)
    half = coverage(rho, 0.5 * err, truth, region)
    assert half["coverage_1sigma"] == pytest.approx(0.383, abs=0.015)
    assert half["coverage_2sigma"] == pytest.approx(0.683, abs=0.015)
    # cells without truth (a catalog: null) or without an error are left out
    truth_null = np.where(np.arange(n) % 2 == 0, np.nan, truth)
    assert coverage(rho, err, truth_null, region)["n_coverage"] == (n - 100) // 2
    assert coverage(rho, np.zeros(n), truth, region) == {"n_coverage": 0}

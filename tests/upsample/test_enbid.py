"""The EnBiD-like kernel upsampler: kernel sizes follow the density, children follow kernels."""
from __future__ import annotations

import numpy as np
import pytest

from gaialake.upsample.enbid import child_counts, enbid_upsample, kernel_cholesky, spawn


def test_knn_kernel_size_scales_as_density_to_the_minus_one_sixth():
    # standard 6-d Gaussian: density ~ exp(-r^2/2), so log h = const + r^2 / 12 in the core
    x = np.random.default_rng(0).normal(size=(20000, 6))
    chol = kernel_cholesky(x, k=32, eta=0.5, scales=(1.0, 1.0))
    h = chol[:, 0, 0]
    r2 = (x ** 2).sum(1)
    core = r2 < 9
    slope = np.polyfit(r2[core], np.log(h[core]), 1)[0]
    assert slope == pytest.approx(1 / 12, rel=0.25)
    # subspace kernel: isotropic within position and within velocity
    assert np.allclose(chol[:, 1, 1], chol[:, 0, 0]) and np.allclose(chol[:, 0, 1], 0)


def test_children_follow_the_parent_kernel():
    feats = np.array([[1.0, 2.0, 3.0, 100.0, 200.0, 300.0, 5.0, -0.3]])
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T + np.eye(6)
    chol = np.linalg.cholesky(cov)[None]
    kids, parent = spawn(feats, chol, np.array([40000]), np.random.default_rng(2))
    assert np.all(parent == 0)
    np.testing.assert_allclose(kids[:, :6].mean(0), feats[0, :6], atol=0.05 * np.sqrt(cov.diagonal().max()))
    np.testing.assert_allclose(np.cov(kids[:, :6].T), cov, rtol=0.05, atol=0.05)
    assert np.all(kids[:, 6:] == feats[0, 6:])          # age and [Fe/H] inherited


def test_children_are_mass_weighted_and_stay_inside_the_selection():
    rng = np.random.default_rng(3)
    mass = np.where(np.arange(20000) % 2 == 0, 1.0, 3.0)
    counts = child_counts(mass, 2.5, rng)
    assert counts[mass == 3].mean() / counts[mass == 1].mean() == pytest.approx(3.0, rel=0.03)
    assert counts.sum() == pytest.approx(2.5 * len(mass), rel=0.01)
    x = rng.uniform(-1, 1, size=(3000, 6))
    inside = lambda a: np.all(np.abs(a[:, :3]) < 1, axis=1)
    kids, _ = enbid_upsample(x, np.ones(3000), 3, seed=4, k=16, eta=1.0, inside=inside)
    assert inside(kids).all() and len(kids) == 9000


def test_local_kernel_follows_a_thin_structure():
    # a thin sheet: z is 100x narrower than x, y; the local kernel must be thin in z too
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.uniform(-1, 1, (5000, 2)), rng.normal(0, 0.01, 5000),
                         rng.normal(size=(5000, 3))])
    local = kernel_cholesky(x, k=32, eta=0.5, kernel="local")
    sub = kernel_cholesky(x, k=32, eta=0.5, kernel="subspace")
    z_local = np.sqrt((local[:, 2] ** 2).sum(1))
    z_sub = np.sqrt((sub[:, 2] ** 2).sum(1))
    assert np.median(z_local) < 0.02 < np.median(z_sub)

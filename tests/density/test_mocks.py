"""Validation mocks of the density job: exact sampling and self-consistent truth."""
from __future__ import annotations

import numpy as np
import torch

from gaialake.density import G_KPC_KMS2_MSUN as G
from gaialake.density.mocks import PlummerSphere, SlabComponent, SlabMock, TracerPopulation


def _slab() -> SlabMock:
    return SlabMock((SlabComponent(0.041, 0.167), SlabComponent(0.043, 0.388)), 0.013,
                    (TracerPopulation(0.5, 20.0, 35.0, 25.0, 225.0),
                     TracerPopulation(0.5, 40.0, 60.0, 45.0, 200.0)))


def test_plummer_sample_follows_enclosed_mass_and_is_virialised():
    p = PlummerSphere(1e10, 1.0)
    x, v = p.sample(40000, seed=1)
    r = np.linalg.norm(x, axis=1)
    for radius in (0.5, 1.0, 2.0):
        expected = radius**3 / (radius**2 + 1.0) ** 1.5
        assert abs((r < radius).mean() - expected) < 4 * np.sqrt(expected / 40000) + 1e-3
    two_k = (v**2).sum(1).mean()
    w = 3 * np.pi * G * 1e10 / 32.0  # |W| per unit mass of a Plummer sphere
    assert abs(two_k / w - 1.0) < 0.02


def test_plummer_truth_obeys_poisson_equation():
    p = PlummerSphere(1e10, 1.0)
    x = np.array([[0.3, 0.2, -0.1], [1.0, -0.5, 0.7]])
    h = 1e-3
    div = sum((p.acceleration(x + h * e)[:, k] - p.acceleration(x - h * e)[:, k]) / (2 * h)
              for k, e in enumerate(np.eye(3)))
    rho = -div / (4 * np.pi * G) / 1e9
    np.testing.assert_allclose(rho, p.density_msun_pc3(x), rtol=1e-5)


def test_slab_exact_df_satisfies_the_cbe_with_the_true_acceleration():
    m = _slab()
    x, v = m.sample(2000, seed=2)
    xt = torch.tensor(x, requires_grad=True)
    vt = torch.tensor(v, requires_grad=True)
    gx, gv = torch.autograd.grad(m.log_f(xt, vt).sum(), [xt, vt])
    a = torch.tensor(m.acceleration(x))
    residual = (vt * gx).sum(1) + (a * gv).sum(1)
    scale = (vt * gx).sum(1).abs().mean()
    assert float((residual.abs().max() / scale).detach()) < 1e-8


def test_slab_vertical_profile_matches_its_density_function():
    m = _slab()
    x, _ = m.sample(60000, seed=3)
    assert np.linalg.norm(x - np.array(m.sun_kpc), axis=1).max() < m.radius_kpc
    h, edges = np.histogram(x[:, 2], bins=30, range=(-1.2, 1.2))
    c = 0.5 * (edges[1:] + edges[:-1])
    zg = np.linspace(m.sun_kpc[2] - 3, m.sun_kpc[2] + 3, 40001)
    pg = m.potential_z(zg)
    nz = sum(0.5 / np.trapz(np.exp(-pg / p.sigma_z**2), zg) * np.exp(-m.potential_z(c)
                                                                      / p.sigma_z**2)
             for p in m.populations)
    area = np.pi * (m.radius_kpc**2 - (c - m.sun_kpc[2]) ** 2)
    expected = nz * area / np.sum(nz * area) * h.sum()
    chi2 = np.sum((h - expected) ** 2 / expected)
    assert chi2 < 30 + 4 * np.sqrt(60)  # 30 bins


def test_slab_truth_obeys_poisson_equation():
    m = _slab()
    z = np.array([-0.7, 0.0, 0.2, 1.1])
    x = np.column_stack([np.full(4, -8.1), np.zeros(4), z])
    h = 1e-4
    dz = np.array([0, 0, h])
    div = (m.acceleration(x + dz)[:, 2] - m.acceleration(x - dz)[:, 2]) / (2 * h)
    np.testing.assert_allclose(-div / (4 * np.pi * G) / 1e9, m.density_msun_pc3(x), rtol=1e-5)

"""CBE estimators: exact-DF checks of the solvers, then trained flows on a Plummer sphere."""
from __future__ import annotations

import numpy as np
import torch

from gaialake.density import G_KPC_KMS2_MSUN as G
from gaialake.density.boltzmann import (cbe_residual, divergence_density, log_f_gradients,
                                        relative_error)
from gaialake.density.mocks import PlummerSphere
from gaialake.density.potential import fit_spline_potential

PLUMMER = PlummerSphere(1e10, 1.0)


def _exact_plummer_velocities(x: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """n velocities from the exact p(v|x) of the Plummer sphere at each x: (n, G, 3)."""
    rng = np.random.default_rng(seed)
    r = np.linalg.norm(x.numpy(), axis=1)
    q = rng.uniform(0, 1, (len(r), 6 * n))
    ok = rng.uniform(0, 0.1, q.shape) < q**2 * (1 - q**2) ** 3.5
    qs = np.stack([row[m][:n] for row, m in zip(q, ok)], axis=1)  # (n, G)
    v_esc = np.sqrt(2 * G * PLUMMER.mass_msun / np.sqrt(r**2 + PLUMMER.b_kpc**2))
    u = rng.standard_normal((n, len(r), 3))
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    return torch.tensor(qs[..., None] * v_esc[None, :, None] * u)


def _grid(step: float = 0.5, rmax: float = 1.6) -> np.ndarray:
    g1 = np.arange(-3, 4) * step
    g = np.stack(np.meshgrid(g1, g1, g1, indexing="ij"), -1).reshape(-1, 3)
    r = np.linalg.norm(g, axis=1)
    return g[(r < rmax) & (r > 0.1)]


def test_pointwise_estimator_recovers_plummer_density_from_the_exact_df():
    grid = torch.tensor(_grid())
    rho, a = divergence_density(PLUMMER.log_f, _exact_plummer_velocities, grid, n_v=64,
                                step_kpc=0.01)
    assert np.median(relative_error(a.numpy(), PLUMMER.acceleration(grid.numpy()))) < 1e-3
    assert np.max(relative_error(rho.numpy(), PLUMMER.density_msun_pc3(grid.numpy()))) < 0.01


def test_spline_potential_fitted_to_the_exact_df_recovers_plummer_density():
    x, v = PLUMMER.sample(15000, seed=4)
    inside = np.all(np.abs(x) < 2.0, axis=1)
    x, v = x[inside], v[inside]
    gx, gv = log_f_gradients(PLUMMER.log_f, torch.tensor(x), torch.tensor(v))
    pot, report = fit_spline_potential(x, v, gx.numpy(), gv.numpy(), lo_kpc=[-2.0] * 3,
                                       hi_kpc=[2.0] * 3, n_intervals=8)
    grid = _grid()
    rho, a = pot.fields(grid)
    assert np.median(relative_error(a, PLUMMER.acceleration(grid))) < 0.03
    assert np.median(relative_error(rho, PLUMMER.density_msun_pc3(grid))) < 0.15


def test_cbe_residual_vanishes_in_equilibrium_and_flags_a_wrong_force():
    grid = torch.tensor(_grid())
    a = torch.tensor(PLUMMER.acceleration(grid.numpy()))
    res = {name: cbe_residual(PLUMMER.log_f, _exact_plummer_velocities, grid, acc, n_v=64)
           for name, acc in (("true", a), ("none", 0 * a), ("reversed", -a), ("half", 0.5 * a))}
    assert res["true"].shape == (len(grid),) and res["true"].max() < 1e-6
    # no force: the streaming term alone, sqrt(2); reversed: twice it over its size, 2
    np.testing.assert_allclose(res["none"].numpy(), np.sqrt(2.0), rtol=1e-6)
    np.testing.assert_allclose(res["reversed"].numpy(), 2.0, rtol=1e-6)
    assert 0.5 < res["half"].min() and res["half"].max() < 0.7   # 0.5 / sqrt(0.625) = 0.63

"""A smooth gravitational potential fitted to the steady-state CBE over all stars at once.

Given stars (x_i, v_i) and the gradients g_x = d log f/dx, g_v = d log f/dv of the learned
phase-space density at them, Phi minimises the summed squared CBE residual
``sum_i (v_i . g_x,i - grad Phi(x_i) . g_v,i)^2``; then a = -grad Phi and
rho = lap Phi / (4 pi G). Fitting one smooth function to every star averages the noise of the
flows' derivatives that the pointwise divergence amplifies. Two forms of Phi:

- :class:`SplinePotential` (default): tensor-product cubic B-splines on a box, so the residual
  is linear in the coefficients and the fit is one penalised least-squares solve (P-splines,
  Eilers & Marx 1996) with a third-difference penalty (it shrinks towards a constant density,
  not towards zero). The penalty weight is chosen by the CBE residual on held-out stars.
- :class:`~gaialake.models.mlp.MLPPotential`: a SiLU MLP trained by Adam on the same residual,
  as the "deep potential" of Green, Ting & Kamdar (2023, ApJ 942, 26; arXiv:2011.04673).

Positions kpc, velocities km/s; Phi in (km/s)^2, a in (km/s)^2/kpc, rho in M_sun/pc^3.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import scipy.sparse as sp
import torch

from gaialake.density import G_KPC_KMS2_MSUN as G
from gaialake.density import MSUN_PC3_IN_KPC3
from gaialake.models.mlp import MLPPotential
from gaialake.models.train import TrainSettings, train

__all__ = ["SplinePotential", "fit_spline_potential", "MLPPotential", "fit_mlp_potential",
           "potential_fields"]

_FOUR_PI_G = 4.0 * math.pi * G


def _bspline_1d(u: np.ndarray, n_int: int) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                    np.ndarray]:
    """Uniform cubic B-splines at scaled coordinate u in [0, n_int]: first index, values,
    first and second derivatives (per unit u), each (N, 4)."""
    i = np.clip(np.floor(u).astype(int), 0, n_int - 1)
    t = (u - i)[:, None]
    b = np.hstack([(1 - t) ** 3, 3 * t**3 - 6 * t**2 + 4, -3 * t**3 + 3 * t**2 + 3 * t + 1,
                   t**3]) / 6.0
    d1 = np.hstack([-(1 - t) ** 2, 3 * t**2 - 4 * t, -3 * t**2 + 2 * t + 1, t**2]) / 2.0
    d2 = np.hstack([1 - t, 3 * t - 2, 1 - 3 * t, t])
    return i, b, d1, d2


class SplinePotential:
    """Phi(x) = V^2 sum_ijk c_ijk B_i(x) B_j(y) B_k(z), cubic B-splines on a box (kpc)."""

    def __init__(self, lo_kpc, hi_kpc, n_intervals: int, velocity_kms: float,
                 coef: np.ndarray | None = None) -> None:
        self.lo, self.hi = np.asarray(lo_kpc, float), np.asarray(hi_kpc, float)
        self.n_int = int(n_intervals)
        self.nb = self.n_int + 3
        self.h = (self.hi - self.lo) / self.n_int
        self.velocity = float(velocity_kms)
        self.coef = np.zeros(self.nb**3) if coef is None else np.asarray(coef, float)

    def _parts(self, x: np.ndarray):
        x = np.asarray(x, float)
        if np.any(x < self.lo - 1e-9) or np.any(x > self.hi + 1e-9):
            raise ValueError("SplinePotential: points outside the box "
                             f"[{self.lo.tolist()}, {self.hi.tolist()}] kpc")
        return [_bspline_1d((x[:, k] - self.lo[k]) / self.h[k], self.n_int) for k in range(3)]

    def design(self, x: np.ndarray, order: tuple[int, int, int]) -> sp.csr_matrix:
        """Sparse (N, nb^3) matrix of d^order Phi/V^2 per coefficient (order per axis 0-2)."""
        parts = self._parts(x)
        n = len(x)
        vals = np.ones((n, 1))
        index = np.zeros((n, 1), dtype=np.int64)
        for k in range(3):
            i0, b, d1, d2 = parts[k]
            f = (b, d1 / self.h[k], d2 / self.h[k] ** 2)[order[k]]
            vals = (vals[:, :, None] * f[:, None, :]).reshape(n, -1)
            index = (index[:, :, None] * self.nb + (i0[:, None] + np.arange(4))[:, None, :]
                     ).reshape(n, -1)
        rows = np.repeat(np.arange(n), vals.shape[1])
        return sp.csr_matrix((vals.ravel(), (rows, index.ravel())), shape=(n, self.nb**3))

    def gradient(self, x: np.ndarray) -> np.ndarray:
        """grad Phi, (km/s)^2/kpc, (N, 3)."""
        return self.velocity**2 * np.column_stack(
            [self.design(x, o) @ self.coef for o in ((1, 0, 0), (0, 1, 0), (0, 0, 1))])

    def laplacian(self, x: np.ndarray) -> np.ndarray:
        """lap Phi, (km/s)^2/kpc^2, (N,)."""
        return self.velocity**2 * sum(self.design(x, o) @ self.coef
                                      for o in ((2, 0, 0), (0, 2, 0), (0, 0, 2)))

    def fields(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rho M_sun/pc^3, a (km/s)^2/kpc) at ``x`` (N, 3) kpc."""
        return self.laplacian(x) / _FOUR_PI_G / MSUN_PC3_IN_KPC3, -self.gradient(x)


def _difference_penalty(nb: int, order: int) -> sp.csr_matrix:
    """Sum over the three axes of D^T D, D the ``order``-th difference along that axis."""
    d = sp.eye(nb, format="csr")
    for _ in range(order):
        d = d[1:] - d[:-1]
    dtd = (d.T @ d).tocsr()
    eye = sp.eye(nb, format="csr")
    return (sp.kron(sp.kron(dtd, eye), eye) + sp.kron(sp.kron(eye, dtd), eye)
            + sp.kron(sp.kron(eye, eye), dtd)).tocsr()


def fit_spline_potential(x: np.ndarray, v: np.ndarray, gx: np.ndarray, gv: np.ndarray, *,
                         lo_kpc, hi_kpc, n_intervals: int = 8,
                         penalties: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0),
                         penalty_order: int = 3, holdout: float = 0.2, seed: int = 0,
                         weights: np.ndarray | None = None) -> tuple[SplinePotential, dict]:
    """Penalised least-squares CBE fit of a :class:`SplinePotential`; returns it and a report.

    The CBE residual is divided by V/L (V: rms velocity, L: mean knot spacing) so the
    penalty weights are dimensionless and per star; the chosen one minimises the mean squared
    residual on a random ``holdout`` fraction; the final fit uses all stars.
    """
    x, v, gx, gv = (np.asarray(a, float) for a in (x, v, gx, gv))
    velocity = float(np.sqrt(((v - v.mean(0)) ** 2).sum(1).mean() / 3.0))
    pot = SplinePotential(lo_kpc, hi_kpc, n_intervals, velocity)
    length = float(np.mean(pot.h))
    w = np.ones(len(x)) if weights is None else np.asarray(weights, float)
    b = (v * gx).sum(1) * length / velocity  # the CBE reads v.g_x = grad Phi . g_v
    a = sum(sp.diags(gv[:, k] * velocity * length) @ pot.design(x, o)
            for k, o in enumerate(((1, 0, 0), (0, 1, 0), (0, 0, 1))))
    a = a.tocsr()
    pen = _difference_penalty(pot.nb, penalty_order)
    gauge = sp.eye(pot.nb**3) * 1e-9  # Phi is defined up to a constant
    rng = np.random.default_rng(seed)
    test = rng.uniform(size=len(x)) < holdout

    def solve(mask: np.ndarray, lam: float) -> np.ndarray:
        am = sp.diags(w[mask]) @ a[mask]
        lhs = (a[mask].T @ am) / w[mask].sum() + lam * pen + gauge
        rhs = am.T @ b[mask] / w[mask].sum()
        return sp.linalg.spsolve(lhs.tocsc(), rhs)

    scores = {}
    for lam in penalties:
        c = solve(~test, lam)
        scores[lam] = float(np.average((a[test] @ c - b[test]) ** 2, weights=w[test]))
    best = min(scores, key=scores.get)
    pot.coef = solve(np.ones(len(x), bool), best)
    return pot, {"penalty": best, "holdout_mse": scores}


def fit_mlp_potential(x: np.ndarray, v: np.ndarray, gx: np.ndarray, gv: np.ndarray, *,
                      steps: int = 2000, batch: int = 2048, lr: float = 2e-3,
                      hidden: tuple[int, ...] = (64, 64, 64), seed: int = 0,
                      device: torch.device | str = "cpu", logger=None) -> MLPPotential:
    """An :class:`MLPPotential` minimising the mean squared CBE residual (Adam, cosine lr over
    ``steps`` batches of ``batch`` stars drawn with replacement), by the one training loop.

    The residual is taken in units of V / mean(L): b = (v/V).(g_x Lbar) and
    c_k = V g_v,k Lbar / L_k, so residual = b - grad_s(Phi/V^2) . c is O(1).
    """
    torch.manual_seed(seed)
    x, v, gx, gv = (torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in (x, v, gx, gv))
    loc = x.mean(0)
    length = x.std(0)
    lbar = float(length.mean())
    velocity = float((v - v.mean(0)).pow(2).sum(-1).mean().sqrt() / math.sqrt(3.0))
    phi = MLPPotential(loc, length, velocity, hidden).to(device)
    xs = ((x - loc) / length).to(device)
    b = ((v / velocity) * (gx * lbar)).sum(-1).to(device)
    c = (gv * velocity * lbar / length).to(device)
    gen = torch.Generator().manual_seed(seed)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        for _ in range(steps):
            idx = torch.randint(0, len(xs), (min(batch, len(xs)),), generator=gen).to(device)
            yield xs[idx], b[idx], c[idx]

    # all steps in one "epoch": a cosine decay over the steps, no clipping, Adam
    settings = TrainSettings(lr=lr, weight_decay=0.0, max_epochs=1, clip=None,
                             schedule="cosine_steps", steps_per_epoch=steps,
                             log_every=1 if logger is not None else 0)
    train(phi, batches, _cbe_loss, settings, device=device, logger=logger, name="potential")
    return phi.cpu().eval()


def _cbe_loss(phi: MLPPotential, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, int]:
    """Mean squared CBE residual b - grad_s(Phi/V^2) . c of a batch (xs, b, c)."""
    xs, b, c = batch
    xb = xs.requires_grad_(True)
    grad = torch.autograd.grad(phi.scaled(xb).sum(), xb, create_graph=True)[0]
    return (b - (grad * c).sum(-1)).pow(2).mean(), len(xb)


def potential_fields(phi, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rho M_sun/pc^3, a (km/s)^2/kpc) of either potential at ``x`` (N, 3) kpc."""
    return phi.fields(x)

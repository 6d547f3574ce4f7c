"""Accelerations and mass density from a phase-space density through the steady-state CBE.

The collisionless Boltzmann equation of a steady state, ``v . d log f/dx + a . d log f/dv = 0``,
holds at every (x, v). Two estimators of the mass density rho = -div(a) / (4 pi G):

- **pointwise** (Green & Ting 2020; Buckley et al. 2023): at each grid point draw velocities from
  p(v|x), take the gradients of log f by autograd and solve the 3-unknown least-squares problem
  for a(x) (:func:`acceleration_lstsq`); rho from central differences of a(x) with the same
  velocities at the 6 neighbours (:func:`divergence_density`). The acceleration is good; its
  divergence amplifies the flows' derivative noise.
- **potential**: a smooth Phi(x) fitted to the CBE over all stars at once, see
  :mod:`gaialake.density.potential`.

The same equation read the other way is a non-equilibrium diagnostic (:func:`cbe_residual`):
with the fitted accelerations, ``R = v . d log f/dx + a . d log f/dv = -d log f/dt``; its rms over
p(v|x) relative to the size of the two terms says where the steady-state assumption (and with
it the density) cannot be trusted.

Callables take torch tensors in physical units: ``log_f(x kpc, v km/s)``,
``sample_v(x, n) -> (n, G, 3)`` km/s. Outputs: a in (km/s)^2/kpc, rho in M_sun/pc^3.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch

from gaialake.density import G_KPC_KMS2_MSUN as G
from gaialake.density import MSUN_PC3_IN_KPC3

__all__ = ["log_f_gradients", "acceleration_lstsq", "divergence_density", "cbe_residual",
           "relative_error"]

LogF = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_FOUR_PI_G = 4.0 * math.pi * G


def log_f_gradients(log_f: LogF, x: torch.Tensor, v: torch.Tensor, batch: int = 65536
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """d log f/dx (1/kpc) and d log f/dv (s/km) at (x, v) by autograd, in batches."""
    gxs, gvs = [], []
    flat_x, flat_v = x.reshape(-1, 3), v.reshape(-1, 3)
    for s in range(0, len(flat_x), batch):
        xb = flat_x[s:s + batch].detach().clone().requires_grad_(True)
        vb = flat_v[s:s + batch].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            gx, gv = torch.autograd.grad(log_f(xb, vb).sum(), [xb, vb])
        gxs.append(gx)
        gvs.append(gv)
    return torch.cat(gxs).reshape(x.shape), torch.cat(gvs).reshape(v.shape)


def _lstsq(v: torch.Tensor, gx: torch.Tensor, gv: torch.Tensor, ridge: float) -> torch.Tensor:
    """Per point: argmin_a sum_j (v_j . gx_j + a . gv_j)^2; inputs (n, G, 3) -> (G, 3)."""
    b = (v * gx).sum(-1)  # (n, G)
    c = gv.permute(1, 0, 2)  # (G, n, 3)
    ctc = c.transpose(1, 2) @ c
    if ridge > 0:
        ctc = ctc + ridge * torch.eye(3, dtype=c.dtype) * ctc.diagonal(dim1=1, dim2=2).mean(
            -1, keepdim=True)[..., None]
    ctb = (c.transpose(1, 2) @ b.T[..., None]).squeeze(-1)
    return -torch.linalg.solve(ctc, ctb)


def acceleration_lstsq(log_f: LogF, sample_v: Callable[[torch.Tensor, int], torch.Tensor],
                       x: torch.Tensor, n_v: int = 256, seed: int = 0, ridge: float = 0.0,
                       v: torch.Tensor | None = None) -> torch.Tensor:
    """Acceleration (km/s)^2/kpc at grid points ``x`` (G, 3) kpc by least squares over ``n_v``
    velocities drawn from p(v|x) (or the given ``v``, shape (n_v, G, 3))."""
    if v is None:
        torch.manual_seed(seed)
        with torch.no_grad():
            v = sample_v(x, n_v)
    xx = x.unsqueeze(0).expand_as(v)
    gx, gv = log_f_gradients(log_f, xx, v)
    return _lstsq(v.double(), gx.double(), gv.double(), ridge).to(x.dtype)


def divergence_density(log_f: LogF, sample_v: Callable[[torch.Tensor, int], torch.Tensor],
                       x: torch.Tensor, n_v: int = 256, seed: int = 0, step_kpc: float = 0.05,
                       ridge: float = 0.0, chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Pointwise estimator: (rho M_sun/pc^3 (G,), a (km/s)^2/kpc (G, 3)) at ``x`` (G, 3) kpc.

    div a by central differences of step ``step_kpc``; the velocities drawn at each grid point
    are reused at its 6 neighbours (common random numbers), so the difference is smooth.
    """
    rhos, accs = [], []
    for s in range(0, len(x), chunk):
        xc = x[s:s + chunk]
        torch.manual_seed(seed + s)
        with torch.no_grad():
            v = sample_v(xc, n_v)
        a0 = acceleration_lstsq(log_f, sample_v, xc, v=v, ridge=ridge)
        div = torch.zeros(len(xc), dtype=x.dtype)
        for k in range(3):
            e = torch.zeros(3, dtype=x.dtype)
            e[k] = step_kpc
            ap = acceleration_lstsq(log_f, sample_v, xc + e, v=v, ridge=ridge)
            am = acceleration_lstsq(log_f, sample_v, xc - e, v=v, ridge=ridge)
            div = div + (ap[:, k] - am[:, k]) / (2.0 * step_kpc)
        rhos.append(-div / _FOUR_PI_G / MSUN_PC3_IN_KPC3)
        accs.append(a0)
    return torch.cat(rhos), torch.cat(accs)


def cbe_residual(log_f: LogF, sample_v: Callable[[torch.Tensor, int], torch.Tensor],
                 x: torch.Tensor, a: torch.Tensor, n_v: int = 64, seed: int = 0,
                 chunk: int = 256) -> torch.Tensor:
    """Dimensionless steady-state CBE residual at points ``x`` (G, 3) kpc with accelerations
    ``a`` (G, 3) (km/s)^2/kpc, over ``n_v`` velocities from p(v|x): ``rms(R) /
    sqrt((rms(v . gx)^2 + rms(a . gv)^2) / 2)``, ``R = v . gx + a . gv`` (= -d log f/dt,
    gx = d log f/dx, gv = d log f/dv). 0 in equilibrium; ~1 when the two terms are unrelated;
    sqrt(2) when one of them vanishes. Shape (G,)."""
    out = []
    for s in range(0, len(x), chunk):
        xc, ac = x[s:s + chunk], a[s:s + chunk]
        torch.manual_seed(seed + s)
        with torch.no_grad():
            v = sample_v(xc, n_v)
        gx, gv = log_f_gradients(log_f, xc.unsqueeze(0).expand_as(v), v)
        stream = (v * gx).sum(-1).double()          # (n_v, G), km/s/kpc
        force = (ac.unsqueeze(0) * gv).sum(-1).double()
        typical = ((stream**2).mean(0) + (force**2).mean(0)) / 2.0
        out.append(torch.sqrt(((stream + force) ** 2).mean(0) / typical.clamp(min=1e-300)))
    return torch.cat(out).to(x.dtype)


def relative_error(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|estimate - truth| / |truth| (per row norm for vectors)."""
    est, tru = np.asarray(estimate, float), np.asarray(truth, float)
    if est.ndim == 2:
        return np.linalg.norm(est - tru, axis=-1) / np.linalg.norm(tru, axis=-1)
    return np.abs(est - tru) / np.abs(tru)

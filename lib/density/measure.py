"""From trained phase-space flows to a density grid: the estimators, ensemble errors, truth.

Pure numpy/torch (no Spark): :func:`grid_points` lays out the grid, :func:`count_stars` counts
stars per cell (:func:`lattice_cells` and :func:`counts_on_lattice` the same from per-cell
counts made elsewhere, e.g. on Spark executors), :func:`estimate_fields` runs an estimator for
every ensemble member and returns the mean and spread, :func:`equilibrium_residual` gives the
CBE residual per cell (the non-equilibrium diagnostic), :func:`error_summary` and
:func:`coverage` compare with the truth of a mock.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree

from gaialake.density.boltzmann import (cbe_residual, divergence_density, log_f_gradients,
                                        relative_error)
from gaialake.density.potential import fit_mlp_potential, fit_spline_potential

__all__ = ["grid_points", "count_stars", "lattice_cells", "counts_on_lattice", "fit_potentials",
           "estimate_fields", "equilibrium_residual", "error_summary", "coverage", "band_errors",
           "BAND_MEDIAN_PREFIX", "band_of"]


def grid_points(center_kpc: Sequence[float], radius_kpc: float, spacing_kpc: float) -> np.ndarray:
    """Cubic lattice of step ``spacing_kpc`` through ``center_kpc`` within ``radius_kpc``;
    (G, 3) kpc."""
    n = int(np.floor(radius_kpc / spacing_kpc))
    axis = np.arange(-n, n + 1) * spacing_kpc
    g = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    return g[np.linalg.norm(g, axis=1) <= radius_kpc + 1e-9] + np.asarray(center_kpc, float)


def count_stars(x_kpc: np.ndarray, grid_kpc: np.ndarray, spacing_kpc: float) -> np.ndarray:
    """Stars in the cube cell of side ``spacing_kpc`` around each grid point."""
    tree = cKDTree(np.asarray(x_kpc))
    hits = tree.query_ball_point(np.asarray(grid_kpc), r=0.5 * spacing_kpc, p=np.inf)
    return np.array([len(h) for h in hits], dtype=np.int64)


def lattice_cells(x_kpc: np.ndarray, center_kpc: Sequence[float], spacing_kpc: float
                  ) -> np.ndarray:
    """(N, 3) int64: the :func:`grid_points` lattice cell (cube of side ``spacing_kpc`` around a
    point of the lattice through ``center_kpc``) each star x (kpc) lies in."""
    return np.rint((np.asarray(x_kpc, float) - np.asarray(center_kpc, float))
                   / spacing_kpc).astype(np.int64)


def counts_on_lattice(grid_kpc: np.ndarray, center_kpc: Sequence[float], spacing_kpc: float,
                      cells: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`count_stars` at the lattice points ``grid_kpc`` from stars counted per
    :func:`lattice_cells` cell (``cells`` (M, 3) int, ``n`` (M,)); 0 where none."""
    found = dict(zip(map(tuple, np.asarray(cells, np.int64).tolist()), np.asarray(n).tolist()))
    keys = lattice_cells(grid_kpc, center_kpc, spacing_kpc)
    return np.array([found.get(tuple(k), 0) for k in keys.tolist()], dtype=np.int64)


def fit_potentials(members: Sequence, x: np.ndarray, v: np.ndarray, *, kind: str = "mlp",
                   steps: int = 2000, batch: int = 2048, lr: float = 2e-3,
                   hidden: Sequence[int] = (64, 64, 64), n_intervals: int = 8,
                   box: tuple[Sequence[float], Sequence[float]] | None = None, seed: int = 0,
                   device: str = "cpu", logger=None) -> list:
    """One potential per flows member, fitted to the CBE at stars ``x`` (kpc), ``v`` (km/s)."""
    out = []
    for k, flows in enumerate(members):
        flows = flows.to(device)
        xt = torch.as_tensor(x, dtype=torch.float32, device=device)
        vt = torch.as_tensor(v, dtype=torch.float32, device=device)
        gx, gv = log_f_gradients(flows.log_f, xt, vt, batch=8192)
        gx, gv = gx.cpu().numpy(), gv.cpu().numpy()
        ok = np.all(np.isfinite(gx), 1) & np.all(np.isfinite(gv), 1)
        if kind == "mlp":
            out.append(fit_mlp_potential(x[ok], v[ok], gx[ok], gv[ok], steps=steps, batch=batch,
                                         lr=lr, hidden=tuple(hidden), seed=seed + k,
                                         device=device, logger=logger))
        elif kind == "spline":
            if box is None:
                box = (x.min(0), x.max(0))
            pot, _ = fit_spline_potential(x[ok], v[ok], gx[ok], gv[ok], lo_kpc=box[0],
                                          hi_kpc=box[1], n_intervals=n_intervals, seed=seed + k)
            out.append(pot)
        else:
            raise ValueError(f"conf density.potential.kind: {kind!r} is not mlp or spline")
        flows.cpu()
    return out


def estimate_fields(members: Sequence, grid: np.ndarray, *, estimator: str = "potential",
                    potentials: Sequence | None = None, n_v: int = 256, step_kpc: float = 0.05,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Density (M_sun/pc^3) and acceleration ((km/s)^2/kpc) on ``grid`` per member, their mean
    and spread: keys rho, rho_err, a, a_err, rho_members, a_members."""
    rhos, accs = [], []
    if estimator == "potential":
        if potentials is None:
            raise ValueError("estimate_fields: estimator 'potential' needs fitted potentials")
        for pot in potentials:
            rho, a = pot.fields(grid)
            rhos.append(rho)
            accs.append(a)
    elif estimator == "pointwise":
        gt = torch.as_tensor(grid, dtype=torch.float32)
        for k, flows in enumerate(members):
            rho, a = divergence_density(flows.log_f, flows.sample_v, gt, n_v=n_v,
                                        step_kpc=step_kpc, seed=seed + k)
            rhos.append(rho.numpy())
            accs.append(a.numpy())
    else:
        raise ValueError(f"conf density.estimator: {estimator!r} is not potential or pointwise")
    rho_m, a_m = np.array(rhos, float), np.array(accs, float)
    k = len(rho_m)
    return {"rho": rho_m.mean(0), "rho_err": rho_m.std(0, ddof=1) if k > 1 else np.zeros(len(grid)),
            "a": a_m.mean(0), "a_err": a_m.std(0, ddof=1) if k > 1 else np.zeros_like(a_m[0]),
            "rho_members": rho_m, "a_members": a_m}


def equilibrium_residual(members: Sequence, grid: np.ndarray, a_members: np.ndarray, *,
                         n_v: int = 64, seed: int = 0) -> np.ndarray:
    """The CBE residual (dimensionless, :func:`~gaialake.density.boltzmann.cbe_residual`) on
    ``grid`` (G, 3) kpc, member k's flows with its accelerations ``a_members[k]`` (G, 3)
    (km/s)^2/kpc, averaged over the members; (G,)."""
    gt = torch.as_tensor(grid, dtype=torch.float32)
    res = [cbe_residual(flows.log_f, flows.sample_v, gt,
                        torch.as_tensor(a_members[k], dtype=torch.float32), n_v=n_v,
                        seed=seed + k).numpy() for k, flows in enumerate(members)]
    return np.mean(np.array(res, float), axis=0)


def coverage(rho: np.ndarray, rho_err: np.ndarray, rho_true: np.ndarray, region: np.ndarray
             ) -> dict[str, float]:
    """Over the cells of ``region`` (bool) with a finite truth and ``rho_err > 0``: the
    fractions whose truth lies within 1 and 2 sigma (``coverage_1sigma``, ``coverage_2sigma``;
    0.683 and 0.954 for right Gaussian errors) and their number (``n_coverage``)."""
    rho, err = np.asarray(rho, float), np.asarray(rho_err, float)
    truth = np.asarray(rho_true, float)
    ok = np.asarray(region, bool) & np.isfinite(truth) & np.isfinite(rho) & (err > 0)
    if not ok.any():
        return {"n_coverage": 0}
    pull = np.abs(rho[ok] - truth[ok]) / err[ok]
    return {"n_coverage": int(ok.sum()), "coverage_1sigma": float(np.mean(pull <= 1.0)),
            "coverage_2sigma": float(np.mean(pull <= 2.0))}


def error_summary(rho: np.ndarray, a: np.ndarray, rho_true: np.ndarray, a_true: np.ndarray,
                  region: np.ndarray, rho_err: np.ndarray | None = None) -> dict[str, float]:
    """Median/p90/max relative density and acceleration errors inside ``region`` (bool mask);
    with ``rho_err``, the median |rho - rho_true| / rho_err (pull, ~0.67 when errors are right)."""
    if not np.any(region):
        return {"n_region": 0}
    e = relative_error(rho[region], rho_true[region])
    amag = np.linalg.norm(a_true[region], axis=1)
    ok = amag > 1e-3 * max(float(amag.max()), 1e-30)  # the acceleration vanishes at a centre
    ea = relative_error(a[region][ok], a_true[region][ok])
    out = {"n_region": int(region.sum()), "rho_rel_err_median": float(np.median(e)),
           "rho_rel_err_p90": float(np.percentile(e, 90)), "rho_rel_err_max": float(e.max()),
           "a_rel_err_median": float(np.median(ea)), "a_rel_err_p90": float(np.percentile(ea, 90))}
    if rho_err is not None and np.all(rho_err[region] > 0):
        out["rho_pull_median"] = float(np.median(np.abs(rho[region] - rho_true[region])
                                                 / rho_err[region]))
    return out


def band_errors(rho: np.ndarray, rho_true: np.ndarray, region: np.ndarray, height: np.ndarray,
                edges: Sequence[float]) -> dict[str, float]:
    """Median relative density error and cell count inside ``region`` per band
    ``edges[i] <= height < edges[i+1]`` (height in kpc: |z| for a disk, r for a sphere); keys
    ``rho_rel_err_median_<lo>_<hi>`` and ``n_region_<lo>_<hi>``, bands without cells left out."""
    e = relative_error(rho, rho_true)
    out: dict[str, float] = {}
    for lo, hi in zip(edges[:-1], edges[1:]):
        k = region & (height >= lo) & (height < hi)
        if k.any():
            tag = f"{lo:g}_{hi:g}"
            out[f"{BAND_MEDIAN_PREFIX}{tag}"] = float(np.median(e[k]))
            out[f"n_region_{tag}"] = int(k.sum())
    return out


#: The prefix of :func:`band_errors`' median keys (``rho_rel_err_median_<lo>_<hi>``).
BAND_MEDIAN_PREFIX = "rho_rel_err_median_"


def band_of(key: str) -> tuple[float, float] | None:
    """(lo, hi) in kpc of a :func:`band_errors` median key; None for any other key."""
    if not key.startswith(BAND_MEDIAN_PREFIX):
        return None
    lo, _, hi = key[len(BAND_MEDIAN_PREFIX):].partition("_")
    try:
        return float(lo), float(hi)
    except ValueError:
        return None

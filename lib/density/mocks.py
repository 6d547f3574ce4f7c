"""Equilibrium systems with exact truth for validating the Boltzmann density pipeline.

Two systems, each with a distribution function f(x, v), potential, acceleration and mass density
known in closed form, sampled exactly:

- :class:`PlummerSphere`: self-consistent isotropic Plummer (1911) sphere,
  ``rho(r) = 3 M / (4 pi b^3) (1 + r^2/b^2)^(-5/2)``, ``Phi = -G M / sqrt(r^2 + b^2)``,
  ``f(E) ∝ (-E)^(7/2)``. Positions by inverting M(<r), speeds by von Neumann rejection on
  ``g(q) = q^2 (1 - q^2)^(7/2)``, q = v / v_esc (Aarseth, Hénon & Wielen 1974, A&A 37, 183).
- :class:`SlabMock`: a disk-like local system. The potential is plane-parallel,
  ``Phi(z) = sum_i 4 pi G rho_i h_i^2 ln cosh(z/h_i) + 2 pi G rho_DM z^2``, i.e. the exact
  potential of baryonic components ``rho_i sech^2(z/h_i)`` plus a constant dark-matter density
  (Spitzer 1942 sheets; the local budget of McKee et al. 2015 in that form, see
  :mod:`gaialake.density.baryons`). Tracers are a mixture of isothermal populations,
  ``f_k ∝ exp(-Phi(z)/s_zk^2) N(v_z; 0, s_zk) N(v_x; 0, s_Rk) N(v_y; v_phi_k, s_phik)``,
  uniform in (x, y): a steady state of the slab (no planar force). The total mass density that
  the CBE recovers is ``sum_i rho_i sech^2(z/h_i) + rho_DM``. z is Galactocentric (plane at 0),
  the Sun at (-R0, 0, z_sun) by default; see :mod:`gaialake.astro.frame` for the solar parameters.

Units: kpc, km/s, M_sun; ``density_msun_pc3`` in M_sun/pc^3, accelerations in (km/s)^2/kpc.
Samples are float64 numpy arrays; ``log_f`` takes torch tensors (for autograd in tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from gaialake.astro.frame import SUN_POSITION_X_R0_KPC
from gaialake.density import G_KPC_KMS2_MSUN as G
from gaialake.density import MSUN_PC3_IN_KPC3

__all__ = ["PlummerSphere", "SlabComponent", "TracerPopulation", "SlabMock", "sample_absolute_mag",
           "slab_from_lists"]


@dataclass(frozen=True)
class PlummerSphere:
    """Isotropic Plummer sphere of total mass ``mass_msun`` and scale radius ``b_kpc``.

    >>> x, v = PlummerSphere(1e10, 1.0).sample(1000, seed=1)
    """

    mass_msun: float = 1.0e10
    b_kpc: float = 1.0
    center_kpc: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` stars drawn exactly from f: positions (kpc) and velocities (km/s), shape (n, 3)."""
        rng = np.random.default_rng(seed)
        m = rng.uniform(1e-10, 1.0, n)
        r = self.b_kpc / np.sqrt(m ** (-2.0 / 3.0) - 1.0)
        x = r[:, None] * _isotropic(rng, n) + np.asarray(self.center_kpc)
        q = np.empty(n)
        todo = np.arange(n)
        while todo.size:  # von Neumann rejection, max g(q) = 0.0920 at q^2 = 2/9
            qq = rng.uniform(0.0, 1.0, todo.size)
            ok = rng.uniform(0.0, 0.1, todo.size) < qq**2 * (1.0 - qq**2) ** 3.5
            q[todo[ok]] = qq[ok]
            todo = todo[~ok]
        v_esc = np.sqrt(2.0 * G * self.mass_msun / np.sqrt(r**2 + self.b_kpc**2))
        v = (q * v_esc)[:, None] * _isotropic(rng, n)
        return x, v

    def _r2(self, x: np.ndarray) -> np.ndarray:
        d = np.asarray(x, float) - np.asarray(self.center_kpc)
        return np.sum(d * d, axis=-1)

    def density_msun_pc3(self, x: np.ndarray) -> np.ndarray:
        """Mass density at positions ``x`` (kpc), M_sun/pc^3."""
        rho = 3.0 * self.mass_msun / (4.0 * np.pi * self.b_kpc**3) * (
            1.0 + self._r2(x) / self.b_kpc**2) ** -2.5
        return rho / MSUN_PC3_IN_KPC3

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        """Gravitational acceleration -grad Phi at ``x`` (kpc), (km/s)^2/kpc."""
        d = np.asarray(x, float) - np.asarray(self.center_kpc)
        return -G * self.mass_msun * d / (self._r2(x) + self.b_kpc**2)[..., None] ** 1.5

    def potential(self, x: np.ndarray) -> np.ndarray:
        """Phi at ``x`` (kpc), (km/s)^2."""
        return -G * self.mass_msun / np.sqrt(self._r2(x) + self.b_kpc**2)

    def log_f(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log f(x, v) up to a constant (-inf where unbound); differentiable torch."""
        c = torch.as_tensor(self.center_kpc, dtype=x.dtype)
        r2 = ((x - c) ** 2).sum(-1)
        energy = 0.5 * (v**2).sum(-1) - G * self.mass_msun / torch.sqrt(r2 + self.b_kpc**2)
        return 3.5 * torch.log(torch.clamp(-energy, min=1e-30))


@dataclass(frozen=True)
class SlabComponent:
    """A ``rho0 sech^2(z/h)`` sheet: midplane density (M_sun/pc^3) and scale height (kpc)."""

    rho0_msun_pc3: float
    h_kpc: float


@dataclass(frozen=True)
class TracerPopulation:
    """An isothermal tracer population: number fraction and dispersions (km/s)."""

    weight: float
    sigma_z: float
    sigma_r: float
    sigma_phi: float
    v_phi: float = 0.0


@dataclass(frozen=True)
class SlabMock:
    """Plane-parallel disk-like system: sech^2 baryon sheets + constant DM, isothermal tracers.

    The tracers fill the sphere of radius ``radius_kpc`` around ``sun_kpc`` uniformly in (x, y).
    ``v_phi`` of a population is its mean Galactocentric v_y (km/s).

    >>> mock = SlabMock((SlabComponent(0.084, 0.28),), 0.013, (TracerPopulation(1, 20, 30, 20),))
    >>> x, v = mock.sample(1000, seed=1)
    """

    components: tuple[SlabComponent, ...]
    rho_dm_msun_pc3: float
    populations: tuple[TracerPopulation, ...]
    sun_kpc: tuple[float, float, float] = tuple(SUN_POSITION_X_R0_KPC.tolist())
    radius_kpc: float = 3.0

    # --- the potential and its truth -------------------------------------------------------
    def potential_z(self, z: np.ndarray) -> np.ndarray:
        """Phi(z), (km/s)^2 (zero in the plane)."""
        z = np.asarray(z, float)
        phi = 2.0 * np.pi * G * self.rho_dm_msun_pc3 * MSUN_PC3_IN_KPC3 * z**2
        for c in self.components:
            a = np.abs(z) / c.h_kpc
            lncosh = a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)
            phi = phi + 4.0 * np.pi * G * c.rho0_msun_pc3 * MSUN_PC3_IN_KPC3 * c.h_kpc**2 * lncosh
        return phi

    def density_msun_pc3(self, x: np.ndarray) -> np.ndarray:
        """Total mass density at ``x`` (kpc, Galactocentric), M_sun/pc^3."""
        z = np.asarray(x, float)[..., 2]
        rho = np.full(z.shape, self.rho_dm_msun_pc3)
        for c in self.components:
            rho = rho + c.rho0_msun_pc3 / np.cosh(z / c.h_kpc) ** 2
        return rho

    def acceleration(self, x: np.ndarray) -> np.ndarray:
        """-grad Phi at ``x`` (kpc), (km/s)^2/kpc; only the z component is non-zero."""
        z = np.asarray(x, float)[..., 2]
        az = -4.0 * np.pi * G * self.rho_dm_msun_pc3 * MSUN_PC3_IN_KPC3 * z
        for c in self.components:
            az = az - 4.0 * np.pi * G * c.rho0_msun_pc3 * MSUN_PC3_IN_KPC3 * c.h_kpc * np.tanh(
                z / c.h_kpc)
        return np.stack([np.zeros_like(z), np.zeros_like(z), az], axis=-1)

    def _weights(self) -> np.ndarray:
        w = np.array([p.weight for p in self.populations], float)
        if np.any(w < 0) or w.sum() <= 0:
            raise ValueError(f"SlabMock: population weights must be >= 0, got {w}")
        return w / w.sum()

    # --- sampling --------------------------------------------------------------------------
    def sample(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` stars inside the sphere around the Sun: positions (kpc), velocities (km/s).

        z is drawn per population by inverting its CDF on a 40001-point grid over the sphere's
        z range (relative error of the tabulated CDF < 1e-6); x, y uniformly; stars outside the
        sphere are redrawn.
        """
        rng = np.random.default_rng(seed)
        sun = np.asarray(self.sun_kpc)
        zg = np.linspace(sun[2] - self.radius_kpc, sun[2] + self.radius_kpc, 40001)
        phi = self.potential_z(zg)
        w = self._weights()
        xs, vs, got = [], [], 0
        while got < n:
            m = int(1.6 * (n - got)) + 64
            k = rng.choice(len(w), size=m, p=w)
            z = np.empty(m)
            for i, pop in enumerate(self.populations):
                sel = k == i
                pdf = np.exp(-(phi - phi.min()) / pop.sigma_z**2)
                z[sel] = _inverse_cdf(zg, pdf, rng.uniform(0, 1, sel.sum()))
            xy = sun[:2] + rng.uniform(-self.radius_kpc, self.radius_kpc, (m, 2))
            x = np.column_stack([xy, z])
            keep = np.sum((x - sun) ** 2, axis=1) < self.radius_kpc**2
            sz = np.array([p.sigma_z for p in self.populations])[k]
            sr = np.array([p.sigma_r for p in self.populations])[k]
            sp = np.array([p.sigma_phi for p in self.populations])[k]
            vp = np.array([p.v_phi for p in self.populations])[k]
            v = np.column_stack([sr * rng.standard_normal(m), vp + sp * rng.standard_normal(m),
                                 sz * rng.standard_normal(m)])
            xs.append(x[keep])
            vs.append(v[keep])
            got += int(keep.sum())
        return np.concatenate(xs)[:n], np.concatenate(vs)[:n]

    def log_f(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log f(x, v) up to a constant inside the sphere; differentiable torch."""
        z = x[..., 2]
        phi = 2.0 * np.pi * G * self.rho_dm_msun_pc3 * MSUN_PC3_IN_KPC3 * z**2
        for c in self.components:
            a = torch.abs(z) / c.h_kpc
            lncosh = a + torch.log1p(torch.exp(-2.0 * a)) - np.log(2.0)
            phi = phi + 4.0 * np.pi * G * c.rho0_msun_pc3 * MSUN_PC3_IN_KPC3 * c.h_kpc**2 * lncosh
        zg = np.linspace(self.sun_kpc[2] - self.radius_kpc, self.sun_kpc[2] + self.radius_kpc,
                         40001)
        phig = self.potential_z(zg)
        terms = []
        for wk, pop in zip(self._weights(), self.populations):
            pdf = np.exp(-(phig - phig.min()) / pop.sigma_z**2)
            log_norm = (np.log(np.sum(0.5 * (pdf[1:] + pdf[:-1])) * (zg[1] - zg[0]))
                        - phig.min() / pop.sigma_z**2)
            terms.append(
                np.log(wk) - log_norm - phi / pop.sigma_z**2
                - 0.5 * (v[..., 2] / pop.sigma_z) ** 2 - np.log(pop.sigma_z)
                - 0.5 * (v[..., 0] / pop.sigma_r) ** 2 - np.log(pop.sigma_r)
                - 0.5 * ((v[..., 1] - pop.v_phi) / pop.sigma_phi) ** 2 - np.log(pop.sigma_phi))
        return torch.logsumexp(torch.stack(terms), dim=0)


def sample_absolute_mag(n: int, mean_mag: float, sigma_mag: float, seed: int) -> np.ndarray:
    """Absolute G magnitudes from a Gaussian luminosity function N(mean_mag, sigma_mag), mag."""
    return np.random.default_rng(seed).normal(mean_mag, sigma_mag, n)


def _isotropic(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.standard_normal((n, 3))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def _inverse_cdf(grid: np.ndarray, pdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Invert the CDF of a pdf tabulated on a uniform grid, linear between nodes (exact)."""
    dz = grid[1] - grid[0]
    cells = 0.5 * (pdf[1:] + pdf[:-1]) * dz
    cdf = np.concatenate([[0.0], np.cumsum(cells)])
    target = u * cdf[-1]
    i = np.clip(np.searchsorted(cdf, target, side="right") - 1, 0, len(grid) - 2)
    area = (target - cdf[i]) / dz  # area left to cover inside cell i, in units of dz
    p0, slope = pdf[i], pdf[i + 1] - pdf[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(np.abs(slope) > 1e-9 * np.maximum(p0, 1e-300),
                     (-p0 + np.sqrt(np.maximum(p0**2 + 2.0 * slope * area, 0.0))) / slope,
                     area / np.maximum(p0, 1e-300))
    return grid[i] + np.clip(t, 0.0, 1.0) * dz


def slab_from_lists(components: Sequence[dict], rho_dm_msun_pc3: float,
                    populations: Sequence[dict], sun_kpc: Sequence[float],
                    radius_kpc: float) -> SlabMock:
    """A :class:`SlabMock` from conf-style lists of dicts."""
    return SlabMock(tuple(SlabComponent(float(c["rho0_msun_pc3"]), float(c["h_kpc"]))
                          for c in components),
                    float(rho_dm_msun_pc3),
                    tuple(TracerPopulation(**{k: float(v) for k, v in p.items()})
                          for p in populations),
                    tuple(float(s) for s in sun_kpc), float(radius_kpc))


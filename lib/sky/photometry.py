"""Absolute magnitudes and colours: a simple isochrone + IMF luminosity-function model.

Each population is an isochrone in Gaia bands, tabulated at 13 "evolutionary points" (lower main
sequence ... turn-off, subgiant, red-giant branch up to its tip) plus a core-helium-burning phase
(red clump for metal-rich, blue/red horizontal branch for metal-poor populations). The three
anchor tables below are hand-tabulated approximations of PARSEC-like isochrones (good to a few
tenths of a magnitude; no binaries, one age and metallicity per population):

========  =======  =====  ==============================================
anchor    [Fe/H]   age    used for
========  =======  =====  ==============================================
metal-poor -1.5    12 Gyr in-situ halo, accreted debris, streams
thick      -0.5    10 Gyr thick disk, bulge
thin        0.0     4 Gyr thin disk
========  =======  =====  ==============================================

A population of any [Fe/H] in [-2, 0.2] interpolates the anchors point by point (ages follow
the anchors' age-metallicity relation). Stars are drawn from a Kroupa (2001) IMF on a fine mass
grid: each grid mass has a weight (IMF x dm), an absolute G (mag) and a BP-RP (mag); masses past
the core-helium-burning phase are remnants and are not drawn (white dwarfs are below G=20.7
beyond a few hundred pc). Drawing with a faint limit ``M_G < M_lim`` is an inverse-CDF draw over
the grid sorted by M_G, so it is exact and vectorised; :meth:`Population.fraction_brighter`
gives the fraction of stars brighter than ``M_lim`` (the luminosity function's cumulative).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["Population", "population", "ANCHORS", "distance_modulus", "apparent_g",
           "G_MINUS_RP", "extinction_bands"]

# (mass M_sun, M_G mag, BP-RP mag) at the same 13 evolutionary points, then (dm_HB M_sun,
# M_G of the HB/clump, BP-RP range of the HB/clump).
ANCHORS: dict[float, dict] = {
    -1.5: dict(age_gyr=12.0,
               mass=[0.09, 0.15, 0.30, 0.45, 0.60, 0.70, 0.76, 0.800, 0.810, 0.815, 0.820, 0.823, 0.825],
               mg=[11.8, 10.6, 8.9, 7.6, 6.2, 5.2, 4.5, 3.7, 3.2, 2.6, 1.2, -0.8, -2.8],
               bprp=[2.5, 2.1, 1.65, 1.25, 0.90, 0.72, 0.62, 0.52, 0.60, 0.78, 0.95, 1.25, 1.75],
               hb_dm=0.004, hb_mg=(0.70, 0.50), hb_bprp=(0.0, 0.55)),
    -0.5: dict(age_gyr=10.0,
               mass=[0.09, 0.15, 0.30, 0.45, 0.60, 0.75, 0.85, 0.920, 0.940, 0.950, 0.955, 0.958, 0.960],
               mg=[12.8, 11.3, 9.6, 8.3, 7.0, 5.8, 4.9, 4.0, 3.4, 2.8, 1.3, -0.9, -3.0],
               bprp=[3.0, 2.6, 2.2, 1.75, 1.25, 0.95, 0.78, 0.65, 0.75, 0.95, 1.15, 1.50, 2.10],
               hb_dm=0.005, hb_mg=(0.55, 0.45), hb_bprp=(0.95, 1.05)),
    0.0: dict(age_gyr=4.0,
              mass=[0.09, 0.15, 0.30, 0.45, 0.60, 0.80, 1.00, 1.220, 1.260, 1.280, 1.290, 1.295, 1.300],
              mg=[13.5, 12.0, 10.2, 8.9, 7.5, 5.9, 4.6, 3.0, 2.7, 2.2, 1.0, -1.0, -3.2],
              bprp=[3.4, 2.9, 2.45, 2.0, 1.55, 1.05, 0.80, 0.62, 0.80, 1.05, 1.20, 1.60, 2.30],
              hb_dm=0.006, hb_mg=(0.50, 0.40), hb_bprp=(1.10, 1.20)),
}

LF_GRID_MIN, LF_GRID_MAX, LF_GRID_STEP = -6.0, 18.0, 0.005  # mag

#: G - RP as a function of BP - RP (mag), a quadratic fit to main-sequence and giant colours.
G_MINUS_RP = (-0.02, 0.56, -0.04)

#: Extinction coefficients A_X / A_V for Gaia bands (Wang & Chen 2019).
EXTINCTION = {"G": 0.789, "BP": 1.002, "RP": 0.589}


def extinction_bands(a_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(A_G, E(BP-RP)) in mag from A_V in mag."""
    a_v = np.asarray(a_v, dtype=np.float64)
    return EXTINCTION["G"] * a_v, (EXTINCTION["BP"] - EXTINCTION["RP"]) * a_v


def distance_modulus(distance_kpc: np.ndarray) -> np.ndarray:
    """5 log10(d / 10 pc) in mag, for distances in kpc."""
    return 5.0 * np.log10(np.asarray(distance_kpc, dtype=np.float64) * 100.0)


def apparent_g(abs_g: np.ndarray, distance_kpc: np.ndarray, a_g: np.ndarray | float = 0.0) -> np.ndarray:
    """Apparent G (mag) from absolute G (mag), distance (kpc) and extinction A_G (mag)."""
    return np.asarray(abs_g) + distance_modulus(distance_kpc) + a_g


def _kroupa(mass: np.ndarray) -> np.ndarray:
    """Kroupa (2001) IMF dN/dm (arbitrary normalisation, continuous at 0.5 M_sun)."""
    return np.where(mass < 0.5, (mass / 0.5) ** -1.3, (mass / 0.5) ** -2.3)


@dataclass(frozen=True)
class Population:
    """A single-age, single-metallicity population on a fine mass grid.

    ``abs_g`` / ``bp_rp`` (mag) are sorted by ``abs_g`` (brightest first); ``cum`` is the
    cumulative number fraction in that order, so ``fraction_brighter(M)`` is a search.
    """
    feh: float
    abs_g: np.ndarray
    bp_rp: np.ndarray
    cum: np.ndarray
    lf_table: np.ndarray  # fraction brighter on the grid LF_GRID_MIN + LF_GRID_STEP * i

    def fraction_brighter(self, abs_g_limit: np.ndarray) -> np.ndarray:
        """Fraction of the population's stars with absolute G < ``abs_g_limit`` (mag), from a
        table in steps of 0.005 mag (fast for the line-of-sight grids)."""
        x = (np.asarray(abs_g_limit, dtype=np.float64) - LF_GRID_MIN) * (1.0 / LF_GRID_STEP)
        i = np.clip(x, 0, len(self.lf_table) - 1).astype(np.intp)
        return self.lf_table[i]

    def fraction_brighter_exact(self, abs_g_limit: np.ndarray) -> np.ndarray:
        """As :meth:`fraction_brighter`, exactly on the mass grid."""
        k = np.searchsorted(self.abs_g, np.asarray(abs_g_limit, dtype=np.float64), side="left")
        return np.where(k > 0, self.cum[np.maximum(k - 1, 0)], 0.0)

    def sample(self, rng: np.random.Generator, abs_g_limit: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray]:
        """Draw (absolute G, BP-RP) in mag, one star per entry of ``abs_g_limit`` (mag), each
        from the luminosity function truncated to ``M_G < abs_g_limit``.

        Entries whose limit is brighter than the brightest star get the brightest star.
        """
        lim = np.asarray(abs_g_limit, dtype=np.float64)
        top = np.maximum(self.fraction_brighter_exact(lim), self.cum[0])
        u = rng.random(lim.shape) * top
        i = np.minimum(np.searchsorted(self.cum, u, side="left"), len(self.cum) - 1)
        # Spread within the grid cell and add a small intrinsic scatter (binaries, spread in age).
        jitter = rng.standard_normal((2,) + lim.shape)
        abs_g = self.abs_g[i] + 0.03 * jitter[0]
        bp_rp = self.bp_rp[i] + 0.015 * jitter[1]
        return abs_g, bp_rp


def _anchor_tables(feh: float) -> dict:
    """The anchor tables interpolated linearly in [Fe/H] (clipped to the anchors' range)."""
    keys = sorted(ANCHORS)
    feh = float(np.clip(feh, keys[0], keys[-1]))
    hi = next(k for k in keys if k >= feh)
    lo = keys[max(keys.index(hi) - 1, 0)]
    w = 0.0 if hi == lo else (feh - lo) / (hi - lo)
    a, b = ANCHORS[lo], ANCHORS[hi]
    out = {}
    for key in ("mass", "mg", "bprp", "hb_mg", "hb_bprp"):
        out[key] = (1 - w) * np.asarray(a[key], float) + w * np.asarray(b[key], float)
    out["hb_dm"] = (1 - w) * a["hb_dm"] + w * b["hb_dm"]
    return out


@lru_cache(maxsize=16)
def population(feh: float, points_per_segment: int = 400) -> Population:
    """The :class:`Population` of metallicity ``feh`` (dex), built once per process."""
    t = _anchor_tables(feh)
    masses, mgs, cols = [], [], []
    for j in range(len(t["mass"]) - 1):
        m = np.linspace(t["mass"][j], t["mass"][j + 1], points_per_segment, endpoint=False)
        f = (m - t["mass"][j]) / (t["mass"][j + 1] - t["mass"][j])
        masses.append(m)
        mgs.append(t["mg"][j] + f * (t["mg"][j + 1] - t["mg"][j]))
        cols.append(t["bprp"][j] + f * (t["bprp"][j + 1] - t["bprp"][j]))
    # Core-helium burning: a horizontal branch (metal-poor) or a red clump (metal-rich).
    m_tip = t["mass"][-1]
    m = np.linspace(m_tip, m_tip + t["hb_dm"], points_per_segment)
    f = (m - m_tip) / t["hb_dm"]
    masses.append(m)
    mgs.append(t["hb_mg"][0] + f * (t["hb_mg"][1] - t["hb_mg"][0]))
    cols.append(t["hb_bprp"][0] + f * (t["hb_bprp"][1] - t["hb_bprp"][0]))
    mass = np.concatenate(masses)
    dm = np.gradient(mass)
    weight = _kroupa(mass) * dm
    abs_g, bp_rp = np.concatenate(mgs), np.concatenate(cols)
    order = np.argsort(abs_g, kind="stable")
    cum = np.cumsum(weight[order])
    abs_g, bp_rp, cum = abs_g[order], bp_rp[order], cum / cum[-1]
    grid = LF_GRID_MIN + LF_GRID_STEP * np.arange(int((LF_GRID_MAX - LF_GRID_MIN) / LF_GRID_STEP) + 1)
    k = np.searchsorted(abs_g, grid, side="left")
    table = np.where(k > 0, cum[np.maximum(k - 1, 0)], 0.0)
    return Population(float(feh), abs_g, bp_rp, cum, table)

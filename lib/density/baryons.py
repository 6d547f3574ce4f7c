"""A local baryon model and the dark-matter density at the Sun.

The baryons are a sum of plane-parallel ``rho0 sech^2(z/h)`` sheets from conf
(``density.baryons``). The default is the local budget of McKee, Parravano & Hollenbach (2015,
ApJ 814, 13): midplane gas 0.041 ± 0.004 and stars + remnants 0.043 ± 0.004 M_sun/pc^3, with
surface densities 13.7 and 33.4 M_sun/pc^2, which fix the sheets' scale heights
h = Sigma / (2 rho0) = 0.167 and 0.388 kpc. Then rho_DM = rho_total(Sun) - rho_baryon(z_sun),
errors added in quadrature (the baryon components' errors taken as independent).

1 M_sun/pc^3 = 37.965 GeV/cm^3 (astropy constants: M_sun c^2 / pc^3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = ["BaryonComponent", "baryon_model", "baryon_density", "baryon_density_error",
           "rho_dm_at_sun", "MSUN_PC3_TO_GEV_CM3"]

#: 1 M_sun/pc^3 in GeV/cm^3 ((M_sun c^2 / pc^3).to(GeV/cm^3) with astropy 7.2 constants).
MSUN_PC3_TO_GEV_CM3 = 37.96516457291571


@dataclass(frozen=True)
class BaryonComponent:
    """A sech^2 sheet: midplane density and its error (M_sun/pc^3), scale height (kpc)."""

    name: str
    rho0_msun_pc3: float
    rho0_err_msun_pc3: float
    h_kpc: float


def baryon_model(components: Sequence[Mapping]) -> tuple[BaryonComponent, ...]:
    """Components from conf dicts with keys name, rho0_msun_pc3, rho0_err_msun_pc3, h_kpc."""
    out = []
    for i, c in enumerate(components):
        missing = {"name", "rho0_msun_pc3", "rho0_err_msun_pc3", "h_kpc"} - set(c)
        if missing:
            raise KeyError(f"conf density.baryons[{i}]: missing {sorted(missing)}")
        out.append(BaryonComponent(str(c["name"]), float(c["rho0_msun_pc3"]),
                                   float(c["rho0_err_msun_pc3"]), float(c["h_kpc"])))
    return tuple(out)


def baryon_density(z_kpc, components: Sequence[BaryonComponent]) -> np.ndarray:
    """Baryon mass density at height ``z_kpc`` above the plane, M_sun/pc^3."""
    z = np.asarray(z_kpc, float)
    return sum(c.rho0_msun_pc3 / np.cosh(z / c.h_kpc) ** 2 for c in components) + 0.0 * z


def baryon_density_error(z_kpc, components: Sequence[BaryonComponent]) -> np.ndarray:
    """1-sigma error of :func:`baryon_density` (independent components), M_sun/pc^3."""
    z = np.asarray(z_kpc, float)
    return np.sqrt(sum((c.rho0_err_msun_pc3 / np.cosh(z / c.h_kpc) ** 2) ** 2
                       for c in components) + 0.0 * z)


def rho_dm_at_sun(rho_total_msun_pc3: float, rho_total_err_msun_pc3: float, z_sun_kpc: float,
                  components: Sequence[BaryonComponent]) -> dict[str, float]:
    """rho_DM = rho_total - rho_baryon at the Sun, in M_sun/pc^3 and GeV/cm^3, with errors
    (``*_err``: total; ``*_err_stat``: from rho_total alone)."""
    rb = float(baryon_density(z_sun_kpc, components))
    rb_err = float(baryon_density_error(z_sun_kpc, components))
    dm = rho_total_msun_pc3 - rb
    err = float(np.hypot(rho_total_err_msun_pc3, rb_err))
    return {"rho_total_msun_pc3": float(rho_total_msun_pc3),
            "rho_total_err_msun_pc3": float(rho_total_err_msun_pc3),
            "rho_baryon_msun_pc3": rb, "rho_baryon_err_msun_pc3": rb_err,
            "rho_dm_msun_pc3": float(dm), "rho_dm_err_msun_pc3": err,
            "rho_dm_gev_cm3": float(dm * MSUN_PC3_TO_GEV_CM3),
            "rho_dm_err_gev_cm3": err * MSUN_PC3_TO_GEV_CM3,
            "rho_dm_err_stat_gev_cm3": float(rho_total_err_msun_pc3 * MSUN_PC3_TO_GEV_CM3)}

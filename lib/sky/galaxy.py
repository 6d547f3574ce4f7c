"""The smooth Milky Way: thin and thick disks, bulge, in-situ halo, dust; galaxies ``A`` / ``B``.

Every component is a :class:`Component`: a number density of stars (stars/pc^3) as a function
of Galactocentric position (kpc, astropy's ``Galactocentric`` axes: Sun at x = -R0, disk
rotation towards +y at the Sun), a kinematic model (see :mod:`~gaialake.sky.kinematics`) and a
stellar population (see :mod:`~gaialake.sky.photometry`).

Densities (``rho0`` stars/pc^3 times a shape; R cylindrical, r_q = sqrt(R^2 + (z/q)^2)):

- ``disk``: exp(-(R - R0)/R_d - (|z| - |z_sun|)/h_z), equal to 1 at the Sun. Thin disk R_d = 2.5,
  h_z = 0.3 kpc; thick disk R_d = 3.0, h_z = 0.9 kpc (McMillan 2017 scale lengths); locally
  thick/thin = 0.12 (Juric et al. 2008). Thin-disk local density 0.070 stars/pc^3 (all stars
  above 0.09 M_sun, about 1.2 stars per M_sun of McMillan's 0.058 M_sun/pc^3).
- ``bulge``: (1 + r_q/r0)^-alpha exp(-(r_q/r_cut)^2), alpha = 1.8, r0 = 0.075 kpc, r_cut = 2.1
  kpc, q = 0.5 (Bissantz & Gerhard 2002 as in McMillan 2017), rho0 = 128 stars/pc^3.
- ``spheroid``: ((r_q^2 + r_c^2) / (r_q,sun^2 + r_c^2))^(-alpha/2), times a break
  ((1 + r_q/r_b) / (1 + r_q,sun/r_b))^(alpha - alpha_out) when ``r_b`` is set; 1 at the Sun.
  Local halo density about 0.5 % of the thin disk's (Juric et al. 2008), shared between the
  in-situ halo and the accreted components according to the galaxy.

Dust: A_V per kpc = 0.8 exp(-(R - R0)/3 kpc - |z|/0.1 kpc) mag/kpc, integrated along each line of
sight (a smooth dust disk; no clouds).

Galaxy ``A`` and ``B`` share the disks and bulge and differ in their halo: see
:mod:`~gaialake.sky.debris` for the accreted components and :data:`IN_SITU_HALO` here. Both also
hold an in-situ "splash" (:func:`splash`, Belokurov et al. 2020, arXiv 1909.04679): disk stars
kicked onto eccentric, slowly rotating orbits by the last major merger, metal-rich ([Fe/H] =
-0.5) but with halo-like speeds, so that a cut on speed (the Toomre diagram) mistakes them for
accreted stars, as in the Galaxy.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

# the Sun's distance from the Galactic centre and height above the plane (kpc)
from gaialake.astro.frame import R0_KPC, Z_SUN_KPC

__all__ = ["Component", "R0_KPC", "Z_SUN_KPC", "THIN_DISK", "THICK_DISK", "BULGE", "IN_SITU_HALO",
           "SPLASH_FRACTION", "splash", "galaxy_components", "component_density", "component_density_cyl", "dust_av_per_kpc", "GALAXIES",
           "LOCAL_HALO_DENSITY"]


#: Total local number density of the stellar halo (stars/pc^3): 0.5 % of 0.08.
LOCAL_HALO_DENSITY = 4.0e-4

GALAXIES = ("A", "B")


@dataclass(frozen=True)
class Component:
    """One population of the galaxy.

    ``density``: shape name (``disk``, ``bulge``, ``spheroid``) with ``density_params``;
    ``rho0``: stars/pc^3 (value at the Sun for disk/spheroid, prefactor for bulge);
    ``kinematics``: model name (``disk``, ``bulge``, ``spheroid``) with ``kin_params`` (km/s);
    ``feh``: metallicity (dex) of the isochrone; ``origin``: ``in_situ`` or ``accreted``.
    """
    name: str
    origin: str
    density: str
    rho0: float
    density_params: dict = field(default_factory=dict)
    kinematics: str = "spheroid"
    kin_params: dict = field(default_factory=dict)
    feh: float = -1.5

    def to_dict(self) -> dict:
        """The component's parameters as plain values (densities in stars/pc^3)."""
        return {"name": self.name, "origin": self.origin, "density": self.density,
                "rho0_stars_pc3": self.rho0, "density_params": dict(self.density_params),
                "kinematics": self.kinematics, "kin_params": dict(self.kin_params),
                "feh": self.feh}


THIN_DISK = Component(
    "thin_disk", "in_situ", "disk", 0.0704, dict(R_d=2.5, h_z=0.3),
    "disk", dict(sigma_R=35.0, sigma_phi=25.0, sigma_z=18.0), feh=0.0)
THICK_DISK = Component(
    "thick_disk", "in_situ", "disk", 0.0084, dict(R_d=3.0, h_z=0.9),
    "disk", dict(sigma_R=60.0, sigma_phi=45.0, sigma_z=40.0), feh=-0.5)
BULGE = Component(
    "bulge", "in_situ", "bulge", 128.0, dict(alpha=1.8, r0=0.075, r_cut=2.1, q=0.5),
    "bulge", dict(sigma=110.0, v_rot=50.0), feh=-0.5)
#: The in-situ halo ("splash"/heated early disk): flattened, mildly anisotropic, slowly prograde.
#: ``rho0`` is set per galaxy (fraction of :data:`LOCAL_HALO_DENSITY`).
IN_SITU_HALO = Component(
    "halo_in_situ", "in_situ", "spheroid", 0.0, dict(alpha=3.5, q=0.6, r_c=1.0),
    "spheroid", dict(v_r=0.0, v_phi=40.0, sigma_r=125.0, sigma_theta=100.0, sigma_phi=95.0),
    feh=-1.0)

#: Fraction of the local halo density that is in situ, per galaxy.
IN_SITU_FRACTION = {"A": 0.40, "B": 0.55}
#: Local density of the splash per galaxy, as a fraction of :data:`LOCAL_HALO_DENSITY` (on top
#: of the halo: a heated disk population; near the plane it rivals the GSE debris, Belokurov
#: et al. 2020).
SPLASH_FRACTION = {"A": 0.50, "B": 0.60}


def splash(galaxy: str) -> Component:
    """The in-situ splash of galaxy ``A`` or ``B``: thick-disk-like density (R_d = 3 kpc, h_z =
    1 kpc), a radially anisotropic velocity ellipsoid (sigma_r, sigma_theta, sigma_phi) =
    (110, 75, 80) km/s (beta = 0.5) around a slow prograde rotation v_phi = 50 km/s in A, 35
    km/s in B (Belokurov et al. 2020: v_phi from about -50 to 150 km/s, [Fe/H] -0.7 to -0.2)."""
    if galaxy not in GALAXIES:
        raise ValueError(f"sky.galaxy must be one of {GALAXIES}, got {galaxy!r}")
    return Component(
        "splash", "in_situ", "disk", SPLASH_FRACTION[galaxy] * LOCAL_HALO_DENSITY,
        dict(R_d=3.0, h_z=1.0), "spheroid",
        dict(v_r=0.0, v_phi={"A": 50.0, "B": 35.0}[galaxy], sigma_r=110.0, sigma_theta=75.0,
             sigma_phi=80.0), feh=-0.5)


def galaxy_components(galaxy: str) -> list[Component]:
    """The components of galaxy ``A`` or ``B`` (disks, bulge, in-situ halo, splash, accreted
    debris)."""
    from dataclasses import replace

    from gaialake.sky.debris import accreted_components

    if galaxy not in GALAXIES:
        raise ValueError(f"sky.galaxy must be one of {GALAXIES}, got {galaxy!r}")
    halo = replace(IN_SITU_HALO, rho0=IN_SITU_FRACTION[galaxy] * LOCAL_HALO_DENSITY)
    return [THIN_DISK, THICK_DISK, BULGE, halo, splash(galaxy), *accreted_components(galaxy)]


def _disk(R, az, R_d: float, h_z: float) -> np.ndarray:
    return np.exp(-(R - R0_KPC) / R_d - (az - Z_SUN_KPC) / h_z)


def _bulge(R, az, alpha: float, r0: float, r_cut: float, q: float) -> np.ndarray:
    rq = np.sqrt(R * R + (az / q) ** 2)
    return (1.0 + rq / r0) ** -alpha * np.exp(-(rq / r_cut) ** 2)


def _spheroid(R, az, alpha: float, q: float, r_c: float = 0.5, r_b: float | None = None,
              alpha_out: float | None = None) -> np.ndarray:
    rq2 = R * R + (az / q) ** 2
    rq2_sun = R0_KPC**2 + (Z_SUN_KPC / q) ** 2
    out = ((rq2 + r_c**2) / (rq2_sun + r_c**2)) ** (-alpha / 2.0)
    if r_b is not None:
        a_out = alpha if alpha_out is None else alpha_out
        out = out * ((1.0 + np.sqrt(rq2) / r_b) / (1.0 + np.sqrt(rq2_sun) / r_b)) ** (alpha - a_out)
    return out


_SHAPES: dict[str, Callable[..., np.ndarray]] = {"disk": _disk, "bulge": _bulge, "spheroid": _spheroid}


def component_density(comp: Component, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Number density of ``comp`` (stars/kpc^3) at Galactocentric x, y, z (kpc)."""
    return component_density_cyl(comp, np.hypot(x, y), np.abs(z))


def component_density_cyl(comp: Component, R: np.ndarray, abs_z: np.ndarray) -> np.ndarray:
    """Number density of ``comp`` (stars/kpc^3) at cylindrical R, |z| (kpc)."""
    if comp.density not in _SHAPES:
        raise ValueError(f"component {comp.name}: unknown density {comp.density!r}")
    return comp.rho0 * 1e9 * _SHAPES[comp.density](R, abs_z, **comp.density_params)


def dust_av_per_kpc(R: np.ndarray, az: np.ndarray, a_v0: float = 0.8,
                    R_dust: float = 3.0, h_dust: float = 0.1) -> np.ndarray:
    """Dust extinction density A_V per kpc (mag/kpc) at cylindrical R, |z| (kpc)."""
    return a_v0 * np.exp(-(R - R0_KPC) / R_dust - az / h_dust)

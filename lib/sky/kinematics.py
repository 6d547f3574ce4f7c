"""Kinematics in gala's MilkyWayPotential2022, solar parameters, Galactocentric <-> ICRS.

Frame: astropy's ``Galactocentric`` with the solar parameters of :mod:`gaialake.astro.frame`
(astropy's "v4.0" defaults: R0 = 8.122 kpc, GRAVITY 2018; z_sun = 20.8 pc, Bennett & Bovy 2019;
v_sun = (12.9, 245.6, 7.78) km/s, Drimmel & Poggio 2018, Reid & Brunthaler 2004). In this frame the Sun is at x = -R0 and the disk rotates towards +y at the Sun, i.e. with
L_z < 0. Everything here calls the co-rotating sense **prograde** and reports ``v_phi`` > 0 for it.

Kinematic models (velocities in km/s, positions in kpc):

- ``disk`` (thin, thick): Gaussian (v_R, v_phi, v_z) with dispersions sigma_i(R) =
  sigma_i,sun exp(-(R - R0)/(2 R_d)) (sigma^2 follows the surface density), capped at 2.5 x the
  solar value; mean v_phi from the asymmetric-drift (Jeans) relation for an exponential disk,
  Binney & Tremaine (2008) eq. 4.228 without the tilt term:
  v_phi^2 = v_c(R)^2 - sigma_R^2 (sigma_phi^2/sigma_R^2 - 1 + 2 R/R_d), v_c from the potential.
- ``bulge``: isotropic Gaussian with sigma, and a mean prograde rotation v_rot tanh(R / 1 kpc).
- ``spheroid`` (halo components): Gaussian in spherical (v_r, v_theta, v_phi) with means v_r
  (random sign for each star when ``v_r_bimodal``, as Nyx's two radial lobes) and v_phi, and
  dispersions sigma_r, sigma_theta, sigma_phi (anisotropy beta = 1 - (s_th^2+s_ph^2)/(2 s_r^2)).

The potential is only evaluated on the driver (:func:`circular_velocity_table`); executors get the
table and never import gala. Coordinate transforms are astropy's (ICRS, Galactic,
BarycentricMeanEcliptic, Galactocentric with the parameters above), reduced once on the driver to
their exact linear form (:func:`transforms`) and applied with numpy to millions of stars.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from gaialake.astro.frame import R0_KPC, SOLAR_PARAMETERS, galactocentric_frame

__all__ = ["SOLAR_PARAMETERS", "galactocentric_frame", "potential", "circular_velocity_table",
           "Transforms", "transforms", "icrs_to_galactocentric", "sample_velocities", "galactocentric_to_observed",
           "spherical_velocities", "cylindrical_velocities"]



@lru_cache(maxsize=1)
def potential():
    """gala's MilkyWayPotential2022 (``MilkyWayPotential(version="v2")``)."""
    import warnings

    import gala.potential as gp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return gp.MilkyWayPotential(version="v2")


@lru_cache(maxsize=1)
def circular_velocity_table(r_max_kpc: float = 400.0, n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """(R kpc, v_c km/s) of the potential in the plane, log-spaced from 0.01 kpc."""
    import astropy.units as u

    R = np.geomspace(0.01, r_max_kpc, n)
    xyz = np.zeros((3, n))
    xyz[0] = R
    vc = potential().circular_velocity(xyz * u.kpc).to_value(u.km / u.s)
    return R, vc


class Transforms(NamedTuple):
    """Fixed linear maps between frames, derived once from astropy (see :func:`transforms`).

    Galactocentric x = M @ x_icrs + t (kpc), v = M @ v_icrs + v_sun (km/s); Galactic unit
    vector = R_gal @ ICRS unit vector; ecliptic (BarycentricMeanEcliptic, J2000) = R_ecl @ ICRS.
    """
    M: np.ndarray
    t: np.ndarray
    v_sun: np.ndarray
    R_gal: np.ndarray
    R_ecl: np.ndarray


def _unit_images(frame) -> np.ndarray:
    import astropy.coordinates as coord
    import astropy.units as u

    icrs = coord.ICRS(coord.CartesianRepresentation(np.eye(3) * u.one))
    return icrs.transform_to(frame).cartesian.xyz.value


@lru_cache(maxsize=1)
def transforms() -> Transforms:
    """The :class:`Transforms` for :data:`SOLAR_PARAMETERS` (astropy's transforms are exactly
    affine in position and velocity between these frames, so their images of the origin and the
    unit vectors define them; tests compare with SkyCoord)."""
    import astropy.coordinates as coord
    import astropy.units as u

    pts = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    icrs = coord.ICRS(coord.CartesianRepresentation(pts * u.kpc, differentials=coord.CartesianDifferential(
        np.zeros((3, 4)) * u.km / u.s)))
    gc = icrs.transform_to(galactocentric_frame())
    xyz = gc.cartesian.xyz.to_value(u.kpc)
    t = xyz[:, 0]
    M = xyz[:, 1:] - t[:, None]
    v_sun = gc.velocity.d_xyz.to_value(u.km / u.s)[:, 0]
    return Transforms(M, t, v_sun, _unit_images(coord.Galactic()),
                      _unit_images(coord.BarycentricMeanEcliptic()))


def icrs_to_galactocentric(ra_deg: np.ndarray, dec_deg: np.ndarray, distance_kpc: np.ndarray,
                           tf: Transforms) -> np.ndarray:
    """Galactocentric positions (3, ...) in kpc of ICRS (ra, dec in deg, distance in kpc)."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cd = np.cos(dec)
    u = np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)])
    return np.tensordot(tf.M, u * distance_kpc, axes=1) + tf.t.reshape((3,) + (1,) * (u.ndim - 1))


def _interp_vc(R: np.ndarray, vc_table: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.interp(R, vc_table[0], vc_table[1])


def sample_velocities(rng: np.random.Generator, kind: str, params: dict, x: np.ndarray,
                      y: np.ndarray, z: np.ndarray, vc_table: tuple[np.ndarray, np.ndarray],
                      R_d: float | None = None, R0: float = R0_KPC) -> np.ndarray:
    """Galactocentric Cartesian velocities (3, n) in km/s of stars at x, y, z (kpc).

    ``kind``/``params`` as in the module docstring; ``R_d`` (kpc) for the ``disk`` model.
    """
    n = len(x)
    R = np.hypot(x, y)
    phi = np.arctan2(y, x)
    e = rng.standard_normal((3, n))
    if kind == "disk":
        scale = np.minimum(np.exp(-(R - R0) / (2.0 * R_d)), 2.5)
        sR, sP, sZ = (params["sigma_R"] * scale, params["sigma_phi"] * scale,
                      params["sigma_z"] * scale)
        vc = _interp_vc(R, vc_table)
        drift = sR**2 * ((sP / sR) ** 2 - 1.0 + 2.0 * R / R_d)
        mean_phi = np.sqrt(np.clip(vc**2 - drift, 0.0, None))
        vR, vphi, vz = sR * e[0], mean_phi + sP * e[1], sZ * e[2]
    elif kind == "bulge":
        s = params["sigma"]
        vR, vphi, vz = s * e[0], params["v_rot"] * np.tanh(R) + s * e[1], s * e[2]
    elif kind == "spheroid":
        r = np.sqrt(R * R + z * z)
        theta = np.arccos(np.clip(z / np.maximum(r, 1e-12), -1.0, 1.0))
        v_r_mean = np.full(n, float(params.get("v_r", 0.0)))
        if params.get("v_r_bimodal", False):
            v_r_mean *= np.where(rng.random(n) < 0.5, -1.0, 1.0)
        v_r = v_r_mean + params["sigma_r"] * e[0]
        v_th = params["sigma_theta"] * e[1]
        vphi = params.get("v_phi", 0.0) + params["sigma_phi"] * e[2]
        # spherical (r, theta) -> cylindrical (R, z)
        vR = v_r * np.sin(theta) + v_th * np.cos(theta)
        vz = v_r * np.cos(theta) - v_th * np.sin(theta)
    else:
        raise ValueError(f"unknown kinematic model {kind!r}")
    # prograde v_phi is along -e_phi in astropy's frame (L_z < 0)
    vx = vR * np.cos(phi) + vphi * np.sin(phi)
    vy = vR * np.sin(phi) - vphi * np.cos(phi)
    return np.stack([vx, vy, vz])


def cylindrical_velocities(x, y, z, vx, vy, vz) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v_R, v_phi prograde, v_z) in km/s from Galactocentric Cartesian (kpc, km/s)."""
    phi = np.arctan2(y, x)
    vR = vx * np.cos(phi) + vy * np.sin(phi)
    vphi = vx * np.sin(phi) - vy * np.cos(phi)
    return vR, vphi, np.asarray(vz)


def spherical_velocities(x, y, z, vx, vy, vz) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v_r, v_theta, v_phi prograde) in km/s from Galactocentric Cartesian (kpc, km/s)."""
    vR, vphi, vz = cylindrical_velocities(x, y, z, vx, vy, vz)
    R = np.hypot(x, y)
    r = np.sqrt(R * R + np.asarray(z) ** 2)
    st, ct = R / r, np.asarray(z) / r
    return vR * st + vz * ct, vR * ct - vz * st, vphi


def _lonlat(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lon = np.degrees(np.arctan2(u[1], u[0])) % 360.0
    lat = np.degrees(np.arcsin(np.clip(u[2], -1.0, 1.0)))
    return lon, lat


KMS_PER_KPC_MASYR = 4.740470463533348  # km/s per (kpc mas/yr)


def galactocentric_to_observed(xyz_kpc: np.ndarray, vxyz_kms: np.ndarray,
                               tf: Transforms) -> dict[str, np.ndarray]:
    """Observables of stars from Galactocentric (3, n) positions (kpc) and velocities (km/s).

    Returns ra, dec, l, b, ecl_lon, ecl_lat (deg), distance (kpc), pmra (mu_alpha*), pmdec
    (mas/yr), radial_velocity (km/s). The same numbers as astropy's SkyCoord transforms
    (``tests/sky/test_sky_science.py`` checks it), at numpy speed.
    """
    x = tf.M.T @ (xyz_kpc - tf.t[:, None])
    v = tf.M.T @ (vxyz_kms - tf.v_sun[:, None])
    d = np.sqrt(np.sum(x * x, axis=0))
    u = x / d
    ra, dec = _lonlat(u)
    rar, decr = np.radians(ra), np.radians(dec)
    e_ra = np.stack([-np.sin(rar), np.cos(rar), np.zeros_like(rar)])
    e_dec = np.stack([-np.sin(decr) * np.cos(rar), -np.sin(decr) * np.sin(rar), np.cos(decr)])
    l, b = _lonlat(tf.R_gal @ u)
    ecl_lon, ecl_lat = _lonlat(tf.R_ecl @ u)
    return {
        "ra": ra, "dec": dec, "distance": d,
        "pmra": np.sum(v * e_ra, axis=0) / (KMS_PER_KPC_MASYR * d),
        "pmdec": np.sum(v * e_dec, axis=0) / (KMS_PER_KPC_MASYR * d),
        "radial_velocity": np.sum(v * u, axis=0),
        "l": l, "b": b, "ecl_lon": ecl_lon, "ecl_lat": ecl_lat,
    }

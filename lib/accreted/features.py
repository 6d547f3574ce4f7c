"""Gaia astrometry -> Galactocentric positions and velocities, classifier features, quality cuts.

Frame: astropy's ``Galactocentric`` with the solar parameters of
:data:`gaialake.astro.frame.SOLAR_PARAMETERS` (astropy's "v4.0" defaults: R0 = 8.122 kpc,
GRAVITY 2018; z_sun = 20.8 pc, Bennett & Bovy 2019; v_sun = (12.9, 245.6, 7.78) km/s, Drimmel &
Poggio 2018), the frame the synthetic sky is made in (:func:`~gaialake.astro.frame.
galactocentric_frame`). ``v_phi`` > 0 is prograde (co-rotating with the disk), as in the sky.
Distances are 1/parallax (kpc for parallax in mas): adequate under the quality cut
parallax_over_error > 5 (Ostdiek et al. 2020, arXiv 1907.06652), where the bias is a few per cent.

Two feature sets, the inputs of the two networks of Ostdiek et al.:

- ``5d`` (no radial velocity, every star with a parallax): position (R, |z|) and the
  Galactocentric velocity *perpendicular to the line of sight*, v_perp = v_gc - (v_gc . u) u,
  which needs only the proper motions (the Sun's reflex motion is added back; the unknown
  heliocentric line-of-sight velocity only moves v_gc along u). Its spherical components and
  those of u (so the network knows which direction is unmeasured), and the errors.
- ``6d`` (stars with radial_velocity): position and the full spherical velocity
  (v_r, v_theta, v_phi), and the errors.

With ``photometry`` (conf ``accreted.photometry``) both add :data:`PHOTOMETRY_FEATURES`: the
absolute G magnitude from the parallax (G + 5 log10(parallax / mas) - 10; no extinction
correction) and the observed BP-RP colour. At a given absolute magnitude the metal-poor accreted
populations lie bluer than the disk's (the two halo sequences of Gaia Collaboration, Babusiaux
et al. 2018, arXiv 1804.09378); a star without BP-RP gets NaN features (no score).

Error features (first-order propagation, no correlations): log10(parallax_over_error) and
log10 of the velocity uncertainty (km/s) from the proper-motion, parallax (and radial-velocity)
errors. Stars with a missing or non-positive parallax, or a missing proper motion, get NaN
features: the classifier gives them a null score.

Baseline: the Toomre-diagram halo cut |v - v_LSR| > 220 km/s (e.g. Nissen & Schuster 2010;
Helmi et al. 2018), with v_LSR = (0, :data:`V_LSR_KMS`, 0) km/s in Galactocentric Cartesian axes;
without a radial velocity its lower bound |(v - v_LSR)_perp| (the part perpendicular to the line
of sight) is used.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping

import numpy as np

from gaialake.astro.frame import SOLAR_PARAMETERS, galactocentric_frame
from gaialake.sky.kinematics import spherical_velocities

__all__ = ["SOLAR_PARAMETERS", "V_LSR_KMS", "KMS_PER_KPC_MASYR", "ASTROMETRY_COLUMNS",
           "FEATURES_5D", "FEATURES_6D", "VARIANTS", "PHOTOMETRY_FEATURES", "PHOTOMETRY_COLUMNS",
           "variant_features", "has_photometry", "PhaseSpace", "phase_space",
           "phase_space_of", "features", "features_5d", "features_6d", "quality_mask",
           "toomre_speed",
           "has_radial_velocity", "velocity_space"]

#: Local standard of rest (km/s): v_sun,y minus the Sun's peculiar V = 12.24 km/s
#: (Schoenrich, Binney & Dehnen 2010): 245.6 - 12.24.
V_LSR_KMS = float(SOLAR_PARAMETERS["galcen_v_sun_kms"][1]) - 12.24
KMS_PER_KPC_MASYR = 4.740470463533348  # km/s per (kpc mas/yr)

#: DR3 columns the features and cuts read.
ASTROMETRY_COLUMNS = ["ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec",
                      "pmdec_error", "radial_velocity", "radial_velocity_error", "ruwe"]

FEATURES_5D = ["R_kpc", "abs_z_kpc", "vperp_r_kms", "vperp_theta_kms", "vperp_phi_kms",
               "los_r", "los_theta", "los_phi", "log_plx_over_error", "log_sigma_vtan_kms"]
FEATURES_6D = ["R_kpc", "abs_z_kpc", "v_r_kms", "v_theta_kms", "v_phi_kms",
               "log_plx_over_error", "log_sigma_v_kms"]
VARIANTS = {"5d": FEATURES_5D, "6d": FEATURES_6D}
#: Features a variant adds with photometry: absolute G (mag) and BP-RP (mag).
PHOTOMETRY_FEATURES = ["abs_g_mag", "bp_rp_mag"]
#: DR3 columns the photometric features read.
PHOTOMETRY_COLUMNS = ["phot_g_mean_mag", "bp_rp"]


def variant_features(variant: str, photometry: bool = False) -> list[str]:
    """The feature names of ``variant`` (``5d``, ``6d``), with the photometric ones last."""
    if variant not in VARIANTS:
        raise ValueError(f"feature variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    return VARIANTS[variant] + (PHOTOMETRY_FEATURES if photometry else [])


class PhaseSpace(dict):
    """Arrays (n,) keyed by name: x, y, z (kpc), vx, vy, vz (km/s; NaN without radial
    velocity), vtx, vty, vtz (km/s: v_gc with heliocentric v_los = 0), ux, uy, uz (line of
    sight), distance (kpc)."""


def _col(data: Mapping, name: str) -> np.ndarray:
    try:
        values = data[name]
    except KeyError as err:
        raise KeyError(f"column {name!r} missing from the astrometry input (need "
                       f"{', '.join(ASTROMETRY_COLUMNS)})") from err
    return np.asarray(values, dtype=np.float64)


def phase_space(ra_deg, dec_deg, parallax_mas, pmra_masyr, pmdec_masyr,
                radial_velocity_kms=None) -> PhaseSpace:
    """Galactocentric phase space of stars with astropy (frame: module docstring).

    ``pmra`` is mu_alpha* (mas/yr); distance = 1/parallax (kpc). Rows with a non-positive or
    missing parallax, or missing proper motions, come back NaN (no exception).
    """
    import astropy.coordinates as coord
    import astropy.units as u

    ra, dec = np.asarray(ra_deg, float), np.asarray(dec_deg, float)
    plx = np.asarray(parallax_mas, float)
    pmra, pmdec = np.asarray(pmra_masyr, float), np.asarray(pmdec_masyr, float)
    n = len(ra)
    ok = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(plx) & (plx > 0) \
        & np.isfinite(pmra) & np.isfinite(pmdec)
    out = PhaseSpace({k: np.full(n, np.nan) for k in
                      ("x", "y", "z", "vx", "vy", "vz", "vtx", "vty", "vtz", "ux", "uy", "uz",
                       "distance")})
    if not ok.any():
        return out
    d = 1.0 / plx[ok]
    icrs = coord.ICRS(ra=ra[ok] * u.deg, dec=dec[ok] * u.deg, distance=d * u.kpc,
                      pm_ra_cosdec=pmra[ok] * u.mas / u.yr, pm_dec=pmdec[ok] * u.mas / u.yr,
                      radial_velocity=np.zeros(ok.sum()) * u.km / u.s)
    gc = icrs.transform_to(galactocentric_frame())
    pos = gc.cartesian.xyz.to_value(u.kpc)
    vt = gc.velocity.d_xyz.to_value(u.km / u.s)
    # line of sight: the unit vector from the Sun (the frame's image of the ICRS origin)
    los = (pos - _sun_position_kpc()[:, None]) / d
    for i, ax in enumerate("xyz"):
        out[ax][ok] = pos[i]
        out[f"vt{ax}"][ok] = vt[i]
        out[f"u{ax}"][ok] = los[i]
    out["distance"][ok] = d
    if radial_velocity_kms is not None:
        rv = np.asarray(radial_velocity_kms, float)[ok]
        for i, ax in enumerate("xyz"):
            out[f"v{ax}"][ok] = vt[i] + rv * los[i]   # NaN where rv is missing
    return out


def phase_space_of(data: Mapping) -> PhaseSpace:
    """:func:`phase_space` of DR3 rows (a DataFrame or dict of arrays with ra, dec (deg),
    parallax (mas), pmra, pmdec (mas/yr), radial_velocity (km/s))."""
    return phase_space(_col(data, "ra"), _col(data, "dec"), _col(data, "parallax"),
                       _col(data, "pmra"), _col(data, "pmdec"), _col(data, "radial_velocity"))


@lru_cache(maxsize=1)
def _sun_position_kpc() -> np.ndarray:
    """The Sun's Galactocentric position (kpc): astropy's image of the ICRS origin."""
    import astropy.coordinates as coord
    import astropy.units as u

    sun = coord.ICRS(coord.CartesianRepresentation([0.0, 0.0, 0.0] * u.kpc))
    return sun.transform_to(galactocentric_frame()).cartesian.xyz.to_value(u.kpc)


def _spherical(ps: PhaseSpace, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return spherical_velocities(ps["x"], ps["y"], ps["z"], ps[f"{prefix}x"], ps[f"{prefix}y"],
                                ps[f"{prefix}z"])


def _perp(ps: PhaseSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dot = ps["vtx"] * ps["ux"] + ps["vty"] * ps["uy"] + ps["vtz"] * ps["uz"]
    return ps["vtx"] - dot * ps["ux"], ps["vty"] - dot * ps["uy"], ps["vtz"] - dot * ps["uz"]


def _sigma_vtan(data: Mapping) -> np.ndarray:
    """Tangential-velocity uncertainty (km/s), first order: v_tan = k mu / parallax."""
    plx, e_plx = _col(data, "parallax"), _col(data, "parallax_error")
    pmra, pmdec = _col(data, "pmra"), _col(data, "pmdec")
    e_ra, e_dec = _col(data, "pmra_error"), _col(data, "pmdec_error")
    mu = np.hypot(pmra, pmdec)
    with np.errstate(invalid="ignore", divide="ignore"):
        e_mu = np.sqrt((pmra * e_ra) ** 2 + (pmdec * e_dec) ** 2) / np.maximum(mu, 1e-9)
        return KMS_PER_KPC_MASYR / plx * np.hypot(e_mu, mu * e_plx / plx)


def has_radial_velocity(data: Mapping) -> np.ndarray:
    """True where radial_velocity (km/s) is finite."""
    return np.isfinite(_col(data, "radial_velocity"))


def has_photometry(data: Mapping) -> np.ndarray:
    """Rows with a G magnitude and a BP-RP colour (:data:`PHOTOMETRY_COLUMNS`)."""
    return np.all([np.isfinite(_col(data, c)) for c in PHOTOMETRY_COLUMNS], axis=0)


def features(data: Mapping, variant: str, ps: PhaseSpace | None = None,
             photometry: bool = False) -> np.ndarray:
    """(n, len(:func:`variant_features`)) float64 features of DR3 rows (a DataFrame or dict of
    arrays with :data:`ASTROMETRY_COLUMNS`, and :data:`PHOTOMETRY_COLUMNS` with
    ``photometry``); NaN rows where the astrometry (or the photometry) is missing."""
    variant_features(variant)
    if ps is None:
        ps = phase_space_of(data)
    R = np.hypot(ps["x"], ps["y"])
    abs_z = np.abs(ps["z"])
    with np.errstate(invalid="ignore", divide="ignore"):
        log_poe = np.log10(_col(data, "parallax") / _col(data, "parallax_error"))
        sig_t = _sigma_vtan(data)
        if variant == "5d":
            vp = _perp(ps)
            pr = spherical_velocities(ps["x"], ps["y"], ps["z"], *vp)
            lr = spherical_velocities(ps["x"], ps["y"], ps["z"], ps["ux"], ps["uy"], ps["uz"])
            cols = [R, abs_z, *pr, *lr, log_poe, np.log10(sig_t)]
        else:
            vr, vth, vph = _spherical(ps, "v")
            sig_v = np.hypot(sig_t, _col(data, "radial_velocity_error"))
            cols = [R, abs_z, vr, vth, vph, log_poe, np.log10(sig_v)]
        if photometry:
            cols += [_col(data, "phot_g_mean_mag") + 5.0 * np.log10(_col(data, "parallax")) - 10.0,
                     _col(data, "bp_rp")]
    out = np.stack(cols, axis=1)
    out[~np.all(np.isfinite(out), axis=1)] = np.nan
    return out


def features_5d(data: Mapping) -> np.ndarray:
    """:data:`FEATURES_5D` of DR3 rows (see :func:`features`)."""
    return features(data, "5d")


def features_6d(data: Mapping) -> np.ndarray:
    """:data:`FEATURES_6D` of DR3 rows (NaN rows without radial_velocity)."""
    return features(data, "6d")


def quality_mask(data: Mapping, parallax_over_error_min: float = 5.0, ruwe_max: float | None = 1.4,
                 distance_max_kpc: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(keep, reason): the cuts applied alike to training, evaluation and the catalog.

    ``reason`` (object array) is None for kept stars, else the first failed cut:
    ``missing_astrometry`` (ra/dec/parallax/pmra/pmdec null or parallax <= 0),
    ``parallax_over_error`` (<= ``parallax_over_error_min``), ``ruwe`` (> ``ruwe_max``, or null),
    ``distance`` (1/parallax > ``distance_max_kpc``).
    """
    n = len(_col(data, "ra"))
    reason = np.full(n, None, dtype=object)
    vals = {c: _col(data, c) for c in ("ra", "dec", "parallax", "parallax_error", "pmra", "pmdec")}
    finite = np.all([np.isfinite(v) for v in vals.values()], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        missing = ~finite | ~(vals["parallax"] > 0) | ~(vals["parallax_error"] > 0)
        reason[missing] = "missing_astrometry"
        poe = vals["parallax"] / vals["parallax_error"]
        bad = ~missing & ~(poe > parallax_over_error_min)
        reason[bad & (reason == None)] = "parallax_over_error"  # noqa: E711 (object array)
        if ruwe_max is not None:
            ruwe = _col(data, "ruwe")
            reason[~(ruwe <= ruwe_max) & (reason == None)] = "ruwe"  # noqa: E711
        if distance_max_kpc is not None:
            far = (1.0 / vals["parallax"]) > distance_max_kpc
            reason[far & (reason == None)] = "distance"  # noqa: E711
    return reason == None, reason  # noqa: E711


def toomre_speed(data: Mapping, ps: PhaseSpace | None = None) -> np.ndarray:
    """|v - v_LSR| (km/s) where radial_velocity exists, else its part perpendicular to the
    line of sight (a lower bound); NaN where the astrometry is missing."""
    if ps is None:
        ps = phase_space_of(data)
    full = np.sqrt(ps["vx"] ** 2 + (ps["vy"] - V_LSR_KMS) ** 2 + ps["vz"] ** 2)
    dx, dy, dz = ps["vtx"], ps["vty"] - V_LSR_KMS, ps["vtz"]
    dot = dx * ps["ux"] + dy * ps["uy"] + dz * ps["uz"]
    perp = np.sqrt((dx - dot * ps["ux"]) ** 2 + (dy - dot * ps["uy"]) ** 2
                   + (dz - dot * ps["uz"]) ** 2)
    return np.where(np.isfinite(full), full, perp)


def velocity_space(data: Mapping, ps: PhaseSpace | None = None) -> dict[str, np.ndarray]:
    """Spherical Galactocentric (v_r, v_theta, v_phi) in km/s (v_phi > 0 prograde), NaN
    without radial_velocity: the axes of the science plot."""
    if ps is None:
        ps = phase_space_of(data)
    vr, vth, vph = _spherical(ps, "v")
    return {"v_r": vr, "v_theta": vth, "v_phi": vph}

"""6D stars near the Sun in Galactocentric Cartesian coordinates, and their completeness.

Solar parameters: :class:`gaialake.astro.frame.SolarParameters` (astropy's ``Galactocentric``
v4.0 defaults, with their sources there; conf ``density.solar`` may override them). In this
frame the Sun is at x = -sqrt(R0^2 - z_sun^2), y = 0, z = z_sun, and the disk rotates towards +y.

Completeness: a catalog limited at apparent magnitude ``g_limit`` (e.g. the RVS sample) of a
population with a Gaussian luminosity function N(M_mean, M_sigma) holds, at distance d, the
fraction ``c(d) = Phi_normal((g_limit - 5 log10(100 d/kpc) - M_mean) / M_sigma)``. Stars are
weighted by 1/c(d) when the spatial density n(x) is learned; regions where c < ``min_completeness``
are cut (their weights would be too noisy). Velocities are unaffected: the selection does not
depend on them, so p(v|x) needs no weights.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from gaialake.astro.frame import SolarParameters, galactocentric_frame

__all__ = ["SolarParameters", "galactocentric_frame", "icrs_to_galactocentric",
           "galactocentric_to_icrs", "within_radius", "completeness_gaussian_lf",
           "completeness_weights", "observe", "distance_kpc"]


def icrs_to_galactocentric(ra_deg, dec_deg, parallax_mas, pmra_masyr, pmdec_masyr, rv_kms,
                           solar: SolarParameters = SolarParameters()
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Gaia astrometry (deg, mas, mas/yr, km/s) -> Galactocentric x (kpc), v (km/s), (N, 3).

    Distance is 1/parallax: callers select parallax_over_error high enough for that to hold.
    """
    import astropy.coordinates as coord
    import astropy.units as u

    parallax = np.asarray(parallax_mas, float)
    if np.any(~(parallax > 0)):
        raise ValueError("icrs_to_galactocentric: parallax must be > 0 mas for every star "
                         f"({int(np.sum(~(parallax > 0)))} are not); select them out first")
    c = coord.SkyCoord(ra=np.asarray(ra_deg) * u.deg, dec=np.asarray(dec_deg) * u.deg,
                       distance=(1.0 / parallax) * u.kpc,
                       pm_ra_cosdec=np.asarray(pmra_masyr) * u.mas / u.yr,
                       pm_dec=np.asarray(pmdec_masyr) * u.mas / u.yr,
                       radial_velocity=np.asarray(rv_kms) * u.km / u.s, frame="icrs")
    g = c.transform_to(galactocentric_frame(solar))
    x = np.column_stack([g.x.to_value(u.kpc), g.y.to_value(u.kpc), g.z.to_value(u.kpc)])
    v = np.column_stack([g.v_x.to_value(u.km / u.s), g.v_y.to_value(u.km / u.s),
                         g.v_z.to_value(u.km / u.s)])
    return x, v


def galactocentric_to_icrs(x_kpc: np.ndarray, v_kms: np.ndarray,
                           solar: SolarParameters = SolarParameters()) -> dict[str, np.ndarray]:
    """Galactocentric phase space -> ra, dec (deg), parallax (mas), pmra, pmdec (mas/yr),
    radial_velocity (km/s), as a dict of arrays named like the DR3 columns."""
    import astropy.coordinates as coord
    import astropy.units as u

    x, v = np.asarray(x_kpc, float), np.asarray(v_kms, float)
    g = coord.SkyCoord(x=x[:, 0] * u.kpc, y=x[:, 1] * u.kpc, z=x[:, 2] * u.kpc,
                       v_x=v[:, 0] * u.km / u.s, v_y=v[:, 1] * u.km / u.s,
                       v_z=v[:, 2] * u.km / u.s, frame=galactocentric_frame(solar))
    c = g.transform_to(coord.ICRS())
    return {"ra": c.ra.to_value(u.deg), "dec": c.dec.to_value(u.deg),
            "parallax": 1.0 / c.distance.to_value(u.kpc),
            "pmra": c.pm_ra_cosdec.to_value(u.mas / u.yr),
            "pmdec": c.pm_dec.to_value(u.mas / u.yr),
            "radial_velocity": c.radial_velocity.to_value(u.km / u.s)}


def distance_kpc(x_kpc: np.ndarray, solar: SolarParameters = SolarParameters()) -> np.ndarray:
    """Heliocentric distance (kpc) of Galactocentric positions."""
    return np.linalg.norm(np.asarray(x_kpc, float) - solar.position_kpc, axis=-1)


def within_radius(x_kpc: np.ndarray, radius_kpc: float,
                  solar: SolarParameters = SolarParameters()) -> np.ndarray:
    """Mask of positions within ``radius_kpc`` of the Sun."""
    return distance_kpc(x_kpc, solar) < radius_kpc


def completeness_gaussian_lf(dist_kpc: np.ndarray, g_limit: float, abs_mag_mean: float,
                             abs_mag_sigma: float) -> np.ndarray:
    """Fraction of a Gaussian-luminosity-function population brighter than ``g_limit`` (mag)
    at heliocentric distance ``dist_kpc`` (no extinction)."""
    mu = 5.0 * np.log10(np.maximum(np.asarray(dist_kpc, float), 1e-9) * 100.0)
    return ndtr((g_limit - mu - abs_mag_mean) / abs_mag_sigma)


def completeness_weights(dist_kpc: np.ndarray, g_limit: float | None, abs_mag_mean: float,
                         abs_mag_sigma: float, min_completeness: float = 0.2
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Per-star weights 1/c(d) and the mask of stars kept (c >= ``min_completeness``).

    ``g_limit=None`` means a complete sample: weights 1, all kept.
    """
    d = np.asarray(dist_kpc, float)
    if g_limit is None:
        return np.ones_like(d), np.ones(d.shape, bool)
    c = completeness_gaussian_lf(d, g_limit, abs_mag_mean, abs_mag_sigma)
    keep = c >= min_completeness
    return np.where(keep, 1.0 / np.maximum(c, 1e-12), 0.0), keep


def observe(x_kpc: np.ndarray, v_kms: np.ndarray, abs_mag: np.ndarray, seed: int,
            solar: SolarParameters = SolarParameters(), parallax_error_mas: float = 0.0,
            pm_error_masyr: float = 0.0, rv_error_kms: float = 0.0) -> dict[str, np.ndarray]:
    """A Gaia-like 6D catalog of Galactocentric stars: DR3-named columns (deg, mas, mas/yr,
    km/s, mag) with Gaussian errors of the given sizes (0: exact observables)."""
    obs = galactocentric_to_icrs(x_kpc, v_kms, solar)
    rng = np.random.default_rng(seed)
    n = len(obs["ra"])
    d = 1.0 / obs["parallax"]
    obs["phot_g_mean_mag"] = np.asarray(abs_mag, float) + 5.0 * np.log10(d * 100.0)
    for col, err in (("parallax", parallax_error_mas), ("pmra", pm_error_masyr),
                     ("pmdec", pm_error_masyr), ("radial_velocity", rv_error_kms)):
        obs[f"{col}_error"] = np.full(n, float(err))
        if err > 0:
            obs[col] = obs[col] + err * rng.standard_normal(n)
    return obs

"""Sky patches of the stream search (Via Machinae, Shih et al. 2021, arXiv 2104.12789).

A full-sky grid of overlapping circular patches: centres are the centres of the nested HEALPix
pixels at ``patches.grid_order`` (order 2: 192 centres, ~14.7 deg apart, so patches of radius
15 deg overlap their neighbours; every point of the sky is within 11.7 deg of a centre, so the
inner ``fiducial`` discs of 10 deg leave small gaps at pixel corners: set
``patches.fiducial_deg`` to 11.8 for full coverage), kept where the Galactic latitude of the
centre satisfies ``|b| >= patches.b_min_deg``.

Which of them are searched is a rule, blind to where streams are (:func:`searched_patches`):
with ``patches.within_region`` every grid patch whose fiducial disc lies inside the generated
sky (``sky.region``, :func:`patches_inside`), else all of them; ``patches.only`` (a user's
explicit list, set by no shipped conf) overrides both.

Each patch has its own frame: an ICRS rotation that puts the patch centre at the origin,
``phi`` (deg, longitude-like, increasing with ra at the centre) and ``lam`` (deg, latitude-like,
increasing with dec at the centre). Proper motions are rotated into the same frame:
``pm_phi`` (mas/yr, includes cos(lam), like Gaia's pmra) and ``pm_lam`` (mas/yr). The rotation is
the one of astropy's ``SkyOffsetFrame`` with ``rotation=0``; it is written out as a 3x3 matrix so
that millions of rows with different centres transform in one vectorised call.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gaialake.conf import Conf, settings_from
from gaialake.astro.healpix import disc_pixels, order_npix, pixel_center_radec

__all__ = ["PatchCutSettings", "patch_centers", "patches_inside", "searched_patches", "patch_pixels", "rotation_matrices", "to_patch_frame",
           "from_patch_frame", "angular_distance_deg", "select_patch_stars", "PATCH_COLUMNS"]

#: Columns of ``patch_stars`` produced by :func:`select_patch_stars` (besides run_id).
PATCH_COLUMNS = ["patch_id", "source_id", "ra", "dec", "phi", "lam", "pm_phi", "pm_lam", "g",
                 "bp_rp", "fiducial"]


@dataclass(frozen=True)
class PatchCutSettings:
    """The patch geometry and star selection (conf section ``patches``).

    radius_deg: patch radius (deg); fiducial_deg: inner radius whose stars are scored (deg);
    g_max: faint limit (mag, G < g_max); parallax_max_mas: keep parallax < this (mas; removes
    nearby disc stars); bp_rp_min, bp_rp_max: colour window (mag).
    """

    radius_deg: float = 15.0
    fiducial_deg: float = 10.0
    g_max: float = 20.2
    parallax_max_mas: float = 1.0
    bp_rp_min: float = 0.5
    bp_rp_max: float = 1.0

    @classmethod
    def from_conf(cls, conf: Conf) -> "PatchCutSettings":
        """The cuts of ``conf``'s ``patches`` section."""
        window = conf.get("patches.bp_rp_window")
        return settings_from(cls, conf.get("patches"), "patches", strict=False,
                             bp_rp_min=float(window[0]), bp_rp_max=float(window[1]))


def patch_centers(grid_order: int = 2, b_min_deg: float = 30.0,
                  only: list[int] | None = None) -> pd.DataFrame:
    """The patch grid: ``patch_id`` (the HEALPix pixel at ``grid_order``), ``ra``, ``dec``,
    ``l``, ``b`` (deg) of each centre with ``|b| >= b_min_deg``; ``only`` keeps those ids."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    pix = np.arange(order_npix(grid_order), dtype=np.int64)
    ra, dec = pixel_center_radec(pix, grid_order)
    gal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, frame="icrs").galactic
    out = pd.DataFrame({"patch_id": pix, "ra": ra, "dec": dec,
                        "l": gal.l.deg, "b": gal.b.deg})
    out = out[np.abs(out["b"]) >= b_min_deg]
    if only:
        missing = sorted(set(only) - set(out["patch_id"]))
        if missing:
            raise ValueError(f"patches.only: ids {missing} are not patches of grid order "
                             f"{grid_order} with |b| >= {b_min_deg} deg")
        out = out[out["patch_id"].isin(only)]
    return out.reset_index(drop=True)


def patches_inside(centers: pd.DataFrame, region_pixels: np.ndarray, order: int,
                   radius_deg: float) -> pd.DataFrame:
    """The rows of ``centers`` (patch_id, ra, dec in deg) whose disc of ``radius_deg`` lies
    inside a sky region given as nested ``region_pixels`` at ``order``: every pixel at ``order``
    whose centre is within ``radius_deg`` of the patch centre is a region pixel (the region's
    own definition: pixels whose centres lie in its cones)."""
    region = set(int(p) for p in region_pixels)
    keep = []
    for c in centers.itertuples():
        pix = disc_pixels(c.ra, c.dec, radius_deg, order)
        ra, dec = pixel_center_radec(pix, order)
        inner = pix[angular_distance_deg(ra, dec, c.ra, c.dec) <= radius_deg]
        keep.append(len(inner) > 0 and all(int(p) in region for p in inner))
    return centers[np.asarray(keep, dtype=bool)].reset_index(drop=True)


def searched_patches(conf: Conf) -> pd.DataFrame:
    """The patches ``conf`` searches (patch_id, ra, dec, l, b in deg): ``patches.only`` when
    set, else the grid's ``|b| >= patches.b_min_deg`` patches, restricted with
    ``patches.within_region`` to those whose fiducial disc lies inside ``sky.region``."""
    from gaialake.sky.skymodel import region_pixels

    only = [int(p) for p in conf.get("patches.only", []) or []]
    centers = patch_centers(int(conf.get("patches.grid_order")), float(conf.get("patches.b_min_deg")),
                            only)
    if only or not conf.get("patches.within_region") or conf.get("sky.region") in ("full", "all", None):
        return centers
    order = int(conf.get("sky.model_order"))
    return patches_inside(centers, region_pixels(conf.get("sky.region"), order), order,
                          float(conf.get("patches.fiducial_deg")))


def patch_pixels(centers: pd.DataFrame, radius_deg: float, order: int) -> pd.DataFrame:
    """(patch_id, hpx, patch_ra, patch_dec) for every patch of ``centers`` (patch_id, ra, dec
    in deg) and every HEALPix pixel at ``order`` (nested) its disc of ``radius_deg`` touches."""
    rows = [(int(c.patch_id), int(pix), float(c.ra), float(c.dec))
            for c in centers.itertuples()
            for pix in disc_pixels(c.ra, c.dec, radius_deg, order)]
    return pd.DataFrame(rows, columns=["patch_id", "hpx", "patch_ra", "patch_dec"])


def _unit(ra_rad: np.ndarray, dec_rad: np.ndarray) -> np.ndarray:
    cd = np.cos(dec_rad)
    return np.stack([cd * np.cos(ra_rad), cd * np.sin(ra_rad), np.sin(dec_rad)], axis=-1)


def rotation_matrices(ra0_deg: np.ndarray | float, dec0_deg: np.ndarray | float) -> np.ndarray:
    """ICRS -> patch-frame rotations (..., 3, 3): R = Ry(dec0) Rz(-ra0), as SkyOffsetFrame."""
    a = np.radians(np.asarray(ra0_deg, np.float64))
    d = np.radians(np.asarray(dec0_deg, np.float64))
    ca, sa, cd, sd = np.cos(a), np.sin(a), np.cos(d), np.sin(d)
    z = np.zeros_like(a)
    # rows of Ry(d) @ Rz(-a): x' points to the centre, y' east, z' north at the centre
    return np.stack([np.stack([cd * ca, cd * sa, sd], -1),
                     np.stack([-sa, ca, z], -1),
                     np.stack([-sd * ca, -sd * sa, cd], -1)], -2)


def _tangent_basis(lon_rad: np.ndarray, lat_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sl, cl, sb, cb = np.sin(lon_rad), np.cos(lon_rad), np.sin(lat_rad), np.cos(lat_rad)
    east = np.stack([-sl, cl, np.zeros_like(sl)], -1)
    north = np.stack([-sb * cl, -sb * sl, cb], -1)
    return east, north


def _rotate(ra, dec, pm_a, pm_b, rot):
    ra_r, dec_r = np.radians(ra), np.radians(dec)
    east, north = _tangent_basis(ra_r, dec_r)
    pos = _unit(ra_r, dec_r)
    vel = (east * np.asarray(pm_a, np.float64)[..., None]
           + north * np.asarray(pm_b, np.float64)[..., None])
    pos2 = np.einsum("...ij,...j->...i", rot, pos)
    vel2 = np.einsum("...ij,...j->...i", rot, vel)
    lon = np.arctan2(pos2[..., 1], pos2[..., 0])
    lat = np.arcsin(np.clip(pos2[..., 2], -1.0, 1.0))
    e2, n2 = _tangent_basis(lon, lat)
    return (np.degrees(lon), np.degrees(lat), np.sum(vel2 * e2, -1), np.sum(vel2 * n2, -1))


def to_patch_frame(ra_deg, dec_deg, pmra_masyr, pmdec_masyr, ra0_deg, dec0_deg):
    """(ra, dec, pmra*, pmdec) in ICRS -> (phi, lam, pm_phi, pm_lam) in the patch frame.

    Angles in deg, proper motions in mas/yr (pmra includes cos dec, pm_phi includes cos lam).
    ``ra0_deg, dec0_deg`` is the patch centre: a scalar or one centre per row.
    """
    rot = rotation_matrices(ra0_deg, dec0_deg)
    return _rotate(np.asarray(ra_deg, np.float64), np.asarray(dec_deg, np.float64),
                   pmra_masyr, pmdec_masyr, rot)


def from_patch_frame(phi_deg, lam_deg, pm_phi_masyr, pm_lam_masyr, ra0_deg, dec0_deg):
    """Inverse of :func:`to_patch_frame`: (phi, lam, pm_phi, pm_lam) -> (ra, dec, pmra, pmdec)."""
    rot = np.swapaxes(rotation_matrices(ra0_deg, dec0_deg), -1, -2)
    ra, dec, pmra, pmdec = _rotate(np.asarray(phi_deg, np.float64),
                                   np.asarray(lam_deg, np.float64), pm_phi_masyr, pm_lam_masyr,
                                   rot)
    return np.mod(ra, 360.0), dec, pmra, pmdec


def angular_distance_deg(ra_deg, dec_deg, ra0_deg, dec0_deg) -> np.ndarray:
    """Great-circle distance (deg), by the haversine formula (exact at small angles)."""
    ra, dec, ra0, dec0 = (np.radians(np.asarray(v, np.float64))
                          for v in (ra_deg, dec_deg, ra0_deg, dec0_deg))
    h = (np.sin((dec - dec0) / 2) ** 2
         + np.cos(dec) * np.cos(dec0) * np.sin((ra - ra0) / 2) ** 2)
    return np.degrees(2 * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0))))


def select_patch_stars(stars: pd.DataFrame, cuts: PatchCutSettings) -> pd.DataFrame:
    """Stars of one or more patches, cut and in patch-frame coordinates.

    ``stars`` has source_id, ra, dec (deg), pmra, pmdec (mas/yr), parallax (mas),
    phot_g_mean_mag, bp_rp, and per row the patch it is tested against: patch_id, patch_ra,
    patch_dec (deg). Keeps rows within ``cuts.radius_deg`` of their patch centre that pass the
    cuts (rows with a null in a cut column fail it); returns :data:`PATCH_COLUMNS`.
    """
    need = ["source_id", "ra", "dec", "pmra", "pmdec", "parallax", "phot_g_mean_mag", "bp_rp",
            "patch_id", "patch_ra", "patch_dec"]
    missing = [c for c in need if c not in stars.columns]
    if missing:
        raise KeyError(f"select_patch_stars: input lacks columns {missing}")
    dist = angular_distance_deg(stars["ra"], stars["dec"], stars["patch_ra"], stars["patch_dec"])
    g = stars["phot_g_mean_mag"].to_numpy(np.float64, na_value=np.nan)
    plx = stars["parallax"].to_numpy(np.float64, na_value=np.nan)
    col = stars["bp_rp"].to_numpy(np.float64, na_value=np.nan)
    pmra = stars["pmra"].to_numpy(np.float64, na_value=np.nan)
    pmdec = stars["pmdec"].to_numpy(np.float64, na_value=np.nan)
    keep = ((dist < cuts.radius_deg) & (g < cuts.g_max) & (plx < cuts.parallax_max_mas)
            & (col > cuts.bp_rp_min) & (col < cuts.bp_rp_max)
            & np.isfinite(pmra) & np.isfinite(pmdec))
    s = stars.loc[keep]
    phi, lam, pm_phi, pm_lam = to_patch_frame(s["ra"], s["dec"], pmra[keep], pmdec[keep],
                                              s["patch_ra"], s["patch_dec"])
    return pd.DataFrame({
        "patch_id": s["patch_id"].to_numpy(np.int64),
        "source_id": s["source_id"].to_numpy(np.int64),
        "ra": s["ra"].to_numpy(np.float64), "dec": s["dec"].to_numpy(np.float64),
        "phi": phi, "lam": lam, "pm_phi": pm_phi, "pm_lam": pm_lam,
        "g": g[keep], "bp_rp": col[keep],
        "fiducial": dist[keep] < cuts.fiducial_deg,
    })

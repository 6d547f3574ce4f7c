"""Mock stars observed as Gaia DR3 bulk files: the sky generator's observation path for stars
made elsewhere (upsampled mocks, :mod:`gaialake.upsample.dr3out`; density validation mocks,
:mod:`gaialake.density.mock_catalog`). Pure numpy.

- photometry (:func:`draw_photometry`): absolute G and BP-RP of one star drawn from the
  generator's isochrone of each star's [Fe/H] (:func:`gaialake.sky.photometry.population`,
  Kroupa IMF; [Fe/H] rounded to :data:`FEH_STEP`), its luminosity function optionally truncated
  at an absolute magnitude;
- extinction (:func:`sightline_a_v`): A_V integrated along the straight sight-line from the Sun
  through the generator's dust density (midpoint rule on :data:`SIGHTLINE_STEPS` steps);
- errors, the G limit, the RVS subset, source_ids and the 152 columns:
  :func:`gaialake.sky.observe.dr3_catalog` (:func:`observe_photometry` runs the three in order);
- files (:func:`file_of`, :func:`file_name`): the level-8 HEALPix pixels cut into ``n_files``
  equal ranges (nested order), named like ESA's ``GaiaSource_<first>-<last>.csv.gz``; ranges
  are disjoint, so source_ids are unique over the files.

Units: kpc, km/s, deg, mag.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from gaialake.astro.healpix import pixel_of
from gaialake.sky.galaxy import dust_av_per_kpc
from gaialake.sky.observe import dr3_catalog
from gaialake.sky.photometry import apparent_g, extinction_bands, population

__all__ = ["N_PIX8", "FEH_STEP", "SIGHTLINE_STEPS", "file_range", "file_name", "file_of",
           "sightline_a_v", "draw_photometry", "observe_photometry"]

#: Level-8 HEALPix pixels on the sky.
N_PIX8 = 12 * 4 ** 8
#: [Fe/H] resolution (dex) of the isochrones the stars are drawn from.
FEH_STEP = 0.05
#: Steps of the sight-line integral of the dust density.
SIGHTLINE_STEPS = 64


def file_range(index: int, n_files: int) -> tuple[int, int]:
    """First and last level-8 pixel of bulk file ``index`` of ``n_files``."""
    return index * N_PIX8 // n_files, (index + 1) * N_PIX8 // n_files - 1


def file_name(index: int, n_files: int) -> str:
    """``GaiaSource_<first>-<last>.csv.gz`` of bulk file ``index`` (level-8 pixels)."""
    lo8, hi8 = file_range(index, n_files)
    return f"GaiaSource_{lo8:06d}-{hi8:06d}.csv.gz"


def file_of(ra_deg: np.ndarray, dec_deg: np.ndarray, n_files: int) -> np.ndarray:
    """The bulk file index of positions (deg) among ``n_files``."""
    return (pixel_of(ra_deg, dec_deg, 8) * n_files // N_PIX8).astype(np.int32)


def sightline_a_v(xyz_kpc: np.ndarray, sun_kpc: np.ndarray,
                  steps: int = SIGHTLINE_STEPS) -> np.ndarray:
    """A_V (mag) from the Sun at ``sun_kpc`` (3,) to stars at ``xyz_kpc`` (3, n), Galactocentric
    kpc, through the generator's dust density."""
    sun = np.asarray(sun_kpc, np.float64).reshape(3, 1, 1)
    s = (np.arange(steps) + 0.5) / steps
    p = sun + (np.asarray(xyz_kpc)[:, :, None] - sun) * s[None, None, :]
    density = dust_av_per_kpc(np.hypot(p[0], p[1]), np.abs(p[2]))
    length = np.linalg.norm(np.asarray(xyz_kpc) - sun[:, :, 0], axis=0)
    return density.mean(axis=1) * length


def draw_photometry(rng: np.random.Generator, feh: np.ndarray,
                    abs_mag_limit: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
    """(absolute G, intrinsic BP-RP) in mag: one star of the isochrone of each [Fe/H] (dex,
    rounded to :data:`FEH_STEP`), its luminosity function truncated at ``abs_mag_limit``
    (``inf``: the full one)."""
    key = np.round(np.asarray(feh, np.float64) / FEH_STEP).astype(np.int64)
    abs_g, bp_rp = np.empty(len(key)), np.empty(len(key))
    for k in np.unique(key):
        rows = np.flatnonzero(key == k)
        abs_g[rows], bp_rp[rows] = population(round(float(k * FEH_STEP), 4)).sample(
            rng, np.full(len(rows), abs_mag_limit))
    return abs_g, bp_rp


def observe_photometry(rng: np.random.Generator, true: dict[str, np.ndarray],
                       xyz_kpc: np.ndarray, sun_kpc: np.ndarray, feh: np.ndarray,
                       extinction: bool, g_limit: float, rv_g_limit: float,
                       abs_mag_limit: float = np.inf) -> tuple[pa.Table, np.ndarray]:
    """Stars with noiseless astrometry ``true`` (ra, dec, l, b, ecl_lon, ecl_lat deg, distance
    kpc, pmra, pmdec mas/yr, radial_velocity km/s) at Galactocentric ``xyz_kpc`` (3, n), seen
    from ``sun_kpc``, given photometry (:func:`draw_photometry`) and extinction (when
    ``extinction``) and observed (:func:`gaialake.sky.observe.dr3_catalog`): (152-column table
    of the stars brighter than ``g_limit``, sorted by source_id; the input row of each)."""
    a_v = sightline_a_v(xyz_kpc, sun_kpc) if extinction else np.zeros(len(feh))
    a_g, e_bprp = extinction_bands(a_v)
    abs_g, bp_rp0 = draw_photometry(rng, feh, abs_mag_limit)
    true.update(g=apparent_g(abs_g, true["distance"], a_g), bp_rp=bp_rp0 + e_bprp)
    return dr3_catalog(rng, true, g_limit, rv_g_limit)

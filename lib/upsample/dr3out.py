"""Upsampled stars observed as Gaia DR3 (conf ``upsample.dr3_out``): the sky generator's
observation path applied to Galactocentric mock stars, one bulk file at a time (numpy; the
Spark tasks are in :mod:`gaialake.upsample.mock_spark`).

Per star (x..vz in kpc, km/s; [Fe/H] in dex), with the generator's functions:

- ra, dec, distance, proper motions, radial velocity, l, b:
  :func:`gaialake.sky.kinematics.galactocentric_to_observed` (the project's solar frame);
- absolute G and BP-RP: one star drawn from the full Kroupa luminosity function of the
  isochrone of the star's [Fe/H] (:func:`gaialake.sky.photometry.population`, [Fe/H] rounded to
  :data:`FEH_STEP`). The generator's isochrones are indexed by [Fe/H] alone, ages following its
  anchors' age-metallicity relation: the mock star's own age does not enter its photometry;
- extinction: A_V integrated along the straight sight-line from the Sun through the generator's
  dust density (:func:`gaialake.sky.galaxy.dust_av_per_kpc`, midpoint rule on
  :data:`SIGHTLINE_STEPS` steps), A_G and E(BP-RP) by :func:`~gaialake.sky.photometry.extinction_bands`;
- DR3 errors, the RVS subset (G < ``sky.rv_g_limit``), the G limit (observed G <
  ``sky.g_limit``), source_ids and the 152 columns: :func:`gaialake.sky.observe.dr3_catalog`.

Files: the level-8 HEALPix pixels are cut into :attr:`Dr3OutSettings.n_files` equal ranges
(nested order); file k holds the stars whose (ra, dec) fall in range k, named like ESA's and the
generator's ``GaiaSource_<first>-<last>.csv.gz`` (level-8 pixels). Ranges are disjoint, so
source_ids (level-12 pixel << 35 | running number) are unique over the files. File k's
randomness is ``default_rng(seeds[k])`` over its stars sorted by particle_id: a file's bytes do
not depend on the Spark partitioning.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from gaialake.astro.healpix import pixel_of
from gaialake.sky.galaxy import dust_av_per_kpc
from gaialake.sky.kinematics import Transforms, galactocentric_to_observed
from gaialake.sky.observe import dr3_catalog
from gaialake.sky.photometry import apparent_g, extinction_bands, population

__all__ = ["N_PIX8", "FEH_STEP", "SIGHTLINE_STEPS", "TRUTH_FILE", "TRUTH_ROWS_DDL",
           "Dr3OutSettings", "file_range", "file_name", "file_index_of", "sightline_a_v",
           "draw_photometry", "observe_stars", "observe_file"]

#: Level-8 HEALPix pixels on the sky.
N_PIX8 = 12 * 4 ** 8
#: [Fe/H] resolution (dex) of the isochrones the stars are drawn from.
FEH_STEP = 0.05
#: Steps of the sight-line integral of the dust density.
SIGHTLINE_STEPS = 64
#: The truth file beside the bulk files (``gaialake ingest`` registers it as ``truth_origin``).
TRUTH_FILE = "truth_origin.parquet"
#: The truth rows of the written stars (the file's columns, plus the bulk file's index).
TRUTH_ROWS_DDL = "source_id long, origin string, component string, parent_id long, file_index int"


@dataclass(frozen=True)
class Dr3OutSettings:
    """``g_limit``, ``rv_g_limit`` (mag), ``extinction`` (the sky's keys ``sky.g_limit``,
    ``sky.rv_g_limit``, ``sky.extinction``) and ``n_files`` (bulk files,
    ``upsample.sample_partitions``)."""

    g_limit: float
    rv_g_limit: float
    extinction: bool
    n_files: int

    @classmethod
    def from_conf(cls, conf) -> "Dr3OutSettings":
        """The settings of ``conf`` (the sky generator's observation keys)."""
        n_files = int(conf.get("upsample.sample_partitions"))
        if not 1 <= n_files <= N_PIX8:
            raise ValueError(f"conf upsample.sample_partitions={n_files}: the DR3 output needs "
                             f"1 to {N_PIX8} files")
        return cls(float(conf.get("sky.g_limit")), float(conf.get("sky.rv_g_limit")),
                   str(conf.get("sky.extinction")).lower() not in ("off", "false", "0", "no"),
                   n_files)


def file_range(index: int, n_files: int) -> tuple[int, int]:
    """First and last level-8 pixel of bulk file ``index`` of ``n_files``."""
    return index * N_PIX8 // n_files, (index + 1) * N_PIX8 // n_files - 1


def file_name(index: int, n_files: int) -> str:
    """``GaiaSource_<first>-<last>.csv.gz`` of bulk file ``index`` (level-8 pixels)."""
    lo8, hi8 = file_range(index, n_files)
    return f"GaiaSource_{lo8:06d}-{hi8:06d}.csv.gz"


def file_index_of(xyz_kpc: np.ndarray, vxyz_kms: np.ndarray, tf: Transforms,
                  n_files: int) -> np.ndarray:
    """The bulk file of stars at Galactocentric ``xyz_kpc``, ``vxyz_kms`` (3, n)."""
    obs = galactocentric_to_observed(xyz_kpc, vxyz_kms, tf)
    return (pixel_of(obs["ra"], obs["dec"], 8) * n_files // N_PIX8).astype(np.int32)


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


def draw_photometry(rng: np.random.Generator, feh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(absolute G, intrinsic BP-RP) in mag: one star of the full luminosity function of the
    isochrone of each [Fe/H] (dex, rounded to :data:`FEH_STEP`)."""
    feh = np.asarray(feh, np.float64)
    if not np.all(np.isfinite(feh)):
        raise ValueError("upsample.dr3_out: the mock stars need [Fe/H] for their photometry "
                         "(a snapshot with a feh column, or upsample.galaxy.with_chemistry)")
    key = np.round(feh / FEH_STEP).astype(np.int64)
    abs_g, bp_rp = np.empty(len(feh)), np.empty(len(feh))
    for k in np.unique(key):
        rows = np.flatnonzero(key == k)
        abs_g[rows], bp_rp[rows] = population(round(float(k * FEH_STEP), 4)).sample(
            rng, np.full(len(rows), np.inf))
    return abs_g, bp_rp


def observe_stars(rng: np.random.Generator, xyz_kpc: np.ndarray, vxyz_kms: np.ndarray,
                  feh: np.ndarray, settings: Dr3OutSettings, tf: Transforms,
                  ) -> tuple[pa.Table, np.ndarray]:
    """Stars (Galactocentric (3, n) kpc, km/s; [Fe/H] dex) observed as DR3 rows: (152-column
    table of the stars brighter than the G limit, sorted by source_id; the input row of each)."""
    true = galactocentric_to_observed(xyz_kpc, vxyz_kms, tf)
    a_v = sightline_a_v(xyz_kpc, tf.t) if settings.extinction else np.zeros(len(feh))
    a_g, e_bprp = extinction_bands(a_v)
    abs_g, bp_rp0 = draw_photometry(rng, feh)
    true.update(g=apparent_g(abs_g, true["distance"], a_g), bp_rp=bp_rp0 + e_bprp)
    return dr3_catalog(rng, true, settings.g_limit, settings.rv_g_limit)


def observe_file(stars: pd.DataFrame, seed: int, settings: Dr3OutSettings, tf: Transforms,
                 ) -> tuple[pa.Table, pd.DataFrame]:
    """One bulk file's stars (upsampled_mock rows: x..vz, feh, particle_id, origin, parent_id,
    optional component) observed: (DR3 table, truth rows of :data:`TRUTH_ROWS_DDL` without
    file_index). Seeded with ``seed``, stars taken in particle_id order."""
    stars = stars.sort_values("particle_id", kind="stable")
    xyz = stars[["x", "y", "z"]].to_numpy(np.float64).T
    vxyz = stars[["vx", "vy", "vz"]].to_numpy(np.float64).T
    table, rows = observe_stars(np.random.default_rng(seed), xyz, vxyz,
                                stars["feh"].to_numpy(np.float64), settings, tf)
    pick = (lambda c: stars[c].to_numpy()[rows] if c in stars else np.full(len(rows), None))
    truth = pd.DataFrame({"source_id": table.column("source_id").to_numpy(),
                          "origin": pick("origin"), "component": pick("component"),
                          "parent_id": pd.array(pick("parent_id"), dtype="Int64")})
    return table, truth

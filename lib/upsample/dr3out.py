"""Upsampled stars observed as Gaia DR3 (conf ``upsample.dr3_out``): the sky generator's
observation path applied to Galactocentric mock stars, one bulk file at a time (numpy; the
Spark tasks are in :mod:`gaialake.upsample.mock_spark`).

Per star (x..vz in kpc, km/s; [Fe/H] in dex), with the generator's functions:

- ra, dec, distance, proper motions, radial velocity, l, b:
  :func:`gaialake.sky.kinematics.galactocentric_to_observed` (the project's solar frame);
- photometry, extinction, DR3 errors, the RVS subset (G < ``sky.rv_g_limit``), the G limit
  (observed G < ``sky.g_limit``), source_ids and the 152 columns:
  :func:`gaialake.sky.mockobs.observe_photometry`, each star drawn from the full Kroupa
  luminosity function of its [Fe/H]'s isochrone. The generator's isochrones are indexed by
  [Fe/H] alone, ages following its anchors' age-metallicity relation: the mock star's own age
  does not enter its photometry.

Files (:func:`gaialake.sky.mockobs.file_of`): :attr:`Dr3OutSettings.n_files` equal ranges of
level-8 HEALPix pixels; file k holds the stars whose (ra, dec) fall in range k, named like ESA's
``GaiaSource_<first>-<last>.csv.gz``. Ranges are disjoint, so source_ids (level-12 pixel << 35 |
running number) are unique over the files. File k's
randomness is ``default_rng(seeds[k])`` over its stars sorted by particle_id: a file's bytes do
not depend on the Spark partitioning.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from gaialake.sky.kinematics import Transforms, galactocentric_to_observed
from gaialake.sky.mockobs import N_PIX8, file_of, observe_photometry

__all__ = ["TRUTH_FILE", "TRUTH_ROWS_DDL", "Dr3OutSettings", "file_index_of", "observe_stars",
           "observe_file"]

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


def file_index_of(xyz_kpc: np.ndarray, vxyz_kms: np.ndarray, tf: Transforms,
                  n_files: int) -> np.ndarray:
    """The bulk file of stars at Galactocentric ``xyz_kpc``, ``vxyz_kms`` (3, n)."""
    obs = galactocentric_to_observed(xyz_kpc, vxyz_kms, tf)
    return file_of(obs["ra"], obs["dec"], n_files)


def observe_stars(rng: np.random.Generator, xyz_kpc: np.ndarray, vxyz_kms: np.ndarray,
                  feh: np.ndarray, settings: Dr3OutSettings, tf: Transforms,
                  ) -> tuple[pa.Table, np.ndarray]:
    """Stars (Galactocentric (3, n) kpc, km/s; [Fe/H] dex) observed as DR3 rows: (152-column
    table of the stars brighter than the G limit, sorted by source_id; the input row of each)."""
    if not np.all(np.isfinite(np.asarray(feh, np.float64))):
        raise ValueError("upsample.dr3_out: the mock stars need [Fe/H] for their photometry "
                         "(a snapshot with a feh column, or upsample.galaxy.with_chemistry)")
    true = galactocentric_to_observed(xyz_kpc, vxyz_kms, tf)
    return observe_photometry(rng, true, xyz_kpc, tf.t, feh, settings.extinction,
                              settings.g_limit, settings.rv_g_limit)


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

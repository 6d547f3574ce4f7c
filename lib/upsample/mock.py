"""The upsampled mock's rows: the particles' splits, the 3-sample roles, and the stars each
upsampler adds in one Spark partition (numpy and pandas; :mod:`gaialake.upsample.mock_spark`
runs them in tasks).

A mock row has the columns of ``gaialake.tables.UPSAMPLED_MOCK``: x, y, z (kpc), vx, vy, vz
(km/s), age (Gyr), feh (dex; NaN when the particles have none), ``particle_id`` (partition *
:data:`ID_STRIDE` + row in the partition), ``split`` (the row's role in the 3-sample test:
``fit`` trains the classifier, ``eval`` is scored, ``mock`` is the rest), ``method``
(``galaxyflow`` or ``enbid``), ``parent_id`` (the particle an EnBiD child comes from) and
``run_id``.

>>> split_labels(10, 0.2, 0.25, seed=0).tolist().count("heldout")
2
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from gaialake.upsample.enbid import child_counts, spawn
from gaialake.upsample.particles import near_sun

__all__ = ["ID_STRIDE", "split_labels", "role_fraction", "assign_roles", "partition_counts",
           "mock_frame", "flow_stars", "enbid_children"]

#: particle_id of a mock star: partition * ID_STRIDE + row.
ID_STRIDE = 1 << 32


def split_labels(n: int, heldout_fraction: float, val_fraction: float, seed: int) -> np.ndarray:
    """``train`` / ``val`` / ``heldout`` per particle (seeded); val is a share of the training
    particles (the flow's early-stopping set)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_heldout = int(round(heldout_fraction * n))
    n_val = int(round(val_fraction * (n - n_heldout)))
    labels = np.full(n, "train", dtype=object)
    labels[order[:n_heldout]] = "heldout"
    labels[order[n_heldout:n_heldout + n_val]] = "val"
    return labels


def role_fraction(n_mock: int, classifier_rows: float) -> float:
    """The share of an upsampler's ``n_mock`` stars in each classifier role (fit, eval):
    ``classifier_rows`` of them, at most half."""
    return min(0.5, float(classifier_rows) / max(n_mock, 1))


def assign_roles(rng: np.random.Generator, n: int, f_fit: float, f_eval: float) -> np.ndarray:
    """``fit`` / ``eval`` / ``mock`` for ``n`` stars, with probabilities f_fit, f_eval, rest."""
    u = rng.uniform(size=n)
    return np.where(u < f_fit, "fit", np.where(u < f_fit + f_eval, "eval", "mock"))


def partition_counts(n: int, partitions: int) -> np.ndarray:
    """``n`` stars shared between ``partitions`` (the first ones get one more)."""
    counts = np.full(partitions, n // partitions)
    counts[: n % partitions] += 1
    return counts


def mock_frame(columns: Sequence[str], values: np.ndarray, ids: np.ndarray, roles: np.ndarray,
               method: str, parent: np.ndarray | None, run_id: str) -> pd.DataFrame:
    """Mock rows of ``values`` ``(n, len(columns))`` (physical units); age and feh are NaN
    when ``columns`` lack them, parent_id null when ``parent`` is None."""
    out = pd.DataFrame({c: values[:, i] for i, c in enumerate(columns)})
    for c in ("age", "feh"):
        if c not in out:
            out[c] = np.nan
    out["particle_id"] = ids.astype(np.int64)
    out["split"] = roles
    out["method"] = method
    out["parent_id"] = pd.array(parent, dtype="Int64") if parent is not None else \
        pd.array([None] * len(out), dtype="Int64")
    out["run_id"] = run_id
    return out


def flow_stars(model, partition: int, n: int, seed: int, f_fit: float, f_eval: float,
               run_id: str) -> pd.DataFrame:
    """The mock rows of ``n`` stars drawn from a GalaxyFlow ``model`` in ``partition``: stars
    seeded with ``seed``, roles with ``seed + 1``."""
    stars = model.sample(int(n), seed=seed)
    roles = assign_roles(np.random.default_rng(seed + 1), len(stars), f_fit, f_eval)
    ids = int(partition) * ID_STRIDE + np.arange(len(stars))
    return mock_frame(model.columns, stars, ids, roles, "galaxyflow", None, run_id)


def enbid_children(particles: pd.DataFrame, columns: Sequence[str], multiple: float,
                   mean_mass: float, rng: np.random.Generator, radius_kpc: float | None,
                   first_id: int, f_fit: float, f_eval: float, run_id: str) -> pd.DataFrame:
    """The mock rows of the EnBiD children of ``particles`` (``columns``, ``mass`` M_sun,
    ``particle_id`` and the kernel's Cholesky factor ``chol`` as 36 values): ``multiple *
    mass / mean_mass`` children each, inside ``radius_kpc`` of the Sun, ids from ``first_id``."""
    features = particles[list(columns)].to_numpy(np.float64)
    chol = np.stack(particles["chol"].to_numpy()).reshape(len(particles), 6, 6)
    counts = child_counts(particles["mass"].to_numpy(), multiple, rng, mean_mass=mean_mass)
    inside = None if radius_kpc is None else (lambda a: near_sun(a[:, :3], radius_kpc))
    kids, parent = spawn(features, chol, counts, rng, inside=inside)
    roles = assign_roles(rng, len(kids), f_fit, f_eval)
    ids = first_id + np.arange(len(kids))
    return mock_frame(columns, kids, ids, roles, "enbid",
                      particles["particle_id"].to_numpy()[parent], run_id)

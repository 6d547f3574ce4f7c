"""The upsampled mock's rows: the particles' splits, the 3-sample roles, and the stars each
upsampler adds in one Spark partition (numpy and pandas; :mod:`gaialake.upsample.mock_spark`
runs them in tasks).

A mock row has the columns of ``gaialake.tables.UPSAMPLED_MOCK``: x, y, z (kpc), vx, vy, vz
(km/s), age (Gyr), feh (dex; NaN when the particles have none), ``particle_id`` (partition *
:data:`ID_STRIDE` + row in the partition), ``split`` (the row's role in the 3-sample test:
``fit`` trains the classifier, ``eval`` is scored, ``mock`` is the rest), ``method``
(``galaxyflow`` or ``enbid``), ``parent_id`` (the particle the star comes from), ``origin``
(``in_situ`` / ``accreted``: its parent's label; null when the particles have none) and
``run_id``.

Parents: an EnBiD child's parent is the particle whose kernel spawned it. A flow star has no
parent of its own, so :class:`ParentIndex` gives it the nearest training particle in
standardised phase space (x..vz each divided by the training particles' std, so that 1 kpc and
1 km/s do not weigh alike; age and [Fe/H] are left out: the label follows the orbit), found with
a k-d tree (``scipy.spatial.cKDTree``, exact nearest neighbour, O(log n) per star).

>>> split_labels(10, 0.2, 0.25, seed=0).tolist().count("heldout")
2
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from gaialake.upsample.enbid import child_counts, spawn
from gaialake.upsample.particles import ParticleSet, near_sun

__all__ = ["ID_STRIDE", "PHASE_COLUMNS", "ParentIndex", "split_labels", "particle_rows",
           "role_fraction",
           "assign_roles", "partition_counts", "mock_frame", "flow_stars", "enbid_children"]

#: particle_id of a mock star: partition * ID_STRIDE + row.
ID_STRIDE = 1 << 32
#: The phase-space columns (kpc, km/s) in which a flow star finds its parent particle.
PHASE_COLUMNS = ("x", "y", "z", "vx", "vy", "vz")


@dataclass
class ParentIndex:
    """The training particles as parents of flow stars: phase space ``points`` ``(n, 6)``
    (kpc, km/s), ``particle_id`` and ``origin`` (None when the particles have no labels).
    Picklable; the k-d tree is built on first use in the task."""

    points: np.ndarray
    particle_id: np.ndarray
    origin: np.ndarray | None
    _tree: object = field(default=None, init=False, repr=False, compare=False)

    @classmethod
    def from_frame(cls, particles: pd.DataFrame) -> "ParentIndex":
        """From particle rows with :data:`PHASE_COLUMNS`, ``particle_id`` and optional
        ``origin``."""
        if len(particles) == 0:
            raise ValueError("ParentIndex: no training particles")
        origin = particles["origin"].to_numpy().astype(str) if "origin" in particles else None
        return cls(particles[list(PHASE_COLUMNS)].to_numpy(np.float64),
                   particles["particle_id"].to_numpy(np.int64), origin)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_tree": None}

    def nearest(self, phase: np.ndarray) -> np.ndarray:
        """Row of the nearest particle (standardised phase space) of each star ``(m, 6)``."""
        if self._tree is None:
            from scipy.spatial import cKDTree

            scale = self.points.std(axis=0)
            scale = np.where(scale > 0, scale, 1.0)
            self._tree = (cKDTree(self.points / scale), scale)
        tree, scale = self._tree
        return tree.query(np.asarray(phase, np.float64) / scale, k=1)[1]

    def parents(self, phase: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(parent particle_id, parent origin or None) of stars at ``phase`` ``(m, 6)``."""
        row = self.nearest(phase)
        return self.particle_id[row], None if self.origin is None else self.origin[row]


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


def particle_rows(particles: ParticleSet, heldout_fraction: float, val_fraction: float, seed: int,
                  run_id: str) -> pd.DataFrame:
    """The ``star_particles`` rows of a :class:`~gaialake.upsample.particles.ParticleSet`: its
    columns (:meth:`~gaialake.upsample.particles.ParticleSet.to_arrow`), ``split``
    (:func:`split_labels` with these fractions and ``seed``) and ``run_id``."""
    rows = particles.to_arrow().to_pandas()
    rows["split"] = split_labels(len(rows), heldout_fraction, val_fraction, seed)
    rows["run_id"] = run_id
    return rows


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
               method: str, parent: np.ndarray | None, run_id: str,
               origin: np.ndarray | None = None) -> pd.DataFrame:
    """Mock rows of ``values`` ``(n, len(columns))`` (physical units); age and feh are NaN
    when ``columns`` lack them, parent_id (origin) null when ``parent`` (``origin``) is None."""
    out = pd.DataFrame({c: values[:, i] for i, c in enumerate(columns)})
    for c in ("age", "feh"):
        if c not in out:
            out[c] = np.nan
    out["particle_id"] = ids.astype(np.int64)
    out["split"] = roles
    out["method"] = method
    out["parent_id"] = pd.array(parent, dtype="Int64") if parent is not None else \
        pd.array([None] * len(out), dtype="Int64")
    out["origin"] = origin.astype(object) if origin is not None else None
    out["run_id"] = run_id
    return out


def flow_stars(model, partition: int, n: int, seed: int, f_fit: float, f_eval: float,
               run_id: str, parents: ParentIndex | None = None) -> pd.DataFrame:
    """The mock rows of ``n`` stars drawn from a GalaxyFlow ``model`` in ``partition``: stars
    seeded with ``seed``, roles with ``seed + 1``; with ``parents``, each star's parent_id and
    origin are those of its nearest training particle."""
    stars = model.sample(int(n), seed=seed)
    roles = assign_roles(np.random.default_rng(seed + 1), len(stars), f_fit, f_eval)
    ids = int(partition) * ID_STRIDE + np.arange(len(stars))
    parent = origin = None
    if parents is not None:
        phase = stars[:, [list(model.columns).index(c) for c in PHASE_COLUMNS]]
        parent, origin = parents.parents(phase)
    return mock_frame(model.columns, stars, ids, roles, "galaxyflow", parent, run_id, origin)


def enbid_children(particles: pd.DataFrame, columns: Sequence[str], multiple: float,
                   mean_mass: float, rng: np.random.Generator, radius_kpc: float | None,
                   first_id: int, f_fit: float, f_eval: float, run_id: str) -> pd.DataFrame:
    """The mock rows of the EnBiD children of ``particles`` (``columns``, ``mass`` M_sun,
    ``particle_id``, optional ``origin`` and the kernel's Cholesky factor ``chol`` as 36
    values): ``multiple * mass / mean_mass`` children each, inside ``radius_kpc`` of the Sun,
    ids from ``first_id``; each child keeps its parent's id and origin."""
    features = particles[list(columns)].to_numpy(np.float64)
    chol = np.stack(particles["chol"].to_numpy()).reshape(len(particles), 6, 6)
    counts = child_counts(particles["mass"].to_numpy(), multiple, rng, mean_mass=mean_mass)
    inside = None if radius_kpc is None else (lambda a: near_sun(a[:, :3], radius_kpc))
    kids, parent = spawn(features, chol, counts, rng, inside=inside)
    roles = assign_roles(rng, len(kids), f_fit, f_eval)
    ids = first_id + np.arange(len(kids))
    origin = particles["origin"].to_numpy()[parent] if "origin" in particles else None
    return mock_frame(columns, kids, ids, roles, "enbid",
                      particles["particle_id"].to_numpy()[parent], run_id, origin)

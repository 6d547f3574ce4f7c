"""The upsampled mock's rows: particle splits, roles, partition counts, EnBiD children."""
from __future__ import annotations

import numpy as np
import pandas as pd

from gaialake.upsample.mock import (ID_STRIDE, enbid_children, partition_counts, particle_rows,
                                    split_labels)
from gaialake.upsample.particles import make_galaxy


def test_split_labels_reserve_heldout_and_validation_particles():
    labels = split_labels(1000, 0.2, 0.1, seed=3)
    assert (labels == "heldout").sum() == 200 and (labels == "val").sum() == 80
    assert (split_labels(1000, 0.2, 0.1, seed=3) == labels).all()


def test_particle_rows_carry_the_particles_their_split_and_the_run():
    particles = make_galaxy(500, seed=4)
    rows = particle_rows(particles, 0.2, 0.1, 5, "run-1")
    assert list(rows["particle_id"]) == list(particles.particle_id)
    assert np.allclose(rows[particles.columns].to_numpy(), particles.features())
    assert (rows["split"] == split_labels(500, 0.2, 0.1, 5)).all()
    assert set(rows["run_id"]) == {"run-1"} and "component" in rows


def test_partition_counts_share_all_stars():
    assert partition_counts(11, 4).tolist() == [3, 3, 3, 2]


def test_enbid_children_are_mock_rows_of_their_parents():
    rng = np.random.default_rng(0)
    columns = ["x", "y", "z", "vx", "vy", "vz"]
    particles = pd.DataFrame(rng.normal(size=(50, 6)) + [-8, 0, 0, 0, 220, 0], columns=columns)
    particles["mass"] = 2.0
    particles["particle_id"] = np.arange(100, 150)
    particles["chol"] = list(np.tile(np.eye(6).ravel() * 0.01, (50, 1)))
    rows = enbid_children(particles, columns, 2.0, 2.0, np.random.default_rng(1), None,
                          3 * ID_STRIDE, 0.3, 0.3, "r")
    assert len(rows) == 100 and rows["particle_id"].min() == 3 * ID_STRIDE
    assert set(rows["parent_id"]) == set(range(100, 150))
    assert rows["age"].isna().all() and set(rows["method"]) == {"enbid"}


def test_enbid_children_carry_their_parents_origin():
    rng = np.random.default_rng(2)
    columns = ["x", "y", "z", "vx", "vy", "vz"]
    particles = pd.DataFrame(rng.normal(size=(20, 6)) + [-8, 0, 0, 0, 220, 0], columns=columns)
    particles["mass"] = 1.0
    particles["particle_id"] = np.arange(20)
    particles["origin"] = np.where(np.arange(20) % 3 == 0, "accreted", "in_situ")
    particles["chol"] = list(np.tile(np.eye(6).ravel() * 0.01, (20, 1)))
    rows = enbid_children(particles, columns, 3.0, 1.0, np.random.default_rng(1), None, 0,
                          0.3, 0.3, "r")
    expected = np.where(rows["parent_id"].to_numpy() % 3 == 0, "accreted", "in_situ")
    assert (rows["origin"].to_numpy() == expected).all()

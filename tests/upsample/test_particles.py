"""Star-particle snapshots: the reader (Parquet, HDF5), its errors, and the default galaxy."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gaialake.upsample.particles import (SUN_POSITION_KPC, MissingColumnError, make_galaxy, read_snapshot,
                                write_snapshot)


@pytest.fixture(scope="module")
def galaxy():
    return make_galaxy(5000, seed=11)


@pytest.mark.parametrize("name", ["snap.parquet", "snap.hdf5"])
def test_snapshot_round_trips_through_parquet_and_hdf5(tmp_path, galaxy, name):
    path = write_snapshot(galaxy, tmp_path / name)
    back = read_snapshot(path, radius_kpc=3.5)
    assert back.columns == ["x", "y", "z", "vx", "vy", "vz", "age", "feh"]
    np.testing.assert_array_equal(back.features(), galaxy.features())
    np.testing.assert_array_equal(back.mass_msun, galaxy.mass_msun)
    np.testing.assert_array_equal(back.particle_id, galaxy.particle_id)


def test_snapshot_without_age_and_feh_models_phase_space_only(tmp_path, galaxy):
    table = galaxy.to_arrow().drop(["age", "feh"])
    pq.write_table(table, tmp_path / "phase.parquet")
    back = read_snapshot(tmp_path / "phase.parquet")
    assert back.columns == ["x", "y", "z", "vx", "vy", "vz"]
    assert back.features().shape == (len(galaxy), 6)


@pytest.mark.parametrize("fmt", ["parquet", "h5"])
def test_snapshot_missing_a_required_column_names_file_and_column(tmp_path, galaxy, fmt):
    table = galaxy.to_arrow().drop(["vz"])
    path = tmp_path / f"broken.{fmt}"
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        import h5py

        with h5py.File(path, "w") as fh:
            for c in table.column_names:
                if c != "component":
                    fh[c] = table.column(c).to_numpy()
    with pytest.raises(MissingColumnError) as err:
        read_snapshot(path)
    assert str(path) in str(err.value) and "'vz'" in str(err.value)


def test_snapshot_with_non_positive_mass_is_refused(tmp_path):
    cols = {c: np.zeros(3) for c in ("x", "y", "z", "vx", "vy", "vz")}
    cols["mass"] = np.array([1.0, 0.0, 1.0])
    pq.write_table(pa.table(cols), tmp_path / "m.parquet")
    with pytest.raises(ValueError, match=r"m\.parquet.*'mass'.*row 1"):
        read_snapshot(tmp_path / "m.parquet")


def test_default_galaxy_is_deterministic_and_inside_the_solar_sphere(galaxy):
    again = make_galaxy(5000, seed=11)
    np.testing.assert_array_equal(again.features(), galaxy.features())
    assert len(galaxy) == 5000
    dist = np.linalg.norm(galaxy.pos_kpc - SUN_POSITION_KPC, axis=1)
    assert dist.max() < 3.5
    assert not np.allclose(make_galaxy(5000, seed=12).features()[:10], galaxy.features()[:10])


def test_default_galaxy_has_its_components_with_known_structure(galaxy):
    comp = galaxy.component
    z, vz, age = galaxy.pos_kpc[:, 2], galaxy.vel_kms[:, 2], galaxy.age_gyr
    thin, thick = comp == "thin_disk", comp == "thick_disk"
    # thin disk: sech^2 scale heights 0.07-0.37 kpc; thick disk 0.7 kpc (std of sech^2 = 0.907 h)
    assert np.std(z[thin]) < 0.45 * np.std(z[thick])
    assert 0.45 < np.std(z[thick]) < 0.8
    # age-velocity dispersion relation inside the thin disk: old stars are hotter
    assert np.std(vz[thin & (age > 7)]) > 1.5 * np.std(vz[thin & (age < 2)])
    # clumps: compact (30-150 pc) and young (< 0.35 Gyr)
    assert age[comp == "clumps"].max() < 0.35
    assert abs(np.mean(comp == "clumps") - 0.08) < 0.005
    # mass loss: old particles are lighter
    assert galaxy.mass_msun[age > 10].mean() < 0.9 * galaxy.mass_msun[age < 1].mean()

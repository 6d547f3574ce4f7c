"""Simulation snapshots: Gizmo/FIRE and Arepo/Auriga HDF5, tipsy (pynbody), the host frame, labels
and the errors. Every snapshot is written here from a known galaxy (h5py / pynbody)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy.cosmology import FlatLambdaCDM

from gaialake.upsample.host import HostSettings, find_host_frame, shrinking_sphere_center
from gaialake.upsample.particles import SUN_POSITION_KPC, read_snapshot
from gaialake.upsample.snapshots import (EmptySelectionError, SnapshotError, detect_format,
                                         read_gadget_stars, read_tipsy, snapshot_files)

h5py = pytest.importorskip("h5py")

H, A_NOW, OMEGA_M = 0.702, 0.8, 0.272                 # h != 1, a != 1 (z = 0.25)
CENTER_KPC = np.array([1234.5, 2345.6, 3456.7])      # host centre, physical kpc
BULK_KMS = np.array([-120.0, 85.0, 40.0])
SOLAR_FE_OVER_H = 1.29e-3 / 0.7381                   # Asplund et al. 2009 mass ratio


def _rotation(alpha: float, beta: float, gamma: float) -> np.ndarray:
    """z-y-z Euler rotation (rad)."""
    def rz(t):
        return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    ry = np.array([[np.cos(beta), 0, np.sin(beta)], [0, 1, 0], [-np.sin(beta), 0, np.cos(beta)]])
    return rz(alpha) @ ry @ rz(gamma)


TILT = _rotation(0.7, 1.1, -0.4)                      # simulation axes = TILT @ disk axes


def _known_galaxy(seed: int = 3, n_disk: int = 20000, n_ring: int = 3000, n_sat: int = 2000):
    """Truth in Galactocentric axes (host at 0, disk rotating with L_z < 0): a young-and-old
    exponential disk with a bulge (its inner 15 %: Plummer, 0.5 kpc), an old polar ring (tilts
    the all-star spin) and a satellite 60 kpc out."""
    rng = np.random.default_rng(seed)
    radius = rng.gamma(2.0, 3.0, n_disk)
    phi = rng.uniform(0, 2 * np.pi, n_disk)
    pos = np.column_stack([radius * np.cos(phi), radius * np.sin(phi),
                           0.3 * np.arctanh(rng.uniform(-1, 1, n_disk))])
    n_bulge = int(0.15 * n_disk)
    r_bulge = 0.5 / np.sqrt(rng.uniform(0, 1, n_bulge) ** (-2 / 3) - 1)
    direction = rng.normal(size=(n_bulge, 3))
    pos[:n_bulge] = direction / np.linalg.norm(direction, axis=1)[:, None] * r_bulge[:, None]
    v_phi = -200.0 + rng.normal(0, 15, n_disk)        # clockwise seen from +z
    vel = np.column_stack([-np.sin(phi) * v_phi, np.cos(phi) * v_phi, rng.normal(0, 10, n_disk)])
    age = rng.uniform(0.05, 9.0, n_disk)           # the universe is 10.7 Gyr old at A_NOW
    ring_phi = rng.uniform(0, 2 * np.pi, n_ring)      # ring in the y-z plane, spin along +x
    ring_pos = np.column_stack([rng.normal(0, 0.2, n_ring), 6 * np.cos(ring_phi),
                                6 * np.sin(ring_phi)])
    ring_vel = np.column_stack([np.zeros(n_ring), -200 * np.sin(ring_phi),
                                200 * np.cos(ring_phi)])
    sat_pos = np.array([60.0, -20.0, 10.0]) + rng.normal(0, 0.5, (n_sat, 3))
    sat_vel = np.array([150.0, 0.0, -50.0]) + rng.normal(0, 10, (n_sat, 3))
    n = n_disk + n_ring + n_sat
    return {"pos": np.vstack([pos, ring_pos, sat_pos]), "vel": np.vstack([vel, ring_vel, sat_vel]),
            "age": np.concatenate([age, rng.uniform(9, 10, n_ring + n_sat)]),
            "feh": rng.uniform(-1.5, 0.3, n), "mass": 7000 * rng.uniform(0.8, 1.2, n),
            "id": rng.permutation(np.arange(10**9, 10**9 + 3 * n, 3))}


def _scale_factor_at_age(age_gyr: np.ndarray) -> np.ndarray:
    """Scale factor at which stars of ``age_gyr`` at A_NOW were born (inverse by interpolation)."""
    cosmo = FlatLambdaCDM(H0=100 * H, Om0=OMEGA_M)
    grid = np.geomspace(0.01, A_NOW, 20000)
    t_grid = cosmo.age(1 / grid - 1).to_value("Gyr")
    return np.interp(cosmo.age(1 / A_NOW - 1).to_value("Gyr") - age_gyr, t_grid, grid)


def _write_gizmo(folder, truth, n_files: int = 2, drop: str | None = None, **header) -> list:
    """The truth as a Gizmo/FIRE-2 snapshot in ``n_files`` files (comoving kpc/h, km/s sqrt(a),
    1e10 M_sun/h, formation scale factor, 11 metal columns)."""
    sim_pos = CENTER_KPC + truth["pos"] @ TILT.T
    sim_vel = BULK_KMS + truth["vel"] @ TILT.T
    z = 0.0134 * 10 ** truth["feh"]
    x_h = 1 - z - 0.25
    metals = np.zeros((len(z), 11))
    metals[:, 0], metals[:, 1], metals[:, 10] = z, 0.25, x_h * 10 ** truth["feh"] * SOLAR_FE_OVER_H
    columns = {"Coordinates": sim_pos * H / A_NOW, "Velocities": sim_vel / np.sqrt(A_NOW),
               "Masses": truth["mass"] * H / 1e10, "ParticleIDs": truth["id"].astype(np.uint64),
               "StellarFormationTime": _scale_factor_at_age(truth["age"]), "Metallicity": metals}
    n = len(z)
    paths = []
    for i, rows in enumerate(np.array_split(np.arange(n), n_files)):
        path = folder / f"snapshot_600.{i}.hdf5"
        with h5py.File(path, "w") as fh:
            attrs = {"Time": A_NOW, "Redshift": 1 / A_NOW - 1, "HubbleParam": H, "Omega0": OMEGA_M,
                     "OmegaLambda": 1 - OMEGA_M, "NumFilesPerSnapshot": n_files,
                     "NumPart_ThisFile": np.array([0, 0, 0, 0, len(rows), 0]),
                     "NumPart_Total": np.array([0, 0, 0, 0, n, 0], dtype=np.uint32),
                     "MassTable": np.zeros(6), **header}
            fh.create_group("Header").attrs.update(attrs)
            stars = fh.create_group("PartType4")
            for name, values in columns.items():
                if name != drop:
                    stars[name] = values[rows]
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def truth():
    return _known_galaxy()


@pytest.fixture(scope="module")
def gizmo_dir(tmp_path_factory, truth):
    folder = tmp_path_factory.mktemp("snapdir_600")
    _write_gizmo(folder, truth)
    return folder


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b),
                                              -1, 1))))


def test_gizmo_reader_recovers_units_ages_and_feh_from_two_files(gizmo_dir, truth):
    files = snapshot_files(gizmo_dir / "snapshot_600.*.hdf5")
    assert [f.name for f in files] == ["snapshot_600.0.hdf5", "snapshot_600.1.hdf5"]
    assert detect_format(files) == "gizmo"
    stars = read_gadget_stars(files, "gizmo")
    order = np.argsort(truth["id"])
    at = order[np.searchsorted(truth["id"][order], stars.particle_id)]
    assert len(stars) == len(truth["id"])
    np.testing.assert_allclose(stars.pos_kpc, CENTER_KPC + truth["pos"][at] @ TILT.T, atol=1e-8)
    np.testing.assert_allclose(stars.vel_kms, BULK_KMS + truth["vel"][at] @ TILT.T, atol=1e-8)
    np.testing.assert_allclose(stars.mass_msun, truth["mass"][at], rtol=1e-10)
    np.testing.assert_allclose(stars.age_gyr, truth["age"][at], atol=1e-4)   # Gyr
    np.testing.assert_allclose(stars.feh, truth["feh"][at], atol=1e-6)       # dex


def test_host_frame_finds_centre_bulk_velocity_and_young_disk_despite_ring_and_satellite(
        gizmo_dir, truth):
    stars = read_gadget_stars(snapshot_files(gizmo_dir), "gizmo")
    frame = find_host_frame(stars, HostSettings(young_gyr=1.0))
    assert frame.spin_from == "young" and frame.n_spin > 1000
    assert np.linalg.norm(frame.center_kpc - CENTER_KPC) < 0.1
    assert np.linalg.norm(frame.bulk_velocity_kms - BULK_KMS) < 3.0
    true_north = TILT @ np.array([0.0, 0.0, 1.0])     # disk +z in simulation axes (L along -z)
    assert _angle_deg(frame.rotation[2], true_north) < 1.0
    # the old polar ring tilts the spin of all stars: the young stars are what keeps the plane
    tilted = find_host_frame(stars, HostSettings(young_gyr=1e-3))
    assert tilted.spin_from == "all" and _angle_deg(tilted.rotation[2], true_north) > 3.0


def test_gizmo_snapshot_lands_in_galactocentric_axes_with_the_sun_where_conf_puts_it(
        gizmo_dir, truth):
    azimuth = 30.0
    got = read_snapshot(gizmo_dir, format="auto", radius_kpc=3.5,
                        host=HostSettings(sun_azimuth_deg=azimuth))
    assert 500 < len(got) < len(truth["id"]) and got.radius_kpc == 3.5
    assert np.linalg.norm(got.pos_kpc - SUN_POSITION_KPC, axis=1).max() < 3.5
    order = np.argsort(truth["id"])
    at = order[np.searchsorted(truth["id"][order], got.particle_id)]
    # the output azimuth 180 deg holds the disk point at `azimuth` from the simulation's x axis
    x_axis = TILT.T @ np.array([1.0, 0.0, 0.0])       # simulation x in disk axes
    turn = np.pi - np.radians(azimuth) - np.arctan2(x_axis[1], x_axis[0])
    rot = np.array([[np.cos(turn), -np.sin(turn), 0], [np.sin(turn), np.cos(turn), 0], [0, 0, 1]])
    assert np.abs(got.pos_kpc - truth["pos"][at] @ rot.T).max() < 0.2            # kpc
    assert np.abs(got.vel_kms - truth["vel"][at] @ rot.T).max() < 5.0            # km/s
    # the Milky Way's sense of rotation in astropy's Galactocentric frame: +y at the Sun
    assert 180 < np.median(got.vel_kms[:, 1]) < 220
    np.testing.assert_allclose(got.age_gyr, truth["age"][at], atol=1e-4)
    assert "gizmo" in got.source and "young stars" in got.source


def test_sun_radius_other_than_r0_shifts_the_host_centre_not_the_sun(gizmo_dir):
    stars = read_gadget_stars(snapshot_files(gizmo_dir), "gizmo")
    frame = find_host_frame(stars, HostSettings(sun_radius_kpc=6.0))
    centre, _ = frame.transform(frame.center_kpc[None], np.zeros((1, 3)))
    np.testing.assert_allclose(centre[0], [6.0 - abs(SUN_POSITION_KPC[0]), 0, 0], atol=1e-4)


def test_shrinking_sphere_ignores_a_heavier_offset_clump_outside_the_host():
    rng = np.random.default_rng(5)
    host = rng.normal(0, 2.0, (5000, 3)) + [10.0, 0, 0]
    clump = rng.normal(0, 1.0, (3000, 3)) + [80.0, 0, 0]
    pos = np.vstack([host, clump])
    centre = shrinking_sphere_center(pos, np.r_[np.ones(5000), np.full(3000, 1.5)])
    assert np.linalg.norm(centre - [10.0, 0, 0]) < 0.3


def _write_arepo(path, n: int = 500, seed: int = 8):
    """An Arepo/Auriga-like file at z = 0, lengths in Mpc/h; every 5th particle a wind particle."""
    rng = np.random.default_rng(seed)
    pos_mpc_h = rng.normal(0, 0.003, (n, 3)) + 25.0
    tform = rng.uniform(0.1, 1.0, n)
    tform[::5] = -rng.uniform(0, 1, len(tform[::5]))
    metals = np.zeros((n, 10))
    feh = rng.uniform(-2, 0.4, n)
    metals[:, 0], metals[:, 1] = 0.74, 0.25
    metals[:, 8] = 0.74 * 10 ** feh * SOLAR_FE_OVER_H
    with h5py.File(path, "w") as fh:
        fh.create_group("Header").attrs.update({
            "Time": 1.0, "HubbleParam": 0.6777, "Omega0": 0.307, "OmegaLambda": 0.693,
            "NumPart_ThisFile": np.array([0, 0, 0, 0, n, 0]), "NumFilesPerSnapshot": 1,
            "NumPart_Total": np.array([0, 0, 0, 0, n, 0]), "UnitLength_in_cm": 3.085678e24,
            "UnitMass_in_g": 1.989e43, "UnitVelocity_in_cm_per_s": 1e5})
        stars = fh.create_group("PartType4")
        stars["Coordinates"] = pos_mpc_h
        stars["Velocities"] = rng.normal(0, 100, (n, 3))
        stars["Masses"] = np.full(n, 1e-6)
        stars["ParticleIDs"] = np.arange(n, dtype=np.uint64) + 7
        stars["GFM_StellarFormationTime"] = tform
        stars["GFM_Metals"] = metals
        stars["GFM_Metallicity"] = np.full(n, 0.01)
    return {"pos_kpc": pos_mpc_h * 1000 / 0.6777, "tform": tform, "feh": feh}


def test_arepo_reader_excludes_wind_particles_and_reads_mpc_units(tmp_path):
    known = _write_arepo(tmp_path / "snap_127.hdf5")
    files = snapshot_files(tmp_path / "snap_127.hdf5")
    assert detect_format(files) == "arepo"
    stars = read_gadget_stars(files, "arepo")
    star = known["tform"] > 0
    assert len(stars) == star.sum() == 400
    np.testing.assert_array_equal(stars.particle_id, np.flatnonzero(star) + 7)
    np.testing.assert_allclose(stars.pos_kpc, known["pos_kpc"][star], rtol=1e-12)
    np.testing.assert_allclose(stars.mass_msun, 1e4 / 0.6777, rtol=1e-10)
    np.testing.assert_allclose(stars.feh, known["feh"][star], atol=1e-6)
    cosmo = FlatLambdaCDM(H0=67.77, Om0=0.307)
    expect = cosmo.age(0).to_value("Gyr") - cosmo.age(1 / known["tform"][star] - 1).to_value("Gyr")
    np.testing.assert_allclose(stars.age_gyr, expect, atol=1e-3)


def test_tipsy_snapshot_written_by_pynbody_reads_back_in_physical_units(tmp_path):
    pynbody = pytest.importorskip("pynbody")
    rng = np.random.default_rng(4)
    n, kpc_unit, msol_unit = 3000, 50000.0, 1.84793e16
    v_unit = np.sqrt(4.30091727e-6 * msol_unit / kpc_unit)          # km/s (G = 1)
    t_unit = kpc_unit * 3.0856776e16 / v_unit / 3.15576e16          # Gyr
    pos, vel = rng.normal(0, 5, (n, 3)), rng.normal(0, 100, (n, 3))
    age = rng.uniform(0.1, 12, n)
    snap = pynbody.new(star=n)
    snap["pos"], snap["vel"] = pos / kpc_unit, vel / v_unit
    snap["mass"] = np.full(n, 7000 / msol_unit)
    snap.s["tform"] = (13.7 - age) / t_unit
    snap.s["metals"] = 0.0134 * 10 ** rng.uniform(-1, 0.2, n)
    snap.properties["time"] = 13.7 / t_unit
    path = tmp_path / "run" / "h277.000512"
    path.parent.mkdir()
    snap.write(fmt=pynbody.snapshot.tipsy.TipsySnap, filename=str(path))
    with pytest.raises(SnapshotError, match=r"h277\.000512.*unknown units.*\.param"):
        read_snapshot(path, format="tipsy")
    (path.parent / "h277.param").write_text(f"dKpcUnit = {kpc_unit}\ndMsolUnit = {msol_unit}\n"
                                            "bComove = 0\n")
    assert detect_format([path]) == "tipsy"
    got = read_snapshot(path, host=HostSettings(center_kpc=(0.0, 0.0, 0.0)))
    frame = find_host_frame(read_tipsy(path), HostSettings(center_kpc=(0.0, 0.0, 0.0)))
    back_pos = (got.pos_kpc - frame.offset_kpc) @ frame.rotation      # simulation axes again
    back_vel = got.vel_kms @ frame.rotation
    np.testing.assert_allclose(back_pos, pos, atol=1e-4)
    # pynbody's G and kpc differ from the values above in the 5th digit
    np.testing.assert_allclose(back_vel + frame.bulk_velocity_kms, vel, rtol=5e-4, atol=1e-3)
    np.testing.assert_allclose(got.mass_msun, 7000, rtol=1e-5)
    np.testing.assert_allclose(got.age_gyr, age, atol=5e-3)
    np.testing.assert_allclose(got.feh, np.log10(snap.s["metals"] / 0.0134), atol=1e-5)


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("drop,node", [("Velocities", "/PartType4/Velocities"),
                                       ("ParticleIDs", "/PartType4/ParticleIDs")])
def test_missing_dataset_names_file_and_hdf5_path(tmp_path, drop, node):
    truth = _known_galaxy(n_disk=300, n_ring=0, n_sat=0)
    paths = _write_gizmo(tmp_path, truth, n_files=1, drop=drop)
    with pytest.raises(SnapshotError) as err:
        read_snapshot(paths[0], format="gizmo")
    assert str(paths[0]) in str(err.value) and node in str(err.value)


def test_missing_star_group_and_missing_sub_file_are_named(tmp_path):
    path = tmp_path / "nostars.hdf5"
    with h5py.File(path, "w") as fh:
        fh.create_group("Header").attrs.update({"Time": 1.0, "HubbleParam": 0.7,
                                                "NumPart_ThisFile": np.array([0, 0, 0, 0, 5, 0])})
    with pytest.raises(SnapshotError, match=r"nostars\.hdf5: no HDF5 group /PartType4"):
        read_snapshot(path, format="gizmo")
    truth = _known_galaxy(n_disk=300, n_ring=0, n_sat=0)
    paths = _write_gizmo(tmp_path, truth, n_files=2)
    with pytest.raises(SnapshotError, match="NumFilesPerSnapshot = 2 but 1 file"):
        read_snapshot(paths[0], format="gizmo")


def test_unknown_format_and_unknown_units_are_refused(tmp_path):
    truth = _known_galaxy(n_disk=300, n_ring=0, n_sat=0)
    paths = _write_gizmo(tmp_path, truth, n_files=1, UnitLength_in_cm=0.0)
    with pytest.raises(SnapshotError, match="conf upsample.format: 'fits'"):
        read_snapshot(paths[0], format="fits")
    with pytest.raises(SnapshotError, match=r"unknown units: header attribute UnitLength_in_cm"):
        read_snapshot(paths[0], format="auto")


def test_empty_selection_names_the_conf_keys(gizmo_dir):
    with pytest.raises(EmptySelectionError, match=r"upsample\.radius_kpc.*upsample\.sun\."):
        read_snapshot(gizmo_dir, radius_kpc=1.0, host=HostSettings(sun_radius_kpc=300.0))


# --------------------------------------------------------------------------------------------
# Labels


def test_labels_are_joined_by_particle_id_and_follow_the_selection(tmp_path, gizmo_dir, truth):
    origin = np.where(np.arange(len(truth["id"])) >= 23000, "accreted", "in_situ")  # satellite
    pd.DataFrame({"particle_id": truth["id"], "origin": origin}).to_csv(tmp_path / "l.csv",
                                                                         index=False)
    got = read_snapshot(gizmo_dir, radius_kpc=3.5, labels=tmp_path / "l.csv")
    by_id = dict(zip(truth["id"].tolist(), origin.tolist()))
    assert got.origin.tolist() == [by_id[i] for i in got.particle_id.tolist()]
    assert "origin" in got.to_arrow().column_names
    everything = read_snapshot(gizmo_dir, labels=tmp_path / "l.csv")
    assert (everything.origin == "accreted").sum() == 2000


@pytest.mark.parametrize("case,message", [
    ("unknown_id", r"particle_id 5 is not in the snapshot"),
    ("bad_value", r"'origin' row 0: 'ex_situ' is not one of in_situ, accreted"),
    ("unlabelled", r"no label for particle_id"),
    ("duplicate", r"labelled 2 times"),
])
def test_bad_labels_are_refused_with_the_file_named(tmp_path, gizmo_dir, truth, case, message):
    ids, origin = truth["id"].copy(), np.full(len(truth["id"]), "in_situ", dtype=object)
    if case == "unknown_id":
        ids[0] = 5
    elif case == "bad_value":
        origin[0] = "ex_situ"
    elif case == "unlabelled":
        ids, origin = ids[1:], origin[1:]
    else:
        ids[1] = ids[0]
    pd.DataFrame({"particle_id": ids, "origin": origin}).to_parquet(tmp_path / "labels.parquet")
    with pytest.raises(ValueError, match=message) as err:
        read_snapshot(gizmo_dir, labels=tmp_path / "labels.parquet")
    assert "labels.parquet" in str(err.value)


def test_job_conf_reads_a_gizmo_snapshot_with_host_and_sun_keys(gizmo_dir):
    from gaialake.conf import load_conf
    from gaialake.upsample.particles import particles_from_conf

    conf = load_conf(sets=[f"upsample.snapshot={gizmo_dir}/snapshot_600.*.hdf5",
                           "upsample.format=gizmo", "upsample.sun.azimuth_deg=30",
                           f"upsample.host.center_kpc=[{', '.join(map(str, CENTER_KPC))}]"])
    got = particles_from_conf(conf)
    assert got.radius_kpc == conf.get("upsample.radius_kpc") and len(got) > 500
    assert np.linalg.norm(got.pos_kpc - SUN_POSITION_KPC, axis=1).max() < got.radius_kpc
    assert got.columns == ["x", "y", "z", "vx", "vy", "vz", "age", "feh"]


def test_non_cosmological_gizmo_run_has_ages_in_code_time_and_no_scale_factor(tmp_path):
    path = tmp_path / "isolated_010.hdf5"
    tform = np.array([0.1, 0.5, 1.0])
    with h5py.File(path, "w") as fh:
        fh.create_group("Header").attrs.update({
            "Time": 1.5, "HubbleParam": 1.0, "Omega0": 0.0, "OmegaLambda": 0.0,
            "ComovingIntegrationOn": 0, "NumPart_ThisFile": np.array([0, 0, 0, 0, 3, 0])})
        stars = fh.create_group("PartType4")
        stars["Coordinates"], stars["Velocities"] = np.eye(3), np.eye(3) * 100
        stars["Masses"], stars["ParticleIDs"] = np.full(3, 1e-6), np.arange(3)
        stars["StellarFormationTime"], stars["Metallicity"] = tform, np.full(3, 0.0134)
    stars = read_gadget_stars([path], "gizmo")
    np.testing.assert_allclose(stars.pos_kpc, np.eye(3))
    np.testing.assert_allclose(stars.vel_kms, np.eye(3) * 100)
    # code time unit: 1 kpc / (1 km/s) = 0.9778 Gyr
    np.testing.assert_allclose(stars.age_gyr, (1.5 - tform) * 0.97779, rtol=1e-4)
    np.testing.assert_allclose(stars.feh, 0.0, atol=1e-12)     # total Z stands in for Fe

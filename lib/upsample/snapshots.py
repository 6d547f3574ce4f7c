"""Simulation snapshots in: Gizmo/FIRE-2 and Arepo/Auriga HDF5, tipsy (pynbody), format dispatch,
particle labels.

The readers return the star particles as a :class:`~gaialake.upsample.particles.ParticleSet` in
the **simulation's frame, physical units**: positions (kpc), velocities (km/s, peculiar; the Hubble
flow is not added: < 1 km/s within 10 kpc of the host), masses (M_sun), ages (Gyr), [Fe/H] (dex),
``particle_id``. :mod:`gaialake.upsample.host` then centres, aligns and places the Sun.

Unit conventions (Gadget family; Springel 2005, MNRAS 364, 1105; Hopkins 2015, MNRAS 450, 53):

==================================  ==================================================
dataset (``/PartType4/...``)        physical value
==================================  ==================================================
``Coordinates``                     x · a / h · UnitLength (default kpc)
``Velocities``                      v · sqrt(a) · UnitVelocity (default km/s)
``Masses``                          m / h · UnitMass (default 1e10 M_sun)
``StellarFormationTime`` (Gizmo)    scale factor at birth -> age = t(a_now) - t(a_birth)
``GFM_StellarFormationTime`` (Arepo) same; values <= 0 are wind particles (excluded)
==================================  ==================================================

``a`` = ``Header/Time`` and ``h`` = ``Header/HubbleParam`` in a cosmological run; unit
attributes (``UnitLength_in_cm``, ``UnitMass_in_g``, ``UnitVelocity_in_cm_per_s``) are read from
``Header``, ``Parameters`` or ``Units`` when present (Auriga writes lengths in Mpc). Cosmic time
comes from astropy's ``LambdaCDM`` with the header's ``HubbleParam``, ``Omega0`` and
``OmegaLambda`` (no radiation). A run with ``ComovingIntegrationOn = 0`` has a = 1 and formation
times in code time units (UnitLength / UnitVelocity / h).

[Fe/H] = log10(X_Fe / X_H) - log10(X_Fe / X_H)_sun with the solar photosphere of Asplund et al.
2009 (ARA&A 47, 481; Table 4, log eps_Fe = 7.50: X_Fe = 1.29e-3, X_H = 0.7381, Z = 0.0134).
X_Fe: FIRE's ``Metallicity`` column 10 (columns: Z, He, C, N, O, Ne, Mg, Si, S, Ca, Fe), Arepo's
``GFM_Metals`` column 8 (H, He, C, N, O, Ne, Mg, Si, Fe, other); X_H: 1 - Z - Y (FIRE) or column 0
(Arepo). Without an Fe abundance the total metallicity stands in, assuming a solar pattern:
[Fe/H] = log10(Z / 0.0134). A particle without iron gets :data:`FEH_FLOOR_DEX`.

Formats (``upsample.format``): ``auto`` tells Parquet and HDF5 by their magic bytes, Gizmo from
Arepo by the formation-time dataset, and takes anything else for tipsy; ``upsample.snapshot`` is
a file, a glob (``snapdir_600/snapshot_600.*.hdf5``) or a directory.
"""
from __future__ import annotations

import glob as globlib
import re
from pathlib import Path
from typing import Any

import numpy as np

from gaialake.upsample.particles import ParticleSet

__all__ = ["FORMATS", "SIMULATION_FORMATS", "ORIGINS", "SnapshotError", "EmptySelectionError",
           "snapshot_files", "detect_format", "resolve_format", "read_gadget_stars", "read_tipsy",
           "read_stars", "feh_from_mass_fractions", "age_gyr_from_scale_factor", "read_labels",
           "attach_labels", "SOLAR_FE_MASS_FRACTION", "SOLAR_H_MASS_FRACTION",
           "SOLAR_Z_MASS_FRACTION", "FEH_FLOOR_DEX"]

FORMATS = ("auto", "parquet", "hdf5", "gizmo", "arepo", "tipsy")
#: Formats whose particles are in a simulation's frame (host frame and Sun applied after reading).
SIMULATION_FORMATS = ("gizmo", "arepo", "tipsy")
#: Values of the labels' ``origin`` column.
ORIGINS = ("in_situ", "accreted")

#: Solar photospheric mass fractions (Asplund et al. 2009, Table 4): Fe, H and all metals.
SOLAR_FE_MASS_FRACTION = 1.29e-3
SOLAR_H_MASS_FRACTION = 0.7381
SOLAR_Z_MASS_FRACTION = 0.0134
#: [Fe/H] of a particle with no iron (dex).
FEH_FLOOR_DEX = -5.0

_KPC_CM = 3.085678e21
_MSUN_G = 1.989e33
_KMS_CMS = 1.0e5
_GYR_S = 3.15576e16
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_PARQUET_MAGIC = b"PAR1"
_GADGET_TIME = {"gizmo": "StellarFormationTime", "arepo": "GFM_StellarFormationTime"}


class SnapshotError(ValueError):
    """A snapshot that cannot be read: missing group or dataset, unknown format or units (the
    message names the file and the HDF5 path or the conf key)."""


class EmptySelectionError(ValueError):
    """No star particle left after a selection (the message names the conf keys that made it)."""


# --------------------------------------------------------------------------------------------
# Files and formats


def _sub_file_key(path: Path) -> tuple:
    """Sort key: ``snapshot_600.10.hdf5`` after ``snapshot_600.9.hdf5`` (numbers as numbers)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name))


def snapshot_files(spec: str | Path) -> list[Path]:
    """The files of ``upsample.snapshot``: one file, the files a glob matches, or a directory's
    HDF5 files (a directory without HDF5 files is one Parquet dataset). Sorted by sub-file number."""
    spec = str(spec)
    if any(c in spec for c in "*?["):
        files = sorted((Path(p) for p in globlib.glob(spec) if Path(p).is_file()),
                       key=_sub_file_key)
        if not files:
            raise FileNotFoundError(f"{spec}: the glob (conf upsample.snapshot) matches no file")
        return files
    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such star-particle snapshot (conf upsample.snapshot)")
    if path.is_dir():
        hdf5 = sorted((p for p in path.iterdir() if p.suffix.lower() in (".hdf5", ".h5", ".hdf")),
                      key=_sub_file_key)
        return hdf5 or [path]
    return [path]


def detect_format(files: list[Path]) -> str:
    """``parquet``, ``hdf5`` (flat columns: no ``/Header``), ``gizmo``, ``arepo`` or ``tipsy`` from
    the first file's magic bytes and, for HDF5, the star group's formation-time dataset."""
    first = files[0]
    if first.is_dir():
        return "parquet"
    with open(first, "rb") as fh:
        magic = fh.read(8)
    if magic[:4] == _PARQUET_MAGIC:
        return "parquet"
    if magic != _HDF5_MAGIC:
        return "tipsy"
    import h5py

    for path in files:
        with h5py.File(path, "r") as fh:
            if "Header" not in fh:
                return "hdf5"
            if "PartType4" not in fh:
                continue
            for fmt, name in _GADGET_TIME.items():
                if name in fh["PartType4"]:
                    return fmt
            raise SnapshotError(f"{path}: /PartType4 has neither StellarFormationTime (Gizmo) nor "
                                f"GFM_StellarFormationTime (Arepo); set conf upsample.format")
    raise EmptySelectionError(f"{first}: no file of the snapshot has star particles (/PartType4)")


def resolve_format(fmt: str, files: list[Path]) -> str:
    """The format to read ``files`` with: ``fmt`` (conf ``upsample.format``), or detected when
    ``auto``; an unknown value raises :class:`SnapshotError` naming the key."""
    if fmt not in FORMATS:
        raise SnapshotError(f"conf upsample.format: {fmt!r} is not one of {', '.join(FORMATS)}")
    return detect_format(files) if fmt == "auto" else fmt


# --------------------------------------------------------------------------------------------
# Chemistry and time


def feh_from_mass_fractions(fe: np.ndarray | None, z: np.ndarray,
                            h: np.ndarray | None = None) -> np.ndarray:
    """[Fe/H] (dex) from mass fractions: iron ``fe``, all metals ``z``, hydrogen ``h``.

    Without ``fe``: log10(z / Z_sun) (solar pattern assumed). Without ``h``: the solar X_H.
    Zero iron (or zero metals) gives :data:`FEH_FLOOR_DEX`.
    """
    if fe is None:
        ratio = np.asarray(z, dtype=np.float64) / SOLAR_Z_MASS_FRACTION
    else:
        x_h = np.full(len(fe), SOLAR_H_MASS_FRACTION) if h is None else np.asarray(h, np.float64)
        ratio = (np.asarray(fe, np.float64) / np.clip(x_h, 1e-6, None)) \
            / (SOLAR_FE_MASS_FRACTION / SOLAR_H_MASS_FRACTION)
    with np.errstate(divide="ignore"):
        feh = np.log10(np.clip(ratio, 0.0, None))
    return np.maximum(feh, FEH_FLOOR_DEX)


def _cosmology(hubble: float, omega_m: float, omega_l: float):
    from astropy.cosmology import FlatLambdaCDM, LambdaCDM

    if abs(omega_m + omega_l - 1.0) < 1e-6:
        return FlatLambdaCDM(H0=100.0 * hubble, Om0=omega_m)
    return LambdaCDM(H0=100.0 * hubble, Om0=omega_m, Ode0=omega_l)


def age_gyr_from_scale_factor(a_birth: np.ndarray, a_now: float, *, hubble: float,
                              omega_m: float, omega_l: float) -> np.ndarray:
    """Stellar ages (Gyr) at scale factor ``a_now`` of stars born at ``a_birth``, in the
    (Flat)LambdaCDM of ``hubble`` (H0 / 100 km/s/Mpc), ``omega_m``, ``omega_l``.

    Cosmic time is interpolated on 4000 log-spaced scale factors (relative error < 1e-6).
    """
    cosmo = _cosmology(hubble, omega_m, omega_l)
    a_birth = np.asarray(a_birth, dtype=np.float64)
    lo = min(float(a_birth.min()), a_now) * 0.999
    grid = np.geomspace(max(lo, 1e-4), a_now, 4000)
    t_grid = cosmo.age(1.0 / grid - 1.0).to_value("Gyr")
    return float(cosmo.age(1.0 / a_now - 1.0).to_value("Gyr")) \
        - np.interp(a_birth, grid, t_grid)


# --------------------------------------------------------------------------------------------
# Gizmo / Arepo HDF5


def _attrs(fh, path: Path) -> dict[str, Any]:
    """Header attributes, with unit attributes found in ``Parameters`` / ``Units`` merged in."""
    if "Header" not in fh:
        raise SnapshotError(f"{path}: no HDF5 group /Header (a Gizmo/Arepo snapshot has one)")
    out: dict[str, Any] = {}
    for group in ("Parameters", "Units", "Config"):
        if group in fh:
            out.update({k: v for k, v in fh[group].attrs.items()
                        if k.startswith("Unit") or k == "ComovingIntegrationOn"})
    out.update(dict(fh["Header"].attrs))
    for key in ("Time", "HubbleParam", "NumPart_ThisFile"):
        if key not in out:
            raise SnapshotError(f"{path}: /Header has no attribute {key!r}")
    return out


def _unit(attrs: dict[str, Any], key: str, default_cgs: float, path: Path) -> float:
    value = float(np.ravel(attrs.get(key, default_cgs))[0])
    if not np.isfinite(value) or value <= 0:
        raise SnapshotError(f"{path}: unknown units: header attribute {key} = {value!r} "
                            f"(must be a positive number of cgs units)")
    return value


def _dataset(fh, path: Path, name: str, count: int) -> np.ndarray:
    node = f"/PartType4/{name}"
    if node not in fh:
        raise SnapshotError(f"{path}: no HDF5 dataset {node}")
    values = fh[node][()]
    if len(values) != count:
        raise SnapshotError(f"{path}: {node} has {len(values)} rows, the header's "
                            f"NumPart_ThisFile[4] says {count}")
    return values


def _total_stars(attrs: dict[str, Any]) -> int | None:
    if "NumPart_Total" not in attrs:
        return None
    high = attrs.get("NumPart_Total_HighWord", np.zeros(6, dtype=np.int64))
    return int(attrs["NumPart_Total"][4]) + (int(high[4]) << 32)


def _gadget_feh(fh, path: Path, flavour: str, count: int) -> np.ndarray | None:
    group = fh["PartType4"]
    if flavour == "gizmo":
        if "Metallicity" not in group:
            return None
        met = np.atleast_2d(_dataset(fh, path, "Metallicity", count).T).T
        if met.shape[1] >= 11:
            return feh_from_mass_fractions(met[:, 10], met[:, 0], 1.0 - met[:, 0] - met[:, 1])
        return feh_from_mass_fractions(None, met[:, 0])
    if "GFM_Metals" in group:
        metals = _dataset(fh, path, "GFM_Metals", count)
        if metals.ndim == 2 and metals.shape[1] >= 9:
            return feh_from_mass_fractions(metals[:, 8], 1.0 - metals[:, 0] - metals[:, 1],
                                           metals[:, 0])
    if "GFM_Metallicity" in group:
        return feh_from_mass_fractions(None, _dataset(fh, path, "GFM_Metallicity", count))
    return None


def read_gadget_stars(files: list[Path], flavour: str) -> ParticleSet:
    """Star particles (``/PartType4``) of a Gizmo (``flavour="gizmo"``) or Arepo (``"arepo"``)
    snapshot of one or more files, in the simulation frame, physical units (module docstring).

    Arepo wind particles (formation time <= 0) are excluded. A file list that is not the whole
    snapshot (``NumFilesPerSnapshot``, ``NumPart_Total``) raises :class:`SnapshotError`.
    """
    import h5py

    if flavour not in _GADGET_TIME:
        raise SnapshotError(f"unknown Gadget-family format {flavour!r} (gizmo or arepo)")
    time_name = _GADGET_TIME[flavour]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("pos", "vel", "mass", "tform", "id",
                                                          "feh")}
    first_attrs: dict[str, Any] | None = None
    for path in files:
        with h5py.File(path, "r") as fh:
            attrs = _attrs(fh, path)
            first_attrs = first_attrs or attrs
            count = int(attrs["NumPart_ThisFile"][4])
            if count == 0:
                continue
            if "PartType4" not in fh:
                raise SnapshotError(f"{path}: no HDF5 group /PartType4 (the header counts "
                                    f"{count} star particles in this file)")
            parts["pos"].append(_dataset(fh, path, "Coordinates", count))
            parts["vel"].append(_dataset(fh, path, "Velocities", count))
            if "Masses" in fh["PartType4"] or not float(attrs.get("MassTable", [0] * 6)[4]):
                parts["mass"].append(_dataset(fh, path, "Masses", count))
            else:
                parts["mass"].append(np.full(count, float(attrs["MassTable"][4])))
            parts["tform"].append(_dataset(fh, path, time_name, count))
            parts["id"].append(_dataset(fh, path, "ParticleIDs", count).astype(np.int64))
            parts["feh"].append(_gadget_feh(fh, path, flavour, count))
    attrs = first_attrs
    n_files = int(np.ravel(attrs.get("NumFilesPerSnapshot", len(files)))[0])
    if n_files != len(files):
        raise SnapshotError(f"{files[0]}: the snapshot has NumFilesPerSnapshot = {n_files} but "
                            f"{len(files)} file(s) were given (conf upsample.snapshot: a glob or "
                            f"a directory reads them all)")
    got, total = sum(len(m) for m in parts["mass"]), _total_stars(attrs)
    if total is not None and got != total:
        raise SnapshotError(f"{files[0]}: read {got} star particles, the header's NumPart_Total[4] "
                            f"says {total}")
    if got == 0:
        raise EmptySelectionError(f"{files[0]}: the snapshot has no star particles (/PartType4)")
    hubble = float(np.ravel(attrs["HubbleParam"])[0]) or 1.0
    length = _unit(attrs, "UnitLength_in_cm", _KPC_CM, files[0]) / _KPC_CM
    mass_unit = _unit(attrs, "UnitMass_in_g", 1e10 * _MSUN_G, files[0]) / _MSUN_G
    vel_unit = _unit(attrs, "UnitVelocity_in_cm_per_s", _KMS_CMS, files[0]) / _KMS_CMS
    comoving = attrs.get("ComovingIntegrationOn")
    cosmological = bool(comoving) if comoving is not None else \
        float(attrs.get("Omega0", 0.0)) > 0 and 0.0 < float(attrs["Time"]) <= 1.0
    a_now = float(attrs["Time"]) if cosmological else 1.0
    tform = np.concatenate(parts["tform"]).astype(np.float64)
    keep = tform > 0 if flavour == "arepo" else np.ones(len(tform), bool)
    if not keep.any():
        raise EmptySelectionError(f"{files[0]}: every /PartType4 particle is a wind particle "
                                  f"({time_name} <= 0)")
    if cosmological:
        for key in ("Omega0", "OmegaLambda"):
            if key not in attrs:
                raise SnapshotError(f"{files[0]}: /Header has no attribute {key!r} "
                                    f"(needed for ages in a cosmological run)")
        age = age_gyr_from_scale_factor(tform[keep], a_now, hubble=hubble,
                                        omega_m=float(attrs["Omega0"]),
                                        omega_l=float(attrs["OmegaLambda"]))
    else:
        time_unit_gyr = length * _KPC_CM / (vel_unit * _KMS_CMS) / _GYR_S / hubble
        age = (float(attrs["Time"]) - tform[keep]) * time_unit_gyr
    fehs = parts["feh"]
    feh = None if any(f is None for f in fehs) else np.concatenate(fehs)[keep]
    return ParticleSet(
        np.concatenate(parts["pos"])[keep].astype(np.float64) * (a_now / hubble * length),
        np.concatenate(parts["vel"])[keep].astype(np.float64) * (np.sqrt(a_now) * vel_unit),
        np.concatenate(parts["mass"])[keep].astype(np.float64) * (mass_unit / hubble),
        age, feh, np.concatenate(parts["id"])[keep], None,
        str(files[0]) if len(files) == 1 else f"{files[0]} (+{len(files) - 1} files)")


# --------------------------------------------------------------------------------------------
# tipsy (pynbody)


def read_tipsy(path: Path) -> ParticleSet:
    """Star particles of a tipsy snapshot through pynbody, in the simulation frame, physical
    units (kpc, km/s, M_sun; age = snapshot time - ``tform``). Units come from the run's
    ``.param`` file (``dKpcUnit``, ``dMsolUnit``); without one the units are unknown and
    :class:`SnapshotError` is raised. [Fe/H] from the ``FeMassFrac`` array when present, else
    from ``metals`` (total Z, solar pattern); ``iord`` gives the ids when present."""
    try:
        import pynbody
    except ImportError as err:
        raise ImportError(f"{path}: reading tipsy snapshots needs the package pynbody "
                          f"(pinned in requirements.txt: pip install -r requirements.txt)") from err
    try:
        sim = pynbody.load(str(path), must_have_paramfile=True)
    except RuntimeError as err:
        raise SnapshotError(f"{path}: unknown units: no .param file with dKpcUnit and dMsolUnit "
                            f"in the snapshot's folder or its parent ({err})") from err
    except OSError as err:
        raise SnapshotError(f"{path}: not a snapshot pynbody can read ({err}); set conf "
                            f"upsample.format") from err
    stars = sim.star
    if len(stars) == 0:
        raise EmptySelectionError(f"{path}: the tipsy snapshot has no star particles")
    keys = set(stars.loadable_keys())
    metals = np.asarray(stars["metals"], dtype=np.float64) if "metals" in keys else None
    fe = np.asarray(stars["FeMassFrac"], np.float64) if "FeMassFrac" in keys else None
    feh = None if metals is None else feh_from_mass_fractions(fe, metals)
    return ParticleSet(np.asarray(stars["pos"].in_units("kpc"), dtype=np.float64),
                       np.asarray(stars["vel"].in_units("km s^-1"), dtype=np.float64),
                       np.asarray(stars["mass"].in_units("Msol"), dtype=np.float64),
                       np.asarray(stars["age"].in_units("Gyr"), dtype=np.float64), feh,
                       np.asarray(stars["iord"], np.int64) if "iord" in keys else None,
                       None, str(path))


def read_stars(files: list[Path], fmt: str) -> ParticleSet:
    """Star particles of a simulation snapshot (``fmt`` in :data:`SIMULATION_FORMATS`), in the
    simulation frame, physical units."""
    if fmt in ("gizmo", "arepo"):
        return read_gadget_stars(files, fmt)
    if fmt == "tipsy":
        if len(files) != 1:
            raise SnapshotError(f"{files[0]}: a tipsy snapshot is one file; conf "
                                f"upsample.snapshot matched {len(files)}")
        return read_tipsy(files[0])
    raise SnapshotError(f"conf upsample.format: {fmt!r} is not a simulation format "
                        f"({', '.join(SIMULATION_FORMATS)})")


# --------------------------------------------------------------------------------------------
# Labels


def read_labels(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(particle_id int64, origin str)`` from a Parquet or CSV file (conf ``upsample.labels``)
    with columns ``particle_id`` and ``origin`` (values :data:`ORIGINS`); duplicate ids, bad
    values and missing columns raise ``ValueError`` naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such labels file (conf upsample.labels)")
    if path.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.read_csv(path)
    else:
        import pyarrow.parquet as pq

        frame = pq.read_table(path).to_pandas()
    for column in ("particle_id", "origin"):
        if column not in frame:
            raise ValueError(f"{path}: labels have no column {column!r} "
                             f"(found: {', '.join(map(str, frame.columns))})")
    if frame["particle_id"].isna().any() or frame["particle_id"].dtype.kind not in "iu":
        raise ValueError(f"{path}: column 'particle_id' must hold integers")
    ids = frame["particle_id"].to_numpy(np.int64)
    origin = frame["origin"].astype(str).to_numpy()
    bad = ~np.isin(origin, ORIGINS)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: column 'origin' row {row}: {origin[row]!r} is not one of "
                         f"{', '.join(ORIGINS)}")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"{path}: particle_id {int(unique[counts > 1][0])} is labelled "
                         f"{int(counts[counts > 1][0])} times")
    return ids, origin


def attach_labels(particles: ParticleSet, path: str | Path) -> ParticleSet:
    """``particles`` with ``origin`` from the labels file ``path``, joined on ``particle_id``.

    Every particle needs a label and every label a particle (ids unique in the snapshot);
    otherwise ``ValueError`` names the file and the first offending id.
    """
    ids, origin = read_labels(path)
    pid = particles.particle_id
    if len(np.unique(pid)) != len(pid):
        raise ValueError(f"{particles.source}: particle ids repeat, so the labels of {path} "
                         f"cannot be joined by particle_id")
    unknown = ~np.isin(ids, pid)
    if unknown.any():
        raise ValueError(f"{path}: particle_id {int(ids[unknown][0])} is not in the snapshot "
                         f"{particles.source} ({int(unknown.sum())} unknown ids)")
    order = np.argsort(ids)
    where = np.searchsorted(ids[order], pid)
    found = (where < len(ids)) & (ids[order][np.minimum(where, len(ids) - 1)] == pid)
    if not found.all():
        raise ValueError(f"{path}: no label for particle_id {int(pid[~found][0])} of "
                         f"{particles.source} ({int((~found).sum())} unlabelled particles)")
    out = particles.subset(np.arange(len(particles)))
    out.origin = origin[order][where]
    return out

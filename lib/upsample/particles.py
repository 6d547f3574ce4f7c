"""Star-particle snapshots: a reader (Parquet, HDF5) and a default synthetic galaxy.

A snapshot is a table of star particles with Galactocentric Cartesian phase space and mass:

=============  ======  ===========================================================
column         unit    meaning
=============  ======  ===========================================================
x, y, z        kpc     Galactocentric position (astropy ``Galactocentric`` axes)
vx, vy, vz     km/s    Galactocentric velocity
mass           M_sun   particle mass (required; upsampling is mass-weighted)
age            Gyr     optional stellar age (> 0)
feh            dex     optional metallicity [Fe/H]
particle_id    --      optional int64 id (row number when absent)
origin         --      optional label: in_situ or accreted
=============  ======  ===========================================================

Parquet files hold these as columns; HDF5 files (h5py) as 1-d datasets of one group (``/`` by
default). A required column that is missing raises :class:`MissingColumnError` naming the file
and the column. :func:`read_snapshot` also reads simulation snapshots (Gizmo/FIRE, Arepo/Auriga,
tipsy: :mod:`gaialake.upsample.snapshots`), moved into the Galactocentric frame by
:mod:`gaialake.upsample.host` and cut to the sphere around the Sun.

No hydrodynamical simulation can be downloaded here, so :func:`make_galaxy` builds the project's
default particle set: star particles of a Milky-Way-like galaxy (thin and thick exponential
disks, a power-law stellar halo) with clumpy substructure (young star-forming clumps in the thin
disk and a cold stream), selected, as in GalaxyFlow (Lim et al. 2022, arXiv:2211.11765), within
``radius_kpc`` of the Sun. Particle masses follow FIRE's ~7,070 M_sun initial mass with
stellar-evolution mass loss growing with age.

Example::

    >>> from gaialake.upsample.particles import make_galaxy
    >>> p = make_galaxy(2000, seed=1)
    >>> p.features().shape
    (2000, 8)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pyarrow as pa

from gaialake.astro.frame import SUN_POSITION_X_R0_KPC, SUN_VELOCITY_KMS

if TYPE_CHECKING:
    from gaialake.upsample.host import HostSettings

__all__ = ["ParticleSet", "MissingColumnError", "read_snapshot", "write_snapshot", "make_galaxy",
           "particles_from_conf", "near_sun", "SUN_POSITION_KPC", "SUN_VELOCITY_KMS",
           "PHASE_COLUMNS", "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS"]

#: The Sun in astropy's ``Galactocentric`` frame (x = -R0, y, z kpc; vx, vy, vz km/s).
SUN_POSITION_KPC = SUN_POSITION_X_R0_KPC

PHASE_COLUMNS = ("x", "y", "z", "vx", "vy", "vz")
REQUIRED_COLUMNS = PHASE_COLUMNS + ("mass",)
OPTIONAL_COLUMNS = ("age", "feh")


class MissingColumnError(ValueError):
    """A snapshot lacks a required column (the message names the file and the column)."""


@dataclass
class ParticleSet:
    """Star particles: phase space (kpc, km/s), mass (M_sun), optional age (Gyr) and [Fe/H].

    ``radius_kpc`` (when not None) is the selection of the set: particles lie within that distance
    of ``SUN_POSITION_KPC``; upsamplers keep their samples inside it. ``origin`` (when known):
    ``in_situ`` or ``accreted`` per particle (conf ``upsample.labels``).
    """

    pos_kpc: np.ndarray
    vel_kms: np.ndarray
    mass_msun: np.ndarray
    age_gyr: np.ndarray | None = None
    feh: np.ndarray | None = None
    particle_id: np.ndarray | None = None
    radius_kpc: float | None = None
    source: str = "<memory>"
    component: np.ndarray | None = field(default=None, repr=False)
    origin: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.mass_msun)
        if self.particle_id is None:
            self.particle_id = np.arange(n, dtype=np.int64)
        for name in ("pos_kpc", "vel_kms"):
            if getattr(self, name).shape != (n, 3):
                raise ValueError(f"{self.source}: {name} has shape {getattr(self, name).shape}, "
                                 f"expected ({n}, 3)")

    def __len__(self) -> int:
        return len(self.mass_msun)

    @property
    def columns(self) -> list[str]:
        """Names of :meth:`features` columns: phase space, then age and feh when present."""
        return list(PHASE_COLUMNS) + [c for c in OPTIONAL_COLUMNS if self._optional(c) is not None]

    def _optional(self, name: str) -> np.ndarray | None:
        return self.age_gyr if name == "age" else self.feh

    def features(self) -> np.ndarray:
        """``(n, d)`` float64 array of :attr:`columns` (kpc, km/s, Gyr, dex)."""
        parts = [self.pos_kpc, self.vel_kms]
        parts += [self._optional(c)[:, None] for c in OPTIONAL_COLUMNS
                  if self._optional(c) is not None]
        return np.hstack(parts).astype(np.float64)

    def subset(self, index: np.ndarray) -> "ParticleSet":
        """The particles at ``index`` (bool mask or integer positions)."""
        pick = (lambda a: None if a is None else a[index])
        return ParticleSet(self.pos_kpc[index], self.vel_kms[index], self.mass_msun[index],
                           pick(self.age_gyr), pick(self.feh), pick(self.particle_id),
                           self.radius_kpc, self.source, pick(self.component),
                           pick(self.origin))

    def to_arrow(self) -> pa.Table:
        """The particles as a table with the snapshot columns (plus ``component`` and ``origin``
        when known)."""
        cols = {"particle_id": self.particle_id.astype(np.int64)}
        cols.update({c: self.features()[:, i] for i, c in enumerate(self.columns)})
        cols["mass"] = self.mass_msun.astype(np.float64)
        if self.component is not None:
            cols["component"] = self.component.astype(str)
        if self.origin is not None:
            cols["origin"] = self.origin.astype(str)
        return pa.table(cols)

    @classmethod
    def from_columns(cls, data: dict[str, np.ndarray], source: str = "<memory>",
                     radius_kpc: float | None = None) -> "ParticleSet":
        """Build from a mapping of column name -> 1-d array; missing required columns raise."""
        missing = [c for c in REQUIRED_COLUMNS if c not in data]
        if missing:
            raise MissingColumnError(
                f"{source}: star-particle snapshot has no column {missing[0]!r} "
                f"(required: {', '.join(REQUIRED_COLUMNS)}; missing: {', '.join(missing)}; "
                f"found: {', '.join(sorted(data)) or 'none'})")
        arr = {k: np.asarray(v) for k, v in data.items()}
        for name in REQUIRED_COLUMNS + OPTIONAL_COLUMNS:
            if name in arr and not np.all(np.isfinite(arr[name])):
                bad = int(np.flatnonzero(~np.isfinite(arr[name]))[0])
                raise ValueError(f"{source}: column {name!r} has a non-finite value at row {bad}")
        if "age" in arr and np.any(arr["age"] <= 0):
            bad = int(np.flatnonzero(arr["age"] <= 0)[0])
            raise ValueError(f"{source}: column 'age' must be > 0 Gyr (row {bad}: {arr['age'][bad]})")
        if np.any(arr["mass"] <= 0):
            bad = int(np.flatnonzero(arr["mass"] <= 0)[0])
            raise ValueError(f"{source}: column 'mass' must be > 0 M_sun (row {bad})")
        return cls(np.column_stack([arr[c] for c in ("x", "y", "z")]).astype(np.float64),
                   np.column_stack([arr[c] for c in ("vx", "vy", "vz")]).astype(np.float64),
                   arr["mass"].astype(np.float64),
                   arr["age"].astype(np.float64) if "age" in arr else None,
                   arr["feh"].astype(np.float64) if "feh" in arr else None,
                   arr["particle_id"].astype(np.int64) if "particle_id" in arr else None,
                   radius_kpc, source,
                   arr["component"].astype(str) if "component" in arr else None,
                   arr["origin"].astype(str) if "origin" in arr else None)


def _is_hdf5(path: str) -> bool:
    return Path(path).suffix.lower() in (".h5", ".hdf5", ".hdf")


def _read_flat(path: str, hdf5: bool, group: str, wanted: set[str],
               radius_kpc: float | None) -> ParticleSet:
    """The flat (Galactocentric x..vz columns) snapshot at ``path``: HDF5 datasets of ``group``,
    or Parquet (file or directory)."""
    data: dict[str, np.ndarray] = {}
    if hdf5:
        import h5py

        with h5py.File(path, "r") as fh:
            if group not in fh:
                raise MissingColumnError(f"{path}: no HDF5 group {group!r}")
            node = fh[group]
            for name in node:
                if name in wanted and isinstance(node[name], h5py.Dataset):
                    values = node[name][()]
                    data[name] = values.astype(str) if values.dtype.kind in "SO" else values
    else:
        import pyarrow.parquet as pq

        schema_names = pq.read_schema(path).names if Path(path).is_file() else \
            pq.ParquetDataset(path).schema.names
        table = pq.read_table(path, columns=[c for c in schema_names if c in wanted])
        data = {c: table.column(c).to_numpy() for c in table.column_names}
    return ParticleSet.from_columns(data, source=path, radius_kpc=radius_kpc)


def read_snapshot(path: str | Path, *, format: str = "auto", group: str = "/",
                  radius_kpc: float | None = None, columns: Sequence[str] | None = None,
                  host: HostSettings | None = None, labels: str | Path | None = None) -> ParticleSet:
    """Read a star-particle snapshot (conf ``upsample.snapshot``: a file, a glob or a directory).

    ``format`` (conf ``upsample.format``): ``parquet`` / ``hdf5`` read the flat Galactocentric
    columns above (``group``: the HDF5 group of the 1-d datasets); ``gizmo`` / ``arepo`` /
    ``tipsy`` read a simulation's star particles (:mod:`gaialake.upsample.snapshots`), move them
    into the Galactocentric frame (``host``: a :class:`~gaialake.upsample.host.HostSettings`,
    default its defaults) and keep those within ``radius_kpc`` of the Sun; ``auto`` tells them
    apart. ``columns`` limits the optional columns (default: every one present). ``labels``: a
    Parquet/CSV file of ``particle_id``, ``origin`` joined on the particle ids.
    Raises :class:`MissingColumnError` naming the file and the first missing required column,
    :class:`~gaialake.upsample.snapshots.SnapshotError` for a missing HDF5 group or dataset,
    unknown format or units, :class:`~gaialake.upsample.snapshots.EmptySelectionError` for an
    empty selection.
    """
    from gaialake.upsample import snapshots

    files = snapshots.snapshot_files(path)
    fmt = snapshots.resolve_format(format, files)
    optional = set(columns if columns is not None else OPTIONAL_COLUMNS)
    if fmt in snapshots.SIMULATION_FORMATS:
        from gaialake.upsample.host import HostSettings, find_host_frame

        raw = snapshots.read_stars(files, fmt)
        if labels is not None:
            raw = snapshots.attach_labels(raw, labels)
        frame = find_host_frame(raw, host if host is not None else HostSettings())
        particles = frame.apply(raw)
        if radius_kpc is not None:
            keep = near_sun(particles.pos_kpc, radius_kpc)
            if not keep.any():
                raise snapshots.EmptySelectionError(
                    f"{raw.source}: no star particle within conf upsample.radius_kpc = "
                    f"{radius_kpc} kpc of the Sun (placed by conf upsample.sun.radius_kpc and "
                    f"upsample.sun.azimuth_deg; host centre from upsample.host.center_kpc)")
            particles = particles.subset(keep)
        particles.radius_kpc = radius_kpc
        particles.age_gyr = particles.age_gyr if "age" in optional else None
        particles.feh = particles.feh if "feh" in optional else None
        particles.source = (f"{raw.source} ({fmt}; host centre "
                            f"{np.round(frame.center_kpc, 3).tolist()} kpc, disk plane from "
                            f"{frame.n_spin} {frame.spin_from} stars)")
        return particles
    if len(files) != 1:
        raise snapshots.SnapshotError(f"{path}: a {fmt} snapshot is one file or one Parquet "
                                      f"directory; conf upsample.snapshot matched {len(files)}")
    wanted = set(REQUIRED_COLUMNS) | optional | {"particle_id", "component", "origin"}
    particles = _read_flat(str(files[0]), fmt == "hdf5", group, wanted, radius_kpc)
    return particles if labels is None else snapshots.attach_labels(particles, labels)


def write_snapshot(particles: ParticleSet, path: str | Path, *, group: str = "/") -> str:
    """Write ``particles`` as Parquet, or HDF5 when ``path`` ends in ``.h5``/``.hdf5``."""
    path = str(path)
    table = particles.to_arrow()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if _is_hdf5(path):
        import h5py

        with h5py.File(path, "w") as fh:
            node = fh.require_group(group)
            for name in table.column_names:
                values = table.column(name).to_numpy(zero_copy_only=False)
                node.create_dataset(name, data=values.astype("S") if values.dtype == object
                                    else values)
    else:
        import pyarrow.parquet as pq

        pq.write_table(table, path)
    return path


# --------------------------------------------------------------------------------------------
# The default particle set: a synthetic galaxy near the Sun.

V_CIRC_KMS = 230.0           # flat rotation curve
_ROT = -1.0                  # astropy Galactocentric: the disk has L_z < 0 (Sun moves along +y)


def _rotation_basis(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors R-hat and phi-hat (counter-clockwise) at (x, y)."""
    phi = np.arctan2(y, x)
    return np.stack([np.cos(phi), np.sin(phi)], 1), np.stack([-np.sin(phi), np.cos(phi)], 1)


def _disk(rng: np.random.Generator, n: int, *, r_scale: float, age: np.ndarray,
          hz: np.ndarray, sig_r: np.ndarray, lag: float) -> tuple[np.ndarray, np.ndarray]:
    """Exponential disk with sech^2 vertical profile; dispersions (km/s) per star."""
    radius = rng.gamma(2.0, r_scale, n)          # surface density ~ exp(-R/Rd): p(R) ~ R exp(-R/Rd)
    phi = rng.uniform(0, 2 * np.pi, n)
    z = hz * np.arctanh(rng.uniform(-1, 1, n))   # sech^2(z/hz) profile
    x, y = radius * np.cos(phi), radius * np.sin(phi)
    r_hat, p_hat = _rotation_basis(x, y)
    v_r = rng.normal(0, sig_r)
    v_phi = V_CIRC_KMS - lag - sig_r ** 2 / (2 * V_CIRC_KMS) + rng.normal(0, 0.7 * sig_r)
    v_z = rng.normal(0, 0.55 * sig_r)
    vel = r_hat * v_r[:, None] + _ROT * p_hat * v_phi[:, None]
    return np.column_stack([x, y, z]), np.column_stack([vel, v_z])


def _thin_disk(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    age = rng.uniform(0.02, 10.0, n)
    hz = 0.07 + 0.03 * age                          # kpc: older stars sit higher
    sig_r = 12.0 + 28.0 * (age / 10.0) ** 0.4       # km/s: age-velocity dispersion relation
    pos, vel = _disk(rng, n, r_scale=2.6, age=age, hz=hz, sig_r=sig_r, lag=0.0)
    radius = np.hypot(pos[:, 0], pos[:, 1])
    feh = 0.15 - 0.07 * (radius - 8.0) - 0.03 * age + rng.normal(0, 0.12, n)
    return {"pos": pos, "vel": vel, "age": age, "feh": feh}


def _thick_disk(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    age = rng.uniform(9.0, 12.5, n)
    pos, vel = _disk(rng, n, r_scale=2.0, age=age, hz=np.full(n, 0.7), sig_r=np.full(n, 55.0),
                     lag=25.0)
    feh = rng.normal(-0.55, 0.2, n)
    return {"pos": pos, "vel": vel, "age": age, "feh": feh}


def _halo(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    # rho ~ r^-3.5, so M(>r) ~ r^-0.5: r = r0 u^-2 (r0 = 0.5 kpc), isotropic directions
    r = np.minimum(0.5 * rng.uniform(0, 1, n) ** -2.0, 200.0)
    u = rng.normal(size=(n, 3))
    pos = u / np.linalg.norm(u, axis=1, keepdims=True) * r[:, None]
    vel = rng.normal(0, [140.0, 110.0, 100.0], (n, 3))
    age = rng.uniform(11.0, 13.5, n)
    feh = rng.normal(-1.5, 0.4, n)
    return {"pos": pos, "vel": vel, "age": age, "feh": feh}


def near_sun(pos: np.ndarray, radius_kpc: float) -> np.ndarray:
    """Mask of the positions ``(n, 3)`` (kpc, Galactocentric) within ``radius_kpc`` of the Sun
    (the particle set's selection)."""
    return np.linalg.norm(pos - SUN_POSITION_KPC, axis=1) < radius_kpc


def _draw_local(rng: np.random.Generator, fn, n: int, radius_kpc: float) -> dict[str, np.ndarray]:
    """Draw ``n`` stars of a component inside the solar sphere (rejection in batches)."""
    out: list[dict[str, np.ndarray]] = []
    have, batch = 0, max(4 * n, 10_000)
    while have < n:
        draw = fn(rng, batch)
        keep = near_sun(draw["pos"], radius_kpc)
        out.append({k: v[keep] for k, v in draw.items()})
        have += int(keep.sum())
        batch = min(max(2 * batch, 10_000), 4_000_000)
    return {k: np.concatenate([o[k] for o in out])[:n] for k in out[0]}


def _clumps(rng: np.random.Generator, n: int, n_clumps: int, radius_kpc: float
            ) -> dict[str, np.ndarray]:
    """Young star-forming clumps of the thin disk: compact in position and velocity."""
    centres = _draw_local(rng, _thin_disk, n_clumps, radius_kpc * 0.9)
    weights = rng.dirichlet(np.full(n_clumps, 2.0))
    n_draw = int(1.3 * n) + 50                        # some stars spill over the edge: cut below
    which = rng.choice(n_clumps, n_draw, p=weights)
    size_kpc = rng.uniform(0.03, 0.15, n_clumps)
    disp_kms = rng.uniform(2.0, 8.0, n_clumps)
    pos = centres["pos"][which] + rng.normal(size=(n_draw, 3)) * size_kpc[which, None] * [1, 1, .5]
    r_hat, p_hat = _rotation_basis(centres["pos"][:, 0], centres["pos"][:, 1])
    v_c = _ROT * p_hat * V_CIRC_KMS + rng.normal(0, 6.0, (n_clumps, 2))
    v_centre = np.column_stack([v_c, rng.normal(0, 3.0, n_clumps)])
    vel = v_centre[which] + rng.normal(size=(n_draw, 3)) * disp_kms[which, None]
    age = rng.uniform(0.01, 0.3, n_clumps)[which] * rng.uniform(0.9, 1.1, n_draw)
    feh_centre = 0.15 - 0.07 * (np.hypot(centres["pos"][:, 0], centres["pos"][:, 1]) - 8.0)
    feh = feh_centre[which] + rng.normal(0, 0.03, n_draw)
    keep = np.flatnonzero(near_sun(pos, radius_kpc))[:n]
    if len(keep) < n:
        raise RuntimeError("clumps: not enough stars inside the selection")
    return {"pos": pos[keep], "vel": vel[keep], "age": age[keep], "feh": feh[keep]}


def _stream(rng: np.random.Generator, n: int, radius_kpc: float) -> dict[str, np.ndarray]:
    """A cold stellar stream crossing the solar sphere (a thin tube with a velocity gradient)."""
    direction = np.array([0.35, 0.55, 0.76])
    direction /= np.linalg.norm(direction)
    centre = SUN_POSITION_KPC + np.array([0.8, -0.6, 0.9])
    t = rng.uniform(-1.5 * radius_kpc, 1.5 * radius_kpc, 8 * n)
    pos = centre + t[:, None] * direction + rng.normal(0, 0.06, (8 * n, 3))
    keep = np.flatnonzero(near_sun(pos, radius_kpc))[:n]
    if len(keep) < n:
        raise RuntimeError("stream: not enough stars inside the selection")
    pos, t = pos[keep], t[keep]
    vel = np.array([-120.0, 60.0, 210.0]) + np.outer(t, [8.0, -5.0, 3.0]) \
        + rng.normal(0, 4.0, (n, 3))
    age = rng.normal(11.5, 0.3, n)
    feh = rng.normal(-1.4, 0.08, n)
    return {"pos": pos, "vel": vel, "age": age, "feh": feh}


#: Fractions of the local particles by component (the rest is the thin disk).
COMPONENT_FRACTIONS = {"thick_disk": 0.12, "halo": 0.02, "clumps": 0.08, "stream": 0.015}


def make_galaxy(n_particles: int, seed: int, *, radius_kpc: float = 3.5, n_clumps: int = 40,
                with_chemistry: bool = True, mass_msun: float = 7070.0) -> ParticleSet:
    """The default particle set: ``n_particles`` star particles within ``radius_kpc`` of the Sun.

    Components (fractions in :data:`COMPONENT_FRACTIONS`): thin disk (age 0-10 Gyr, scale height
    growing with age, radial gradient in [Fe/H]), thick disk, stellar halo, ``n_clumps`` young
    clumps (30-150 pc, 2-8 km/s) and a cold stream. Masses: ``mass_msun`` reduced by mass loss
    (up to ~35 % for the oldest particles), 5 % scatter. ``component`` records each particle's
    origin. Deterministic for a given ``seed``.
    """
    if n_particles < 100:
        raise ValueError(f"n_particles={n_particles}: need at least 100")
    rng = np.random.default_rng(seed)
    counts = {k: int(round(f * n_particles)) for k, f in COMPONENT_FRACTIONS.items()}
    counts["thin_disk"] = n_particles - sum(counts.values())
    parts = {
        "thin_disk": _draw_local(rng, _thin_disk, counts["thin_disk"], radius_kpc),
        "thick_disk": _draw_local(rng, _thick_disk, counts["thick_disk"], radius_kpc),
        "halo": _draw_local(rng, _halo, counts["halo"], radius_kpc),
        "clumps": _clumps(rng, counts["clumps"], n_clumps, radius_kpc),
        "stream": _stream(rng, counts["stream"], radius_kpc),
    }
    cat = {k: np.concatenate([p[k] for p in parts.values()]) for k in ("pos", "vel", "age", "feh")}
    component = np.concatenate([np.full(len(p["age"]), name) for name, p in parts.items()])
    order = rng.permutation(len(component))
    age = np.clip(cat["age"][order], 0.01, 13.7)
    mass = mass_msun * (1 - 0.35 * (age / 13.7) ** 0.3) * rng.normal(1.0, 0.05, len(order))
    return ParticleSet(cat["pos"][order], cat["vel"][order], mass,
                       age if with_chemistry else None,
                       cat["feh"][order] if with_chemistry else None,
                       np.arange(len(order), dtype=np.int64), radius_kpc, f"make_galaxy(seed={seed})",
                       component[order])


def particles_from_conf(conf) -> ParticleSet:
    """The particles of a :class:`gaialake.conf.Conf`: the snapshot of ``upsample.snapshot``
    (format, HDF5 group, host and Sun, labels and radius from the ``upsample`` section), or the
    default galaxy of ``upsample.galaxy`` (seeded ``conf.seed_for("upsample", "galaxy")``)
    when it is null."""
    from gaialake.upsample.host import HostSettings

    section = conf.get("upsample")
    radius = section.get("radius_kpc")
    if section.get("snapshot"):
        labels = conf.path("upsample.labels") if section.get("labels") else None
        return read_snapshot(conf.path("upsample.snapshot"), format=str(section["format"]),
                             group=str(section.get("hdf5_group", "/")),
                             radius_kpc=None if radius is None else float(radius),
                             host=HostSettings.from_conf(section), labels=labels)
    galaxy = section["galaxy"]
    return make_galaxy(int(galaxy["n_particles"]), conf.seed_for("upsample", "galaxy") % 2**32,
                       radius_kpc=float(radius), n_clumps=int(galaxy["n_clumps"]),
                       with_chemistry=bool(galaxy["with_chemistry"]))

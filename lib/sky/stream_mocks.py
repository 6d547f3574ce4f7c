"""Mock stellar streams made with gala in the sky's potential, cached once per (conf, stream).

A stream is a :class:`StreamSpec`: a progenitor today (6D, ICRS) and a mass; gala's
``MockStreamGenerator`` with the Fardal et al. (2015) ``FardalStreamDF`` integrates the progenitor
back for ``n_steps`` x ``dt_myr`` and releases tidal debris from both Lagrange points on the way
forward (release every step). The GD-1-like stream has no surviving progenitor: its "progenitor"
is a point of galstreams' GD-1 track (Ibata et al. 2021, ``GD-1-I21``) at phi1 = -35 deg whose
6D position is adjusted (Nelder-Mead on phi2, distance and pm_phi2 residuals of the orbit against
the track, :func:`fit_progenitor`) so that the mock stream follows the track.

Globular-cluster progenitors (Baumgardt & Vasiliev 2021 positions, distances, proper motions and
line-of-sight velocities): Pal 5, NGC 5466.

:func:`mock_stream` returns today's Galactocentric positions (kpc) and velocities (km/s) of
``n_members`` particles (a seeded subsample), computed once and cached on disk under
``sky.cache_dir`` keyed by the spec, the member count, the seed and the gala version.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from gaialake.log import get_logger

__all__ = ["StreamSpec", "STREAMS", "galstreams_track", "track_in_frame", "fit_progenitor",
           "mock_stream", "stream_frame"]

log = get_logger("sky.streams")


@dataclass(frozen=True)
class StreamSpec:
    """A mock stream: progenitor today (deg, kpc, mas/yr, km/s), mass (M_sun), integration.

    ``track``: a galstreams track file (``track.st.<Name>.<ref>.ecsv``) the stream is fit to
    (then ``progenitor`` is taken from the track at ``track_phi1_deg`` in ``frame``, moved by
    ``progenitor_offsets``; None: fit them with :func:`fit_progenitor`, ~20 s-3 min).
    """
    name: str
    mass_msun: float
    n_steps: int
    dt_myr: float = 1.0
    progenitor: dict = field(default_factory=dict)
    track: str | None = None
    frame: str | None = None
    track_phi1_deg: float = 0.0
    progenitor_offsets: tuple[float, ...] | None = None


STREAMS: dict[str, StreamSpec] = {
    # offsets from fit_progenitor(STREAMS["gd1"] without offsets), run 2026-11-25
    "gd1": StreamSpec("gd1", 2.0e4, 2000, track="track.st.GD-1.ibata2021.ecsv",
                      frame="GD1Koposov10", track_phi1_deg=-35.0,
                      progenitor_offsets=(0.10806626, -0.10054272, 0.00761471, 0.14246537, -0.21330918)),
    "pal5": StreamSpec("pal5", 1.5e4, 3000, progenitor=dict(
        ra=229.022, dec=-0.112, distance=21.94, pmra=-2.736, pmdec=-2.646, rv=-58.6),
        track="track.st.Pal5.ibata2021.ecsv"),
    "ngc5466": StreamSpec("ngc5466", 5.0e4, 2000, progenitor=dict(
        ra=211.364, dec=28.534, distance=16.0, pmra=-5.342, pmdec=-0.822, rv=106.9),
        track="track.st.NGC5466.ibata2021.ecsv"),
}


def stream_frame(name: str):
    """An astropy frame aligned with a stream (gala's named stream frames), by name."""
    import gala.coordinates as gc

    return getattr(gc, name)()


def galstreams_track(track: str):
    """A galstreams track as an ICRS SkyCoord (read from the package's ECSV, no catalog load)."""
    import astropy.coordinates as coord
    from astropy.table import Table

    spec = importlib.util.find_spec("galstreams")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("galstreams is not installed (pip install galstreams==1.2.1)")
    path = os.path.join(spec.submodule_search_locations[0], "tracks", track)
    if not os.path.exists(path):
        raise FileNotFoundError(f"galstreams track {track!r} not found at {path}")
    t = Table.read(path, format="ascii.ecsv")
    return coord.SkyCoord(ra=t["ra"], dec=t["dec"], distance=t["distance"],
                          pm_ra_cosdec=t["pm_ra_cosdec"], pm_dec=t["pm_dec"],
                          radial_velocity=t["radial_velocity"], frame="icrs")


def track_in_frame(track: str, frame: str) -> dict[str, np.ndarray]:
    """A galstreams track in a stream frame, sorted by phi1: phi1, phi2 (deg), distance (kpc),
    pm_phi1 (cos phi2 included), pm_phi2 (mas/yr), rv (km/s)."""
    import astropy.units as u

    s = galstreams_track(track).transform_to(stream_frame(frame))
    phi1 = s.phi1.wrap_at(180 * u.deg).deg
    o = np.argsort(phi1)
    return {"phi1": phi1[o], "phi2": s.phi2.deg[o], "distance": s.distance.kpc[o],
            "pm_phi1": s.pm_phi1_cosphi2.to_value(u.mas / u.yr)[o],
            "pm_phi2": s.pm_phi2.to_value(u.mas / u.yr)[o],
            "rv": s.radial_velocity.to_value(u.km / u.s)[o]}


def _progenitor_coord(spec: StreamSpec, offsets: np.ndarray | None = None):
    import astropy.coordinates as coord
    import astropy.units as u

    if spec.progenitor:
        p = spec.progenitor
        return coord.SkyCoord(ra=p["ra"] * u.deg, dec=p["dec"] * u.deg, distance=p["distance"] * u.kpc,
                              pm_ra_cosdec=p["pmra"] * u.mas / u.yr, pm_dec=p["pmdec"] * u.mas / u.yr,
                              radial_velocity=p["rv"] * u.km / u.s, frame="icrs")
    T = track_in_frame(spec.track, spec.frame)
    i = int(np.argmin(np.abs(T["phi1"] - spec.track_phi1_deg)))
    d = np.zeros(5) if offsets is None else offsets
    return coord.SkyCoord(
        phi1=T["phi1"][i] * u.deg, phi2=(T["phi2"][i] + d[0]) * u.deg,
        distance=(T["distance"][i] + d[1]) * u.kpc,
        pm_phi1_cosphi2=(T["pm_phi1"][i] + d[2]) * u.mas / u.yr,
        pm_phi2=(T["pm_phi2"][i] + d[3]) * u.mas / u.yr,
        radial_velocity=(T["rv"][i] + d[4]) * u.km / u.s, frame=stream_frame(spec.frame))


def _w0(sky_coord):
    import gala.dynamics as gd

    from gaialake.sky.kinematics import galactocentric_frame

    return gd.PhaseSpacePosition(sky_coord.transform_to(galactocentric_frame()).data)


def fit_progenitor(spec: StreamSpec, max_evals: int = 400) -> np.ndarray:
    """Offsets (dphi2 deg, ddist kpc, dpm_phi1, dpm_phi2 mas/yr, drv km/s) of the progenitor from
    the track point that make its orbit (+-150 Myr) follow the track in phi2, distance, pm_phi2."""
    import astropy.units as u
    import gala.potential as gp
    from scipy.optimize import minimize

    from gaialake.sky.kinematics import galactocentric_frame, potential

    T = track_in_frame(spec.track, spec.frame)
    H = gp.Hamiltonian(potential())
    frame, galcen = stream_frame(spec.frame), galactocentric_frame()

    def loss(p: np.ndarray) -> float:
        w0 = _w0(_progenitor_coord(spec, p))
        total = 0.0
        for dt in (1.0, -1.0):
            orbit = H.integrate_orbit(w0, dt=dt * u.Myr, n_steps=150)
            s = orbit.to_coord_frame(frame, galactocentric_frame=galcen)
            p1 = s.phi1.wrap_at(180 * u.deg).deg
            m = (p1 > T["phi1"][0]) & (p1 < T["phi1"][-1])
            total += np.sum(((s.phi2.deg[m] - np.interp(p1[m], T["phi1"], T["phi2"])) / 0.1) ** 2)
            total += np.sum(((s.distance.kpc[m] - np.interp(p1[m], T["phi1"], T["distance"])) / 0.3) ** 2)
            total += np.sum(((s.pm_phi2.value[m] - np.interp(p1[m], T["phi1"], T["pm_phi2"])) / 0.1) ** 2)
        return float(total)

    res = minimize(loss, np.zeros(5), method="Nelder-Mead",
                   options=dict(maxfev=max_evals, xatol=1e-3, fatol=1e-2))
    return res.x


def _cache_key(spec: StreamSpec, n_members: int, seed: int) -> str:
    from importlib.metadata import version

    text = json.dumps({"spec": asdict(spec), "n": n_members, "seed": seed,
                       "gala": version("gala"), "potential": "MilkyWayPotential2022", "v": 1},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mock_stream(spec: StreamSpec, n_members: int, seed: int, cache_dir: str | None = None,
                ) -> dict[str, np.ndarray]:
    """Galactocentric ``xyz`` (3, n) kpc and ``vxyz`` (3, n) km/s of ``n_members`` stream stars
    today, plus the progenitor's ``prog_xyz``/``prog_vxyz`` (cached in ``cache_dir``)."""
    path = None
    if cache_dir:
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, f"stream_{spec.name}_{_cache_key(spec, n_members, seed)}.npz")
        if os.path.exists(path):
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
    import astropy.units as u
    import gala.dynamics as gd
    import gala.potential as gp

    from gaialake.sky.kinematics import potential

    if spec.progenitor:
        offsets = np.zeros(5)
    elif spec.progenitor_offsets is not None:
        offsets = np.asarray(spec.progenitor_offsets, dtype=np.float64)
    else:
        offsets = fit_progenitor(spec)
    w0 = _w0(_progenitor_coord(spec, offsets))
    per_step = max(1, int(np.ceil(n_members / (2.0 * spec.n_steps))))
    rng = np.random.default_rng(seed)
    df = gd.FardalStreamDF(gala_modified=True, random_state=np.random.default_rng(seed + 1))
    gen = gd.MockStreamGenerator(df, gp.Hamiltonian(potential()))
    stream, prog = gen.run(w0, spec.mass_msun * u.Msun, dt=-spec.dt_myr * u.Myr,
                           n_steps=spec.n_steps, release_every=1, n_particles=per_step)
    xyz = stream.xyz.to_value(u.kpc)
    vxyz = stream.v_xyz.to_value(u.km / u.s)
    keep = np.sort(rng.choice(xyz.shape[1], size=min(n_members, xyz.shape[1]), replace=False))
    out = {"xyz": xyz[:, keep], "vxyz": vxyz[:, keep],
           "prog_xyz": prog.xyz.to_value(u.kpc).reshape(3), "prog_vxyz":
           prog.v_xyz.to_value(u.km / u.s).reshape(3), "offsets": offsets}
    if path:
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, **out)
        os.replace(tmp, path)
        log.info("mock stream %s: %d members, cached at %s", spec.name, n_members, path)
    return out

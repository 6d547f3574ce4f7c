"""The host galaxy's frame: a simulation's star particles moved into gaialake's Galactocentric axes.

Steps (:func:`find_host_frame`, applied by :meth:`HostFrame.apply`):

1. **centre**: ``HostSettings.center_kpc`` when given, else the shrinking-sphere centre of the
   star particles (Power et al. 2003, MNRAS 338, 14: the mass-weighted centre of a sphere whose
   radius shrinks by 5 % a step until fewer than 1000 particles, or 0.5 %, remain);
2. **bulk velocity**: the mass-weighted mean velocity of the stars within ``aperture_kpc``;
3. **disk plane**: the angular momentum of the young stars (age < ``young_gyr``) within
   ``aperture_kpc``; with fewer than :data:`MIN_SPIN_STARS` young stars (or no ages), of all stars
   within it. The disk's angular momentum is turned to -z, so the disk rotates as the Milky Way in
   astropy's ``Galactocentric`` frame (towards +y at the Sun, L_z < 0);
4. **the Sun**: the point at cylindrical radius ``sun_radius_kpc`` and azimuth ``sun_azimuth_deg``
   (counted counter-clockwise about +z, the Galactic north, i.e. against the rotation, from the
   projection of the simulation's x axis on the disk plane; its y axis when x is near the spin
   axis) and height z_sun is turned to
   the -x axis and moved onto :data:`~gaialake.upsample.particles.SUN_POSITION_KPC`. With the
   default radius (that of ``SUN_POSITION_KPC``: R0 of :mod:`gaialake.astro.frame`) this is a
   pure rotation and the host centre is the origin; another radius shifts the host centre to
   x = radius - R0 so that the rest of gaialake (selection sphere, observation) sees the Sun where
   its one set of solar parameters puts it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from gaialake.upsample.particles import SUN_POSITION_KPC, ParticleSet

__all__ = ["HostSettings", "HostFrame", "shrinking_sphere_center", "find_host_frame",
           "MIN_SPIN_STARS"]

#: Fewest young stars whose angular momentum sets the disk plane (else all stars are used).
MIN_SPIN_STARS = 100


@dataclass(frozen=True)
class HostSettings:
    """Conf ``upsample.host`` and ``upsample.sun``: centre (kpc, simulation frame, physical; None:
    shrinking sphere), young-star age limit (Gyr), aperture (kpc) for bulk velocity and spin,
    the Sun's cylindrical radius (kpc; None: that of ``SUN_POSITION_KPC``) and azimuth (deg)."""

    center_kpc: tuple[float, float, float] | None = None
    young_gyr: float = 1.0
    aperture_kpc: float = 10.0
    sun_radius_kpc: float | None = None
    sun_azimuth_deg: float = 0.0

    @classmethod
    def from_conf(cls, upsample: Mapping[str, Any]) -> "HostSettings":
        """From the conf section ``upsample`` (keys ``host.*`` and ``sun.*``); bad values raise
        ``ValueError`` naming the key."""
        host, sun = dict(upsample.get("host") or {}), dict(upsample.get("sun") or {})
        center = host.get("center_kpc")
        if center is not None:
            if not isinstance(center, (list, tuple)) or len(center) != 3 \
                    or not all(isinstance(c, (int, float)) for c in center):
                raise ValueError(f"conf upsample.host.center_kpc: {center!r} is not a list of "
                                 f"3 numbers (kpc) or null")
            center = tuple(float(c) for c in center)
        out = cls(center, float(host.get("young_gyr", cls.young_gyr)),
                  float(host.get("aperture_kpc", cls.aperture_kpc)),
                  None if sun.get("radius_kpc") is None else float(sun["radius_kpc"]),
                  float(sun.get("azimuth_deg", cls.sun_azimuth_deg)))
        for key, value in (("upsample.host.young_gyr", out.young_gyr),
                           ("upsample.host.aperture_kpc", out.aperture_kpc),
                           ("upsample.sun.radius_kpc", out.sun_radius_kpc)):
            if value is not None and not value > 0:
                raise ValueError(f"conf {key}: {value!r} must be > 0")
        return out


@dataclass(frozen=True)
class HostFrame:
    """simulation frame -> Galactocentric: ``x_gc = rotation @ (x - center_kpc) + offset_kpc``,
    ``v_gc = rotation @ (v - bulk_velocity_kms)``. ``n_spin``: stars that set the disk plane,
    ``spin_from``: ``young`` or ``all``."""

    center_kpc: np.ndarray
    bulk_velocity_kms: np.ndarray
    rotation: np.ndarray
    offset_kpc: np.ndarray
    n_spin: int
    spin_from: str

    def transform(self, pos_kpc: np.ndarray, vel_kms: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Galactocentric positions (kpc) and velocities (km/s) of ``(n, 3)`` simulation-frame
        ones."""
        return ((pos_kpc - self.center_kpc) @ self.rotation.T + self.offset_kpc,
                (vel_kms - self.bulk_velocity_kms) @ self.rotation.T)

    def apply(self, particles: ParticleSet) -> ParticleSet:
        """``particles`` (simulation frame) in Galactocentric axes; other columns as they are."""
        out = particles.subset(np.arange(len(particles)))
        out.pos_kpc, out.vel_kms = self.transform(particles.pos_kpc, particles.vel_kms)
        return out


def _shrink(pos_kpc: np.ndarray, mass: np.ndarray, center: np.ndarray, radius: float,
            floor: int, shrink: float) -> tuple[np.ndarray, float]:
    """Shrink the sphere (``center``, ``radius``) over ``pos_kpc`` until fewer than ``floor``
    particles would remain; the last centre and radius holding at least ``floor``."""
    inside = np.arange(len(mass))
    while True:
        rel = pos_kpc[inside] - center
        dist2 = np.einsum("ij,ij->i", rel, rel)
        # far outliers (an empty outer shell) are dropped 5 % of the particles at a time
        nxt_radius = min(shrink * radius, shrink * float(np.sqrt(np.quantile(dist2, 0.95))))
        nxt = inside[dist2 < nxt_radius * nxt_radius]
        if len(nxt) < floor:
            return center, radius
        inside, radius = nxt, nxt_radius
        center = np.average(pos_kpc[inside], axis=0, weights=mass[inside])


def shrinking_sphere_center(pos_kpc: np.ndarray, mass: np.ndarray, *, shrink: float = 0.95,
                            min_particles: int = 1000, min_fraction: float = 0.005,
                            coarse_particles: int = 200_000) -> np.ndarray:
    """Shrinking-sphere centre (kpc) of the particles ``pos_kpc`` ``(n, 3)`` with ``mass``:
    start from the mass-weighted centre, recentre on the particles inside a radius ``shrink``
    times the last one (or times the 95th percentile distance, when smaller: outliers do not
    cost hundreds of steps), until fewer than ``max(min_particles, min_fraction * n)`` remain.
    Above ``coarse_particles`` the outer steps run on every k-th particle (deterministic)."""
    n = len(mass)
    floor = max(min(min_particles, n), int(min_fraction * n), 1)
    center = np.average(pos_kpc, axis=0, weights=mass)
    step = max(1, n // coarse_particles)
    if step > 1:                         # coarse pass until ~20 floors of full particles remain
        center, radius = _shrink(pos_kpc[::step], mass[::step], center, np.inf,
                                 max(20 * floor // step, 50), shrink)
        rel = pos_kpc - center
        near = np.einsum("ij,ij->i", rel, rel) < radius * radius
        pos_kpc, mass = pos_kpc[near], mass[near]
        center = np.average(pos_kpc, axis=0, weights=mass)
    return _shrink(pos_kpc, mass, center, np.inf, floor, shrink)[0]


def _disk_basis(spin: np.ndarray) -> np.ndarray:
    """Rows e_x, e_y, e_z: e_z = -spin-hat, e_x the simulation's x (or y) axis projected on the
    plane, e_y = e_z x e_x (right-handed)."""
    e_z = -spin / np.linalg.norm(spin)
    axis = np.eye(3)[0] if np.linalg.norm(np.cross(e_z, np.eye(3)[0])) > 0.1 else np.eye(3)[1]
    e_x = axis - e_z * (axis @ e_z)
    e_x /= np.linalg.norm(e_x)
    return np.stack([e_x, np.cross(e_z, e_x), e_z])


def find_host_frame(particles: ParticleSet, settings: HostSettings) -> HostFrame:
    """The :class:`HostFrame` of ``particles`` (simulation frame, physical units) under
    ``settings`` (module docstring). Raises ``ValueError`` when no star lies within
    ``upsample.host.aperture_kpc`` of the centre."""
    pos, vel, mass = particles.pos_kpc, particles.vel_kms, particles.mass_msun
    center = np.asarray(settings.center_kpc, dtype=np.float64) if settings.center_kpc \
        is not None else shrinking_sphere_center(pos, mass)
    rel = pos - center
    near = np.linalg.norm(rel, axis=1) < settings.aperture_kpc
    if not near.any():
        raise ValueError(f"{particles.source}: no star particle within conf "
                         f"upsample.host.aperture_kpc = {settings.aperture_kpc} kpc of the host "
                         f"centre {np.round(center, 3).tolist()} kpc (conf upsample.host.center_kpc)")
    bulk = np.average(vel[near], axis=0, weights=mass[near])
    spin_set, spin_from = near, "all"
    if particles.age_gyr is not None:
        young = near & (particles.age_gyr < settings.young_gyr)
        if young.sum() >= MIN_SPIN_STARS:
            spin_set, spin_from = young, "young"
    spin = (mass[spin_set, None] * np.cross(rel[spin_set], vel[spin_set] - bulk)).sum(axis=0)
    basis = _disk_basis(spin)
    phi = np.deg2rad(settings.sun_azimuth_deg)
    turn = np.pi - phi                       # the Sun's azimuth goes to 180 deg (the -x axis)
    rot_z = np.array([[np.cos(turn), -np.sin(turn), 0.0], [np.sin(turn), np.cos(turn), 0.0],
                      [0.0, 0.0, 1.0]])
    sun_r0 = float(np.hypot(SUN_POSITION_KPC[0], SUN_POSITION_KPC[1]))
    radius = sun_r0 if settings.sun_radius_kpc is None else settings.sun_radius_kpc
    offset = np.array([radius - sun_r0, 0.0, 0.0])
    return HostFrame(center, bulk, rot_z @ basis, offset, int(spin_set.sum()), spin_from)

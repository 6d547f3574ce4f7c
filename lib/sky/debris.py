"""Accreted components: Gaia-Enceladus-like, Nyx-like and Sequoia-like halo debris, and a
prograde, low-eccentricity accreted disk.

Two galaxies with different accretion histories (for the accreted-star classifier's transfer
test: train on one, test on the other). Velocities are spherical (v_r, v_theta, v_phi) in km/s,
``v_phi`` > 0 prograde (co-rotating with the disk); anisotropy
beta = 1 - (sigma_theta^2 + sigma_phi^2) / (2 sigma_r^2).

Galaxy ``A`` (one dominant, radial merger, as in the Milky Way; Belokurov et al. 2018,
Helmi et al. 2018; Nyx after Necib et al. 2020):

==========  ===========  ============================  =====================  ======
component   local frac.  sigma_r, sigma_th, sigma_phi   mean v_r, v_phi        beta
==========  ===========  ============================  =====================  ======
gse         0.50         180, 55, 55                    0, 10                 0.91
nyx         0.10         55, 50, 45                     +-140 (bimodal), 140  --
acc. disk   0.30         80, 60, 60 (R, phi, z)         0, Jeans lag (~160)   --
==========  ===========  ============================  =====================  ======

Galaxy ``B`` (a less radial main merger, a retrograde one, a weaker Nyx; different profiles):

==========  ===========  ============================  =====================  ======
gse         0.25         160, 80, 80                    0, 0                  0.75
sequoia     0.12         120, 80, 70                    0, -150               0.62
nyx         0.08         50, 45, 40                     +-120 (bimodal), 120  --
acc. disk   0.20         70, 55, 50 (R, phi, z)         0, Jeans lag (~170)   --
==========  ===========  ============================  =====================  ======

The accreted disk (``accreted_disk``) is the debris of a satellite dragged into the disk plane by
dynamical friction before it dissolved (Abadi et al. 2003, ApJ 597, 21; Read et al. 2008,
MNRAS 389, 1041): disk-shaped (R_d = 3.5 kpc, h_z = 1.4 kpc in A; 3.0, 1.2 in B), prograde and
on low-eccentricity orbits (the ``disk`` kinematic model: Gaussian (v_R, v_phi, v_z) about the
Jeans rotation), a little hotter and slower than the thick disk. Its Toomre speeds are the thick
disk's, so a speed cut misses it: with the in-situ splash (:func:`gaialake.sky.galaxy.splash`),
which has halo-like speeds, the Toomre cut is far from perfect in both galaxies.

The local fraction is of :data:`~gaialake.sky.galaxy.LOCAL_HALO_DENSITY`; the in-situ halo takes
the rest of the halo (0.40 in A, 0.55 in B); the accreted disk, a disk population, comes on top.
All accreted debris uses the metal-poor isochrone ([Fe/H] = -1.3 for GSE, -1.6 for Sequoia, -1.0
for Nyx and the accreted disk).
"""
from __future__ import annotations

from gaialake.sky.galaxy import LOCAL_HALO_DENSITY, Component

__all__ = ["accreted_components", "anisotropy_beta"]


def _gse(frac: float, sig: tuple[float, float, float], v_phi: float, alpha: float, r_b: float,
         alpha_out: float, q: float) -> Component:
    return Component(
        "gse", "accreted", "spheroid", frac * LOCAL_HALO_DENSITY,
        dict(alpha=alpha, q=q, r_c=1.0, r_b=r_b, alpha_out=alpha_out),
        "spheroid", dict(v_r=0.0, v_phi=v_phi, sigma_r=sig[0], sigma_theta=sig[1], sigma_phi=sig[2]),
        feh=-1.3)


def _nyx(frac: float, v: float, sig: tuple[float, float, float]) -> Component:
    return Component(
        "nyx", "accreted", "disk", frac * LOCAL_HALO_DENSITY, dict(R_d=3.5, h_z=1.2),
        "spheroid", dict(v_r=v, v_r_bimodal=True, v_phi=v, sigma_r=sig[0], sigma_theta=sig[1],
                         sigma_phi=sig[2]),
        feh=-1.0)


def _accreted_disk(frac: float, sig: tuple[float, float, float], R_d: float,
                   h_z: float) -> Component:
    return Component(
        "accreted_disk", "accreted", "disk", frac * LOCAL_HALO_DENSITY, dict(R_d=R_d, h_z=h_z),
        "disk", dict(sigma_R=sig[0], sigma_phi=sig[1], sigma_z=sig[2]), feh=-1.0)


def accreted_components(galaxy: str) -> list[Component]:
    """The accreted components of galaxy ``A`` or ``B`` (see the module table)."""
    if galaxy == "A":
        return [_gse(0.50, (180.0, 55.0, 55.0), 10.0, alpha=2.5, r_b=25.0, alpha_out=4.5, q=0.8),
                _nyx(0.10, 140.0, (55.0, 50.0, 45.0)),
                _accreted_disk(0.30, (80.0, 60.0, 60.0), R_d=3.5, h_z=1.4)]
    if galaxy == "B":
        sequoia = Component(
            "sequoia", "accreted", "spheroid", 0.12 * LOCAL_HALO_DENSITY,
            dict(alpha=3.0, q=0.9, r_c=1.0),
            "spheroid", dict(v_r=0.0, v_phi=-150.0, sigma_r=120.0, sigma_theta=80.0, sigma_phi=70.0),
            feh=-1.6)
        return [_gse(0.25, (160.0, 80.0, 80.0), 0.0, alpha=3.0, r_b=15.0, alpha_out=4.0, q=0.7),
                sequoia, _nyx(0.08, 120.0, (50.0, 45.0, 40.0)),
                _accreted_disk(0.20, (70.0, 55.0, 50.0), R_d=3.0, h_z=1.2)]
    raise ValueError(f"sky.galaxy must be 'A' or 'B', got {galaxy!r}")


def anisotropy_beta(sigma_r: float, sigma_theta: float, sigma_phi: float) -> float:
    """Velocity anisotropy beta = 1 - (sigma_theta^2 + sigma_phi^2) / (2 sigma_r^2)."""
    return 1.0 - (sigma_theta**2 + sigma_phi**2) / (2.0 * sigma_r**2)

"""The Sun in the Galactocentric frame: the one set of solar parameters of gaialake.

Values: astropy's ``Galactocentric`` "v4.0" defaults (``astropy.coordinates.
galactocentric_frame_defaults``), written out so that they do not change with astropy:

- Galactic centre at ICRS (ra, dec) = (266.4051, -28.936175) deg (Reid & Brunthaler 2004,
  ApJ 616, 872);
- Sun-centre distance R0 = 8.122 kpc (GRAVITY Collaboration 2018, A&A 615, L15);
- height of the Sun above the plane z_sun = 20.8 pc (Bennett & Bovy 2019, MNRAS 482, 1417);
- solar velocity (U, V + v_c, W) = (12.9, 245.6, 7.78) km/s (Drimmel & Poggio 2018, RNAAS 2,
  210; Reid & Brunthaler 2004; GRAVITY Collaboration 2018);
- roll 0 deg.

In this frame the Sun is at x = -sqrt(R0^2 - z_sun^2), y = 0, z = z_sun (kpc) and the disk
rotates towards +y at the Sun (L_z < 0 for disk stars).

:class:`SolarParameters` holds a (configurable) set, :func:`galactocentric_frame` builds
astropy's frame from one (default: the values above).

>>> round(float(SUN_POSITION_KPC[0]), 4), float(SUN_POSITION_KPC[2])
(-8.122, 0.0208)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

__all__ = ["GALCEN_RA_DEG", "GALCEN_DEC_DEG", "R0_KPC", "Z_SUN_PC", "Z_SUN_KPC", "V_SUN_KMS",
           "ROLL_DEG", "SOLAR_PARAMETERS", "SolarParameters", "galactocentric_frame",
           "SUN_POSITION_KPC", "SUN_POSITION_X_R0_KPC", "SUN_VELOCITY_KMS"]

#: ICRS right ascension and declination of the Galactic centre (deg).
GALCEN_RA_DEG = 266.4051
GALCEN_DEC_DEG = -28.936175
#: Distance of the Sun from the Galactic centre (kpc).
R0_KPC = 8.122
#: Height of the Sun above the Galactic plane (pc; in kpc below).
Z_SUN_PC = 20.8
Z_SUN_KPC = Z_SUN_PC / 1000.0
#: Galactocentric Cartesian velocity of the Sun (km/s).
V_SUN_KMS = (12.9, 245.6, 7.78)
#: Roll of the frame about the Sun-centre line (deg).
ROLL_DEG = 0.0

#: The solar parameters as a JSON-ready dict (logged with the models built in this frame).
SOLAR_PARAMETERS = {
    "galcen_ra_deg": GALCEN_RA_DEG, "galcen_dec_deg": GALCEN_DEC_DEG,
    "galcen_distance_kpc": R0_KPC, "z_sun_pc": Z_SUN_PC, "galcen_v_sun_kms": V_SUN_KMS,
    "roll_deg": ROLL_DEG,
}


@dataclass(frozen=True)
class SolarParameters:
    """The Sun in the Galactocentric frame: R0 (kpc), z_sun (pc), v_sun (km/s); defaults the
    module's values, a conf section may override them."""

    galcen_distance_kpc: float = R0_KPC
    z_sun_pc: float = Z_SUN_PC
    v_sun_kms: tuple[float, float, float] = V_SUN_KMS

    @classmethod
    def from_conf(cls, section: Mapping[str, Any] | None) -> "SolarParameters":
        """From a conf mapping with keys galcen_distance_kpc, z_sun_pc, v_sun_kms (missing
        keys: the defaults)."""
        section = dict(section or {})
        return cls(float(section.get("galcen_distance_kpc", R0_KPC)),
                   float(section.get("z_sun_pc", Z_SUN_PC)),
                   tuple(float(v) for v in section.get("v_sun_kms", V_SUN_KMS)))

    @property
    def position_kpc(self) -> np.ndarray:
        """The Sun's Galactocentric Cartesian position (kpc): (-sqrt(R0^2 - z^2), 0, z)."""
        z = self.z_sun_pc / 1000.0
        return np.array([-np.sqrt(self.galcen_distance_kpc**2 - z**2), 0.0, z])


def galactocentric_frame(solar: SolarParameters | None = None):
    """astropy's ``Galactocentric`` frame for ``solar`` (None: the module's values), with the
    Galactic centre's ICRS position and the roll of :data:`SOLAR_PARAMETERS`."""
    import astropy.coordinates as coord
    import astropy.units as u

    solar = solar or SolarParameters()
    return coord.Galactocentric(
        galcen_coord=coord.ICRS(ra=GALCEN_RA_DEG * u.deg, dec=GALCEN_DEC_DEG * u.deg),
        galcen_distance=solar.galcen_distance_kpc * u.kpc, z_sun=solar.z_sun_pc * u.pc,
        galcen_v_sun=coord.CartesianDifferential(list(solar.v_sun_kms) * u.km / u.s),
        roll=ROLL_DEG * u.deg)


#: The Sun's Galactocentric position (kpc), exact in the frame: x = -sqrt(R0^2 - z_sun^2).
SUN_POSITION_KPC = SolarParameters().position_kpc
SUN_POSITION_KPC.flags.writeable = False
#: The Sun's position with x = -R0 (kpc), 0.03 pc from the exact one: the centre of the
#: particle selections of the upsampling and the default of the density slab mock.
SUN_POSITION_X_R0_KPC = np.array([-R0_KPC, 0.0, Z_SUN_KPC])
SUN_POSITION_X_R0_KPC.flags.writeable = False
#: The Sun's Galactocentric velocity (km/s).
SUN_VELOCITY_KMS = np.array(V_SUN_KMS)
SUN_VELOCITY_KMS.flags.writeable = False

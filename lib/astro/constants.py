"""Physical constants in the units of the Galactic dynamics code: kpc, km/s, M_sun.

>>> round(G_KPC_KMS2_MSUN * 1e10 / 8.0, 3)  # (km/s)^2 of G M / r for 1e10 M_sun at 8 kpc
5376.147
"""
from __future__ import annotations

__all__ = ["G_KPC_KMS2_MSUN", "MSUN_PC3_IN_KPC3"]

#: Gravitational constant in kpc (km/s)^2 / M_sun (astropy's CODATA 2018 G).
G_KPC_KMS2_MSUN = 4.300917270e-6
#: 1 M_sun/pc^3 in M_sun/kpc^3.
MSUN_PC3_IN_KPC3 = 1.0e9

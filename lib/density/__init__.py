"""Dark-matter density from the collisionless Boltzmann equation (issue 10).

Modules, one job each:

- :mod:`gaialake.density.mocks`: equilibrium systems with exact truth (Plummer sphere with its
  isotropic DF; an isothermal-tracer slab in a known vertical potential, disk-like).
- :mod:`gaialake.density.selection`: Galactocentric Cartesian phase space from Gaia observables
  (astropy, documented solar parameters), selection within a radius of the Sun, completeness.
- :mod:`gaialake.density.boltzmann`: derivatives of log f, accelerations by least squares,
  density from the divergence, and from a neural potential fitted to the CBE.
- :mod:`gaialake.density.baryons`: a local baryon budget (McKee et al. 2015) and rho_DM at the Sun.

Units: kpc, km/s, M_sun; densities in M_sun/pc^3 unless a name says otherwise.
"""
from __future__ import annotations

#: Gravitational constant in kpc (km/s)^2 / M_sun.
G_KPC_KMS2_MSUN = 4.300917270e-6
#: 1 M_sun/pc^3 in M_sun/kpc^3.
MSUN_PC3_IN_KPC3 = 1.0e9

__all__ = ["G_KPC_KMS2_MSUN", "MSUN_PC3_IN_KPC3"]

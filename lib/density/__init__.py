"""Dark-matter density from the collisionless Boltzmann equation (CBE).

Modules, one job each:

- :mod:`gaialake.density.mocks`: equilibrium systems with exact truth (Plummer sphere with its
  isotropic DF; an isothermal-tracer slab in a known vertical potential, disk-like).
- :mod:`gaialake.density.selection`: Galactocentric Cartesian phase space from Gaia observables
  (astropy, the solar parameters of :mod:`gaialake.astro.frame`), selection within a radius of
  the Sun, completeness.
- :mod:`gaialake.density.validation`: a mock observed and selected like Gaia 6D data (the
  validation sample).
- :mod:`gaialake.density.mock_catalog`: a mock observed like Gaia DR3 (errors, an RV subset
  falling with G) for ``gaialake density_mock``'s bulk files, and its truth.
- :mod:`gaialake.density.catalog`: the 6D stars of a DR3-format catalog, the RV selection
  function estimated from it.
- :mod:`gaialake.density.ensemble`: the Poisson-bootstrap ensemble of phase-space flows
  (:mod:`gaialake.models.phase_space`), fed from memory or through Petastorm.
- :mod:`gaialake.density.boltzmann`: derivatives of log f, accelerations by least squares,
  density from the divergence.
- :mod:`gaialake.density.potential`: a smooth potential fitted to the CBE (B-splines, or the
  MLP of :mod:`gaialake.models.mlp`).
- :mod:`gaialake.density.measure`: grids, star counts, the estimators per member, errors
  against the truth.
- :mod:`gaialake.density.baryons`: a local baryon budget (McKee et al. 2015) and rho_DM at the Sun.
- :mod:`gaialake.density.density_figures`: recovered vs true density figures.
- :mod:`gaialake.density.workflow`: the steps of the ``gaialake density`` job from its conf.

Units: kpc, km/s, M_sun; densities in M_sun/pc^3 unless a name says otherwise.
"""
from __future__ import annotations

from gaialake.astro.constants import G_KPC_KMS2_MSUN, MSUN_PC3_IN_KPC3

__all__ = ["G_KPC_KMS2_MSUN", "MSUN_PC3_IN_KPC3"]

"""Accreted stars (Ostdiek et al. 2020, arXiv 1907.06652; Necib et al. 2020, 1907.07681).

- :mod:`~gaialake.accreted.features`: Gaia astrometry to Galactocentric phase space, the
  classifier's feature variants (5d, 6d), quality cuts, the Toomre baseline.
- :mod:`~gaialake.accreted.evaluation`: ROC AUC, purity/completeness, thresholds, figures.
"""

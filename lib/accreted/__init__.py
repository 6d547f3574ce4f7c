"""Accreted stars (Ostdiek et al. 2020, arXiv 1907.06652; Necib et al. 2020, 1907.07681).

- :mod:`~gaialake.accreted.features`: Gaia astrometry to Galactocentric phase space, the
  classifier's feature variants (5d, 6d), quality cuts, the Toomre baseline.
- :mod:`~gaialake.accreted.scoring`: the registered model's config, scoring DR3 rows (null
  scores with a reason), the transfer set of a catalog, the pyfunc ``predict``.
- :mod:`~gaialake.accreted.training`: training, calibration and transfer on rows in memory.
- :mod:`~gaialake.accreted.classifier_spark`: the same on Spark: features and scores by
  ``mapInPandas``, training and transfer streamed through Petastorm, labelled scores for
  evaluation, the catalog's rows.
- :mod:`~gaialake.accreted.sources`: the labelled training and test catalogs (the warehouses
  ``accreted.train_warehouse`` / ``test_warehouse``, or a synthetic galaxy: the main warehouse
  or a side sky of its own).
- :mod:`~gaialake.accreted.settings`: the ``accreted`` conf section.
- :mod:`~gaialake.accreted.evaluation`: ROC AUC, purity/completeness, thresholds, metrics,
  figures.

The torch modules (the per-variant MLP, its training and calibration) are in
:mod:`gaialake.models.accreted_net`.
"""

"""The stream search, Via Machinae (Shih et al. 2021, arXiv 2104.12789; 2023, 2303.01529).

- :mod:`~gaialake.streams.patch_grid`: the full-sky grid of overlapping patches and the patch frame.
- :mod:`~gaialake.streams.regions`: proper-motion signal/control regions, features, feature map.
- :mod:`~gaialake.streams.anode`, :mod:`~gaialake.streams.cathode`,
  :mod:`~gaialake.streams.ranode`: the anomaly scores (ANODE, CATHODE, R-ANODE).
- :mod:`~gaialake.streams.search`: one (patch, pm axis, signal region) group scored end to end.
- :mod:`~gaialake.streams.search_spark`: every group scored in Spark tasks, the model rows
  brought back, the stream AUCs, and registered models scoring on executors.
- :mod:`~gaialake.streams.streaming`: groups larger than task memory, fed by Petastorm.
- :mod:`~gaialake.streams.scorer`: every group's flows in one registered torch module, and
  the scoring of stars with it.
- :mod:`~gaialake.streams.linefind`: top-N stars, DBSCAN in proper motion, Hough lines.
- :mod:`~gaialake.streams.linefind_spark`: line finding on Spark and the table reads of
  ``find_streams``.
- :mod:`~gaialake.streams.candidates`: protoclusters merged across regions and patches, and
  their false-positive thresholds.
- :mod:`~gaialake.streams.recovery`: candidates against truth and known tracks.
- :mod:`~gaialake.streams.nullsky`: the stream-free sky's conf (false-positive calibration).
- :mod:`~gaialake.streams.candidate_figures`: candidate figures and the full-sky map.
"""

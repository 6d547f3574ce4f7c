"""The stream search, Via Machinae (Shih et al. 2021, arXiv 2104.12789; 2023, 2303.01529).

- :mod:`~gaialake.streams.patch_grid`: the full-sky grid of overlapping patches and the patch frame.
- :mod:`~gaialake.streams.regions`: proper-motion signal/control regions, features, feature map.
- :mod:`~gaialake.streams.anode`, :mod:`~gaialake.streams.cathode`: the two anomaly scores.
- :mod:`~gaialake.streams.search`: one (patch, pm axis, signal region) group scored end to end.
- :mod:`~gaialake.streams.scorer`: every group's flows in one registered torch module.
- :mod:`~gaialake.streams.linefind`: top-N stars, DBSCAN in proper motion, Hough lines.
- :mod:`~gaialake.streams.candidates`: protoclusters merged across regions and patches.
- :mod:`~gaialake.streams.recovery`: candidates against truth and known tracks.
- :mod:`~gaialake.streams.nullsky`: the stream-free sky's conf (false-positive calibration).
- :mod:`~gaialake.streams.plots`: candidate figures and the full-sky map.
"""

"""Sky geometry shared by every job.

- :mod:`~gaialake.astro.healpix`: nested HEALPix arithmetic (``hpx29``, partitions, discs).
- :mod:`~gaialake.astro.cone`: ``CONE(ra_deg, dec_deg, radius_deg)`` in SQL, pruned by partition.
"""

"""Sky geometry and the Galactic frame shared by every job.

- :mod:`~gaialake.astro.healpix`: nested HEALPix arithmetic (``hpx29``, partitions, discs).
- :mod:`~gaialake.astro.cone`: ``CONE(ra_deg, dec_deg, radius_deg)`` in SQL, pruned by partition.
- :mod:`~gaialake.astro.frame`: the Sun's Galactocentric position and velocity (the one set of
  solar parameters) and astropy's ``Galactocentric`` frame built from them.
- :mod:`~gaialake.astro.constants`: physical constants in kpc, km/s, M_sun.
"""

"""The synthetic Gaia sky: a smooth Milky Way, accreted debris and mock streams, observed as DR3.

Modules, one job each:

- :mod:`~gaialake.sky.photometry`: isochrones and luminosity functions (absolute G, BP-RP).
- :mod:`~gaialake.sky.galaxy`: the smooth components (thin/thick disk, bulge, in-situ halo),
  their densities, and the galaxy parameter sets ``A`` / ``B``.
- :mod:`~gaialake.sky.debris`: accreted halo components (Gaia-Enceladus-like, Nyx-like, ...).
- :mod:`~gaialake.sky.kinematics`: the potential (gala MilkyWayPotential2022), velocity
  sampling and Galactocentric <-> ICRS transforms (the Sun of :mod:`gaialake.astro.frame`).
- :mod:`~gaialake.sky.stream_mocks`: mock streams made with gala in the same potential (cached).
- :mod:`~gaialake.sky.observe`: DR3-like errors vs G, source_id, the DR3 152-column table.
- :mod:`~gaialake.sky.skymodel`: expected counts per HEALPix pixel, file ranges, and sampling
  the stars of one range (what one Spark task does).
- :mod:`~gaialake.sky.skyfiles`: the sky written as DR3 bulk files by Spark tasks, its truth.
- :mod:`~gaialake.sky.sky_figures`: figures of the generated sky (counts, errors, streams).
"""

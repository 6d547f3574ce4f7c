"""Upsampled mocks (GalaxyFlow; Lim, Raman, Buckley & Shih): star particles turned into many
more stars by a mass-weighted normalizing flow, judged against a kernel baseline.

- :mod:`~gaialake.upsample.particles`: star-particle snapshots (reader, default synthetic galaxy,
  the job's particles from the conf).
- :mod:`~gaialake.upsample.snapshots`: simulation readers (Gizmo/FIRE, Arepo/Auriga, tipsy),
  format dispatch, particle labels.
- :mod:`~gaialake.upsample.host`: the host galaxy's frame (centre, bulk velocity, disk, the Sun).
- :mod:`~gaialake.upsample.enbid`: the EnBiD-like kernel baseline.
- :mod:`~gaialake.upsample.mock`: the mock's rows: particle splits, 3-sample roles, the stars
  each upsampler adds in one partition.
- :mod:`~gaialake.upsample.mock_spark`: Spark adapters: the flow's statistics, GalaxyFlow
  training from a DataFrame (Petastorm), the mapInPandas steps that draw the mock.
- :mod:`~gaialake.upsample.three_sample`: the 3-sample classifier test (the seed's protocol) and
  the strong judge (classifiers trained for particles vs each upsampler, k-fold held out).

The flow itself is :mod:`gaialake.models.galaxyflow`.
"""

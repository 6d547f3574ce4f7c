"""Upsampled mocks (GalaxyFlow; Lim, Raman, Buckley & Shih).

- :mod:`~gaialake.upsample.particles`: star-particle snapshots (reader, default synthetic galaxy).
- :mod:`~gaialake.upsample.enbid`: the EnBiD-like kernel baseline.
- :mod:`~gaialake.upsample.three_sample`: the 3-sample classifier test.
"""

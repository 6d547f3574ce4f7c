"""Mock stars observed as DR3: extinction along the sight-line, photometry, file ranges."""
from __future__ import annotations

import numpy as np

from gaialake.sky.mockobs import (N_PIX8, draw_photometry, file_name, file_of, file_range,
                                  sightline_a_v)
from gaialake.upsample.particles import SUN_POSITION_KPC


def test_sightline_extinction_grows_with_distance_and_toward_the_plane():
    sun = SUN_POSITION_KPC
    a_v = sightline_a_v(np.array([[sun[0] + 0.5, sun[0] + 2.0, sun[0] + 2.0],
                                  [0.0, 0.0, 0.0], [sun[2], sun[2], sun[2] + 2.0]]), sun)
    assert 0 < a_v[0] < a_v[1] and a_v[2] < a_v[1]


def test_bulk_file_names_cover_the_level8_pixels():
    assert file_name(0, 4) == "GaiaSource_000000-196607.csv.gz"
    assert file_name(3, 4) == "GaiaSource_589824-786431.csv.gz"
    ranges = [file_range(k, 7) for k in range(7)]
    assert ranges[0][0] == 0 and ranges[-1][1] == N_PIX8 - 1
    assert all(hi + 1 == lo for (_, hi), (lo, _) in zip(ranges, ranges[1:]))   # no gap, no overlap
    rng = np.random.default_rng(3)
    ra, dec = rng.uniform(0, 360, 500), np.degrees(np.arcsin(rng.uniform(-1, 1, 500)))
    index = file_of(ra, dec, 7)
    assert index.min() >= 0 and index.max() <= 6 and len(np.unique(index)) == 7


def test_a_truncated_luminosity_function_draws_only_brighter_stars():
    feh = np.full(2000, -0.5)
    full, _ = draw_photometry(np.random.default_rng(1), feh)
    bright, colour = draw_photometry(np.random.default_rng(1), feh, abs_mag_limit=3.5)
    # the isochrone's grid is drawn with a 0.03 mag intrinsic scatter
    assert bright.max() <= 3.5 + 5 * 0.03 and full.max() > 5.0 and np.all(np.isfinite(colour))

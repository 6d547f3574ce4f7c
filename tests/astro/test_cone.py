"""CONE(ra, dec, r) in SQL: exact selection, and only overlapping partitions read."""
from __future__ import annotations

import numpy as np
import pytest

from gaialake.astro.cone import expand_cones
from gaialake.astro.healpix import pixel_of


def test_cone_selects_exactly_the_stars_within_radius_and_prunes_partitions(spark):
    rng = np.random.default_rng(0)
    n = 20000
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    import pandas as pd
    pdf = pd.DataFrame({"ra": ra, "dec": dec, "hpx": pixel_of(ra, dec, 2)})
    spark.createDataFrame(pdf).createOrReplaceTempView("stars")
    sql = expand_cones("SELECT ra, dec FROM stars WHERE CONE(150.0, 35.0, 5.0)", order=2)
    got = spark.sql(sql).toPandas()
    c = np.radians
    cosd = (np.sin(c(dec)) * np.sin(c(35.0)) + np.cos(c(dec)) * np.cos(c(35.0)) * np.cos(c(ra - 150.0)))
    truth = np.degrees(np.arccos(np.clip(cosd, -1, 1))) <= 5.0
    assert len(got) == truth.sum() > 0
    assert "hpx IN (" in sql and sql.count(",") < 40  # a handful of order-2 pixels, not all 192


def test_cone_rejects_bad_arguments():
    with pytest.raises(ValueError, match="CONE"):
        expand_cones("SELECT * FROM t WHERE CONE(400, 0, 1)", order=2)

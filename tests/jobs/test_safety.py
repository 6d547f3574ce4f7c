"""No destructive default: generate keeps a user's files, `gaialake sql` is read-only without
--write, a job does not replace its table with zero rows from an empty upstream, and a catalog
entry is not re-pointed to another warehouse silently."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pandas as pd
import pytest


def _sql(conf, query: str, write: bool = False) -> int:
    from gaialake.jobs import sql

    return sql.main(conf, argparse.Namespace(query=query, format="csv", limit=100, write=write))


def test_generate_refuses_a_folder_with_a_users_bulk_file_and_deletes_nothing(spark, conf):
    from gaialake.jobs import generate
    from gaialake.sky.skyfiles import PARAMS_FILE, ForeignFilesError

    raw = conf.path("paths.raw")
    os.makedirs(raw)
    # an earlier generate run's folder (its sky_model.json) where the user put a real file
    with open(os.path.join(raw, PARAMS_FILE), "w") as fh:
        json.dump({"files": ["GaiaSource_000000-000999.csv.gz"]}, fh)
    user = os.path.join(raw, "GaiaSource_786097-786431.csv.gz")
    with open(user, "w") as fh:
        fh.write("the user's download")
    small = conf.with_overrides(["sky.n_stars=3000", "sky.stars_per_file=3000", "sky.streams=off",
                                 "sky.region=[{ra: 160.0, dec: 45.0, radius_deg: 5.0}]"])
    with pytest.raises(ForeignFilesError, match="GaiaSource_786097-786431"):
        generate.run(small)
    with open(user) as fh:
        assert fh.read() == "the user's download"


def test_sql_is_read_only_without_write(spark, conf, capsys):
    from gaialake.io.delta import read_table, write_table

    conf.set("catalog.database", "safety_sql")
    write_table(spark.createDataFrame(pd.DataFrame({"source_id": np.arange(10)})), conf,
                "truth_origin")
    try:
        for query in ("DELETE FROM safety_sql.truth_origin WHERE source_id < 5",
                      "DROP TABLE safety_sql.truth_origin",
                      "CREATE TABLE safety_sql.t2 AS SELECT 1 AS x",
                      "INSERT INTO safety_sql.truth_origin VALUES (99)",
                      "UPDATE safety_sql.truth_origin SET source_id = 0",
                      "MERGE INTO safety_sql.truth_origin t USING safety_sql.truth_origin s "
                      "ON t.source_id = s.source_id WHEN MATCHED THEN DELETE",
                      "ALTER TABLE safety_sql.truth_origin ADD COLUMNS (y INT)",
                      "TRUNCATE TABLE safety_sql.truth_origin",
                      "WITH a AS (SELECT 1 AS source_id) "
                      "INSERT INTO safety_sql.truth_origin SELECT * FROM a"):
            assert _sql(conf, query) == 2, query
            assert "read-only unless --write" in capsys.readouterr().err
        assert read_table(spark, conf, "truth_origin").count() == 10
        assert not spark.catalog.tableExists("safety_sql.t2")
        # reads pass
        assert _sql(conf, "SELECT count(*) AS n FROM safety_sql.truth_origin") == 0
        assert capsys.readouterr().out.split() == ["n", "10"]
        assert _sql(conf, "DESCRIBE HISTORY safety_sql.truth_origin") == 0
        assert _sql(conf, "SHOW TABLES IN safety_sql") == 0
        # --write runs it
        assert _sql(conf, "DELETE FROM safety_sql.truth_origin WHERE source_id < 5",
                    write=True) == 0
        assert read_table(spark, conf, "truth_origin").count() == 5
    finally:
        spark.sql("USE default")


def test_patches_with_no_star_in_any_patch_keeps_patch_stars(spark, conf):
    from gaialake.astro.healpix import pixel_of
    from gaialake.io.delta import EmptyResultError, read_table, write_table
    from gaialake.jobs import patches
    from gaialake.streams.patch_grid import patch_centers

    grid = patch_centers(2, 30.0)
    a = grid.iloc[0]
    b = grid.iloc[int(np.argmax(np.hypot(grid.ra - a.ra, grid.dec - a.dec)))]
    rng = np.random.default_rng(3)
    n = 500
    ra = (a.ra + rng.uniform(-2, 2, n)) % 360
    dec = np.clip(a.dec + rng.uniform(-2, 2, n), -89, 89)
    src = pd.DataFrame({"source_id": np.arange(n, dtype=np.int64), "ra": ra, "dec": dec,
                        "pmra": rng.normal(0, 3, n), "pmdec": rng.normal(0, 3, n),
                        "parallax": np.full(n, 0.1), "phot_g_mean_mag": np.full(n, 18.0),
                        "bp_rp": np.full(n, 0.7),
                        "hpx": pixel_of(ra, dec, int(conf.get("catalog.partition_order")))})
    write_table(spark.createDataFrame(src), conf, "gaia_source", partition_by=["hpx"])
    conf.set("patches.only", [int(a.patch_id)])
    first = patches.run(conf)
    assert first["rows"] == n
    # the patch far from every star: nothing selected; patch_stars stays as it was
    conf.set("patches.only", [int(b.patch_id)])
    with pytest.raises(EmptyResultError, match="no star.*--allow-empty"):
        patches.run(conf)
    assert read_table(spark, conf, "patch_stars").count() == n
    # said explicitly: written empty
    conf.set("run.allow_empty", True)
    assert patches.run(conf)["rows"] == 0
    assert read_table(spark, conf, "patch_stars").count() == 0


def test_a_catalog_entry_is_not_re_pointed_to_another_warehouse(spark, conf, tmp_path):
    from gaialake.io.delta import CatalogConflictError, table_exists, write_table
    from gaialake.io.spark import METASTORE_KEY

    metastore = spark.conf.get(METASTORE_KEY)          # the session's own catalog
    df = spark.createDataFrame(pd.DataFrame({"source_id": np.arange(3)}))
    one = conf.with_overrides([f"paths.metastore={metastore}", "catalog.database=safety_repoint"])
    write_table(df, one, "truth_origin")
    other = one.with_overrides([f"paths.warehouse={tmp_path / 'elsewhere'}"])
    with pytest.raises(CatalogConflictError) as err:
        write_table(df, other, "truth_origin")
    assert one.table_path("truth_origin") in str(err.value)
    assert other.table_path("truth_origin") in str(err.value)
    assert not table_exists(spark, other.table_path("truth_origin"))    # failed before writing
    location = spark.sql("DESCRIBE DETAIL safety_repoint.truth_origin").first()["location"]
    assert location.endswith(one.table_path("truth_origin"))
    # with the explicit flag it is re-pointed
    write_table(df, other.with_overrides(["catalog.repoint=true"]), "truth_origin")
    location = spark.sql("DESCRIBE DETAIL safety_repoint.truth_origin").first()["location"]
    assert location.endswith(other.table_path("truth_origin"))


def test_find_streams_and_accreted_refuse_an_empty_upstream(spark, conf):
    from gaialake import tables
    from gaialake.io.delta import EmptyResultError, table_exists, write_table
    from gaialake.jobs import accreted, find_streams

    empty = lambda spec: spark.createDataFrame([], spec.schema_without("run_id"))
    write_table(empty(tables.ANOMALY_SCORES), conf, tables.ANOMALY_SCORES)
    write_table(empty(tables.PATCH_STARS), conf, tables.PATCH_STARS)
    with pytest.raises(EmptyResultError, match="anomaly_scores is empty.*--allow-empty"):
        find_streams.run(conf)
    assert not table_exists(spark, conf.table_path(tables.STREAM_CANDIDATES.name))

    write_table(spark.createDataFrame([], "source_id long, ra double, dec double, hpx long"),
                conf, tables.GAIA_SOURCE)
    with pytest.raises(EmptyResultError, match="gaia_source is empty"):
        accreted.run(conf)          # before any side sky is built or model trained
    assert not table_exists(spark, conf.table_path(tables.ACCRETED_CATALOG.name))


def test_a_table_whose_folder_was_deleted_is_written_again(spark, conf):
    import shutil

    from gaialake.io.delta import write_table
    from gaialake.io.spark import METASTORE_KEY

    own = conf.with_overrides([f"paths.metastore={spark.conf.get(METASTORE_KEY)}",
                               "catalog.database=safety_deleted"])
    write_table(spark.createDataFrame(pd.DataFrame({"source_id": np.arange(3)})), own,
                "truth_origin")
    shutil.rmtree(own.table_path("truth_origin"))   # the entry now points at nothing
    write_table(spark.createDataFrame(pd.DataFrame({"source_id": np.arange(5)})), own,
                "truth_origin")
    assert spark.table("safety_deleted.truth_origin").count() == 5

"""`gaialake export`: HATS catalogs that lsdb (in .venv-hats) opens, cone-searches and
cross-matches, and query results as FITS, VOTable, ECSV and Parquet files with DR3 units."""
from __future__ import annotations

import argparse
import json
import subprocess

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from gaialake import tables
from gaialake.bench.ingest_bench import HATS_PYTHON
from gaialake.conf import load_conf
from gaialake.io.delta import read_table, write_table
from gaialake.io.hatsexport import export_hats
from gaialake.io.hatsfiles import SPATIAL_INDEX_COLUMN, HatsPixel
from gaialake.io.sqlquery import read_only_query
from gaialake.jobs import export, ingest, sql
from tests.helpers import dr3_lines, dr3_table, write_dr3_file

CONE = (155.0, 35.0, 2.0)    # ra, dec, radius (deg): inside the first file's patch of sky

#: Run by .venv-hats/bin/python: opens each catalog with lsdb, checks it with hats' strict
#: validator, counts rows, cone-searches and cross-matches; prints one JSON line.
LSDB_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
import hats, lsdb
from hats.io.validation import is_valid_catalog

args = json.loads(sys.argv[1])
out = {}
for name, path in args["catalogs"].items():
    frame = lsdb.read_hats(path).compute()
    out[name] = {"rows": len(frame), "columns": list(frame.columns), "index": frame.index.name,
                 "source_ids": sorted(int(s) for s in frame["source_id"]),
                 "valid": bool(is_valid_catalog(path, strict=True)),
                 "moc": hats.read_hats(path).moc is not None}
ra, dec, radius_arcsec = args["cone"]
cone = lsdb.open_catalog(args["catalogs"]["gaia"]).cone_search(ra, dec, radius_arcsec).compute()
out["cone"] = sorted(int(s) for s in cone["source_id"])
if "accreted" in args["catalogs"]:
    matched = lsdb.open_catalog(args["catalogs"]["gaia"]).crossmatch(
        lsdb.open_catalog(args["catalogs"]["accreted"]), n_neighbors=1, radius_arcsec=0.01,
        suffixes=("_g", "_a")).compute()
    out["matched"] = len(matched)
    out["matched_same_star"] = bool((matched["source_id_g"] == matched["source_id_a"]).all())
print(json.dumps(out))
"""


def _lsdb(tmp_path, catalogs: dict[str, str]) -> dict:
    if not HATS_PYTHON.exists():
        pytest.skip(f"{HATS_PYTHON} missing: `make .venv-hats` installs lsdb and hats there")
    script = tmp_path / "open_with_lsdb.py"
    script.write_text(LSDB_SCRIPT)
    args = json.dumps({"catalogs": catalogs, "cone": [CONE[0], CONE[1], CONE[2] * 3600]})
    done = subprocess.run([str(HATS_PYTHON), str(script), args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _export(conf, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    export.add_arguments(parser)
    return export.main(conf, parser.parse_args(list(argv)))


def _sql_rows(conf, query: str, capsys) -> pd.DataFrame:
    capsys.readouterr()
    assert sql.main(conf, argparse.Namespace(query=query, format="json", limit=10**6,
                                             write=False)) == 0
    return pd.read_json(capsys.readouterr().out, lines=True)


@pytest.fixture(scope="module")
def warehouse(spark, tmp_path_factory):
    """gaia_source ingested from two bulk files on two patches of sky (2400 stars); its conf."""
    root = tmp_path_factory.mktemp("export")
    conf = load_conf(sets=[f"paths.raw={root / 'raw'}", f"paths.warehouse={root / 'warehouse'}",
                           f"paths.mlflow={root / 'mlruns'}", f"paths.report={root / 'report'}",
                           "spark.shuffle_partitions=4"])
    raw = root / "raw"
    raw.mkdir()
    write_dr3_file(raw / "GaiaSource_000001-000002.csv.gz", dr3_lines(dr3_table(1500, seed=1)))
    write_dr3_file(raw / "GaiaSource_000003-000004.csv.gz", dr3_lines(
        dr3_table(900, seed=2, ra_range=(200.0, 215.0), dec_range=(-10.0, 5.0))))
    assert ingest.run(conf)["ingested"] == 2
    return conf


def test_gaia_source_as_hats_opens_in_lsdb_with_its_rows_and_cone(spark, warehouse, tmp_path,
                                                                 capsys):
    conf = warehouse.with_overrides(["export.hats_max_rows=400"])   # splits the crowded pixels
    out = tmp_path / "gaia_hats"
    assert _export(conf, "hats", "--table", "gaia_source", "--out", str(out)) == 0

    gaia = read_table(spark, conf, "gaia_source").toPandas()
    pixels = pd.read_csv(out / "partition_info.csv")
    assert pixels.Norder.min() == conf.get("catalog.partition_order") < pixels.Norder.max()
    for order, npix in zip(pixels.Norder, pixels.Npix):       # one sorted file per pixel
        rows = pq.read_table(out / f"dataset/Norder={order}/Dir={npix // 10000 * 10000}/"
                                   f"Npix={npix}.parquet")
        assert rows.column_names[0] == SPATIAL_INDEX_COLUMN
        assert {"hpx", "hpx29", "source_file"}.isdisjoint(rows.column_names)
        index = rows.column(SPATIAL_INDEX_COLUMN).to_numpy()
        lo, hi = HatsPixel(order, npix, 0).hpx29_range
        assert (np.diff(index) >= 0).all() and index.min() >= lo and index.max() < hi
        assert 0 < rows.num_rows <= 400
    assert pq.read_metadata(out / "dataset/_metadata").num_rows == len(gaia)
    properties = (out / "hats.properties").read_text()
    assert f"hats_nrows={len(gaia)}\n" in properties and "hats_col_ra=ra\n" in properties

    seen = _lsdb(tmp_path, {"gaia": str(out)})
    assert seen["gaia"]["valid"] and seen["gaia"]["moc"]
    assert seen["gaia"]["rows"] == len(gaia)
    assert seen["gaia"]["source_ids"] == sorted(gaia.source_id)
    assert {"ra", "dec", "pmra", "run_id"} <= set(seen["gaia"]["columns"])
    assert seen["gaia"]["index"] == SPATIAL_INDEX_COLUMN     # lsdb's index, as on its own output
    cone = _sql_rows(conf, "SELECT source_id FROM gaialake.gaia_source WHERE CONE(%s, %s, %s)"
                     % CONE, capsys)
    assert 50 < len(cone) == len(seen["cone"])
    assert seen["cone"] == sorted(cone.source_id)


def test_a_table_joined_to_positions_exports_and_cross_matches_gaia_source(spark, warehouse,
                                                                          tmp_path):
    gaia = read_table(spark, warehouse, "gaia_source").select("source_id").toPandas()
    ids = gaia.source_id.to_numpy()[::3]
    accreted = pd.DataFrame({
        "source_id": np.r_[ids, [1, 2]],           # two stars gaia_source does not have
        "p_accreted": np.linspace(0, 1, len(ids) + 2), "variant": "5d", "unscored_reason": None,
        "is_accreted": np.arange(len(ids) + 2) % 2 == 0, "model_version": "1", "run_id": "r1"})
    write_table(spark.createDataFrame(accreted, tables.ACCRETED_CATALOG.schema), warehouse,
                tables.ACCRETED_CATALOG)
    gaia_out, acc_out = tmp_path / "gaia_hats", tmp_path / "accreted_hats"
    assert _export(warehouse, "hats", "--table", "gaia_source", "--out", str(gaia_out)) == 0
    assert _export(warehouse, "hats", "--table", "accreted_catalog", "--out", str(acc_out)) == 0

    seen = _lsdb(tmp_path, {"gaia": str(gaia_out), "accreted": str(acc_out)})
    assert seen["accreted"]["valid"] and seen["accreted"]["rows"] == len(ids)
    assert seen["accreted"]["source_ids"] == sorted(ids)
    assert {"ra", "dec", "p_accreted", "run_id"} <= set(seen["accreted"]["columns"])
    assert seen["accreted"]["index"] == SPATIAL_INDEX_COLUMN
    assert seen["matched"] == len(ids) and seen["matched_same_star"]


def test_export_hats_refuses_an_occupied_out_and_overwrites_only_a_catalog(spark, warehouse,
                                                                          tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        assert _export(warehouse, "hats", "--table", "gaia_source", "--out", str(foreign),
                       *extra) == 2
        assert "not empty" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"

    catalog = tmp_path / "catalog"
    assert _export(warehouse, "hats", "--table", "gaia_source", "--out", str(catalog)) == 0
    assert _export(warehouse, "hats", "--table", "gaia_source", "--out", str(catalog)) == 2
    assert "--overwrite" in capsys.readouterr().err
    (catalog / "stale.txt").write_text("from before")
    assert _export(warehouse, "hats", "--table", "gaia_source", "--out", str(catalog),
                   "--overwrite") == 0
    assert not (catalog / "stale.txt").exists() and (catalog / "hats.properties").exists()
    with pytest.raises(ValueError, match="density_grid has no source_id"):
        export_hats(spark, warehouse, "density_grid", str(tmp_path / "grid"))


QUERY = ("SELECT source_id, designation, ra, dec, pmra, parallax, phot_g_mean_mag, "
         "astrometric_params_solved, "
         "CASE WHEN pmra IS NULL THEN NULL ELSE pmra > 0 END AS pmra_positive, "
         "CASE WHEN pmra IS NULL THEN NULL ELSE designation END AS designation_or_null "
         "FROM gaialake.gaia_source WHERE CONE(%s, %s, %s) ORDER BY source_id" % CONE)


@pytest.mark.parametrize("fmt, suffix", [("fits", "fits"), ("votable", "xml"),
                                         ("ecsv", "ecsv"), ("parquet", "parquet")])
def test_export_query_writes_values_units_and_nulls(spark, warehouse, tmp_path, fmt, suffix):
    from astropy.table import Table
    import astropy.units as u

    out = tmp_path / f"cone.{suffix}"
    assert _export(warehouse, "query", QUERY, "--format", fmt, "--out", str(out)) == 0
    back = Table.read(out, format=export.FORMATS[fmt])
    want = spark.sql(read_only_query(spark, warehouse, QUERY, "test")).toPandas()
    assert len(back) == len(want) > 50
    assert back["ra"].unit == u.deg and back["pmra"].unit == u.mas / u.yr
    assert back["parallax"].unit == u.mas and back["phot_g_mean_mag"].unit == u.mag
    np.testing.assert_array_equal(np.asarray(back["source_id"]), want.source_id)
    np.testing.assert_allclose(np.asarray(back["ra"]), want.ra, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(back["astrometric_params_solved"]),
                                  want.astrometric_params_solved)
    nulls = want.pmra.isna().to_numpy()
    assert nulls.any() and not nulls.all()
    for name in ("pmra", "parallax", "pmra_positive"):          # nulls survive as masks
        np.testing.assert_array_equal(np.ma.getmaskarray(back[name]), nulls, err_msg=name)
    np.testing.assert_allclose(np.asarray(back["pmra"])[~nulls], want.pmra[~nulls], rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(back["pmra_positive"])[~nulls].astype(bool),
                                  want.pmra_positive[~nulls].astype(bool))
    names = np.asarray(back["designation"]).astype(str)
    assert list(names) == list(want.designation)
    if fmt != "votable":   # VOTable has no null string but the empty one
        np.testing.assert_array_equal(np.ma.getmaskarray(back["designation_or_null"]), nulls)


def test_export_query_refuses_more_rows_than_the_limit_a_write_and_an_existing_file(
        spark, warehouse, tmp_path, capsys):
    out = tmp_path / "all.fits"
    small = warehouse.with_overrides(["export.max_rows=100"])
    assert _export(small, "query", "SELECT * FROM gaialake.gaia_source", "--format", "fits",
                   "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "export.max_rows = 100" in err and "LIMIT" in err and "export hats" in err
    assert not out.exists()
    assert _export(small, "query", "SELECT source_id FROM gaialake.gaia_source LIMIT 100",
                   "--format", "fits", "--out", str(out)) == 0
    assert _export(small, "query", "SELECT 1 AS x", "--format", "fits", "--out", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert _export(small, "query", "DROP TABLE gaialake.gaia_source", "--format", "ecsv",
                   "--out", str(tmp_path / "x.ecsv")) == 2
    assert "read-only" in capsys.readouterr().err
    assert read_table(spark, small, "gaia_source").count() == 2400

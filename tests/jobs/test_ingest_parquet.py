"""`gaialake ingest` of Parquet folders and HATS catalogs: the same rows as from bulk files, the
same checks, quarantine, reconciliation and idempotence; HATS' index checked against ra/dec."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gaialake.astro.healpix import radec_to_hpx29
from gaialake.io.delta import read_table
from gaialake.jobs import ingest
from tests.helpers import dr3_lines, dr3_table, write_dr3_file


def _conf(conf, tmp_path: Path, name: str):
    return conf.with_overrides([f"paths.raw={tmp_path / name / 'raw'}",
                                f"paths.warehouse={tmp_path / name / 'warehouse'}"])


def _log(spark, conf):
    return read_table(spark, conf, "ingest_log").toPandas().set_index("source_file")


def _with_bad_dec(table: pa.Table, row: int) -> pa.Table:
    dec = table.column("dec").to_numpy().copy()
    dec[row] = 95.0
    return table.set_column(table.schema.get_field_index("dec"), "dec", pa.array(dec))


def test_parquet_folder_ingests_the_same_rows_as_the_bulk_files(spark, conf, tmp_path):
    a = dr3_table(400, seed=71, ra_range=(10, 40))
    b = _with_bad_dec(dr3_table(300, seed=72, ra_range=(60, 90)), 7)
    b = pa.concat_tables([b, a.slice(3, 1)])                      # a duplicate across files
    as_csv, as_parquet = _conf(conf, tmp_path, "csv"), _conf(conf, tmp_path, "parquet")
    raw = Path(as_csv.path("paths.raw"))
    raw.mkdir(parents=True)
    write_dr3_file(raw / "GaiaSource_000001-000001.csv.gz", dr3_lines(a))
    write_dr3_file(raw / "GaiaSource_000002-000002.csv.gz", dr3_lines(b))
    raw = Path(as_parquet.path("paths.raw"))
    (raw / "export").mkdir(parents=True)
    pq.write_table(a, raw / "export" / "part-1.parquet", row_group_size=150)
    pq.write_table(b, raw / "export" / "part-2.parquet", row_group_size=150)
    (raw / "export" / "_SUCCESS").write_text("")                  # a writer's marker: passed over

    csv_summary, parquet_summary = ingest.run(as_csv), ingest.run(as_parquet)
    for key in ("ingested", "failed", "rows_kept", "rows_quarantined"):
        assert parquet_summary[key] == csv_summary[key], key
    assert parquet_summary["ingested"] == 2 and parquet_summary["rows_quarantined"] == 2
    columns = [c for c in read_table(spark, as_csv, "gaia_source").columns
               if c not in ("source_file", "run_id")]
    from_csv = read_table(spark, as_csv, "gaia_source").select(*columns)
    from_parquet = read_table(spark, as_parquet, "gaia_source").select(*columns)
    assert from_parquet.count() == 701 - 2
    assert from_parquet.exceptAll(from_csv).count() == 0
    assert from_csv.exceptAll(from_parquet).count() == 0

    log = _log(spark, as_parquet)
    assert sorted(log.index) == ["export/part-1.parquet", "export/part-2.parquet"]
    assert (log.rows_read == log.rows_kept + log.rows_quarantined).all()
    quarantine = read_table(spark, as_parquet, "gaia_source_quarantine").toPandas()
    bad = quarantine[quarantine.reason.str.startswith("column dec")].iloc[0]
    assert bad.line_number == 8 and json.loads(bad.raw_line)["dec"] == 95.0
    dup = quarantine[quarantine.reason.str.startswith("duplicate")].iloc[0]
    assert dup.source_file == "export/part-2.parquet" and dup.line_number == 301
    assert json.loads(dup.raw_line)["source_id"] == a.column("source_id")[3].as_py()
    assert "export/part-1.parquet" in dup.reason

    again = ingest.run(as_parquet)                                 # idempotent
    assert again["ingested"] == 0 and read_table(spark, as_parquet, "gaia_source").count() == 699


def _hats_catalog(root: Path, table: pa.Table, order: int = 1) -> dict[int, int]:
    """A HATS catalog of ``table`` as hats writes one: rows by pixel of ``order``, sorted by
    ``_healpix_29``, with the Norder/Dir/Npix columns, ``_metadata`` and ``partition_info.csv``."""
    hpx29 = radec_to_hpx29(table.column("ra").to_numpy(), table.column("dec").to_numpy())
    table = table.append_column("_healpix_29", pa.array(hpx29, pa.int64()))
    table = table.take(pa.array(np.argsort(hpx29, kind="stable")))
    pixels = pc.shift_right(table.column("_healpix_29"), 2 * (29 - order)).to_numpy()
    counts = {}
    for npix in np.unique(pixels):
        part = table.filter(pa.array(pixels == npix))
        n = part.num_rows
        part = (part.append_column("Norder", pa.array([order] * n, pa.uint8()))
                .append_column("Dir", pa.array([0] * n, pa.uint64()))
                .append_column("Npix", pa.array([int(npix)] * n, pa.uint64())))
        folder = root / "dataset" / f"Norder={order}" / "Dir=0"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, folder / f"Npix={npix}.parquet")
        counts[int(npix)] = n
    pq.write_metadata(table.schema, root / "dataset" / "_common_metadata")
    pq.write_metadata(table.schema, root / "dataset" / "_metadata")
    (root / "hats.properties").write_text(
        f"obs_collection=gaia\ndataproduct_type=object\nhats_nrows={table.num_rows}\n"
        f"hats_col_ra=ra\nhats_col_dec=dec\n")
    (root / "partition_info.csv").write_text(
        "Norder,Npix\n" + "".join(f"{order},{p}\n" for p in counts))
    return counts


def test_hats_catalog_ingests_its_leaf_files_and_checks_its_index(spark, conf, tmp_path):
    conf = _conf(conf, tmp_path, "hats")
    raw = Path(conf.path("paths.raw"))
    table = pa.concat_tables([dr3_table(300, seed=81, ra_range=(10, 80), dec_range=(-20, 20)),
                              dr3_table(300, seed=82, ra_range=(200, 260), dec_range=(-20, 20))])
    counts = _hats_catalog(raw, table)
    assert len(counts) >= 3
    first = min(counts)
    leaf = raw / "dataset" / "Norder=1" / "Dir=0" / f"Npix={first}.parquet"
    rows = pq.read_table(leaf)
    index = rows.column("_healpix_29").to_numpy().copy()
    index[2] += 1 << 19                 # its index disagrees with ra/dec (beyond 0.2 arcsec)
    index[4] += 1                       # a rounding difference at order 29: no disagreement
    pq.write_table(rows.set_column(rows.schema.get_field_index("_healpix_29"), "_healpix_29",
                                   pa.array(index)), leaf)

    summary = ingest.run(conf)
    assert summary["ingested"] == len(counts) and summary["failed"] == 0
    assert summary["skipped_files"] == []                          # partition_info.csv: not a bulk file
    gaia = read_table(spark, conf, "gaia_source")
    assert gaia.count() == 599
    assert not {"_healpix_29", "Norder", "Dir", "Npix"} & set(gaia.columns)
    log = _log(spark, conf)
    assert sorted(log.index) == sorted(f"dataset/Norder=1/Dir=0/Npix={p}.parquet" for p in counts)
    assert dict(log.rows_read) == {f"dataset/Norder=1/Dir=0/Npix={p}.parquet": n
                                   for p, n in counts.items()}
    bad = read_table(spark, conf, "gaia_source_quarantine").toPandas()
    assert len(bad) == 1 and bad.line_number[0] == 3
    assert bad.reason[0].startswith("column _healpix_29") and str(index[2]) in bad.reason[0]
    got = {r.source_file: r.n for r in gaia.groupBy("source_file").agg(
        {"hpx29": "count"}).withColumnRenamed("count(hpx29)", "n").collect()}
    assert sum(got.values()) == 599

    again = ingest.run(conf)
    assert again["ingested"] == 0 and read_table(spark, conf, "gaia_source").count() == 599


def test_parquet_files_with_bad_types_fail_alone_and_a_collection_is_refused(spark, conf, tmp_path):
    conf = _conf(conf, tmp_path, "types")
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    good = dr3_table(100, seed=91)
    pq.write_table(good, raw / "good.parquet")
    ra_string = dr3_table(50, seed=92, ra_range=(200, 210))
    ra_at = ra_string.schema.get_field_index("ra")
    pq.write_table(ra_string.set_column(ra_at, "ra", pc.cast(ra_string.column("ra"), pa.string())),
                   raw / "ra_string.parquet")
    nested = dr3_table(50, seed=93, ra_range=(300, 310))
    pq.write_table(nested.append_column("spectrum", pa.array([[1.0, 2.0]] * 50)),
                   raw / "nested.parquet")
    pq.write_table(pa.table({"source_id": good.column("source_id"),      # a mock's truth: not
                             "origin": pa.array(["in_situ"] * 100)}),    # a catalog file
                   raw / "truth_origin.parquet")

    summary = ingest.run(conf)
    assert summary["ingested"] == 1 and sorted(summary["failed_files"]) == [
        "nested.parquet", "ra_string.parquet"]
    log = _log(spark, conf)
    assert "column ra: file declares string" in log.loc["ra_string.parquet"].error
    assert "column spectrum" in log.loc["nested.parquet"].error
    assert read_table(spark, conf, "gaia_source").count() == 100

    collection = tmp_path / "collection"
    _hats_catalog(collection / "gaia", dr3_table(20, seed=94))
    (collection / "collection.properties").write_text("obs_collection=gaia\nhats_primary_table_url=gaia\n")
    with pytest.raises(ValueError, match="HATS collection.*gaia"):
        ingest.run(conf.with_overrides([f"paths.raw={collection}"]))

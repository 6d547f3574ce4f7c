"""`gaialake ingest` against hostile files and faults, on local Spark + Delta: bad headers, extra
and missing columns, pruning guards, transient errors, odd file names, concurrent runs."""
from __future__ import annotations

import gzip
import threading
from pathlib import Path

import pytest

from gaialake.io.bulkfile import format_columns
from gaialake.io.catalogload import PruneRefused
from gaialake.io.delta import read_table
from gaialake.io.dr3schema import DR3_COLUMNS, Column, header_text
from gaialake.jobs import ingest
from tests.helpers import dr3_lines, dr3_table, write_dr3_file


def _write(path: Path, table, columns) -> Path:
    """A bulk file with these header columns (types as declared; extra columns from ``table``)."""
    with gzip.open(path, "wt", newline="\n") as out:
        out.write(header_text(columns))
        out.write("\n".join(format_columns(table, columns).to_pylist()) + "\n")
    return path


def _cols(extra=(), **types) -> list[Column]:
    """DR3 columns with some types changed (name=datatype) or dropped (name=None), then ``extra``."""
    return [Column(c.name, types.get(c.name, c.datatype), c.unit) for c in DR3_COLUMNS
            if types.get(c.name, "") is not None] + list(extra)


def _log(spark, conf):
    return read_table(spark, conf, "ingest_log").toPandas().set_index("source_file")


def test_bad_header_fails_only_its_file_and_never_reaches_the_table(spark, conf):
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    # fresh warehouse, the bad file first: it must not define the table's ra as a string
    _write(raw / "GaiaSource_000001-000001.csv.gz", dr3_table(100, seed=51), _cols(ra="string"))
    write_dr3_file(raw / "GaiaSource_000002-000002.csv.gz",
                   dr3_lines(dr3_table(200, seed=52, ra_range=(20, 30))))
    (raw / "gaiasource_000009-000009.csv.gz").write_bytes(b"")   # wrong case: logged, skipped
    (raw / "GaiaSource_000010-000010.csv").write_text("x")        # not gzip: logged, skipped
    (raw / "generated_files.json").write_text("{}")   # a generator's manifest: passed over
    first = ingest.run(conf)
    assert first["ingested"] == 1 and first["failed"] == 1
    assert first["failed_files"] == ["GaiaSource_000001-000001.csv.gz"]
    assert sorted(first["skipped_files"]) == ["GaiaSource_000010-000010.csv",
                                              "gaiasource_000009-000009.csv.gz"]
    table = read_table(spark, conf, "gaia_source")
    assert dict(table.dtypes)["ra"] == "double" and table.count() == 200
    log = _log(spark, conf)
    bad = log.loc["GaiaSource_000001-000001.csv.gz"]
    assert bad.status == "failed" and "GaiaSource_000001-000001.csv.gz" in bad.error
    assert "column ra: file declares string" in bad.error

    # existing warehouse (arrow writer): a conflict on an optional column fails that file only
    _write(raw / "GaiaSource_000003-000003.csv.gz", dr3_table(100, seed=53, ra_range=(40, 50)),
           _cols(parallax_error="string"))
    write_dr3_file(raw / "GaiaSource_000004-000004.csv.gz",
                   dr3_lines(dr3_table(150, seed=54, ra_range=(60, 70))))
    second = ingest.run(conf)
    assert second["ingested"] == 1 and second["failed_files"] == ["GaiaSource_000003-000003.csv.gz"]
    assert "column parallax_error" in _log(spark, conf).loc["GaiaSource_000003-000003.csv.gz"].error
    table = read_table(spark, conf, "gaia_source")
    assert table.count() == 350 and dict(table.dtypes)["parallax_error"] == "float"
    assert table.selectExpr("sum(ra)", "sum(parallax_error)").first()[0] > 0  # every file reads


def test_extra_columns_evolve_missing_optional_are_null_filled_and_policies_refuse(spark, conf):
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    import pyarrow as pa

    t1 = dr3_table(100, seed=61)
    t1 = t1.append_column("x_dr4", pa.array([1.5] * 100)).append_column(
        "y_dr4", pa.array(["a"] * 100))
    _write(raw / "GaiaSource_000001-000001.csv.gz", t1,
           _cols([Column("x_dr4", "float64"), Column("y_dr4", "string")]))
    _write(raw / "GaiaSource_000002-000002.csv.gz", dr3_table(80, seed=62, ra_range=(20, 30)),
           _cols(ruwe=None))
    _write(raw / "GaiaSource_000003-000003.csv.gz", dr3_table(60, seed=63, ra_range=(40, 50)),
           _cols(pmra=None))
    summary = ingest.run(conf)
    assert summary["ingested"] == 2 and summary["failed_files"] == ["GaiaSource_000003-000003.csv.gz"]
    log = _log(spark, conf)
    assert log.loc["GaiaSource_000001-000001.csv.gz"].error == "added columns: x_dr4, y_dr4"
    assert log.loc["GaiaSource_000002-000002.csv.gz"].error == \
        "null-filled missing columns: ruwe, x_dr4, y_dr4"
    assert "lacks required columns ['pmra']" in log.loc["GaiaSource_000003-000003.csv.gz"].error
    table = read_table(spark, conf, "gaia_source")
    assert table.count() == 180
    by_file = {r[0]: (r[1], r[2]) for r in table.groupBy("source_file").agg(
        {"x_dr4": "max", "ruwe": "count"}).select("source_file", "max(x_dr4)", "count(ruwe)").collect()}
    assert by_file["GaiaSource_000001-000001.csv.gz"] == (1.5, 100)
    assert by_file["GaiaSource_000002-000002.csv.gz"] == (None, 0)

    t4 = dr3_table(50, seed=64, ra_range=(60, 70)).append_column("z_dr4", pa.array([2.0] * 50))
    _write(raw / "GaiaSource_000004-000004.csv.gz", t4, _cols([Column("z_dr4", "float64")]))
    _write(raw / "GaiaSource_000005-000005.csv.gz", dr3_table(50, seed=65, ra_range=(80, 90)),
           _cols(ruwe=None))
    strict = conf.with_overrides(["ingest.extra_columns=refuse", "ingest.missing_columns=refuse"])
    summary = ingest.run(strict)
    assert summary["ingested"] == 0 and summary["failed"] == 2
    log = _log(spark, conf)
    assert "z_dr4" in log.loc["GaiaSource_000004-000004.csv.gz"].error
    assert "ingest.missing_columns=refuse" in log.loc["GaiaSource_000005-000005.csv.gz"].error
    assert "z_dr4" not in read_table(spark, conf, "gaia_source").columns

    # DR4-like: a new column that changes type between files (in one batch, then across runs)
    t6 = dr3_table(40, seed=66, ra_range=(100, 110)).append_column("w_dr4", pa.array([3] * 40))
    _write(raw / "GaiaSource_000006-000006.csv.gz", t6, _cols([Column("w_dr4", "int64")]))
    t7 = dr3_table(40, seed=67, ra_range=(120, 130)).append_column("w_dr4", pa.array(["x"] * 40))
    _write(raw / "GaiaSource_000007-000007.csv.gz", t7, _cols([Column("w_dr4", "string")]))
    summary = ingest.run(conf)
    assert summary["failed_files"] == ["GaiaSource_000007-000007.csv.gz"]
    assert "column w_dr4: file declares string, gaia_source has int64" in \
        _log(spark, conf).loc["GaiaSource_000007-000007.csv.gz"].error
    t8 = dr3_table(40, seed=68, ra_range=(140, 150)).append_column("x_dr4", pa.array([True] * 40))
    _write(raw / "GaiaSource_000008-000008.csv.gz", t8, _cols([Column("x_dr4", "bool")]))
    summary = ingest.run(conf)
    assert summary["failed_files"] == ["GaiaSource_000008-000008.csv.gz"]
    assert "column x_dr4: file declares bool, gaia_source has float64" in \
        _log(spark, conf).loc["GaiaSource_000008-000008.csv.gz"].error
    assert dict(read_table(spark, conf, "gaia_source").dtypes)["w_dr4"] == "bigint"


def test_pruning_is_off_by_default_and_refuses_an_empty_raw_or_too_large_a_cut(spark, conf):
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    for i in range(4):
        write_dr3_file(raw / f"GaiaSource_00000{i}-00000{i}.csv.gz",
                       dr3_lines(dr3_table(100, seed=70 + i, ra_range=(20 * i, 20 * i + 10))))
    ingest.run(conf)
    (raw / "GaiaSource_000003-000003.csv.gz").unlink()
    ingest.run(conf)                                    # default: rows of a gone file stay
    assert read_table(spark, conf, "gaia_source").count() == 400

    on = conf.with_overrides(["ingest.prune_missing=true"])
    for f in raw.iterdir():
        f.rename(raw.parent / f.name)
    with pytest.raises(PruneRefused, match="holds no bulk files"):   # a mistyped or empty mount
        ingest.run(on)
    assert read_table(spark, conf, "gaia_source").count() == 400
    assert len(_log(spark, conf)) == 4
    for name in ("GaiaSource_000000-000000.csv.gz", "GaiaSource_000001-000001.csv.gz"):
        (raw.parent / name).rename(raw / name)
    with pytest.raises(PruneRefused, match="ingest.prune_max_fraction=0.5"):  # 2 of 4 files
        ingest.run(on)
    assert read_table(spark, conf, "gaia_source").count() == 400

    summary = ingest.run(on.with_overrides(["ingest.prune_max_fraction=0.5"]))
    assert summary["pruned_files"] == 2 and summary["pruned_rows"] == 200
    assert read_table(spark, conf, "gaia_source").count() == 200
    version = summary["restore_versions"]["gaia_source"]     # the undo the log spells out
    spark.sql(f"RESTORE TABLE delta.`{conf.table_path('gaia_source')}` TO VERSION AS OF {version}")
    assert read_table(spark, conf, "gaia_source").count() == 400


def test_staging_write_error_is_transient_and_the_next_run_ingests_the_files(spark, conf):
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    write_dr3_file(raw / "GaiaSource_000001-000001.csv.gz", dr3_lines(dr3_table(120, seed=81)))
    staging = Path(conf.table_path("_staging"))
    staging.parent.mkdir(parents=True)
    staging.write_text("a file where the staging folder goes: every staging write fails")
    first = ingest.run(conf)
    assert first["ingested"] == 0 and first["failed"] == 0 and first["failed_transient"] == 1
    assert first["retry_files"] == ["GaiaSource_000001-000001.csv.gz"]
    assert _log(spark, conf).loc["GaiaSource_000001-000001.csv.gz"].status == "failed_transient"
    staging.unlink()
    second = ingest.run(conf)                          # no ingest.retry_failed needed
    assert second["ingested"] == 1
    assert read_table(spark, conf, "gaia_source").count() == 120
    assert _log(spark, conf).loc["GaiaSource_000001-000001.csv.gz"].status == "ok"


def test_concurrent_ingests_on_one_warehouse_both_land(spark, conf, tmp_path):
    confs = []
    for k in range(2):
        raw = tmp_path / f"raw{k}"
        raw.mkdir()
        for i in range(2):
            write_dr3_file(raw / f"GaiaSource_{k}0000{i}-{k}0000{i}.csv.gz",
                           dr3_lines(dr3_table(150, seed=90 + 2 * k + i,
                                               ra_range=(40 * k + 20 * i, 40 * k + 20 * i + 10))))
        confs.append(conf.with_overrides([f"paths.raw={raw}", "ingest.files_per_batch=1"]))
    results, errors = {}, []

    def go(k):
        from pyspark.sql import SparkSession

        # this thread uses the test's session as it is (as a second process uses its own)
        SparkSession._get_j_spark_session_class(spark._jvm).setActiveSession(spark._jsparkSession)
        try:
            results[k] = ingest.run(confs[k])
        except Exception as err:  # reported below
            errors.append(repr(err))

    threads = [threading.Thread(target=go, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results[0]["ingested"] == 2 and results[1]["ingested"] == 2
    assert read_table(spark, conf, "gaia_source").count() == 600
    assert (_log(spark, conf).status == "ok").sum() == 4

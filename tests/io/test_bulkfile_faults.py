"""Faults the bulk-file parser and the arrow writer's files must survive (no Spark): oversized and
malformed lines, non-finite values, headers that disagree with the table, transient errors."""
from __future__ import annotations

import errno

import numpy as np
import pyarrow as pa
import pytest

from gaialake.io.bulkfile import (MAX_RAW_LINE, BulkFileError, TransientFileError, file_error,
                                  parse_bulk_file)
from gaialake.io.deltafiles import write_partitioned
from gaialake.io.dr3schema import DR3_COLUMNS, Column, check_header
from tests.helpers import dr3_lines, dr3_table, write_dr3_file

FIRST = len(DR3_COLUMNS) + 9   # line number of the first data row


def _parse(path, expected=None, chunk=1 << 15):
    return pa.Table.from_batches(list(parse_bulk_file(str(path), expected, chunk_bytes=chunk)))


def _quarantined(out: pa.Table) -> pa.Table:
    return out.filter(pa.compute.is_valid(out.column("reason")))


@pytest.mark.parametrize("line", [
    "x" * 200_000,                                   # one field past csv's 131072-character limit
    '"' + "y" * 150_000 + '",1,2',                    # a quoted field past it
    "1,2,\x00,3",                                    # a NUL byte
])
def test_oversized_or_malformed_line_is_quarantined_with_its_line_number(tmp_path, line):
    lines = dr3_lines(dr3_table(300, seed=41))
    lines[120] = line
    out = _parse(write_dr3_file(tmp_path / "GaiaSource_1-2.csv.gz", lines))
    q = _quarantined(out)
    assert q.num_rows == 1 and q.column("line_number")[0].as_py() == FIRST + 120
    assert len(q.column("raw_line")[0].as_py()) <= MAX_RAW_LINE + 40
    assert out.num_rows == 300   # the other 299 lines are kept
    assert out.column("reason").null_count == 299


@pytest.mark.parametrize("column, index, value", [
    ("parallax", 9, "nan"), ("parallax", 9, "inf"), ("pmra", 13, "-inf"),
    ("pmdec", 15, "NaN"), ("phot_g_mean_mag", 69, "1e400"), ("ra", 5, "nan"),
    ("dec", 7, "-inf"), ("pmra", 13, "1e400"),
])
def test_non_finite_astrometry_and_photometry_are_quarantined(tmp_path, column, index, value):
    assert DR3_COLUMNS[index].name == column
    lines = dr3_lines(dr3_table(200, seed=42))
    fields = lines[50].split(",")
    fields[index] = value
    lines[50] = ",".join(fields)
    out = _parse(write_dr3_file(tmp_path / "GaiaSource_1-2.csv.gz", lines))
    q = _quarantined(out)
    assert q.num_rows == 1 and q.column("line_number")[0].as_py() == FIRST + 50
    assert q.column("reason")[0].as_py().startswith(f"column {column}: ")
    assert "not finite" in q.column("reason")[0].as_py()
    kept = out.filter(pa.compute.is_null(out.column("reason")))
    for name in ("ra", "dec", "parallax", "pmra", "pmdec", "phot_g_mean_mag"):
        v = kept.column(name).drop_null().to_numpy().astype(np.float64)
        assert np.isfinite(v).all()


def _cols(**types) -> list[Column]:
    """DR3 columns with some types changed (name=datatype) or dropped (name=None)."""
    out = [Column(c.name, types.get(c.name, c.datatype), c.unit) for c in DR3_COLUMNS
           if types.get(c.name, "") is not None]
    return out


def test_header_check_names_file_and_column_and_applies_the_policies():
    ref = list(DR3_COLUMNS)
    bad = check_header("GaiaSource_1.csv.gz", _cols(ra="string"), ref)
    assert "GaiaSource_1.csv.gz" in bad.error and "column ra: file declares string" in bad.error
    assert "lacks required columns ['source_id']" in check_header("f", _cols(source_id=None), ref).error
    ok = check_header("f", _cols(ruwe=None) + [Column("x_dr4", "float64")], ref)
    assert ok.error is None and [c.name for c in ok.extra] == ["x_dr4"] and ok.missing == ("ruwe",)
    assert ok.notes() == "added columns: x_dr4; null-filled missing columns: ruwe"
    refused = check_header("f", _cols() + [Column("x_dr4", "float64")], ref, extra_columns="refuse")
    assert "x_dr4" in refused.error and "ingest.extra_columns=refuse" in refused.error
    refused = check_header("f", _cols(ruwe=None), ref, missing_columns="refuse")
    assert "ruwe" in refused.error and "ingest.missing_columns=refuse" in refused.error
    assert "reserved" in check_header("f", _cols() + [Column("hpx", "int64")], ref).error


def test_parse_casts_to_the_table_columns_and_null_fills_missing_ones(tmp_path):
    from gaialake.io.bulkfile import format_columns
    from gaialake.io.dr3schema import header_text
    import gzip

    cols = _cols(ruwe=None)
    table = dr3_table(50, seed=43)
    path = tmp_path / "GaiaSource_1-2.csv.gz"
    with gzip.open(path, "wt", newline="\n") as out:
        out.write(header_text(cols))
        out.write("\n".join(format_columns(table, cols).to_pylist()) + "\n")
    out = _parse(path, expected=DR3_COLUMNS)
    assert out.column_names[:len(DR3_COLUMNS)] == [c.name for c in DR3_COLUMNS]
    assert out.num_rows == 50 and out.column("ruwe").null_count == 50
    assert out.column("ra").to_pylist() == table.column("ra").to_pylist()
    with pytest.raises(BulkFileError, match="GaiaSource_1-2.csv.gz.*column ra: file declares"):
        list(parse_bulk_file(str(path), _cols(ra="string")))


def test_os_errors_are_transient_and_content_errors_permanent(tmp_path):
    assert isinstance(file_error("f", PermissionError(errno.EACCES, "denied")), TransientFileError)
    assert isinstance(file_error("f", OSError(errno.EIO, "I/O error")), TransientFileError)
    assert isinstance(file_error("f", OSError("Truncated compressed stream")), BulkFileError)
    assert isinstance(file_error("f", EOFError("ended")), BulkFileError)
    with pytest.raises(TransientFileError, match="GaiaSource_9-9.csv.gz"):
        list(parse_bulk_file(str(tmp_path / "GaiaSource_9-9.csv.gz")))   # gone: not its content


def test_arrow_files_of_another_schema_than_the_tables_are_never_written(tmp_path):
    rows = pa.table({"hpx29": pa.array([5, 6], pa.int64()), "ra": pa.array(["1.0", "2.0"])})
    expected = pa.schema([("hpx29", pa.int64()), ("ra", pa.float64())])
    with pytest.raises(ValueError, match="column ra: string where the table has double"):
        write_partitioned(rows, str(tmp_path), "hpx", np.array([0, 0]), ["hpx29"],
                          expected=expected)
    assert not list(tmp_path.rglob("*.parquet"))
    good = rows.set_column(1, "ra", pa.array([1.0, 2.0]))
    assert len(write_partitioned(good, str(tmp_path), "hpx", np.array([0, 0]), ["hpx29"],
                                 expected=expected)) == 1

"""The bulk-file parser on files in ESA's exact format (no Spark)."""
from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pytest

from gaialake.io.bulkfile import BulkFileError, parse_bulk_file, read_header, read_lines
from gaialake.astro.healpix import radec_to_hpx29
from gaialake.io.dr3schema import DR3_COLUMNS
from tests.helpers import dr3_lines, dr3_table, write_dr3_file


def _parse(path, chunk=1 << 14):
    return pa.Table.from_batches(list(parse_bulk_file(str(path), chunk_bytes=chunk)))


def test_header_gives_all_152_columns_with_types(tmp_path):
    path = write_dr3_file(tmp_path / "GaiaSource_000000-000001.csv.gz", dr3_lines(dr3_table(5)))
    header = read_header(str(path))
    assert len(header.columns) == 152
    assert header.columns[2].name == "source_id" and header.columns[2].datatype == "int64"
    assert {c.datatype for c in header.columns} >= {"int64", "float32", "bool", "string", "int8"}


def test_clean_file_round_trips_values_nulls_booleans_and_designation(tmp_path):
    table = dr3_table(3000, seed=1)
    lines = dr3_lines(table)
    assert lines[0].count('"Gaia DR3 ') == 1 and ",null," in lines[0] and "False" in "".join(lines[:5]) + "True"
    path = write_dr3_file(tmp_path / "GaiaSource_000000-000001.csv.gz", lines)
    out = _parse(path)  # small chunks: many blocks
    assert out.num_rows == 3000
    assert out.column("reason").null_count == 3000
    assert out.column("source_id").to_pylist() == table.column("source_id").to_pylist()
    assert out.column("designation").to_pylist() == table.column("designation").to_pylist()
    assert out.column("parallax").null_count == table.column("parallax").null_count > 0
    assert out.column("astrometric_primary_flag").to_pylist() == \
        table.column("astrometric_primary_flag").to_pylist()
    np.testing.assert_array_equal(out.column("ra").to_numpy(), table.column("ra").to_numpy())
    np.testing.assert_array_equal(out.column("hpx29").to_numpy(),
                                  radec_to_hpx29(table.column("ra").to_numpy(), table.column("dec").to_numpy()))
    # line numbers: header lines (152 datatype + 7) then data
    first = out.column("line_number")[0].as_py()
    assert first == len(DR3_COLUMNS) + 9
    assert out.column("line_number").to_pylist() == list(range(first, first + 3000))


def test_empty_fields_mean_null_like_literal_null(tmp_path):
    lines = [ln.replace(",null,", ",,") for ln in dr3_lines(dr3_table(50, seed=2))]
    out = _parse(write_dr3_file(tmp_path / "GaiaSource_1-2.csv.gz", lines))
    assert out.num_rows == 50 and out.column("reason").null_count == 50
    assert out.column("pm").null_count == 50


@pytest.mark.parametrize("mutate, reason", [
    (lambda f: f[:-3], "wrong number of fields: 149, expected 152"),
    (lambda f: f + ["1"], "wrong number of fields: 153, expected 152"),
    (lambda f: f[:9] + ["abc"] + f[10:], "column parallax: 'abc' is not a valid float64"),
    (lambda f: f[:2] + ["12x"] + f[3:], "column source_id: '12x' is not a valid int64"),
    (lambda f: f[:5] + ["360.0"] + f[6:], "column ra: 360.0 outside [0, 360) deg"),
    (lambda f: f[:5] + ["-0.5"] + f[6:], "column ra: -0.5 outside [0, 360) deg"),
    (lambda f: f[:7] + ["91.5"] + f[8:], "column dec: 91.5 outside [-90, 90] deg"),
    (lambda f: f[:2] + ["null"] + f[3:], "missing source_id"),
    (lambda f: f[:36] + ["maybe"] + f[37:], "column astrometric_primary_flag: 'maybe' is not a valid bool"),
])
def test_bad_row_is_quarantined_with_line_and_reason(tmp_path, mutate, reason):
    lines = dr3_lines(dr3_table(400, seed=3))
    fields = lines[250].split(",")
    # designation holds no comma, so a plain split is exact here
    bad = ",".join(mutate(fields))
    lines[250] = bad
    out = _parse(write_dr3_file(tmp_path / "GaiaSource_1-2.csv.gz", lines), chunk=1 << 15)
    q = out.filter(pa.compute.is_valid(out.column("reason")))
    assert q.num_rows == 1
    assert q.column("reason")[0].as_py() == reason
    assert q.column("raw_line")[0].as_py() == bad
    assert q.column("line_number")[0].as_py() == len(DR3_COLUMNS) + 9 + 250
    assert out.num_rows == 400  # kept + quarantined = read


def test_corrupt_gzip_and_missing_header_raise_naming_the_file(tmp_path):
    good = write_dr3_file(tmp_path / "GaiaSource_1-2.csv.gz", dr3_lines(dr3_table(2000, seed=4)))
    data = good.read_bytes()
    corrupt = tmp_path / "GaiaSource_3-4.csv.gz"
    corrupt.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 100)
    with pytest.raises(BulkFileError, match="GaiaSource_3-4.csv.gz"):
        list(parse_bulk_file(str(corrupt)))
    headerless = tmp_path / "GaiaSource_5-6.csv.gz"
    with gzip.open(headerless, "wt") as out:
        out.write("\n".join(dr3_lines(dr3_table(3, seed=5))) + "\n")
    with pytest.raises(BulkFileError, match="GaiaSource_5-6.csv.gz.*ECSV"):
        list(parse_bulk_file(str(headerless)))


def test_read_lines_returns_raw_text(tmp_path):
    lines = dr3_lines(dr3_table(20, seed=6))
    path = write_dr3_file(tmp_path / "GaiaSource_1-2.csv.gz", lines)
    first = len(DR3_COLUMNS) + 9
    got = read_lines(str(path), [first, first + 19])
    assert got == {first: lines[0], first + 19: lines[19]}

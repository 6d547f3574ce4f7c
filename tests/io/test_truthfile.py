"""A mock's truth file registered by ingest: columns checked with the file named, idempotent."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gaialake.io.truthfile import TruthFileError, register_truth_files


def _write(raw, **columns) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), raw / "truth_origin.parquet")


def test_truth_file_becomes_its_table_and_bad_files_are_named(spark, conf, tmp_path):
    raw = tmp_path / "raw"
    assert register_truth_files(spark, conf, str(raw), "r0") == {}   # no file: nothing
    _write(raw, source_id=pa.array([1, 2, 3], pa.int64()),
           origin=pa.array(["in_situ", "accreted", None]))
    assert register_truth_files(spark, conf, str(raw), "r1") == {"truth_origin": 3}
    assert register_truth_files(spark, conf, str(raw), "r2") == {"truth_origin": 3}  # replaced
    rows = spark.read.format("delta").load(conf.table_path("truth_origin")).orderBy("source_id")
    got = [(r.source_id, r.origin, r.parent_id, r.run_id) for r in rows.collect()]
    assert got == [(1, "in_situ", None, "r2"), (2, "accreted", None, "r2"), (3, None, None, "r2")]
    _write(raw, source_id=pa.array([1], pa.int64()), origin=pa.array(["halo"]))
    with pytest.raises(TruthFileError, match=r"truth_origin.parquet: source_id 1 has origin 'halo'"):
        register_truth_files(spark, conf, str(raw), "r3")
    _write(raw, source_id=pa.array([1.5]), origin=pa.array(["in_situ"]), extra=pa.array([1]))
    with pytest.raises(TruthFileError, match=r"truth_origin.parquet.*unknown extra.*source_id is double"):
        register_truth_files(spark, conf, str(raw), "r4")

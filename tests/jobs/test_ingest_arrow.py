"""The arrow writer of `gaialake ingest`: pyarrow data files committed to Delta by the driver."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gaialake.io.delta import read_table
from gaialake.io.deltafiles import STRING_PREFIX, file_stats, write_partitioned
from gaialake.jobs import ingest
from tests.helpers import dr3_lines, dr3_table, write_dr3_file


def test_file_stats_are_deltas_min_max_null_count_and_leave_out_what_cannot_be_compared():
    long_name = "x" * (STRING_PREFIX + 5)
    table = pa.table({"a": pa.array([3, None, 1], pa.int64()),
                      "f": pa.array([0.5, -2.0, None], pa.float32()),
                      "nan": pa.array([1.0, float("nan"), 2.0]),
                      "s": pa.array(["b", long_name, "a" + long_name]),
                      "empty": pa.array([None, None, None], pa.float64())})
    stats = json.loads(file_stats(table, ["a", "f", "nan", "s", "empty", "absent"]))
    assert stats["numRecords"] == 3
    assert stats["minValues"] == {"a": 1, "f": -2.0, "s": ("a" + long_name)[:STRING_PREFIX]}
    assert stats["maxValues"] == {"a": 3, "f": 0.5}   # "x"*37 would need Delta's truncated max
    assert stats["nullCount"] == {"a": 1, "f": 1, "nan": 0, "s": 0, "empty": 3}


def test_write_partitioned_writes_one_sorted_file_per_partition_folder(tmp_path):
    hpx29 = np.array([5, 6, 9, 17, 18])
    table = pa.table({"hpx29": hpx29, "v": [1.0, 2.0, 3.0, 4.0, 5.0]})
    records = write_partitioned(table, str(tmp_path), "hpx", hpx29 >> 3, ["hpx29"])
    assert [r["partition_value"] for r in records] == ["0", "1", "2"]
    for r, rows in zip(records, ([5, 6], [9], [17, 18])):
        assert r["path"].startswith(f"hpx={r['partition_value']}/")
        data = pq.read_table(tmp_path / r["path"])
        assert data.column("hpx29").to_pylist() == rows and data.column_names == ["hpx29", "v"]
        assert r["size"] == (tmp_path / r["path"]).stat().st_size
        assert json.loads(r["stats"])["minValues"]["hpx29"] == rows[0]


def test_arrow_writer_replaces_rows_of_spark_written_files_and_keeps_stats_exact(spark, conf):
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    for i, seed in enumerate((31, 32)):
        write_dr3_file(raw / f"GaiaSource_00000{i}-00000{i}.csv.gz",
                       dr3_lines(dr3_table(300, seed=seed, ra_range=(10 + 40 * i, 60 + 40 * i))))
    # Spark's writer, with a shuffle by hpx: its files mix rows of both sources
    ingest.run(conf.with_overrides(["ingest.writer=spark", "ingest.shuffle_by_hpx=true"]))
    write_dr3_file(raw / "GaiaSource_000000-000000.csv.gz", dr3_lines(dr3_table(150, seed=33)))
    arrow = conf.with_overrides(["ingest.writer=arrow"])
    assert ingest.run(arrow)["ingested"] == 1

    path = conf.table_path("gaia_source")
    table = read_table(spark, conf, "gaia_source")
    counts = dict(table.groupBy("source_file").count().collect())
    assert counts == {"GaiaSource_000000-000000.csv.gz": 150,
                      "GaiaSource_000001-000001.csv.gz": 300}
    ops = [r.operation for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()]
    assert ops[:2] == ["WRITE", "DELETE"]   # newest first: the arrow commit after the DELETE

    # the stats of every file the arrow commit added are those of its rows
    last = sorted((Path(path) / "_delta_log").glob("*.json"))[-1]
    adds = [a["add"] for a in map(json.loads, last.read_text().splitlines()) if "add" in a]
    assert adds and sum(json.loads(a["stats"])["numRecords"] for a in adds) == 150
    for a in adds:
        stats, rows = json.loads(a["stats"]), pq.read_table(Path(path) / a["path"])
        for col in ("source_id", "ra", "hpx29", "source_file"):
            assert stats["minValues"][col] == rows.column(col).to_pylist()[np.argmin(
                rows.column(col).to_numpy(zero_copy_only=False))]
        assert np.all(np.diff(rows.column("hpx29").to_numpy()) >= 0)

    # a second re-ingest removes the arrow files in the same commit; Spark's own writes still work
    write_dr3_file(raw / "GaiaSource_000000-000000.csv.gz", dr3_lines(dr3_table(90, seed=34)))
    ingest.run(arrow)
    assert [r.operation for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()][:2] == [
        "WRITE", "WRITE"]
    assert read_table(spark, conf, "gaia_source").count() == 390
    spark.sql(f"DELETE FROM delta.`{path}` WHERE source_file = 'GaiaSource_000001-000001.csv.gz'")
    assert read_table(spark, conf, "gaia_source").count() == 90

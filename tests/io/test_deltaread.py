"""Reading Delta tables without Spark matches Spark's own read (after overwrites and replaceWhere)."""
from __future__ import annotations

from gaialake.io.deltaread import read_delta
from gaialake.io.delta import write_table


def test_pyarrow_reader_sees_the_same_rows_as_spark(spark, conf):
    df = spark.range(0, 500).selectExpr("id", "id % 4 AS part", "cast(id * 0.5 AS double) AS x")
    write_table(df, conf, "_t", partition_by=["part"])
    # replace one partition's rows, then 12 more commits so a checkpoint is written
    write_table(spark.range(1000, 1010).selectExpr("id", "cast(1 AS bigint) AS part", "cast(0 AS double) AS x"), conf, "_t",
                partition_by=["part"], replace_where="part = 1")
    for i in range(12):
        write_table(spark.range(2000 + i, 2001 + i).selectExpr("id", "cast(3 AS bigint) AS part", "cast(1 AS double) AS x"), conf, "_t",
                    partition_by=["part"], mode="append")
    got = read_delta(conf.table_path("_t")).to_pandas().sort_values("id").reset_index(drop=True)
    want = spark.read.format("delta").load(conf.table_path("_t")).toPandas().sort_values("id").reset_index(drop=True)
    assert len(got) == len(want) == 375 + 10 + 12
    assert (got[want.columns].astype(want.dtypes.to_dict()) == want).all().all()


def test_an_empty_table_reads_as_no_rows_with_its_columns(spark, conf):
    empty = spark.range(0).selectExpr("id", "cast(id AS string) AS name", "cast(id AS double) AS x")
    write_table(empty, conf, "_empty_t")
    got = read_delta(conf.table_path("_empty_t"))
    assert got.num_rows == 0
    assert got.schema.names == ["id", "name", "x"]
    assert [str(t) for t in got.schema.types] == ["int64", "string", "double"]
    assert read_delta(conf.table_path("_empty_t"), columns=["x"]).schema.names == ["x"]

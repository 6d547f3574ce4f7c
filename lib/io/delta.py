"""Delta table I/O: write with idempotent replace, register in the catalog, read by spec.

Tables are named by their :class:`gaialake.tables.TableSpec` (a name is looked up there)."""
from __future__ import annotations

import json
import time
from typing import Sequence

from gaialake.conf import Conf
from gaialake.log import get_logger
from gaialake.tables import TableSpec, spec

__all__ = ["table_exists", "write_table", "register_table", "read_table", "qualified",
           "commit_files", "table_layout", "in_predicate"]

log = get_logger("delta")


def qualified(conf: Conf, table: TableSpec | str) -> str:
    """``<catalog.database>.<table name>``."""
    return f"{conf.get('catalog.database')}.{spec(table).name}"


def table_exists(spark, path: str) -> bool:
    """Whether a Delta table is at ``path``."""
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def write_table(df, conf: Conf, table: TableSpec | str, *, mode: str = "overwrite",
                partition_by: Sequence[str] | None = None, replace_where: str | None = None,
                properties: dict[str, str] | None = None) -> str:
    """Write ``df`` to ``<warehouse>/<table>`` and register it; returns the path.

    ``partition_by`` defaults to the spec's partition columns. ``replace_where`` replaces
    exactly the rows matching the predicate (idempotent re-runs); on a table that does not
    exist yet it is a plain create.
    """
    table = spec(table)
    if partition_by is None:
        partition_by = table.partition_by
    spark = df.sparkSession
    path = conf.table_path(table.name)
    exists = table_exists(spark, path)
    writer = df.write.format("delta")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_where is not None and exists:
        writer = writer.mode("overwrite").option("replaceWhere", replace_where)
    elif not exists:
        writer = writer.mode("overwrite")
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
    else:
        writer = writer.mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    register_table(spark, conf, table)
    return path


def register_table(spark, conf: Conf, table: TableSpec | str) -> None:
    """(Re)register ``gaialake.<table>`` as an external Delta table at its warehouse path."""
    table = spec(table)
    path = conf.table_path(table.name)
    name = qualified(conf, table)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {conf.get('catalog.database')}")
    if spark.catalog.tableExists(name):
        current = spark.sql(f"DESCRIBE DETAIL {name}").select("location").first()[0]
        if current.rstrip("/").replace("file:", "") == path.rstrip("/").replace("file:", ""):
            return
        spark.sql(f"DROP TABLE {name}")
    spark.sql(f"CREATE TABLE {name} USING DELTA LOCATION '{path}'")


def read_table(spark, conf: Conf, table: TableSpec | str):
    """A Delta table of the warehouse as a DataFrame (by path: works with any catalog)."""
    table = spec(table)
    path = conf.table_path(table.name)
    if not table_exists(spark, path):
        raise FileNotFoundError(f"table {table.name!r} not found at {path}: run the job that writes it "
                                f"first (see `gaialake pipeline --help`)")
    return spark.read.format("delta").load(path)


def in_predicate(column: str, values: Sequence[str]) -> str:
    """SQL ``column IN ('a', 'b')`` of string values (quotes escaped)."""
    return f"{column} IN (" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def table_layout(spark, path: str) -> tuple[list[str], list[str]]:
    """The Delta table's column names (partition columns included) and the columns it keeps
    min/max/null-count statistics of (``delta.dataSkippingStatsColumns``; empty when unset)."""
    none = spark._jvm.scala.Option.empty()
    snapshot = _delta_log(spark, path).update(False, none, none)
    named = snapshot.metadata().configuration().get("delta.dataSkippingStatsColumns")
    named = named.get() if named.isDefined() else ""
    return (list(snapshot.schema().fieldNames()),
            [c.strip().strip("`") for c in named.split(",") if c.strip()])


def _delta_log(spark, path: str):
    return spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)


def commit_files(spark, path: str, adds: Sequence[dict], partition_by: str, column: str,
                 values: Sequence[str]) -> None:
    """Commit data files written outside Spark (:func:`gaialake.io.deltafiles.write_partitioned`
    records) to the Delta table at ``path``, replacing the rows whose ``column`` is in ``values``.

    One commit (a ``WRITE`` with that predicate in the history) adds the files and removes every
    file whose statistics show it holds only such rows. Files that hold them among other rows (or
    have no statistics) are first cleaned by a Delta ``DELETE``, an earlier commit. Delta's
    optimistic transaction checks the commit against concurrent writers.
    """
    from delta.tables import DeltaTable

    predicate = in_predicate(column, values)
    jvm = spark._jvm
    delta_log = _delta_log(spark, path)
    txn = delta_log.startTransaction()
    pure, mixed = _files_holding(spark, txn, column, set(values))
    if mixed:
        log.info("%d files hold rows of %s among others: DELETE first", mixed, predicate[:80])
        DeltaTable.forPath(spark, path).delete(predicate)
        txn = delta_log.startTransaction()
        pure, mixed = _files_holding(spark, txn, column, set(values))
    txn.readWholeTable()
    now = int(time.time() * 1000)
    actions = [{"remove": {"path": f["path"], "deletionTimestamp": now, "dataChange": True,
                           "extendedFileMetadata": True, "partitionValues": f["partitionValues"],
                           "size": f["size"]}} for f in pure]
    actions += [{"add": {"path": a["path"], "size": a["size"],
                         "partitionValues": {partition_by: a["partition_value"]},
                         "modificationTime": a["modification_time"], "dataChange": True,
                         "stats": a["stats"]}} for a in adds]
    from_json = jvm.org.apache.spark.sql.delta.actions.Action.fromJson
    seq = jvm.org.apache.spark.api.python.PythonUtils.toSeq
    operation = jvm.org.apache.spark.sql.delta.DeltaOperations.Write(
        jvm.org.apache.spark.sql.SaveMode.valueOf("Overwrite"),
        jvm.scala.Option.apply(seq([partition_by])), jvm.scala.Option.apply(predicate),
        jvm.scala.Option.empty())
    version = txn.commit(seq([from_json(json.dumps(a)) for a in actions]), operation)
    log.info("committed version %d of %s: %d files added, %d removed", version, path, len(adds),
             len(pure))


def _files_holding(spark, txn, column: str, values: set[str]) -> tuple[list[dict], int]:
    """Files of the transaction's snapshot that may hold rows with ``column`` in ``values``: those
    holding only such rows (path, size, partitionValues), and how many others may hold some."""
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    files = DataFrame(txn.snapshot().allFiles().toDF(), spark)
    bounds = F.from_json("stats", f"minValues struct<{column}: string>, "
                                  f"maxValues struct<{column}: string>")
    rows = (files.select("path", "size", "partitionValues", bounds.alias("s"))
            .select("path", "size", "partitionValues", F.col(f"s.minValues.{column}").alias("lo"),
                    F.col(f"s.maxValues.{column}").alias("hi"))
            .where(F.col("lo").isNull() | F.col("hi").isNull()
                   | ((F.col("lo") <= max(values)) & (F.col("hi") >= min(values))))
            .collect())
    pure, mixed = [], 0
    for r in rows:
        if r.lo is not None and r.lo == r.hi and r.lo in values:
            pure.append({"path": r.path, "size": r.size,
                         "partitionValues": dict(r.partitionValues)})
        elif r.lo is None or r.hi is None or any(r.lo <= v <= r.hi for v in values):
            mixed += 1
    return pure, mixed

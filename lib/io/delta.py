"""Delta table I/O: write with idempotent replace, register in the catalog, read by spec.

Tables are named by their :class:`gaialake.tables.TableSpec` (a name is looked up there)."""
from __future__ import annotations

import json
import time
from typing import Sequence

from gaialake.conf import Conf
from gaialake.log import get_logger
from gaialake.tables import TableSpec, spec

__all__ = ["table_exists", "file_count", "latest_snapshot",
           "write_table", "register_table", "read_table", "qualified",
           "commit_files", "table_layout", "in_predicate", "CatalogConflictError",
           "check_catalog_entry", "EmptyResultError", "refuse_empty", "data_files"]

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
    check_catalog_entry(spark, conf, table)   # a conflicting catalog entry fails before writing
    exists = table_exists(spark, path)
    writer = df.write.format("delta")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_where is not None and exists:   # new columns of the spec join the table
        writer = (writer.mode("overwrite").option("replaceWhere", replace_where)
                  .option("mergeSchema", "true"))
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


class CatalogConflictError(RuntimeError):
    """A catalog entry points at another location than the conf's warehouse."""


def _same_location(a: str, b: str) -> bool:
    def norm(p: str) -> str:
        p = p.rstrip("/")
        return p[len("file:"):].replace("///", "/") if p.startswith("file:") else p
    return norm(a) == norm(b)


def _may_repoint(spark, conf: Conf) -> bool:
    """Whether an entry of this session's catalog may follow ``conf``'s warehouse: with
    ``catalog.repoint``, or when the catalog is not ``conf``'s own (an in-memory catalog, or a
    local metastore other than ``paths.metastore``: one session serving several warehouses)."""
    from gaialake.io.spark import session_metastore

    if bool(conf.get("catalog.repoint", False)):
        return True
    if str(conf.get("spark.mode", "local")) != "local":
        return False
    owner = session_metastore(spark)
    return owner is None or not _same_location(owner, conf.path("paths.metastore"))


def register_table(spark, conf: Conf, table: TableSpec | str) -> None:
    """Register ``<catalog.database>.<table>`` as an external Delta table at its warehouse path.

    An entry that already points at another location is not re-pointed silently: it fails with
    :class:`CatalogConflictError` naming both locations, unless ``catalog.repoint`` is true or
    the session's catalog is not ``conf``'s own (see :func:`_may_repoint`; then it is re-pointed
    with a log line naming both).
    """
    table = spec(table)
    path = conf.table_path(table.name)
    name = qualified(conf, table)
    current = check_catalog_entry(spark, conf, table)
    if current is not None and _same_location(current, path):
        return
    if current is not None:
        log.warning("catalog table %s re-pointed from %s to %s", name, current, path)
        spark.sql(f"DROP TABLE {name}")
    spark.sql(f"CREATE TABLE {name} USING DELTA LOCATION '{path}'")


def check_catalog_entry(spark, conf: Conf, table: TableSpec | str) -> str | None:
    """The location the catalog entry of ``table`` points at (None: no entry); fails with
    :class:`CatalogConflictError` naming both locations when it is not ``conf``'s warehouse
    path and may not be re-pointed (:func:`_may_repoint`)."""
    table = spec(table)
    name = qualified(conf, table)
    path = conf.table_path(table.name)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {conf.get('catalog.database')}")
    try:
        if not spark.catalog.tableExists(name):
            return None
        current = spark.sql(f"DESCRIBE DETAIL {name}").select("location").first()[0]
    except Exception as err:  # its location holds no Delta table any more: nothing to lose
        log.warning("catalog table %s points at no Delta table (%s): registered anew", name,
                    str(err).strip().splitlines()[0][:200])
        return "<no table>"
    if not _same_location(current, path) and not _may_repoint(spark, conf):
        raise CatalogConflictError(
            f"catalog table {name} points at {current}, not at {path} (paths.warehouse "
            f"{conf.path('paths.warehouse')}): refusing to re-point it. Give this warehouse "
            f"a catalog of its own (paths.metastore, or catalog.database), or --set "
            f"catalog.repoint=true to re-point {name} to {path}")
    return current


class EmptyResultError(RuntimeError):
    """A job's upstream gave no rows: its table is kept rather than replaced by an empty one."""


def refuse_empty(conf: Conf, table: TableSpec | str, why: str) -> None:
    """Fail with :class:`EmptyResultError` (the table kept as it is) unless ``run.allow_empty``:
    a job must not replace ``table`` with zero rows from an empty upstream without saying so.
    ``why`` says where the rows went (e.g. "patch_stars is empty")."""
    table = spec(table)
    if bool(conf.get("run.allow_empty", False)):
        log.warning("%s: writing %s with 0 rows (run.allow_empty)", why, table.name)
        return
    raise EmptyResultError(
        f"{why}: {table.name} at {conf.table_path(table.name)} is kept as it is (not replaced "
        f"by 0 rows). Check the upstream table and the conf, or pass --allow-empty "
        f"(--set run.allow_empty=true) to write it empty")


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


def data_files(spark, path: str) -> list[tuple[str, dict[str, str]]]:
    """(URI, partition values) of every data file of the current snapshot of the Delta table at
    ``path``, for readers outside Spark. A table whose files hold rows Delta alone reads right
    (deletion vectors, column mapping) raises ``NotImplementedError`` naming the fix."""
    from urllib.parse import unquote

    from pyspark.sql import DataFrame

    none = spark._jvm.scala.Option.empty()
    snapshot = _delta_log(spark, path).update(False, none, none)
    mapping = snapshot.metadata().configuration().get("delta.columnMapping.mode")
    if mapping.isDefined() and mapping.get() != "none":
        raise NotImplementedError(f"{path}: column mapping ({mapping.get()}): its files' column "
                                  f"names are not the table's; read it with Spark")
    root = str(snapshot.deltaLog().dataPath().toString()).rstrip("/")
    rows = DataFrame(snapshot.allFiles().toDF(), spark).select(
        "path", "partitionValues", "deletionVector").collect()
    if any(r.deletionVector is not None for r in rows):
        raise NotImplementedError(f"{path}: deletion vectors hide rows still in its files: "
                                  f"REORG TABLE delta.`{path}` APPLY (PURGE) rewrites them")
    return [(unquote(r.path) if ":" in r.path.split("/")[0] else f"{root}/{unquote(r.path)}",
             dict(r.partitionValues or {})) for r in rows]


def latest_snapshot(spark, path: str):
    """The latest snapshot (a JVM ``Snapshot``) of the Delta table at ``path``; None when there
    is no table there."""
    if not table_exists(spark, path):
        return None
    none = spark._jvm.scala.Option.empty()
    return _delta_log(spark, path).update(False, none, none)


def file_count(spark, path: str) -> int | None:
    """Data files in the latest snapshot of the Delta table at ``path`` (None: no table there);
    from the snapshot's checksum file where Delta wrote one, so no Spark job."""
    snapshot = latest_snapshot(spark, path)
    return None if snapshot is None else int(snapshot.numOfFiles())


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

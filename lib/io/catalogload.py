"""Loading a batch of bulk files into ``gaia_source``: headers, staging, duplicates, the two
writers, pruning, and the per-file records of ``ingest_log`` (the Spark plumbing of
``gaialake ingest``).

Each file's header is read first (:func:`read_headers`; the files of a batch are dealt by size
to two Spark tasks per core, one per file on a cluster wider than the batch) and checked
against the table's columns (:func:`plan_batch`; the DR3 columns when ``gaia_source`` does not
exist yet): a file with a type conflict or without a required column fails alone, its extra
columns are added to the table (``ingest.extra_columns: evolve``) or refuse it (``refuse``),
the table's columns it lacks are null-filled (``ingest.missing_columns: null``) or refuse it.
A batch is then staged to Parquet once in the table's columns (:func:`stage_batch`) under a
folder of its own run; a ``source_id`` seen twice keeps its first occurrence by (file name,
line) and the later ones are quarantined (:func:`find_duplicates`); the valid rows are written
by Spark's Delta writer (:func:`write_rows_spark`) or by pyarrow on executors with one driver
commit (:func:`write_rows_arrow`). Every write replaces exactly the rows of the batch's files
(``source_file IN ...``), so a re-run of a batch ends with the same rows.

``ingest_log.status``: ``ok`` (``error`` then holds notes such as ``added columns: x``),
``failed`` (the file's content: tried again only with ``ingest.retry_failed`` or once replaced)
or ``failed_transient`` (a cause outside the file: tried again by the next run).
"""
from __future__ import annotations

import fcntl
import json
import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.catalogio import (FILES_DDL, HEADER_RESULT_DDL, KEY_COLUMNS,
                                   QUARANTINE_COLUMNS, STAGE_RESULT_DDL, WRITE_RESULT_DDL,
                                   BulkFile, columns_from_json, raw_rows, read_headers_arrow,
                                   spark_schema_ddl, stage_files_arrow, staged_file,
                                   write_files_arrow)
from gaialake.io.delta import (commit_files, file_count, in_predicate, latest_snapshot,
                               read_table, register_table, table_exists, table_layout,
                               write_table)
from gaialake.io.dr3schema import (DR3_COLUMNS, Column, HeaderCheck, check_header,
                                   datatype_of_spark, spark_type)
from gaialake.io.spark import dealt_frame
from gaialake.log import get_logger

__all__ = ["StagedBatch", "BatchPlan", "PruneRefused", "OK", "FAILED", "FAILED_TRANSIENT",
           "ingested_files", "prune_files", "table_columns", "read_headers", "plan_batch",
           "prepare_gaia_source", "failed_log_rows", "batch_log_rows", "write_ingest_log",
           "create_gaia_source", "stage_batch", "find_duplicates", "quarantine_rows",
           "write_quarantine",
           "choose_writer", "write_rows_spark", "write_batch_arrow", "commit_batch_arrow",
           "WrittenBatch", "staged_counts", "may_hold_duplicates", "clear_path",
           "source_files_in", "staging_path", "ingest_lock", "STATS_COLUMNS"]

log = get_logger("ingest")

#: ``ingest_log.status`` of a file whose rows are in the table.
OK = "ok"
#: ``ingest_log.status`` of a file that failed for its content (permanent).
FAILED = "failed"
#: ``ingest_log.status`` of a file that failed for a cause outside it (retried by the next run).
FAILED_TRANSIENT = "failed_transient"
#: Columns of ``gaia_source`` whose min/max statistics Delta keeps (cone searches prune on them).
STATS_COLUMNS = "source_id,ra,dec,hpx29,source_file,parallax,pmra,pmdec,phot_g_mean_mag,bp_rp"
#: The quarantine rows' columns before ``run_id``.
_QUARANTINE_DDL = "source_file string, line_number long, raw_line string, reason string"
#: A valid row's key in the staging area (:data:`gaialake.io.catalogio.KEY_COLUMNS`).
_KEYS_DDL = "source_id long, source_file string, line_number long"
#: Columns ingest adds to the files' own in ``gaia_source``.
_ADDED = ("hpx29", "source_file", "hpx", "run_id")


class PruneRefused(RuntimeError):
    """``ingest.prune_missing`` would delete too much (the message says why and what to set)."""


def source_files_in(names: Sequence[str]) -> str:
    """SQL predicate ``source_file IN (...)``: the rows of these bulk files."""
    return in_predicate("source_file", list(names))


def staging_path(conf: Conf, run_id: str) -> str:
    """The run's own staging folder, ``<warehouse>/_staging/ingest-<run_id>``: concurrent
    ingests on one warehouse never share (or clear) each other's staged files."""
    return f"{conf.table_path('_staging')}/ingest-{run_id}"


@contextmanager
def ingest_lock(conf: Conf) -> Iterator[None]:
    """Serialize ingests of one local warehouse: an exclusive lock on
    ``<warehouse>/_locks/ingest.lock`` (released by the OS when a run dies, even by kill -9); a
    second run logs who holds it and waits. Cluster warehouses take no lock (their staging is
    per run and Delta's optimistic commits reject a conflicting write)."""
    warehouse = conf.path("paths.warehouse")
    if "://" in warehouse or warehouse.startswith("dbfs:"):
        yield
        return
    folder = conf.table_path("_locks")
    os.makedirs(folder, exist_ok=True)
    path = f"{folder}/ingest.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            log.warning("another ingest holds %s (%s): waiting for it to finish", path, holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as err:  # a file system without locks (some FUSE mounts)
            log.warning("cannot lock %s (%s): concurrent ingests are not serialized", path, err)
            yield
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC\n")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ingested_files(spark, conf: Conf, retry_failed: bool = False) -> dict[str, int]:
    """Files in ``ingest_log`` -> their size (bytes) when ingested; one of the same name and size
    is not ingested again (a replaced file is). Files that failed for a transient cause map to
    -1 (tried again), and those that failed for their content too with ``retry_failed``."""
    if not table_exists(spark, conf.table_path(tables.INGEST_LOG.name)):
        return {}
    rows = read_table(spark, conf, tables.INGEST_LOG).select("source_file", "status",
                                                             "file_bytes").collect()
    return {r.source_file: (-1 if r.status == FAILED_TRANSIENT
                            or (retry_failed and r.status == FAILED) else int(r.file_bytes))
            for r in rows}


def prune_files(spark, conf: Conf, gone: set[str], listed: int,
                max_fraction: float) -> dict[str, Any]:
    """Delete the rows of the files ``gone`` (in ``ingest_log``, no longer under ``paths.raw``)
    from ``gaia_source``, its quarantine and ``ingest_log``; returns what was pruned and the
    table versions to restore to undo it (also logged).

    Refuses (:class:`PruneRefused`, nothing deleted) when ``paths.raw`` holds no bulk file
    (``listed`` = 0: a mistyped or unmounted folder) or when the files hold more than
    ``max_fraction`` of ``gaia_source``'s rows (``rows_kept`` of ``ingest_log``).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not gone:
        return {}
    raw = conf.path("paths.raw")
    if listed == 0:
        raise PruneRefused(
            f"ingest.prune_missing: paths.raw={raw} holds no bulk files, so pruning would delete "
            f"the rows of all {len(gone)} ingested files; refused (nothing deleted). Point "
            f"paths.raw at the files, or set ingest.prune_missing=false")
    kept = (read_table(spark, conf, tables.INGEST_LOG)
            .agg(F.sum("rows_kept").alias("all"),
                 F.sum(F.when(F.col("source_file").isin(sorted(gone)), F.col("rows_kept"))
                       .otherwise(0)).alias("gone")).first())
    total, rows = int(kept["all"] or 0), int(kept["gone"] or 0)
    if total and rows > max_fraction * total:
        raise PruneRefused(
            f"ingest.prune_missing: the {len(gone)} files gone from paths.raw={raw} hold {rows} of "
            f"{total} rows of {tables.GAIA_SOURCE.name} ({rows / total:.0%}), more than "
            f"ingest.prune_max_fraction={max_fraction}; refused (nothing deleted). Restore the "
            f"files, or set ingest.prune_max_fraction={math.ceil(100 * rows / total) / 100} to "
            f"delete them; e.g. "
            f"{sorted(gone)[:3]}")
    log.info("pruning %d rows of %d files no longer under paths.raw", rows, len(gone))
    cond = source_files_in(sorted(gone))
    restore: dict[str, int] = {}
    for table in (tables.GAIA_SOURCE, tables.GAIA_SOURCE_QUARANTINE, tables.INGEST_LOG):
        path = conf.table_path(table.name)
        if table_exists(spark, path):
            delta = DeltaTable.forPath(spark, path)
            restore[table.name] = int(delta.history(1).first()["version"])
            delta.delete(cond)
            log.info("pruned %s; to undo: RESTORE TABLE delta.`%s` TO VERSION AS OF %d", table.name,
                     path, restore[table.name])
    return {"pruned_files": len(gone), "pruned_rows": rows, "restore_versions": restore}


def table_columns(spark, conf: Conf) -> tuple[list[Column], bool]:
    """The columns files are checked against: ``gaia_source``'s own (less the ones ingest adds)
    and True, or the DR3 columns and False when the table does not exist yet."""
    path = conf.table_path(tables.GAIA_SOURCE.name)
    if not table_exists(spark, path):
        return list(DR3_COLUMNS), False
    schema = spark.read.format("delta").load(path).schema
    return [Column(f.name, datatype_of_spark(f.dataType.simpleString()))
            for f in schema.fields if f.name not in _ADDED], True


def read_headers(spark, batch: Sequence[BulkFile]) -> dict[str, tuple[list[Column] | None,
                                                                        str | None, bool]]:
    """Each file's header columns (:func:`_files_frame`'s tasks): name -> (columns, None,
    False), or (None, error, transient) when its header could not be read."""
    files_df = _files_frame(spark, batch)
    rows = files_df.mapInArrow(read_headers_arrow(), HEADER_RESULT_DDL).collect()
    return {r.source_file: (columns_from_json(r.columns) if r.columns is not None else None,
                            r.error, bool(r.transient)) for r in rows}


def _files_frame(spark, batch: Sequence[BulkFile]):
    """The batch's files as rows (:data:`FILES_DDL`) dealt by size to a few Spark tasks each
    (:func:`gaialake.io.spark.dealt_frame`; one file per task on a cluster wider than the
    batch); a task parses its files one after the other, so its memory is one file's."""
    return dealt_frame(spark, {f: f.size for f in batch}, lambda f: (f.path, f.name), FILES_DDL)


@dataclass
class BatchPlan:
    """A batch after its headers were checked: the files to stage, the table's columns to stage
    them in (``target``), the columns to add to the table (``extra``), each refused file's
    (error, transient) and each accepted file's notes for ``ingest_log``."""

    accepted: list[BulkFile]
    target: list[Column]
    extra: list[Column]
    failures: dict[str, tuple[str, bool]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def plan_batch(headers: dict[str, tuple[list[Column] | None, str | None, bool]],
               batch: Sequence[BulkFile], reference: Sequence[Column], extra_columns: str,
               missing_columns: str) -> BatchPlan:
    """Check each file's header against ``reference`` (the table's columns, growing by the extra
    columns of the batch's earlier files): see :func:`gaialake.io.dr3schema.check_header`."""
    target = list(reference)
    plan = BatchPlan([], target, [])
    for f in batch:
        columns, error, transient = headers[f.name]
        if columns is None:
            plan.failures[f.name] = (error or f"{f.name}: header unreadable", transient)
            continue
        check: HeaderCheck = check_header(f.name, columns, target, extra_columns,
                                          missing_columns, tables.GAIA_SOURCE.name)
        if check.error is not None:
            plan.failures[f.name] = (check.error, False)
            continue
        plan.accepted.append(f)
        target.extend(check.extra)
        plan.extra.extend(check.extra)
        if check.notes():
            plan.notes[f.name] = check.notes()
    for name, (err, transient) in plan.failures.items():
        log.error("file %s (others go on): %s", "failed transiently" if transient else "refused", err)
    for name, note in plan.notes.items():
        log.info("%s: %s", name, note)
    return plan


def prepare_gaia_source(spark, conf: Conf, plan: BatchPlan) -> None:
    """Create ``gaia_source`` with the plan's columns, or add the plan's extra columns to it
    (Delta schema evolution: earlier rows read them as null); logged."""
    path = conf.table_path(tables.GAIA_SOURCE.name)
    if not table_exists(spark, path):
        create_gaia_source(spark, conf, plan.target)
        return
    if plan.extra:
        cols = ", ".join(f"`{c.name}` {spark_type(c.datatype)}" for c in plan.extra)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({cols})")
        log.warning("added columns to %s (ingest.extra_columns=evolve): %s",
                    tables.GAIA_SOURCE.name, ", ".join(c.name for c in plan.extra))


def failed_log_rows(failed: dict[BulkFile, tuple[str, bool]], run_id: str) -> list[tuple]:
    """``ingest_log`` rows of files that failed as a whole: (error, transient) per file."""
    now = datetime.now(timezone.utc)
    return [(f.name, f.size, FAILED_TRANSIENT if transient else FAILED, err, 0, 0, 0, now, run_id)
            for f, (err, transient) in failed.items()]


def write_ingest_log(spark, conf: Conf, rows: list[tuple]) -> None:
    """Replace the ``ingest_log`` rows of the files in ``rows`` (the batch's completion marker)."""
    write_table(spark.createDataFrame(rows, tables.INGEST_LOG.schema), conf, tables.INGEST_LOG,
                replace_where=source_files_in([r[0] for r in rows]))


def create_gaia_source(spark, conf: Conf, columns: Sequence[Column]) -> None:
    """Create ``gaia_source`` if absent: the files' columns, ``hpx29``, ``source_file``, ``hpx``
    (the partition column) and ``run_id``, with statistics on :data:`STATS_COLUMNS`."""
    from delta.tables import DeltaTable

    path = conf.table_path(tables.GAIA_SOURCE.name)
    if table_exists(spark, path):
        return
    ddl = f"{spark_schema_ddl(columns)}, hpx long, run_id string"
    schema = spark.createDataFrame([], ddl).schema
    (DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
     .partitionedBy(*tables.GAIA_SOURCE.partition_by)
     .property("delta.dataSkippingStatsColumns", STATS_COLUMNS).execute())


def clear_path(spark, path: str) -> None:
    """Remove a directory (a staging area) on any Hadoop file system."""
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    fs = p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.exists(p):
        fs.delete(p, True)


@dataclass
class StagedBatch:
    """A batch parsed and staged to Parquet: ``rows`` (every staged row, ``reason`` set on the
    invalid ones; None when no file could be read), the staged file names, and the (error,
    transient) of each file that failed as a whole."""

    rows: Any
    staged: list[str]
    failures: dict[str, tuple[str, bool]] = field(default_factory=dict)


def stage_batch(spark, batch: Sequence[BulkFile], columns: Sequence[Column], chunk_bytes: int,
                staging: str) -> StagedBatch:
    """Parse and validate the batch's files (:func:`_files_frame`'s tasks) in the table's
    ``columns`` into ``<staging>/<file>.parquet`` (the run's own folder, cleared first); files that fail are
    logged and the others go on."""
    clear_path(spark, staging)
    files_df = _files_frame(spark, batch)
    results = files_df.mapInArrow(stage_files_arrow(columns, chunk_bytes, staging),
                                  STAGE_RESULT_DDL).collect()
    failures = {r.source_file: (r.error, bool(r.transient)) for r in results
                if r.error is not None}
    for err, transient in failures.values():
        log.error("file failed%s, others go on: %s", " (transient: retried next run)"
                  if transient else "", err)
    staged = [r.source_file for r in results if r.error is None]
    rows = (spark.read.parquet(*[staged_file(staging, name) for name in staged])
            if len(failures) < len(batch) else None)
    return StagedBatch(rows, staged, failures)


def find_duplicates(spark, conf: Conf, rows, names: Sequence[str]):
    """The (source_file, line_number, reason) of each valid row whose ``source_id`` was seen
    before: first occurrence by (file name, line) in the batch, or already in ``gaia_source``
    from a file outside ``names``. Returns the cached DataFrame and its count per file."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = rows.select(*KEY_COLUMNS)
    # a hash aggregate finds the source_ids seen twice (no sort of the batch); only their rows
    # are ranked
    twice = keys.groupBy("source_id").count().where("count > 1").select("source_id")
    first = Window.partitionBy("source_id").orderBy("source_file", "line_number")
    dups = (keys.join(twice, "source_id").withColumn("rank", F.row_number().over(first))
            .withColumn("first_file", F.first("source_file").over(first))
            .withColumn("first_line", F.first("line_number").over(first))
            .where("rank > 1")
            .select("source_file", "line_number", F.format_string(
                "duplicate source_id: first seen in %s line %d", "first_file", "first_line")
                .alias("reason")))
    if table_exists(spark, conf.table_path(tables.GAIA_SOURCE.name)):
        existing = (read_table(spark, conf, tables.GAIA_SOURCE)
                    .where(f"NOT ({source_files_in(names)})")
                    .select("source_id", F.col("source_file").alias("first_file")))
        dups = dups.unionByName(keys.join(existing, "source_id").select(
            "source_file", "line_number",
            F.format_string("duplicate source_id: already ingested from %s", "first_file")
            .alias("reason")))
    dups = dups.dropDuplicates(["source_file", "line_number"]).cache()
    counts = {r.source_file: r["count"] for r in dups.groupBy("source_file").count().collect()}
    return dups, counts


def write_quarantine(spark, conf: Conf, invalid, dups, batch: Sequence[BulkFile], run_id: str,
                     n_rows: int) -> None:
    """Replace the ``gaia_source_quarantine`` rows of the batch's files with its ``n_rows``
    quarantined rows (:func:`quarantine_rows`). Nothing to write and no older row to replace
    (the table holds no file) skips the Delta write."""
    if not n_rows and file_count(spark, conf.table_path(tables.GAIA_SOURCE_QUARANTINE.name)) == 0:
        return
    write_table(quarantine_rows(invalid, dups, batch, run_id), conf,
                tables.GAIA_SOURCE_QUARANTINE,
                replace_where=source_files_in([f.name for f in batch]))


def quarantine_rows(invalid, dups, batch: Sequence[BulkFile], run_id: str):
    """The quarantine rows of a batch: the ``invalid`` rows (:data:`QUARANTINE_COLUMNS`) and
    the duplicates (``dups``; None: none) with their raw lines re-read from the files."""
    from pyspark.sql import functions as F

    invalid = invalid.select(*QUARANTINE_COLUMNS)
    if dups is None:
        dup_lines = invalid.sparkSession.createDataFrame([], _QUARANTINE_DDL)
    else:
        dup_lines = _raw_lines(dups, batch)
    return invalid.unionByName(dup_lines).withColumn("run_id", F.lit(run_id))


def _raw_lines(dups, batch: Sequence[BulkFile]):
    """Quarantine rows for duplicates, with their raw lines re-read from the files."""
    import pandas as pd

    paths = {f.name: f.path for f in batch}

    def fetch(pdf: pd.DataFrame) -> pd.DataFrame:
        name = pdf["source_file"].iloc[0]
        text = raw_rows(paths[name], pdf["line_number"].tolist())
        return pdf.assign(raw_line=[text.get(int(n)) for n in pdf["line_number"]])[
            ["source_file", "line_number", "raw_line", "reason"]]

    return dups.groupBy("source_file").applyInPandas(fetch, _QUARANTINE_DDL)


def staged_counts(staged_rows) -> dict[str, tuple[int, int]]:
    """Rows read and invalid per file of a staged batch (a Spark aggregate)."""
    from pyspark.sql import functions as F

    return {r.source_file: (int(r.read), int(r.bad)) for r in staged_rows.groupBy("source_file").agg(
        F.count("*").alias("read"),
        F.sum(F.when(F.col("reason").isNotNull(), 1).otherwise(0)).alias("bad")).collect()}


def batch_log_rows(counts: dict[str, tuple[int, int]], batch: Sequence[BulkFile],
                   failures: dict[str, tuple[str, bool]], duplicates: dict[str, int], run_id: str,
                   notes: dict[str, str] | None = None) -> list[tuple]:
    """``ingest_log`` rows of a batch: per file, rows read, kept and quarantined (``counts``:
    rows read and invalid per file, plus its ``duplicates``) with its ``notes`` (added or
    null-filled columns) in ``error``, or its (error, transient) when it failed as a whole."""
    now = datetime.now(timezone.utc)
    out = []
    for f in batch:
        if f.name in failures:
            err, transient = failures[f.name]
            out.append((f.name, f.size, FAILED_TRANSIENT if transient else FAILED, err, 0, 0, 0,
                        now, run_id))
            continue
        read, bad = counts.get(f.name, (0, 0))
        bad += int(duplicates.get(f.name, 0))
        out.append((f.name, f.size, OK, (notes or {}).get(f.name), read, read - bad, bad, now,
                    run_id))
    return out


def choose_writer(conf: Conf) -> str:
    """``ingest.writer``; ``arrow`` writes local warehouses only, others get ``spark`` (logged)."""
    writer = str(conf.get("ingest.writer", "spark"))
    if writer not in ("arrow", "spark"):
        raise ValueError(f"ingest.writer={writer!r}: expected arrow or spark")
    warehouse = conf.path("paths.warehouse")
    if writer == "arrow" and ("://" in warehouse or warehouse.startswith("dbfs:")):
        log.info("ingest.writer=arrow writes local warehouses only; %s is not: spark writer",
                 warehouse)
        return "spark"
    return writer


def write_rows_spark(conf: Conf, rows, dups, names: Sequence[str], shift: int, run_id: str,
                     shuffle_by_hpx: bool = False) -> None:
    """Spark's Delta writer: ``replaceWhere source_file IN names`` with the valid rows less
    ``dups`` (None: no duplicates); ``hpx = hpx29 >> shift``; ``shuffle_by_hpx``: one task per
    ``hpx`` (fewer, larger files)."""
    from pyspark.sql import functions as F

    spark = rows.sparkSession
    if dups is not None:  # few rows: broadcast them, never shuffle the 152-column rows for this
        rows = rows.join(F.broadcast(dups.select("source_file", "line_number")),
                         ["source_file", "line_number"], "left_anti")
    kept = (rows.withColumn("hpx", F.shiftright("hpx29", shift))
            .withColumn("run_id", F.lit(run_id))
            .drop("line_number", "reason", "raw_line"))
    target = read_table(spark, conf, tables.GAIA_SOURCE).columns
    kept = kept.select(*target)
    if shuffle_by_hpx:
        kept = kept.repartition("hpx")
    # bulk files cover contiguous HEALPix ranges, so without a shuffle each task still writes
    # few partitions; every file is sorted by hpx29 (Delta min/max stats prune cone searches)
    kept = kept.sortWithinPartitions("hpx", "hpx29")
    write_table(kept, conf, tables.GAIA_SOURCE, replace_where=source_files_in(names))


@dataclass
class WrittenBatch:
    """A batch parsed and written by the arrow writer, not yet committed: each file's data
    files (``adds``, :func:`gaialake.io.delta.commit_files` records), rows (read, invalid),
    its ``keys`` and ``invalid`` rows as DataFrames (None when no file could be read) and the
    (error, transient) of each file that failed as a whole."""

    adds: dict[str, list[dict]]
    counts: dict[str, tuple[int, int]]
    keys: Any
    invalid: Any
    failures: dict[str, tuple[str, bool]] = field(default_factory=dict)
    spans: dict[str, tuple[int | None, int | None, bool]] = field(default_factory=dict)


def write_batch_arrow(spark, conf: Conf, batch: Sequence[BulkFile], columns: Sequence[Column],
                      staging: str, shift: int, run_id: str,
                      exclude: dict[str, list[int]] | None = None) -> WrittenBatch:
    """Parse each file of the batch and write its valid rows (less its ``exclude`` lines) as
    ``gaia_source`` data files (:func:`_files_frame`'s tasks, a file at a time) with pyarrow
    (:func:`gaialake.io.catalogio.write_files_arrow`): one parse and one write per row, nothing
    committed yet. Files that fail are logged and the others go on."""
    path = conf.table_path(tables.GAIA_SOURCE.name)
    target, stats = table_layout(spark, path)
    types = {f.name: datatype_of_spark(f.dataType.simpleString())
             for f in spark.read.format("delta").load(path).schema.fields}
    files_df = _files_frame(spark, batch)
    results = files_df.mapInArrow(
        write_files_arrow(columns, int(conf.get("ingest.chunk_bytes")), staging, path, target,
                          stats, shift, run_id, types, exclude), WRITE_RESULT_DDL).collect()
    failures = {r.source_file: (r.error, bool(r.transient)) for r in results
                if r.error is not None}
    for err, transient in failures.values():
        log.error("file failed%s, others go on: %s", " (transient: retried next run)"
                  if transient else "", err)
    done = [r for r in results if r.error is None]
    if done:
        log.info("%d files parsed in %.1f s and written in %.1f s of task time (summed over the "
                 "tasks)", len(done), sum(r.parse_s for r in done), sum(r.write_s for r in done))
    keys = invalid = None
    if done:   # lazy, with their schemas: no Spark job unless read
        keys = spark.read.schema(_KEYS_DDL).parquet(
            *[staged_file(staging, f"{r.source_file}.keys") for r in done])
        bad = [r for r in done if r.rows_bad]
        invalid = (spark.read.schema(_QUARANTINE_DDL).parquet(
            *[staged_file(staging, f"{r.source_file}.quarantine") for r in bad])
            if bad else spark.createDataFrame([], _QUARANTINE_DDL))
    return WrittenBatch({r.source_file: json.loads(r.adds) for r in done},
                        {r.source_file: (int(r.rows_read), int(r.rows_bad)) for r in done},
                        keys, invalid, failures,
                        {r.source_file: (r.id_min, r.id_max, bool(r.repeats)) for r in done})


def may_hold_duplicates(spark, conf: Conf, spans: dict[str, tuple[int | None, int | None, bool]],
                        names: Sequence[str]) -> bool:
    """Whether a batch may hold a ``source_id`` twice, from each file's valid ``source_id``
    range and whether one repeats inside it (``spans``): False only when no file repeats one,
    the files' ranges are disjoint, and no data file of ``gaia_source`` outside ``names`` has a
    ``source_id`` range (Delta statistics) that meets one of them. ESA's bulk files cover
    disjoint ``source_id`` ranges, so their batches skip the Spark duplicate search."""
    import numpy as np
    from pyspark.sql import DataFrame
    from pyspark.sql import functions as F

    ranges = sorted((lo, hi) for lo, hi, _ in spans.values() if lo is not None)
    if any(rep for _, _, rep in spans.values()) or any(
            b[0] <= a[1] for a, b in zip(ranges, ranges[1:])):
        return True
    path = conf.table_path(tables.GAIA_SOURCE.name)
    snapshot = latest_snapshot(spark, path) if ranges else None
    if snapshot is None or not snapshot.numOfFiles():   # no table, or an empty one: nothing to meet
        return False
    stats = F.from_json("stats", "minValues struct<source_id: long, source_file: string>, "
                                 "maxValues struct<source_id: long, source_file: string>")
    files = (DataFrame(snapshot.allFiles().toDF(), spark).select(stats.alias("s"))
             .select(F.col("s.minValues.source_id").alias("lo"),
                     F.col("s.maxValues.source_id").alias("hi"),
                     F.col("s.minValues.source_file").alias("f_lo"),
                     F.col("s.maxValues.source_file").alias("f_hi")).collect())
    batch = set(names)
    los = np.array([lo for lo, _ in ranges], dtype=np.int64)
    his = np.array([hi for _, hi in ranges], dtype=np.int64)
    for f in files:
        if f.f_lo is not None and f.f_lo == f.f_hi and f.f_lo in batch:
            continue   # rows of the batch's own files, replaced by this batch
        if f.lo is None or f.hi is None:
            return True
        i = int(np.searchsorted(los, f.hi, side="right")) - 1   # last range starting <= f.hi
        if i >= 0 and his[i] >= f.lo:
            return True
    return False


def commit_batch_arrow(spark, conf: Conf, adds: dict[str, list[dict]],
                       names: Sequence[str]) -> None:
    """Commit the data files of a batch (``adds`` per file) in one Delta commit that also
    removes the rows of ``names`` ingested before (:func:`gaialake.io.delta.commit_files`)."""
    path = conf.table_path(tables.GAIA_SOURCE.name)
    (partition,) = tables.GAIA_SOURCE.partition_by
    commit_files(spark, path, [a for name in sorted(adds) for a in adds[name]], partition,
                 "source_file", list(names))
    register_table(spark, conf, tables.GAIA_SOURCE)

"""Loading a batch of bulk files into ``gaia_source``: staging, duplicates, the two writers, and
the per-file records of ``ingest_log`` (the Spark plumbing of ``gaialake ingest``).

A batch is staged to Parquet once (one Spark task per file, :func:`stage_batch`); a
``source_id`` seen twice keeps its first occurrence by (file name, line) and the later ones are
quarantined (:func:`find_duplicates`); the valid rows are written by Spark's Delta writer
(:func:`write_rows_spark`) or by pyarrow on executors with one driver commit
(:func:`write_rows_arrow`). Every write replaces exactly the rows of the batch's files
(``source_file IN ...``), so a re-run of a batch ends with the same rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Sequence

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.bulkfile import BulkFileError, read_header, read_lines
from gaialake.io.catalogio import (ADD_FILE_DDL, STAGE_RESULT_DDL, BulkFile, spark_schema_ddl,
                                   stage_files_arrow, write_table_files_arrow)
from gaialake.io.delta import (commit_files, in_predicate, read_table, register_table,
                               table_exists, table_layout, write_table)
from gaialake.io.dr3schema import Column
from gaialake.log import get_logger

__all__ = ["StagedBatch", "ingested_files", "prune_files", "header_columns", "failed_log_rows",
           "batch_log_rows", "write_ingest_log", "create_gaia_source", "stage_batch",
           "find_duplicates", "quarantine_rows", "choose_writer", "write_rows_spark",
           "write_rows_arrow", "clear_path", "source_files_in", "STATS_COLUMNS"]

log = get_logger("ingest")

#: Columns of ``gaia_source`` whose min/max statistics Delta keeps (cone searches prune on them).
STATS_COLUMNS = "source_id,ra,dec,hpx29,source_file,parallax,pmra,pmdec,phot_g_mean_mag,bp_rp"
#: The quarantine rows' columns before ``run_id``.
_QUARANTINE_DDL = "source_file string, line_number long, raw_line string, reason string"


def source_files_in(names: Sequence[str]) -> str:
    """SQL predicate ``source_file IN (...)``: the rows of these bulk files."""
    return in_predicate("source_file", list(names))


def ingested_files(spark, conf: Conf, retry_failed: bool = False) -> dict[str, int]:
    """Files in ``ingest_log`` -> their size (bytes) when ingested; one of the same name and size
    is not ingested again (a replaced file is). Failed files map to -1 with ``retry_failed``."""
    if not table_exists(spark, conf.table_path(tables.INGEST_LOG.name)):
        return {}
    rows = read_table(spark, conf, tables.INGEST_LOG).select("source_file", "status",
                                                             "file_bytes").collect()
    return {r.source_file: (-1 if retry_failed and r.status == "failed" else int(r.file_bytes))
            for r in rows}


def prune_files(spark, conf: Conf, gone: set[str]) -> None:
    """Delete the rows of the files ``gone`` (no longer under ``paths.raw``) from ``gaia_source``,
    its quarantine and ``ingest_log``."""
    from delta.tables import DeltaTable

    if not gone:
        return
    log.info("pruning rows of %d files no longer under paths.raw", len(gone))
    cond = source_files_in(sorted(gone))
    for table in (tables.GAIA_SOURCE, tables.GAIA_SOURCE_QUARANTINE, tables.INGEST_LOG):
        if table_exists(spark, conf.table_path(table.name)):
            DeltaTable.forPath(spark, conf.table_path(table.name)).delete(cond)


def header_columns(pending: Sequence[BulkFile]) -> tuple[list[Column] | None, dict[BulkFile, str]]:
    """The table's columns from the first readable file's ECSV header (None if none is), and the
    error of each file whose header could not be read before it."""
    unreadable: dict[BulkFile, str] = {}
    for f in pending:
        try:
            return list(read_header(f.path).columns), unreadable
        except (BulkFileError, ValueError) as err:
            log.warning("header of %s unreadable (%s); trying the next file", f.name, err)
            unreadable[f] = str(err)
    return None, unreadable


def failed_log_rows(failed: dict[BulkFile, str], run_id: str) -> list[tuple]:
    """``ingest_log`` rows of files that failed as a whole (their errors logged)."""
    now = datetime.now(timezone.utc)
    for err in failed.values():
        log.error("file failed, others go on: %s", err)
    return [(f.name, f.size, "failed", err, 0, 0, 0, now, run_id) for f, err in failed.items()]


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
    invalid ones; None when no file could be read), the staged file names, and the error of each
    file that failed as a whole."""

    rows: Any
    staged: list[str]
    failures: dict[str, str] = field(default_factory=dict)


def stage_batch(spark, batch: Sequence[BulkFile], columns: Sequence[Column], chunk_bytes: int,
                staging: str) -> StagedBatch:
    """Parse and validate the batch's files, one Spark task per file, into ``<staging>/<file>
    .parquet`` (the folder cleared first); files that fail are logged and the others go on."""
    clear_path(spark, staging)
    files_df = spark.createDataFrame(
        spark.sparkContext.parallelize([(f.path,) for f in batch], len(batch)), "path string")
    results = files_df.mapInArrow(stage_files_arrow(columns, chunk_bytes, staging),
                                  STAGE_RESULT_DDL).collect()
    failures = {r.source_file: r.error for r in results if r.error is not None}
    for err in failures.values():
        log.error("file failed, others go on: %s", err)
    staged = [r.source_file for r in results if r.error is None]
    rows = (spark.read.parquet(*[f"{staging}/{name}.parquet" for name in staged])
            if len(failures) < len(batch) else None)
    return StagedBatch(rows, staged, failures)


def find_duplicates(spark, conf: Conf, rows, names: Sequence[str]):
    """The (source_file, line_number, reason) of each valid row whose ``source_id`` was seen
    before: first occurrence by (file name, line) in the batch, or already in ``gaia_source``
    from a file outside ``names``. Returns the cached DataFrame and its count per file."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = rows.select("source_id", "source_file", "line_number")
    first = Window.partitionBy("source_id").orderBy("source_file", "line_number")
    dups = (keys.withColumn("rank", F.row_number().over(first))
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


def quarantine_rows(staged, dups, batch: Sequence[BulkFile], run_id: str):
    """The quarantine rows of a batch: the staged rows with a ``reason`` and the duplicates
    (``dups``; None: none) with their raw lines re-read from the files."""
    from pyspark.sql import functions as F

    invalid = staged.where("reason IS NOT NULL").select("source_file", "line_number", "raw_line",
                                                        "reason")
    if dups is None:
        dup_lines = staged.sparkSession.createDataFrame([], _QUARANTINE_DDL)
    else:
        dup_lines = _raw_lines(dups, batch)
    return invalid.unionByName(dup_lines).withColumn("run_id", F.lit(run_id))


def _raw_lines(dups, batch: Sequence[BulkFile]):
    """Quarantine rows for duplicates, with their raw lines re-read from the files."""
    import pandas as pd

    paths = {f.name: f.path for f in batch}

    def fetch(pdf: pd.DataFrame) -> pd.DataFrame:
        name = pdf["source_file"].iloc[0]
        text = read_lines(paths[name], pdf["line_number"].tolist())
        return pdf.assign(raw_line=[text.get(int(n)) for n in pdf["line_number"]])[
            ["source_file", "line_number", "raw_line", "reason"]]

    return dups.groupBy("source_file").applyInPandas(fetch, _QUARANTINE_DDL)


def batch_log_rows(staged_rows, batch: Sequence[BulkFile], failures: dict[str, str],
                   duplicates: dict[str, int], run_id: str) -> list[tuple]:
    """``ingest_log`` rows of a batch: per file, rows read, kept and quarantined (invalid rows
    and ``duplicates``), or its error when it failed as a whole."""
    from pyspark.sql import functions as F

    counts = {r.source_file: r for r in staged_rows.groupBy("source_file").agg(
        F.count("*").alias("read"),
        F.sum(F.when(F.col("reason").isNotNull(), 1).otherwise(0)).alias("bad")).collect()}
    now = datetime.now(timezone.utc)
    out = []
    for f in batch:
        if f.name in failures:
            out.append((f.name, f.size, "failed", failures[f.name], 0, 0, 0, now, run_id))
            continue
        c = counts.get(f.name)
        read = int(c["read"]) if c else 0
        bad = (int(c["bad"]) if c else 0) + int(duplicates.get(f.name, 0))
        out.append((f.name, f.size, "ok", None, read, read - bad, bad, now, run_id))
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


def write_rows_arrow(spark, conf: Conf, staging: str, staged: Sequence[str], names: Sequence[str],
                     dups, shift: int, run_id: str) -> None:
    """pyarrow writes each staged file's valid rows (less ``dups``) into the table's ``hpx``
    folders, one Spark task per file; the driver commits them in one Delta commit that also
    removes the rows of ``names`` ingested before (:func:`gaialake.io.delta.commit_files`)."""
    path = conf.table_path(tables.GAIA_SOURCE.name)
    lines: dict[str, list[int]] = {}
    for r in (dups.select("source_file", "line_number").collect() if dups is not None else []):
        lines.setdefault(r.source_file, []).append(int(r.line_number))
    target, stats = table_layout(spark, path)
    files_df = spark.createDataFrame(
        spark.sparkContext.parallelize([(n,) for n in staged], max(len(staged), 1)),
        "source_file string")
    adds = files_df.mapInArrow(
        write_table_files_arrow(staging, path, target, stats, shift, run_id,
                                lines), ADD_FILE_DDL).collect()
    (partition,) = tables.GAIA_SOURCE.partition_by
    commit_files(spark, path, [r.asDict() for r in adds], partition, "source_file", list(names))
    register_table(spark, conf, tables.GAIA_SOURCE)

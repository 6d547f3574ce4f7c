"""``gaialake ingest``: Gaia DR3 bulk files -> Delta ``gaia_source`` partitioned by HEALPix.

Stages, per batch of ``ingest.files_per_batch`` files not yet in ``ingest_log``:

1. parse: one Spark task per file (gzip does not split); pyarrow parses blocks typed from the
   file's ECSV header and validates rows (``gaialake.io.bulkfile``); staged to Parquet once.
2. dedupe: a ``source_id`` seen twice (in the batch, or already in the table from another file)
   keeps its first occurrence (by file name, line); later ones are quarantined.
3. write ``gaia_source`` (``hpx`` partitions, sorted by ``hpx29``) and ``gaia_source_quarantine``,
   each replacing exactly the rows of the batch's files (``source_file IN ...``), then
   ``ingest_log``, the completion marker. ``ingest.writer``: ``arrow`` (local warehouses) has one
   Spark task per file write its rows with pyarrow into the table's ``hpx=<k>/`` folders, with
   Delta's statistics, and the driver commits them and the removal of the batch's old rows in one
   Delta commit (:func:`gaialake.io.delta.commit_files`); ``spark`` uses Spark's Delta writer
   (``replaceWhere``), 1.3-1.5x slower (BENCHMARKS.md). A run killed anywhere redoes the
   unfinished batch and ends with exactly the right rows (files it wrote but never committed
   are no part of the table; ``VACUUM`` deletes them); re-running on ingested files changes
   nothing. A file replaced by one of another size is ingested again (its rows replaced); with
   ``ingest.prune_missing`` the rows of files gone from ``paths.raw`` are deleted.
"""
from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timezone

from gaialake.io.bulkfile import BulkFileError, read_header, read_lines
from gaialake.io.catalogio import (ADD_FILE_DDL, STAGE_RESULT_DDL, BulkFile, list_bulk_files,
                                spark_schema_ddl, stage_files_arrow, write_table_files_arrow)
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.delta import (commit_files, in_predicate, read_table, register_table, table_exists,
                            table_layout, write_table)
from gaialake.astro.healpix import MAX_ORDER
from gaialake.log import get_logger, stage
from gaialake.io.dr3schema import Column
from gaialake.io.spark import get_spark

log = get_logger("ingest")

TABLE, QUARANTINE, LOG = "gaia_source", "gaia_source_quarantine", "ingest_log"
STATS_COLUMNS = "source_id,ra,dec,hpx29,source_file,parallax,pmra,pmdec,phot_g_mean_mag,bp_rp"
LOG_SCHEMA = ("source_file string, file_bytes long, status string, error string, rows_read long, "
              "rows_kept long, rows_quarantined long, ingested_at timestamp, run_id string")


def run(conf: Conf) -> dict:
    spark = get_spark(conf)
    run_id = uuid.uuid4().hex
    files = list_bulk_files(spark, conf.path("paths.raw"))
    done = _done_files(spark, conf)
    pending = [f for f in files if done.get(f.name) != f.size]
    if conf.get("ingest.prune_missing", False):
        _prune(spark, conf, set(done) - {f.name for f in files})
    log.info("%d bulk files under %s: %d already ingested, %d to do", len(files),
             conf.path("paths.raw"), len(files) - len(pending), len(pending))
    if not pending:
        return {"files": len(files), "ingested": 0}
    columns, unreadable = _table_columns(pending)
    if columns is None:
        _log_failures(spark, conf, unreadable, run_id)
        return {"files": len(files), "ingested": 0, "failed": len(unreadable)}
    size = int(conf.get("ingest.files_per_batch"))
    totals = {"files": len(files), "ingested": 0, "failed": 0, "rows_kept": 0,
              "rows_quarantined": 0}
    for i in range(0, len(pending), size):
        batch = pending[i:i + size]
        with stage(log, f"batch {i // size + 1}/{-(-len(pending) // size)} ({len(batch)} files)") as st:
            counts = ingest_batch(spark, conf, batch, columns, run_id)
            st.count = counts["rows_read"]
        for key in ("failed", "rows_kept", "rows_quarantined"):
            totals[key] += counts[key]
        totals["ingested"] += len(batch) - counts["failed"]
    return totals


def _done_files(spark, conf: Conf) -> dict[str, int]:
    """Files in ``ingest_log`` -> their size then; one of the same name and size is not ingested
    again (a replaced file is). Failed files are retried only with ``ingest.retry_failed``."""
    if not table_exists(spark, conf.table_path(LOG)):
        return {}
    retry = bool(conf.get("ingest.retry_failed", False))
    return {r.source_file: (-1 if retry and r.status == "failed" else int(r.file_bytes))
            for r in read_table(spark, conf, LOG).select("source_file", "status", "file_bytes").collect()}


def _prune(spark, conf: Conf, gone: set[str]) -> None:
    """Delete the rows of files no longer under paths.raw (``ingest.prune_missing``)."""
    from delta.tables import DeltaTable

    if not gone:
        return
    log.info("pruning rows of %d files no longer under paths.raw", len(gone))
    cond = _in_list(sorted(gone))
    for table in (TABLE, QUARANTINE, LOG):
        if table_exists(spark, conf.table_path(table)):
            DeltaTable.forPath(spark, conf.table_path(table)).delete(cond)


def _table_columns(pending: list[BulkFile]) -> tuple[list[Column] | None, dict[BulkFile, str]]:
    """The table's columns from the first readable file's ECSV header (None if none is)."""
    unreadable: dict[BulkFile, str] = {}
    for f in pending:
        try:
            return list(read_header(f.path).columns), unreadable
        except (BulkFileError, ValueError) as err:
            log.warning("header of %s unreadable (%s); trying the next file", f.name, err)
            unreadable[f] = str(err)
    return None, unreadable


def _log_failures(spark, conf: Conf, failed: dict[BulkFile, str], run_id: str) -> None:
    now = datetime.now(timezone.utc)
    rows = [(f.name, f.size, "failed", err, 0, 0, 0, now, run_id) for f, err in failed.items()]
    for f, err in failed.items():
        log.error("file failed, others go on: %s", err)
    write_table(spark.createDataFrame(rows, LOG_SCHEMA), conf, LOG,
                replace_where=_in_list([f.name for f in failed]))


def _create_table(spark, conf: Conf, columns: list[Column]) -> None:
    """Create ``gaia_source`` (hpx-partitioned, stats on the columns used to prune)."""
    from delta.tables import DeltaTable

    path = conf.table_path(TABLE)
    if table_exists(spark, path):
        return
    schema = spark.createDataFrame([], f"{spark_schema_ddl(columns)}, hpx long, run_id string").schema
    (DeltaTable.createIfNotExists(spark).location(path).addColumns(schema).partitionedBy("hpx")
     .property("delta.dataSkippingStatsColumns", STATS_COLUMNS).execute())


def _in_list(names: list[str]) -> str:
    return in_predicate("source_file", names)


def ingest_batch(spark, conf: Conf, batch: list[BulkFile], columns: list[Column],
                 run_id: str) -> dict:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    names = [f.name for f in batch]
    staging = f"{conf.table_path('_staging')}/ingest"
    _clear(spark, staging)
    files_df = spark.createDataFrame(
        spark.sparkContext.parallelize([(f.path,) for f in batch], len(batch)), "path string")
    with stage(log, "parse and stage"):
        results = files_df.mapInArrow(
            stage_files_arrow(columns, int(conf.get("ingest.chunk_bytes")), staging),
            STAGE_RESULT_DDL).collect()
    failures = {r.source_file: r.error for r in results if r.error is not None}
    for name, err in failures.items():
        log.error("file failed, others go on: %s", err)
    staged = spark.read.parquet(*[f"{staging}/{r.source_file}.parquet" for r in results
                                  if r.error is None]) if len(failures) < len(batch) else None
    if staged is None:
        _log_failures(spark, conf, {f: failures[f.name] for f in batch}, run_id)
        return {"rows_read": 0, "rows_kept": 0, "rows_quarantined": 0, "failed": len(batch)}

    rows = staged.where("reason IS NULL")

    # duplicates: first occurrence (file name, line) wins, in the batch and against the table
    keys = rows.select("source_id", "source_file", "line_number")
    first = Window.partitionBy("source_id").orderBy("source_file", "line_number")
    dups = (keys.withColumn("rank", F.row_number().over(first))
            .withColumn("first_file", F.first("source_file").over(first))
            .withColumn("first_line", F.first("line_number").over(first))
            .where("rank > 1")
            .select("source_file", "line_number", F.format_string(
                "duplicate source_id: first seen in %s line %d", "first_file", "first_line")
                .alias("reason")))
    if table_exists(spark, conf.table_path(TABLE)):
        existing = (read_table(spark, conf, TABLE).where(f"NOT ({_in_list(names)})")
                    .select("source_id", F.col("source_file").alias("first_file")))
        dups = dups.unionByName(keys.join(existing, "source_id").select(
            "source_file", "line_number",
            F.format_string("duplicate source_id: already ingested from %s", "first_file")
            .alias("reason")))
    with stage(log, "find duplicate source_ids"):
        dups = dups.dropDuplicates(["source_file", "line_number"]).cache()
        n_dups = {r.source_file: r["count"] for r in dups.groupBy("source_file").count().collect()}
    dup_lines = _raw_lines(dups, batch) if n_dups else spark.createDataFrame([], dups.schema).select(
        "source_file", "line_number", F.lit(None).cast("string").alias("raw_line"), "reason")

    _create_table(spark, conf, columns)
    shift = 2 * (MAX_ORDER - int(conf.get("catalog.partition_order")))
    writer = _writer(conf)
    with stage(log, f"write gaia_source ({writer} writer)"):
        if writer == "arrow":
            staged_names = [r.source_file for r in results if r.error is None]
            _write_arrow(spark, conf, staging, staged_names, names, dups if n_dups else None,
                         shift, run_id)
        else:
            _write_spark(conf, rows, dups if n_dups else None, names, shift, run_id)

    quarantined = (staged.where("reason IS NOT NULL").select("source_file", "line_number",
                                                            "raw_line", "reason")
                   .unionByName(dup_lines)
                   .withColumn("run_id", F.lit(run_id)))
    write_table(quarantined, conf, QUARANTINE, replace_where=_in_list(names))

    counts = {r.source_file: r for r in staged.groupBy("source_file").agg(
        F.count("*").alias("read"),
        F.sum(F.when(F.col("reason").isNotNull(), 1).otherwise(0)).alias("bad")).collect()}
    now = datetime.now(timezone.utc)
    log_rows = []
    for f in batch:
        if f.name in failures:
            log_rows.append((f.name, f.size, "failed", failures[f.name], 0, 0, 0, now, run_id))
            continue
        c = counts.get(f.name)
        read = int(c["read"]) if c else 0
        bad = (int(c["bad"]) if c else 0) + int(n_dups.get(f.name, 0))
        log_rows.append((f.name, f.size, "ok", None, read, read - bad, bad, now, run_id))
    write_table(spark.createDataFrame(log_rows, LOG_SCHEMA), conf, LOG,
                replace_where=_in_list(names))
    dups.unpersist()
    return {"rows_read": sum(r[4] for r in log_rows), "rows_kept": sum(r[5] for r in log_rows),
            "rows_quarantined": sum(r[6] for r in log_rows), "failed": len(failures)}


def _writer(conf: Conf) -> str:
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


def _write_spark(conf: Conf, rows, dups, names: list[str], shift: int, run_id: str) -> None:
    """Spark's Delta writer: ``replaceWhere source_file IN names`` with the valid rows less
    ``dups`` (None: no duplicates)."""
    from pyspark.sql import functions as F

    spark = rows.sparkSession
    if dups is not None:  # few rows: broadcast them, never shuffle the 152-column rows for this
        rows = rows.join(F.broadcast(dups.select("source_file", "line_number")),
                         ["source_file", "line_number"], "left_anti")
    kept = (rows.withColumn("hpx", F.shiftright("hpx29", shift))
            .withColumn("run_id", F.lit(run_id))
            .drop("line_number", "reason", "raw_line"))
    target = read_table(spark, conf, TABLE).columns
    kept = kept.select(*target)
    if conf.get("ingest.shuffle_by_hpx", False):  # one task per hpx: fewer, larger files
        kept = kept.repartition("hpx")
    # bulk files cover contiguous HEALPix ranges, so without a shuffle each task still writes
    # few partitions; every file is sorted by hpx29 (Delta min/max stats prune cone searches)
    kept = kept.sortWithinPartitions("hpx", "hpx29")
    write_table(kept, conf, TABLE, partition_by=["hpx"], replace_where=_in_list(names))


def _write_arrow(spark, conf: Conf, staging: str, staged: list[str], names: list[str], dups,
                 shift: int, run_id: str) -> None:
    """pyarrow writes each staged file's valid rows (less ``dups``) into the table's ``hpx``
    folders, one Spark task per file; the driver commits them in one Delta commit that also
    removes the rows of ``names`` ingested before (:func:`gaialake.io.delta.commit_files`)."""
    path = conf.table_path(TABLE)
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
    commit_files(spark, path, [r.asDict() for r in adds], "hpx", "source_file", names)
    register_table(spark, conf, TABLE)


def _clear(spark, path: str) -> None:
    """Remove a staging directory (any Hadoop file system)."""
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    fs = p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if fs.exists(p):
        fs.delete(p, True)


def _raw_lines(dups, batch: list[BulkFile]):
    """Quarantine rows for duplicates, with their raw lines re-read from the files."""
    import pandas as pd

    paths = {f.name: f.path for f in batch}

    def fetch(pdf: pd.DataFrame) -> pd.DataFrame:
        name = pdf["source_file"].iloc[0]
        text = read_lines(paths[name], pdf["line_number"].tolist())
        return pdf.assign(raw_line=[text.get(int(n)) for n in pdf["line_number"]])[
            ["source_file", "line_number", "raw_line", "reason"]]

    return dups.groupBy("source_file").applyInPandas(
        fetch, "source_file string, line_number long, raw_line string, reason string")


if __name__ == "__main__":
    sys.exit(job_main("ingest"))

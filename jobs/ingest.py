"""``gaialake ingest``: Gaia DR3 bulk files -> Delta ``gaia_source`` partitioned by HEALPix.

Stages, per batch of ``ingest.files_per_batch`` files not yet in ``ingest_log``:

1. parse: one Spark task per file (gzip does not split); pyarrow parses blocks typed from the
   file's ECSV header and validates rows (``gaialake.bulkfile``); staged to Parquet once.
2. dedupe: a ``source_id`` seen twice (in the batch, or already in the table from another file)
   keeps its first occurrence (by file name, line); later ones are quarantined.
3. write ``gaia_source`` (``hpx`` partitions, sorted by ``hpx29``) and ``gaia_source_quarantine``,
   each replacing exactly the rows of the batch's files (``replaceWhere source_file IN ...``),
   then ``ingest_log``, the completion marker. A run killed anywhere redoes the unfinished batch
   and ends with exactly the right rows; re-running on ingested files changes nothing.
"""
from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime, timezone

from gaialake.bulkfile import BulkFileError, read_header, read_lines
from gaialake.catalogio import BulkFile, list_bulk_files, parse_files_arrow, spark_schema_ddl
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.delta import read_table, table_exists, write_table
from gaialake.healpix import MAX_ORDER
from gaialake.log import get_logger, stage
from gaialake.schema import Column
from gaialake.spark import get_spark

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
    pending = [f for f in files if done.get(f.name) not in ("ok", f"failed:{f.size}")]
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


def _done_files(spark, conf: Conf) -> dict[str, str]:
    """Files not to ingest again: 'ok' ones, and failed ones whose size has not changed
    (``ingest.retry_failed=true`` retries those too)."""
    if not table_exists(spark, conf.table_path(LOG)):
        return {}
    retry = bool(conf.get("ingest.retry_failed", False))
    out = {}
    for r in read_table(spark, conf, LOG).select("source_file", "status", "file_bytes").collect():
        if r.status == "ok":
            out[r.source_file] = "ok"
        elif not retry:
            out[r.source_file] = f"failed:{r.file_bytes}"
    return out


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
    ddl = spark_schema_ddl(columns).split(", `line_number`")[0]
    schema = spark.createDataFrame([], f"{ddl}, hpx long, run_id string").schema
    (DeltaTable.createIfNotExists(spark).location(path).addColumns(schema).partitionedBy("hpx")
     .property("delta.dataSkippingStatsColumns", STATS_COLUMNS).execute())


def _in_list(names: list[str]) -> str:
    return "source_file IN (" + ", ".join("'" + n.replace("'", "''") + "'" for n in names) + ")"


def ingest_batch(spark, conf: Conf, batch: list[BulkFile], columns: list[Column],
                 run_id: str) -> dict:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    names = [f.name for f in batch]
    staging = f"{conf.table_path('_staging')}/ingest"
    files_df = spark.createDataFrame(
        spark.sparkContext.parallelize([(f.path,) for f in batch], len(batch)), "path string")
    parsed = files_df.mapInArrow(parse_files_arrow(columns, int(conf.get("ingest.chunk_bytes"))),
                                 spark_schema_ddl(columns))
    parsed.write.mode("overwrite").parquet(staging)
    staged = spark.read.parquet(staging)

    failures = {r.source_file: r.reason for r in
                staged.where("line_number IS NULL").select("source_file", "reason").collect()}
    for name, err in failures.items():
        log.error("file failed, others go on: %s", err)
    good = staged.where(~F.col("source_file").isin(list(failures))) if failures else staged
    rows = good.where("reason IS NULL")

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
    dups = dups.dropDuplicates(["source_file", "line_number"]).cache()
    n_dups = {r.source_file: r["count"] for r in dups.groupBy("source_file").count().collect()}
    dup_lines = _raw_lines(dups, batch) if n_dups else spark.createDataFrame([], dups.schema).select(
        "source_file", "line_number", F.lit(None).cast("string").alias("raw_line"), "reason")

    _create_table(spark, conf, columns)
    shift = 2 * (MAX_ORDER - int(conf.get("catalog.partition_order")))
    kept = (rows.join(dups.select("source_file", "line_number"), ["source_file", "line_number"],
                      "left_anti")
            .withColumn("hpx", F.shiftright("hpx29", shift))
            .withColumn("run_id", F.lit(run_id))
            .drop("line_number", "reason", "raw_line"))
    target = read_table(spark, conf, TABLE).columns
    kept = kept.select(*target).repartition("hpx").sortWithinPartitions("hpx", "hpx29")
    write_table(kept, conf, TABLE, partition_by=["hpx"], replace_where=_in_list(names))

    quarantined = (good.where("reason IS NOT NULL").select("source_file", "line_number",
                                                            "raw_line", "reason")
                   .unionByName(dup_lines)
                   .withColumn("run_id", F.lit(run_id)))
    write_table(quarantined, conf, QUARANTINE, replace_where=_in_list(names))

    counts = {r.source_file: r for r in good.groupBy("source_file").agg(
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

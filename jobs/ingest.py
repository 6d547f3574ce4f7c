"""``gaialake ingest``: Gaia DR3 bulk files -> Delta ``gaia_source`` partitioned by HEALPix.

Stages, per batch of ``ingest.files_per_batch`` files not yet in ``ingest_log``:

1. parse: one Spark task per file (gzip does not split); pyarrow parses blocks typed from the
   file's ECSV header and validates rows (``gaialake.io.bulkfile``); staged to Parquet once.
2. dedupe: a ``source_id`` seen twice (in the batch, or already in the table from another file)
   keeps its first occurrence (by file name, line); later ones are quarantined.
3. write ``gaia_source`` (``hpx`` partitions, sorted by ``hpx29``) and ``gaia_source_quarantine``,
   each replacing exactly the rows of the batch's files (``source_file IN ...``), then
   ``ingest_log``, the completion marker (the plumbing: :mod:`gaialake.io.catalogload`).
   ``ingest.writer``: ``arrow`` (local warehouses) has one Spark task per file write its rows
   with pyarrow into the table's ``hpx=<k>/`` folders, with Delta's statistics, and the driver
   commits them and the removal of the batch's old rows in one Delta commit
   (:func:`gaialake.io.delta.commit_files`); ``spark`` uses Spark's Delta writer
   (``replaceWhere``), 1.3-1.5x slower (BENCHMARKS.md). A run killed anywhere redoes the
   unfinished batch and ends with exactly the right rows (files it wrote but never committed
   are no part of the table; ``VACUUM`` deletes them); re-running on ingested files changes
   nothing. A file replaced by one of another size is ingested again (its rows replaced); with
   ``ingest.prune_missing`` the rows of files gone from ``paths.raw`` are deleted.
"""
from __future__ import annotations

import sys
import uuid

from gaialake import tables
from gaialake.astro.healpix import MAX_ORDER
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.catalogio import BulkFile, list_bulk_files
from gaialake.io.catalogload import (batch_log_rows, choose_writer, create_gaia_source,
                                     failed_log_rows, find_duplicates, header_columns,
                                     ingested_files, prune_files, quarantine_rows,
                                     source_files_in, stage_batch, write_ingest_log,
                                     write_rows_arrow, write_rows_spark)
from gaialake.io.delta import write_table
from gaialake.io.dr3schema import Column
from gaialake.io.spark import get_spark
from gaialake.log import get_logger, stage

log = get_logger("ingest")


def run(conf: Conf) -> dict:
    """Ingest the bulk files of ``paths.raw`` not yet in ``ingest_log``, batch by batch; returns
    counts of files (ingested, failed) and rows (kept, quarantined)."""
    spark = get_spark(conf)
    run_id = uuid.uuid4().hex
    files = list_bulk_files(spark, conf.path("paths.raw"))
    done = ingested_files(spark, conf, bool(conf.get("ingest.retry_failed", False)))
    pending = [f for f in files if done.get(f.name) != f.size]
    if conf.get("ingest.prune_missing", False):
        prune_files(spark, conf, set(done) - {f.name for f in files})
    log.info("%d bulk files under %s: %d already ingested, %d to do", len(files),
             conf.path("paths.raw"), len(files) - len(pending), len(pending))
    if not pending:
        return {"files": len(files), "ingested": 0}
    columns, unreadable = header_columns(pending)
    if columns is None:
        write_ingest_log(spark, conf, failed_log_rows(unreadable, run_id))
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


def ingest_batch(spark, conf: Conf, batch: list[BulkFile], columns: list[Column],
                 run_id: str) -> dict:
    """Stage, deduplicate and write one batch: its rows in ``gaia_source``, its invalid and
    duplicate rows in ``gaia_source_quarantine``, then its files in ``ingest_log``; returns the
    batch's rows read, kept, quarantined and its failed files."""
    names = [f.name for f in batch]
    staging = f"{conf.table_path('_staging')}/ingest"
    with stage(log, "parse and stage"):
        staged = stage_batch(spark, batch, columns, int(conf.get("ingest.chunk_bytes")), staging)
    if staged.rows is None:
        write_ingest_log(spark, conf, failed_log_rows(
            {f: staged.failures[f.name] for f in batch}, run_id))
        return {"rows_read": 0, "rows_kept": 0, "rows_quarantined": 0, "failed": len(batch)}
    rows = staged.rows.where("reason IS NULL")
    with stage(log, "find duplicate source_ids"):
        dups, n_dups = find_duplicates(spark, conf, rows, names)
    found = dups if n_dups else None
    create_gaia_source(spark, conf, columns)
    shift = 2 * (MAX_ORDER - int(conf.get("catalog.partition_order")))
    writer = choose_writer(conf)
    with stage(log, f"write {tables.GAIA_SOURCE.name} ({writer} writer)"):
        if writer == "arrow":
            write_rows_arrow(spark, conf, staging, staged.staged, names, found, shift, run_id)
        else:
            write_rows_spark(conf, rows, found, names, shift, run_id,
                             bool(conf.get("ingest.shuffle_by_hpx", False)))
    write_table(quarantine_rows(staged.rows, found, batch, run_id), conf,
                tables.GAIA_SOURCE_QUARANTINE, replace_where=source_files_in(names))
    log_rows = batch_log_rows(staged.rows, batch, staged.failures, n_dups, run_id)
    write_ingest_log(spark, conf, log_rows)
    dups.unpersist()
    return {"rows_read": sum(r[4] for r in log_rows), "rows_kept": sum(r[5] for r in log_rows),
            "rows_quarantined": sum(r[6] for r in log_rows), "failed": len(staged.failures)}


if __name__ == "__main__":
    sys.exit(job_main("ingest"))

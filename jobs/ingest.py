"""``gaialake ingest``: Gaia DR3 bulk files, Parquet files or a HATS catalog -> Delta
``gaia_source`` partitioned by HEALPix.

``paths.raw`` holds ESA's bulk files (``GaiaSource_*.csv.gz``), Parquet files with DR3 column
names (an archive export; named by their path below ``paths.raw``), or is a HATS catalog
(``hats.properties``; its leaf files ``dataset/Norder=*/Dir=*/Npix=*.parquet``, whose
``_healpix_29`` is checked against ra/dec): :func:`gaialake.io.catalogio.list_bulk_files`.
Parquet is read with pyarrow (no CSV parsing), through the same checks, quarantine and
``ingest_log`` records as bulk files (a row's ``line_number`` is its row in the file).

Stages, per batch of ``ingest.files_per_batch`` files not yet in ``ingest_log``:

1. headers: each file's header is checked against ``gaia_source``'s columns (DR3's for a fresh
   warehouse) before any of its rows is read: a type conflict, a missing required column or a
   refused policy (``ingest.extra_columns``, ``ingest.missing_columns``) fails that file alone,
   named with its columns in ``ingest_log``; extra columns are added to the table (noted in
   ``ingest_log``), missing optional ones null-filled.
2. parse and write (``ingest.writer: arrow``, local warehouses): the files are dealt by size to
   two Spark tasks per core (a whole file each time: gzip does not split; one file per task on
   a cluster wider than the batch); a task parses each of its files (pyarrow: blocks typed
   from the file's ECSV header, or the Parquet file's row groups), casts the rows to the
   table's columns and validates them (``gaialake.io.bulkfile``, ``gaialake.io.parquetfile``),
   then writes its valid rows, sorted by ``hpx29``, as the table's data files in its
   ``hpx=<k>/`` folders with Delta's statistics (after checking their schema is the table's),
   and its row keys and quarantined rows to a staging folder of this run: one parse and one
   write per row.
3. dedupe: a ``source_id`` seen twice (in the batch, or already in the table from another file)
   keeps its first occurrence (by file name, line); later ones are quarantined. The rare file
   holding such a duplicate is written again without it. Skipped when no duplicate is
   possible: no file repeats a ``source_id`` and the files' ``source_id`` ranges are disjoint
   from each other and from the table's other data files (Delta statistics), as ESA's bulk
   files are (:func:`gaialake.io.catalogload.may_hold_duplicates`).
4. commit: the driver commits the data files and the removal of the batch's old rows in one
   Delta commit (:func:`gaialake.io.delta.commit_files`); then ``gaia_source_quarantine``
   (replacing exactly the rows of the batch's files, ``source_file IN ...``) and
   ``ingest_log``, the completion marker (the plumbing: :mod:`gaialake.io.catalogload`).
   ``ingest.writer: spark`` (object stores) stages the parsed rows to Parquet and uses Spark's
   Delta writer (``replaceWhere``), slower (BENCHMARKS.md). A run killed anywhere redoes the
   unfinished batch and ends with exactly the right rows (files it wrote but never committed
   are no part of the table; ``VACUUM`` deletes them); re-running on ingested files changes
   nothing. A file replaced by one of another size is ingested again (its rows replaced). A
   file that failed for a cause outside it (I/O, permissions, a staging write) is
   ``failed_transient`` and tried again by the next run; one that failed for its content is
   ``failed`` (listed in the summary; tried again with ``ingest.retry_failed`` or once
   replaced).

Rows of files gone from ``paths.raw`` stay unless ``ingest.prune_missing`` (off by default),
which refuses when ``paths.raw`` holds no bulk file or the files hold more than
``ingest.prune_max_fraction`` of the rows, and logs the ``RESTORE TABLE`` that undoes it. Ingests
of one local warehouse are serialized by a lock; each stages under its own folder.
"""
from __future__ import annotations

import sys
import uuid

from gaialake import tables
from gaialake.astro.healpix import MAX_ORDER
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.catalogio import BulkFile, list_bulk_files
from gaialake.io.catalogload import (FAILED, OK, batch_log_rows, choose_writer, clear_path,
                                     commit_batch_arrow, failed_log_rows, find_duplicates,
                                     ingest_lock, ingested_files, may_hold_duplicates,
                                     plan_batch, prepare_gaia_source, prune_files, read_headers,
                                     stage_batch, staged_counts, staging_path, table_columns,
                                     write_batch_arrow, write_ingest_log, write_quarantine,
                                     write_rows_spark)
from gaialake.io.spark import get_spark
from gaialake.io.truthfile import register_truth_files
from gaialake.log import get_logger, stage

log = get_logger("ingest")


def run(conf: Conf) -> dict:
    """Ingest the bulk files of ``paths.raw`` not yet in ``ingest_log``, batch by batch; returns
    counts of files (ingested, failed for their content, failed transiently) and rows (kept,
    quarantined), the names of the files that failed for their content (``failed_files``), were
    left for the next run (``retry_files``) or skipped for their name (``skipped_files``)."""
    spark = get_spark(conf)
    run_id = uuid.uuid4().hex
    with ingest_lock(conf):
        try:
            return _run(spark, conf, run_id)
        finally:
            clear_path(spark, staging_path(conf, run_id))


def _run(spark, conf: Conf, run_id: str) -> dict:
    skipped: list[str] = []
    files = list_bulk_files(spark, conf.path("paths.raw"), skipped=skipped)
    done = ingested_files(spark, conf, bool(conf.get("ingest.retry_failed", False)))
    pending = [f for f in files if done.get(f.name) != f.size]
    gone = set(done) - {f.name for f in files}
    totals = {"files": len(files), "ingested": 0, "failed": 0, "failed_transient": 0,
              "rows_kept": 0, "rows_quarantined": 0, "failed_files": [], "retry_files": [],
              "skipped_files": skipped}
    if conf.get("ingest.prune_missing", False):
        totals.update(prune_files(spark, conf, gone, len(files),
                                  float(conf.get("ingest.prune_max_fraction", 0.1))))
    elif gone:
        log.warning("%d files in ingest_log are gone from paths.raw; their rows stay (set "
                    "ingest.prune_missing=true to delete them)", len(gone))
    log.info("%d catalog files under %s: %d already ingested, %d to do", len(files),
             conf.path("paths.raw"), len(files) - len(pending), len(pending))
    size = int(conf.get("ingest.files_per_batch"))
    for i in range(0, len(pending), size):
        batch = pending[i:i + size]
        with stage(log, f"batch {i // size + 1}/{-(-len(pending) // size)} ({len(batch)} files)") as st:
            counts = ingest_batch(spark, conf, batch, run_id)
            st.count = counts.pop("rows_read")
        for key in ("rows_kept", "rows_quarantined"):
            totals[key] += counts[key]
        for name, status in counts["status"].items():
            key = "ingested" if status == OK else "failed" if status == FAILED else "failed_transient"
            totals[key] += 1
            if status != OK:
                totals["failed_files" if status == FAILED else "retry_files"].append(name)
    totals["truth_tables"] = register_truth_files(spark, conf, conf.path("paths.raw"), run_id)
    if totals["failed_files"]:
        log.error("%d files failed for their content (see ingest_log.error; fix or replace them, "
                  "or re-run with ingest.retry_failed=true): %s", len(totals["failed_files"]),
                  ", ".join(totals["failed_files"][:20]))
    if totals["retry_files"]:
        log.warning("%d files failed for a cause outside them; the next run tries them again: %s",
                    len(totals["retry_files"]), ", ".join(totals["retry_files"][:20]))
    return totals


def ingest_batch(spark, conf: Conf, batch: list[BulkFile], run_id: str) -> dict:
    """Check headers, stage, deduplicate and write one batch: its rows in ``gaia_source``, its
    invalid and duplicate rows in ``gaia_source_quarantine``, then its files in ``ingest_log``;
    returns the batch's rows read, kept, quarantined and each file's status."""
    names = [f.name for f in batch]
    with stage(log, "check headers"):
        reference, _ = table_columns(spark, conf)
        plan = plan_batch(read_headers(spark, batch), batch, reference,
                          str(conf.get("ingest.extra_columns", "evolve")),
                          str(conf.get("ingest.missing_columns") or "null"))
    failures = dict(plan.failures)
    if not plan.accepted:
        return _log_failed(spark, conf, batch, failures, run_id)
    prepare_gaia_source(spark, conf, plan)
    staging = staging_path(conf, run_id)
    clear_path(spark, staging)
    shift = 2 * (MAX_ORDER - int(conf.get("catalog.partition_order")))
    writer = choose_writer(conf)
    if writer == "arrow":
        with stage(log, "parse and write (arrow writer)"):
            written = write_batch_arrow(spark, conf, plan.accepted, plan.target, staging, shift,
                                        run_id)
        failures.update(written.failures)
        if written.keys is None:
            return _log_failed(spark, conf, batch, failures, run_id)
        keys, invalid, counts = written.keys, written.invalid, written.counts
    else:
        with stage(log, "parse and stage"):
            staged = stage_batch(spark, plan.accepted, plan.target,
                                 int(conf.get("ingest.chunk_bytes")), staging)
        failures.update(staged.failures)
        if staged.rows is None:
            return _log_failed(spark, conf, batch, failures, run_id)
        keys = staged.rows.where("reason IS NULL")
        invalid = staged.rows.where("reason IS NOT NULL")
        counts = staged_counts(staged.rows)
    dups, n_dups = None, {}
    with stage(log, "duplicate check"):
        if writer != "arrow" or may_hold_duplicates(spark, conf, written.spans, names):
            dups, n_dups = find_duplicates(spark, conf, keys, names)
        else:
            log.info("no duplicate source_id possible: the files' source_id ranges are "
                     "disjoint and none repeats one")
    found = dups if n_dups else None
    with stage(log, f"write {tables.GAIA_SOURCE.name} ({writer} writer)"):
        if writer == "arrow":
            adds = written.adds
            if n_dups:   # rare: write the files with duplicates again, without them
                lines: dict[str, list[int]] = {}
                for r in dups.select("source_file", "line_number").collect():
                    lines.setdefault(r.source_file, []).append(int(r.line_number))
                again = write_batch_arrow(spark, conf, [f for f in plan.accepted if f.name in lines],
                                          plan.target, staging, shift, run_id, lines)
                adds = {**adds, **again.adds}
            commit_batch_arrow(spark, conf, adds, names)
        else:
            write_rows_spark(conf, keys, found, names, shift, run_id,
                             bool(conf.get("ingest.shuffle_by_hpx", False)))
    log_rows = batch_log_rows(counts, batch, failures, n_dups, run_id, plan.notes)
    with stage(log, "write quarantine and ingest_log"):
        write_quarantine(spark, conf, invalid, found, batch, run_id,
                         sum(bad for _, bad in counts.values()) + sum(n_dups.values()))
        write_ingest_log(spark, conf, log_rows)
    if dups is not None:
        dups.unpersist()
    return {"rows_read": sum(r[4] for r in log_rows), "rows_kept": sum(r[5] for r in log_rows),
            "rows_quarantined": sum(r[6] for r in log_rows),
            "status": {r[0]: r[2] for r in log_rows}}


def _log_failed(spark, conf: Conf, batch: list[BulkFile], failures: dict, run_id: str) -> dict:
    """Record a batch none of whose files could be read (each with its error)."""
    log_rows = failed_log_rows({f: failures[f.name] for f in batch}, run_id)
    write_ingest_log(spark, conf, log_rows)
    return {"rows_read": 0, "rows_kept": 0, "rows_quarantined": 0,
            "status": {r[0]: r[2] for r in log_rows}}


if __name__ == "__main__":
    sys.exit(job_main("ingest"))

"""Listing bulk files and turning their parsed blocks into Spark rows (Spark plumbing for ingest)."""
from __future__ import annotations

import fnmatch
import json
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gaialake.io.bulkfile import (BulkFileError, TransientFileError, parse_bulk_file,
                                  read_header, read_lines, staged_schema)
from gaialake.io.deltafiles import write_partitioned
from gaialake.io.dr3schema import Column, EcsvError, arrow_type, spark_type
from gaialake.io.parquetfile import is_parquet, parquet_columns, parse_parquet_file, read_rows
from gaialake.log import get_logger

__all__ = ["BulkFile", "list_bulk_files", "spark_schema_ddl", "stage_files_arrow", "PATTERN",
           "STAGE_RESULT_DDL", "HEADER_RESULT_DDL",
           "read_headers_arrow", "columns_from_json", "staged_file", "header_columns",
           "parse_file", "raw_rows", "FILES_DDL", "WRITE_RESULT_DDL", "write_files_arrow",
           "sorted_table_rows", "QUARANTINE_COLUMNS", "KEY_COLUMNS"]

PATTERN = "GaiaSource_*.csv.gz"
#: Parquet files beside a mock's catalog files that are not catalog files (its truth tables).
SIDE_FILES = "truth_*.parquet"

T = TypeVar("T")

log = get_logger("ingest")


@dataclass(frozen=True)
class BulkFile:
    """One bulk file: its full ``path`` (or URI), ``name`` (the ``source_file`` key) and
    ``size`` (bytes)."""
    path: str       # full path or URI
    name: str       # basename: the source_file key
    size: int       # bytes


def _looks_like_bulk_file(name: str) -> bool:
    """Whether ``name`` was meant as a bulk file (a CSV, or named like one in any case)."""
    lower = name.lower()
    return ".csv" in lower or lower.startswith("gaiasource")


def _walk(fs, root) -> Iterator:
    """The file statuses under ``root`` (recursive; Hadoop ``LocatedFileStatus``)."""
    it = fs.listFiles(root, True)
    while it.hasNext():
        yield it.next()


def _relative(uri: str, root_uri: str) -> str:
    return uri[len(root_uri):].lstrip("/") if uri.startswith(root_uri) else uri.rsplit("/", 1)[-1]


def _local(uri: str) -> str:
    return uri[len("file:"):] if uri.startswith("file:") else uri


def _hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def list_bulk_files(spark, raw: str, pattern: str = PATTERN,
                    skipped: list[str] | None = None) -> list[BulkFile]:
    """The catalog files under ``raw`` (any Hadoop file system: local, s3a://, abfss://,
    dbfs:/), sorted by name: ESA's bulk files, Parquet files, or a HATS catalog.

    * Bulk files match ``pattern`` (``GaiaSource_*.csv.gz``, case-sensitive); their ``name``
      (the ``source_file`` key) is the base name. Files that look like bulk files but do not
      match (``gaiasource_...``, ``.csv``) are not ingested: a log line names them and they are
      appended to ``skipped``.
    * Parquet files (``*.parquet``, at any depth) are named by their path below ``raw``.
    * A HATS catalog (``raw/hats.properties``): its leaf files ``dataset/Norder=*/Dir=*/Npix=*``
      (``.parquet``), named by their path below ``raw``; a HATS collection
      (``collection.properties``) is refused with the catalogs it holds named.

    Hidden files and folders (``.name``, ``_name``: HATS' ``_metadata``), a mock's truth tables
    (:data:`SIDE_FILES`) and other files (a generator's ``*.json`` manifest, say) are passed
    over silently."""
    jvm = spark.sparkContext._jvm
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(raw)
    fs = root.getFileSystem(hconf)
    if not fs.exists(root):
        raise FileNotFoundError(f"paths.raw={raw}: no such directory (run `gaialake generate` "
                                f"or point paths.raw at the DR3 bulk files, Parquet files or a "
                                f"HATS catalog)")
    root_uri = fs.getFileStatus(root).getPath().toUri().toString().rstrip("/") + "/"
    child = jvm.org.apache.hadoop.fs.Path
    if fs.exists(child(root, "collection.properties")) and not fs.exists(
            child(root, "hats.properties")):
        inner = sorted(_relative(st.getPath().getParent().toUri().toString(), root_uri)
                       for st in _walk(fs, root) if st.getPath().getName() == "hats.properties")
        raise ValueError(f"paths.raw={raw} is a HATS collection: point paths.raw at one of its "
                         f"catalogs (a folder with hats.properties): {inner[:10]}")
    hats = fs.exists(child(root, "hats.properties"))
    out, others = [], []
    for st in _walk(fs, root):
        uri = st.getPath().toUri().toString()
        rel = _relative(uri, root_uri)
        name = st.getPath().getName()
        if _hidden(rel):
            continue
        if fnmatch.fnmatchcase(name, SIDE_FILES):
            continue
        if name.endswith(".parquet") and (not hats or rel.startswith("dataset/")):
            out.append(BulkFile(_local(uri), rel, int(st.getLen())))
        elif hats:
            continue
        elif fnmatch.fnmatchcase(name, pattern):
            out.append(BulkFile(_local(uri), name, int(st.getLen())))
        elif _looks_like_bulk_file(name):
            others.append(name)
    if others:
        others.sort()
        log.warning("%d files under %s do not match %s (names are case-sensitive) and are not "
                    "ingested: %s%s", len(others), raw, pattern, ", ".join(others[:20]),
                    f" and {len(others) - 20} more" if len(others) > 20 else "")
        if skipped is not None:
            skipped.extend(others)
    names = [f.name for f in out]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise ValueError(f"paths.raw={raw}: file names appear twice (source_file must be unique): "
                         f"{sorted(dups)[:5]}")
    return sorted(out, key=lambda f: f.name)


def staged_file(staging: str, name: str) -> str:
    """The staging Parquet file of the catalog file ``name`` (a path below ``paths.raw`` for
    Parquet input: flattened, so no folder of the staging area looks like a partition)."""
    return f"{staging.rstrip('/')}/{name.replace('/', '__')}.parquet"


def header_columns(path: str) -> list[Column]:
    """A catalog file's columns: a bulk file's ECSV header, or a Parquet file's schema."""
    return parquet_columns(path) if is_parquet(path) else list(read_header(path).columns)


def parse_file(path: str, name: str, columns: Sequence[Column],
               chunk_bytes: int) -> Iterator[pa.RecordBatch]:
    """Staged rows of one catalog file in the table's ``columns`` (bulk file or Parquet)."""
    if is_parquet(path):
        return parse_parquet_file(path, columns, name=name)
    return parse_bulk_file(path, columns, chunk_bytes)


def raw_rows(path: str, line_numbers: Sequence[int]) -> dict[int, str]:
    """The raw text of rows of a catalog file by line number (Parquet: row number, as JSON)."""
    return read_rows(path, line_numbers) if is_parquet(path) else read_lines(path, line_numbers)


def spark_schema_ddl(columns: Sequence[Column]) -> str:
    """DDL of ingested rows before ``hpx``/``run_id``: the file's columns, hpx29, source_file."""
    fields = [f"`{c.name}` {spark_type(c.datatype)}" for c in columns]
    return ", ".join(fields + ["`hpx29` long", "`source_file` string"])


#: The rows the per-file tasks take: a file's path and its ``source_file`` name.
FILES_DDL = "path string, name string"
HEADER_RESULT_DDL = "source_file string, columns string, error string, transient boolean"


def _attempt(name: str, work: Callable[[], T]) -> tuple[T | None, str | None, bool]:
    """``work()`` for the file ``name``: (its result, None, False), or (None, the error,
    whether it is transient). Content errors (an unreadable header or body) are permanent;
    :class:`TransientFileError` and anything unexpected (outside the file's content) are
    transient: the next run tries the file again."""
    try:
        return work(), None, False
    except (EcsvError, BulkFileError) as err:
        return None, str(err), False
    except TransientFileError as err:
        return None, str(err), True
    except Exception as err:  # outside the file's content: tried again next run
        return None, f"{name}: {type(err).__name__}: {err}", True


def columns_from_json(text: str) -> list[Column]:
    """Columns of a header as :func:`read_headers_arrow` returns them (JSON)."""
    return [Column(n, d, u) for n, d, u in json.loads(text)]


def read_headers_arrow():
    """The mapInArrow function: rows of files in (:data:`FILES_DDL`), one row per file out
    (:data:`HEADER_RESULT_DDL`):
    its header's columns as JSON ``[[name, datatype, unit], ...]``, or the error that kept it
    from being read and whether that error is transient (outside the file's content)."""
    schema = pa.schema([("source_file", pa.string()), ("columns", pa.string()),
                        ("error", pa.string()), ("transient", pa.bool_())])

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, name in zip(batch.column("path").to_pylist(),
                                  batch.column("name").to_pylist()):
                columns, error, transient = _attempt(name, lambda: json.dumps(
                    [[c.name, c.datatype, c.unit] for c in header_columns(path)]))
                yield pa.RecordBatch.from_pydict(
                    {"source_file": [name], "columns": [columns], "error": [error],
                     "transient": [transient]}, schema=schema)
    return fn


STAGE_RESULT_DDL = "source_file string, staged_rows long, error string, transient boolean"


def stage_files_arrow(columns: Sequence[Column], chunk_bytes: int, staging: str):
    """The mapInArrow function: rows of files in (:data:`FILES_DDL`), one summary row per file out.

    Each file's staged rows (:func:`parse_file`, in the table's ``columns``) are written by
    pyarrow to :func:`staged_file` (columnar, no row
    conversion in the JVM). A file that cannot be read or staged leaves no staging file and
    returns its error, ``transient`` when the cause is outside its content (I/O, permissions, a
    staging write that failed); the others go on.
    """
    schema = staged_schema(columns)
    out_schema = pa.schema([("source_file", pa.string()), ("staged_rows", pa.int64()),
                            ("error", pa.string()), ("transient", pa.bool_())])

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, name in zip(batch.column("path").to_pylist(),
                                  batch.column("name").to_pylist()):
                rows, error, transient = _attempt(name, lambda: _stage_one(
                    path, name, columns, chunk_bytes, schema, staged_file(staging, name)))
                yield pa.RecordBatch.from_pydict(
                    {"source_file": [name], "staged_rows": [rows or 0], "error": [error],
                     "transient": [transient]}, schema=out_schema)
    return fn


WRITE_RESULT_DDL = ("source_file string, rows_read long, rows_bad long, adds string, "
                    "error string, transient boolean, id_min long, id_max long, repeats boolean, "
                    "parse_s double, write_s double")
#: Columns of a quarantined row in the staging area and in ``gaia_source_quarantine``.
QUARANTINE_COLUMNS = ["source_file", "line_number", "raw_line", "reason"]
#: Columns of a valid row's key in the staging area (what duplicate detection reads).
KEY_COLUMNS = ["source_id", "source_file", "line_number"]
#: Rows per row group of a staged file (Spark's writer path).
STAGED_ROW_GROUP = 131072


def sorted_table_rows(rows: pa.Table, table_columns: Sequence[str], run_id: str,
                      hpx29: np.ndarray) -> tuple[pa.Table, np.ndarray]:
    """Valid staged rows as the table's data columns (``hpx`` aside) plus ``run_id``, sorted by
    ``hpx29``; returns them and their sorted ``hpx29``."""
    order = np.argsort(hpx29, kind="stable")
    data_columns = [c for c in table_columns if c not in ("hpx", "run_id")]
    out = (rows.select(data_columns).take(order)
           .append_column("run_id", pa.array([run_id] * rows.num_rows, pa.string()))
           .select([c for c in table_columns if c != "hpx"]))
    return out, hpx29[order]


def write_files_arrow(columns: Sequence[Column], chunk_bytes: int, staging: str, root: str,
                      table_columns: Sequence[str], stats_columns: Sequence[str], shift: int,
                      run_id: str, table_types: dict[str, str],
                      exclude: dict[str, list[int]] | None = None):
    """The mapInArrow function of the arrow writer: rows of files in (:data:`FILES_DDL`), one
    row per file out (:data:`WRITE_RESULT_DDL`).

    Each file is parsed (:func:`parse_file`, in the table's ``columns``) and its valid rows,
    less its ``exclude`` lines (duplicates found after a first pass), get ``hpx = hpx29 >>
    shift`` and ``run_id``, are sorted by ``hpx29`` and written by pyarrow as the table's data
    files under ``root`` (local), one per ``hpx`` partition, with Delta's statistics of
    ``stats_columns``; ``adds`` lists them (JSON) for the driver's one commit
    (:func:`gaialake.io.delta.commit_files`). Beside them, in ``staging``, the file's row keys
    (:data:`KEY_COLUMNS`) and quarantined rows (:data:`QUARANTINE_COLUMNS`); the result row
    also gives the file's smallest and largest valid ``source_id`` and whether one repeats in
    it (what lets the driver skip duplicate detection). Rows of another
    schema than ``table_types`` (column -> ECSV datatype) fail the task before any data file
    is written. A file that cannot be read returns its error (``transient`` when the cause is
    outside its content); the others go on. Nothing is staged twice: one parse, one write.
    ``parse_s`` and ``write_s``: the task's seconds parsing the file (inflate, CSV, checks,
    ``hpx29``) and writing it (keys, sort, data files with statistics), for the profile.
    """
    import pyarrow.parquet as pq

    schema = staged_schema(columns)
    out_schema = pa.schema([("source_file", pa.string()), ("rows_read", pa.int64()),
                            ("rows_bad", pa.int64()), ("adds", pa.string()),
                            ("error", pa.string()), ("transient", pa.bool_()),
                            ("id_min", pa.int64()), ("id_max", pa.int64()),
                            ("repeats", pa.bool_()), ("parse_s", pa.float64()),
                            ("write_s", pa.float64())])
    expected = pa.schema([(c, arrow_type(table_types[c])) for c in table_columns if c != "hpx"])
    exclude = exclude or {}

    def write_one(path: str, name: str) -> dict:
        start = time.perf_counter()
        parsed, error, transient = _attempt(name, lambda: pa.Table.from_batches(
            list(parse_file(path, name, columns, chunk_bytes)), schema=schema))
        parsed_at = time.perf_counter()
        if parsed is None:
            return {"source_file": name, "rows_read": 0, "rows_bad": 0, "adds": None,
                    "error": error, "transient": transient}
        n_read = parsed.num_rows
        if parsed.column("reason").null_count == n_read:   # all valid: no filter copies
            good, bad = parsed, parsed.slice(0, 0).select(QUARANTINE_COLUMNS)
        else:
            valid = pc.is_null(parsed.column("reason"))
            bad = parsed.filter(pc.invert(valid)).select(QUARANTINE_COLUMNS)
            good = parsed.filter(valid)
        if exclude.get(name):
            good = good.filter(pc.invert(pc.is_in(good.column("line_number"),
                                                  pa.array(exclude[name], pa.int64()))))
        _, error, _ = _attempt(name, lambda g=good, b=bad: _stage_side_files(name, g, b))
        if error is not None:
            return {"source_file": name, "rows_read": 0, "rows_bad": 0, "adds": None,
                    "error": error, "transient": True}
        ids = np.sort(good.column("source_id").to_numpy())
        span = {"id_min": int(ids[0]) if len(ids) else None,
                "id_max": int(ids[-1]) if len(ids) else None,
                "repeats": bool(len(ids) > 1 and (np.diff(ids) == 0).any())}
        rows, hpx29 = sorted_table_rows(good, table_columns, run_id,
                                        good.column("hpx29").to_numpy())
        del parsed, good
        records = write_partitioned(rows, root, "hpx", hpx29 >> shift, stats_columns,
                                    expected=expected)
        return {"source_file": name, "rows_read": n_read, "rows_bad": bad.num_rows,
                "adds": json.dumps(records), "error": None, "transient": False, **span,
                "parse_s": parsed_at - start, "write_s": time.perf_counter() - parsed_at}

    def _stage_side_files(name: str, good: pa.Table, bad: pa.Table) -> None:
        for table, target in ((good.select(KEY_COLUMNS), staged_file(staging, f"{name}.keys")),
                              (bad, staged_file(staging, f"{name}.quarantine"))):
            try:
                if "://" in target:
                    import fsspec

                    with fsspec.open(target.replace("s3a://", "s3://", 1), "wb") as out:
                        pq.write_table(table, out)
                else:
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    pq.write_table(table, target)
            except Exception as err:
                raise TransientFileError(f"{name}: staging to {target} failed: "
                                         f"{type(err).__name__}: {err}") from None

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path, name in zip(batch.column("path").to_pylist(),
                                  batch.column("name").to_pylist()):
                yield pa.RecordBatch.from_pylist([write_one(path, name)], schema=out_schema)
    return fn


def _stage_one(path: str, name: str, columns: Sequence[Column], chunk_bytes: int,
               schema: pa.Schema, target: str) -> int:
    import pyarrow.parquet as pq

    local = "://" not in target
    tmp = f"{target}.tmp" if local else target
    if local:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    rows = 0
    try:
        if local:
            sink = tmp
        else:
            import fsspec
            sink = fsspec.open(tmp.replace("s3a://", "s3://", 1), "wb").open()
        with pq.ParquetWriter(sink, schema, compression="snappy") as writer:
            pending: list[pa.RecordBatch] = []   # the parser's ~1 MiB batches, one row group
            for block in parse_file(path, name, columns, chunk_bytes):
                pending.append(block)
                rows += block.num_rows
                if sum(b.num_rows for b in pending) >= STAGED_ROW_GROUP:
                    writer.write_table(pa.Table.from_batches(pending, schema=schema))
                    pending = []
            if pending:
                writer.write_table(pa.Table.from_batches(pending, schema=schema))
        if local:
            os.replace(tmp, target)
    except BaseException as err:
        if local and os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(err, (BulkFileError, TransientFileError)) or not isinstance(err, Exception):
            raise
        # not a content error the parser names: staging failed (disk, permissions, a folder gone)
        raise TransientFileError(f"{name}: staging to {target} failed: "
                                 f"{type(err).__name__}: {err}") from None
    return rows

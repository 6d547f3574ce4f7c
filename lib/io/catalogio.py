"""Listing bulk files and turning their parsed blocks into Spark rows (Spark plumbing for ingest)."""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gaialake.io.bulkfile import BulkFileError, parse_bulk_file, staged_schema
from gaialake.io.deltafiles import write_partitioned
from gaialake.io.dr3schema import Column, spark_type

__all__ = ["BulkFile", "list_bulk_files", "spark_schema_ddl", "stage_files_arrow", "PATTERN",
           "STAGE_RESULT_DDL", "write_table_files_arrow", "ADD_FILE_DDL"]

PATTERN = "GaiaSource_*.csv.gz"


@dataclass(frozen=True)
class BulkFile:
    """One bulk file: its full ``path`` (or URI), ``name`` (the ``source_file`` key) and
    ``size`` (bytes)."""
    path: str       # full path or URI
    name: str       # basename: the source_file key
    size: int       # bytes


def list_bulk_files(spark, raw: str, pattern: str = PATTERN) -> list[BulkFile]:
    """Bulk files under ``raw`` (any Hadoop file system: local, s3a://, abfss://, dbfs:/), sorted."""
    jvm = spark.sparkContext._jvm
    hconf = spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(raw)
    fs = root.getFileSystem(hconf)
    if not fs.exists(root):
        raise FileNotFoundError(f"paths.raw={raw}: no such directory (run `gaialake generate` "
                                f"or point paths.raw at the DR3 bulk files)")
    out = []
    it = fs.listFiles(root, True)
    while it.hasNext():
        st = it.next()
        name = st.getPath().getName()
        if fnmatch.fnmatch(name, pattern):
            uri = st.getPath().toUri().toString()
            path = uri[len("file:"):] if uri.startswith("file:") else uri
            out.append(BulkFile(path, name, int(st.getLen())))
    names = [f.name for f in out]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise ValueError(f"paths.raw={raw}: file names appear twice (source_file must be unique): "
                         f"{sorted(dups)[:5]}")
    return sorted(out, key=lambda f: f.name)


def spark_schema_ddl(columns: Sequence[Column]) -> str:
    """DDL of ingested rows before ``hpx``/``run_id``: the file's columns, hpx29, source_file."""
    fields = [f"`{c.name}` {spark_type(c.datatype)}" for c in columns]
    return ", ".join(fields + ["`hpx29` long", "`source_file` string"])


STAGE_RESULT_DDL = "source_file string, staged_rows long, error string"


def stage_files_arrow(columns: Sequence[Column], chunk_bytes: int, staging: str):
    """The mapInArrow function: rows of paths in, one summary row per file out.

    Each file's staged rows (:func:`gaialake.io.bulkfile.parse_bulk_file`) are written by pyarrow to
    ``<staging>/<file>.parquet`` (columnar, no row conversion in the JVM). A file that cannot be
    read leaves no staging file and returns its error; the others go on.
    """
    schema = staged_schema(columns)

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path in batch.column("path").to_pylist():
                name = os.path.basename(path)
                rows, error = 0, None
                try:
                    rows = _stage_one(path, columns, chunk_bytes, schema,
                                      f"{staging.rstrip('/')}/{name}.parquet")
                except BulkFileError as err:
                    error = str(err)
                except Exception as err:  # any other error: the file fails, others go on
                    error = f"{name}: {type(err).__name__}: {err}"
                yield pa.RecordBatch.from_pydict(
                    {"source_file": [name], "staged_rows": [rows], "error": [error]},
                    schema=pa.schema([("source_file", pa.string()), ("staged_rows", pa.int64()),
                                      ("error", pa.string())]))
    return fn


ADD_FILE_DDL = ("source_file string, path string, size long, partition_value string, "
                "modification_time long, stats string")


def write_table_files_arrow(staging: str, root: str, table_columns: Sequence[str],
                            stats_columns: Sequence[str], shift: int, run_id: str,
                            duplicates: dict[str, list[int]]):
    """The mapInArrow function: rows of staged file names in, one row per data file written out
    (:data:`ADD_FILE_DDL`, for :func:`gaialake.io.delta.commit_files`).

    Each file's valid rows (staged with no ``reason``, less the ``duplicates`` lines of that file)
    get ``hpx = hpx29 >> shift`` and ``run_id``, are sorted by ``hpx29`` and written by pyarrow as
    the table's data files under ``root`` (local), one per ``hpx`` partition.
    """
    import pyarrow.parquet as pq

    out_schema = pa.schema([("source_file", pa.string()), ("path", pa.string()),
                            ("size", pa.int64()), ("partition_value", pa.string()),
                            ("modification_time", pa.int64()), ("stats", pa.string())])
    data_columns = [c for c in table_columns if c not in ("hpx", "run_id")]

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for name in batch.column("source_file").to_pylist():
                staged = pq.read_table(f"{staging.rstrip('/')}/{name}.parquet",
                                       columns=data_columns + ["line_number", "reason"])
                keep = pc.and_(pc.is_null(staged.column("reason")),
                               pc.invert(pc.is_in(staged.column("line_number"),
                                                  pa.array(duplicates.get(name, []), pa.int64()))))
                rows = staged.filter(keep)
                hpx29 = rows.column("hpx29").to_numpy()
                order = np.argsort(hpx29, kind="stable")
                rows = (rows.select(data_columns).take(order)
                        .append_column("run_id", pa.array([run_id] * rows.num_rows, pa.string()))
                        .select([c for c in table_columns if c != "hpx"]))
                records = write_partitioned(rows, root, "hpx", hpx29[order] >> shift, stats_columns)
                yield pa.RecordBatch.from_pylist([{"source_file": name, **r} for r in records],
                                                 schema=out_schema)
    return fn


def _stage_one(path: str, columns: Sequence[Column], chunk_bytes: int, schema: pa.Schema,
               target: str) -> int:
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
            for block in parse_bulk_file(path, columns, chunk_bytes):
                writer.write_batch(block)
                rows += block.num_rows
        if local:
            os.replace(tmp, target)
    except BaseException:
        if local and os.path.exists(tmp):
            os.remove(tmp)
        raise
    return rows

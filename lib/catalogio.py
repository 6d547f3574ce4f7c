"""Listing bulk files and turning their parsed blocks into Spark rows (Spark plumbing for ingest)."""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import pyarrow as pa

from .bulkfile import BulkFileError, parse_bulk_file, staged_schema
from .schema import Column, spark_type

__all__ = ["BulkFile", "list_bulk_files", "spark_schema_ddl", "stage_files_arrow", "PATTERN",
           "STAGE_RESULT_DDL"]

PATTERN = "GaiaSource_*.csv.gz"


@dataclass(frozen=True)
class BulkFile:
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

    Each file's staged rows (:func:`gaialake.bulkfile.parse_bulk_file`) are written by pyarrow to
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

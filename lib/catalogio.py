"""Listing bulk files and turning their parsed blocks into Spark rows (Spark plumbing for ingest)."""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import pyarrow as pa

from .bulkfile import BulkFileError, parse_bulk_file, staged_schema
from .schema import Column, spark_type

__all__ = ["BulkFile", "list_bulk_files", "spark_schema_ddl", "parse_files_arrow", "PATTERN"]

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
    """DDL of staged rows (file columns + bookkeeping) for mapInArrow."""
    fields = [f"`{c.name}` {spark_type(c.datatype)}" for c in columns]
    fields += ["`hpx29` long", "`source_file` string", "`line_number` long", "`reason` string",
               "`raw_line` string"]
    return ", ".join(fields)


def parse_files_arrow(columns: Sequence[Column], chunk_bytes: int):
    """The mapInArrow function: rows of paths in, staged rows out.

    A file that cannot be read yields one row with null line_number and the error as reason;
    rows it yielded before the error are dropped downstream (the file is recorded as failed).
    """
    schema = staged_schema(columns)

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for path in batch.column("path").to_pylist():
                try:
                    yield from parse_bulk_file(path, columns, chunk_bytes)
                except BulkFileError as err:
                    yield _failure(schema, os.path.basename(path), str(err))
                except Exception as err:  # any other error: the file fails, others go on
                    yield _failure(schema, os.path.basename(path),
                                   f"{os.path.basename(path)}: {type(err).__name__}: {err}")
    return fn


def _failure(schema: pa.Schema, name: str, error: str) -> pa.RecordBatch:
    data = {f.name: pa.nulls(1, f.type) for f in schema}
    data["source_file"] = pa.array([name], pa.string())
    data["reason"] = pa.array([error], pa.string())
    return pa.RecordBatch.from_arrays([data[f.name] for f in schema], schema=schema)

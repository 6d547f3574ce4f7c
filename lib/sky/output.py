"""Write one synthetic bulk file byte-deterministically (same table -> same bytes).

The text is exactly :func:`gaialake.bulkfile.format_columns` under
:func:`gaialake.schema.write_ecsv_header`, as :func:`gaialake.bulkfile.write_bulk_file` writes it;
the gzip member header carries mtime 0 and no file name, so a file's bytes depend only on its rows
(``write_bulk_file`` stamps the current time). Local paths are written to a temporary name and
renamed; cluster URIs go through fsspec. gzip level 1 by default: 4x faster than level 6 for
12 % larger files (the text is mostly ``null``s).
"""
from __future__ import annotations

import gzip
import io
import os
from typing import Sequence

import pyarrow as pa

from ..bulkfile import format_columns
from ..schema import Column, write_ecsv_header

__all__ = ["write_sky_file"]


def _write(raw, table: pa.Table, columns: Sequence[Column], compresslevel: int) -> None:
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=compresslevel, mtime=0) as gz:
        out = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
        write_ecsv_header(columns, out)
        lines = format_columns(table, columns) if table.num_rows else pa.array([], pa.string())
        for chunk in lines.chunks if isinstance(lines, pa.ChunkedArray) else [lines]:
            if len(chunk):
                out.write("\n".join(chunk.to_pylist()))
                out.write("\n")
        out.flush()
        out.detach()


def write_sky_file(path: str, table: pa.Table, columns: Sequence[Column],
                   compresslevel: int = 1) -> int:
    """Write ``table`` as an ESA-format ``.csv.gz`` at ``path``; returns the bytes written."""
    if "://" in path and not path.startswith("file://"):
        import fsspec

        with fsspec.open(path.replace("s3a://", "s3://", 1), "wb") as raw:
            _write(raw, table, columns, compresslevel)
        return -1
    local = path[len("file://"):] if path.startswith("file://") else path
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    tmp = f"{local}.{os.getpid()}.tmp"
    with open(tmp, "wb") as raw:
        _write(raw, table, columns, compresslevel)
    os.replace(tmp, local)
    return os.path.getsize(local)

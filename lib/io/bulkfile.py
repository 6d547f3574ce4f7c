"""Read and write Gaia DR3 bulk files (``GaiaSource_*.csv.gz``) with pyarrow; no Spark here.

:func:`parse_bulk_file` turns one file into Arrow batches of *staged rows*: the table's columns
(the file's values typed from its own ECSV header, cast to the table's types; columns the file
lacks are null) plus ``hpx29``, ``source_file``, ``line_number``, and for a row that fails
validation, ``reason`` and ``raw_line`` (its data columns then null). Each block of
``chunk_bytes`` is parsed by pyarrow's typed CSV reader; only a block that fails goes through the
slow path that finds the bad rows one by one, so a clean file costs one pyarrow pass.

Row checks here: field count, a line the CSV reader cannot parse (an unclosed quote, a field
over Python's field limit), type of every value, ``source_id`` present, ra in [0, 360),
dec in [-90, 90], finite values in :data:`~gaialake.io.dr3schema.FINITE_COLUMNS`. Duplicate
``source_id`` needs the whole batch and the table: see ``ingest``. A file that cannot be read
for its content (corrupt gzip, no header, header without the required columns or with another
type than the table's) raises :class:`BulkFileError` naming the file; one that cannot be read
for a reason outside it (I/O error, permissions, a file gone) raises :class:`TransientFileError`.
"""
from __future__ import annotations

import csv
import io
import os
from typing import IO, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import igzip
from isal.isal_zlib import IsalError

from gaialake.astro.healpix import radec_to_hpx29
from gaialake.io.dr3schema import (FALSE_VALUES, FINITE_COLUMNS, NULL_VALUES, TRUE_VALUES,
                                   Column, EcsvError, EcsvHeader, arrow_schema, arrow_type,
                                   check_header, read_ecsv_header, write_ecsv_header)

__all__ = ["BulkFileError", "TransientFileError", "file_error", "STAGE_EXTRA", "staged_schema",
           "open_bulk", "READ_ERRORS", "read_header", "read_lines", "parse_bulk_file",
           "write_bulk_file",
           "format_columns", "MAX_RAW_LINE", "conform", "value_failures", "stage_rows",
           "cut_raw_line", "quarantine_batch"]

#: Characters of a quarantined line kept in ``raw_line`` (a longer one is cut, its length noted).
MAX_RAW_LINE = 1 << 16

#: What reading a bulk file can raise for its bytes or its storage (ISA-L's inflate errors are
#: no OSError; a truncated stream is an EOFError).
READ_ERRORS = (OSError, EOFError, pa.ArrowInvalid, IsalError)

#: Columns added to the file's own columns in staged rows.
STAGE_EXTRA = [("hpx29", pa.int64()), ("source_file", pa.string()), ("line_number", pa.int64()),
               ("reason", pa.string()), ("raw_line", pa.string())]


class BulkFileError(Exception):
    """A bulk file that cannot be ingested at all for its content (the message names the file);
    a permanent failure: the same bytes fail again."""


class TransientFileError(Exception):
    """A bulk file that could not be read or staged for a reason outside its content (I/O error,
    permissions, a file gone, a staging write that failed): the next run tries it again."""


def file_error(name: str, err: BaseException, what: str = "cannot read") -> Exception:
    """The error of a file that failed with ``err``: :class:`TransientFileError` for an operating
    system error (it has an ``errno``: I/O, permissions, no such file, disk full), else
    :class:`BulkFileError` (a corrupt or truncated gzip stream, unparsable bytes)."""
    if isinstance(err, (BulkFileError, TransientFileError)):
        return err
    if isinstance(err, OSError) and err.errno is not None:
        return TransientFileError(f"{name}: {what}: {err}")
    return BulkFileError(f"{name}: {what}: {err}")


def staged_schema(columns: Sequence[Column]) -> pa.Schema:
    """The Arrow schema of staged rows: the file's columns, then ``hpx29``, ``source_file``,
    ``line_number``, ``reason`` (null: valid) and ``raw_line``; a clash of names fails."""
    clash = {c.name for c in columns} & {n for n, _ in STAGE_EXTRA}
    if clash:
        raise BulkFileError(f"column names {sorted(clash)} are reserved for ingest bookkeeping")
    return pa.schema(list(arrow_schema(columns)) + [pa.field(n, t) for n, t in STAGE_EXTRA])


def open_bulk(path: str) -> IO[bytes]:
    """A decompressing binary stream over a local path or a cluster URI (s3a://, abfss://...).

    gzip is inflated by ISA-L (``isal``: ~2-3x zlib's speed on DR3 files, the largest cost of
    parsing after the CSV reader itself); its errors are :data:`READ_ERRORS`."""
    gz = path.endswith(".gz")
    if path.startswith("dbfs:/"):
        path = "/dbfs/" + path[len("dbfs:/"):].lstrip("/")
    if "://" in path and not path.startswith("file://"):
        import fsspec

        raw = fsspec.open(path.replace("s3a://", "s3://", 1), "rb").open()
        return igzip.IGzipFile(fileobj=raw, mode="rb") if gz else raw
    local = path[len("file://"):] if path.startswith("file://") else path
    return igzip.open(local, "rb") if gz else open(local, "rb")


def read_header(path: str) -> EcsvHeader:
    """The ECSV header of a bulk file (reads only the first lines); raises
    :class:`~gaialake.io.dr3schema.EcsvError`, :class:`BulkFileError` or
    :class:`TransientFileError`."""
    try:
        with open_bulk(path) as stream:
            return read_ecsv_header(_Lines(stream), os.path.basename(path))
    except EcsvError:
        raise
    except READ_ERRORS as err:
        raise file_error(os.path.basename(path), err) from None


class _Lines:
    """readline() over a pyarrow stream (which buffers but has no readline)."""

    def __init__(self, stream) -> None:
        self.stream, self.buf = stream, b""

    def readline(self) -> bytes:
        """The next line, its newline included (``b""`` at the end)."""
        while b"\n" not in self.buf:
            more = self.stream.read(1 << 16)
            if not more:
                line, self.buf = self.buf, b""
                return line
            self.buf += more
        i = self.buf.index(b"\n") + 1
        line, self.buf = self.buf[:i], self.buf[i:]
        return line


def _blocks(lines: _Lines, chunk_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines from the stream after the header."""
    pending = lines.buf
    while True:
        more = lines.stream.read(chunk_bytes)
        if not more:
            if pending:
                yield pending if pending.endswith(b"\n") else pending + b"\n"
            return
        pending += more
        cut = pending.rfind(b"\n") + 1
        if cut:
            yield pending[:cut]
            pending = pending[cut:]


def _typed_options(header: EcsvHeader):
    # pyarrow's 1 MiB blocks: larger ones parse ~2x slower (cache misses; measured on 16 MiB
    # chunks of a DR3-format file, 64 MiB blocks 3.3 s vs 1 MiB 1.5 s per 1e5 rows)
    read = pacsv.ReadOptions(column_names=header.names, use_threads=False, block_size=1 << 20)
    parse = pacsv.ParseOptions(delimiter=header.delimiter, ignore_empty_lines=False)
    convert = pacsv.ConvertOptions(
        column_types={c.name: arrow_type(c.datatype) for c in header.columns},
        null_values=NULL_VALUES, true_values=TRUE_VALUES, false_values=FALSE_VALUES,
        strings_can_be_null=True, quoted_strings_can_be_null=False)
    return read, parse, convert


def parse_bulk_file(path: str, expected: Sequence[Column] | None = None,
                    chunk_bytes: int = 16 << 20) -> Iterator[pa.RecordBatch]:
    """Staged rows of one bulk file, block by block (see module docstring).

    ``expected``: the table's columns (None: the file's own). The file's values are cast to
    their types and the columns the file lacks are null; a file with a column outside
    ``expected``, another type than the table's, or without a required column is rejected
    (:class:`BulkFileError`) before any row is read, never silently mixed in.
    """
    name = os.path.basename(path)
    try:
        stream = open_bulk(path)
    except READ_ERRORS as err:
        raise file_error(name, err) from None
    try:
        lines = _Lines(stream)
        header = read_ecsv_header(lines, name)
    except EcsvError as err:
        stream.close()
        raise BulkFileError(str(err)) from None
    except READ_ERRORS as err:
        stream.close()
        raise file_error(name, err) from None
    target = tuple(header.columns if expected is None else expected)
    check = check_header(name, header.columns, target)
    if check.error is None and check.extra:
        check = type(check)(f"{name}: columns {[c.name for c in check.extra]} are not among the "
                            f"table's columns to stage")
    if check.error is not None:
        stream.close()
        raise BulkFileError(check.error)
    schema = staged_schema(target)
    options = _typed_options(header)
    first_line = header.header_lines + 1
    try:
        for block in _blocks(lines, chunk_bytes):
            n_lines = block.count(b"\n")
            yield from _parse_block(block, n_lines, first_line, name, header, target, schema,
                                    options)
            first_line += n_lines
    except READ_ERRORS as err:
        raise file_error(name, err, f"cannot read past line {first_line}") from None
    finally:
        stream.close()


def _parse_block(block: bytes, n_lines: int, first_line: int, name: str, header: EcsvHeader,
                 target: Sequence[Column], schema: pa.Schema, options) -> Iterator[pa.RecordBatch]:
    try:
        table = pacsv.read_csv(io.BytesIO(block), *options)
        if table.num_rows != n_lines:
            raise pa.ArrowInvalid("row count differs from line count")
        line_numbers = np.arange(first_line, first_line + n_lines, dtype=np.int64)
        bad: dict[int, str] = {}
    except pa.ArrowInvalid:
        table, line_numbers, bad = _parse_block_slowly(block, first_line, header)
    bad.update(value_failures(table, line_numbers))
    if bad:
        keep = ~np.isin(line_numbers, np.fromiter(bad, np.int64, len(bad)))
        table, line_numbers = table.filter(pa.array(keep)), line_numbers[keep]
    if table.num_rows:
        yield from stage_rows(conform(table, target), line_numbers, name, schema).to_batches()
    if bad:
        yield _quarantine(block, first_line, bad, name, schema)


def conform(table: pa.Table, target: Sequence[Column]) -> pa.Table:
    """The file's typed columns as the table's: cast to its types, its order, nulls where the
    file lacks a column."""
    n, present = table.num_rows, set(table.column_names)   # column_names builds a list per call
    arrays = [table.column(c.name).cast(arrow_type(c.datatype)) if c.name in present
              else pa.nulls(n, arrow_type(c.datatype)) for c in target]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(target))


def value_failures(table: pa.Table, line_numbers: np.ndarray) -> dict[int, str]:
    """Rows (by line number) that parse but fail a value check, with the reason (the first
    check a row fails: source_id, then non-finite values, then the ra/dec ranges)."""
    out: dict[int, str] = {}
    sid = table.column("source_id").is_null().to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(sid):
        out[int(line_numbers[i])] = "missing source_id"
    names = set(table.column_names)
    for col in FINITE_COLUMNS:
        if col not in names or not pa.types.is_floating(table.column(col).type):
            continue
        values = table.column(col)
        v = values.to_numpy(zero_copy_only=False).astype(np.float64)
        present = ~values.is_null().to_numpy(zero_copy_only=False)  # NaN is a value, not null
        for i in np.flatnonzero(present & ~np.isfinite(v)):
            out.setdefault(int(line_numbers[i]), f"column {col}: {v[i]!r} is not finite")
    ra = table.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
    dec = table.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad_ra = ~((ra >= 0) & (ra < 360))
        bad_dec = ~((dec >= -90) & (dec <= 90))
    for i in np.flatnonzero(bad_ra):
        out.setdefault(int(line_numbers[i]), f"column ra: {ra[i]!r} outside [0, 360) deg")
    for i in np.flatnonzero(bad_dec):
        out.setdefault(int(line_numbers[i]), f"column dec: {dec[i]!r} outside [-90, 90] deg")
    return out


def _parse_block_slowly(block: bytes, first_line: int, header: EcsvHeader):
    """Find the bad rows of a block one by one; returns (good rows typed, their lines, bad)."""
    text_lines = block.decode("utf-8", errors="replace").split("\n")[:-1]
    ncol = len(header.columns)
    bad: dict[int, str] = {}
    good_rows: list[list[str]] = []
    good_lines: list[int] = []
    for i, text in enumerate(text_lines):
        line = first_line + i
        try:  # line by line: one malformed line never shifts the others' numbers
            fields = next(csv.reader([text], delimiter=header.delimiter), [])
        except csv.Error as err:
            bad[line] = f"malformed line ({len(text)} characters): {err}"
            continue
        if len(fields) != ncol:
            bad[line] = f"wrong number of fields: {len(fields)}, expected {ncol}"
        else:
            good_rows.append(fields)
            good_lines.append(line)
    lines = np.asarray(good_lines, dtype=np.int64)
    arrays, ok = [], np.ones(len(good_rows), dtype=bool)
    for j, col in enumerate(header.columns):
        raw = [r[j] for r in good_rows]
        arr, failed = _convert(raw, col)
        for k in np.flatnonzero(failed & ok):
            bad[int(lines[k])] = f"column {col.name}: {raw[k]!r} is not a valid {col.datatype}"
        ok &= ~failed
        arrays.append(arr)
    table = pa.Table.from_arrays(arrays, schema=arrow_schema(header.columns))
    return table.filter(pa.array(ok)), lines[ok], bad


def _convert(raw: list[str], col: Column) -> tuple[pa.Array, np.ndarray]:
    """Convert strings to the column's type: (array with failures null, failure mask)."""
    is_null = np.isin(np.asarray(raw, dtype=object), NULL_VALUES)
    target = arrow_type(col.datatype)
    if col.datatype == "string":
        return pa.array([None if n else v for v, n in zip(raw, is_null)], pa.string()), \
            np.zeros(len(raw), bool)
    if col.datatype == "bool":
        true = np.isin(np.asarray(raw, dtype=object), TRUE_VALUES)
        false = np.isin(np.asarray(raw, dtype=object), FALSE_VALUES)
        failed = ~(true | false | is_null)
        return pa.array(np.where(is_null | failed, None, true).tolist(), pa.bool_()), failed
    import pandas as pd

    values = pd.to_numeric(pd.Series(raw, dtype=object).where(~is_null, None), errors="coerce")
    failed = values.isna().to_numpy() & ~is_null
    if pa.types.is_integer(target):
        v = values.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            frac = np.isfinite(v) & (v != np.round(v))
        failed |= frac
        info = np.iinfo(target.to_pandas_dtype())
        failed |= np.isfinite(v) & ((v < info.min) | (v > info.max))
        # exact int64 values: parse the text, floats lose digits past 2**53
        ints = [int(s) if not (n or f) else None for s, n, f in zip(raw, is_null, failed)]
        return pa.array(ints, target), failed
    v = values.to_numpy(dtype=np.float64, na_value=np.nan)
    mask = is_null | failed
    return pa.array(np.where(mask, 0.0, v), pa.float64(), mask=mask).cast(target), failed


def stage_rows(table: pa.Table, line_numbers: np.ndarray, name: str,
               schema: pa.Schema) -> pa.Table:
    """Valid rows as staged rows: ``table`` (in the table's columns) with ``hpx29`` computed from
    ra/dec (deg), ``source_file`` = ``name``, their ``line_numbers``, null ``reason``/``raw_line``.
    The parsed columns keep their chunks (no copy); ``to_batches()`` slices them."""
    n = table.num_rows
    hpx29 = radec_to_hpx29(table.column("ra").to_numpy(zero_copy_only=False),
                           table.column("dec").to_numpy(zero_copy_only=False))
    extra = [pa.array(hpx29, pa.int64()), pa.array([name] * n, pa.string()),
             pa.array(line_numbers, pa.int64()), pa.nulls(n, pa.string()), pa.nulls(n, pa.string())]
    return pa.Table.from_arrays(list(table.columns) + extra, schema=schema)


def _quarantine(block: bytes, first_line: int, bad: dict[int, str], name: str,
                schema: pa.Schema) -> pa.RecordBatch:
    lines = block.split(b"\n")
    raw = [lines[ln - first_line].decode("utf-8", errors="replace") for ln in sorted(bad)]
    return quarantine_batch(bad, raw, name, schema)


def quarantine_batch(bad: dict[int, str], raw: Sequence[str], name: str,
                     schema: pa.Schema) -> pa.RecordBatch:
    """Staged rows of quarantined lines: ``bad`` (line number -> reason) in line order, their
    ``raw`` text in that order (cut to :data:`MAX_RAW_LINE`), data columns null."""
    order = sorted(bad)
    raw = [cut_raw_line(text) for text in raw]
    n = len(order)
    data = {f.name: pa.nulls(n, f.type) for f in schema}
    data["source_file"] = pa.array([name] * n, pa.string())
    data["line_number"] = pa.array(order, pa.int64())
    data["reason"] = pa.array([bad[ln] for ln in order], pa.string())
    data["raw_line"] = pa.array(raw, pa.string())
    return pa.RecordBatch.from_arrays([data[f.name] for f in schema], schema=schema)


def cut_raw_line(text: str) -> str:
    """A quarantined line as kept in ``raw_line``: at most :data:`MAX_RAW_LINE` characters."""
    if len(text) <= MAX_RAW_LINE:
        return text
    return f"{text[:MAX_RAW_LINE]}... [cut: {len(text)} characters]"


def format_columns(table: pa.Table, columns: Sequence[Column]) -> pa.Array:
    """Each row of ``table`` as one ESA-formatted CSV line (no newline): nulls as ``null``,
    booleans ``True``/``False``, strings double-quoted."""
    parts = []
    for c in columns:
        arr = table.column(c.name)
        if c.datatype == "bool":
            s = pc.if_else(arr, "True", "False")
        elif c.datatype == "string":
            s = pc.binary_join_element_wise('"', pc.cast(arr, pa.string()), '"', "")
        else:
            s = pc.cast(arr, pa.string())
        parts.append(pc.fill_null(s, "null"))
    return pc.binary_join_element_wise(*parts, ",")


def _write_gzip(raw, table: pa.Table, columns: Sequence[Column], compresslevel: int) -> None:
    import gzip

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


def write_bulk_file(path: str, table: pa.Table, columns: Sequence[Column],
                    compresslevel: int = 1) -> int:
    """Write ``table`` as an ESA DR3 bulk file (gzip, ECSV header, ``null``s); returns bytes.

    Byte-deterministic: the gzip header carries mtime 0 and no file name, so the bytes depend
    only on the rows. Local paths are written to a temporary name and renamed (a killed writer
    leaves no partial file); cluster URIs go through fsspec. gzip level 1 by default: 4x faster
    than level 6 for 12 % larger files (DR3 text is mostly ``null``s).
    """
    if "://" in path and not path.startswith("file://"):
        import fsspec

        with fsspec.open(path.replace("s3a://", "s3://", 1), "wb") as raw:
            _write_gzip(raw, table, columns, compresslevel)
        return -1
    local = path[len("file://"):] if path.startswith("file://") else path
    os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    tmp = f"{local}.{os.getpid()}.tmp"
    with open(tmp, "wb") as raw:
        _write_gzip(raw, table, columns, compresslevel)
    os.replace(tmp, local)
    return os.path.getsize(local)


def read_lines(path: str, line_numbers: Sequence[int]) -> dict[int, str]:
    """The raw text of the given 1-based lines of a bulk file (one pass, stops after the last)."""
    wanted = set(int(n) for n in line_numbers)
    last = max(wanted) if wanted else 0
    out: dict[int, str] = {}
    with open_bulk(path) as stream:
        lines = _Lines(stream)
        for n in range(1, last + 1):
            raw = lines.readline()
            if not raw:
                break
            if n in wanted:
                out[n] = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    return out

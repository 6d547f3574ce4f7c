"""Read Gaia catalog files in Parquet (archive exports, or the leaf files of a HATS catalog) as
staged rows, with pyarrow; no Spark here, and no CSV parsing.

The Parquet counterpart of :mod:`gaialake.io.bulkfile`: :func:`parquet_columns` is a file's
"header" (its columns with DR3 datatypes and units, from the Parquet schema), and
:func:`parse_parquet_file` yields the same staged rows as :func:`~gaialake.io.bulkfile.
parse_bulk_file` (the table's columns, ``hpx29``, ``source_file``, ``line_number``, ``reason``,
``raw_line``) through the same checks (:func:`~gaialake.io.bulkfile.value_failures`). A row's
``line_number`` is its 1-based position in the file; a quarantined row's ``raw_line`` is its
values as JSON.

HATS bookkeeping columns are not catalog columns: ``Norder``, ``Dir``, ``Npix`` are dropped, and
``_healpix_29`` (HATS' spatial index; ``_hipscat_index`` in older catalogs) is compared with the
``hpx29`` ingest computes from ra/dec at order :data:`INDEX_CHECK_ORDER`: a row where they
differ is quarantined (its position and its index disagree), then the column is dropped.
"""
from __future__ import annotations

import json
import os
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from gaialake.io.bulkfile import (BulkFileError, conform, cut_raw_line, file_error,
                                  quarantine_batch, stage_rows, staged_schema, value_failures)
from gaialake.io.dr3schema import DR3_COLUMNS, Column, check_header

__all__ = ["HATS_INDEX", "HATS_PARTITION_COLUMNS", "is_parquet", "parquet_columns",
           "parse_parquet_file", "read_rows"]

#: HATS' spatial index column: the nested HEALPix order-29 pixel of each row (int64).
HATS_INDEX = ("_healpix_29", "_hipscat_index")
#: Hive partition columns HATS may store in its leaf files.
HATS_PARTITION_COLUMNS = ("Norder", "Dir", "Npix")

_DATATYPES = {pa.int64(): "int64", pa.int32(): "int32", pa.int16(): "int16", pa.int8(): "int8",
              pa.uint8(): "uint8", pa.float64(): "float64", pa.float32(): "float32",
              pa.bool_(): "bool", pa.string(): "string", pa.large_string(): "string"}
_UNITS = {c.name: c.unit for c in DR3_COLUMNS}


def is_parquet(path: str) -> bool:
    """Whether ``path`` names a Parquet file (by its suffix)."""
    return path.endswith(".parquet")


def _open(path: str) -> pq.ParquetFile:
    name = os.path.basename(path)
    try:
        if "://" in path and not path.startswith("file://"):
            import fsspec

            return pq.ParquetFile(fsspec.open(path.replace("s3a://", "s3://", 1), "rb").open())
        if path.startswith("dbfs:/"):
            path = "/dbfs/" + path[len("dbfs:/"):].lstrip("/")
        return pq.ParquetFile(path[len("file://"):] if path.startswith("file://") else path)
    except (OSError, pa.ArrowInvalid) as err:
        raise file_error(name, err) from None


def _datatype(name: str, source: str, typ: pa.DataType) -> str:
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if typ not in _DATATYPES:
        raise BulkFileError(f"{source}: column {name}: Parquet type {typ} has no catalog type "
                            f"(expected one of {sorted(set(_DATATYPES.values()))})")
    return _DATATYPES[typ]


def parquet_columns(path: str) -> list[Column]:
    """A Parquet file's catalog columns (its "header"): name, datatype from the Parquet schema,
    unit from the DR3 schema where the column is a DR3 column; HATS bookkeeping columns left
    out. Raises :class:`BulkFileError` (unreadable, a type with no catalog type) or
    :class:`TransientFileError` (I/O)."""
    source = os.path.basename(path)
    schema = _open(path).schema_arrow
    skip = set(HATS_INDEX) | set(HATS_PARTITION_COLUMNS)
    return [Column(f.name, _datatype(f.name, source, f.type), _UNITS.get(f.name))
            for f in schema if f.name not in skip]


#: HEALPix order at which HATS' index must agree with the pixel of (ra, dec): 20 (0.2 arcsec
#: pixels), so that another library's rounding at order 29 (0.4 mas pixels) is no disagreement.
INDEX_CHECK_ORDER = 20


def _index_failures(rows: pa.Table, index: str, hpx29: np.ndarray,
                    line_numbers: np.ndarray) -> dict[int, str]:
    given = rows.column(index).to_numpy(zero_copy_only=False)
    shift = 2 * (29 - INDEX_CHECK_ORDER)
    out = {}
    for i in np.flatnonzero((given >> shift) != (hpx29 >> shift)):
        out[int(line_numbers[i])] = (f"column {index}: {given[i]} differs from the order-29 "
                                     f"pixel of (ra, dec), {hpx29[i]}")
    return out


def _quarantine(rows: pa.Table, line_numbers: np.ndarray, bad: dict[int, str], name: str,
                schema: pa.Schema) -> pa.RecordBatch:
    where = np.searchsorted(line_numbers, sorted(bad))
    raw = [json.dumps(r, default=str) for r in rows.take(pa.array(where)).to_pylist()]
    return quarantine_batch(bad, raw, name, schema)


def parse_parquet_file(path: str, expected: Sequence[Column] | None = None,
                       batch_rows: int = 1 << 17, name: str | None = None
                       ) -> Iterator[pa.RecordBatch]:
    """Staged rows of one Parquet file, ``batch_rows`` rows at a time (see module docstring).

    ``expected``: the table's columns (None: the file's own); ``name``: the ``source_file``
    key (default: the file's base name). A file with a column outside ``expected``, another
    type than the table's, or without a required column raises :class:`BulkFileError` before
    any row is read.
    """
    name = name or os.path.basename(path)
    file = _open(path)
    columns = parquet_columns(path)
    target = tuple(columns if expected is None else expected)
    check = check_header(name, columns, target)
    if check.error is None and check.extra:
        check = type(check)(f"{name}: columns {[c.name for c in check.extra]} are not among the "
                            f"table's columns to stage")
    if check.error is not None:
        raise BulkFileError(check.error)
    index = next((c for c in HATS_INDEX if c in file.schema_arrow.names), None)
    read = [c.name for c in columns] + ([index] if index else [])
    schema = staged_schema(target)
    first = 1
    try:
        for batch in file.iter_batches(batch_size=batch_rows, columns=read, use_threads=False):
            rows = pa.Table.from_batches([batch])
            line_numbers = np.arange(first, first + rows.num_rows, dtype=np.int64)
            first += rows.num_rows
            bad = value_failures(rows, line_numbers)
            good = ~np.isin(line_numbers, np.fromiter(bad, np.int64, len(bad)))
            kept = rows.filter(pa.array(good)) if bad else rows   # no copy when all are valid
            staged = stage_rows(conform(kept, target), line_numbers[good], name, schema)
            if index:
                hpx29 = staged.column("hpx29").to_numpy()
                mismatch = _index_failures(kept, index, hpx29, line_numbers[good])
                if mismatch:
                    bad.update(mismatch)
                    keep = ~np.isin(line_numbers[good], np.fromiter(mismatch, np.int64))
                    staged = staged.filter(pa.array(keep))
            if staged.num_rows:
                yield from staged.to_batches()
            if bad:
                yield _quarantine(rows, line_numbers, bad, name, schema)
    except (OSError, pa.ArrowInvalid) as err:
        raise file_error(name, err, f"cannot read past row {first}") from None


def read_rows(path: str, line_numbers: Sequence[int]) -> dict[int, str]:
    """The given 1-based rows of a Parquet file as JSON text (a quarantined duplicate's
    ``raw_line``)."""
    wanted = np.asarray(sorted(set(int(n) for n in line_numbers)), dtype=np.int64) - 1
    if not len(wanted):
        return {}
    file = _open(path)
    sizes = [file.metadata.row_group(i).num_rows for i in range(file.num_row_groups)]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    out: dict[int, str] = {}
    for group in np.unique(np.searchsorted(starts, wanted, side="right") - 1):
        rows = wanted[(wanted >= starts[group]) & (wanted < starts[group + 1])]
        table = file.read_row_group(int(group), use_threads=False)
        picked = table.take(pa.array(rows - starts[group])).to_pylist()
        out.update({int(n) + 1: cut_raw_line(json.dumps(r, default=str))
                    for n, r in zip(rows, picked)})
    return out


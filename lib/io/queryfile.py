"""A query's rows as one file (``gaialake export query``): FITS, VOTable, ECSV or Parquet,
written by astropy with the DR3 units and descriptions of the columns that have them.

Nulls stay nulls (masked columns), within what each format can say: FITS and VOTable have no
8-bit integer, so int8 columns are written as int16; FITS has no null logical, so a boolean
column with nulls is written as int16 (1, 0, null); neither has a null string apart from the
empty one (a null string reads back as ``""`` from VOTable, masked from FITS, where an empty
string reads back masked too). Timestamps and dates are written as strings, decimals as float64;
nested columns (arrays, structs, maps) are refused.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import pyarrow as pa
from fsspec.implementations.local import LocalFileSystem

from gaialake.io.dr3schema import DR3_COLUMNS
from gaialake.io.hatsfiles import fs_and_path

__all__ = ["FORMATS", "COLUMN_DESCRIPTIONS", "TooManyRowsError", "collect_rows", "astropy_table",
           "write_query_file"]

#: ``--format`` -> astropy's format name.
FORMATS = {"fits": "fits", "votable": "votable", "ecsv": "ascii.ecsv", "parquet": "parquet"}
#: Descriptions of the columns gaialake adds to gaia_source (DR3 columns take the schema's).
COLUMN_DESCRIPTIONS = {
    "hpx29": "HEALPix pixel of (ra, dec) at order 29, nested (HATS' _healpix_29)",
    "hpx": "HEALPix pixel of (ra, dec) at catalog.partition_order, nested: the partition",
    "source_file": "the DR3 bulk file the row was ingested from",
    "run_id": "the MLflow run that wrote the row",
}
_DR3 = {c.name: c for c in DR3_COLUMNS}


class TooManyRowsError(ValueError):
    """A query returns more rows than ``export.max_rows``."""


def collect_rows(df, max_rows: int) -> pa.Table:
    """The rows of Spark DataFrame ``df`` as an Arrow table; more than ``max_rows`` raises
    :class:`TooManyRowsError` (at most ``max_rows + 1`` rows reach the driver)."""
    rows = df.limit(max_rows + 1).toArrow()
    if rows.num_rows > max_rows:
        raise TooManyRowsError(
            f"refused: the query returns more than export.max_rows = {max_rows} rows (they are "
            f"collected on the driver). Add a LIMIT or narrow the query, raise the limit (--set "
            f"export.max_rows=N), or write a whole table as a HATS catalog with `gaialake "
            f"export hats --table <table> --out DIR`")
    return rows


def _unit(name: str):
    """The astropy unit of DR3 column ``name`` (None: none, or not a DR3 column); a unit string
    astropy does not know stays as written."""
    import astropy.units as u

    column = _DR3.get(name)
    return u.Unit(column.unit, parse_strict="silent") if column and column.unit else None


def _masked_values(name: str, column: pa.ChunkedArray, fmt: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, null mask) of Arrow column ``name`` as astropy stores them for ``fmt``."""
    array = column.combine_chunks()
    kind = array.type
    if pa.types.is_nested(kind):
        raise ValueError(f"column {name} is {kind}: only flat columns can be written; select "
                         f"its elements (e.g. {name}[0]) or leave it out")
    mask = array.is_null().to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        array, kind = array.cast(pa.string()), pa.string()
    if pa.types.is_decimal(kind):          # Spark's exact sums and averages
        array, kind = array.cast(pa.float64()), pa.float64()
    if fmt in ("fits", "votable") and pa.types.is_int8(kind):
        array, kind = array.cast(pa.int16()), pa.int16()
    if fmt == "fits" and pa.types.is_boolean(kind) and mask.any():
        array, kind = array.cast(pa.int16()), pa.int16()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return np.array(array.fill_null("").to_pylist(), dtype=str), mask
    fill = False if pa.types.is_boolean(kind) else 0
    return array.fill_null(fill).to_numpy(zero_copy_only=False), mask


def astropy_table(rows: pa.Table, fmt: str):
    """``rows`` as an astropy Table of masked columns for format ``fmt`` (a :data:`FORMATS`
    key), with the units and descriptions of :data:`DR3_COLUMNS` and
    :data:`COLUMN_DESCRIPTIONS` for the columns named like them."""
    from astropy.table import MaskedColumn, Table

    out = Table()
    for name in rows.column_names:
        values, mask = _masked_values(name, rows.column(name), fmt)
        dr3 = _DR3.get(name)
        out[name] = MaskedColumn(values, mask=mask, name=name, unit=_unit(name),
                                 description=(dr3.description if dr3 else None)
                                 or COLUMN_DESCRIPTIONS.get(name))
    return out


def write_query_file(rows: pa.Table, out: str, fmt: str, overwrite: bool = False) -> None:
    """Write ``rows`` to file ``out`` (a path or an fsspec URL) in format ``fmt`` (a
    :data:`FORMATS` key); an existing ``out`` raises ``FileExistsError`` unless
    ``overwrite``."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    fs, path = fs_and_path(out)
    if fs.exists(path) and not overwrite:
        raise FileExistsError(f"{out} exists: choose another --out, or pass --overwrite")
    table = astropy_table(rows, fmt)
    fs.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if isinstance(fs, LocalFileSystem):
        table.write(path, format=FORMATS[fmt], overwrite=True)
        return
    with tempfile.TemporaryDirectory() as tmp:   # astropy writes local files: then copy it there
        local = os.path.join(tmp, os.path.basename(path))
        table.write(local, format=FORMATS[fmt])
        fs.put_file(local, path)

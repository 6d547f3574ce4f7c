"""The HATS catalog on disk (hats 0.11, the format lsdb reads), written with pyarrow: no Spark.

A catalog directory holds::

    hats.properties, properties      catalog properties (java properties; the same text twice)
    partition_info.csv               Norder,Npix of every data file, breadth-first order
    point_map.fits, skymap.fits      rows per HEALPix pixel at hats_skymap_order (lsdb's MOC)
    dataset/_common_metadata         the Parquet schema
    dataset/_metadata                every data file's row groups, paths relative to dataset/
    dataset/Norder=K/Dir=D/Npix=N.parquet   one file per pixel (D = N // 10000 * 10000)

Each data file holds the rows of HEALPix pixel N at order K (nested), sorted by ``_healpix_29``
(the order-29 nested pixel, int64, the first column). :func:`plan_pixels` chooses the pixels
from row counts, :func:`write_pixel_files` writes one task's rows, :func:`write_catalog_files`
the rest. Paths may be any fsspec URL (local paths, s3://, ...).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from typing import Iterable, Mapping, Sequence

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["SPATIAL_INDEX_COLUMN", "SPATIAL_INDEX_ORDER", "DATASET_DIR", "PROPERTIES_FILES",
           "PARTITION_INFO_FILE", "METADATA_FILE", "COMMON_METADATA_FILE", "MAP_FILES",
           "ROW_GROUP_ROWS", "HatsPixel", "pixel_file", "plan_pixels", "write_pixel_files",
           "write_catalog_files", "check_output_dir", "fs_and_path"]

SPATIAL_INDEX_COLUMN = "_healpix_29"
SPATIAL_INDEX_ORDER = 29
DATASET_DIR = "dataset"
#: hats writes the properties as ``hats.properties`` and, for HiPS readers, ``properties``.
PROPERTIES_FILES = ("hats.properties", "properties")
PARTITION_INFO_FILE = "partition_info.csv"
METADATA_FILE = "_metadata"
COMMON_METADATA_FILE = "_common_metadata"
#: The row-count maps (hats reads point_map.fits as the catalog's MOC).
MAP_FILES = ("point_map.fits", "skymap.fits")
#: Rows per Parquet row group (hats' default).
ROW_GROUP_ROWS = 100_000
#: The HATS format version and its release date, as hats 0.11 writes them.
HATS_VERSION, HATS_RELEASE_DATE = "v1.0", "2025-08-22"


@dataclass(frozen=True)
class HatsPixel:
    """One data file: HEALPix ``pixel`` at ``order`` (nested) and the ``rows`` it holds."""

    order: int
    pixel: int
    rows: int

    @property
    def hpx29_range(self) -> tuple[int, int]:
        """The ``_healpix_29`` values of the pixel: [lo, hi)."""
        shift = 2 * (SPATIAL_INDEX_ORDER - self.order)
        return self.pixel << shift, (self.pixel + 1) << shift


def pixel_file(order: int, pixel: int) -> str:
    """The data file of a pixel, relative to the catalog directory."""
    return f"{DATASET_DIR}/Norder={order}/Dir={pixel // 10_000 * 10_000}/Npix={pixel}.parquet"


def fs_and_path(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec file system of ``url`` (a local path or a URL) and the path within it."""
    return fsspec.core.url_to_fs(url)


def plan_pixels(map_pixels: np.ndarray, map_counts: np.ndarray, map_order: int,
                start_order: int, max_rows: int) -> list[HatsPixel]:
    """The catalog's pixels from the rows per pixel at ``map_order`` (nested; zero-count pixels
    may be left out): the non-empty pixels at ``start_order``, each with more than ``max_rows``
    rows split into its non-empty children until it holds at most ``max_rows`` or reaches
    ``map_order``. Breadth-first order (by the first ``_healpix_29`` of each pixel)."""
    if not 0 <= start_order <= map_order <= SPATIAL_INDEX_ORDER:
        raise ValueError(f"need 0 <= start_order ({start_order}) <= map_order ({map_order}) "
                         f"<= {SPATIAL_INDEX_ORDER}")
    pixels = np.asarray(map_pixels, np.int64)
    counts = np.asarray(map_counts, np.int64)
    out: list[HatsPixel] = []
    order = start_order
    while pixels.size:
        parents, inverse = np.unique(pixels >> 2 * (map_order - order), return_inverse=True)
        sums = np.zeros(parents.size, np.int64)
        np.add.at(sums, inverse, counts)
        done = (sums <= max_rows) | (order == map_order)
        out += [HatsPixel(order, int(p), int(n))
                for p, n in zip(parents[done], sums[done]) if n > 0]
        pixels, counts = pixels[~done[inverse]], counts[~done[inverse]]
        order += 1
    return sorted(out, key=lambda p: p.hpx29_range[0])


class _PixelSink:
    """Rows of one pixel buffered into row groups of :data:`ROW_GROUP_ROWS` and written to its
    file."""

    def __init__(self, fs, root: str, pixel: HatsPixel, schema: pa.Schema):
        self.pixel, self.schema, self.rows = pixel, schema, 0
        self.path = f"{root}/{pixel_file(pixel.order, pixel.pixel)}"
        fs.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.file = fs.open(self.path, "wb")
        self.writer = pq.ParquetWriter(self.file, schema, compression="zstd",
                                       write_statistics=True)
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            table = pa.Table.from_batches(self.pending, self.schema)
            self.writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self.rows += table.num_rows
            self.pending, self.pending_rows = [], 0

    def close(self) -> dict:
        self._flush()
        self.writer.close()
        self.file.close()
        return {"order": self.pixel.order, "pixel": self.pixel.pixel, "rows": self.rows}


def write_pixel_files(batches: Iterable[pa.RecordBatch], pixels: Sequence[HatsPixel],
                      out: str) -> list[dict]:
    """Write rows into the data files of catalog ``out`` (a path or URL); returns the
    ``order, pixel, rows`` of each file written.

    ``batches`` carry :data:`SPATIAL_INDEX_COLUMN` and come sorted by it (within and across
    batches), so each pixel's rows are contiguous; ``pixels`` (breadth-first, as
    :func:`plan_pixels` returns them) must hold every row. A row outside them, or a pixel whose
    rows come back after another's, raises ``ValueError`` (the input changed since the plan, or
    is not sorted).
    """
    fs, root = fs_and_path(out)
    starts = np.array([p.hpx29_range[0] for p in pixels], np.int64)
    ends = np.array([p.hpx29_range[1] for p in pixels], np.int64)
    written: list[dict] = []
    done: set[int] = set()
    sink: _PixelSink | None = None
    current = -1
    try:
        for batch in batches:
            if batch.num_rows == 0:
                continue
            index = batch.column(SPATIAL_INDEX_COLUMN).to_numpy()
            which = np.searchsorted(starts, index, side="right") - 1
            outside = (which < 0) | (index >= ends[np.maximum(which, 0)])
            if outside.any():
                raise ValueError(f"{int(outside.sum())} rows lie in no pixel of the plan (first "
                                 f"{SPATIAL_INDEX_COLUMN}={int(index[outside][0])}): the table "
                                 f"changed since the rows were counted")
            cuts = np.flatnonzero(np.diff(which)) + 1
            for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, batch.num_rows]):
                target = int(which[lo])
                if target != current:
                    if target in done:
                        raise ValueError(f"rows of pixel {pixels[target]} are not contiguous: "
                                         f"the rows are not sorted by {SPATIAL_INDEX_COLUMN}")
                    if sink is not None:
                        written.append(sink.close())
                    done.add(target)
                    sink, current = _PixelSink(fs, root, pixels[target], batch.schema), target
                sink.add(batch.slice(lo, hi - lo))
        if sink is not None:
            written.append(sink.close())
            sink = None
    finally:
        if sink is not None:  # an error: close the open file, the catalog is not finished
            sink.writer.close()
            sink.file.close()
    return written


def check_output_dir(out: str, overwrite: bool) -> None:
    """Make ``out`` ready for a new catalog: absent or empty is fine; a HATS catalog (it has
    ``hats.properties``) is deleted with ``overwrite``; anything else is refused
    (``FileExistsError`` naming it), with or without ``overwrite``."""
    fs, root = fs_and_path(out)
    if not fs.exists(root) or not fs.ls(root):
        return
    if not overwrite:
        raise FileExistsError(f"{out} is not empty: choose a new directory, or pass --overwrite "
                              f"to replace the HATS catalog there")
    if not fs.exists(f"{root}/{PROPERTIES_FILES[0]}"):
        raise FileExistsError(f"{out} is not empty and holds no HATS catalog "
                              f"({PROPERTIES_FILES[0]}): not deleted, even with --overwrite")
    fs.rm(root, recursive=True)


def _properties_text(properties: Mapping[str, object]) -> str:
    """Java properties text (hats reads it with jproperties): ``key=value`` lines."""
    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("\n", " ")
    return "#HATS catalog\n" + "".join(f"{k}={escape(str(v))}\n" for k, v in properties.items())


def _write_map_fits(fs, path: str, order: int, pixels: np.ndarray, counts: np.ndarray) -> None:
    """Rows per pixel at ``order`` as a HEALPix explicit-index FITS table (PIXEL, VALUE), the
    skymap layout hats reads (cdshealpix's)."""
    from astropy.io import fits

    table = fits.BinTableHDU.from_columns(
        [fits.Column("PIXEL", "K", array=np.asarray(pixels, np.int64)),
         fits.Column("VALUE", "K", array=np.asarray(counts, np.int64))], name="xtension")
    for key, value in (("PIXTYPE", "HEALPIX"), ("INDXSCHM", "EXPLICIT"), ("ORDERING", "NESTED"),
                       ("COORDSYS", "C"), ("NSIDE", 1 << order), ("OBS_NPIX", len(pixels))):
        table.header[key] = value
    with fs.open(path, "wb") as handle:
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(handle)


def write_catalog_files(out: str, name: str, files: Sequence[dict], map_order: int,
                        map_pixels: np.ndarray, map_counts: np.ndarray, max_rows: int,
                        ra_column: str = "ra", dec_column: str = "dec",
                        extra: Mapping[str, object] | None = None) -> dict:
    """Finish catalog ``out`` whose data ``files`` (``order, pixel, rows`` records of
    :func:`write_pixel_files`, one schema) are written: ``_metadata`` (their footers),
    ``_common_metadata`` (their schema), ``partition_info.csv``, the row-count maps
    (``map_pixels``, ``map_counts`` at ``map_order``) and the properties (``name`` as
    obs_collection, ``max_rows`` as hats_max_rows, ``extra`` appended). Returns the
    properties."""
    fs, root = fs_and_path(out)
    pixels = sorted((HatsPixel(int(f["order"]), int(f["pixel"]), int(f["rows"])) for f in files),
                    key=lambda p: p.hpx29_range[0])
    footers, data_bytes = [], 0
    for p in pixels:
        path = f"{root}/{pixel_file(p.order, p.pixel)}"
        with fs.open(path, "rb") as handle:
            footer = pq.read_metadata(handle)
        footer.set_file_path(pixel_file(p.order, p.pixel)[len(DATASET_DIR) + 1:])
        footers.append(footer)
        data_bytes += fs.size(path)
    if not footers:
        raise ValueError(f"{out}: a catalog needs at least one data file")
    schema = footers[0].schema.to_arrow_schema()
    combined = footers[0]
    for footer in footers[1:]:
        combined.append_row_groups(footer)
    with fs.open(f"{root}/{DATASET_DIR}/{METADATA_FILE}", "wb") as handle:
        combined.write_metadata_file(handle)
    with fs.open(f"{root}/{DATASET_DIR}/{COMMON_METADATA_FILE}", "wb") as handle:
        pq.write_metadata(schema, handle)
    with fs.open(f"{root}/{PARTITION_INFO_FILE}", "w") as handle:
        handle.write("Norder,Npix\n" + "".join(f"{p.order},{p.pixel}\n" for p in pixels))
    for map_file in MAP_FILES:
        _write_map_fits(fs, f"{root}/{map_file}", map_order, map_pixels, map_counts)
    properties = {
        "obs_collection": name, "dataproduct_type": "object",
        "hats_nrows": sum(p.rows for p in pixels), "hats_col_ra": ra_column,
        "hats_col_dec": dec_column, "hats_col_healpix": SPATIAL_INDEX_COLUMN,
        "hats_col_healpix_order": SPATIAL_INDEX_ORDER, "hats_npix_suffix": ".parquet",
        "hats_skymap_order": map_order, "hats_max_rows": max_rows,
        "hats_estsize": math.ceil(data_bytes / 1024),
        "moc_sky_fraction": f"{sum(4.0 ** -p.order for p in pixels) / 12:0.5f}",
        "hats_builder": f"gaialake v{version('gaialake')}",
        "hats_creation_date": datetime.now(tz=timezone.utc).strftime("%Y-%m-%dT%H:%M%Z"),
        "hats_release_date": HATS_RELEASE_DATE, "hats_version": HATS_VERSION,
        "hats_order": max(p.order for p in pixels), **(extra or {})}
    for properties_file in PROPERTIES_FILES:
        with fs.open(f"{root}/{properties_file}", "w") as handle:
            handle.write(_properties_text(properties))
    return properties

"""A warehouse table as a HATS catalog (``gaialake export hats``): the Spark adapter of
:mod:`gaialake.io.hatsfiles`.

``gaia_source`` costs about a copy: its files are already partitioned by ``hpx`` and sorted by
``hpx29`` (= ``_healpix_29``), so a Spark task reads each ``hpx`` partition's files with pyarrow
and writes its pixels' files (partitions are dealt to at most :data:`~gaialake.io.spark.TASKS_PER_CORE` tasks per
core, balanced by rows: a task costs about a second to start in local mode); only the
``hpx29`` column is read beforehand (the row counts that choose the pixels). Another table with
a ``source_id`` is joined to gaia_source's positions (``ra``, ``dec`` where it lacks them, and
``hpx29``), shuffled by partition pixel and sorted by ``hpx29`` within each task. The driver
writes the metadata files.
Columns: gaialake's bookkeeping (:data:`DROPPED`) goes, ``hpx29`` becomes ``_healpix_29`` (the
first column), ``run_id`` stays (the MLflow run that wrote the rows).
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.delta import data_files, read_table
from gaialake.io.spark import TASKS_PER_CORE, deal
from gaialake.io.hatsfiles import (SPATIAL_INDEX_COLUMN, SPATIAL_INDEX_ORDER, HatsPixel,
                                   check_output_dir, fs_and_path, plan_pixels, write_catalog_files,
                                   write_pixel_files)
from gaialake.log import get_logger

__all__ = ["DROPPED", "export_hats", "exportable_tables"]

log = get_logger("export")

#: gaia_source's bookkeeping columns a catalog user has no use for: the partition pixel (a
#: function of ``_healpix_29``) and the bulk file a row came from.
DROPPED = ("hpx", "source_file")
#: What each task returns: the files it wrote.
_WRITTEN_DDL = "order int, pixel long, rows long"
_WRITTEN = pa.schema([("order", pa.int32()), ("pixel", pa.int64()), ("rows", pa.int64())])


def exportable_tables() -> list[str]:
    """gaia_source and the tables with a ``source_id`` to join to its positions."""
    return [tables.GAIA_SOURCE.name] + [t.name for t in tables.TABLES.values()
                                        if "source_id" in t.columns]


def _renamed(columns: list[str]) -> list[tuple[str, str]]:
    """(column, name in the catalog) of the exported columns, ``_healpix_29`` first."""
    return [("hpx29", SPATIAL_INDEX_COLUMN)] + [(c, c) for c in columns
                                               if c not in DROPPED and c != "hpx29"]


def _records_batch(records: list[dict]) -> Iterator[pa.RecordBatch]:
    yield pa.RecordBatch.from_pylist(records, schema=_WRITTEN)


def _partition_writer(plan: list[HatsPixel], schema: pa.Schema, renamed: list[tuple[str, str]],
                      partition_order: int, out: str):
    """The mapInArrow function of gaia_source: rows of partitions (hpx, files) in, the files
    written out.
    Each pixel's rows are read from the partition's files (row groups pruned by ``hpx29``),
    sorted and renamed."""
    shift = 2 * (SPATIAL_INDEX_ORDER - partition_order)
    source = [c for c, _ in renamed]

    def pixel_batches(pixels: list[HatsPixel], files: list[str]) -> Iterator[pa.RecordBatch]:
        fs, _ = fs_and_path(files[0])
        dataset = pds.dataset([fs_and_path(f)[1] for f in files], schema=schema,
                              format="parquet", filesystem=fs)
        for pixel in pixels:
            lo, hi = pixel.hpx29_range
            rows = dataset.to_table(columns=source, filter=(pc.field("hpx29") >= lo)
                                    & (pc.field("hpx29") < hi)).sort_by("hpx29")
            yield from rows.rename_columns([name for _, name in renamed]).to_batches()

    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for partitions in batch.column("partitions").to_pylist():
                for part in partitions:
                    pixels = [p for p in plan if p.hpx29_range[0] >> shift == part["hpx"]]
                    records = write_pixel_files(pixel_batches(pixels, part["files"]), pixels,
                                                out)
                    yield from _records_batch(records)
    return fn


def _sorted_writer(plan: list[HatsPixel], out: str):
    """The mapInArrow function of a joined table: rows sorted by ``_healpix_29`` in, the files
    written out."""
    def fn(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        yield from _records_batch(write_pixel_files(batches, plan, out))
    return fn


def _row_counts(index, map_order: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, rows) at ``map_order`` of a DataFrame's ``hpx29`` column ``index``."""
    from pyspark.sql import functions as F

    pdf = (index.select(F.shiftright("hpx29", 2 * (SPATIAL_INDEX_ORDER - map_order)).alias("p"))
           .groupBy("p").count().orderBy("p").toPandas())
    return pdf["p"].to_numpy(np.int64), pdf["count"].to_numpy(np.int64)


def _table_version(spark, conf: Conf, table: tables.TableSpec) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, conf.table_path(table.name)).history(1)
               .select("version").first()[0])


def _write_gaia_source(spark, conf: Conf, gaia, plan: list[HatsPixel], renamed, order: int,
                       out: str) -> list:
    """gaia_source's pixels, each ``hpx`` partition's files read by one task; the written
    records (Rows)."""
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(gaia.drop(*tables.GAIA_SOURCE.partition_by).schema)
    by_partition: dict[int, list[str]] = {}
    for uri, values in data_files(spark, conf.table_path(tables.GAIA_SOURCE.name)):
        by_partition.setdefault(int(values["hpx"]), []).append(uri)
    shift = 2 * (SPATIAL_INDEX_ORDER - order)
    rows: dict[int, int] = {}
    for p in plan:
        rows[p.hpx29_range[0] >> shift] = rows.get(p.hpx29_range[0] >> shift, 0) + p.rows
    if set(by_partition) != set(rows):
        raise ValueError(f"gaia_source's hpx partitions are not catalog.partition_order={order} "
                         f"pixels: export with the partition order it was ingested with")
    groups = deal(rows, TASKS_PER_CORE * spark.sparkContext.defaultParallelism)
    tasks = spark.createDataFrame(spark.sparkContext.parallelize(
        [([(h, by_partition[h]) for h in group],) for group in groups], len(groups)),
        "partitions array<struct<hpx: long, files: array<string>>>")
    return tasks.mapInArrow(_partition_writer(plan, schema, renamed, order, out),
                            _WRITTEN_DDL).collect()


def _write_joined(rows, plan: list[HatsPixel], renamed, order: int, out: str) -> list:
    """A joined table's pixels: its rows shuffled by partition pixel (into at most
    :data:`~gaialake.io.spark.TASKS_PER_CORE` tasks per core) and sorted by ``_healpix_29`` in each task; the
    written records (Rows)."""
    from pyspark.sql import functions as F

    shift = 2 * (SPATIAL_INDEX_ORDER - order)
    parts = min(len({p.hpx29_range[0] >> shift for p in plan}),
                TASKS_PER_CORE * rows.sparkSession.sparkContext.defaultParallelism)
    return (rows.select(*[F.col(c).alias(n) for c, n in renamed])
            .repartition(parts, F.shiftright(SPATIAL_INDEX_COLUMN, shift))
            .sortWithinPartitions(SPATIAL_INDEX_COLUMN)
            .mapInArrow(_sorted_writer(plan, out), _WRITTEN_DDL).collect())


def export_hats(spark, conf: Conf, table: str, out: str, overwrite: bool = False) -> dict:
    """Write ``table`` (gaia_source, or a table with a ``source_id``) as a HATS catalog in
    directory ``out`` (a path or URL; must be absent or empty, or a HATS catalog replaced with
    ``overwrite``; removed again when the export fails). Pixels start at
    ``catalog.partition_order`` and split below ``export.hats_max_rows`` rows (down to
    ``export.hats_skymap_order``). Returns a summary: rows, pixels, orders, rows left out (no
    gaia_source star), seconds."""
    t0 = time.perf_counter()
    spec = tables.spec(table)
    if spec.name not in exportable_tables():
        raise ValueError(f"{spec.name} has no source_id to place its rows on the sky; tables "
                         f"it exports: {', '.join(exportable_tables())}")
    check_output_dir(out, overwrite)
    order = int(conf.get("catalog.partition_order"))
    map_order = max(int(conf.get("export.hats_skymap_order")), order)
    max_rows = int(conf.get("export.hats_max_rows"))
    gaia = read_table(spark, conf, tables.GAIA_SOURCE)
    rows, left_out = gaia, 0
    if spec is not tables.GAIA_SOURCE:
        own = read_table(spark, conf, spec)
        wanted = ["source_id", "hpx29"] + [c for c in ("ra", "dec") if c not in own.columns]
        rows = own.join(gaia.select(*wanted), "source_id").persist()
        left_out = own.count() - rows.count()
        if left_out:
            log.warning("%d rows of %s have no gaia_source star: not exported", left_out,
                        spec.name)
    renamed = _renamed(rows.columns)
    map_pixels, map_counts = _row_counts(rows.select("hpx29"), map_order)
    plan = plan_pixels(map_pixels, map_counts, map_order, order, max_rows)
    if not plan:
        raise ValueError(f"{spec.name} has no rows to export")
    try:
        if spec is tables.GAIA_SOURCE:
            written = _write_gaia_source(spark, conf, gaia, plan, renamed, order, out)
        else:
            try:
                written = _write_joined(rows, plan, renamed, order, out)
            finally:
                rows.unpersist()
        got = {(r.order, r.pixel): r.rows for r in written}
        if got != {(p.order, p.pixel): p.rows for p in plan}:
            raise RuntimeError(f"the files written hold {sum(got.values())} rows where "
                               f"{spec.name} had {sum(p.rows for p in plan)} when counted: it "
                               f"changed during the export; run it again")
        write_catalog_files(out, spec.name, [r.asDict() for r in written], map_order,
                            map_pixels, map_counts, max_rows, extra={
                                "obs_description": spec.description,
                                "gaialake_table": spec.name,
                                "gaialake_table_version": _table_version(spark, conf, spec)})
    except BaseException:   # no half-written catalog: --out was empty (or absent) before
        fs, root = fs_and_path(out)
        if fs.exists(root):
            fs.rm(root, recursive=True)
        raise
    summary = {"table": spec.name, "out": out, "rows": sum(got.values()), "pixels": len(plan),
               "orders": sorted({p.order for p in plan}), "rows_left_out": left_out,
               "seconds": time.perf_counter() - t0}
    log.info("export hats: %s: %d rows in %d pixels (orders %s) to %s in %.1f s", spec.name,
             summary["rows"], len(plan), summary["orders"], out, summary["seconds"])
    return summary

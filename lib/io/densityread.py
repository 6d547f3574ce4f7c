"""Reading a selection of ``gaia_source`` with per-cell counts: a thin Spark adapter.

Built for the density job's catalog input (:func:`gaialake.density.workflow.catalog_sample`
wires it to the pure :mod:`gaialake.density.catalog`), it knows no science: a predicate pushed
to the scan, a pure pandas function per Arrow batch (``mapInPandas``) that applies the exact
cuts and adds cell columns and a flag, and then, none of them collecting the catalog:

- :func:`read_flagged_with_counts`: the per-cell counts of all rows and of flagged rows
  (``groupBy``), and the flagged rows: a lazy DataFrame, collected as pandas by the caller
  only when their count (the sum of the counts) is at most what the driver may hold;
- :class:`StarStream`: a larger selection kept on the executors (persisted), passed through a
  pure per-batch function, and only ever aggregated (counts, sums per key, a uniform
  subsample) or handed to Petastorm as a feed;
- :func:`quantile_by`: an approximate quantile of a column per group.
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.delta import read_table

__all__ = ["read_flagged_with_counts", "StarStream", "quantile_by"]


def _source(spark, conf: Conf, columns: Sequence[str], why: str):
    df = read_table(spark, conf, tables.GAIA_SOURCE)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"gaia_source at {conf.table_path(tables.GAIA_SOURCE.name)} lacks "
                       f"columns {missing} that {why} reads")
    return df


def _per_batch(fn: Callable[[pd.DataFrame], pd.DataFrame]):
    def batches(pdfs):
        for pdf in pdfs:
            yield fn(pdf)
    return batches


def read_flagged_with_counts(spark, conf: Conf, *, columns: Sequence[str], predicate: str,
                             annotate: Callable[[pd.DataFrame], pd.DataFrame], schema: str,
                             cells: Sequence[str], flag: str, flag_count: str, why: str):
    """(flagged rows less ``flag`` as a lazy DataFrame, counts per ``cells``: ``n_parent`` and
    ``flag_count`` as pandas) of ``gaia_source`` rows ``columns`` where ``predicate``, passed
    through ``annotate`` (its rows: Spark DDL ``schema``, holding ``cells`` and the boolean
    ``flag``). ``why`` names the reader in errors."""
    from pyspark.sql import functions as F

    rows = (_source(spark, conf, columns, why).select(*columns).where(predicate)
            .mapInPandas(_per_batch(annotate), schema))
    counts = (rows.groupBy(*cells)
              .agg(F.count(F.lit(1)).alias("n_parent"),
                   F.sum(F.col(flag).cast("long")).alias(flag_count))
              .toPandas())
    return rows.where(F.col(flag)).drop(flag), counts


class StarStream:
    """Rows kept on the executors: ``rows`` (a DataFrame) through the pure per-batch ``fn``
    (its rows: Spark DDL ``schema``), persisted (memory, then disk) and counted; never collected.
    :meth:`keep_where` filters, :meth:`sum_by` aggregates a per-batch function's columns per key,
    :meth:`sample` brings a uniform subsample to the driver, :meth:`count_on_lattice` counts
    rows per grid cell, :meth:`feed` is a per-batch function's DataFrame for Petastorm,
    :meth:`close` unpersists."""

    def __init__(self, rows, fn: Callable[[pd.DataFrame], pd.DataFrame], schema: str) -> None:
        from pyspark import StorageLevel

        self.df = rows.mapInPandas(_per_batch(fn), schema).persist(
            StorageLevel.MEMORY_AND_DISK)
        self.n_rows = int(self.df.count())

    def keep_where(self, condition: str) -> int:
        """Keep the rows where the SQL ``condition`` holds; returns how many were dropped."""
        from pyspark import StorageLevel

        kept = self.df.where(condition).persist(StorageLevel.MEMORY_AND_DISK)
        n = int(kept.count())
        self.df.unpersist()
        dropped, self.df, self.n_rows = self.n_rows - n, kept, n
        return dropped

    def sum_by(self, key: str, fn: Callable[[pd.DataFrame], pd.DataFrame], schema: str
               ) -> pd.DataFrame:
        """Per ``key`` value: the row count ``n`` and the sums of the other columns of ``fn``'s
        per-batch frames (Spark DDL ``schema``, holding ``key``)."""
        from pyspark.sql import functions as F

        out = self.df.mapInPandas(_per_batch(fn), schema)
        sums = [F.sum(c).alias(c) for c in out.columns if c != key]
        return out.groupBy(key).agg(F.count(F.lit(1)).alias("n"), *sums).toPandas()

    def sample(self, n_max: int, seed: int) -> pd.DataFrame:
        """A uniform subsample of at most ``n_max`` rows (Bernoulli, ``seed``) as pandas."""
        fraction = min(1.0, 0.98 * n_max / max(self.n_rows, 1))
        out = self.df.sample(fraction=fraction, seed=int(seed) % 2**31).toPandas()
        return out.iloc[:n_max]

    def count_on_lattice(self, grid, center_kpc, spacing_kpc: float):
        """Rows per cube cell (side ``spacing_kpc``) around each lattice point of ``grid``
        (through ``center_kpc``), from the columns x, y, z (kpc)."""
        from gaialake.density.measure import counts_on_lattice, lattice_cells

        def cells(pdf: pd.DataFrame) -> pd.DataFrame:
            c = lattice_cells(pdf[["x", "y", "z"]].to_numpy(), center_kpc, spacing_kpc)
            return pd.DataFrame({"i": c[:, 0], "j": c[:, 1], "k": c[:, 2]})

        counted = (self.df.select("x", "y", "z")
                   .mapInPandas(_per_batch(cells), "i long, j long, k long")
                   .groupBy("i", "j", "k").count().toPandas())
        return counts_on_lattice(grid, center_kpc, spacing_kpc,
                                 counted[["i", "j", "k"]].to_numpy(), counted["count"].to_numpy())

    def feed(self, fn: Callable[[pd.DataFrame], pd.DataFrame], schema: str):
        """The DataFrame of ``fn``'s per-batch frames (Spark DDL ``schema``), for
        :func:`gaialake.io.feeding.torch_loader` (which puts it in a random order)."""
        return self.df.mapInPandas(_per_batch(fn), schema)

    def close(self) -> None:
        """Release the persisted rows."""
        self.df.unpersist()


def quantile_by(spark, conf: Conf, *, predicate: str, key_sql: str, key: str, column: str,
                q: float, alias: str, why: str) -> pd.DataFrame:
    """Approximate ``q`` quantile of ``column`` per group ``key_sql`` (named ``key``) over the
    ``gaia_source`` rows where ``predicate``: columns ``key``, ``alias``."""
    from pyspark.sql import functions as F

    df = _source(spark, conf, [column], why)
    return (df.where(predicate).groupBy(F.expr(key_sql).alias(key))
            .agg(F.percentile_approx(column, q).alias(alias)).toPandas())

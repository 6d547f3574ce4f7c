"""Reading a selection of ``gaia_source`` with per-cell counts: a thin Spark adapter.

Built for the density job's catalog input (:func:`gaialake.density.workflow.catalog_sample`
wires it to the pure :mod:`gaialake.density.catalog`), it knows no science: a predicate pushed
to the scan, a pure pandas function per Arrow batch (``mapInPandas``) that applies the exact
cuts and adds cell columns and a flag, and then, none of them collecting the catalog:

- :func:`read_flagged_with_counts`: the per-cell counts of all rows and of flagged rows
  (``groupBy``), and the flagged rows collected as pandas only when their count (the sum of the
  counts) is at most ``max_rows``; more is refused naming the conf key (streaming a larger
  selection to training through Petastorm is a later step);
- :func:`quantile_by`: an approximate quantile of a column per group.
"""
from __future__ import annotations

from typing import Callable, Sequence

import pandas as pd

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.delta import read_table

__all__ = ["read_flagged_with_counts", "quantile_by"]


def _source(spark, conf: Conf, columns: Sequence[str], why: str):
    df = read_table(spark, conf, tables.GAIA_SOURCE)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise KeyError(f"gaia_source at {conf.table_path(tables.GAIA_SOURCE.name)} lacks "
                       f"columns {missing} that {why} reads")
    return df


def read_flagged_with_counts(spark, conf: Conf, *, columns: Sequence[str], predicate: str,
                             annotate: Callable[[pd.DataFrame], pd.DataFrame], schema: str,
                             cells: Sequence[str], flag: str, flag_count: str, max_rows: int,
                             max_rows_key: str, why: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(flagged rows less ``flag``, counts per ``cells``: ``n_parent`` and ``flag_count``)
    of ``gaia_source`` rows ``columns`` where ``predicate``, passed through ``annotate`` (its
    rows: Spark DDL ``schema``, holding ``cells`` and the boolean ``flag``). ``why`` names the
    reader in errors."""
    from pyspark.sql import functions as F

    def batches(pdfs):
        for pdf in pdfs:
            yield annotate(pdf)

    rows = (_source(spark, conf, columns, why).select(*columns).where(predicate)
            .mapInPandas(batches, schema))
    counts = (rows.groupBy(*cells)
              .agg(F.count(F.lit(1)).alias("n_parent"),
                   F.sum(F.col(flag).cast("long")).alias(flag_count))
              .toPandas())
    n = int(counts[flag_count].sum()) if len(counts) else 0
    if n > max_rows:
        raise ValueError(f"{n} rows of gaia_source pass the cuts of {why}, more than {max_rows_key} "
                         f"({max_rows}) collected to the driver: raise it if the driver's memory "
                         "allows, or narrow the selection")
    return rows.where(F.col(flag)).drop(flag).toPandas(), counts


def quantile_by(spark, conf: Conf, *, predicate: str, key_sql: str, key: str, column: str,
                q: float, alias: str, why: str) -> pd.DataFrame:
    """Approximate ``q`` quantile of ``column`` per group ``key_sql`` (named ``key``) over the
    ``gaia_source`` rows where ``predicate``: columns ``key``, ``alias``."""
    from pyspark.sql import functions as F

    df = _source(spark, conf, [column], why)
    return (df.where(predicate).groupBy(F.expr(key_sql).alias(key))
            .agg(F.percentile_approx(column, q).alias(alias)).toPandas())

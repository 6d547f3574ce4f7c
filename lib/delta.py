"""Delta table I/O: write with idempotent replace, register in the catalog, read by name."""
from __future__ import annotations

from typing import Sequence

from .conf import Conf
from .log import get_logger

__all__ = ["table_exists", "write_table", "register_table", "read_table", "qualified"]

log = get_logger("delta")


def qualified(conf: Conf, table: str) -> str:
    return f"{conf.get('catalog.database')}.{table}"


def table_exists(spark, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def write_table(df, conf: Conf, table: str, *, mode: str = "overwrite",
                partition_by: Sequence[str] = (), replace_where: str | None = None,
                properties: dict[str, str] | None = None) -> str:
    """Write ``df`` to ``<warehouse>/<table>`` and register it; returns the path.

    ``replace_where`` replaces exactly the rows matching the predicate (idempotent re-runs);
    on a table that does not exist yet it is a plain create.
    """
    spark = df.sparkSession
    path = conf.table_path(table)
    exists = table_exists(spark, path)
    writer = df.write.format("delta")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    if replace_where is not None and exists:
        writer = writer.mode("overwrite").option("replaceWhere", replace_where)
    elif not exists:
        writer = writer.mode("overwrite")
        for key, value in (properties or {}).items():
            writer = writer.option(key, value)
    else:
        writer = writer.mode(mode)
        if mode == "overwrite":
            writer = writer.option("overwriteSchema", "true")
    writer.save(path)
    register_table(spark, conf, table)
    return path


def register_table(spark, conf: Conf, table: str) -> None:
    """(Re)register ``gaialake.<table>`` as an external Delta table at its warehouse path."""
    path = conf.table_path(table)
    name = qualified(conf, table)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {conf.get('catalog.database')}")
    if spark.catalog.tableExists(name):
        current = spark.sql(f"DESCRIBE DETAIL {name}").select("location").first()[0]
        if current.rstrip("/").replace("file:", "") == path.rstrip("/").replace("file:", ""):
            return
        spark.sql(f"DROP TABLE {name}")
    spark.sql(f"CREATE TABLE {name} USING DELTA LOCATION '{path}'")


def read_table(spark, conf: Conf, table: str):
    """A Delta table of the warehouse as a DataFrame (by path: works with any catalog)."""
    path = conf.table_path(table)
    if not table_exists(spark, path):
        raise FileNotFoundError(f"table {table!r} not found at {path}: run the job that writes it "
                                f"first (see `gaialake pipeline --help`)")
    return spark.read.format("delta").load(path)

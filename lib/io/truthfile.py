"""A mock's truth file beside its bulk files, registered as a truth table by ``gaialake ingest``.

``<paths.raw>/truth_origin.parquet`` (written by ``gaialake upsample`` with ``upsample.dr3_out``)
becomes the Delta table ``truth_origin``: columns ``source_id`` (int64) and ``origin``
(``in_situ`` | ``accreted``; null when unknown) are required, ``component`` (string) and
``parent_id`` (int64) optional (null-filled); another column, a wrong type or another origin
fails with the file named. The table is replaced on every run (idempotent); the rows carry the
ingest's run_id. Spark reads the file (the rows never reach the driver).
"""
from __future__ import annotations

from gaialake import tables
from gaialake.conf import Conf

__all__ = ["TRUTH_FILES", "ORIGINS", "TruthFileError", "register_truth_files"]

#: Truth files of a raw folder and the table each becomes.
TRUTH_FILES = {"truth_origin.parquet": tables.TRUTH_ORIGIN}
#: The values of ``origin``.
ORIGINS = ("in_situ", "accreted")
_REQUIRED = ("source_id", "origin")
_TYPES = {"source_id": ("bigint", "int", "smallint"), "parent_id": ("bigint", "int", "smallint"),
          "origin": ("string",), "component": ("string",)}


class TruthFileError(ValueError):
    """A truth file's columns or values are not its table's (the message names the file)."""


def _exists(spark, path: str) -> bool:
    jvm_path = spark._jvm.org.apache.hadoop.fs.Path(path)
    return bool(jvm_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
                .exists(jvm_path))


def _checked(spark, path: str, spec: tables.TableSpec, run_id: str):
    """The file at ``path`` as ``spec``'s rows (cast, optional columns null-filled)."""
    from pyspark.sql import functions as F

    df = spark.read.parquet(path)
    types = dict(df.dtypes)
    wanted = spec.columns[:-1]     # all but run_id
    extra = sorted(set(types) - set(wanted))
    missing = [c for c in _REQUIRED if c not in types]
    wrong = [f"{c} is {types[c]}" for c in wanted if c in types and types[c] not in _TYPES[c]]
    if extra or missing or wrong:
        raise TruthFileError(
            f"{path}: columns {sorted(types)} are not those of table {spec.name} (required "
            f"source_id long, origin string; optional component string, parent_id long): "
            + "; ".join([f"missing {', '.join(missing)}"] * bool(missing)
                        + [f"unknown {', '.join(extra)}"] * bool(extra) + wrong))
    bad = df.where(F.col("origin").isNotNull() & ~F.col("origin").isin(*ORIGINS)) \
        .select("source_id", "origin").limit(1).collect()
    if bad:
        raise TruthFileError(f"{path}: source_id {bad[0]['source_id']} has origin "
                             f"{bad[0]['origin']!r}; expected one of {ORIGINS} or null")
    ddl = dict(part.strip().split()[:2] for part in spec.schema.split(","))
    return df.select(*[(F.col(c) if c in types else F.lit(None)).cast(ddl[c]).alias(c)
                       for c in wanted], F.lit(run_id).alias("run_id"))


def register_truth_files(spark, conf: Conf, raw: str, run_id: str) -> dict[str, int]:
    """Register each truth file of :data:`TRUTH_FILES` found in ``raw`` as its table
    (replacing it); returns rows per registered table (empty when ``raw`` holds none)."""
    from gaialake.io.delta import read_table, write_table

    out = {}
    for name, spec in TRUTH_FILES.items():
        path = f"{raw.rstrip('/')}/{name}"
        if _exists(spark, path):
            write_table(_checked(spark, path, spec, run_id), conf, spec)
            out[spec.name] = read_table(spark, conf, spec).count()
    return out

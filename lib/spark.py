"""The Spark session factory: local Spark + Delta + a persistent catalog, or a cluster's session.

Modes (``spark.mode``):

- ``local``: ``spark.master`` (default ``local[*]``) with Delta's SQL extension and catalog.
  delta-spark's jars come from Maven Central through ``spark.jars.packages`` once, into
  ``paths.jar_cache``; later runs pass the cached jars with ``spark.jars`` and need no network.
  The catalog is an embedded Hive metastore (Derby) at ``paths.metastore``, so tables survive
  across sessions. Derby admits one process at a time: when another gaialake process holds it,
  this session uses an in-memory catalog and registers every Delta table found in the warehouse
  (:func:`register_warehouse`), so ``gaialake sql`` works while a job runs.
- ``cluster``: master and Spark conf from conf (``spark-submit`` may set them instead); the
  catalog is the cluster's metastore.
- ``databricks``: the active session, Delta and Unity Catalog/Hive built in.
"""
from __future__ import annotations

import fcntl
import glob
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

from .conf import Conf
from .log import get_logger

__all__ = ["get_spark", "delta_package", "metastore_busy", "register_warehouse", "stop_spark"]

log = get_logger("spark")
SCALA = "2.13"


def delta_package() -> str:
    """Maven coordinate of the delta-spark jar matching the installed Python package."""
    return f"io.delta:delta-spark_{SCALA}:{version('delta-spark')}"


def _cached_jars(cache: Path) -> list[str]:
    """Jars of a previous resolution for this delta version, or [] when none."""
    jars = sorted(glob.glob(str(cache / "ivy" / "jars" / "*.jar")))
    want = f"delta-spark_{SCALA}-{version('delta-spark')}.jar"
    return jars if any(os.path.basename(j).endswith(want) for j in jars) else []


def metastore_busy(metastore_dir: str) -> bool:
    """True when another process has the embedded Derby metastore booted (its file lock held)."""
    lock = Path(metastore_dir) / "metastore_db" / "dbex.lck"
    if not lock.exists():
        return False
    try:
        with open(lock, "a") as fh:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.lockf(fh, fcntl.LOCK_UN)
        return False
    except OSError:
        return True


def _local_builder(conf: Conf):
    from pyspark.sql import SparkSession

    cache = Path(conf.path("paths.jar_cache"))
    cache.mkdir(parents=True, exist_ok=True)
    # Python workers run this interpreter (the venv's), where gaialake is installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(str(conf.get("spark.master")))
        .appName(str(conf.get("spark.app_name")))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.driver.memory", str(conf.get("spark.driver_memory")))
        .config("spark.sql.shuffle.partitions", str(conf.get("spark.shuffle_partitions")))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.pyspark.python", sys.executable)
        .config("spark.pyspark.driver.python", sys.executable)
        .config("spark.databricks.delta.schema.autoMerge.enabled", "false")
    )
    jars = _cached_jars(cache)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    else:
        log.info("fetching %s from Maven Central into %s (once)", delta_package(), cache)
        builder = (builder.config("spark.jars.packages", delta_package())
                   .config("spark.jars.ivy", str(cache / "ivy")))

    metastore = Path(conf.path("paths.metastore"))
    if metastore_busy(str(metastore)):
        log.warning("metastore %s is in use by another process: using an in-memory catalog "
                    "with the warehouse's Delta tables registered", metastore)
        builder = builder.config("spark.sql.catalogImplementation", "in-memory")
        return builder, False
    metastore.mkdir(parents=True, exist_ok=True)
    url = f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true"
    builder = (builder.config("spark.sql.catalogImplementation", "hive")
               .config("spark.hadoop.javax.jdo.option.ConnectionURL", url)
               .config("spark.hadoop.datanucleus.schema.autoCreateAll", "true")
               .config("spark.hadoop.hive.metastore.schema.verification", "false")
               .config("spark.sql.warehouse.dir", str(metastore / "managed"))
               .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={metastore}"))
    return builder, True


def get_spark(conf: Conf):
    """The SparkSession for ``conf`` (an already active one is reused)."""
    from pyspark.sql import SparkSession

    mode = conf.get("spark.mode")
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if mode == "databricks":
        return SparkSession.builder.getOrCreate()
    if mode == "local":
        builder, persistent = _local_builder(conf)
    elif mode == "cluster":
        builder = SparkSession.builder.appName(str(conf.get("spark.app_name")))
        if conf.get("spark.master", None):
            builder = builder.master(str(conf.get("spark.master")))
        builder = builder.enableHiveSupport()
        persistent = True
    else:
        raise ValueError(f"spark.mode must be local, cluster or databricks, got {mode!r}")
    for key, value in (conf.get("spark.conf", {}) or {}).items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if mode == "local" and not spark.conf.get("spark.jars", ""):
        _keep_resolved_jars(conf)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {conf.get('catalog.database')}")
    if not persistent:
        register_warehouse(spark, conf)
    return spark


def _keep_resolved_jars(conf: Conf) -> None:
    """After a resolution through spark.jars.packages the jars sit in <cache>/ivy/jars."""
    cache = Path(conf.path("paths.jar_cache"))
    if not _cached_jars(cache):
        log.warning("delta jars not found in %s after resolution", cache)


def register_warehouse(spark, conf: Conf) -> list[str]:
    """Register every Delta table directory under ``paths.warehouse`` in the catalog database."""
    from .delta import register_table

    warehouse = Path(conf.path("paths.warehouse"))
    names = []
    if "://" in str(conf.get("paths.warehouse")):
        return names
    for log_dir in sorted(warehouse.glob("*/_delta_log")):
        name = log_dir.parent.name
        if not name.startswith("_"):
            register_table(spark, conf, name)
            names.append(name)
    return names


def stop_spark() -> None:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


def clear_jar_cache(conf: Conf) -> None:
    shutil.rmtree(conf.path("paths.jar_cache"), ignore_errors=True)

"""The Spark session factory: local Spark + Delta + a persistent catalog, or a cluster's session.

Modes (``spark.mode``):

- ``local``: ``spark.master`` (default ``local[*]``) with Delta's SQL extension and catalog.
  delta-spark's jars come from Maven Central through ``spark.jars.packages`` once, into
  ``paths.jar_cache``; later runs pass the cached jars with ``spark.jars`` and need no network.
  The catalog is an embedded Hive metastore (Derby) at ``paths.metastore`` (by default
  ``<paths.warehouse>/_metastore``: each warehouse has its own catalog), so tables survive
  across sessions; Spark's warehouse dir and ``derby.log`` live there too. Derby admits one
  process at a time: when another gaialake process holds it, this session uses an in-memory
  catalog and registers every Delta table found in the warehouse (:func:`register_warehouse`),
  so ``gaialake sql`` works while a job runs.
- ``cluster``: master and Spark conf from conf (``spark-submit`` may set them instead), Delta's
  extension and catalog added; the catalog is the cluster's metastore (Hive support on).
- ``databricks``: the active session, Delta and Unity Catalog/Hive built in.

Under ``spark-submit`` (local or cluster mode) the driver's JVM exists before Python runs:
``--master`` and every ``--conf`` of spark-submit win over these defaults (:func:`submitted_conf`),
and when spark-submit was given no Delta jars (``--packages``/``--jars``) the cached ones are
added to the driver's class loader and shipped to the executors with ``spark.jars``.
"""
from __future__ import annotations

import fcntl
import glob
import os
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Hashable, Mapping, TypeVar

from gaialake.conf import Conf
from gaialake.log import get_logger

__all__ = ["TASKS_PER_CORE", "deal", "get_spark", "delta_package", "metastore_busy", "register_warehouse", "stop_spark",
           "submitted_conf", "session_metastore", "METASTORE_KEY"]

log = get_logger("spark")
SCALA = "2.13"
#: The Spark conf key recording the local metastore a session's persistent catalog lives in
#: (absent: an in-memory catalog, or a cluster's or Databricks' catalog).
METASTORE_KEY = "spark.gaialake.metastore"
#: Delta's SQL extension and catalog, set in local and cluster modes.
DELTA_SQL = {"spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
             "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog"}


#: Tasks per core (Spark's default parallelism) that per-file or per-partition work is dealt
#: to, at most: each Python task costs ~0.1-0.3 s to launch on a local executor (measured), so
#: 64 one-file tasks on 2 cores spent ~10 s starting; two tasks per core keep the cores even.
TASKS_PER_CORE = 2

K = TypeVar("K", bound=Hashable)


def deal(weights: Mapping[K, float], tasks: int) -> list[list[K]]:
    """The keys of ``weights`` dealt to at most ``tasks`` groups, heaviest first to the lightest
    group (balanced sums; never an empty group)."""
    groups: list[list[K]] = [[] for _ in range(min(tasks, len(weights)))]
    sums = [0.0] * len(groups)
    for key in sorted(weights, key=lambda k: -weights[k]):
        lightest = sums.index(min(sums))
        groups[lightest].append(key)
        sums[lightest] += weights[key]
    return groups


def dealt_frame(spark, weights: Mapping[K, float], row: Callable[[K], tuple], ddl: str):
    """A DataFrame of ``row(key)`` per key of ``weights`` (``ddl``: its schema), its partitions
    the groups of :func:`deal` over :data:`TASKS_PER_CORE` tasks per core: a ``mapInArrow``
    over it runs one task per group, not one per key."""
    groups = deal(weights, TASKS_PER_CORE * spark.sparkContext.defaultParallelism)
    rdd = spark.sparkContext.parallelize([[row(k) for k in g] for g in groups], max(len(groups), 1))
    return spark.createDataFrame(rdd.flatMap(lambda group: group), ddl)


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


def submitted_conf() -> dict[str, str] | None:
    """The Spark conf ``spark-submit`` gave this driver (``--master``, ``--conf``, ``--jars``...).

    None when Python was not started by spark-submit: spark-submit starts the JVM first and runs
    Python with ``PYSPARK_GATEWAY_PORT`` set; its settings are then the JVM's system properties,
    which ``SparkConf()`` reads.
    """
    if "PYSPARK_GATEWAY_PORT" not in os.environ:
        return None
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized()
    return dict(SparkConf().getAll())


def _delta_jars_on_submitted_driver(conf: Conf) -> list[str]:
    """Make Delta loadable by a driver JVM that spark-submit started; the jars it needed.

    [] when spark-submit already put Delta on the classpath (``--packages``/``--jars``).
    Otherwise the cached jars (``paths.jar_cache``) are added to the driver's class loader
    (spark-submit's ``MutableURLClassLoader``); the caller ships them with ``spark.jars``.
    """
    from py4j.protocol import Py4JJavaError
    from pyspark import SparkContext

    jvm = SparkContext._jvm
    loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        jvm.java.lang.Class.forName(DELTA_SQL["spark.sql.extensions"], False, loader)
        return []
    except Py4JJavaError:  # ClassNotFoundException
        pass
    cache = Path(conf.path("paths.jar_cache"))
    jars = _cached_jars(cache)
    mutable = jvm.java.lang.Class.forName("org.apache.spark.util.MutableURLClassLoader")
    if not jars or not mutable.isInstance(loader):
        raise RuntimeError(
            f"Delta Lake is not on the driver's classpath and no delta jars are cached in {cache}: "
            f"pass `--packages {delta_package()}` to spark-submit, or run any gaialake job once "
            f"without spark-submit to cache them")
    for jar in jars:
        loader.addURL(jvm.java.io.File(jar).toURI().toURL())
    log.info("spark-submit gave no Delta jars: added %d cached jars from %s to the driver",
             len(jars), cache)
    return jars


def _builder(conf: Conf, opts: dict[str, str], submitted: dict[str, str] | None):
    """A session builder with ``opts`` (spark-submit's own settings win), Delta's jars, and
    ``spark.conf`` from conf last."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for key, value in opts.items():
        if submitted is None or key not in submitted:
            builder = builder.config(key, value)
    cache = Path(conf.path("paths.jar_cache"))
    if submitted is not None:
        jars = _delta_jars_on_submitted_driver(conf)
        if jars:
            given = [j for j in submitted.get("spark.jars", "").split(",") if j]
            builder = builder.config("spark.jars", ",".join(given + jars))
    elif _cached_jars(cache):
        builder = builder.config("spark.jars", ",".join(_cached_jars(cache)))
    else:
        log.info("fetching %s from Maven Central into %s (once)", delta_package(), cache)
        cache.mkdir(parents=True, exist_ok=True)
        builder = (builder.config("spark.jars.packages", delta_package())
                   .config("spark.jars.ivy", str(cache / "ivy")))
    for key, value in (conf.get("spark.conf", {}) or {}).items():
        builder = builder.config(key, str(value))
    return builder


def _local_builder(conf: Conf, submitted: dict[str, str] | None):
    # Python workers run this interpreter (the venv's), where gaialake is installed
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    opts = {
        "spark.master": str(conf.get("spark.master")),
        "spark.app.name": str(conf.get("spark.app_name")),
        **DELTA_SQL,
        "spark.driver.memory": str(conf.get("spark.driver_memory")),
        "spark.sql.shuffle.partitions": str(conf.get("spark.shuffle_partitions")),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
    }
    metastore = Path(conf.path("paths.metastore"))
    # Spark's own warehouse dir (database folders; spark-warehouse/ in the working directory
    # by default) lives under the metastore in both catalogs
    opts["spark.sql.warehouse.dir"] = str(metastore / "managed")
    if metastore_busy(str(metastore)):
        log.warning("metastore %s is in use by another process: using an in-memory catalog "
                    "with the warehouse's Delta tables registered", metastore)
        opts["spark.sql.catalogImplementation"] = "in-memory"
        return _builder(conf, opts, submitted), False
    metastore.mkdir(parents=True, exist_ok=True)
    url = f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true"
    opts.update({"spark.sql.catalogImplementation": "hive",
                 METASTORE_KEY: str(metastore),
                 "spark.hadoop.javax.jdo.option.ConnectionURL": url,
                 "spark.hadoop.datanucleus.schema.autoCreateAll": "true",
                 "spark.hadoop.hive.metastore.schema.verification": "false",
                 # derby.log goes to derby.system.home
                 "spark.driver.extraJavaOptions": f"-Dderby.system.home={metastore}"})
    if submitted is not None:  # the JVM runs already: set Derby's home before Hive boots it
        from pyspark import SparkContext

        SparkContext.setSystemProperty("derby.system.home", str(metastore))
    return _builder(conf, opts, submitted), True


def _cluster_builder(conf: Conf, submitted: dict[str, str] | None):
    """The cluster's master and catalog (Hive support on), Delta's extension and catalog."""
    opts = {"spark.app.name": str(conf.get("spark.app_name")), **DELTA_SQL,
            "spark.sql.catalogImplementation": "hive",
            "spark.sql.shuffle.partitions": str(conf.get("spark.shuffle_partitions")),
            "spark.sql.execution.arrow.pyspark.enabled": "true"}
    if conf.get("spark.master", None):
        opts["spark.master"] = str(conf.get("spark.master"))
    return _builder(conf, opts, submitted)


def get_spark(conf: Conf):
    """The SparkSession for ``conf`` (an already active one is reused)."""
    from pyspark.sql import SparkSession

    mode = conf.get("spark.mode")
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if mode == "databricks":
        return SparkSession.builder.getOrCreate()
    if mode not in ("local", "cluster"):
        raise ValueError(f"spark.mode must be local, cluster or databricks, got {mode!r}")
    started = time.perf_counter()
    submitted = submitted_conf()
    if mode == "local":
        builder, persistent = _local_builder(conf, submitted)
    else:
        builder, persistent = _cluster_builder(conf, submitted), True
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    if submitted is not None:
        log.info("spark-submit session: master %s", spark.sparkContext.master)
    if mode == "local" and not spark.conf.get("spark.jars", ""):
        _keep_resolved_jars(conf)
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {conf.get('catalog.database')}")
    if not persistent:
        register_warehouse(spark, conf)
    log.info("Spark session ready in %.1f s (%s)", time.perf_counter() - started, mode)
    return spark


def _keep_resolved_jars(conf: Conf) -> None:
    """After a resolution through spark.jars.packages the jars sit in <cache>/ivy/jars."""
    cache = Path(conf.path("paths.jar_cache"))
    if not _cached_jars(cache):
        log.warning("delta jars not found in %s after resolution", cache)


def register_warehouse(spark, conf: Conf) -> list[str]:
    """Register every Delta table directory under ``paths.warehouse`` in the catalog database."""
    from gaialake.io.delta import register_table

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


def session_metastore(spark) -> str | None:
    """The local metastore folder of ``spark``'s persistent catalog; None for an in-memory
    catalog or a cluster's (Hive, Unity Catalog) one."""
    try:
        return spark.conf.get(METASTORE_KEY, None) or None
    except Exception:  # a Databricks/Connect session may refuse unknown keys
        return None


def stop_spark() -> None:
    """Stop the active Spark session, if any."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()

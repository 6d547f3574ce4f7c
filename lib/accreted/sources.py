"""Where the labelled catalogs come from: a named warehouse, the main one, or a side sky.

The training catalog is ``accreted.train_warehouse`` and the test catalog
``accreted.test_warehouse`` when set (:func:`warehouse_source`: any warehouse holding
``gaia_source`` + ``truth_origin``, e.g. an ingested upsampled simulation); when null, the
synthetic galaxy ``accreted.train_galaxy`` / ``eval_galaxy`` (:func:`galaxy_source`). A
galaxy's ``gaia_source`` + ``truth_origin`` are its own sky, generated and ingested once into
``<accreted.side_root>/<galaxy>/{raw,warehouse}`` (catalog database ``<db>_sky_<galaxy>``) with
the main sky settings overridden by ``accreted.side_sky``, and made again when those settings
change (the marker file ``<side_root>/<galaxy>/accreted_source.json`` records them). Both
galaxies are drawn on the same terms, whatever the main sky is: the classifier trains on a
catalog as deep in labelled stars as the one it is tested on (the main sky's faint stars mostly
fail the parallax cut).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists
from gaialake.log import get_logger, stage

__all__ = ["SOURCE_MARKER", "ROLES", "has_tables", "side_conf", "galaxy_source",
           "warehouse_source", "labelled_source"]

log = get_logger("accreted")

#: The file under ``<side_root>/<galaxy>`` holding the settings a side sky was made with.
SOURCE_MARKER = "accreted_source.json"
#: role -> (conf key of its warehouse, conf key of its synthetic galaxy when that is null).
ROLES = {"train": ("accreted.train_warehouse", "accreted.train_galaxy"),
         "test": ("accreted.test_warehouse", "accreted.eval_galaxy")}


def has_tables(spark, conf: Conf, *specs: tables.TableSpec) -> bool:
    """True when every table of ``specs`` exists in ``conf``'s warehouse."""
    return all(table_exists(spark, conf.table_path(t.name)) for t in specs)


def side_conf(conf: Conf, galaxy: str) -> tuple[Conf, str]:
    """(conf of ``galaxy``'s own sky under ``accreted.side_root``, its marker text): paths,
    catalog database ``<db>_sky_<galaxy>`` and ``sky`` = main sky + ``accreted.side_sky``."""
    root = f"{conf.path('accreted.side_root').rstrip('/')}/{galaxy}"
    database = f"{conf.get('catalog.database')}_sky_{galaxy.lower()}"
    side = conf.with_overrides([f"paths.raw={root}/raw", f"paths.warehouse={root}/warehouse",
                                f"catalog.database={database}", f"sky.galaxy={galaxy}"])
    for key, value in (conf.get("accreted.side_sky", {}) or {}).items():
        side.set(f"sky.{key}", value)
    marker = json.dumps({"seed": side.get("seed"), "sky": side.get("sky")}, sort_keys=True,
                        default=str)
    return side, marker


def galaxy_source(spark, conf: Conf, galaxy: str, build_sky: Callable[[Conf], int]) -> Conf:
    """The conf whose warehouse holds ``gaia_source`` and ``truth_origin`` of ``galaxy``: its
    side sky (see the module docstring); ``build_sky(side_conf)`` generates and ingests it when
    needed and returns its number of stars."""
    truth_tables = (tables.GAIA_SOURCE, tables.TRUTH_ORIGIN)
    side, marker = side_conf(conf, galaxy)
    raw = side.path("paths.raw")
    root = str(Path(raw).parent) if "://" not in raw else raw.rsplit("/", 1)[0]
    marker_path = Path(root) / SOURCE_MARKER
    local = "://" not in root
    if (local and marker_path.exists() and marker_path.read_text() == marker
            and has_tables(spark, side, *truth_tables)):
        log.info("galaxy %s: reusing the sky under %s", galaxy, root)
        return side
    if local and Path(root).exists():
        shutil.rmtree(root)
    with stage(log, f"galaxy {galaxy}: generate + ingest its sky under {root}") as st:
        st.count = build_sky(side)
    if local:
        marker_path.write_text(marker)
    return side


def warehouse_source(spark, conf: Conf, key: str) -> Conf:
    """The conf whose ``paths.warehouse`` is the warehouse named by conf key ``key``; a
    ValueError naming the key when it lacks ``gaia_source`` or ``truth_origin``, or when its
    truth has no accreted or no in-situ star."""
    from pyspark.sql import functions as F

    where = conf.path(key)
    source = conf.with_overrides([])
    source.set("paths.warehouse", where)
    missing = [t.name for t in (tables.GAIA_SOURCE, tables.TRUTH_ORIGIN)
               if not has_tables(spark, source, t)]
    if missing:
        raise ValueError(f"{key}={where}: no table {' or '.join(missing)} there (a labelled "
                         f"warehouse holds gaia_source and truth_origin: ingest a mock with "
                         f"its truth)")
    counts = {r["origin"]: int(r["n"]) for r in read_table(spark, source, tables.TRUTH_ORIGIN)
              .groupBy("origin").agg(F.count("*").alias("n")).collect()}
    if not counts.get("accreted") or not counts.get("in_situ"):
        raise ValueError(f"{key}={where}: truth_origin has {counts.get('accreted', 0)} accreted "
                         f"and {counts.get('in_situ', 0)} in_situ stars; the classifier needs "
                         f"both (origin counts {counts})")
    return source


def labelled_source(spark, conf: Conf, role: str, build_sky: Callable[[Conf], int],
                    ) -> tuple[Conf, str]:
    """(conf of the ``role`` catalog, ``train`` or ``test``, its name for logs and tags): the
    warehouse of :data:`ROLES`' key when set, else the synthetic galaxy's
    (:func:`galaxy_source`)."""
    key, galaxy_key = ROLES[role]
    if conf.get(key) is not None:
        return warehouse_source(spark, conf, key), conf.path(key)
    galaxy = str(conf.get(galaxy_key))
    return galaxy_source(spark, conf, galaxy, build_sky), f"galaxy {galaxy}"

"""Where a galaxy's catalog and truth come from: the main warehouse, or a side sky of its own.

A galaxy's ``gaia_source`` + ``truth_origin`` are the main warehouse's when ``sky.galaxy`` is
that galaxy and ``truth_origin`` exists there; else its own sky, generated and ingested once
into ``<accreted.side_root>/<galaxy>/{raw,warehouse}`` (catalog database ``<db>_sky_<galaxy>``)
with the main sky settings overridden by ``accreted.side_sky``, and made again when those
settings change (the marker file ``<side_root>/<galaxy>/accreted_source.json`` records them).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.delta import table_exists
from gaialake.log import get_logger, stage

__all__ = ["SOURCE_MARKER", "has_tables", "side_conf", "galaxy_source"]

log = get_logger("accreted")

#: The file under ``<side_root>/<galaxy>`` holding the settings a side sky was made with.
SOURCE_MARKER = "accreted_source.json"


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
    """The conf whose warehouse holds ``gaia_source`` and ``truth_origin`` of ``galaxy`` (see
    the module docstring); ``build_sky(side_conf)`` generates and ingests a side sky when
    needed and returns its number of stars."""
    truth_tables = (tables.GAIA_SOURCE, tables.TRUTH_ORIGIN)
    if str(conf.get("sky.galaxy")) == galaxy and has_tables(spark, conf, *truth_tables):
        return conf
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

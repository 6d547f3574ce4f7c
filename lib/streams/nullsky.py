"""The stream-free ("null") sky's conf: Via Machinae's false-positive run beside the stream sky.

``gaialake null_sky`` runs the stream search with :func:`null_sky_conf`; the stream sky's
``find_streams`` finds its candidates with :func:`null_candidates_path`.
"""
from __future__ import annotations

import hashlib
import json

from gaialake import tables
from gaialake.conf import Conf

__all__ = ["SUFFIXED_PATHS", "FINGERPRINT_KEYS", "null_sky_conf", "null_candidates_path",
           "fingerprint"]

#: Conf keys the stream-free search's result depends on (not paths, Spark or MLflow settings).
FINGERPRINT_KEYS = ("seed", "sky", "catalog.partition_order", "patches", "streams", "find_streams",
                    "null_sky.stages")

#: ``paths.*`` keys that get ``null_sky.suffix`` (not jar_cache: the jars are shared).
SUFFIXED_PATHS = ("raw", "warehouse", "metastore", "mlflow", "report")


def null_sky_conf(conf: Conf) -> Conf:
    """The conf of the stream-free run: ``conf`` with ``null_sky.set`` applied, each path of
    ``SUFFIXED_PATHS`` and ``catalog.database`` suffixed with ``null_sky.suffix``, and no null
    table of its own."""
    suffix = str(conf.get("null_sky.suffix"))
    if not suffix:
        raise ValueError("null_sky.suffix must not be empty: the stream-free run needs its own "
                         "paths")
    out = conf.with_overrides([])
    for key in SUFFIXED_PATHS:
        out.set(f"paths.{key}", str(conf.get(f"paths.{key}")).rstrip("/") + suffix)
    out.set("catalog.database", str(conf.get("catalog.database")) + suffix.replace("-", "_"))
    for key, value in (conf.get("null_sky.set") or {}).items():
        out.set(str(key), value)
    out.set("find_streams.null_candidates", None)
    if str(out.get("sky.streams")).lower() not in ("off", "false", "0", "no"):
        raise ValueError("null_sky.set must switch the streams off (sky.streams: off)")
    return out


def null_candidates_path(conf: Conf) -> str | None:
    """``find_streams.null_candidates`` resolved: ``auto`` is the null_sky run's table."""
    value = conf.get("find_streams.null_candidates", None)
    if not value:
        return None
    if str(value) == "auto":
        return null_sky_conf(conf).table_path(tables.STREAM_CANDIDATES.name)
    return conf.path("find_streams.null_candidates")


def fingerprint(null_conf: Conf) -> str:
    """sha256 of the settings in ``FINGERPRINT_KEYS``: equal fingerprints, the same search."""
    settings = {key: null_conf.get(key, None) for key in FINGERPRINT_KEYS}
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()

"""The stream-free ("null") skies' confs: Via Machinae's false-positive runs beside the stream sky.

``null_sky.realizations`` (K) independent stream-free skies calibrate the threshold. ``gaialake
null_sky`` runs the stream search once per realization with :func:`null_sky_conf`; realization
k has seed ``null_sky.set.seed + k`` (:func:`realization_seed`) and suffix ``null_sky.suffix``
(k = 0) or ``null_sky.suffix + "_<k>"``, so each has its own files and tables. The stream sky's
``find_streams`` finds their candidates with :func:`null_candidates_paths`.
"""
from __future__ import annotations

from gaialake import tables
from gaialake.conf import Conf

__all__ = ["SUFFIXED_PATHS", "FINGERPRINT_KEYS", "n_realizations", "realization_seed",
           "realization_suffix", "null_sky_conf", "null_candidates_path", "null_candidates_paths",
           "fingerprint"]

#: Conf keys the stream-free search's result depends on (not paths, Spark or MLflow settings).
FINGERPRINT_KEYS = ("seed", "sky", "catalog.partition_order", "patches", "streams", "find_streams",
                    "null_sky.stages")

#: ``paths.*`` keys that get ``null_sky.suffix`` (not jar_cache: the jars are shared).
SUFFIXED_PATHS = ("raw", "warehouse", "metastore", "mlflow", "report")


def n_realizations(conf: Conf) -> int:
    """``null_sky.realizations``: how many stream-free skies calibrate the threshold (>= 1)."""
    k = int(conf.get("null_sky.realizations", 1))
    if k < 1:
        raise ValueError(f"null_sky.realizations must be >= 1, got {k}")
    return k


def realization_seed(base_seed: int, realization: int) -> int:
    """The seed of stream-free realization ``realization`` (0 ..): ``base_seed + realization``."""
    return int(base_seed) + int(realization)


def realization_suffix(suffix: str, realization: int) -> str:
    """The path suffix of realization ``realization``: ``suffix``, then ``suffix_<k>``."""
    return suffix if realization == 0 else f"{suffix}_{realization}"


def null_sky_conf(conf: Conf, realization: int = 0) -> Conf:
    """The conf of stream-free realization ``realization``: ``conf`` with ``null_sky.set``
    applied, its seed :func:`realization_seed` of ``null_sky.set.seed``, each path of
    ``SUFFIXED_PATHS`` and ``catalog.database`` suffixed with :func:`realization_suffix`, and no
    null table of its own."""
    suffix = str(conf.get("null_sky.suffix"))
    if not suffix:
        raise ValueError("null_sky.suffix must not be empty: the stream-free run needs its own "
                         "paths")
    if not 0 <= realization < n_realizations(conf):
        raise ValueError(f"stream-free realization {realization} outside 0.."
                         f"{n_realizations(conf) - 1} (null_sky.realizations)")
    out = conf.suffixed(realization_suffix(suffix, realization), SUFFIXED_PATHS)
    for key, value in (conf.get("null_sky.set") or {}).items():
        out.set(str(key), value)
    out.set("seed", realization_seed(out.get("seed"), realization))
    out.set("find_streams.null_candidates", None)
    if str(out.get("sky.streams")).lower() not in ("off", "false", "0", "no"):
        raise ValueError("null_sky.set must switch the streams off (sky.streams: off)")
    return out


def null_candidates_paths(conf: Conf) -> list[str]:
    """``find_streams.null_candidates`` resolved, one table per stream-free realization:
    ``auto`` is each null_sky realization's table; a Delta table path is one sky's; null is none."""
    value = conf.get("find_streams.null_candidates", None)
    if not value:
        return []
    if str(value) == "auto":
        return [null_sky_conf(conf, k).table_path(tables.STREAM_CANDIDATES.name)
                for k in range(n_realizations(conf))]
    return [conf.path("find_streams.null_candidates")]


def null_candidates_path(conf: Conf) -> str | None:
    """The first of :func:`null_candidates_paths` (realization 0's table); None without one."""
    paths = null_candidates_paths(conf)
    return paths[0] if paths else None


def fingerprint(null_conf: Conf) -> str:
    """sha256 of the settings in ``FINGERPRINT_KEYS``: equal fingerprints, the same search."""
    return null_conf.fingerprint(FINGERPRINT_KEYS)

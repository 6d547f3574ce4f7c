"""``gaialake null_sky``: the stream search on smooth, stream-free skies (the false-positive runs).

Via Machinae sets its reporting threshold from the same search run on a simulated sky without
streams: whatever that search finds is a false positive. This job runs ``null_sky.stages``
(generate -> ingest -> patches -> anomaly -> find_streams) once for each of
``null_sky.realizations`` independent stream-free skies, in this Spark application, with the
overrides in ``null_sky.set`` applied over the current conf (realization k: seed
``null_sky.set.seed + k``; ``sky.streams: off``) and its own suffix (``null_sky.suffix``, then
``null_sky.suffix_<k>``) on its raw files, warehouse, metastore, MLflow store, report folder and
catalog database (:func:`gaialake.streams.nullsky.null_sky_conf`), so nothing of the stream sky is
touched and its models never become the stream sky's ``@champion``. The threshold is the largest
of the realizations' maxima (find_streams).
Every other setting (region, density of stars, patches, flows, line finding, retrainings and
the consistency filter: ``streams.retrainings``, ``find_streams.consistency``) is the current
conf's, so the two searches are the same search at the same acceptance: its candidates carry
``n_retrainings`` and the stream sky's find_streams drops the inconsistent ones before taking
the maxima.

The stream sky's ``find_streams`` then reads this run's ``stream_candidates``
(``find_streams.null_candidates: auto``), e.g. ``SELECT * FROM
gaialake_nostreams.stream_candidates``. Each realization that finishes records the fingerprint of its
settings (:func:`gaialake.streams.nullsky.fingerprint`) in the table ``null_sky_state``; a later run
with the same fingerprint is skipped (the stream-free sky is a calibration: it changes only
with its settings), ``null_sky.force: true`` re-runs it. Re-running is idempotent: every stage is.
"""
from __future__ import annotations

import sys

from gaialake import tables
from gaialake.cli import job_main, run_job
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists, write_table
from gaialake.io.spark import get_spark
from gaialake.log import get_logger
from gaialake.streams.nullsky import fingerprint, n_realizations, null_sky_conf

__all__ = ["run"]

log = get_logger("null_sky")


def _done_before(spark, null: Conf, key: str) -> bool:
    """True when a finished run of the same settings left its candidates and state."""
    if not (table_exists(spark, null.table_path(tables.NULL_SKY_STATE.name))
            and table_exists(spark, null.table_path(tables.STREAM_CANDIDATES.name))):
        return False
    return read_table(spark, null, tables.NULL_SKY_STATE).where(
        f"fingerprint = '{key}'").limit(1).count() > 0


def run(conf: Conf) -> dict:
    """Run the stream search's stages on each stream-free realization whose settings are not
    done; returns one summary per realization."""
    if not conf.get("null_sky.enabled", True):
        log.info("null_sky.enabled is false: no stream-free run")
        return {"skipped": True}
    return {"realizations": [_run_one(conf, null_sky_conf(conf, k))
                             for k in range(n_realizations(conf))]}


def _run_one(conf: Conf, null: Conf) -> dict:
    """One stream-free realization (``null``: its conf), skipped when done before."""
    key = fingerprint(null)
    spark = get_spark(null)
    warehouse = null.path("paths.warehouse")
    if not conf.get("null_sky.force", False) and _done_before(spark, null, key):
        log.info("stream-free sky in %s is up to date (settings %s): skipped "
                 "(null_sky.force=true re-runs it)", warehouse, key[:12])
        return {"warehouse": warehouse, "skipped": True, "fingerprint": key}
    log.info("stream-free sky: seed %s, warehouse %s", null.get("seed"), warehouse)
    summaries = {name: run_job(name, null) for name in conf.get("null_sky.stages")}
    found = summaries.get("find_streams", {})
    state = spark.createDataFrame([(key, found.get("run_id"), int(found.get("candidates") or 0))],
                                  tables.NULL_SKY_STATE.schema)
    write_table(state, null, tables.NULL_SKY_STATE)
    return {"warehouse": warehouse, "fingerprint": key, "seed": null.get("seed"),
            "stars": summaries.get("ingest", {}).get("rows_kept"),
            "candidates": found.get("candidates")}


if __name__ == "__main__":
    sys.exit(job_main("null_sky", sys.argv[1:]))

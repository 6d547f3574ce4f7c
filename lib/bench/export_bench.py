"""Export benchmark: ``gaialake export hats --table gaia_source`` on an ingested warehouse, to
set beside hats-import (which builds a HATS catalog from the bulk files).

:func:`bench_export` runs the command as its own process on the warehouse that
:func:`gaialake.bench.ingest_bench.bench_ingest` leaves under ``work`` and measures it.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from gaialake.bench.kit import dir_bytes, job_sets, measure_job
from gaialake.log import get_logger

__all__ = ["bench_export", "export_seconds"]

log = get_logger("bench")


def export_seconds(output: str) -> float | None:
    """Seconds of the export itself in its log (``export hats: ... in X s``: no JVM start)."""
    found = re.findall(r"export hats: \S+: \d+ rows in \d+ pixels .* in ([0-9.]+) s", output)
    return float(found[-1]) if found else None


def bench_export(work: Path, cores: int, hats: dict | None = None) -> dict:
    """``gaialake export hats`` of the gaia_source under ``work`` (``work/wh``, as
    :func:`~gaialake.bench.kit.job_sets` places it) into ``work/export_hats``: seconds and peak
    MiB of the whole process, the export's own seconds (``stage_s``), the catalog's rows
    (``hats_nrows``), bytes and pixels, rows/s per core of both times, and with ``hats`` (what
    :func:`~gaialake.bench.ingest_bench.bench_hats` returned) the ratios to hats-import's rows/s
    per core, whole process and stage (> 1: the export is faster)."""
    out = work / "export_hats"
    if out.exists():
        shutil.rmtree(out)
    m = measure_job("export", job_sets(work, ["hats", "--table", "gaia_source", "--out",
                                              str(out)]))
    stage = export_seconds(m.output)
    properties = (out / "hats.properties").read_text()
    rows = int(re.search(r"^hats_nrows=(\d+)$", properties, re.M)[1])
    result = {"seconds": m.seconds, "peak_mib": m.peak_mib, "stage_s": stage,
              "bytes": dir_bytes(out), "pixels": len(list(out.rglob("Npix=*.parquet"))),
              "rows": rows, "cores": cores, "rows_s_core": rows / m.seconds / cores,
              "stage_rows_s_core": rows / stage / cores if stage else None}
    if hats and "error" not in hats:
        result["ratio_wall"] = result["rows_s_core"] / hats["rows_s_core"]
        result["ratio_stage"] = (result["stage_rows_s_core"] / hats["pipeline_rows_s_core"]
                                 if stage else None)
    log.info("bench export hats: %d rows in %.1f s (%.1f s exporting), %.0f rows/s per core", rows,
             m.seconds, stage or float("nan"), result["rows_s_core"])
    return result

"""Scaling and whole-pipeline benchmarks: jobs run as their own processes, as a user runs them.

- :func:`bench_scaling`: generate / ingest / patches at each size of ``bench.scales``;
- :func:`bench_pipeline`: ``gaialake pipeline`` (what ``make run`` runs) on the default sky,
  seconds per stage.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

from gaialake.bench.ingest_bench import batch_seconds, ingest_profile
from gaialake.bench.kit import job_sets, job_summary, measure_job, stage_seconds
from gaialake.log import get_logger
from gaialake.sky.skyfiles import PARAMS_FILE

__all__ = ["bench_scaling", "bench_pipeline"]

log = get_logger("bench")


def bench_scaling(root: Path, sizes: Sequence[float]) -> list[dict]:
    """generate / ingest / patches at each size (stars), each in ``root/scale_<n>``: seconds and
    peak memory (MiB) of each process tree; a size stops at its first failed job."""
    rows = []
    for n in sizes:
        work = root / f"scale_{int(n)}"
        if work.exists():
            shutil.rmtree(work)
        row = {"n_stars": int(n)}
        for job in ("generate", "ingest", "patches"):
            extra = [f"--set=sky.n_stars={n}"] if job == "generate" else []
            try:
                m = measure_job(job, job_sets(work, extra))
            except RuntimeError as err:
                log.warning("scaling %s at %g failed: %s", job, n, str(err)[-300:])
                break
            row[f"{job}_s"], row[f"{job}_peak_mib"] = m.seconds, m.peak_mib
            if job == "ingest":
                row["ingest_stage_s"] = batch_seconds(m.output)
                row["ingest_profile"] = ingest_profile(m.output, m.seconds)
        rows.append(row)
        log.info("scaling %s", row)
    return rows


def bench_pipeline(root: Path) -> dict:
    """``gaialake pipeline`` (what ``make run`` runs) on the default sky in a scratch warehouse
    ``root/pipeline``: seconds per stage, wall seconds and peak memory (MiB) of the process tree,
    and the synthetic sky's scale (its stars per real star, for the projection)."""
    work = root / "pipeline"
    if work.exists():
        shutil.rmtree(work)
    m = measure_job("pipeline", job_sets(work))
    stages = stage_seconds(m.output)
    model = json.loads((work / "raw" / PARAMS_FILE).read_text())
    rows = {j: job_summary(m, j) for j in ("ingest", "patches", "anomaly")}
    return {"seconds": m.seconds, "peak_mib": m.peak_mib, "stages": stages,
            "sky_scale": float(model["scale"]), "rows": rows.get("ingest", {}).get("rows_kept"),
            "patches": rows.get("patches", {}).get("patches"),
            "patch_rows": rows.get("patches", {}).get("rows"),
            "anomaly_task_seconds": rows.get("anomaly", {}).get("task_seconds")}

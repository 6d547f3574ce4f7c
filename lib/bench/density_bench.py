"""Throughput of ``gaialake density`` on the catalog path (``make bench`` and
``gaialake bench --density``): stars/s per core of the whole job at several sizes and the
projection to the 6 M radial-velocity stars of Lim et al. (arXiv 2305.13358).

Per size N of ``bench.density_sizes`` (tracer stars drawn), in its own scratch folder and as a
user runs them (each its own process): ``gaialake density_mock`` writes the default validation
mock (the slab) as DR3 bulk files, ``gaialake ingest`` makes them ``gaia_source``, and
``gaialake density --set density.source=catalog`` measures it (truth on; a sample beyond
``density.catalog.max_rows`` RV stars streams to the flows through Petastorm; its median error
per band of height is kept beside the summary). ``bench.density_heldout`` ({mock: N}) adds the
mocks no setting was tuned on (the Plummer sphere), measured the same way and reported apart.
Stage seconds come from the density job's log (:data:`STAGES`); the stars are the catalog
sample's (RV stars passing the cuts, weighted by the selection function).

:func:`project_density` scales the largest size to ``n_stars`` by :data:`SCALING`: the catalog
read and the flows' training (fixed epochs) linear in the stars; the potential fit (``n_fit``
points, fixed steps), the grid and the write fixed. Per core: the job's seconds x the
machine's cores (Spark ``local[*]``; torch on ``density.torch_threads``). Nothing here asserts
on time.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Mapping, Sequence

from gaialake.bench.kit import job_sets, job_summary, measure_job
from gaialake.log import get_logger

__all__ = ["STREAMED", "STAGES", "SCALING", "density_stages", "band_medians",
           "project_density", "bench_density"]

log = get_logger("bench")

#: What the density job logs when its sample stays on the executors (streamed to the flows).
STREAMED = "reach the flows through Petastorm"
#: The density job's stages as its log names them.
STAGES = ("catalog sample", "train flows", "fit potentials", "density grid", "write density_grid")
#: How each stage's cost grows with the catalog's stars.
SCALING = {"catalog sample": "linear", "train flows": "linear", "fit potentials": "fixed",
           "density grid": "fixed", "write density_grid": "fixed"}

_DONE = re.compile(r"gaialake\.density: (.+?): done(?: ([\d,]+) rows)? in ([0-9.]+) s")


def density_stages(output: str) -> dict[str, dict]:
    """``{stage: {"seconds", "rows"}}`` of the :data:`STAGES` in a ``gaialake density`` log."""
    out: dict[str, dict] = {}
    for match in _DONE.finditer(output):
        if match[1] in STAGES:
            out[match[1]] = {"seconds": float(match[3]),
                             "rows": int(match[2].replace(",", "")) if match[2] else None}
    return out


def band_medians(summary: Mapping[str, float]) -> dict[str, float]:
    """The density job's median relative error per band of height (``rho_rel_err_median_<lo>_
    <hi>``: |z| in kpc for the slab, r for the sphere) as {"<lo>-<hi>": median}, by ``lo``."""
    from gaialake.density.measure import band_of

    bands = {band: float(value) for key, value in summary.items() if (band := band_of(key))}
    return {f"{lo:g}-{hi:g}": value for (lo, hi), value in sorted(bands.items())}


def project_density(stages: dict[str, dict], n_measured: int, cores: int,
                    n_stars: float = 6e6) -> dict:
    """The measured ``stages`` (on a catalog sample of ``n_measured`` stars, ``cores`` cores)
    scaled to ``n_stars`` by :data:`SCALING`: seconds per stage on the same cores, and the
    total seconds and core-hours."""
    factor = float(n_stars) / float(n_measured)
    per_stage = {name: st["seconds"] * (factor if SCALING[name] == "linear" else 1.0)
                 for name, st in stages.items()}
    total = sum(per_stage.values())
    return {"n_stars": float(n_stars), "factor": factor, "seconds": per_stage,
            "total_seconds": total, "core_hours": total * cores / 3600}


def bench_density(root: Path, sizes: Sequence[float], n_projected: float = 6e6,
                  heldout: Mapping[str, float] | None = None) -> dict:
    """Mock, ingest and measure the density of the default mock at each of ``sizes`` (tracer
    stars drawn) and of each ``heldout`` mock at its size, under ``root/density_<mock>_<n>``;
    returns per run the mock, the three jobs' seconds and peak MiB, the density job's stages,
    its sample's stars, stars/s per core and its error metrics, and the projection of the
    default mock's largest size to ``n_projected`` stars."""
    cores = os.cpu_count() or 1
    runs = [(None, n) for n in sizes] + [(m, n) for m, n in (heldout or {}).items()]
    rows = []
    for mock_name, n in runs:
        work = root / f"density_{mock_name or 'default'}_{int(n)}"
        if work.exists():
            shutil.rmtree(work)
        raw = work / "mock"
        base = job_sets(work, raw=raw) + ([f"--set=density.mock={mock_name}"]
                                          if mock_name else [])
        row: dict = {"n_drawn": int(n), "mock": mock_name or "default",
                     "heldout": mock_name is not None}
        try:
            mock = measure_job("density_mock", base + [
                f"--set=density.mock_catalog.raw={raw}",
                f"--set=density.mock_catalog.n_stars={int(n)}"])
            ing = measure_job("ingest", base)
            dens = measure_job("density", base + [
                "--set=density.source=catalog",
                f"--set=density.catalog.truth={raw / 'truth_density.json'}"])
        except RuntimeError as err:
            log.warning("density benchmark (%s, %g stars) failed: %s", row["mock"], n,
                        str(err)[-300:])
            rows.append({**row, "error": str(err)[-300:]})
            continue
        summary = job_summary(dens, "density")
        stages = density_stages(dens.output)
        n_sample = (stages.get("catalog sample") or {}).get("rows") or 0
        row.update({"mock_s": mock.seconds, "mock_peak_mib": mock.peak_mib,
                    "ingest_s": ing.seconds, "ingest_peak_mib": ing.peak_mib,
                    "rows_kept": job_summary(ing, "ingest").get("rows_kept"),
                    "density_s": dens.seconds, "density_peak_mib": dens.peak_mib,
                    "stages": stages, "n_sample": n_sample, "streamed": STREAMED in dens.output,
                    "stars_s_core": n_sample / dens.seconds / cores if n_sample else None,
                    "metrics": {k: summary.get(k) for k in (
                        "rho_rel_err_median", "rho_rel_err_median_inner", "coverage_1sigma",
                        "coverage_2sigma", "rho_dm_gev_cm3", "rho_dm_err_gev_cm3",
                        "rho_dm_true_gev_cm3", "rho_centre_msun_pc3",
                        "rho_centre_true_msun_pc3")},
                    "bands": band_medians(summary)})
        rows.append(row)
        log.info("bench density %s %d: %s", row["mock"], int(n),
                 {k: v for k, v in row.items() if k != "stages"})
    done = [r for r in rows if r.get("n_sample") and not r["heldout"]]
    projection = (project_density(done[-1]["stages"], done[-1]["n_sample"], cores, n_projected)
                  if done else None)
    return {"cores": cores, "sizes": rows, "projection": projection}

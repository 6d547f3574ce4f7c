"""Throughput of ``gaialake upsample`` (``make bench``): upsampled stars/s per core and the
projection to a large simulation snapshot.

:func:`bench_upsample` runs ``gaialake upsample`` as its own process (as a user runs it) on the
default particle set (``upsample.galaxy``) with ``upsample.dr3_out`` set, so every stage of
"simulation in, Gaia mock out" runs: particles, flow training, flow sampling (each star's
parent particle and label found in the sampling tasks), the EnBiD-like baseline, the 3-sample
test (the seed's protocol), the strong judge, and the DR3 bulk files. Stage seconds and rows
come from the job's log (:func:`upsample_stages`). The parent labels, which run inside the
sampling tasks, are also timed alone in this process (:func:`bench_labels`: the k-d tree over
the training particles, queried by as many stars as the mock holds).

:func:`project_upsample` scales the measured stages to ``n_particles`` (default 1e7) under the
stated assumptions (:data:`SCALING`): training at fixed epochs, sampling, labels, baseline and
DR3 files linear in particles; the judges on a fixed number of rows.

Per core: a stage's rows / (seconds x the cores it uses): ``upsample.torch_threads`` for the
flow's training (one model, one task), the machine's cores for the rest (Spark ``local[*]``,
the boosted trees' OpenMP threads). Nothing here asserts on time.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import numpy as np

from gaialake.bench.kit import job_sets, job_summary, measure_job
from gaialake.conf import Conf
from gaialake.log import get_logger

__all__ = ["STAGES", "SCALING", "upsample_stages", "bench_labels", "project_upsample",
           "bench_upsample"]

log = get_logger("bench")

#: The job's stages as its log names them (the DR3 stage's name ends with its folder).
STAGES = ("particles", "train flow", "sample flow", "baseline (EnBiD)", "3-sample test",
          "strong judge", "DR3 files")

#: How each stage's cost grows with the particles: ``linear`` (x particles) or ``fixed``.
SCALING = {"particles": "linear", "train flow": "linear", "sample flow": "linear",
           "labels": "linear", "baseline (EnBiD)": "linear", "3-sample test": "fixed",
           "strong judge": "fixed", "DR3 files": "linear"}

#: Stages of the flow's path from particles to DR3 files (the baseline and the judges check it).
FLOW_PATH = ("particles", "train flow", "sample flow", "DR3 files")

_DONE = re.compile(r"gaialake\.upsample: (.+?): done(?: ([\d,]+) rows)? in ([0-9.]+) s")


def upsample_stages(output: str) -> dict[str, dict]:
    """``{stage: {"seconds", "rows"}}`` of the :data:`STAGES` in a ``gaialake upsample`` log
    (``rows`` None where the stage logged no count); other lines are ignored."""
    out: dict[str, dict] = {}
    for match in _DONE.finditer(output):
        name = match[1].split(" -> ")[0]
        if name in STAGES:
            rows = int(match[2].replace(",", "")) if match[2] else None
            out[name] = {"seconds": float(match[3]), "rows": rows}
    return out


def bench_labels(conf: Conf, n_stars: int, seed: int) -> dict:
    """Seconds (one core) to give ``n_stars`` stars their parent particle and label: the
    :class:`gaialake.upsample.mock.ParentIndex` of the conf's training particles (k-d tree
    built inside the timing; labels drawn at random: the cost does not depend on them),
    queried by stars drawn around them (each a particle moved by 10 % of the particles'
    spread per coordinate: the density a flow sample has); ``seed`` draws them."""
    from gaialake.upsample.mock import PHASE_COLUMNS, ParentIndex, split_labels
    from gaialake.upsample.particles import particles_from_conf

    frame = particles_from_conf(conf).to_arrow().to_pandas()
    rng = np.random.default_rng(seed)
    split = split_labels(len(frame), float(conf.get("upsample.heldout_fraction")), 0.0,
                         conf.seed_for("upsample", "split"))
    frame["origin"] = np.where(rng.uniform(size=len(frame)) < 0.5, "in_situ", "accreted")
    training = frame[split != "heldout"]
    phase = training[list(PHASE_COLUMNS)].to_numpy()
    stars = phase[rng.integers(0, len(phase), n_stars)]
    stars = stars + rng.normal(size=stars.shape) * 0.1 * phase.std(axis=0)
    t0 = time.perf_counter()
    ParentIndex.from_frame(training).parents(stars)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rows": int(n_stars), "particles": int(len(training)),
            "cores": 1}


def project_upsample(stages: dict[str, dict], n_measured: int, n_particles: float = 1e7
                     ) -> dict:
    """The measured ``stages`` (``{stage: {"seconds", "cores"}}``, on ``n_measured``
    particles) scaled to a snapshot of ``n_particles`` by :data:`SCALING`: per stage the
    projected seconds on the same cores and core-hours; the total core-hours, those of the
    flow's path (:data:`FLOW_PATH`) and the training's hours (one task: its wall time)."""
    factor = float(n_particles) / float(n_measured)
    per_stage = {}
    for name, st in stages.items():
        scale = factor if SCALING[name] == "linear" else 1.0
        seconds = st["seconds"] * scale
        per_stage[name] = {"seconds": seconds, "core_hours": seconds * st["cores"] / 3600,
                           "scaling": SCALING[name]}
    # labels run inside the sampling tasks: timed apart, not added again
    total = sum(v["core_hours"] for k, v in per_stage.items() if k != "labels")
    flow = sum(per_stage[k]["core_hours"] for k in FLOW_PATH if k in per_stage)
    train_h = per_stage.get("train flow", {}).get("seconds", 0.0) / 3600
    return {"n_particles": float(n_particles), "factor": factor, "stages": per_stage,
            "core_hours": total, "flow_path_core_hours": flow, "train_hours": train_h}


def _rates(stages: dict[str, dict]) -> None:
    """Add ``rows_s_core`` (rows / seconds / cores) to each stage with rows, in place."""
    for st in stages.values():
        if st.get("rows") and st["seconds"] > 0:
            st["rows_s_core"] = st["rows"] / st["seconds"] / st["cores"]


def _budget_row(stages: dict[str, dict], summary: dict) -> dict:
    """The training budget's row of one run: training seconds, epochs run, best epoch and
    the particles-vs-flow AUCs (strong judge, seed's protocol)."""
    return {"train_s": stages.get("train flow", {}).get("seconds"),
            "epochs_run": summary.get("flow_epochs"), "best_epoch": summary.get("flow_best_epoch"),
            **{k: summary.get(k) for k in ("auc_particles_vs_flow_strong",
                                           "auc_particles_vs_flow")}}


def bench_upsample(root: Path, conf: Conf, n_projected: float = 1e7) -> dict:
    """Run ``gaialake upsample`` on the default particle set in ``root/upsample`` (DR3 files
    in its ``dr3``) and time the parent labels apart; returns the stages (seconds, rows,
    cores, rows/s per core), the job's summary (AUCs of both judges), upsampled stars/s per
    core, :func:`project_upsample` to ``n_projected`` particles and ``budget``: the default
    run and one more run (no DR3 files) per ``bench.upsample_epochs`` entry, the same flow
    trained that many epochs (training seconds, particles-vs-flow AUCs). ``conf``: the settings of
    the job's run (the job process reads conf/default.yaml; pass the default conf)."""
    work = root / "upsample"
    if work.exists():
        shutil.rmtree(work)
    cores = os.cpu_count() or 1
    m = measure_job("upsample", job_sets(work, [f"--set=upsample.dr3_out={work / 'dr3'}"]))
    summary = job_summary(m, "upsample")
    stages = upsample_stages(m.output)
    train_cores = int(conf.get("upsample.torch_threads"))
    for name, st in stages.items():
        st["cores"] = train_cores if name == "train flow" else cores
    n_mock = int(summary.get("mock_rows", {}).get("galaxyflow", 0))
    log.info("bench upsample: labels of %d stars", n_mock)
    stages["labels"] = bench_labels(conf, n_mock, conf.seed_for("bench_upsample", "labels"))
    _rates(stages)
    n_particles = int(summary.get("particles", 0))
    flow_core_s = sum(stages[k]["seconds"] * stages[k]["cores"] for k in FLOW_PATH
                      if k in stages)
    sample = stages.get("sample flow", {})
    budget = [{"epochs": int(conf.get("upsample.flow.epochs")), **_budget_row(stages, summary)}]
    for epochs in conf.get("bench.upsample_epochs") or []:
        log.info("bench upsample: the flow trained %d epochs", epochs)
        run = measure_job("upsample", job_sets(root / f"upsample_e{epochs}",
                                               [f"--set=upsample.flow.epochs={epochs}"]))
        budget.append({"epochs": int(epochs), **_budget_row(upsample_stages(run.output),
                                                            job_summary(run, "upsample"))})
    return {"seconds": m.seconds, "peak_mib": m.peak_mib, "cores": cores, "budget": budget,
            "n_particles": n_particles, "n_mock": n_mock, "dr3_rows": summary.get("dr3_rows"),
            "stages": stages,
            "aucs": {k: v for k, v in summary.items() if k.startswith("auc_")},
            "sample_stars_s_core": sample.get("rows_s_core"),
            "flow_path_stars_s_core": n_mock / flow_core_s if flow_core_s else None,
            "projection": project_upsample(stages, n_particles, n_projected)
            if n_particles else None}

"""``gaialake bench`` (``make bench``): measure, side by side in one run, and write BENCHMARKS.md.

Every figure is a ratio against a baseline measured in the same run on the same data:

- ingest: ``gaialake ingest`` vs pyarrow's CSV reader writing Parquet (the single-pass
  baseline) and vs hats-import (the HATS importer, in its own ``.venv-hats``) on the same
  synthetic bulk files; rows/s per core and peak memory (process trees); and the arrow writer
  against Spark's Delta writer (the slowest stage before it was fixed);
- training: Spark + Petastorm feeding vs a bare torch/zuko loop over in-memory tensors, and
  scoring stars/s per core (``gaialake.bench.train_bench`` when present);
- scaling: generate / ingest / patches at each size in ``bench.scales`` (time, peak memory);
- the full ``make run`` (``gaialake pipeline``) on the default sky, seconds per stage;
- projection: the full DR3 run from the measured per-core rates.

Each job runs as its own process (``python -m gaialake.cli <job>``), as a user runs it.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from gaialake.bench.ingest_bench import measure_hats_import
from gaialake.bench.kit import Measure, machine_line, measure_command, versions_line
from gaialake.cli import job_main
from gaialake.conf import REPO_ROOT, Conf
from gaialake.log import get_logger

log = get_logger("bench")


def _sets(work: Path, extra: list[str] = (), raw: Path | None = None) -> list[str]:
    """--set arguments that put a job's files under ``work`` (bulk files in ``raw``, default
    ``work/raw``)."""
    return [f"--set=paths.raw={raw or work / 'raw'}", f"--set=paths.warehouse={work / 'wh'}",
            f"--set=paths.metastore={work / 'ms'}", f"--set=paths.mlflow={work / 'mlruns'}",
            f"--set=paths.report={work / 'report'}", *extra]


def _job(job: str, sets: list[str]) -> Measure:
    return measure_command([sys.executable, "-m", "gaialake.cli", job, *sets], cwd=str(REPO_ROOT),
                           env={"PYTHONUNBUFFERED": "1"})


def _summary(m: Measure, job: str) -> dict:
    match = re.search(rf"job {job}: done in ([0-9.]+) s (\{{.*\}})", m.output)
    return {"job_seconds": float(match[1]), **json.loads(match[2])} if match else {}


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def bench_ingest(conf: Conf, work: Path, n_stars: float, cores: int) -> dict:
    """gaialake ingest vs pyarrow CSV -> Parquet, vs hats-import, and vs itself with Spark's
    Delta writer (``ingest.writer=spark``, before the arrow writer) on the same generated files."""
    if work.exists():
        shutil.rmtree(work)
    per_file = max(n_stars / (2 * cores), 1e4)
    sky = [f"--set=sky.n_stars={n_stars}", f"--set=sky.stars_per_file={per_file}"]
    gen = _job("generate", _sets(work, sky))
    files = sorted((work / "raw").glob("GaiaSource_*.csv.gz"))
    base = measure_command([sys.executable, "-m", "gaialake.bench.ingest_bench", "pyarrow",
                            str(work / "raw"), str(work / "pyarrow_parquet")])
    rows = int(base.output.strip().splitlines()[-1])
    ing = _job("ingest", _sets(work))
    summ = _summary(ing, "ingest")
    stage = _batch_seconds(ing.output)
    delta_bytes = _du(work / "wh" / "gaia_source")
    # before the fix of the slowest stage: Spark's Delta writer, same files, its own warehouse
    before = _job("ingest", _sets(work / "spark_writer", ["--set=ingest.writer=spark"],
                                  raw=work / "raw"))
    out = {
        "rows": rows, "files": len(files), "raw_bytes": sum(f.stat().st_size for f in files),
        "generate_s": gen.seconds, "generate_peak_mib": gen.peak_mib,
        "pyarrow_s": base.seconds, "pyarrow_peak_mib": base.peak_mib,
        "ingest_s": ing.seconds, "ingest_stage_s": stage, "ingest_peak_mib": ing.peak_mib,
        "ingest_rows_kept": summ.get("rows_kept"), "delta_bytes": delta_bytes,
        "parquet_bytes": _du(work / "pyarrow_parquet"), "cores": cores,
    }
    out["pyarrow_rows_s_core"] = rows / base.seconds / cores
    out["ingest_rows_s_core"] = rows / ing.seconds / cores
    out["ingest_stage_rows_s_core"] = rows / stage / cores if stage else None
    out["ratio_wall"] = out["ingest_rows_s_core"] / out["pyarrow_rows_s_core"]
    out["ratio_stage"] = (out["ingest_stage_rows_s_core"] / out["pyarrow_rows_s_core"]) if stage else None
    out["generate_stars_s_core"] = rows / gen.seconds / cores
    out["spark_writer_s"], out["spark_writer_stage_s"] = before.seconds, _batch_seconds(before.output)
    out["spark_writer_peak_mib"] = before.peak_mib
    out["writer_speedup_wall"] = before.seconds / ing.seconds
    out["writer_speedup_stage"] = (out["spark_writer_stage_s"] / stage
                                   if stage and out["spark_writer_stage_s"] else None)
    out["hats"] = bench_hats(work, rows, cores, out["ingest_rows_s_core"],
                             out["ingest_stage_rows_s_core"])
    return out


def _batch_seconds(output: str) -> float:
    """Seconds of an ingest's batches in its log (the stage, without the JVM's start)."""
    return sum(float(s) for s in re.findall(
        r"batch \d+/\d+ \(\d+ files\): done [0-9,]+ rows in ([0-9.]+) s", output))


def bench_hats(work: Path, rows: int, cores: int, ingest_rate: float, stage_rate: float | None) -> dict:
    """hats-import on the same files, with as many dask workers as cores: rows/s per core and
    gaialake's rates over it (> 1: gaialake faster); ``{"error": ...}`` when it cannot run."""
    hats = measure_hats_import(REPO_ROOT / ".venv-hats" / "bin" / "python", work / "raw",
                               work / "hats", cores)
    if "error" in hats:
        log.warning("hats-import not measured: %s", hats["error"])
        return hats
    hats["rows_s_core"] = rows / hats["seconds"] / cores
    hats["pipeline_rows_s_core"] = rows / hats["pipeline_s"] / cores
    hats["ratio_wall"] = ingest_rate / hats["rows_s_core"]
    hats["ratio_stage"] = stage_rate / hats["pipeline_rows_s_core"] if stage_rate else None
    hats["rows_match"] = hats["rows"] == rows
    return hats


def bench_scaling(conf: Conf, root: Path, sizes: list[float]) -> list[dict]:
    """generate / ingest / patches at each size: seconds and peak memory of each process tree."""
    rows = []
    for n in sizes:
        work = root / f"scale_{int(n)}"
        if work.exists():
            shutil.rmtree(work)
        row = {"n_stars": int(n)}
        for job in ("generate", "ingest", "patches"):
            extra = [f"--set=sky.n_stars={n}"] if job == "generate" else []
            try:
                m = _job(job, _sets(work, extra))
            except RuntimeError as err:
                log.warning("scaling %s at %g failed: %s", job, n, str(err)[-300:])
                break
            row[f"{job}_s"], row[f"{job}_peak_mib"] = m.seconds, m.peak_mib
        rows.append(row)
        log.info("scaling %s", row)
    return rows


def stage_seconds(output: str) -> dict[str, float]:
    """Seconds of each job in a pipeline's log, nested jobs as ``parent.job`` (null_sky's)."""
    stack: list[str] = []
    out: dict[str, float] = {}
    for line in output.splitlines():
        m = re.search(r"job (\w+): (start|done in ([0-9.]+) s)", line)
        if not m:
            continue
        if m[2] == "start":
            stack.append(m[1])
            continue
        name = ".".join(stack) if stack and stack[-1] == m[1] else m[1]
        out[name] = float(m[3])
        if stack and stack[-1] == m[1]:
            stack.pop()
    return out


def bench_pipeline(root: Path) -> dict:
    """``gaialake pipeline`` (what ``make run`` runs) on the default sky in a scratch warehouse:
    seconds per stage, wall and peak memory of the process tree, and the synthetic sky's scale
    (its stars per real star, for the projection)."""
    work = root / "pipeline"
    if work.exists():
        shutil.rmtree(work)
    m = measure_command([sys.executable, "-m", "gaialake.cli", "pipeline", *_sets(work)],
                        cwd=str(REPO_ROOT), env={"PYTHONUNBUFFERED": "1"})
    stages = stage_seconds(m.output)
    model = json.loads((work / "raw" / "sky_model.json").read_text())
    rows = {j: _summary(m, j) for j in ("ingest", "patches", "anomaly")}
    return {"seconds": m.seconds, "peak_mib": m.peak_mib, "stages": stages,
            "sky_scale": float(model["scale"]), "rows": rows.get("ingest", {}).get("rows_kept"),
            "patches": rows.get("patches", {}).get("patches"),
            "patch_rows": rows.get("patches", {}).get("rows"),
            "anomaly_task_seconds": rows.get("anomaly", {}).get("task_seconds")}


def bench_training(conf: Conf, n_rows: int) -> dict:
    if importlib.util.find_spec("gaialake.bench.train_bench") is None:
        return {}
    from gaialake.bench import train_bench as bench_train

    out = {"train": bench_train.run_train_bench(conf, n_rows)}
    if hasattr(bench_train, "run_score_bench"):
        out["score"] = bench_train.run_score_bench(conf, n_rows)
    return out


def run(conf: Conf) -> dict:
    root = Path(conf.path("bench.dir"))
    root.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    results: dict = {"machine": machine_line(), "versions": versions_line(),
                     "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    log.info("bench: ingest")
    results["ingest"] = bench_ingest(conf, root / "ingest", float(conf.get("bench.ingest_stars")), cores)
    log.info("bench: training and scoring")
    results.update(bench_training(conf, int(conf.get("bench.train_rows"))))
    log.info("bench: scaling")
    results["scaling"] = bench_scaling(conf, root, [float(s) for s in conf.get("bench.scales")])
    if conf.get("bench.pipeline", True):
        log.info("bench: make run (gaialake pipeline) per stage")
        results["pipeline"] = bench_pipeline(root)
    (root / "results.json").write_text(json.dumps(results, indent=1, default=str))
    from gaialake.bench.markdown import write_benchmarks_md

    path = write_benchmarks_md(results, REPO_ROOT / "BENCHMARKS.md")
    log.info("wrote %s", path)
    return {"benchmarks": str(path)}


if __name__ == "__main__":
    sys.exit(job_main("bench"))

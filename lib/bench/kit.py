"""Measuring for ``make bench``: wall time and peak RSS of a process tree, side by side."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import psutil

from gaialake.conf import REPO_ROOT

__all__ = ["Measure", "measure_command", "machine_line", "versions_line", "job_sets",
           "measure_job", "job_summary", "stage_seconds", "dir_bytes"]


@dataclass
class Measure:
    """Seconds and peak resident memory (MiB) of a command and all its children."""
    seconds: float
    peak_mib: float
    output: str = field(repr=False, default="")


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure_command(argv: list[str], env: dict | None = None, cwd: str | None = None,
                    timeout: float = 3600) -> Measure:
    """Run ``argv``, sampling the RSS of its process tree every 0.2 s; raises on failure."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], _tree_rss(ps))
            except psutil.Error:
                pass
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, _ = proc.communicate(timeout=timeout)
    done.set()
    thread.join()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({proc.returncode}):\n{out[-4000:]}")
    return Measure(seconds, peak[0] / 2**20, out)


def machine_line() -> str:
    """The machine: host name, cores, memory (GiB), architecture, Python version."""
    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.node()}: {os.cpu_count()} cores, {mem:.0f} GiB, {platform.machine()}, "
            f"Python {platform.python_version()}")


def versions_line() -> str:
    """The versions of the packages the measures depend on."""
    names = ["pyspark", "delta-spark", "pyarrow", "numpy", "torch", "zuko", "petastorm", "mlflow"]
    return ", ".join(f"{n} {version(n)}" for n in names)


def python() -> str:
    """The interpreter running this process (the one the jobs run under)."""
    return sys.executable


def job_sets(work: Path, extra: Sequence[str] = (), raw: Path | None = None) -> list[str]:
    """--set arguments that put a job's files under ``work`` (bulk files in ``raw``, default
    ``work/raw``), then ``extra``."""
    return [f"--set=paths.raw={raw or work / 'raw'}", f"--set=paths.warehouse={work / 'wh'}",
            f"--set=paths.metastore={work / 'ms'}", f"--set=paths.mlflow={work / 'mlruns'}",
            f"--set=paths.report={work / 'report'}", *extra]


def measure_job(job: str, sets: Sequence[str]) -> Measure:
    """Run ``gaialake <job>`` as its own process (``python -m gaialake.cli``), as a user runs it,
    and measure it."""
    return measure_command([sys.executable, "-m", "gaialake.cli", job, *sets], cwd=str(REPO_ROOT),
                           env={"PYTHONUNBUFFERED": "1"})


def job_summary(m: Measure, job: str) -> dict:
    """The job's seconds (``job_seconds``) and summary dict from its ``job <name>: done`` log
    line; empty when the log has none."""
    match = re.search(rf"job {job}: done in ([0-9.]+) s (\{{.*\}})", m.output)
    return {"job_seconds": float(match[1]), **json.loads(match[2])} if match else {}


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


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

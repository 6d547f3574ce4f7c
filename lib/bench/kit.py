"""Measuring for ``make bench``: wall time and peak RSS of a process tree, side by side."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib.metadata import version

import psutil

__all__ = ["Measure", "measure_command", "machine_line", "versions_line"]


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
    mem = psutil.virtual_memory().total / 2**30
    return (f"{platform.node()}: {os.cpu_count()} cores, {mem:.0f} GiB, {platform.machine()}, "
            f"Python {platform.python_version()}")


def versions_line() -> str:
    names = ["pyspark", "delta-spark", "pyarrow", "numpy", "torch", "zuko", "petastorm", "mlflow"]
    return ", ".join(f"{n} {version(n)}" for n in names)


def python() -> str:
    return sys.executable

"""``gaialake <job> [--conf FILE] [--set key=value ...]``, ``gaialake pipeline``, ``gaialake sql``,
``gaialake export``.

Each job is a module ``gaialake.jobs.<name>`` with ``run(conf) -> dict`` (a summary of counts);
the same module runs under ``spark-submit jobs/<name>.py --conf ... --set ...``.

A conf that fails its checks exits 2 with one line naming the key (before Spark starts). An
exception from Spark (py4j / pyspark) exits 1 with one line, the Java exception class and the
first line of its message, and the path of a log file with the full trace (``paths.logs``).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

from gaialake.conf import Conf, ConfError, load_conf
from gaialake.log import get_logger

__all__ = ["PIPELINE", "main", "job_main", "run_job", "guarded", "spark_error", "error_line",
           "failure_log_dir"]

log = get_logger("cli")

#: The pipeline's stages in order; a stage whose module does not exist yet is skipped.
PIPELINE = ["generate", "ingest", "patches", "anomaly", "null_sky", "find_streams", "accreted",
            "density", "upsample", "report"]
#: Commands that are not pipeline stages.
COMMANDS = ["sql", "export", "models", "score", "bench", "density_mock"]


def _job_module(name: str):
    mod = f"gaialake.jobs.{name}"
    if importlib.util.find_spec(mod) is None:
        return None
    return importlib.import_module(mod)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="YAML merged over conf/default.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a conf key (dotted), e.g. --set catalog.partition_order=3")
    parser.add_argument("--allow-empty", action="store_true",
                        help="let a job replace a table with 0 rows from an empty upstream "
                             "(sets run.allow_empty)")


def run_job(name: str, conf: Conf) -> dict:
    """Run one job module's ``run(conf)``; logs start/end with seconds."""
    module = _job_module(name)
    if module is None:
        raise SystemExit(f"gaialake: no job named {name!r}; jobs: {', '.join(available_jobs())}")
    t0 = time.perf_counter()
    log.info("job %s: start", name)
    summary = module.run(conf) or {}
    log.info("job %s: done in %.1f s %s", name, time.perf_counter() - t0,
             json.dumps(summary, default=str))
    return summary


def spark_error(exc: BaseException) -> BaseException | None:
    """``exc``, or the exception it was raised from, that comes from py4j or pyspark (a Java
    exception or a Spark error); None when there is none."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if any(c.__module__.split(".")[0] in ("py4j", "pyspark") for c in type(cur).__mro__):
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def _first_line(text: str, limit: int = 500) -> str:
    line = next((ln.strip() for ln in str(text).splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[:limit] + " ..."


def error_line(exc: BaseException) -> str:
    """``<Java exception class>: <first line of its message>`` of a py4j / pyspark exception
    (the Python class when there is no Java exception behind it)."""
    java = getattr(exc, "java_exception", None) or getattr(exc, "_origin", None)
    name, message = type(exc).__name__, None
    if java is not None:
        try:
            name, message = java.getClass().getName(), java.getMessage()
        except Exception:   # a JVM that is gone: the Python side's text
            pass
    if not message:
        try:
            message = str(exc)
        except Exception:
            message = ""
    return f"{name}: {_first_line(message)}"


def failure_log_dir(conf: Conf) -> Path:
    """Where failed jobs' full traces go: ``paths.logs``, else ``<paths.warehouse>/_logs``; a
    temp folder when that is not a local path (s3a://, dbfs:)."""
    base = (conf.path("paths.logs") if conf.get("paths.logs", None)
            else f"{conf.path('paths.warehouse').rstrip('/')}/_logs")
    if "://" in base or base.startswith("dbfs:"):
        return Path(tempfile.gettempdir()) / "gaialake-logs"
    return Path(base)


def _write_failure_log(conf: Conf, name: str, exc: BaseException, cause: BaseException) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    text = [f"gaialake {name} failed at {time.strftime('%Y-%m-%d %H:%M:%S %z')}\n",
            f"command: {' '.join(sys.argv)}\n", f"error: {error_line(cause)}\n\n",
            *traceback.format_exception(type(exc), exc, exc.__traceback__)]
    jvm = getattr(cause, "_stackTrace", None)
    if jvm:
        text.append(f"\nJVM stacktrace:\n{jvm}\n")
    file_name = f"{name.replace(' ', '-')}-{stamp}-{os.getpid()}.log"
    for directory in (failure_log_dir(conf), Path(tempfile.gettempdir()) / "gaialake-logs"):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            path = directory / file_name
            path.write_text("".join(text))
            return path
        except OSError:
            continue
    raise OSError(f"cannot write the failure log {file_name}")


def _quiet_pyspark_error_loggers() -> None:
    """PySpark logs each SQL / DataFrame error as JSON on stderr when it is raised; the CLI
    reports the error itself (one line and the log file)."""
    if importlib.util.find_spec("pyspark.logger") is None:
        return
    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL + 1)


def guarded(name: str, conf: Conf, fn: Callable[[], int]) -> int:
    """``fn()``; an exception from Spark (py4j / pyspark, or one raised from it) becomes one
    line on stderr and a log file with the full trace (:func:`failure_log_dir`), and 1 is
    returned. Other exceptions propagate."""
    _quiet_pyspark_error_loggers()
    try:
        return fn()
    except Exception as exc:
        cause = spark_error(exc)
        if cause is None:
            raise
        path = _write_failure_log(conf, name, exc, cause)
        line = error_line(cause)
        if cause is not exc:
            line = f"{type(exc).__name__}: {_first_line(str(exc))} (from {line})"
        print(f"gaialake {name} failed: {line}\n  full trace: {path}", file=sys.stderr,
              flush=True)
        return 1


def _load(name: str, args: argparse.Namespace) -> Conf | None:
    """The conf of the parsed ``--conf``/``--set``/``--allow-empty``, or None after one line on
    stderr when it fails its checks."""
    try:
        conf = load_conf(args.conf, args.set)
    except (ConfError, FileNotFoundError) as err:
        print(f"gaialake {name}: {err}", file=sys.stderr, flush=True)
        return None
    if args.allow_empty:
        conf.set("run.allow_empty", True)
    return conf


def available_jobs() -> list[str]:
    """The jobs and commands whose module exists, pipeline order first."""
    return [j for j in PIPELINE + COMMANDS if _job_module(j) is not None]


def _run_stage(name: str, conf: Conf) -> int:
    run_job(name, conf)
    return 0


def _pipeline(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="gaialake pipeline",
                                     description="Run the stages in order: " + ", ".join(PIPELINE))
    _common(parser)
    parser.add_argument("--from", dest="start", choices=PIPELINE, help="first stage")
    parser.add_argument("--to", dest="stop", choices=PIPELINE, help="last stage")
    args = parser.parse_args(argv)
    conf = _load("pipeline", args)
    if conf is None:
        return 2
    stages = PIPELINE[PIPELINE.index(args.start) if args.start else 0:
                      PIPELINE.index(args.stop) + 1 if args.stop else None]
    t0 = time.perf_counter()
    for name in stages:
        if _job_module(name) is None:
            log.info("stage %s: not built yet, skipped", name)
            continue
        rc = guarded(f"pipeline {name}", conf, lambda name=name: _run_stage(name, conf))
        if rc:
            return rc
    log.info("pipeline done in %.1f s", time.perf_counter() - t0)
    return 0


def job_main(name: str, argv: Sequence[str] | None = None) -> int:
    """Entry point of one job: parse ``--conf``/``--set`` and run it."""
    module = _job_module(name)
    parser = argparse.ArgumentParser(prog=f"gaialake {name}",
                                     description=(module.__doc__ or "").strip().split("\n")[0])
    _common(parser)
    if hasattr(module, "add_arguments"):
        module.add_arguments(parser)
    args = parser.parse_args(argv)
    conf = _load(name, args)
    if conf is None:
        return 2

    def run() -> int:
        if hasattr(module, "main"):
            return int(module.main(conf, args) or 0)
        run_job(name, conf)
        return 0

    return guarded(name, conf, run)


def main(argv: Sequence[str] | None = None) -> int:
    """``gaialake <job> ...`` / ``gaialake pipeline ...``: run it; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: gaialake <job> [--conf FILE] [--set key=value ...]\n"
              "       gaialake pipeline [--from STAGE] [--to STAGE]\n"
              f"jobs: {', '.join(available_jobs())}")
        return 0
    name, rest = argv[0], argv[1:]
    if name == "pipeline":
        return _pipeline(rest)
    if _job_module(name) is None:
        print(f"gaialake: no job named {name!r}; jobs: {', '.join(available_jobs())}",
              file=sys.stderr)
        return 2
    return job_main(name, rest)


if __name__ == "__main__":
    sys.exit(main())

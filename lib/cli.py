"""``gaialake <job> [--conf FILE] [--set key=value ...]``, ``gaialake pipeline``, ``gaialake sql``.

Each job is a module ``gaialake.jobs.<name>`` with ``run(conf) -> dict`` (a summary of counts);
the same module runs under ``spark-submit jobs/<name>.py --conf ... --set ...``.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from typing import Sequence

from gaialake.conf import Conf, load_conf
from gaialake.log import get_logger

__all__ = ["PIPELINE", "main", "job_main", "run_job"]

log = get_logger("cli")

#: The pipeline's stages in order; a stage whose module does not exist yet is skipped.
PIPELINE = ["generate", "ingest", "patches", "anomaly", "null_sky", "find_streams", "accreted",
            "density", "upsample", "report"]
#: Commands that are not pipeline stages.
COMMANDS = ["sql", "models", "score", "bench"]


def _job_module(name: str):
    mod = f"gaialake.jobs.{name}"
    if importlib.util.find_spec(mod) is None:
        return None
    return importlib.import_module(mod)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conf", help="YAML merged over conf/default.yaml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a conf key (dotted), e.g. --set catalog.partition_order=3")


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


def available_jobs() -> list[str]:
    """The jobs and commands whose module exists, pipeline order first."""
    return [j for j in PIPELINE + COMMANDS if _job_module(j) is not None]


def _pipeline(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="gaialake pipeline",
                                     description="Run the stages in order: " + ", ".join(PIPELINE))
    _common(parser)
    parser.add_argument("--from", dest="start", choices=PIPELINE, help="first stage")
    parser.add_argument("--to", dest="stop", choices=PIPELINE, help="last stage")
    args = parser.parse_args(argv)
    conf = load_conf(args.conf, args.set)
    stages = PIPELINE[PIPELINE.index(args.start) if args.start else 0:
                      PIPELINE.index(args.stop) + 1 if args.stop else None]
    t0 = time.perf_counter()
    for name in stages:
        if _job_module(name) is None:
            log.info("stage %s: not built yet, skipped", name)
            continue
        run_job(name, conf)
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
    conf = load_conf(args.conf, args.set)
    if hasattr(module, "main"):
        return int(module.main(conf, args) or 0)
    run_job(name, conf)
    return 0


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

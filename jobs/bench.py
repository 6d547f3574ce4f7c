"""``gaialake bench`` (``make bench``): measure, side by side in one run, and write BENCHMARKS.md.

Every figure is a ratio against a baseline measured in the same run on the same data:

- ingest (:mod:`gaialake.bench.ingest_bench`): ``gaialake ingest`` vs pyarrow's CSV reader
  writing Parquet (the single-pass baseline) and vs hats-import (the HATS importer,
  ``lib/bench/hatsimport_run.py`` run by ``.venv-hats/bin/python``) on the same synthetic bulk
  files; rows/s per core and peak memory (process trees); and the arrow writer against Spark's
  Delta writer (the slowest stage before it was fixed);
- training: Spark + Petastorm feeding vs a bare torch/zuko loop over in-memory tensors, and
  scoring stars/s per core (:mod:`gaialake.bench.train_bench`);
- scaling: generate / ingest / patches at each size in ``bench.scales`` (time, peak memory);
- the full ``make run`` (``gaialake pipeline``) on the default sky, seconds per stage
  (:mod:`gaialake.bench.pipeline_bench`);
- projection: the full DR3 run from the measured per-core rates;
- upsampling (:mod:`gaialake.bench.upsample_bench`): ``gaialake upsample`` per stage on the
  default particle set, upsampled stars/s per core and the projection to a 1e7-particle
  snapshot (its own section of BENCHMARKS.md; ``gaialake bench --upsample`` runs it alone);
- density (:mod:`gaialake.bench.density_bench`): ``gaialake density`` on the catalog path
  (mock -> ingest -> density) at ``bench.density_sizes`` and the held-out mocks of
  ``bench.density_heldout``, stars/s per core and the projection
  to 6 M stars (its own section; ``gaialake bench --density`` runs it alone).

Each job runs as its own process (``python -m gaialake.cli <job>``), as a user runs it.

``gaialake bench --streams --conf conf/bench_streams.yaml`` (``make bench-streams``) runs the
real-density stream benchmark instead (:mod:`gaialake.bench.streams_bench`) and writes its
section of BENCHMARKS.md; after it, ``gaialake bench --methods --conf conf/bench_streams.yaml``
scores the signal regions holding GD-1 on its skies with each score method side by side
(:mod:`gaialake.bench.methods_bench`, its own section).
"""
from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from gaialake.bench.density_bench import bench_density
from gaialake.bench.ingest_bench import bench_ingest, bench_ingest_at_scale
from gaialake.bench.kit import machine_line, versions_line
from gaialake.bench.markdown import (write_benchmarks_md, write_density_section,
                                     write_methods_section, write_pipeline_section,
                                     write_streams_section, write_upsample_section)
from gaialake.bench.methods_bench import bench_methods
from gaialake.bench.pipeline_bench import bench_pipeline, bench_scaling
from gaialake.bench.streams_bench import bench_streams, streams_sky_conf
from gaialake.bench.train_bench import run_score_bench, run_train_bench
from gaialake.bench.upsample_bench import bench_upsample
from gaialake.cli import job_main, run_job
from gaialake.conf import REPO_ROOT, Conf
from gaialake.log import get_logger
from gaialake.streams.nullsky import null_sky_conf

log = get_logger("bench")


def run(conf: Conf) -> dict:
    """Measure everything under ``bench.dir`` (``results.json`` there) and write BENCHMARKS.md;
    returns its path."""
    root = Path(conf.path("bench.dir"))
    root.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    results: dict = {"machine": machine_line(), "versions": versions_line(),
                     "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    log.info("bench: ingest")
    results["ingest"] = bench_ingest(root / "ingest", float(conf.get("bench.ingest_stars")), cores)
    log.info("bench: training and scoring")
    train_rows = int(conf.get("bench.train_rows"))
    results["train"] = run_train_bench(conf, train_rows)
    results["score"] = run_score_bench(conf, train_rows)
    log.info("bench: scaling")
    results["scaling"] = bench_scaling(root, [float(s) for s in conf.get("bench.scales")])
    largest = next((r for r in reversed(results["scaling"]) if "ingest_s" in r), None)
    if largest is not None:
        log.info("bench: ingest vs pyarrow and hats-import at %d stars", largest["n_stars"])
        results["ingest_at_scale"] = bench_ingest_at_scale(
            root / f"scale_{largest['n_stars']}", largest, cores)
    if conf.get("bench.pipeline", True):
        log.info("bench: make run (gaialake pipeline) per stage")
        results["pipeline"] = bench_pipeline(root)
    results["upsample"] = _upsample(conf, root, results)
    results["density"] = _density(conf, root, results)
    (root / "results.json").write_text(json.dumps(results, indent=1, default=str))
    path = write_benchmarks_md(results, REPO_ROOT / "BENCHMARKS.md")
    write_upsample_section(results["upsample"], path)
    write_density_section(results["density"], path)
    log.info("wrote %s", path)
    return {"benchmarks": str(path)}


def _upsample(conf: Conf, root: Path, results: dict) -> dict:
    """The upsampling benchmark (or why it failed), with the run's date and machine."""
    log.info("bench: gaialake upsample per stage")
    try:
        measured = bench_upsample(root, conf)
    except RuntimeError as err:
        log.warning("upsample benchmark failed: %s", str(err)[-300:])
        measured = {"error": str(err)[-300:]}
    return {**measured, "date": results["date"], "machine": results["machine"]}


def _density(conf: Conf, root: Path, results: dict) -> dict:
    """The density throughput benchmark at ``bench.density_sizes``, with the run's date and
    machine."""
    log.info("bench: gaialake density on the catalog path")
    measured = bench_density(root, [float(n) for n in conf.get("bench.density_sizes")],
                             heldout={str(m): float(n) for m, n in
                                      (conf.get("bench.density_heldout") or {}).items()})
    return {**measured, "date": results["date"], "machine": results["machine"]}


def add_arguments(parser) -> None:
    """``--streams``: the real-density stream benchmark instead of the rest; ``--upsample``,
    ``--density`` and ``--pipeline``: the upsampling or density throughput benchmark, or
    ``make run`` per stage, alone."""
    parser.add_argument("--streams", action="store_true",
                        help="run the real-density stream benchmark (make bench-streams)")
    parser.add_argument("--upsample", action="store_true",
                        help="run the upsampling benchmark alone (its BENCHMARKS.md section)")
    parser.add_argument("--density", action="store_true",
                        help="run the density throughput benchmark alone (its section)")
    parser.add_argument("--methods", action="store_true",
                        help="score methods side by side on make bench-streams' skies (its "
                             "section; run bench-streams first, with the same --conf)")
    parser.add_argument("--pipeline", action="store_true",
                        help="time make run (gaialake pipeline) per stage alone (its section)")


def main(conf: Conf, args) -> int:
    """``gaialake bench [--streams | --methods | --upsample | --density | --pipeline]``."""
    if args.pipeline:
        root = Path(conf.path("bench.dir"))
        root.mkdir(parents=True, exist_ok=True)
        results = {**bench_pipeline(root), "machine": machine_line(),
                   "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        (root / "pipeline.json").write_text(json.dumps(results, indent=1, default=str))
        log.info("wrote %s", write_pipeline_section(results, REPO_ROOT / "BENCHMARKS.md"))
        return 0
    if args.density:
        root = Path(conf.path("bench.dir"))
        root.mkdir(parents=True, exist_ok=True)
        stamp = {"machine": machine_line(),
                 "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        results = _density(conf, root, stamp)
        (root / "density.json").write_text(json.dumps(results, indent=1, default=str))
        log.info("wrote %s", write_density_section(results, REPO_ROOT / "BENCHMARKS.md"))
        return 0
    if args.upsample:
        root = Path(conf.path("bench.dir"))
        stamp = {"machine": machine_line(),
                 "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        results = _upsample(conf, root, stamp)
        root.mkdir(parents=True, exist_ok=True)
        (root / "upsample.json").write_text(json.dumps(results, indent=1, default=str))
        log.info("wrote %s", write_upsample_section(results, REPO_ROOT / "BENCHMARKS.md"))
        return 0
    if args.methods:
        stream_conf = streams_sky_conf(args.conf, args.set,
                                       Path(conf.path("bench.dir")) / "streams")
        results = {**bench_methods(stream_conf, Path(stream_conf.path("paths.warehouse")),
                                   Path(null_sky_conf(stream_conf, 0).path("paths.warehouse"))),
                   "machine": machine_line(),
                   "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        out = Path(conf.path("bench.dir")) / "streams" / "methods.json"
        out.write_text(json.dumps(results, indent=1, default=str))
        log.info("wrote %s", write_methods_section(results, REPO_ROOT / "BENCHMARKS.md"))
        return 0
    if not args.streams:
        run_job("bench", conf)
        return 0
    root = Path(conf.path("bench.dir")) / "streams"
    results = bench_streams(args.conf, args.set, root)
    results.update({"machine": machine_line(), "versions": versions_line(),
                    "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
    root.mkdir(parents=True, exist_ok=True)
    (root / "results.json").write_text(json.dumps(results, indent=1, default=str))
    log.info("wrote %s", write_streams_section(results, REPO_ROOT / "BENCHMARKS.md"))
    return 0


if __name__ == "__main__":
    sys.exit(job_main("bench"))

"""The real-density stream benchmark (``make bench-streams``): GD-1 at DR3's own density.

A stretch of sky around two overlapping patches on GD-1's track (``conf/bench_streams.yaml``) is
generated at the model's natural star count for the region (``sky.n_stars`` is capped at
:func:`dr3_density`: no thinning unless a smaller ``sky.n_stars`` is asked for, which the
results record as ``scale``), with GD-1 at its literature member count; the same area is
generated stream-free from ``null_sky.realizations`` seeds (:func:`gaialake.streams.nullsky.
null_sky_conf`: realization k has seed ``null_sky.set.seed + k`` and its own paths). Each sky
runs generate, ingest, patches, anomaly and find_streams, each job as its own process
(:func:`gaialake.bench.kit.measure_job`); the stream sky's find_streams reads the stream-free
skies' candidates (``find_streams.null_candidates: auto``) for its threshold and false-positive
rate. :func:`patch_rows` turns the tables into one row per patch.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from gaialake import tables
from gaialake.bench.kit import job_sets, job_summary, measure_job
from gaialake.conf import Conf
from gaialake.log import get_logger
from gaialake.streams.nullsky import n_realizations, null_sky_conf
from gaialake.streams.recovery import pooled_recovery

__all__ = ["STAGES", "dr3_density", "null_sets", "streamed_groups", "patch_rows",
           "reported_method", "streams_sky_conf", "bench_streams"]

log = get_logger("bench")

STAGES = ("generate", "ingest", "patches", "anomaly", "find_streams")
#: Keys of a stream-free realization's conf passed to its jobs (beyond ``null_sky.set``'s).
NULL_KEYS = ("paths.raw", "paths.warehouse", "paths.metastore", "paths.mlflow", "paths.report",
             "catalog.database", "seed", "find_streams.null_candidates")


def dr3_density(conf: Conf) -> float:
    """The model's natural star count (G < the sky's limit) in ``sky.region``: DR3's density."""
    from gaialake.sky.skymodel import build_sky_model

    return float(build_sky_model(conf).natural_count)


def _set(key: str, value) -> str:
    """One ``--set`` argument (non-strings as JSON, which the conf's YAML reads)."""
    return f"--set={key}={value if isinstance(value, str) else json.dumps(value)}"


def reported_method(conf: Conf) -> str:
    """The method whose candidates the bench reports: ``union`` where ``find_streams.union``
    lists methods (their lines merged), else ``streams.method``."""
    from gaialake.streams.candidates import UNION_METHOD

    return UNION_METHOD if conf.get("find_streams.union", []) else str(conf.get("streams.method"))


def null_sets(conf: Conf, realization: int) -> list[str]:
    """``--set`` arguments that make a job run stream-free realization ``realization`` of the
    sky ``conf`` describes (its seed, paths, database and ``null_sky.set``)."""
    null = null_sky_conf(conf, realization)
    keys = list(NULL_KEYS) + [str(k) for k in (conf.get("null_sky.set") or {})
                              if str(k) not in NULL_KEYS]
    return [_set(k, null.path(k) if k.startswith("paths.") else null.get(k)) for k in keys]


def streamed_groups(output: str) -> pd.DataFrame:
    """The groups anomaly trained through the streaming path, from its log: patch_id, pm_axis,
    sr_index, rows, seconds (one row per training: a group retrained K times appears K
    times)."""
    found = re.findall(r"stream group patch (\d+) (\w+) sr(\d+)(?: retraining \d+)? "
                       r"\(([\d,]+) rows\): done"
                       r"(?: [\d,]+ rows)? in ([0-9.]+) s", output)
    return pd.DataFrame([(int(p), a, int(s), int(n.replace(",", "")), float(t))
                         for p, a, s, n, t in found],
                        columns=["patch_id", "pm_axis", "sr_index", "rows", "seconds"])


def patch_rows(patch_stars: pd.DataFrame, scores: pd.DataFrame, streamed: pd.DataFrame,
               recovery: pd.DataFrame | None) -> list[dict]:
    """One row per patch: stars after the cuts (all, fiducial), groups scored, groups through
    the streaming path (their largest row count) and, on a stream sky, the stream's purity and
    completeness (``recovery``: :func:`gaialake.streams.recovery.patch_recovery`)."""
    stars = patch_stars.groupby("patch_id").agg(stars=("source_id", "size"),
                                                fiducial=("fiducial", "sum"))
    groups = scores.drop_duplicates(["patch_id", "pm_axis", "sr_lo"]).groupby("patch_id").size()
    rec = recovery.set_index("patch_id") if recovery is not None else None
    rows = []
    for patch_id, s in stars.iterrows():
        mine = streamed[streamed["patch_id"] == patch_id]
        row = {"patch_id": int(patch_id), "stars": int(s["stars"]),
               "fiducial": int(s["fiducial"]), "groups": int(groups.get(patch_id, 0)),
               "groups_streamed": int(len(mine)),
               "max_streamed_rows": int(mine["rows"].max()) if len(mine) else 0,
               "streamed_seconds": float(mine["seconds"].sum())}
        if rec is not None and patch_id in rec.index:
            row.update({k: float(rec.loc[patch_id, k]) for k in ("n_truth", "n_true", "purity",
                                                          "completeness")})
        rows.append(row)
    return rows


def _run_sky(name: str, sets: Sequence[str]) -> dict:
    """The five stages on one sky, each its own process: seconds and peak MiB per job and the
    anomaly log's streamed groups; stops at the first failed job (``error``)."""
    out: dict = {"name": name, "jobs": {}}
    for job in STAGES:
        try:
            m = measure_job(job, sets)
        except RuntimeError as err:
            log.warning("bench-streams: %s %s failed: %s", name, job, str(err)[-300:])
            out["error"] = f"{job}: {str(err)[-300:]}"
            return out
        out["jobs"][job] = {"seconds": m.seconds, "peak_mib": m.peak_mib,
                            **{k: v for k, v in job_summary(m, job).items()
                               if isinstance(v, (int, float, str))}}
        if job == "anomaly":
            out["streamed"] = streamed_groups(m.output).to_dict(orient="records")
        log.info("bench-streams: %s %s %.0f s, peak %.0f MiB", name, job, m.seconds, m.peak_mib)
    return out


def _tables(warehouse: Path, names: Sequence[str]) -> dict[str, pd.DataFrame]:
    from gaialake.io.deltaread import read_delta

    return {n: read_delta(str(warehouse / n)).to_pandas() for n in names
            if (warehouse / n / "_delta_log").exists()}


def _sky_patches(sky: dict, warehouse: Path, stream: str | None, method: str
                 ) -> tuple[list[dict], dict[str, dict]]:
    """Per-patch rows of one finished sky, read from its warehouse, with the stream's recovery
    by the above-threshold candidates of ``method``; and, on a stream sky, the recovery of
    ``method`` and every method with candidates: method -> purity, completeness (pooled over
    the patches, :func:`pooled_recovery`) and purity_once, completeness_once (each star once,
    :func:`recovery_once`)."""
    from gaialake.streams.recovery import above_members, recovery_by_method, recovery_once

    t = _tables(warehouse, [tables.PATCH_STARS.name, tables.ANOMALY_SCORES.name,
                            tables.STREAM_CANDIDATES.name, tables.STREAM_MEMBERS.name,
                            tables.TRUTH_STREAMS.name])
    if tables.ANOMALY_SCORES.name not in t:
        return [], {}
    by_method: dict[str, pd.DataFrame] = {}
    summary: dict[str, dict] = {}
    if stream is not None and tables.STREAM_CANDIDATES.name in t:
        cands, members = t[tables.STREAM_CANDIDATES.name], t[tables.STREAM_MEMBERS.name]
        truth, stars = t[tables.TRUTH_STREAMS.name], t[tables.PATCH_STARS.name]
        by_method = recovery_by_method(cands, members, truth, stars, stream, [method])
        for m, rec in by_method.items():
            once = recovery_once(above_members(cands, members, m), truth, stars, stream)
            summary[m] = dict(zip(("purity", "completeness", "purity_once", "completeness_once"),
                                  (*pooled_recovery(rec.to_dict(orient="records")), *once)))
    rows = patch_rows(t[tables.PATCH_STARS.name], t[tables.ANOMALY_SCORES.name],
                      pd.DataFrame(sky.get("streamed", []),
                                   columns=["patch_id", "pm_axis", "sr_index", "rows", "seconds"]),
                      by_method.get(method) if stream is not None else None)
    return rows, summary


def streams_sky_conf(conf_file: str | None, sets: Sequence[str], root: Path) -> Conf:
    """The conf of :func:`bench_streams`' stream sky under ``root`` (its paths and settings;
    ``sky.n_stars`` as given, before the bench caps it): what ``gaialake bench --methods``
    reads the finished skies with."""
    from gaialake.conf import load_conf

    work = root / "streams"
    return load_conf(conf_file, [*sets, *(a.split("=", 1)[1] for a in job_sets(work))])


def bench_streams(conf_file: str | None, sets: Sequence[str], root: Path,
                  stream: str = "gd1") -> dict:
    """Run the benchmark under ``root`` (wiped first) with the conf of ``conf_file`` and the
    dotted ``sets`` (passed on to every job). Returns the settings, each sky's jobs and
    per-patch rows, and the stream sky's false-positive summary of the reported method
    (:func:`reported_method`) with every method's pooled purity and completeness."""
    from gaialake.conf import load_conf

    if root.exists():
        shutil.rmtree(root)
    work = root / "streams"
    first = streams_sky_conf(conf_file, sets, root)
    natural = dr3_density(first)
    n_stars = min(float(first.get("sky.n_stars")), natural)
    base = [a.split("=", 1)[1] for a in job_sets(work, [_set("sky.n_stars", n_stars)])]
    sky_conf = load_conf(conf_file, [*sets, *base])
    args = [*([f"--conf={conf_file}"] if conf_file else []),
            *(f"--set={a}" for a in [*sets, *base])]
    method = reported_method(sky_conf)
    results: dict = {"n_stars": n_stars, "natural_count": natural, "scale": n_stars / natural,
                     "region": sky_conf.get("sky.region"), "method": method, "stream": stream,
                     "union": list(sky_conf.get("find_streams.union", []) or []),
                     "max_group_rows": sky_conf.get("streams.max_group_rows"),
                     "sample_rows": sky_conf.get("streams.stream.sample_rows"),
                     "max_epochs": sky_conf.get("streams.train.max_epochs"),
                     "top_n": sky_conf.get("find_streams.top_n"), "skies": []}
    for k in range(n_realizations(sky_conf)):
        null = null_sky_conf(sky_conf, k)
        sky = _run_sky(f"stream-free {k} (seed {null.get('seed')})",
                       [*args, *null_sets(sky_conf, k)])
        sky["patches"] = _sky_patches(sky, Path(null.path("paths.warehouse")), None, method)[0]
        results["skies"].append(sky)
    sky = _run_sky(f"{stream} (seed {sky_conf.get('seed')})", args)
    sky["patches"], results["recovery"] = _sky_patches(
        sky, Path(sky_conf.path("paths.warehouse")), stream, method)
    results["skies"].append(sky)
    summary = Path(sky_conf.report_path("find_streams.plots_dir")) / "summary.json"
    if summary.exists():
        results["false_positive"] = json.loads(summary.read_text())["false_positive"].get(method)
    return results

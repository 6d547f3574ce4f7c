"""Ingest benchmark: ``gaialake ingest`` vs two baselines on the same bulk files.

:func:`bench_ingest` generates the files, runs the baselines and ``gaialake ingest`` (twice:
the arrow writer, then Spark's Delta writer in its own warehouse) and returns the measures.

- pyarrow CSV -> Parquet, the single-pass floor: ``python -m gaialake.bench.ingest_bench pyarrow RAW
  OUT`` (pyarrow's multithreaded CSV reader, types from the ECSV header, one Parquet file per
  bulk file);
- hats-import (the HATS/LSDB importer), the HEALPix-partitioned peer: ``lib/bench/hatsimport_run.py`` run
  by the python of its own virtual environment (:func:`measure_hats_import`).
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gaialake import tables
from gaialake.bench.export_bench import bench_export
from gaialake.bench.kit import dir_bytes, job_sets, job_summary, measure_command, measure_job
from gaialake.conf import REPO_ROOT
from gaialake.io.bulkfile import read_header
from gaialake.io.dr3schema import FALSE_VALUES, NULL_VALUES, TRUE_VALUES, arrow_type
from gaialake.log import get_logger

__all__ = ["pyarrow_csv_to_parquet", "hats_summary", "measure_hats_import", "HATS_SCRIPT",
           "HATS_PYTHON", "bench_ingest", "bench_hats", "batch_seconds", "bench_ingest_at_scale",
           "ingest_profile", "PROFILE_STAGES"]

log = get_logger("bench")

#: The hats-import script (run by the hats venv's python, never imported here).
#: (Not named hats_import.py: run as a script, it would shadow the ``hats_import`` package.)
HATS_SCRIPT = Path(__file__).with_name("hatsimport_run.py")
#: The python of hats-import's own virtual environment (``make .venv-hats`` creates it).
HATS_PYTHON = REPO_ROOT / ".venv-hats" / "bin" / "python"
_SUMMARY = "hats_import_summary "  # hatsimport_run.SUMMARY and a space: its summary line's start


def pyarrow_csv_to_parquet(raw: str, out: str) -> int:
    """Convert every GaiaSource_*.csv.gz under ``raw`` to Parquet in ``out``; returns rows."""
    Path(out).mkdir(parents=True, exist_ok=True)
    rows = 0
    for path in sorted(Path(raw).glob("GaiaSource_*.csv.gz")):
        header = read_header(str(path))
        # pyarrow's own gzip stream (zlib), as a pyarrow user reads the files
        with pa.input_stream(str(path), compression="gzip") as stream:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(skip_rows=header.header_lines,
                                               column_names=header.names, use_threads=True),
                parse_options=pacsv.ParseOptions(delimiter=header.delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types={c.name: arrow_type(c.datatype) for c in header.columns},
                    null_values=NULL_VALUES, true_values=TRUE_VALUES, false_values=FALSE_VALUES,
                    strings_can_be_null=True))
        pq.write_table(table, Path(out) / (path.name[:-7] + ".parquet"))
        rows += table.num_rows
    return rows


def hats_summary(output: str) -> dict:
    """The summary the hats script printed last (rows, pixels, pipeline_s, version...)."""
    found = [ln for ln in output.splitlines() if ln.startswith(_SUMMARY)]
    if not found:
        raise ValueError(f"no '{_SUMMARY.strip()}' line in the hats-import output: {output[-300:]!r}")
    return json.loads(found[-1][len(_SUMMARY):])


def measure_hats_import(python: Path, raw: Path, out: Path, cores: int) -> dict:
    """hats-import over the bulk files under ``raw`` into ``out``/gaia, run by ``python`` on
    ``cores`` dask worker processes: the script's summary plus ``seconds`` and ``peak_mib`` of
    its process tree and the catalog's ``bytes``; ``{"error": why}`` when it cannot run."""
    if not python.exists():
        return {"error": f"{python} not found (`make .venv-hats` creates it)"}
    try:
        m = measure_command([str(python), str(HATS_SCRIPT), str(raw), str(out), str(cores)])
        summary = hats_summary(m.output)
    except (RuntimeError, ValueError) as err:
        return {"error": " ".join(str(err).split())[-400:]}
    catalog = [f for f in (out / "gaia").rglob("*") if f.is_file()]
    return {**summary, "seconds": m.seconds, "peak_mib": m.peak_mib,
            "bytes": sum(f.stat().st_size for f in catalog)}


def bench_ingest(work: Path, n_stars: float, cores: int) -> dict:
    """gaialake ingest vs pyarrow CSV -> Parquet, vs hats-import, and vs itself with Spark's
    Delta writer (``ingest.writer=spark``, before the arrow writer) on the same ``n_stars``
    generated stars under ``work`` (emptied first): seconds, peak MiB, bytes, rows/s per core
    and the ratios."""
    if work.exists():
        shutil.rmtree(work)
    per_file = max(n_stars / (2 * cores), 1e4)
    sky = [f"--set=sky.n_stars={n_stars}", f"--set=sky.stars_per_file={per_file}"]
    gen = measure_job("generate", job_sets(work, sky))
    files = sorted((work / "raw").glob("GaiaSource_*.csv.gz"))
    base = measure_command([sys.executable, "-m", "gaialake.bench.ingest_bench", "pyarrow",
                            str(work / "raw"), str(work / "pyarrow_parquet")])
    rows = int(base.output.strip().splitlines()[-1])
    ing = measure_job("ingest", job_sets(work))
    summ = job_summary(ing, "ingest")
    stage = batch_seconds(ing.output)
    delta_bytes = dir_bytes(work / "wh" / tables.GAIA_SOURCE.name)
    # before the fix of the slowest stage: Spark's Delta writer, same files, its own warehouse
    before = measure_job("ingest", job_sets(work / "spark_writer", ["--set=ingest.writer=spark"],
                                            raw=work / "raw"))
    out = {
        "rows": rows, "files": len(files), "raw_bytes": sum(f.stat().st_size for f in files),
        "generate_s": gen.seconds, "generate_peak_mib": gen.peak_mib,
        "pyarrow_s": base.seconds, "pyarrow_peak_mib": base.peak_mib,
        "ingest_s": ing.seconds, "ingest_stage_s": stage, "ingest_peak_mib": ing.peak_mib,
        "ingest_rows_kept": summ.get("rows_kept"), "delta_bytes": delta_bytes,
        "parquet_bytes": dir_bytes(work / "pyarrow_parquet"), "cores": cores,
    }
    out["pyarrow_rows_s_core"] = rows / base.seconds / cores
    out["ingest_rows_s_core"] = rows / ing.seconds / cores
    out["ingest_stage_rows_s_core"] = rows / stage / cores if stage else None
    out["ratio_wall"] = out["ingest_rows_s_core"] / out["pyarrow_rows_s_core"]
    out["ratio_stage"] = (out["ingest_stage_rows_s_core"] / out["pyarrow_rows_s_core"]) if stage else None
    out["generate_stars_s_core"] = rows / gen.seconds / cores
    out["spark_writer_s"], out["spark_writer_stage_s"] = before.seconds, batch_seconds(before.output)
    out["spark_writer_peak_mib"] = before.peak_mib
    out["writer_speedup_wall"] = before.seconds / ing.seconds
    out["writer_speedup_stage"] = (out["spark_writer_stage_s"] / stage
                                   if stage and out["spark_writer_stage_s"] else None)
    out["hats"] = bench_hats(work, rows, cores, out["ingest_rows_s_core"],
                             out["ingest_stage_rows_s_core"])
    # the same rows from Parquet (pyarrow's output) and from a HATS catalog (hats-import's)
    out["from_parquet"] = _ingest_from(work / "from_parquet", work / "pyarrow_parquet", rows, cores)
    hats_catalog = work / "hats" / "gaia"
    if (hats_catalog / "hats.properties").exists():
        out["from_hats"] = _ingest_from(work / "from_hats", hats_catalog, rows, cores)
    out["export"] = bench_export(work, cores, out["hats"])
    return out


def bench_ingest_at_scale(work: Path, scale: dict, cores: int) -> dict:
    """pyarrow CSV -> Parquet and hats-import on the bulk files of a scaling size (``work/raw``,
    generated and ingested by :func:`gaialake.bench.pipeline_bench.bench_scaling`, whose row
    ``scale`` holds the ingest's seconds): the whole-process and stage ratios of the ingest's
    rows/s per core over each."""
    base = measure_command([sys.executable, "-m", "gaialake.bench.ingest_bench", "pyarrow",
                            str(work / "raw"), str(work / "pyarrow_parquet")])
    rows = int(base.output.strip().splitlines()[-1])
    out = {"rows": rows, "pyarrow_s": base.seconds, "ingest_s": scale["ingest_s"],
           "ingest_stage_s": scale.get("ingest_stage_s"), "cores": cores,
           "profile": scale.get("ingest_profile")}
    out["ratio_wall"] = base.seconds / scale["ingest_s"]
    out["ratio_stage"] = base.seconds / out["ingest_stage_s"] if out["ingest_stage_s"] else None
    hats = measure_hats_import(HATS_PYTHON, work / "raw", work / "hats", cores)
    if "error" not in hats:
        out["hats_s"], out["hats_pipeline_s"] = hats["seconds"], hats["pipeline_s"]
        out["hats_ratio_wall"] = hats["seconds"] / scale["ingest_s"]
        out["hats_ratio_stage"] = (hats["pipeline_s"] / out["ingest_stage_s"]
                                   if out["ingest_stage_s"] else None)
    else:
        out["hats_error"] = hats["error"]
    return out


def _ingest_from(work: Path, raw: Path, rows: int, cores: int) -> dict:
    """``gaialake ingest`` of the catalog at ``raw`` (Parquet files or a HATS catalog) into its
    own warehouse under ``work``: seconds, stage seconds, rows kept and quarantined, rows/s per
    core."""
    m = measure_job("ingest", job_sets(work, raw=raw))
    summ = job_summary(m, "ingest")
    stage = batch_seconds(m.output)
    return {"seconds": m.seconds, "stage_s": stage, "peak_mib": m.peak_mib,
            "rows_kept": summ.get("rows_kept"), "rows_quarantined": summ.get("rows_quarantined"),
            "rows_s_core": rows / m.seconds / cores,
            "stage_rows_s_core": rows / stage / cores if stage else None}


#: The ingest's logged stages in its profile, in the order they run in a batch.
PROFILE_STAGES = ("check headers", "parse and write (arrow writer)", "duplicate check",
                  "write gaia_source (arrow writer)", "write quarantine and ingest_log")


def ingest_profile(output: str, seconds: float) -> dict[str, float]:
    """Where a whole ``gaialake ingest`` process of ``seconds`` spent them, from its log: Python
    and imports before the job, the Spark session (JVM, Delta, metastore), each stage of
    :data:`PROFILE_STAGES` summed over the batches (the parse and write stage split into its
    tasks' parse and write seconds, summed over the tasks: core-seconds), the rest of the
    batches (table creation, staging reads) and of the job (listing, ``ingest_log`` read)."""
    def total(pattern: str) -> float:
        return sum(float(v) for v in re.findall(pattern, output))

    job = total(r"job ingest: done in ([0-9.]+) s")
    batches = batch_seconds(output)
    out = {"seconds": seconds, "python_start": seconds - job,
           "spark_session": total(r"Spark session ready in ([0-9.]+) s")}
    for name in PROFILE_STAGES:
        out[name] = total(re.escape(name) + r": done(?: [0-9,]+ rows)? in ([0-9.]+) s")
    out["task_parse_core_s"] = total(r"parsed in ([0-9.]+) s and written in")
    out["task_write_core_s"] = total(r"and written in ([0-9.]+) s of task time")
    out["other_batch"] = batches - sum(out[name] for name in PROFILE_STAGES)
    out["other_job"] = job - batches - out["spark_session"]
    return out


def batch_seconds(output: str) -> float:
    """Seconds of an ingest's batches in its log (the stage, without the JVM's start)."""
    return sum(float(s) for s in re.findall(
        r"batch \d+/\d+ \(\d+ files\): done [0-9,]+ rows in ([0-9.]+) s", output))


def bench_hats(work: Path, rows: int, cores: int, ingest_rate: float,
               stage_rate: float | None) -> dict:
    """hats-import on the files under ``work/raw``, with as many dask workers as cores: rows/s
    per core and gaialake's rates (rows/s per core) over it (> 1: gaialake faster);
    ``{"error": ...}`` when it cannot run."""
    hats = measure_hats_import(HATS_PYTHON, work / "raw", work / "hats", cores)
    if "error" in hats:
        log.warning("hats-import not measured: %s", hats["error"])
        return hats
    hats["rows_s_core"] = rows / hats["seconds"] / cores
    hats["pipeline_rows_s_core"] = rows / hats["pipeline_s"] / cores
    hats["ratio_wall"] = ingest_rate / hats["rows_s_core"]
    hats["ratio_stage"] = stage_rate / hats["pipeline_rows_s_core"] if stage_rate else None
    hats["rows_match"] = hats["rows"] == rows
    return hats


if __name__ == "__main__":
    if sys.argv[1] == "pyarrow":
        print(pyarrow_csv_to_parquet(sys.argv[2], sys.argv[3]))

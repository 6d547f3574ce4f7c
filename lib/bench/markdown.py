"""BENCHMARKS.md from one ``gaialake bench`` run's results (pure formatting + projection)."""
from __future__ import annotations

from pathlib import Path

from gaialake.streams.recovery import pooled_recovery

__all__ = ["write_benchmarks_md", "project_full_dr3", "STREAMS_HEADING", "streams_bench_lines",
           "write_streams_section", "UPSAMPLE_HEADING", "upsample_bench_lines",
           "write_upsample_section", "DENSITY_HEADING", "density_bench_lines",
           "write_density_section", "METHODS_HEADING", "methods_bench_lines",
           "write_methods_section"]

DR3_ROWS, DR3_FILES = 1_811_709_771, 3386
HATS_DR3_GIB = 712.8


def _f(v, fmt="{:,.0f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def project_full_dr3(ingest: dict, cluster_cores: int = 256) -> dict:
    """Core-hours, wall time on ``cluster_cores`` and Delta size for 1.81e9 rows, from the
    measured per-core ingest rate and bytes per row."""
    rate = ingest.get("ingest_stage_rows_s_core") or ingest["ingest_rows_s_core"]
    core_h = DR3_ROWS / rate / 3600
    per_row = ingest["delta_bytes"] / max(ingest["rows"], 1)
    # gzip does not split: parallelism is capped by the number of files
    wall_h = core_h / min(cluster_cores, DR3_FILES)
    return {"ingest_core_hours": core_h, "ingest_wall_hours": wall_h, "cluster_cores": cluster_cores,
            "delta_gib": per_row * DR3_ROWS / 2**30, "bytes_per_row": per_row}


def _hats_rows(hats: dict) -> list[str]:
    """hats-import's rows of the ingest table (none when it was not measured)."""
    if "error" in hats:
        return []
    return [f"| hats-import {hats['version']} ({hats['cores']} dask workers), whole process | "
            f"{hats['seconds']:.1f} | {_f(hats['rows_s_core'])} | {hats['peak_mib']:.0f} | "
            f"{hats['bytes'] / 2**20:.1f} |",
            f"| hats-import, *stage* (pipeline, no interpreter or dask start) | "
            f"{hats['pipeline_s']:.1f} | {_f(hats['pipeline_rows_s_core'])} | | |"]


def _hats_ratio(hats: dict, rows: int) -> str:
    """gaialake over hats-import, how hats-import read the files and its row count."""
    if "error" in hats:
        return f"hats-import (the HATS/LSDB importer) not measured: {hats['error']}."
    count = "all the input rows" if hats["rows_match"] else f"**not the {rows:,} input rows**"
    return (f"**gaialake / hats-import rows/s per core: {hats['ratio_wall']:.2f}x whole process, "
            f"{_f(hats['ratio_stage'], '{:.2f}')}x stage** (> 1: gaialake faster). hats-import read "
            f"the files with its `CsvReader` (`comment='#'`, types from a schema file), as the HATS "
            f"team reads DR3, into {hats['pixels']} HEALPix partitions holding "
            f"{hats['rows']:,} rows: {count}.")


def _spark_writer_rows(ing: dict) -> list[str]:
    """The ingest before the arrow writer (``ingest.writer=spark``), when measured."""
    if "spark_writer_s" not in ing:
        return []
    rows, cores = ing["rows"], ing["cores"]
    stage = ing.get("spark_writer_stage_s")
    return [f"| gaialake ingest with Spark's Delta writer (before), whole process | "
            f"{ing['spark_writer_s']:.1f} | {_f(rows / ing['spark_writer_s'] / cores)} | "
            f"{ing['spark_writer_peak_mib']:.0f} | |",
            f"| gaialake ingest with Spark's Delta writer (before), *stage* | {_f(stage, '{:.1f}')} | "
            f"{_f(rows / stage / cores if stage else None)} | | |"]


def _input_rows(ing: dict) -> list[str]:
    """gaialake ingest of the same rows from Parquet and from a HATS catalog, when measured."""
    out = []
    for key, label in (("from_parquet", "Parquet (pyarrow's output)"),
                       ("from_hats", "a HATS catalog (hats-import's output)")):
        m = ing.get(key)
        if not m:
            continue
        kept = (f", {m['rows_kept']:,} rows kept, {m['rows_quarantined']:,} quarantined"
                if m.get("rows_kept") is not None else "")
        out += [f"| gaialake ingest from {label}, whole process{kept} | {m['seconds']:.1f} | "
                f"{_f(m['rows_s_core'])} | {m['peak_mib']:.0f} | |",
                f"| gaialake ingest from {label}, *stage* | {_f(m['stage_s'], '{:.1f}')} | "
                f"{_f(m['stage_rows_s_core'])} | | |"]
    return out


def _scale_ratio(scale: dict | None) -> list[str]:
    """The ratio line at the largest scaling size: ingest vs pyarrow and vs hats-import on the
    same files (ratios of seconds: same rows, same cores)."""
    if not scale:
        return ["**Ratio (ingest per core / pyarrow per core): not measured at scale in this "
                "run**", ""]
    hats = (f" gaialake / hats-import at this size: {scale['hats_ratio_wall']:.2f}x whole process, "
            f"{_f(scale.get('hats_ratio_stage'), '{:.2f}')}x stage (hats-import "
            f"{scale['hats_s']:.0f} s, its pipeline {scale['hats_pipeline_s']:.0f} s; target >= 1.5x)."
            if "hats_s" in scale else f" hats-import not measured: {scale.get('hats_error')}.")
    return [f"**Ratio (ingest per core / pyarrow per core): {scale['ratio_wall']:.2f}x whole "
            f"process, {_f(scale['ratio_stage'], '{:.2f}')}x stage** at {scale['rows']:,} rows "
            f"(the scaling table's largest size; pyarrow {scale['pyarrow_s']:.0f} s, gaialake "
            f"ingest {scale['ingest_s']:.0f} s, its batches {_f(scale['ingest_stage_s'], '{:.0f}')} s; "
            f"budget: >= 0.5x).{hats}", ""]


_PROFILE_ROWS = (("python_start", "Python start and imports"),
                 ("spark_session", "Spark session (JVM, Delta, Derby metastore)"),
                 ("other_job", "listing the files, reading `ingest_log`"),
                 ("check headers", "check headers (a Spark job)"),
                 ("parse and write (arrow writer)", "parse and write (Spark tasks)"),
                 ("duplicate check", "duplicate check (Delta statistics)"),
                 ("write gaia_source (arrow writer)", "commit to `gaia_source`"),
                 ("write quarantine and ingest_log", "`gaia_source_quarantine` and `ingest_log`"),
                 ("other_batch", "rest of the batches (table creation, staged keys)"))


def _profile_lines(scale: dict | None) -> list[str]:
    """Where the whole ingest process's seconds went at the largest size (its log's stages)."""
    prof = (scale or {}).get("profile")
    if not prof:
        return []
    total = prof["seconds"]
    lines = [f"Where the ingest's {total:.0f} s went at {scale['rows']:,} rows (its log's stages, "
             f"summed over its batches):", "", "| part of the whole process | seconds | share |",
             "|---|---:|---:|"]
    lines += [f"| {label} | {prof[key]:.1f} | {100 * prof[key] / total:.0f} % |"
              for key, label in _PROFILE_ROWS if key in prof]
    lines += ["", f"Inside the parse and write stage the tasks spent "
              f"{prof['task_parse_core_s']:.0f} core-seconds parsing (gzip inflate with ISA-L, "
              f"pyarrow's CSV reader, checks, `hpx29`) and {prof['task_write_core_s']:.0f} "
              f"writing (row keys, sort by `hpx29`, Parquet data files with Delta statistics). "
              f"The pyarrow baseline inflates with zlib, pyarrow's own gzip stream.", ""]
    return lines


def _export_lines(export: dict | None) -> list[str]:
    """`gaialake export hats` of the ingested rows, beside hats-import."""
    if not export or "seconds" not in export:
        return []
    ratio = (f"; rows/s per core over hats-import's: {export['ratio_wall']:.2f}x whole process, "
             f"{_f(export.get('ratio_stage'), '{:.2f}')}x stage" if "ratio_wall" in export else "")
    return [f"`gaialake export hats --table gaia_source` of these rows: {export['seconds']:.1f} s "
            f"whole process ({_f(export['rows_s_core'])} rows/s per core), "
            f"{_f(export.get('stage_s'), '{:.1f}')} s export stage, {export['pixels']} pixels, "
            f"{export['bytes'] / 2**20:.1f} MiB{ratio}.", ""]


def _writer_ratio(ing: dict) -> list[str]:
    if "spark_writer_s" not in ing:
        return []
    return [f"**Slowest stage fixed, before/after on these files: the arrow writer (executors write "
            f"the Delta files with pyarrow, the driver commits them) is {ing['writer_speedup_wall']:.2f}x "
            f"faster than Spark's Delta writer whole process, "
            f"{_f(ing.get('writer_speedup_stage'), '{:.2f}')}x stage.**", ""]


def write_benchmarks_md(results: dict, path: Path) -> Path:
    """Write BENCHMARKS.md from one run's ``results`` (:mod:`gaialake.jobs.bench`) to
    ``path``; returns it."""
    ing = results["ingest"]
    hats = ing.get("hats") or {"error": "not measured in this run"}
    lines = [
        "# Benchmarks", "",
        f"Measured by `make bench` in one run on {results['date']}.",
        *[f"Re-measured since: {r}." for r in results.get("reruns", [])],
        f"Machine: {results['machine']}.", f"Versions: {results['versions']}.", "",
        "Each figure is a ratio against a baseline measured in the same run on the same data.",
        "Times include each job's process start (Spark's JVM) unless marked *stage*.", "",
        "## Ingest: `gaialake ingest` vs pyarrow CSV -> Parquet and hats-import", "",
        f"{ing['rows']:,} synthetic stars in {ing['files']} DR3-format bulk files "
        f"({ing['raw_bytes'] / 2**20:.1f} MiB gzip, 152 columns).", "",
        "| | seconds | rows/s per core | peak memory (MiB) | output (MiB) |",
        "|---|---:|---:|---:|---:|",
        f"| pyarrow CSV -> Parquet (baseline, {ing['cores']} threads) | {ing['pyarrow_s']:.1f} | "
        f"{_f(ing['pyarrow_rows_s_core'])} | {ing['pyarrow_peak_mib']:.0f} | {ing['parquet_bytes'] / 2**20:.1f} |",
        f"| gaialake ingest, whole process | {ing['ingest_s']:.1f} | {_f(ing['ingest_rows_s_core'])} | "
        f"{ing['ingest_peak_mib']:.0f} | {ing['delta_bytes'] / 2**20:.1f} |",
        f"| gaialake ingest, *stage* (batches, no JVM start) | {_f(ing['ingest_stage_s'], '{:.1f}')} | "
        f"{_f(ing['ingest_stage_rows_s_core'])} | | |",
        *_hats_rows(hats), *_spark_writer_rows(ing), *_input_rows(ing), "",
        f"At {ing['rows']:,} rows: ingest per core / pyarrow per core {ing['ratio_wall']:.2f}x "
        f"whole process, {_f(ing['ratio_stage'], '{:.2f}')}x stage.", "",
        *_scale_ratio(results.get("ingest_at_scale")),
        *_profile_lines(results.get("ingest_at_scale")),
        _hats_ratio(hats, ing["rows"]), "", *_writer_ratio(ing), *_export_lines(ing.get("export")),
        f"Synthetic sky generation: {_f(ing['generate_stars_s_core'])} stars/s per core "
        f"({ing['generate_s']:.1f} s including Spark start, peak {ing['generate_peak_mib']:.0f} MiB).", "",
    ]
    if "train" in results:
        tr = results["train"]
        lines += ["## Training feed: Spark + Petastorm vs bare torch loop", "",
                  "| | samples/s | |", "|---|---:|---|"]
        for k, v in tr.items():
            if isinstance(v, (int, float)):
                lines.append(f"| {k} | {v:,.4g} | |")
        lines.append("")
    if "score" in results:
        lines += ["## Scoring", "", "| | value |", "|---|---:|"]
        for k, v in results["score"].items():
            if isinstance(v, (int, float)):
                lines.append(f"| {k} | {v:,.4g} |")
        lines.append("")
    if results.get("scaling"):
        lines += scaling_lines(results["scaling"])
    if results.get("pipeline"):
        lines += _pipeline_lines(results["pipeline"])
    proj = project_full_dr3(ing)
    lines += ["## Projection to the full DR3 (1,811,709,771 rows, 3,386 bulk files)", "",
              f"- Ingest: {proj['ingest_core_hours']:,.0f} core-hours at the measured "
              f"{_f(ing.get('ingest_stage_rows_s_core') or ing['ingest_rows_s_core'])} rows/s per core; "
              f"{proj['ingest_wall_hours']:.1f} h wall on a {proj['cluster_cores']}-core cluster "
              f"(gzip files do not split: at most {DR3_FILES} tasks).",
              f"- Delta storage: {proj['delta_gib']:,.0f} GiB at {proj['bytes_per_row']:.0f} bytes/row "
              f"measured on the synthetic sky (HATS' Gaia DR3: {HATS_DR3_GIB} GiB in 2,016 partitions; "
              "the synthetic rows have ~100 null columns, so real rows compress less: expect the HATS figure).",
              *_projection_lines(results.get("pipeline"), proj["cluster_cores"]), ""]
    text = path.read_text() if path.exists() else ""
    kept = "".join(_section(text, h) for h in (STREAMS_HEADING, METHODS_HEADING,
                                               UPSAMPLE_HEADING, DENSITY_HEADING))
    path.write_text("\n".join(lines) + "\n" + (f"\n{kept}" if kept else ""))
    return path


def _section(text: str, heading: str) -> str:
    """The section of ``text`` under ``heading`` up to the next ``## `` heading ("" if none):
    what `make bench` keeps of another benchmark's results (`make bench-streams`)."""
    start = text.find(heading)
    if start < 0:
        return ""
    nxt = text.find("\n## ", start + len(heading))
    return text[start:nxt + 1] if nxt >= 0 else text[start:]


SCALED_JOBS = ("generate", "ingest", "patches")


def scaling_lines(rows: list[dict]) -> list[str]:
    """The scaling table (seconds and peak MiB per job and size) and, between the two largest
    sizes that ran, each job's growth in time and memory and its marginal microseconds per star
    (the fixed costs, JVM start and Spark's scheduling, cancel in the difference)."""
    lines = ["## Scaling", "", "Seconds (peak MiB of the job's process tree: driver JVM, Python "
             "driver and workers) per stage and size. Locally the driver is the executor: one JVM "
             "whose heap grows towards `spark.driver_memory` before it collects, so a peak that "
             "grows with the stars is that headroom unless a smaller cap fails.", "",
             "| stars | " + " | ".join(SCALED_JOBS) + " |", "|---:|" + "---:|" * len(SCALED_JOBS)]
    for r in rows:
        cells = [f"{r[f'{j}_s']:.0f} s ({r[f'{j}_peak_mib']:.0f} MiB)" if f"{j}_s" in r
                 else "failed" for j in SCALED_JOBS]
        lines.append(f"| {r['n_stars']:,} | " + " | ".join(cells) + " |")
    growth, marginal, memory = [], [], []
    for j in SCALED_JOBS:
        ran = [r for r in rows if f"{j}_s" in r]
        if len(ran) < 2:
            cells = ("n/a", "n/a", "n/a")
        else:
            a, b = ran[-2], ran[-1]
            t, n = (b[f"{j}_s"], a[f"{j}_s"]), (b["n_stars"], a["n_stars"])
            cells = (f"x{t[0] / t[1]:.1f} for x{n[0] / n[1]:.0f} stars",
                     f"{1e6 * (t[0] - t[1]) / (n[0] - n[1]):.1f}",
                     f"x{b[f'{j}_peak_mib'] / a[f'{j}_peak_mib']:.2f}")
        for column, cell in zip((growth, marginal, memory), cells):
            column.append(cell)
    lines += ["| time growth, two largest sizes | " + " | ".join(growth) + " |",
              "| marginal us per star | " + " | ".join(marginal) + " |",
              "| peak memory growth | " + " | ".join(memory) + " |", ""]
    return lines


#: Via Machinae's search covers the sky at |b| >= 30 deg: the 96 patches of the default grid.
DR3_PATCHES = 96


#: BENCHMARKS.md's heading of the make-run table (``make bench``; ``gaialake bench
#: --pipeline`` re-measures it alone).
PIPELINE_HEADING = "## `make run` per stage (default sky, one `gaialake pipeline` process)"


def _pipeline_lines(pipe: dict) -> list[str]:
    """The make-run table: seconds per stage (null_sky's own stages indented under it); with
    ``date`` in ``pipe``, when it was measured apart from the rest (``gaialake bench
    --pipeline``)."""
    alone = ([f"Re-measured alone by `gaialake bench --pipeline` on {pipe['date']}; "
              f"{pipe.get('machine', '')}.", ""] if pipe.get("date") else [])
    lines = [PIPELINE_HEADING, "", *alone,
             f"{_f(pipe.get('rows'))} stars; {pipe.get('patches')} patches searched "
             f"({_f(pipe.get('patch_rows'))} patch rows). Whole run {pipe['seconds'] / 60:.1f} min, "
             f"peak {pipe['peak_mib']:.0f} MiB (budget: 15 min).", "",
             "| stage | seconds | share |", "|---|---:|---:|"]
    top = {k: v for k, v in pipe["stages"].items() if "." not in k}
    total = sum(top.values()) or 1.0
    for name, sec in top.items():
        lines.append(f"| {name} | {sec:.0f} | {100 * sec / total:.0f} % |")
        lines += [f"| &nbsp;&nbsp;{name} / {child.split('.', 1)[1]} | {csec:.0f} | |"
                  for child, csec in pipe["stages"].items() if child.startswith(name + ".")]
    return lines + [""]


def _projection_lines(pipe: dict | None, cluster_cores: int) -> list[str]:
    """Per-stage projection of the stream search to DR3 from the make-run timings: the synthetic
    sky holds ``sky_scale`` of the real stars, so each patch has 1/scale times the rows."""
    if not pipe or not pipe.get("patches") or not pipe.get("anomaly_task_seconds"):
        return []
    scale, n = pipe["sky_scale"], pipe["patches"]
    st = pipe["stages"]
    per_patch_core_s = pipe["anomaly_task_seconds"] / n          # executor task seconds
    anomaly_h = per_patch_core_s / scale * DR3_PATCHES / 3600
    patches_h = st.get("patches", 0.0) * 2 / n / scale * DR3_PATCHES / 3600
    find_h = st.get("find_streams", 0.0) * 2 / n / scale * DR3_PATCHES / 3600
    out = [f"- Stream search, {DR3_PATCHES} patches at |b| >= 30 deg: a real patch holds 1/{scale:.4f} "
           f"= {1 / scale:.0f}x the synthetic patch's stars, and training + scoring time grows "
           f"linearly with them (fixed epochs): anomaly {anomaly_h:,.0f} core-hours "
           f"({per_patch_core_s / 60:.1f} core-min per synthetic patch with the make-run flow), "
           f"{anomaly_h / cluster_cores:.1f} h wall on {cluster_cores} cores; the paper-size flow "
           f"(15x128 MAF, 100 epochs) costs ~100x more per star (SkyCURTAINs: ~4 GPU-hours per "
           f"patch); find_streams {find_h:,.1f} core-hours."]
    out.append(f"- patches: {patches_h:,.1f} core-hours (the make-run job's seconds per synthetic "
               f"patch, its JVM start included, times {1 / scale:.0f}x the stars per patch and "
               f"{DR3_PATCHES} patches; each patch reads only the `hpx` partitions its disc touches).")
    out.append("- Times double with the stream-free calibration sky (`null_sky`), which is "
               "synthetic and needs to run once per search setting.")
    return out


#: BENCHMARKS.md's heading of the real-density stream benchmark (``make bench-streams``).
STREAMS_HEADING = "## Stream search at DR3 density (`make bench-streams`)"


def _num(v, fmt: str = "{:.2f}") -> str:
    """A number, or n/a for None and NaN."""
    return "n/a" if v is None or v != v else fmt.format(v)


def streams_bench_lines(results: dict) -> list[str]:
    """The section of one ``make bench-streams`` run (:func:`gaialake.bench.streams_bench.
    bench_streams`): settings, one row per (sky, patch), the stream-free maxima and the line
    ``GD-1 at DR3 density: purity <p>, completeness <c>, false-positive rate <f>``."""
    fp = results.get("false_positive") or {}
    purity, completeness = pooled_recovery(results["skies"][-1].get("patches", []))
    score = f"Score `{results['method']}`" + (
        f" (the lines of {', '.join(f'`{m}`' for m in results['union'])} merged)"
        if results.get("union") else "")
    lines = [STREAMS_HEADING, "",
             f"Measured on {results.get('date', 'n/a')}; {results.get('machine', '')}.",
             f"Sky: {results['n_stars']:,.0f} stars (G < limit) in {results['region']}; the "
             f"model's natural count there {results['natural_count']:,.0f} (scale "
             f"{results['scale']:.3g}; 1 = DR3 density). {score}; "
             f"streams.max_group_rows {results['max_group_rows']}, stream.sample_rows "
             f"{results['sample_rows']}, max_epochs {results['max_epochs']}, "
             f"find_streams.top_n {results.get('top_n', 'n/a')}. Wall time and peak "
             "memory are per job process (all patches of the sky, Spark start included).", "",
             "| sky | patch | stars after cuts | fiducial | groups | streamed (largest rows) | "
             "anomaly s | anomaly peak MiB | find_streams s | purity | completeness |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sky in results["skies"]:
        jobs = sky.get("jobs", {})
        an, fs = jobs.get("anomaly", {}), jobs.get("find_streams", {})
        if "error" in sky:
            lines.append(f"| {sky['name']} | failed: {sky['error'][:120]} | | | | | | | | | |")
        for p in sky.get("patches", []):
            lines.append(
                f"| {sky['name']} | {p['patch_id']} | {p['stars']:,} | {p['fiducial']:,} | "
                f"{p['groups']} | {p['groups_streamed']} ({p['max_streamed_rows']:,}) | "
                f"{_num(an.get('seconds'), '{:.0f}')} | {_num(an.get('peak_mib'), '{:.0f}')} | "
                f"{_num(fs.get('seconds'), '{:.0f}')} | {_num(p.get('purity'))} | "
                f"{_num(p.get('completeness'))} |")
    lines += ["", f"Threshold {_num(fp.get('threshold'))}: the largest of "
              f"{fp.get('n_realizations', 'n/a')} stream-free maxima "
              f"[{fp.get('null_maxima', 'n/a')}] "
              f"(min {_num(fp.get('null_max_min'))}, median {_num(fp.get('null_max_median'))}, "
              f"max {_num(fp.get('null_max_max'))}). False-positive rate: "
              f"{fp.get('n_fp_realizations', 'n/a')} of {fp.get('n_realizations', 'n/a')} "
              "stream-free realizations exceed the threshold set by the others (leave one out), "
              f"95 % Clopper-Pearson [{_num(fp.get('fp_rate_lo'))}, {_num(fp.get('fp_rate_hi'))}].",
              "",
              f"GD-1 at DR3 density: purity {_num(purity)}, completeness {_num(completeness)}, "
              f"false-positive rate {_num(fp.get('fp_rate'))} "
              f"[{_num(fp.get('fp_rate_lo'))}, {_num(fp.get('fp_rate_hi'))}]"
              + ("" if results["scale"] >= 0.999 else
                 f" (**scale {results['scale']:.3g}: not DR3 density, a plumbing run**)"), ""]
    by_method = results.get("recovery") or {}
    if by_method:
        lines += ["Each method's above-threshold candidates on the GD-1 sky, pooled over the "
                  "patches as above (a star in two fiducial discs counts in both) and, in "
                  "brackets, each star counted once: "
                  + "; ".join(f"`{m}` purity {_num(r['purity'])} "
                              f"[{_num(r.get('purity_once'))}], completeness "
                              f"{_num(r['completeness'])} [{_num(r.get('completeness_once'))}]"
                              for m, r in by_method.items()) + ".", ""]
    return lines


def _write_section(path: Path, heading: str, lines: list[str]) -> Path:
    """Put ``lines`` into ``path`` as the section under ``heading``, replacing that section (up
    to the next ``## ``) or appending it, and keeping the rest of the file; returns ``path``."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = "\n".join(lines) + "\n"
    old = _section(text, heading)
    text = text.replace(old, section, 1) if old else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
    return path


def write_pipeline_section(results: dict, path: Path) -> Path:
    """Put :func:`_pipeline_lines` of ``results`` (:func:`gaialake.bench.pipeline_bench.
    bench_pipeline`'s, plus ``date`` and ``machine``) into ``path`` under
    :data:`PIPELINE_HEADING`, keeping the rest of the file; returns ``path``."""
    return _write_section(path, PIPELINE_HEADING, _pipeline_lines(results))


def write_streams_section(results: dict, path: Path) -> Path:
    """Put :func:`streams_bench_lines` into ``path`` under :data:`STREAMS_HEADING`, replacing
    that section (up to the next ``## ``) and keeping the rest of the file; returns ``path``."""
    return _write_section(path, STREAMS_HEADING, streams_bench_lines(results))


#: BENCHMARKS.md's heading of the score methods side by side (``gaialake bench --methods``,
#: :func:`gaialake.bench.methods_bench.bench_methods`).
METHODS_HEADING = "## Score methods side by side at DR3 density (`gaialake bench --methods`)"


def methods_bench_lines(results: dict) -> list[str]:
    """The section of one ``gaialake bench --methods`` run: its settings and one row per
    (variant, patch, signal region) with both skies' measurements."""
    top = results["top_n"]
    lines = [METHODS_HEADING, "",
             f"Measured on {results.get('date', 'n/a')}; {results.get('machine', '')}.",
             f"The skies of the last `make bench-streams` ({results['stream']}: "
             f"`{results['stream_warehouse']}`; stream-free: `{results['null_warehouse']}`). In "
             f"each patch the {results['per_patch']} signal region(s) holding the most "
             f"{results['stream']} fiducial members (chosen by the truth, after the search) are "
             "scored again by each variant, "
             "in memory, with the bench conf's settings (flow "
             f"{results['flow']}, training {results['train']}, classifier "
             f"{results['classifier']}; a variant `method:kind` swaps the classifier kind), and "
             "so is the same region of the stream-free sky. AUC: members against the field of "
             f"the region's scored (fiducial) stars; top {top}: members among the "
             f"{top} highest scores (find_streams.top_n); best line: the largest "
             "significance find_streams' line finder gives on that region alone (member "
             "fraction of its stars); seconds: the scoring of the group (flows, classifiers), "
             "per sky.", "",
             f"| variant | patch | region (mas/yr) | members | AUC | members in top {top} | "
             "best line z (members) | stream-free best line z | seconds (stream, stream-free) |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        lines.append(
            f"| {r['variant']} | {r['patch_id']} | {r['axis']} [{r['sr_lo']:g}, {r['sr_hi']:g}) | "
            f"{r['stream_members']} | {_num(r['stream_auc'], '{:.3f}')} | "
            f"{r['stream_top_members']} | {_num(r['stream_best_z'], '{:.1f}')} "
            f"({_num(r['stream_best_member_frac'])}) | {_num(r['null_best_z'], '{:.1f}')} | "
            f"{r['stream_seconds']:.0f}, {r['null_seconds']:.0f} |")
    return lines + [""]


def write_methods_section(results: dict, path: Path) -> Path:
    """Put :func:`methods_bench_lines` into ``path`` under :data:`METHODS_HEADING`, keeping the
    rest of the file; returns ``path``."""
    return _write_section(path, METHODS_HEADING, methods_bench_lines(results))


#: BENCHMARKS.md's heading of the upsampling throughput (``make bench``,
#: :func:`gaialake.bench.upsample_bench.bench_upsample`).
UPSAMPLE_HEADING = "## Upsampling throughput (`gaialake upsample`)"

#: The AUC rows of the upsampling section: (metric, label).
_UPSAMPLE_AUCS = (("auc_particles_vs_flow", "particles vs flow, seed's protocol"),
                  ("auc_particles_vs_flow_strong", "particles vs flow, strong judge"),
                  ("auc_particles_vs_baseline_strong", "particles vs EnBiD-like, strong judge"),
                  ("auc_baseline_vs_particles", "EnBiD-like vs particles, seed's protocol"),
                  ("auc_baseline_vs_flow", "EnBiD-like vs flow, seed's protocol"))


def upsample_bench_lines(results: dict) -> list[str]:
    """The upsampling section from :func:`gaialake.bench.upsample_bench.bench_upsample`'s
    results (plus ``date`` and ``machine``): stage table, stars/s per core, the projection."""
    lines = [UPSAMPLE_HEADING, "", f"Measured on {results.get('date', 'n/a')}; "
             f"{results.get('machine', '')}."]
    if "error" in results:
        return lines + ["", f"Not measured: {results['error']}", ""]
    proj = results.get("projection") or {"stages": {}}
    n_proj = proj.get("n_particles")
    lines += [f"`gaialake upsample` on the default particle set ({results['n_particles']:,} "
              f"particles) with `upsample.dr3_out` set: {results['n_mock']:,} flow stars, "
              f"{_f(results.get('dr3_rows'))} of them in the DR3 files (G limit). Whole job "
              f"{results['seconds']:.0f} s (Spark start included), peak "
              f"{results['peak_mib']:.0f} MiB. Cores: the stage's (the flow trains in one "
              "task on `upsample.torch_threads`; the rest use the machine's). The training's "
              "rows are the samples it saw over its epochs.", "",
              f"| stage | seconds | rows | cores | rows/s per core | "
              f"{_f(n_proj)} particles: core-hours | scaling |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for name, st in results["stages"].items():
        label = "labels (inside sample flow; timed apart)" if name == "labels" else name
        p = proj["stages"].get(name, {})
        lines.append(f"| {label} | {st['seconds']:.1f} | {_f(st.get('rows'))} | {st['cores']} | "
                     f"{_f(st.get('rows_s_core'))} | {_f(p.get('core_hours'), '{:,.2f}')} | "
                     f"{p.get('scaling', 'n/a')} |")
    lines += ["", f"**Upsampled stars/s per core: {_f(results.get('sample_stars_s_core'))} in "
              "the sampling stage (parent labels included), "
              f"{_f(results.get('flow_path_stars_s_core'))} over the flow's path (particles, "
              "training, sampling, DR3 files).**", ""]
    if n_proj:
        lines += [f"Projection to a {n_proj:,.0f}-particle snapshot (x{proj['factor']:,.0f} the "
                  f"particles): {proj['core_hours']:,.1f} core-hours in all, "
                  f"{proj['flow_path_core_hours']:,.1f} on the flow's path; the training is one "
                  f"task: {proj['train_hours']:,.1f} h wall. Assumptions: the training runs the "
                  "same epochs, so its time is linear in the particles; sampling, labels (a k-d "
                  "tree query per star, its log n growth neglected), the EnBiD-like baseline "
                  "and the DR3 files are linear in the stars, themselves `upsample.multiple` x "
                  "the particles; the judges use fixed rows (`upsample.classifier_rows`, "
                  "`upsample.judge.max_rows`).", ""]
    aucs = results.get("aucs") or {}
    lines += ["AUCs of this run (default settings): " + "; ".join(
        f"{label} {_num(aucs.get(key), '{:.3f}')}" for key, label in _UPSAMPLE_AUCS) + ".", ""]
    return lines + _budget_lines(results.get("budget") or [])


def _budget_lines(budget: list[dict]) -> list[str]:
    """The training-budget table: the default flow trained ``upsample.flow.epochs`` (first
    row) and each ``bench.upsample_epochs`` entry."""
    if len(budget) < 2:
        return []
    lines = ["The same flow (`upsample.flow`) trained for more epochs (`bench.upsample_epochs`; "
             "each its own `gaialake upsample` run on the same particles, the first row the "
             "run above): the strong judge measures what the training budget buys.", "",
             "| epochs | epochs run (best, from 0) | train flow s | "
             "particles vs flow, strong judge | particles vs flow, seed's protocol |",
             "|---:|---:|---:|---:|---:|"]
    for row in budget:
        lines.append(f"| {row['epochs']} | {_f(row.get('epochs_run'))} "
                     f"({_f(row.get('best_epoch'))}) | {_num(row.get('train_s'), '{:.0f}')} | "
                     f"{_num(row.get('auc_particles_vs_flow_strong'), '{:.3f}')} | "
                     f"{_num(row.get('auc_particles_vs_flow'), '{:.3f}')} |")
    return lines + [""]


def write_upsample_section(results: dict, path: Path) -> Path:
    """Put :func:`upsample_bench_lines` into ``path`` under :data:`UPSAMPLE_HEADING`,
    replacing that section (up to the next ``## ``) and keeping the rest; returns ``path``."""
    return _write_section(path, UPSAMPLE_HEADING, upsample_bench_lines(results))


#: BENCHMARKS.md's heading of the density throughput (``make bench``,
#: :func:`gaialake.bench.density_bench.bench_density`).
DENSITY_HEADING = "## Density throughput (`gaialake density`, catalog path)"


def density_bench_lines(results: dict) -> list[str]:
    """The density section from :func:`gaialake.bench.density_bench.bench_density`'s results
    (plus ``date`` and ``machine``): per size the three jobs, the density job's stages, stars/s
    per core, its errors against the mock's truth, and the projection to 6 M stars."""
    lines = [DENSITY_HEADING, "", f"Measured on {results.get('date', 'n/a')}; "
             f"{results.get('machine', '')}.", "",
             "Per size: `gaialake density_mock` (the default slab mock observed like Gaia DR3: "
             "errors, the DR3 parallax zero point, G limit, a magnitude-dependent RV selection) "
             "writes bulk files, `gaialake ingest` makes them `gaia_source`, `gaialake density "
             "--set density.source=catalog` measures it at the default density settings (each "
             "its own process, Spark start included). *Held out*: a mock no setting was tuned "
             "on (the Plummer sphere centred on the Sun), measured the same way. Sample: the RV "
             "stars passing the cuts (*streamed*: more than `density.catalog.max_rows`, so they "
             "stayed on the executors and reached the flows through Petastorm, the driver "
             "holding a uniform subsample). Stars/s per core: the sample over the density job's "
             f"seconds and {results.get('cores', 'n/a')} cores. Last column: rho_DM at the Sun "
             "(GeV/cm^3) for the slab, the density at the sphere's centre (M_sun/pc^3) for the "
             "Plummer sphere.", "",
             "| mock | tracers drawn | rows ingested | sample | density_mock s | ingest s | "
             "density s (peak MiB) | catalog read s | train flows s | fit potentials s | grid s "
             "| sample stars/s per core | median rho error (within 1 kpc) | 1σ / 2σ coverage | "
             "rho_DM or rho_centre |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results.get("sizes", []):
        name = (f"{r.get('mock', 'default')} (held out)" if r.get("heldout")
                else r.get("mock", "default"))
        if "error" in r:
            why = " ".join(r["error"].split())[-200:]
            lines.append(f"| {name} | {r['n_drawn']:,} | failed: {why} |" + " |" * 12)
            continue
        st, m = r["stages"], r["metrics"]

        def sec(name: str) -> str:
            return _num((st.get(name) or {}).get("seconds"), "{:.0f}")

        if m.get("rho_dm_gev_cm3") is not None:
            dm = (f"{_num(m.get('rho_dm_gev_cm3'))} ± {_num(m.get('rho_dm_err_gev_cm3'))} "
                  f"(true {_num(m.get('rho_dm_true_gev_cm3'))})")
        else:
            dm = (f"{_num(m.get('rho_centre_msun_pc3'))} (true "
                  f"{_num(m.get('rho_centre_true_msun_pc3'))})")
        lines.append(
            f"| {name} | {r['n_drawn']:,} | {_f(r.get('rows_kept'))} | {r['n_sample']:,}"
            f"{' streamed' if r.get('streamed') else ''} | "
            f"{r['mock_s']:.0f} | {r['ingest_s']:.0f} | {r['density_s']:.0f} "
            f"({r['density_peak_mib']:.0f}) | {sec('catalog sample')} | {sec('train flows')} | "
            f"{sec('fit potentials')} | {sec('density grid')} | {_f(r.get('stars_s_core'))} | "
            f"{_num(m.get('rho_rel_err_median'), '{:.1%}')} "
            f"({_num(m.get('rho_rel_err_median_inner'), '{:.1%}')}) | "
            f"{_num(m.get('coverage_1sigma'))} / {_num(m.get('coverage_2sigma'))} | {dm} |")
    banded = [r for r in results.get("sizes", []) if r.get("bands")]
    if banded:
        lines += ["", "Median rho error by band of height (kpc: |z| for the slab, the radius "
                  "for the sphere; well-sampled cells):", ""]
        for r in banded:
            name = f"{r.get('mock', 'default')}{' (held out)' if r.get('heldout') else ''}"
            lines.append(f"- {name}, {r['n_drawn']:,} tracers: " + ", ".join(
                f"{band} {_num(v, '{:.1%}')}" for band, v in r["bands"].items()))
    proj = results.get("projection")
    if proj:
        secs = proj["seconds"]
        lines += ["", f"**Projection to {proj['n_stars']:,.0f} RV stars** (Lim et al. 2023's "
                  f"sample; x{proj['factor']:.0f} the largest size's sample) on the same "
                  f"{results['cores']} CPU cores: {proj['total_seconds'] / 3600:.1f} h, "
                  f"{proj['core_hours']:.1f} core-hours (catalog read "
                  f"{secs.get('catalog sample', 0) / 3600:.1f} h and flows "
                  f"{secs.get('train flows', 0) / 3600:.1f} h, linear in the stars at fixed "
                  "epochs; the potential fit, grid and write fixed). GPU: not measured (no GPU "
                  "was lent to this task); the flows' training is the part a GPU would take.", ""]
    return lines + [""]


def write_density_section(results: dict, path: Path) -> Path:
    """Put :func:`density_bench_lines` into ``path`` under :data:`DENSITY_HEADING`."""
    return _write_section(path, DENSITY_HEADING, density_bench_lines(results))

"""BENCHMARKS.md from one ``gaialake bench`` run's results (pure formatting + projection)."""
from __future__ import annotations

from pathlib import Path

__all__ = ["write_benchmarks_md", "project_full_dr3"]

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


def write_benchmarks_md(results: dict, path: Path) -> Path:
    ing = results["ingest"]
    lines = [
        "# Benchmarks", "",
        f"Measured by `make bench` in one run on {results['date']}.",
        f"Machine: {results['machine']}.", f"Versions: {results['versions']}.", "",
        "Each figure is a ratio against a baseline measured in the same run on the same data.",
        "Times include each job's process start (Spark's JVM) unless marked *stage*.", "",
        "## Ingest: `gaialake ingest` vs pyarrow CSV -> Parquet", "",
        f"{ing['rows']:,} synthetic stars in {ing['files']} DR3-format bulk files "
        f"({ing['raw_bytes'] / 2**20:.1f} MiB gzip, 152 columns).", "",
        "| | seconds | rows/s per core | peak memory (MiB) | output (MiB) |",
        "|---|---:|---:|---:|---:|",
        f"| pyarrow CSV -> Parquet (baseline, {ing['cores']} threads) | {ing['pyarrow_s']:.1f} | "
        f"{_f(ing['pyarrow_rows_s_core'])} | {ing['pyarrow_peak_mib']:.0f} | {ing['parquet_bytes'] / 2**20:.1f} |",
        f"| gaialake ingest, whole process | {ing['ingest_s']:.1f} | {_f(ing['ingest_rows_s_core'])} | "
        f"{ing['ingest_peak_mib']:.0f} | {ing['delta_bytes'] / 2**20:.1f} |",
        f"| gaialake ingest, *stage* (batches, no JVM start) | {_f(ing['ingest_stage_s'], '{:.1f}')} | "
        f"{_f(ing['ingest_stage_rows_s_core'])} | | |", "",
        f"**Ratio (ingest per core / pyarrow per core): {ing['ratio_wall']:.2f}x whole process, "
        f"{_f(ing['ratio_stage'], '{:.2f}')}x stage** (DESIGN §8 budget: >= 0.5x).", "",
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
        lines += ["## Scaling", "", "Seconds (peak MiB of the job's process tree: driver JVM, Python "
                  "driver and workers) per stage and size.", "",
                  "| stars | generate | ingest | patches |", "|---:|---:|---:|---:|"]
        for r in results["scaling"]:
            cells = [f"{r[f'{j}_s']:.0f} s ({r[f'{j}_peak_mib']:.0f} MiB)" if f"{j}_s" in r else "failed"
                     for j in ("generate", "ingest", "patches")]
            lines.append(f"| {r['n_stars']:,} | " + " | ".join(cells) + " |")
        lines.append("")
    proj = project_full_dr3(ing)
    lines += ["## Projection to the full DR3 (1,811,709,771 rows, 3,386 bulk files)", "",
              f"- Ingest: {proj['ingest_core_hours']:,.0f} core-hours at the measured "
              f"{_f(ing.get('ingest_stage_rows_s_core') or ing['ingest_rows_s_core'])} rows/s per core; "
              f"{proj['ingest_wall_hours']:.1f} h wall on a {proj['cluster_cores']}-core cluster "
              f"(gzip files do not split: at most {DR3_FILES} tasks).",
              f"- Delta storage: {proj['delta_gib']:,.0f} GiB at {proj['bytes_per_row']:.0f} bytes/row "
              f"measured on the synthetic sky (HATS' Gaia DR3: {HATS_DR3_GIB} GiB in 2,016 partitions; "
              "the synthetic rows have ~100 null columns, so real rows compress less: expect the HATS figure).",
              ""]
    path.write_text("\n".join(lines) + "\n")
    return path

"""The hats-import column of `make bench`, without hats-import: its summary line and the report."""
from __future__ import annotations

import ast
import json

import pytest

from gaialake.bench.ingest_bench import HATS_SCRIPT, hats_summary
from gaialake.bench.markdown import write_benchmarks_md


def _script_summary_word() -> str:
    """SUMMARY as hatsimport_run.py defines it (read, not imported: it needs the hats venv)."""
    for node in ast.parse(HATS_SCRIPT.read_text()).body:
        if isinstance(node, ast.Assign) and node.targets[0].id == "SUMMARY":
            return node.value.value
    raise AssertionError("hatsimport_run.py defines no SUMMARY")


def test_hats_summary_reads_the_line_the_script_prints_last():
    summary = {"rows": 23047, "pixels": 8, "pipeline_s": 19.4, "version": "0.11.1"}
    older = {**summary, "rows": 1}
    output = "\n".join(["dask: worker started",
                        f"{_script_summary_word()} {json.dumps(older)}",
                        f"{_script_summary_word()} {json.dumps(summary)}", ""])
    assert hats_summary(output) == summary


def test_hats_summary_raises_when_the_script_printed_none():
    with pytest.raises(ValueError, match="hats_import_summary"):
        hats_summary("Traceback (most recent call last):\nModuleNotFoundError: hats_import")


def _ingest(hats: dict) -> dict:
    return {"rows": 23047, "files": 2, "raw_bytes": 6 << 20, "cores": 2,
            "pyarrow_s": 4.7, "pyarrow_rows_s_core": 2478.0, "pyarrow_peak_mib": 178.0,
            "parquet_bytes": 5 << 20, "ingest_s": 163.5, "ingest_rows_s_core": 70.5,
            "ingest_peak_mib": 1880.0, "delta_bytes": 7 << 20, "ingest_stage_s": 109.0,
            "ingest_stage_rows_s_core": 105.7, "ratio_wall": 0.03, "ratio_stage": 0.04,
            "generate_stars_s_core": 103.0, "generate_s": 112.0, "generate_peak_mib": 1885.0,
            "hats": hats}


def _report(tmp_path, hats: dict) -> str:
    results = {"date": "today", "machine": "vm", "versions": "v", "ingest": _ingest(hats)}
    return write_benchmarks_md(results, tmp_path / "BENCHMARKS.md").read_text()


def test_report_says_why_hats_import_was_not_measured(tmp_path):
    text = _report(tmp_path, {"error": ".venv-hats/bin/python not found"})
    assert "hats-import (the HATS/LSDB importer) not measured: .venv-hats/bin/python not found" in text
    assert "| hats-import" not in text


def test_report_flags_a_hats_catalog_that_lost_rows(tmp_path):
    hats = {"rows": 23000, "rows_match": False, "pixels": 8, "cores": 2, "version": "0.11.1",
            "seconds": 49.5, "rows_s_core": 232.9, "peak_mib": 1031.0, "bytes": 5 << 20,
            "pipeline_s": 19.4, "pipeline_rows_s_core": 594.4, "ratio_wall": 0.30,
            "ratio_stage": 0.18}
    text = _report(tmp_path, hats)
    assert "| hats-import 0.11.1 (2 dask workers), whole process | 49.5 | 233 | 1031 | 5.0 |" in text
    assert "0.30x whole process, 0.18x stage" in text
    assert "**not the 23,047 input rows**" in text


def test_scaling_table_reports_growth_and_marginal_cost_between_the_two_largest_sizes():
    from gaialake.bench.markdown import scaling_lines

    rows = [{"n_stars": 100_000, "generate_s": 20.0, "generate_peak_mib": 1000.0},
            {"n_stars": 1_000_000, "generate_s": 40.0, "generate_peak_mib": 1100.0,
             "ingest_s": 50.0, "ingest_peak_mib": 900.0},
            {"n_stars": 10_000_000, "generate_s": 220.0, "generate_peak_mib": 1210.0}]
    text = "\n".join(scaling_lines(rows))
    assert "| 10,000,000 | 220 s (1210 MiB) | failed | failed |" in text
    assert "| time growth, two largest sizes | x5.5 for x10 stars | n/a | n/a |" in text
    assert "| marginal us per star | 20.0 | n/a | n/a |" in text     # 180 s / 9e6 stars
    assert "| peak memory growth | x1.10 | n/a | n/a |" in text


def test_report_shows_the_spark_writer_before_and_the_arrow_writer_after(tmp_path):
    ingest = {**_ingest({"error": "skipped"}), "spark_writer_s": 327.0, "spark_writer_stage_s": 218.0,
              "spark_writer_peak_mib": 2100.0, "writer_speedup_wall": 2.0, "writer_speedup_stage": 2.0}
    results = {"date": "today", "machine": "vm", "versions": "v", "ingest": ingest}
    text = write_benchmarks_md(results, tmp_path / "BENCHMARKS.md").read_text()
    assert "| gaialake ingest with Spark's Delta writer (before), *stage* | 218.0 | 53 | | |" in text
    assert "2.00x faster than Spark's Delta writer whole process, 2.00x stage" in text
    assert "before" not in _report(tmp_path, {"error": "skipped"})

"""`make bench`'s make-run section: stage seconds from a pipeline log, the table and the projection."""
from __future__ import annotations

from gaialake.bench.markdown import (PIPELINE_HEADING, STREAMS_HEADING, write_benchmarks_md,
                                     write_pipeline_section)
from gaialake.bench.kit import stage_seconds
from tests.helpers import BENCH_INGEST as INGEST

LOG = """12:00:00 INFO gaialake.cli: job generate: start
12:00:50 INFO gaialake.cli: job generate: done in 50.0 s {"files": 10}
12:00:50 INFO gaialake.cli: job null_sky: start
12:00:50 INFO gaialake.cli: job generate: start
12:01:30 INFO gaialake.cli: job generate: done in 40.0 s {"files": 10}
12:01:30 INFO gaialake.cli: job find_streams: start
12:01:50 INFO gaialake.cli: job find_streams: done in 20.0 s {"candidates": 3}
12:01:50 INFO gaialake.cli: job null_sky: done in 60.0 s {"candidates": 3}
12:01:50 INFO gaialake.cli: job find_streams: start
12:02:20 INFO gaialake.gaialake.find_streams: figures: done in 9.0 s
12:02:20 INFO gaialake.cli: job find_streams: done in 30.0 s {"candidates": 5}
"""


def test_stage_seconds_keeps_the_stream_free_run_apart():
    assert stage_seconds(LOG) == {"generate": 50.0, "null_sky.generate": 40.0,
                                  "null_sky.find_streams": 20.0, "null_sky": 60.0,
                                  "find_streams": 30.0}


def test_pipeline_table_and_projection(tmp_path):
    ingest = dict(INGEST)
    pipe = {"seconds": 150.0, "peak_mib": 3000.0, "stages": stage_seconds(LOG), "sky_scale": 0.02,
            "rows": 1_000_000, "patches": 5, "patch_rows": 90_000, "anomaly_task_seconds": 600.0}
    text = write_benchmarks_md({"date": "d", "machine": "m", "versions": "v", "ingest": ingest,
                                "pipeline": pipe}, tmp_path / "B.md").read_text()
    rows = text[text.index("## `make run` per stage"):]
    assert "| generate | 50 | 36 % |" in rows and "| find_streams | 30 | 21 % |" in rows
    assert rows.index("| null_sky | 60 |") < rows.index("null_sky / generate | 40 |")
    # 600 task-s over 5 patches, 50x the stars per real patch, 96 patches: 160 core-hours
    assert "anomaly 160 core-hours" in text


def test_ratio_line_comes_from_the_largest_size_with_both_baselines(tmp_path):
    ingest = {**INGEST,
              "from_parquet": {"seconds": 8.0, "stage_s": 4.0, "peak_mib": 700.0, "rows_kept": 1000,
                               "rows_quarantined": 0, "rows_s_core": 62.5,
                               "stage_rows_s_core": 125.0}}
    scale = {"rows": 10_000_000, "pyarrow_s": 100.0, "ingest_s": 180.0, "ingest_stage_s": 150.0,
             "ratio_wall": 100 / 180, "ratio_stage": 100 / 150, "hats_s": 300.0,
             "hats_pipeline_s": 280.0, "hats_ratio_wall": 300 / 180, "hats_ratio_stage": 280 / 150,
             "cores": 2,
             "profile": {"seconds": 180.0, "python_start": 3.0, "spark_session": 9.0,
                         "other_job": 1.0, "check headers": 4.0,
                         "parse and write (arrow writer)": 135.0, "duplicate check": 6.0,
                         "write gaia_source (arrow writer)": 4.0,
                         "write quarantine and ingest_log": 9.0, "other_batch": 9.0,
                         "task_parse_core_s": 200.0, "task_write_core_s": 60.0}}
    text = write_benchmarks_md({"date": "d", "machine": "m", "versions": "v", "ingest": ingest,
                                "ingest_at_scale": scale}, tmp_path / "B.md").read_text()
    assert ("**Ratio (ingest per core / pyarrow per core): 0.56x whole process, 0.67x stage** at "
            "10,000,000 rows") in text
    assert "gaialake / hats-import at this size: 1.67x whole process, 1.87x stage" in text
    assert "| gaialake ingest from Parquet (pyarrow's output), whole process, 1,000 rows kept" in text
    assert "Where the ingest's 180 s went at 10,000,000 rows" in text
    assert "| parse and write (Spark tasks) | 135.0 | 75 % |" in text
    assert "| Spark session (JVM, Delta, Derby metastore) | 9.0 | 5 % |" in text
    assert "200 core-seconds parsing" in text


def test_make_bench_keeps_the_streams_section_and_names_re_measured_parts(tmp_path):
    path = tmp_path / "B.md"
    path.write_text("# Benchmarks\n\nold\n\n" + STREAMS_HEADING + "\n\nGD-1 line\n\n## Projection\n\nold\n")
    text = write_benchmarks_md({"date": "d", "machine": "m", "versions": "v", "ingest": INGEST,
                                "reruns": ["ingest at scale on e"]}, path).read_text()
    assert "Re-measured since: ingest at scale on e." in text
    assert text.count(STREAMS_HEADING) == 1 and "GD-1 line" in text and "\nold\n" not in text


def test_make_run_table_re_measured_alone_replaces_only_its_section(tmp_path):
    pipe = {"seconds": 150.0, "peak_mib": 3000.0, "stages": stage_seconds(LOG), "sky_scale": 0.02,
            "rows": 1_000_000, "patches": 5, "patch_rows": 90_000, "anomaly_task_seconds": 600.0}
    path = write_benchmarks_md({"date": "d", "machine": "m", "versions": "v", "ingest": INGEST,
                                "pipeline": {**pipe, "seconds": 900.0}}, tmp_path / "B.md")
    assert "Whole run 15.0 min" in path.read_text()
    text = write_pipeline_section({**pipe, "date": "e", "machine": "m2"}, path).read_text()
    section = text[text.index(PIPELINE_HEADING):text.index("## Projection")]
    assert "Re-measured alone by `gaialake bench --pipeline` on e; m2." in section
    assert "Whole run 2.5 min" in section and "Whole run 15.0 min" not in text
    assert text.count(PIPELINE_HEADING) == 1 and text.startswith("# Benchmarks")
    assert "anomaly 160 core-hours" in text          # the projection section is kept

"""`make bench`'s upsampling section: stages from the job's log, the projection to a large
snapshot and the BENCHMARKS.md section (pure parts; nothing is timed here)."""
from __future__ import annotations

import pytest

from gaialake.bench.markdown import (STREAMS_HEADING, UPSAMPLE_HEADING, write_benchmarks_md,
                                     write_upsample_section)
from gaialake.bench.upsample_bench import SCALING, project_upsample, upsample_stages
from tests.helpers import BENCH_INGEST as INGEST

LOG = """12:00:01 INFO gaialake.upsample: particles: start
12:00:05 INFO gaialake.upsample: particles: done 100,000 rows in 4.0 s, 25,000 rows/s (x)
12:00:05 INFO gaialake.upsample: train flow: done 800,000 rows in 120.5 s, 6,639 rows/s ({})
12:02:05 INFO gaialake.upsample: sample flow: done 320,000 rows in 30.0 s, 10,667 rows/s
12:02:35 INFO gaialake.upsample: baseline (EnBiD): done 320,000 rows in 20.0 s
12:02:55 INFO gaialake.upsample: 3-sample test: done 100,000 rows in 12.0 s
12:03:07 INFO gaialake.upsample: strong judge: done 120,000 rows in 9.0 s
12:03:16 INFO gaialake.upsample: DR3 files -> /tmp/b/dr3: done 250,000 rows in 40.0 s (8 files)
12:03:56 INFO gaialake.streams: patches: done 5 rows in 1.0 s
12:03:56 INFO gaialake.upsample: registered: done in 2.0 s
"""


def _results() -> dict:
    """bench_upsample's results for the LOG above on a 2-core machine (labels timed apart)."""
    stages = upsample_stages(LOG)
    for name, st in stages.items():
        st["cores"] = 1 if name == "train flow" else 2
        st["rows_s_core"] = st["rows"] / st["seconds"] / st["cores"]
    stages["labels"] = {"seconds": 3.0, "rows": 320_000, "cores": 1,
                        "rows_s_core": 320_000 / 3.0}
    return {"date": "d", "machine": "m", "seconds": 300.0, "peak_mib": 4000.0, "cores": 2,
            "n_particles": 100_000, "n_mock": 320_000, "dr3_rows": 250_000, "stages": stages,
            "aucs": {"auc_particles_vs_flow": 0.52, "auc_particles_vs_flow_strong": 0.61},
            "sample_stars_s_core": stages["sample flow"]["rows_s_core"],
            "flow_path_stars_s_core": 1234.0,
            "projection": project_upsample(stages, 100_000, 1e7)}


def test_stages_are_read_from_the_jobs_log_and_other_lines_ignored():
    stages = upsample_stages(LOG)
    assert list(stages) == ["particles", "train flow", "sample flow", "baseline (EnBiD)",
                            "3-sample test", "strong judge", "DR3 files"]
    assert stages["train flow"] == {"seconds": 120.5, "rows": 800_000}
    assert stages["DR3 files"] == {"seconds": 40.0, "rows": 250_000}


def test_projection_scales_linear_stages_with_the_particles_and_keeps_the_judges_fixed():
    stages = {"train flow": {"seconds": 100.0, "cores": 1},
              "sample flow": {"seconds": 30.0, "cores": 2},
              "labels": {"seconds": 3.0, "cores": 1},
              "strong judge": {"seconds": 9.0, "cores": 2}}
    proj = project_upsample(stages, 50_000, 5e6)
    assert proj["factor"] == pytest.approx(100.0)
    assert proj["stages"]["train flow"]["seconds"] == pytest.approx(100.0 * 100)
    assert proj["stages"]["sample flow"]["core_hours"] == pytest.approx(30.0 * 100 * 2 / 3600)
    assert proj["stages"]["strong judge"]["seconds"] == pytest.approx(9.0)
    assert proj["train_hours"] == pytest.approx(100.0 * 100 / 3600)
    # the labels run inside the sampling tasks: shown, not counted twice
    assert proj["core_hours"] == pytest.approx((100.0 * 100 + 30.0 * 100 * 2 + 9.0 * 2) / 3600)
    assert proj["flow_path_core_hours"] == pytest.approx((100.0 * 100 + 30.0 * 100 * 2) / 3600)
    assert set(SCALING) >= set(stages)


def test_section_shows_stages_rates_projection_and_both_judges(tmp_path):
    results = _results()
    text = write_upsample_section(results, tmp_path / "B.md").read_text()
    sample_rate = f"{results['sample_stars_s_core']:,.0f}"
    assert f"| sample flow | 30.0 | 320,000 | 2 | {sample_rate} |" in text
    assert "| labels (inside sample flow; timed apart) | 3.0 | 320,000 | 1 |" in text
    assert f"**Upsampled stars/s per core: {sample_rate} in the sampling stage" in text
    assert f"{results['projection']['core_hours']:,.1f} core-hours in all" in text
    assert "Projection to a 10,000,000-particle snapshot (x100 the particles)" in text
    assert "particles vs flow, seed's protocol 0.520" in text
    assert "particles vs flow, strong judge 0.610" in text
    assert "EnBiD-like vs flow, seed's protocol n/a" in text


def test_section_replaces_its_own_and_make_bench_keeps_it(tmp_path):
    path = tmp_path / "B.md"
    path.write_text(f"# Benchmarks\n\n## Ingest\n\nold ingest\n\n{STREAMS_HEADING}\n\nstreams\n")
    write_upsample_section({"date": "d1", "machine": "m", "error": "job failed"}, path)
    write_upsample_section(_results(), path)
    text = path.read_text()
    assert text.count(UPSAMPLE_HEADING) == 1 and "job failed" not in text
    assert "old ingest" in text and "streams" in text
    write_benchmarks_md({"date": "d2", "machine": "m", "versions": "v", "ingest": INGEST}, path)
    text = path.read_text()
    assert "old ingest" not in text and text.count(UPSAMPLE_HEADING) == 1
    assert STREAMS_HEADING in text and "| sample flow | 30.0 |" in text


def test_section_says_why_it_was_not_measured(tmp_path):
    text = write_upsample_section({"date": "d", "machine": "m", "error": "upsample failed (1)"},
                                  tmp_path / "B.md").read_text()
    assert "Not measured: upsample failed (1)" in text


def test_section_shows_the_training_budget_rows_when_more_epochs_ran(tmp_path):
    budget = [{"epochs": 16, "epochs_run": 16, "best_epoch": 15, "train_s": 120.4,
               "auc_particles_vs_flow_strong": 0.589, "auc_particles_vs_flow": 0.51},
              {"epochs": 40, "epochs_run": 31, "best_epoch": 24, "train_s": 301.0,
               "auc_particles_vs_flow_strong": 0.552, "auc_particles_vs_flow": None}]
    text = write_upsample_section({**_results(), "budget": budget}, tmp_path / "B.md").read_text()
    assert "| 16 | 16 (15) | 120 | 0.589 | 0.510 |" in text
    assert "| 40 | 31 (24) | 301 | 0.552 | n/a |" in text
    # one run alone (no bench.upsample_epochs) has no budget table
    alone = write_upsample_section({**_results(), "budget": budget[:1]},
                                   tmp_path / "C.md").read_text()
    assert "| epochs |" not in alone

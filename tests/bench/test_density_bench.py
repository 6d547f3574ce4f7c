"""The density throughput benchmark's log parsing, projection and BENCHMARKS.md section."""
from __future__ import annotations

import pytest

from gaialake.bench.density_bench import band_medians, density_stages, project_density
from gaialake.bench.markdown import DENSITY_HEADING, write_benchmarks_md, write_density_section
from tests.helpers import BENCH_INGEST

LOG = """22:00:00 INFO gaialake.cli: job density: start
22:00:20 INFO gaialake.density: catalog sample: done 50,000 rows in 20.0 s, 2,500 rows/s (50,000 RV stars read, 400,000 parent)
22:01:20 INFO gaialake.density: member 1: done in 12.0 s
22:02:20 INFO gaialake.density: train flows: done 250,000 rows in 60.0 s, 4,167 rows/s
22:03:00 INFO gaialake.density: fit potentials: done 400,000 rows in 40.0 s, 10,000 rows/s
22:03:30 INFO gaialake.density: density grid: done 3,000 rows in 30.0 s, 100 rows/s
22:03:35 INFO gaialake.density: write density_grid: done 3,000 rows in 5.0 s, 600 rows/s
"""


def test_stages_come_from_the_log_and_only_the_linear_ones_grow():
    stages = density_stages(LOG)
    assert set(stages) == {"catalog sample", "train flows", "fit potentials", "density grid",
                           "write density_grid"}
    assert stages["catalog sample"] == {"seconds": 20.0, "rows": 50_000}
    proj = project_density(stages, n_measured=50_000, cores=2, n_stars=500_000)
    assert proj["seconds"]["train flows"] == pytest.approx(600.0)        # x10, linear
    assert proj["seconds"]["fit potentials"] == pytest.approx(40.0)      # fixed
    assert proj["total_seconds"] == pytest.approx(200 + 600 + 40 + 30 + 5)
    assert proj["core_hours"] == pytest.approx(875 * 2 / 3600)


def test_density_section_is_written_and_kept_by_make_bench(tmp_path):
    stages = density_stages(LOG)
    results = {"date": "d", "machine": "m", "cores": 2,
               "sizes": [{"n_drawn": 100_000, "mock": "default", "heldout": False,
                          "rows_kept": 90_000, "n_sample": 50_000,
                          "mock_s": 30.0, "ingest_s": 20.0, "density_s": 160.0,
                          "density_peak_mib": 3000.0, "stages": stages,
                          "stars_s_core": 50_000 / 160 / 2,
                          "metrics": {"rho_rel_err_median": 0.41, "coverage_1sigma": 0.24,
                                      "rho_dm_gev_cm3": 1.7, "rho_dm_err_gev_cm3": 0.6,
                                      "rho_dm_true_gev_cm3": 0.49}},
                         {"n_drawn": 1_000_000, "mock": "default", "heldout": False,
                          "error": "density failed"},
                         {"n_drawn": 200_000, "mock": "plummer", "heldout": True,
                          "rows_kept": 150_000, "n_sample": 60_000, "streamed": True,
                          "mock_s": 10.0,
                          "ingest_s": 20.0, "density_s": 100.0, "density_peak_mib": 2000.0,
                          "stages": stages, "stars_s_core": 300.0,
                          "metrics": {"rho_rel_err_median": 0.2,
                                      "rho_rel_err_median_inner": 0.1,
                                      "coverage_1sigma": 0.6, "coverage_2sigma": 0.9,
                                      "rho_centre_msun_pc3": 1.5,
                                      "rho_centre_true_msun_pc3": 2.39},
                          "bands": band_medians({"rho_rel_err_median_0.5_1": 0.25,
                                                 "rho_rel_err_median_0_0.5": 0.125,
                                                 "rho_rel_err_median": 0.2,
                                                 "n_region_0_0.5": 40})}],
               "projection": project_density(stages, 50_000, 2, 6e6)}
    path = write_density_section(results, tmp_path / "B.md")
    text = path.read_text()
    assert ("| default | 100,000 | 90,000 | 50,000 | 30 | 20 | 160 (3000) | 20 | 60 | 40 | 30 "
            "| 156 | 41.0% (n/a) | 0.24 / n/a |") in text
    assert "1.70 ± 0.60 (true 0.49)" in text
    assert "| default | 1,000,000 | failed: density failed |" in text
    assert ("| plummer (held out) | 200,000 | 150,000 | 60,000 streamed | 10 | 20 | 100 (2000) | 20 | 60 "
            "| 40 | 30 | 300 | 20.0% (10.0%) | 0.60 / 0.90 | 1.50 (true 2.39) |") in text
    assert "- plummer (held out), 200,000 tracers: 0-0.5 12.5%, 0.5-1 25.0%" in text
    assert "- default, 100,000 tracers" not in text          # no bands: no line
    assert "**Projection to 6,000,000 RV stars**" in text and "GPU: not measured" in text
    text = write_benchmarks_md({"date": "d2", "machine": "m", "versions": "v",
                                "ingest": BENCH_INGEST}, path).read_text()
    assert text.count(DENSITY_HEADING) == 1 and "1.70 ± 0.60" in text

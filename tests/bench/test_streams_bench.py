"""make bench-streams' pure parts: the anomaly log's streamed groups, the per-patch rows, the
reported method and the BENCHMARKS.md section."""
from __future__ import annotations

import numpy as np
import pandas as pd

from gaialake.bench.markdown import STREAMS_HEADING, streams_bench_lines, write_streams_section
from gaialake.bench.streams_bench import (null_sets, patch_rows, reported_method,
                                          streamed_groups)
from gaialake.conf import load_conf

LOG = """12:00 INFO anomaly: stream group patch 22 pm_phi sr1 (1,204,311 rows): start
12:09 INFO anomaly: stream group patch 22 pm_phi sr1 (1,204,311 rows): done in 512.5 s
12:10 INFO anomaly: stream group patch 21 pm_lam sr2 (1,010,000 rows): done in 300.0 s
12:15 INFO anomaly: stream group patch 21 pm_lam sr2 retraining 1 (1,010,000 rows): done in 290.0 s"""


def _stars() -> pd.DataFrame:
    return pd.DataFrame({"patch_id": [21] * 6 + [22] * 4, "source_id": np.arange(10),
                         "fiducial": [True] * 4 + [False] * 2 + [True] * 4})


def test_streamed_groups_are_read_from_the_anomaly_log():
    g = streamed_groups(LOG)
    assert g.to_dict("list") == {"patch_id": [22, 21, 21],
                                 "pm_axis": ["pm_phi", "pm_lam", "pm_lam"],
                                 "sr_index": [1, 2, 2], "rows": [1_204_311, 1_010_000, 1_010_000],
                                 "seconds": [512.5, 300.0, 290.0]}


def test_patch_rows_count_stars_groups_and_streamed_groups():
    scores = pd.DataFrame({"patch_id": [21, 21, 21, 22], "pm_axis": ["pm_phi"] * 3 + ["pm_lam"],
                           "sr_lo": [-3.0, -3.0, 3.0, 3.0]})
    rows = {r["patch_id"]: r for r in patch_rows(_stars(), scores, streamed_groups(LOG), None)}
    assert (rows[21]["stars"], rows[21]["fiducial"], rows[21]["groups"]) == (6, 4, 2)
    assert rows[22]["groups_streamed"] == 1 and rows[22]["max_streamed_rows"] == 1_204_311
    assert "purity" not in rows[21]


def _results(fp_rate: float = 1 / 3) -> dict:
    patch = {"patch_id": 21, "stars": 900_000, "fiducial": 400_000, "groups": 10,
             "groups_streamed": 1, "max_streamed_rows": 1_100_000}
    fp = {"threshold": 9.0, "n_realizations": 3, "null_maxima": "9.00, 6.00, 5.00",
          "null_max_min": 5.0, "null_max_median": 6.0, "null_max_max": 9.0,
          "n_fp_realizations": 1, "fp_rate": fp_rate, "fp_rate_lo": 0.01, "fp_rate_hi": 0.9}
    return {"n_stars": 5.9e6, "natural_count": 5.9e6, "scale": 1.0, "region": "cone",
            "method": "cathode", "max_group_rows": 999999, "sample_rows": 200000,
            "max_epochs": 8, "top_n": 300, "false_positive": fp,
            "skies": [{"name": "stream-free 0", "jobs": {}, "patches": [patch]},
                      {"name": "gd1", "jobs": {"anomaly": {"seconds": 900.0, "peak_mib": 3000}},
                       "patches": [{**patch, "n_truth": 100, "n_true": 60, "purity": 0.75},
                                   {**patch, "patch_id": 22, "n_truth": 100, "n_true": 20,
                                    "purity": 0.5}]}]}


def test_streams_section_pools_the_patches_into_the_gd1_line():
    lines = streams_bench_lines(_results())
    assert lines[0] == STREAMS_HEADING
    # purity 80 / (80 + 40) members found; completeness 80 / 200 in the fiducial discs
    assert ("GD-1 at DR3 density: purity 0.67, completeness 0.40, false-positive rate 0.33 "
            "[0.01, 0.90]") in lines
    assert sum(line.startswith("| gd1 | ") for line in lines) == 2
    assert any("1 (1,100,000)" in line for line in lines)
    assert any("find_streams.top_n 300." in line for line in lines)   # the setting it ran with


def test_streams_section_names_the_union_and_each_methods_recovery():
    results = {**_results(), "method": "union", "union": ["cwola", "ranode"],
               "recovery": {"cwola": {"purity": 1.0, "completeness": 0.33, "purity_once": 1.0,
                                      "completeness_once": 0.31},
                            "union": {"purity": 0.67, "completeness": 0.4,
                                      "purity_once": float("nan"), "completeness_once": 0.0}}}
    lines = streams_bench_lines(results)
    assert any("Score `union` (the lines of `cwola`, `ranode` merged);" in line
               for line in lines)
    per_method = [line for line in lines if line.startswith("Each method's")]
    assert len(per_method) == 1
    assert ("`cwola` purity 1.00 [1.00], completeness 0.33 [0.31]; "
            "`union` purity 0.67 [n/a], completeness 0.40 [0.00].") in per_method[0]
    # one method: the score named alone; no recovery (a stream-free run): no per-method line
    lines = streams_bench_lines({**_results(), "union": []})
    assert any("Score `cathode`;" in line for line in lines)
    assert not any(line.startswith("Each method's") for line in lines)


def test_reported_method_is_the_union_when_one_is_set():
    assert reported_method(load_conf(sets=["streams.method=cwola"])) == "cwola"
    conf = load_conf(sets=["streams.method=cwola", 'find_streams.union=["cwola", "ranode"]'])
    assert reported_method(conf) == "union"


def test_streams_section_replaces_its_own_and_keeps_the_rest(tmp_path):
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("# Benchmarks\n\n## Ingest\n\nrows\n")
    write_streams_section(_results(), path)
    write_streams_section(_results(fp_rate=0.0), path)
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\n## Ingest\n\nrows\n")
    assert text.count(STREAMS_HEADING) == 1 and "false-positive rate 0.00" in text


def test_null_sets_put_each_realization_in_its_own_paths_and_seed(tmp_path):
    conf = load_conf(sets=[f"paths.warehouse={tmp_path}/wh", "null_sky.realizations=2"])
    sets = [null_sets(conf, k) for k in range(2)]
    assert f"--set=paths.warehouse={tmp_path}/wh_nostreams_1" in sets[1]
    assert "--set=seed=20261127" in sets[1] and "--set=sky.streams=off" in sets[0]
    assert "--set=find_streams.null_candidates=null" in sets[0]

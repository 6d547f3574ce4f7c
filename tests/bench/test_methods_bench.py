"""gaialake bench --methods: variants, the regions measured, one variant scored for real on the
toy patch and its stream-free twin, and the BENCHMARKS.md section."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from gaialake.bench.markdown import (METHODS_HEADING, STREAMS_HEADING, methods_bench_lines,
                                     write_methods_section)
from gaialake.bench.methods_bench import (bench_methods, measured_regions, parse_variant,
                                          score_variant)
from gaialake.conf import load_conf
from gaialake.streams.linefind import LineFindSettings
from gaialake.streams.regions import SignalRegion
from tests.helpers import STREAM_SR, realistic_search_settings, toy_patch


def test_variants_are_a_method_and_an_optional_classifier_kind():
    assert parse_variant("anode") == ("anode", None)
    assert parse_variant("cwola:nn_ensemble") == ("cwola", "nn_ensemble")
    for bad in ("anodes", "cwola:forest"):
        with pytest.raises(ValueError, match="bench.methods.variants"):
            parse_variant(bad)


def test_a_bad_variant_or_per_patch_fails_before_any_scoring(tmp_path):
    missing = tmp_path / "no_warehouse"
    for sets, key in ((["bench.methods.variants=[anode, cwola:forest]"], "variants"),
                      (["bench.methods.per_patch=0"], "per_patch")):
        with pytest.raises(ValueError, match=f"bench.methods.{key}"):
            bench_methods(load_conf(sets=sets), missing, missing)
    with pytest.raises(FileNotFoundError, match="bench-streams first"):
        bench_methods(load_conf(), missing, missing)


def test_the_region_with_most_fiducial_members_is_measured_in_each_patch():
    regions = [SignalRegion("pm_phi", 0, -9.0, -3.0), SignalRegion("pm_phi", 1, -3.0, 3.0),
               SignalRegion("pm_lam", 0, -9.0, -3.0)]
    stars = pd.DataFrame({"patch_id": [1, 1, 1, 1, 1, 2, 2],
                          "pm_phi": [-5.0, -5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
                          "pm_lam": [-4.0, -4.0, -4.0, 5.0, 5.0, 5.0, 5.0],
                          "fiducial": [True, True, True, False, True, True, True]})
    member = np.array([True, True, True, True, False, False, False])
    got = measured_regions(stars, member, regions)
    # patch 1: pm_lam [-9, -3) holds 3 fiducial members, pm_phi [-9, -3) 2, [-3, 3) 1 (the
    # non-fiducial member does not count); patch 2 holds none
    assert [(p, r.axis, r.lo, n) for p, r, n in got] == [(1, "pm_lam", -9.0, 3)]
    two = measured_regions(stars, member, regions, per_patch=2)
    assert [(r.axis, n) for _, r, n in two] == [("pm_lam", 3), ("pm_phi", 2)]


@pytest.fixture(scope="module")
def cwola_on_toy():
    """CWoLa (boosted trees, trained for real) on the 1.4 %-contrast toy patch and its twin."""
    settings = replace(realistic_search_settings(), methods=("cwola",))
    out = {}
    for name, n_stream in (("stream", 150), ("free", 0)):
        patch = toy_patch(30000, n_stream, seed=2)
        members = set(patch.loc[patch.stream, "source_id"].astype(np.int64))
        out[name] = score_variant(patch, STREAM_SR, settings, members, 100,
                                  LineFindSettings(), seed=3)
    return out


def test_a_variant_is_measured_on_the_stream_and_its_stream_free_twin(cwola_on_toy):
    got, free = cwola_on_toy["stream"], cwola_on_toy["free"]
    assert got["members"] > 100 and got["auc"] > 0.8, got
    chance = 100 * got["members"] / got["scored"]          # members in a random top 100
    assert got["top_members"] > 10 * chance and got["best_member_frac"] > 0.75, got
    assert got["best_z"] > 2 * free["best_z"] > 0, (got, free)
    assert free["members"] == 0 and np.isnan(free["auc"]) and free["top_members"] == 0
    assert free["scored"] > 4000 and got["seconds"] > 0


def _results() -> dict:
    row = {"variant": "cwola:nn_ensemble", "patch_id": 22, "axis": "pm_phi", "sr_lo": -9.0,
           "sr_hi": -3.0, "fiducial_members": 295, "stream_members": 295, "stream_auc": 0.904,
           "stream_top_members": 149, "stream_best_z": 21.3, "stream_best_member_frac": 0.97,
           "stream_seconds": 441.0, "null_best_z": 4.2, "null_seconds": 430.0}
    return {"rows": [row], "stream": "gd1", "top_n": 300, "per_patch": 2,
            "classifier": {"max_iter": 200},
            "flow": {"type": "maf"}, "train": {"max_epochs": 8}, "date": "2026-12-04",
            "machine": "vm", "stream_warehouse": "wh", "null_warehouse": "wh_nostreams"}


def test_the_section_has_one_row_per_variant_and_region(tmp_path):
    lines = methods_bench_lines(_results())
    assert lines[0] == METHODS_HEADING
    assert "In each patch the 2 signal region(s) holding the most gd1" in lines[3]
    row = next(line for line in lines if line.startswith("| cwola:nn_ensemble"))
    assert row == ("| cwola:nn_ensemble | 22 | pm_phi [-9, -3) | 295 | 0.904 | 149 | 21.3 (0.97) "
                   "| 4.2 | 441, 430 |")
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"# Benchmarks\n\n{STREAMS_HEADING}\n\nkept\n")
    write_methods_section(_results(), path)
    text = path.read_text()
    assert "kept" in text and text.count(METHODS_HEADING) == 1 and "0.904" in text

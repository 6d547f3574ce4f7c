"""`gaialake anomaly` and `gaialake find_streams` with ``streams.retrainings`` K = 2.

A small toy sky (tests/helpers.py), one signal region (pm_phi in [-9, -3) mas/yr, its control
region [-3, 3)): a patch of 4,000 stars with a stream, whose group is over
``streams.max_group_rows`` and goes through the Petastorm streaming path, and a patch of 2,000
stars whose group is trained in a task. Every group of both paths must be scored in both
retrainings, with other seeds (other scores of the same stars); the registered champion is
retraining 0's; find_streams writes ``n_retrainings`` and counts a candidate only when it is
found in both retrainings (``find_streams.consistency.min_retrainings`` defaults to K).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import toy_patch, toy_search_sets, write_toy_sky

K = 2


@pytest.fixture(scope="module")
def searched(spark, tmp_path_factory):
    from gaialake.conf import load_conf
    from gaialake.io.delta import read_table, write_table
    from gaialake.jobs import anomaly, find_streams, patches

    tmp = tmp_path_factory.mktemp("retrainings")
    conf = load_conf(sets=toy_search_sets(
        tmp, 4, 30, f"streams.retrainings={K}", "streams.pm_range_masyr=[-9.0, 3.0]",
        "streams.sr_step_masyr=12.0", "streams.max_group_rows=2200",
        "find_streams.null_candidates=null", "find_streams.known_tracks.source=none",
        f"find_streams.plots_dir={tmp / 'figures'}", "find_streams.max_plots=0",
        f"paths.report={tmp / 'report'}"))
    near = toy_patch(4000, 150, seed=1)
    far = toy_patch(2000, 0, seed=2).assign(source_id=lambda d: d.source_id + 10**9)
    a, b = write_toy_sky(spark, conf, near, far, np.random.default_rng(3))
    truth = near.loc[near.stream, ["source_id"]].assign(stream="toy")
    write_table(spark.createDataFrame(truth), conf, "truth_streams")
    patches.run(conf)
    summary = anomaly.run(conf)
    found = find_streams.run(conf)
    scores = read_table(spark, conf, "anomaly_scores").toPandas()
    cands = read_table(spark, conf, "stream_candidates").toPandas()
    return conf, int(a.patch_id), int(b.patch_id), summary, scores, found, cands


def test_every_group_of_both_paths_is_scored_in_every_retraining(searched):
    _, near, far, summary, scores, _, _ = searched
    assert summary["retrainings"] == K and summary["groups_streamed"] == 1
    assert summary["groups_trained"] == 2 * K              # 2 patches x 1 SR x K
    assert set(scores.patch_id) == {near, far} and set(scores.retraining) == set(range(K))
    for key, d in scores.groupby(["patch_id", "sr_lo", "method"]):
        first, second = (d[d.retraining == k].set_index("source_id").score for k in range(K))
        assert first.index.sort_values().equals(second.index.sort_values()), key
        # another seed: another model, not a copy of retraining 0
        assert not np.allclose(first.sort_index(), second.sort_index()), key


def test_the_champion_is_retraining_zeros_model(searched, spark):
    from gaialake.io import tracking
    from gaialake.io.delta import read_table
    from gaialake.streams.scorer import predict

    conf, _, _, _, scores, _, _ = searched
    stars = read_table(spark, conf, "patch_stars").where("fiducial").toPandas()
    module = tracking.load_torch_model(conf, "gaialake-anode")
    got = predict(module, stars)
    assert set(got.retraining) == {0}
    for k, close in ((0, True), (1, False)):
        table = scores[(scores.method == "anode") & (scores.retraining == k)]
        both = got.merge(table, on=["patch_id", "source_id", "pm_axis", "sr_lo"])
        assert len(both) == len(table)
        assert np.allclose(both.score_x, both.score_y, rtol=1e-4, atol=1e-4) == close, k


def test_find_streams_counts_only_candidates_found_in_every_retraining(searched):
    _, _, _, _, _, found, cands = searched
    assert found["retrainings"] == K and len(cands) > 0
    assert cands.n_retrainings.between(1, K).all()
    assert not (cands.above_threshold & (cands.n_retrainings < K)).any()
    for method, fp in found["false_positive"].items():
        mine = cands[cands.method == method]
        assert fp["min_retrainings"] == K
        assert fp["n_inconsistent"] == int((mine.n_retrainings < K).sum()), method

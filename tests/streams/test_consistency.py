"""The retraining-consistency filter (issue 18 item 4(a)): a candidate counts only if it reappears
across K retrainings with different seeds.

Pure part: constructed protoclusters of three retrainings in one patch frame: a line found in
every retraining (by other stars in one of them: the geometric match), a line found only in
retraining 0, a line found only in retraining 1, and retraining 0's line again under another
method. Trained part: the toy patch of tests/streams/test_realistic_contrast.py (30,000 field
stars, a 150-star cold stream, ~1.4 % of its signal region) scored by CATHODE three times with
the seeds of :func:`gaialake.streams.search_spark.group_seed`, then line finding per retraining
and the merge: the stream's candidate must survive ``min_retrainings`` = 2 of K = 3.

Measured 2026-12 (these seeds, retrainings k = 0 .. 4): member AUC 0.90-0.94 in every
retraining, but the stream's line (z 5.2-11.2, ~90 % members) is found in 4 of the 5: retraining
1's top-100 stars hold no proper-motion cluster on it. At this contrast, requiring every one of
K = 3 retrainings (the default ``min_retrainings``) loses this stream; 2 of 3 keeps it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gaialake.conf import load_conf
from gaialake.models.train import TrainSettings
from gaialake.streams.candidates import (MergeSettings, apply_thresholds, consistent,
                                         match_between, match_matrix, merge_protoclusters,
                                         retraining_settings, segment_geometry)
from gaialake.streams.linefind import LineFindSettings, protoclusters_frame
from gaialake.streams.patch_grid import patch_centers
from gaialake.streams.regions import FeatureMap
from gaialake.streams.search import SearchSettings, score_group
from gaialake.streams.search_spark import group_seed
from tests.helpers import STREAM_SR, toy_patch

CENTERS = patch_centers(2, 30.0, [21])
MERGE = MergeSettings()
FLOOR = 7.0


def _pc(retraining: int, theta: float, rho: float, pm_phi: float, ids, significance: float,
        method: str = "cathode") -> dict:
    """One protocluster row of patch 21 (a 12 deg segment of the line theta, rho; deg)."""
    ids = list(ids)
    return {"patch_id": 21, "pm_axis": "pm_phi", "sr_lo": -9.0, "sr_hi": -3.0, "method": method,
            "retraining": retraining, "cluster": 0, "theta_deg": theta, "rho_deg": rho,
            "t_min_deg": -6.0, "t_max_deg": 6.0, "n_cluster": len(ids), "n_line": len(ids),
            "n_expected": 2.0, "significance": significance, "pm_phi": pm_phi, "pm_lam": 2.5,
            "pm_phi_std": 0.3, "pm_lam_std": 0.3, "member_ids": ids,
            "member_scores": [1.0] * len(ids)}


def _protoclusters() -> pd.DataFrame:
    return pd.DataFrame([
        _pc(0, 30.0, 1.0, -6.0, range(0, 20), 12.0),          # the stream: retraining 0
        _pc(1, 31.0, 1.1, -6.2, range(100, 120), 11.0),       # ... 1: other stars, same line
        _pc(2, 30.0, 1.0, -6.0, range(5, 25), 10.5),          # ... 2: shared stars
        _pc(0, 120.0, -4.0, 3.0, range(200, 216), 10.0),      # noise of retraining 0 only
        _pc(1, 70.0, 5.0, -1.0, range(300, 316), 9.0),        # noise of retraining 1 only
        _pc(2, 120.0, -4.0, 3.0, range(400, 416), 9.5, "anode"),   # another method's line
    ])


def test_a_line_of_every_retraining_is_kept_and_a_line_of_one_is_dropped():
    pcs = _protoclusters()
    cands, members = merge_protoclusters(pcs, CENTERS, MERGE)
    assert len(cands) == 2                           # retraining 0's lines only
    stream = cands.set_index("theta").loc[30.0]
    noise = cands.set_index("theta").loc[120.0]
    assert stream.n_retrainings == 3 and noise.n_retrainings == 1
    assert set(members.source_id) == set(range(0, 20)) | set(range(200, 216))
    # the consistency filter on, at the threshold's floor: the noise line no longer counts
    fp = apply_thresholds(cands, None, FLOOR, min_retrainings=3)
    assert cands.set_index("theta").above_threshold.to_dict() == {30.0: True, 120.0: False}
    assert fp["cathode"]["n_inconsistent"] == 1 and fp["cathode"]["n_above"] == 1
    # off (min 1, K = 1's behaviour): both lines are above the floor
    apply_thresholds(cands, None, FLOOR, min_retrainings=1)
    assert cands.above_threshold.all()


def test_candidates_of_retraining_zero_do_not_depend_on_the_other_retrainings():
    pcs = _protoclusters()
    alone, _ = merge_protoclusters(pcs[pcs.retraining == 0], CENTERS, MERGE)
    every, _ = merge_protoclusters(pcs, CENTERS, MERGE)
    pd.testing.assert_frame_equal(alone.drop(columns="n_retrainings"),
                                  every.drop(columns="n_retrainings"))
    assert (alone.n_retrainings == 1).all()


def test_retrainings_are_matched_by_the_merge_test():
    pcs = _protoclusters()
    geo = segment_geometry(pcs, CENTERS, MERGE.n_samples)
    first, second = np.flatnonzero(pcs.retraining == 0), np.flatnonzero(pcs.retraining == 1)
    block = match_between(pcs.iloc[first], {k: v[first] for k, v in geo.items()},
                          pcs.iloc[second], {k: v[second] for k, v in geo.items()}, MERGE)
    np.testing.assert_array_equal(block, match_matrix(pcs, geo, MERGE)[np.ix_(first, second)])
    assert block.tolist() == [[True, False], [False, False]]


def test_stream_free_candidates_go_through_the_same_filter_before_their_maxima():
    cands = pd.DataFrame({"method": ["cathode"] * 2, "significance": [12.0, 8.0],
                          "n_retrainings": [3, 3]})
    # realization 0's maximum (15) is found in one retraining only; its consistent one is 9
    null = pd.DataFrame({"method": ["cathode"] * 3, "significance": [15.0, 9.0, 6.0],
                         "n_retrainings": [1, 3, 3], "realization": [0, 0, 1]})
    fp = apply_thresholds(cands, null, FLOOR, 2, min_retrainings=3)["cathode"]
    assert fp["threshold"] == 9.0 and fp["null_maxima"] == "9.00, 6.00"
    assert fp["n_null_inconsistent"] == 1 and cands.above_threshold.tolist() == [True, False]
    fp = apply_thresholds(cands, null, FLOOR, 2, min_retrainings=1)["cathode"]
    assert fp["threshold"] == 15.0 and not cands.above_threshold.any()
    assert consistent(null, 3).tolist() == [False, True, True]


def test_min_retrainings_defaults_to_every_retraining_and_must_lie_in_range():
    assert retraining_settings(load_conf()) == (1, 1)
    assert retraining_settings(load_conf(sets=["streams.retrainings=3"])) == (3, 3)
    two = load_conf(sets=["streams.retrainings=3", "find_streams.consistency.min_retrainings=2"])
    assert retraining_settings(two) == (3, 2)
    with pytest.raises(ValueError, match="min_retrainings"):
        retraining_settings(load_conf(sets=["find_streams.consistency.min_retrainings=2"]))


def test_retraining_zero_keeps_the_seed_of_a_search_without_retrainings():
    conf = load_conf()
    seeds = [group_seed(conf, 21, "pm_phi", 1, k) for k in range(3)]
    assert seeds[0] == conf.seed_for("anomaly", 21, "pm_phi", 1)
    assert len(set(seeds)) == 3


# -- trained: three real retrainings of CATHODE on the realistic-contrast toy patch -------------

SETTINGS = SearchSettings(methods=("cathode",), flow={"type": "maf", "transforms": 4, "hidden": 32},
                          train=TrainSettings(lr=1e-3, batch_size=256, max_epochs=20, patience=4),
                          fmap=FeatureMap(15.0, {3: (None, 20.2), 4: (0.5, 1.0)}),
                          classifier={"max_iter": 100}, min_patch_stars=100, min_sr_stars=50)
#: Line significance the stream's candidate must reach (test_realistic_contrast's THRESHOLD_Z).
THRESHOLD_Z = 6.0


@pytest.fixture(scope="module")
def retrained():
    torch.set_num_threads(1)
    conf = load_conf()
    patch = toy_patch(30000, 150, seed=2)
    fid = patch[patch.fiducial].set_index("source_id")
    frames = []
    for k in range(3):
        seed = group_seed(conf, 21, STREAM_SR.axis, STREAM_SR.index, k)
        scores = score_group(patch, STREAM_SR, SETTINGS, seed).scores
        rows = fid.loc[scores.source_id].reset_index().assign(
            score=scores.score.to_numpy(), patch_id=21, pm_axis=STREAM_SR.axis,
            sr_lo=STREAM_SR.lo, sr_hi=STREAM_SR.hi, method="cathode", retraining=k)
        frames.append(protoclusters_frame(rows, LineFindSettings()))
    pcs = pd.concat(frames, ignore_index=True)
    cands, members = merge_protoclusters(pcs, CENTERS, MERGE)
    return patch, pcs, cands, members


def test_the_trained_streams_candidate_reappears_in_two_of_three_retrainings(retrained):
    patch, pcs, cands, members = retrained
    assert set(pcs.retraining) == {0, 1, 2}
    # the seeds differ, so the retrainings are different models: different lines' stars
    per_k = [set(np.concatenate(pcs.member_ids[pcs.retraining == k].to_numpy()))
             for k in range(3)]
    assert per_k[0] != per_k[1] or per_k[0] != per_k[2]
    stream_ids = set(patch.source_id[patch.stream])
    top = cands.sort_values("significance").iloc[-1]
    mine = set(members.source_id[members.candidate_id == top.candidate_id])
    assert len(mine & stream_ids) / len(mine) > 0.75
    assert top.n_retrainings >= 2 and top.significance > THRESHOLD_Z
    apply_thresholds(cands, None, THRESHOLD_Z, min_retrainings=2)
    assert cands.set_index("candidate_id").above_threshold[top.candidate_id]

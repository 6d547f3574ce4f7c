"""The stream search at a stated, realistic contrast, with trained models only (no injected scores).

Conditions: the toy patch of :func:`tests.helpers.toy_patch` (seed 2) with 30,000 field stars and
150 stars of a cold stream (proper-motion dispersion 0.3 mas/yr, line width 0.25 deg); the stream
is about 1.4 % of the stars of its signal region (pm_phi in [-9, -3) mas/yr), three times fainter
than tests/streams/test_anode_cathode.py's 4 %. Its stream-free twin is the same field (same seed,
so the same field stars) without the stream. Models: the project's CATHODE (control-region MAF
4 x 32, <= 20 epochs; boosted trees, 5 folds) through :func:`score_group`, then the project's line
finder on the scores. The same threshold on the line significance decides both runs.

Measured 2026-12 (this seed): member AUC 0.94, best line z = 7.4 with 89 % stream members.
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from tests.helpers import (STREAM_SR, THRESHOLD_Z, realistic_search_settings,
                           search_toy_patch)

SETTINGS = realistic_search_settings()


def _search(n_stream: int):
    return search_toy_patch(n_stream, SETTINGS)


@pytest.fixture(scope="module")
def with_stream():
    return _search(150)


@pytest.fixture(scope="module")
def stream_free():
    return _search(0)


def test_the_stated_contrast_holds(with_stream):
    patch = with_stream[0]
    in_sr = STREAM_SR.contains(patch[STREAM_SR.axis].to_numpy())
    fraction = patch.stream[in_sr].mean()
    assert 0.01 < fraction < 0.02, fraction


def test_trained_cathode_ranks_the_stream_and_its_line_passes_the_threshold(with_stream):
    _, stars, score, lines = with_stream
    member = stars.stream.to_numpy()
    assert roc_auc_score(member, score) > 0.88
    best = max(lines, key=lambda p: p.significance)
    assert best.significance > THRESHOLD_Z, best.significance
    assert stars.loc[best.source_id, "stream"].mean() > 0.75


def test_the_stream_free_twin_gives_no_line_above_the_threshold(stream_free):
    _, _, score, lines = stream_free
    assert np.isfinite(score).all() and len(score) > 4000
    assert max((p.significance for p in lines), default=0.0) < THRESHOLD_Z

"""The stream search's streaming path (Petastorm) on a small group forced through it.

The same toy patch group (tests/helpers.py) is trained in memory
(:func:`score_group`, what an ``applyInPandas`` task runs) and streamed
(:func:`gaialake.streams.streaming.stream_group`, a driver-side loop over a Petastorm loader);
the streamed control-region flow must describe fresh stars of the same sky as well as the
in-memory one, and every method must score every fiducial signal-region star once.
"""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from gaialake.models.flows import build_flow
from gaialake.models.train import TrainSettings
from gaialake.streams.search import SearchSettings, hash_unit, score_group
from gaialake.streams.regions import FeatureMap, features
from tests.helpers import STREAM_SR, toy_patch

PM_RANGE = (-9.0, 3.0)


def _settings() -> SearchSettings:
    return SearchSettings(methods=("cathode", "anode", "ranode", "cwola"),
                          flow={"type": "maf", "transforms": 3, "hidden": 32},
                          train=TrainSettings(lr=2e-3, batch_size=256, max_epochs=8, patience=3),
                          fmap=FeatureMap(15.0, {3: (None, 20.2), 4: (0.5, 1.0)}),
                          classifier={"max_iter": 40}, min_patch_stars=500, min_sr_stars=100,
                          pm_range=PM_RANGE)


def _nll(state: dict, flow_config: dict, fmap: dict, stars: pd.DataFrame) -> float:
    """Mean -log p of stars in the mapped space of ``fmap`` under a CR flow."""
    flow = build_flow(flow_config)
    flow.load_state_dict(state)
    z, c = FeatureMap.from_dict(fmap).transform(*features(stars, STREAM_SR.axis))
    with torch.no_grad():
        return float(-flow(torch.as_tensor(c)).log_prob(torch.as_tensor(z)).mean())


def _search_group(spark, patch: pd.DataFrame) -> tuple:
    """The toy patch as the search's rows (a Spark DataFrame) of one group, and that group."""
    rows = spark.createDataFrame(patch.drop(columns=["stream"]).assign(
        patch_id=5, pm_axis="pm_phi", sr_index=STREAM_SR.index, sr_lo=STREAM_SR.lo,
        sr_hi=STREAM_SR.hi))
    group = {"patch_id": 5, "pm_axis": "pm_phi", "sr_index": STREAM_SR.index,
             "sr_lo": STREAM_SR.lo, "sr_hi": STREAM_SR.hi, "count": len(patch)}
    return rows, group


@pytest.fixture(scope="module")
def both(spark, tmp_path_factory):
    from gaialake.conf import load_conf
    from gaialake.streams.streaming import StreamSettings, stream_group

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("streaming")
    conf = load_conf(sets=[f"paths.warehouse={tmp / 'warehouse'}", "spark.shuffle_partitions=4"])
    settings = _settings()
    # the rows of the search: the pm range and, for CWoLa, its sidebands past the range's edge
    # (the SR [-9, -3) is the range's first: sidebands [-12, -9) and [-3, 0))
    lo, hi = settings.row_range()
    patch = toy_patch(5000, 200, seed=7)
    patch = patch[(patch.pm_phi >= lo) & (patch.pm_phi < hi)]
    patch = patch.sort_values("source_id").reset_index(drop=True)
    seed = conf.seed_for("anomaly", 5, "pm_phi", STREAM_SR.index)
    memory = score_group(patch, STREAM_SR, settings, seed)
    rows, group = _search_group(spark, patch)
    # classifier_rows below the SR count: part of the SR is scored by the fold average
    streaming = StreamSettings(max_group_rows=100, sample_rows=10**6, val_rows=10**6,
                               classifier_rows=600)
    out = str(tmp / "staged")
    payload = stream_group(conf, settings, streaming, rows, group, out)
    staged = spark.read.parquet(out).toPandas()
    return patch, settings, memory, payload, staged


def test_streamed_flow_has_the_validation_loss_of_the_in_memory_flow(both):
    patch, settings, memory, payload, _ = both
    assert payload["metrics"]["streamed"] == 1 and not payload["skipped"]
    # the whole group was the sample: the same feature map as in memory
    np.testing.assert_allclose(payload["feature_map"]["mean"], memory.feature_map["mean"],
                               rtol=1e-6, atol=1e-9)
    fresh = toy_patch(3000, 0, seed=8)
    _, m = features(fresh, "pm_phi")
    fresh_cr = fresh[~STREAM_SR.contains(m) & (m >= PM_RANGE[0]) & (m < PM_RANGE[1])]
    cfg = {**settings.flow, "features": 5, "context": 1}
    nll_stream = _nll(payload["weights"]["cr"], cfg, payload["feature_map"], fresh_cr)
    nll_memory = _nll(memory.weights["cr"], cfg, memory.feature_map, fresh_cr)
    nll_untrained = _nll(build_flow(cfg, seed=1).state_dict(), cfg, memory.feature_map, fresh_cr)
    # measured on 2,000 fresh CR stars: 7.026 (streamed), 7.029 (memory), 7.43 (untrained).
    # (The two paths' own validation losses differ by ~0.2: different 540-star validation sets.)
    assert nll_stream < nll_memory + 0.08, (nll_stream, nll_memory)
    assert nll_stream < nll_untrained - 0.25, (nll_stream, nll_untrained)
    assert payload["metrics"]["cr_best_epoch"] >= 3         # it kept improving: it learned


def test_both_paths_keep_the_control_region_in_the_range_and_both_sidebands(both):
    patch, settings, memory, payload, _ = both
    m = patch.pm_phi.to_numpy()
    assert settings.row_range() == (PM_RANGE[0] - 3.0, PM_RANGE[1] + 3.0)
    want = {"n_sr": int(STREAM_SR.contains(m).sum()),
            "n_cr": int((settings.in_range(m) & ~STREAM_SR.contains(m)).sum()),
            "n_sb": int((((m >= -12) & (m < -9)) | ((m >= -3) & (m < 0))).sum())}
    assert (m < PM_RANGE[0]).sum() > 100            # rows past the range's edge are there
    for metrics in (memory.metrics, payload["metrics"]):
        assert {k: metrics[k] for k in want} == want, metrics


def test_streamed_group_scores_each_fiducial_signal_region_star_once(both):
    patch, _, memory, payload, staged = both
    _, m = features(patch, "pm_phi")
    want = set(patch.source_id[STREAM_SR.contains(m) & patch.fiducial])
    scores = staged[staged.kind == "score"]
    for method in ("cathode", "anode", "ranode", "cwola"):
        got = scores[scores.method == method]
        assert len(got) == len(want) and set(got.source_id) == want, method
        assert np.isfinite(got.score).all()
    model = staged[staged.kind == "model"]
    assert len(model) == 1 and pickle.loads(model.payload.iloc[0])["metrics"]["n_scored"] == \
        len(want)
    # the stream stands out in the streamed scores as it does in memory
    truth = patch.set_index("source_id")["stream"]
    # (R-ANODE, small flows on 5k stars, ranks this stream weakly on both paths: memory 0.58,
    # streamed 0.51; its streamed scores are held to its fitted models below)
    for method in ("cathode", "anode", "cwola"):
        d = scores[scores.method == method]
        mem = memory.scores[memory.scores.method == method]
        auc_s = roc_auc_score(truth.loc[d.source_id], d.score)
        auc_m = roc_auc_score(truth.loc[mem.source_id], mem.score)
        # small flows on 5k stars: ANODE is weak here (memory 0.68), CATHODE strong
        floor = {"cathode": 0.75, "anode": 0.6, "cwola": 0.75}[method]
        assert auc_s > floor and auc_s > auc_m - 0.1, (method, auc_s, auc_m)


def test_streamed_ranode_scores_are_its_fitted_models_log_ratio(both):
    """R-ANODE is fitted on the classifiers' sample (600 of the SR stars) and every fiducial SR
    star is scored on executors: those scores are log P_sig - log P_CR of the payload's models."""
    from gaialake.streams.ranode import build_signal_mixture, ranode_log_ratio

    patch, settings, _, payload, staged = both
    weights, metrics = payload["weights"], payload["metrics"]
    assert metrics["ranode_fit_rows"] < metrics["n_sr"]       # fitted on the sample only
    lo, hi = settings.ranode.w_bounds
    assert lo <= metrics["ranode_w"] <= hi
    mixture = build_signal_mixture(weights["sig_config"]["flow"], weights["sig_config"]["w_bounds"])
    mixture.load_state_dict(weights["sig"])
    cr = build_flow({**settings.flow, "features": 5, "context": 1})
    cr.load_state_dict(weights["cr"])
    x, m = features(patch, "pm_phi")
    fid = STREAM_SR.contains(m) & patch.fiducial.to_numpy()
    z, c = FeatureMap.from_dict(payload["feature_map"]).transform(x[fid], m[fid])
    want = pd.Series(ranode_log_ratio(mixture.eval(), cr.eval(), z, c),
                     index=patch.source_id[fid].to_numpy())
    got = staged[(staged.kind == "score") & (staged.method == "ranode")].set_index("source_id")
    np.testing.assert_allclose(got.score.to_numpy(), want.loc[got.index].to_numpy(), atol=1e-3,
                               rtol=1e-4)
    assert got.score.std() > 0.01                 # a fitted signal flow, not a constant


def test_hash_unit_is_uniform_stable_and_seeded():
    ids = np.arange(10**5, dtype=np.int64) * 7 + 1
    u = hash_unit(ids, 3)
    assert u.min() >= 0 and u.max() < 1 and abs(u.mean() - 0.5) < 0.01
    assert np.array_equal(u[::-1], hash_unit(ids[::-1], 3))
    assert abs(np.corrcoef(u, hash_unit(ids, 4))[0, 1]) < 0.02
    assert abs((u < 0.2).mean() - 0.2) < 0.01


def test_a_cwola_search_streams_without_training_a_flow(spark, tmp_path):
    from dataclasses import replace

    from gaialake.conf import load_conf
    from gaialake.streams.streaming import StreamSettings, stream_group

    conf = load_conf(sets=[f"paths.warehouse={tmp_path / 'warehouse'}",
                           "spark.shuffle_partitions=4"])
    patch = toy_patch(5000, 200, seed=7)
    patch = patch[(patch.pm_phi >= PM_RANGE[0]) & (patch.pm_phi < PM_RANGE[1])]
    rows, group = _search_group(spark, patch)
    payload = stream_group(conf, replace(_settings(), methods=("cwola",)),
                           StreamSettings(max_group_rows=100), rows, group,
                           str(tmp_path / "staged"))
    assert "cr" not in payload["weights"] and "cwola_classifiers" in payload["weights"]
    assert payload["metrics"]["n_sb"] > 100 and not payload["curves"]
    staged = spark.read.parquet(str(tmp_path / "staged")).toPandas()
    assert set(staged[staged.kind == "score"].method) == {"cwola"}


def test_both_paths_skip_a_group_with_too_few_stars_in_the_range(both, spark, tmp_path):
    from dataclasses import replace

    from gaialake.conf import load_conf
    from gaialake.streams.streaming import StreamSettings, stream_group

    patch, settings, _, _, _ = both
    n_in = int(settings.in_range(patch.pm_phi.to_numpy()).sum())
    assert len(patch) > n_in + 100                  # CWoLa's sideband rows past the range
    # enough rows, too few of them in the pm range: both paths skip, with the same reason
    few = replace(settings, min_patch_stars=n_in + 1)
    want = f"{n_in} stars < min_patch_stars {n_in + 1}"
    assert score_group(patch, STREAM_SR, few, seed=1).skipped == want
    conf = load_conf(sets=[f"paths.warehouse={tmp_path / 'warehouse'}",
                           "spark.shuffle_partitions=4"])
    rows, group = _search_group(spark, patch)
    payload = stream_group(conf, few, StreamSettings(max_group_rows=100), rows, group,
                           str(tmp_path / "staged"))
    assert payload["skipped"] == want and not payload["weights"]

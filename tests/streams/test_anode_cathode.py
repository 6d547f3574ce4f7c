"""The stream-search scores on a toy patch with known members (pure numpy/torch, no Spark).

The toy patch (:func:`tests.helpers.toy_patch`) is a smooth background in (phi, lam, pm, G, colour) with
pm dispersions that grow with G, and a narrow stream line compact in proper motion. Measured
with the fixture's settings (MAF 5x64, <= 30 epochs, 20k background, 300 stream stars, 4 % of
the SR): CATHODE AUC ~0.98 (boosted trees and network ensemble alike), ANODE ~0.9, R-ANODE 0.63
(seed-dependent), CWoLa (boosted trees, SR against its sidebands) on the fiducial SR stars.
"""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from gaialake.models.flows import build_flow, log_prob, sample, train_flow
from gaialake.models.mlp import MLPEnsemble
from gaialake.models.train import TrainSettings
from gaialake.streams.cathode import ClassifierSettings, cathode_scores
from gaialake.streams.scorer import SearchModel, group_key, score_stars, search_model
from gaialake.streams.search import METHODS, SearchSettings, score_group
from gaialake.streams.regions import FeatureMap, SignalRegion, features, signal_regions
from tests.helpers import STREAM_SR, toy_patch

def _settings(**kw) -> SearchSettings:
    base = dict(flow={"type": "maf", "transforms": 5, "hidden": 64},
                train=TrainSettings(lr=1e-3, batch_size=512, max_epochs=30, patience=4),
                fmap=FeatureMap(15.0, {3: (None, 20.2), 4: (0.5, 1.0)}),
                classifier={"max_iter": 100})
    base.update(kw)
    return SearchSettings(**base)


def member_auc(patch: pd.DataFrame, scores: pd.DataFrame, method: str) -> tuple[float, float]:
    """ROC AUC (members vs the rest) and top-N purity (N = members) of one method's scores."""
    d = scores[scores.method == method]
    y = patch.set_index("source_id").loc[d.source_id, "stream"].to_numpy()
    top = np.argsort(-d.score.to_numpy())[: int(y.sum())]
    return roc_auc_score(y, d.score), float(y[top].mean())


@pytest.fixture(scope="module")
def searched():
    torch.set_num_threads(1)
    patch = toy_patch(seed=1)
    return patch, score_group(patch, STREAM_SR, _settings(), seed=3)


@pytest.mark.parametrize("method", METHODS)
def test_method_scores_each_fiducial_signal_region_star_once(searched, method):
    patch, result = searched
    _, m = features(patch, STREAM_SR.axis)
    want = set(patch.source_id[STREAM_SR.contains(m) & patch.fiducial])
    got = result.scores[result.scores.method == method]
    assert set(got.source_id) == want and len(got) == len(want)
    assert np.isfinite(got.score).all()


def test_cathode_ranks_stream_members_far_above_background(searched):
    patch, result = searched
    auc, purity = member_auc(patch, result.scores, "cathode")
    assert auc > 0.95 and purity > 0.6, (auc, purity)
    # the held-out classifier separates data from CR-flow samples only a little: the flow
    # describes the background, the excess is the stream
    assert result.metrics["cathode_fold_auc"] < 0.7


def test_anode_ranks_stream_members_above_background(searched):
    patch, result = searched
    auc, purity = member_auc(patch, result.scores, "anode")
    assert auc > 0.85, (auc, purity)


def test_cwola_ranks_stream_members_above_background_without_a_flow(searched):
    patch, result = searched
    auc, purity = member_auc(patch, result.scores, "cwola")
    assert auc > 0.85, (auc, purity)
    # SR against its sidebands: the background differs across them only through the pm
    # dispersion's growth with G, so the held-out classifier barely separates them
    assert result.metrics["cwola_fold_auc"] < 0.7
    assert result.metrics["n_sb"] > 1000 and "cwola_classifiers" in result.weights


def test_ranode_fits_a_signal_fraction_inside_its_bounds(searched):
    # R-ANODE's ranking on this patch depends on the seeds (AUC 0.63 with the fixture's, 1.00
    # with others, both measured 2026-12): no ranking claim here, see tests/streams/test_ranode.py
    _, result = searched
    assert 1e-4 < result.metrics["ranode_w"] < 0.5 and result.metrics["ranode_best_epoch"] >= 0


def _group_inputs(patch: pd.DataFrame, result) -> tuple[np.ndarray, np.ndarray, torch.nn.Module]:
    """The SR stars' mapped features and context, and the group's trained CR flow."""
    fmap = FeatureMap.from_dict(result.feature_map)
    x, m = features(patch, STREAM_SR.axis)
    z, c = fmap.transform(x, m)
    cr = build_flow({"type": "maf", "transforms": 5, "hidden": 64, "features": 5, "context": 1})
    cr.load_state_dict(result.weights["cr"])
    in_sr = STREAM_SR.contains(m)
    return z[in_sr], c[in_sr], cr.eval()


def test_cathode_network_ensemble_ranks_stream_members_out_of_fold(searched):
    torch.set_num_threads(1)
    patch, result = searched
    z_sr, c_sr, cr = _group_inputs(patch, result)
    # one member of the default shape (3 x 64, <= 30 epochs of 256 rows), all SR stars: AUC
    # 0.86 measured (8 epochs of 512 rows: 0.69); the default 3 members gave 0.98 on the
    # fiducial SR stars, as the boosted trees (one-off measurement, 2026-12)
    clf = {"kind": "nn_ensemble", "nn_ensemble": {"members": 1}}
    scores, metrics, models = cathode_scores(z_sr, c_sr, cr, seed=4, n_folds=5, oversample=4,
                                             classifier=clf)
    assert len(models) == 5 and all(isinstance(m, MLPEnsemble) for m in models)
    assert all(len(m.members) == 1 for m in models)
    y = patch.stream.to_numpy()[STREAM_SR.contains(patch[STREAM_SR.axis].to_numpy())]
    assert np.isfinite(scores).all() and roc_auc_score(y, scores) > 0.8
    assert metrics["cathode_fold_auc"] < 0.7


def test_classifier_settings_refuse_an_unknown_kind_or_keyword():
    assert ClassifierSettings.from_dict({"max_iter": 20}).hgb["max_iter"] == 20
    nn = ClassifierSettings.from_dict({"kind": "nn_ensemble", "nn_ensemble": {"members": 4}})
    assert nn.kind == "nn_ensemble" and nn.nn.members == 4 and nn.nn.hidden == (64, 64, 64)
    with pytest.raises(ValueError, match="classifier.kind"):
        ClassifierSettings.from_dict({"kind": "svm"})
    with pytest.raises(KeyError, match="classifier.max_iters"):
        ClassifierSettings.from_dict({"max_iters": 20})
    with pytest.raises(KeyError, match="nn_ensemble.layers"):
        ClassifierSettings.from_dict({"kind": "nn_ensemble", "nn_ensemble": {"layers": 3}})


@pytest.mark.parametrize("method", METHODS)
def test_registered_search_model_scores_the_group_stars_again(searched, method):
    patch, result = searched
    flow = {"type": "maf", "transforms": 5, "hidden": 64}
    trained = [{"key": group_key(7, STREAM_SR.axis, STREAM_SR.index), "patch_id": 7,
                "pm_axis": STREAM_SR.axis, "sr_lo": STREAM_SR.lo, "sr_hi": STREAM_SR.hi,
                "feature_map": result.feature_map, "weights": result.weights}]
    config, state = search_model(method, flow, trained)
    module = SearchModel(config)
    module.load_state_dict(state)
    got = score_stars(module.eval(), patch[patch.fiducial].assign(patch_id=7))
    want = result.scores[result.scores.method == method]
    assert set(got.method) == {method}
    merged = want.merge(got, on="source_id", suffixes=("_task", "_model"))
    assert len(merged) == len(want) == len(got)
    if method in ("cathode", "cwola"):   # the mean of the k classifiers, not out-of-fold
        assert np.corrcoef(merged.score_task, merged.score_model)[0, 1] > 0.8
    else:
        np.testing.assert_allclose(merged.score_model, merged.score_task, rtol=1e-4, atol=1e-4)


def test_score_group_is_deterministic_with_a_fixed_seed():
    torch.set_num_threads(1)
    patch = toy_patch(3000, 60, seed=5)
    s = _settings(flow={"type": "maf", "transforms": 2, "hidden": 16},
                  train=TrainSettings(lr=1e-3, batch_size=256, max_epochs=3), min_patch_stars=100,
                  min_sr_stars=50, classifier={"max_iter": 20})
    a = score_group(patch, STREAM_SR, s, seed=11)
    b = score_group(patch, STREAM_SR, s, seed=11)
    c = score_group(patch, STREAM_SR, s, seed=12)
    # equal to float32 rounding: MKL kernels may differ in the last bit with memory alignment
    pd.testing.assert_frame_equal(a.scores, b.scores, check_exact=False, rtol=1e-5, atol=1e-6)
    assert not np.allclose(a.scores.score, c.scores.score)


def test_group_with_too_few_stars_is_skipped_with_a_reason():
    patch = toy_patch(500, 0, seed=2)
    settings = _settings(min_patch_stars=2000)
    n = int(settings.in_range(patch.pm_phi.to_numpy()).sum())     # those in the pm range count
    assert 490 < n < 500
    result = score_group(patch, STREAM_SR, settings, seed=1)
    assert result.scores.empty and f"{n} stars < min_patch_stars 2000" in result.skipped
    result = score_group(patch, SignalRegion("pm_phi", 0, 40.0, 46.0),
                         _settings(min_patch_stars=100), seed=1)
    assert result.scores.empty and "SR stars < min_sr_stars" in result.skipped


def test_feature_map_sends_the_patch_disc_and_limits_to_finite_standardised_values():
    patch = toy_patch(4000, 0, seed=4)
    x, m = features(patch, "pm_lam")
    fmap = FeatureMap(15.0, {3: (None, 20.2), 4: (0.5, 1.0)}).fit(x, m)
    z, c = fmap.transform(x, m)
    assert np.isfinite(z).all() and np.allclose(z.mean(0), 0, atol=1e-4)
    # the uniform disc becomes a density without an edge: stars near the border spread out
    r = np.hypot(x[:, 0], x[:, 1])
    rz = np.hypot(*fmap._unbound(x)[:, :2].T)
    assert np.all(np.diff(rz[np.argsort(r)]) >= -1e-9)        # radial map is monotone
    assert rz.max() > 2 * 15.0 and np.allclose(rz[r < 0.5], r[r < 0.5], rtol=1e-3)
    # a star at the faint limit maps far out, and the map round-trips its fitted state
    back = FeatureMap.from_dict(fmap.to_dict())
    np.testing.assert_allclose(back.transform(x, m)[0], z)


def test_signal_regions_tile_the_pm_range():
    srs = signal_regions(6.0, 3.0, (-15.0, 15.0), ("pm_lam",))
    assert [(s.lo, s.hi) for s in srs][:2] == [(-15.0, -9.0), (-12.0, -6.0)]
    assert srs[-1].hi == 15.0 and len(srs) == 9
    with pytest.raises(ValueError, match="pm range wider"):
        signal_regions(6.0, 6.0, (0.0, 5.0))


def test_flow_learns_a_conditional_gaussian_and_samples_it():
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    c = rng.uniform(-1, 1, (4000, 1)).astype(np.float32)
    x = np.c_[2 * c[:, 0] + 0.3 * rng.normal(size=4000),
              rng.normal(size=4000)].astype(np.float32)
    flow = build_flow({"features": 2, "context": 1, "transforms": 2, "hidden": 32})
    res = train_flow(flow, x, c, TrainSettings(lr=3e-3, max_epochs=40, patience=5), seed=0)
    true_nll = -np.mean(-0.5 * ((x[:, 0] - 2 * c[:, 0]) / 0.3) ** 2 - np.log(0.3)
                        - 0.5 * x[:, 1] ** 2 - np.log(2 * np.pi))
    assert res.best_val_loss < true_nll + 0.1, (res.best_val_loss, true_nll)
    s = sample(flow, np.full((3000, 1), 0.5, np.float32), seed=1)
    assert abs(s[:, 0].mean() - 1.0) < 0.1 and abs(s[:, 0].std() - 0.3) < 0.1
    assert np.isfinite(log_prob(flow, x[:10], c[:10])).all()


def test_training_skips_non_finite_losses_and_keeps_the_best_state():
    torch.set_num_threads(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 2)).astype(np.float32)
    x[7] = np.inf
    c = np.zeros((1000, 1), np.float32)
    flow = build_flow({"features": 2, "context": 1, "transforms": 1, "hidden": 8})
    res = train_flow(flow, x, c, TrainSettings(lr=1e-2, batch_size=100, max_epochs=4,
                                             val_fraction=0.1, patience=10), seed=3)
    # the bad row is skipped where it falls: one training step per epoch, or one validation term
    assert res.bad_steps == 4 or res.val_nonfinite == 1, (res.bad_steps, res.val_nonfinite)
    assert np.isfinite(res.best_val_loss)
    assert all(torch.isfinite(v).all() for v in flow.state_dict().values())
    with pytest.raises(FloatingPointError):
        train_flow(build_flow({"features": 2, "context": 1, "transforms": 1, "hidden": 8}),
                   np.full((100, 2), np.nan, np.float32), np.zeros((100, 1), np.float32),
                   TrainSettings(max_epochs=2, max_bad_steps=3), seed=0)

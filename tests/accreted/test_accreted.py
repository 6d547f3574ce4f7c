"""The accreted-star classifier without Spark: frames, features, cuts, calibration, transfer to
another accretion history, the Toomre baseline, determinism and null scores.

Stars come from the synthetic sky's own sampler (``gaialake.sky.skymodel.sample_range``) for
galaxies A and B: the same components, kinematics, errors and labels as ``gaialake generate``,
without the CSV files (G < 17.5: fainter stars fail parallax_over_error > 5 anyway).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
import torch

from gaialake.accreted import evaluation as E
from gaialake.accreted import features as G
from gaialake.accreted import scoring as S
from gaialake.accreted import training as T

COLUMNS = ["source_id", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec",
           "pmdec_error", "radial_velocity", "radial_velocity_error", "ruwe", "phot_g_mean_mag",
           "bp_rp"]


@lru_cache(maxsize=4)
def sky_stars(galaxy: str, n_stars: int = 150_000, g_limit: float = 17.5) -> pd.DataFrame:
    """DR3 rows + truth (``accreted``, ``component``) of the synthetic sky of ``galaxy``."""
    from gaialake.conf import load_conf
    from gaialake.sky.skymodel import build_sky_model, sample_range

    conf = load_conf(sets=[f"sky.galaxy={galaxy}", f"sky.n_stars={n_stars}", "sky.streams=off",
                           f"sky.g_limit={g_limit}"])
    model = build_sky_model(conf)
    parts = []
    for fr in model.ranges:
        table, truth = sample_range(model, fr)
        df = table.select(COLUMNS).to_pandas()
        df["component"] = truth["component"].to_numpy()
        df["accreted"] = (truth["origin"] == "accreted").to_numpy()
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


@lru_cache(maxsize=1)
def trained() -> tuple:
    """(model trained on A, its fit info, that model transferred to B's catalog)."""
    torch.set_num_threads(1)
    a = sky_stars("A")
    model, info = T.fit_in_memory(a, a["accreted"].to_numpy(), S.classifier_config(),
                                  epochs=8, batch_size=1024, val_fraction=0.2, seed=1)
    return model, info, T.transfer_in_memory(model, sky_stars("B"), epochs=5, seed=1)


# ------------------------------------------------------------------ frames and features -------
def test_phase_space_recovers_the_sky_truth_and_5d_keeps_the_perpendicular_velocity():
    from gaialake.sky.kinematics import galactocentric_to_observed, transforms

    rng = np.random.default_rng(3)
    n = 500
    xyz = np.array([-8.122, 0.0, 0.0208])[:, None] + rng.normal(0, 1.5, (3, n))
    v = rng.normal(0, 150, (3, n)) + np.array([0, 230.0, 0])[:, None]
    obs = galactocentric_to_observed(xyz, v, transforms())
    ps = G.phase_space(obs["ra"], obs["dec"], 1 / obs["distance"], obs["pmra"], obs["pmdec"],
                       obs["radial_velocity"])
    np.testing.assert_allclose(np.stack([ps["x"], ps["y"], ps["z"]]), xyz, atol=1e-9)
    np.testing.assert_allclose(np.stack([ps["vx"], ps["vy"], ps["vz"]]), v, atol=1e-6)
    # v_perp: the true velocity minus its line-of-sight part (needs no radial velocity)
    u = np.stack([ps["ux"], ps["uy"], ps["uz"]])
    v_perp_true = v - np.sum(v * u, axis=0) * u
    np.testing.assert_allclose(np.stack([ps["vtx"], ps["vty"], ps["vtz"]])
                               - np.sum(np.stack([ps["vtx"], ps["vty"], ps["vtz"]]) * u, axis=0) * u,
                               v_perp_true, atol=1e-6)
    # the Toomre speed and its 5D lower bound
    full = np.linalg.norm(v - np.array([0, G.V_LSR_KMS, 0])[:, None], axis=0)
    data = {"ra": obs["ra"], "dec": obs["dec"], "parallax": 1 / obs["distance"], "pmra": obs["pmra"],
            "pmdec": obs["pmdec"], "radial_velocity": obs["radial_velocity"]}
    np.testing.assert_allclose(G.toomre_speed(data), full, rtol=1e-9)
    data["radial_velocity"] = np.full(n, np.nan)
    lower = G.toomre_speed(data)
    assert np.all(lower <= full + 1e-6) and np.mean(lower / full) > 0.6


def test_quality_cuts_name_the_failed_cut_and_features_are_nan_without_astrometry():
    df = pd.DataFrame({"ra": [10.0, 10.0, 10.0, 10.0, np.nan], "dec": [5.0] * 5,
                       "parallax": [2.0, 2.0, -0.5, 0.3, 1.0], "parallax_error": [0.1, 0.1, 0.1, 0.1, 0.1],
                       "pmra": [5.0, np.nan, 1.0, 1.0, 1.0], "pmra_error": [0.1] * 5,
                       "pmdec": [-3.0] * 5, "pmdec_error": [0.1] * 5,
                       "radial_velocity": [20.0, np.nan, np.nan, np.nan, np.nan],
                       "radial_velocity_error": [1.0, np.nan, np.nan, np.nan, np.nan],
                       "ruwe": [1.0, 1.0, 1.0, 1.0, 1.0]})
    keep, reason = G.quality_mask(df, parallax_over_error_min=5.0, ruwe_max=1.4)
    assert keep.tolist() == [True, False, False, False, False]
    assert reason.tolist() == [None, "missing_astrometry", "missing_astrometry",
                               "parallax_over_error", "missing_astrometry"]
    f5, f6 = G.features(df, "5d"), G.features(df, "6d")
    assert f5.shape == (5, len(G.FEATURES_5D)) and f6.shape == (5, len(G.FEATURES_6D))
    assert np.isfinite(f5[0]).all() and np.isfinite(f6[0]).all()
    assert np.isnan(f5[[1, 2, 4]]).all() and np.isnan(f6[1:]).all()


# ------------------------------------------------------------------ evaluation helpers --------
def test_photometry_adds_absolute_g_and_colour_and_a_missing_colour_is_named():
    b = sky_stars("B").iloc[:500].reset_index(drop=True)
    for variant in ("5d", "6d"):
        kin, phot = G.features(b, variant), G.features(b, variant, photometry=True)
        assert phot.shape[1] == kin.shape[1] + 2 == len(G.variant_features(variant, True))
        ok = np.isfinite(kin).all(axis=1)
        np.testing.assert_array_equal(phot[ok, :-2], kin[ok])
        plx = b["parallax"].to_numpy()[ok]
        np.testing.assert_allclose(phot[ok, -2], b["phot_g_mean_mag"].to_numpy()[ok]
                                   + 5 * np.log10(plx) - 10)
        np.testing.assert_array_equal(phot[ok, -1], b["bp_rp"].to_numpy()[ok])
    config = S.classifier_config(photometry=True)
    assert config["variants"]["6d"][-2:] == ["abs_g_mag", "bp_rp_mag"] and S.uses_photometry(config)
    assert not S.uses_photometry({k: v for k, v in config.items() if k != "photometry"})
    from gaialake.models.accreted_net import build_accreted_model

    model = build_accreted_model(config).eval()
    no_colour = b.copy()
    no_colour.loc[:9, "bp_rp"] = np.nan
    out = S.score_stars(model, no_colour)
    passed = G.quality_mask(no_colour)[0][:10]
    assert (out["unscored_reason"].iloc[:10][passed] == "missing_photometry").all()
    assert out["p_accreted"].iloc[:10][passed].isna().all()
    assert out["p_accreted"].iloc[10:].notna().sum() > 0


def test_purity_completeness_and_threshold_on_a_known_ranking():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    labels = np.array([1, 1, 0, 1, 0, 0, 1, 0], bool)
    c = E.purity_completeness(scores, labels)
    i = list(c["threshold"]).index(0.6)
    assert c["purity"][i] == pytest.approx(0.75) and c["completeness"][i] == pytest.approx(0.75)
    t = E.threshold_for_purity(scores, labels, 0.7)
    assert t["threshold"] == pytest.approx(0.6) and t["completeness"] == pytest.approx(0.75)
    assert np.isnan(E.threshold_for_purity(scores, ~labels & (scores < 0.8), 0.99)["threshold"])
    assert E.roc_auc(scores, labels) == pytest.approx(12 / 16)  # pairs ranked right
    assert E.cut_metrics(scores > 0.75, labels) == {"purity": 1.0, "completeness": 0.5,
                                                     "n_selected": 2}


def test_catalog_threshold_is_chosen_on_the_training_catalog_and_the_test_is_blind():
    rng = np.random.default_rng(4)

    def labelled(n, frac, shift):
        y = rng.random(n) < frac
        p = 1 / (1 + np.exp(-(rng.normal(0, 1, n) + 2.5 * y + shift)))
        return pd.DataFrame({"p_accreted": p, "accreted": y})

    train, test = labelled(4000, 0.1, 0.0), labelled(4000, 0.05, 0.8)  # test: other mix, scores
    threshold, m = E.catalog_threshold(train, test, 0.6)
    own = E.threshold_for_purity(train["p_accreted"], train["accreted"], 0.6)
    on_test = E.threshold_for_purity(test["p_accreted"], test["accreted"], 0.6)
    assert threshold == pytest.approx(own["threshold"]) and m["purity_A_at_threshold"] >= 0.6
    assert abs(on_test["threshold"] - threshold) > 0.05  # the test's truth would move it
    blind = E.cut_metrics(test["p_accreted"] >= threshold, test["accreted"])
    assert m["purity_B_at_threshold"] == pytest.approx(blind["purity"])
    assert blind["purity"] < 0.6  # B's purity is reported as found, not tuned to the target
    assert m["completeness_B_at_threshold"] == pytest.approx(blind["completeness"])
    # the test catalog's labels do not move the threshold; only its reported metrics
    shuffled = test.assign(accreted=rng.permutation(test["accreted"].to_numpy()))
    assert E.catalog_threshold(train, shuffled, 0.6)[0] == threshold
    # no selection reaches the purity: threshold 1.0 (nothing selected), flagged
    none, m = E.catalog_threshold(train.assign(accreted=train["p_accreted"] < 0.3), test, 0.99)
    assert none == 1.0 and m["threshold_found"] == 0.0


# ------------------------------------------------------------------ the classifier -----------
def test_classifier_trained_on_A_beats_the_toomre_cut_on_B():
    """The transfer test: on galaxy B (GSE less radial, a retrograde Sequoia, weaker
    Nyx, another accreted disk and splash), the classifier trained on A selects more accreted
    stars than |v - v_LSR| > 220 km/s at the cut's purity, and ranks better (AUC; 0.949 vs
    0.942 at this size: both miss the accreted disk, and the splash halves the cut's purity). The 5D net alone, trained on A, does not
    (B's retrograde Sequoia sits where A's in-situ halo dominates); the transfer step on B's own
    radial-velocity stars (no truth) fixes it."""
    model, info, model_b = trained()
    b = sky_stars("B")
    y = b["accreted"].to_numpy()
    s = S.score_stars(model_b, b, extra=True)
    ok = s["p_accreted"].notna().to_numpy()
    assert ok.sum() > 50_000 and y[ok].sum() > 1500
    r = E.compare_with_baseline(s["p_accreted"].to_numpy()[ok], s["v_toomre_kms"].to_numpy()[ok],
                                y[ok])
    print("B, transferred:", {k: round(v, 4) for k, v in r.items()})
    assert r["completeness_at_baseline_purity"] > r["baseline_completeness"] + 0.01
    assert r["purity_at_baseline_completeness"] > r["baseline_purity"]
    assert r["auc"] > r["auc_baseline"]

    five = ok & (s["variant"] == "5d").to_numpy()
    s0 = S.score_stars(model, b, extra=True)
    before = E.compare_with_baseline(s0["p_accreted"].to_numpy()[five],
                                     s0["v_toomre_kms"].to_numpy()[five], y[five])
    after = E.compare_with_baseline(s["p_accreted"].to_numpy()[five],
                                    s["v_toomre_kms"].to_numpy()[five], y[five])
    print("B 5d before/after transfer:", round(before["completeness_at_baseline_purity"], 3),
          round(after["completeness_at_baseline_purity"], 3), "cut", round(after["baseline_completeness"], 3))
    assert after["completeness_at_baseline_purity"] > before["completeness_at_baseline_purity"] + 0.1
    # (after transfer the 5d stars alone are about level with the cut at this size: 0.68 vs 0.67)


def test_photometry_ranks_B_better_than_the_kinematics_alone():
    """Absolute G and BP-RP beside the kinematics (conf accreted.photometry): B's metal-poor
    accreted stars lie bluer at a given absolute magnitude than its disks and splash, a
    difference the velocities alone cannot see (blind AUC on B 0.962 vs 0.949 at this size)."""
    torch.set_num_threads(1)
    a, b = sky_stars("A"), sky_stars("B")
    model = T.fit_in_memory(a, a["accreted"].to_numpy(), S.classifier_config(photometry=True),
                            epochs=8, batch_size=1024, val_fraction=0.2, seed=1)[0]
    y = b["accreted"].to_numpy()
    aucs = {}
    for name, m in (("kinematics", trained()[2]),
                    ("photometry", T.transfer_in_memory(model, b, epochs=5, seed=1))):
        s = S.score_stars(m, b, extra=True)
        ok = s["p_accreted"].notna().to_numpy()
        aucs[name] = E.compare_with_baseline(s["p_accreted"].to_numpy()[ok],
                                             s["v_toomre_kms"].to_numpy()[ok], y[ok])["auc"]
    print("B blind AUC:", aucs)
    assert aucs["photometry"] > aucs["kinematics"] + 0.005


def test_held_out_A_is_well_ranked_and_calibrated():
    model, info, _ = trained()
    a = sky_stars("A")
    for variant in ("5d", "6d"):
        rows = info[variant]["rows"]
        val = np.zeros(len(rows), bool)
        val[info[variant]["val_idx"]] = True
        net = model.nets[variant]

        def probabilities(stars):
            x = torch.as_tensor(G.features(stars, variant), dtype=torch.float32)
            with torch.no_grad():
                return net.probability(x).numpy(), torch.sigmoid(net(x)).numpy()

        held = a.iloc[rows[val]]
        p, _ = probabilities(held)
        assert np.isfinite(p).all()
        auc = E.roc_auc(p, held["accreted"].to_numpy())
        print(variant, "held-out AUC on A", round(auc, 4))
        # 0.95 (5d) since A holds an accreted disk with the thick disk's speeds (0.98 before)
        assert auc > 0.93
        # calibration: Platt was fitted on the held-out split; on the training rows the
        # expected number of accreted stars matches the true one (far better than
        # the class-weighted logits alone), also among the confident stars
        train = a.iloc[rows[~val]]
        yt = train["accreted"].to_numpy()
        pt, raw = probabilities(train)
        print(variant, "train rows: sum p", round(pt.sum()), "raw", round(raw.sum()), "true", yt.sum())
        assert abs(pt.sum() - yt.sum()) < 0.1 * yt.sum()
        assert abs(raw.sum() - yt.sum()) > 3 * abs(pt.sum() - yt.sum())
        hi = pt > 0.5
        assert abs(pt[hi].mean() - yt[hi].mean()) < 0.1


def test_scoring_is_deterministic_and_missing_astrometry_gets_a_null_score():
    model, _, _ = trained()
    b = sky_stars("B").iloc[:3000].reset_index(drop=True)
    first = S.score_stars(model, b)
    # the same numbers to float rounding (MKL may differ in the last bit with memory alignment)
    pd.testing.assert_frame_equal(first, S.score_stars(model, b), check_exact=False, rtol=1e-6,
                                  atol=1e-7)
    broken = b.copy()
    broken.loc[:9, "parallax"] = np.nan
    broken.loc[10:19, "pmra"] = None
    broken.loc[20:29, "parallax"] = -1.0
    broken.loc[30:39, ["ra", "dec"]] = np.nan
    out = S.score_stars(model, broken)
    assert out["p_accreted"].iloc[:40].isna().all()
    assert (out["unscored_reason"].iloc[:40] == "missing_astrometry").all()
    assert out["variant"].iloc[:40].isna().all()
    # the other stars keep their scores (float32 sums may differ in the last bits with the
    # batch's size, so not bit-identical here; the same rows give identical scores above)
    np.testing.assert_allclose(out["p_accreted"].iloc[40:].to_numpy(),
                               first["p_accreted"].iloc[40:].to_numpy(), rtol=1e-5, atol=1e-9)
    scored = out["p_accreted"].notna()
    assert ((out["p_accreted"][scored] >= 0) & (out["p_accreted"][scored] <= 1)).all()
    assert set(out["variant"][scored]) == {"5d", "6d"}
    assert out["unscored_reason"][scored].isna().all()
    assert S.predict(model, broken).equals(out)

"""Line finding in one (patch, signal region) on toy patches with known truth (no Spark)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom, norm

from gaialake.conf import load_conf
from gaialake.streams.linefind import (PROTOCLUSTER_COLUMNS, LineFindSettings, binomial_significance,
                               find_lines, find_protoclusters, hough_counts,
                               protoclusters_frame, strip_fraction_uniform)

CONF = load_conf()
PARAMS = LineFindSettings.from_conf(CONF)
#: the reporting floor of candidates (conf); a clean stream must clear it, noise must not
FLOOR = float(CONF.get("find_streams.min_candidate_significance"))
STREAM_ID0 = 10**9


def scored_line_patch(seed: int, n_bg: int = 20000, n_stream: int = 80, theta_deg: float = 30.0,
              rho_deg: float = 2.0, length_deg: float = 16.0, score_shift: float = 2.5,
              radius_deg: float = 10.0, mask_south: bool = False) -> dict[str, np.ndarray]:
    """A fiducial disc of one signal region: smooth background plus an optional stream.

    Background: uniform on the disc (or its northern half with ``mask_south``), proper motions
    broad (pm_phi in the 6 mas/yr signal region, pm_lam N(-3, 5)), latent scores N(0, 1) with a
    smooth gradient across the disc. Stream: a 0.15 deg wide line (theta, rho) of
    ``length_deg``, proper motion (1, -4) +- 0.5 mas/yr, scores N(score_shift, 1).
    Stream source_ids start at 1e9.
    """
    rng = np.random.default_rng(seed)
    r = radius_deg * np.sqrt(rng.random(n_bg))
    a = rng.random(n_bg) * (np.pi if mask_south else 2 * np.pi)
    phi, lam = r * np.cos(a), r * np.sin(a)
    pm_phi, pm_lam = rng.uniform(-3, 3, n_bg), rng.normal(-3, 5, n_bg)
    score = rng.normal(0, 1, n_bg) + 0.2 * phi / radius_deg
    sid = np.arange(n_bg, dtype=np.int64)
    if n_stream:
        th = np.radians(theta_deg)
        t = rng.uniform(-length_deg / 2, length_deg / 2, n_stream)
        off = rho_deg + rng.normal(0, 0.15, n_stream)
        sp, sl = off * np.cos(th) - t * np.sin(th), off * np.sin(th) + t * np.cos(th)
        keep = sp ** 2 + sl ** 2 < radius_deg ** 2
        ns = int(keep.sum())
        phi, lam = np.r_[phi, sp[keep]], np.r_[lam, sl[keep]]
        pm_phi = np.r_[pm_phi, rng.normal(1, 0.5, ns)]
        pm_lam = np.r_[pm_lam, rng.normal(-4, 0.5, ns)]
        score = np.r_[score, rng.normal(score_shift, 1, ns)]
        sid = np.r_[sid, STREAM_ID0 + np.arange(ns)]
    return {"phi": phi, "lam": lam, "pm_phi": pm_phi, "pm_lam": pm_lam, "score": score,
            "source_id": sid}


def _find(d: dict, params: LineFindSettings = PARAMS):
    return find_protoclusters(d["phi"], d["lam"], d["pm_phi"], d["pm_lam"], d["score"],
                              d["source_id"], params)


def test_strip_fraction_matches_monte_carlo():
    rng = np.random.default_rng(1)
    r = 10 * np.sqrt(rng.random(400_000))
    x = r * np.cos(rng.random(400_000) * 2 * np.pi)
    for rho in (0.0, 4.0, -8.5, 9.8):
        mc = np.mean(np.abs(x - rho) <= 0.3)
        exact = float(strip_fraction_uniform(rho, 0.6, 10.0))
        assert exact == pytest.approx(mc, rel=0.05, abs=2e-4)
    assert float(strip_fraction_uniform(0.0, 20.0, 10.0)) == pytest.approx(1.0)


def test_hough_peak_is_at_the_line_of_collinear_points():
    t = np.linspace(-8, 8, 40)
    th = np.radians(70.0)
    phi, lam = 3.0 * np.cos(th) - t * np.sin(th), 3.0 * np.sin(th) + t * np.cos(th)
    theta_grid = np.arange(180.0)
    rho_grid = np.arange(-10, 10.01, 0.2)
    counts = hough_counts(phi, lam, theta_grid, rho_grid, 0.4)
    i, j = np.unravel_index(np.argmax(counts), counts.shape)
    assert counts[i, j] == 40
    assert theta_grid[i] == pytest.approx(70.0, abs=1.0)
    assert rho_grid[j] == pytest.approx(3.0, abs=0.21)


def test_binomial_significance_is_the_gaussian_equivalent_of_the_tail():
    n, p = 50, 0.03
    k = np.arange(2, 12)
    z = binomial_significance(k, n, np.full(len(k), p))
    expected = norm.isf(binom.sf(k - 1, n, p))
    big = k > n * p
    np.testing.assert_allclose(z[big], expected[big], rtol=1e-6)
    assert np.all(np.diff(z) > 0)
    # far tail stays finite (log-space), and no excess gives 0
    assert np.isfinite(binomial_significance(np.array([50]), 50, np.array([0.01]))[0])
    assert binomial_significance(np.array([1]), 50, np.array([0.03]))[0] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_clean_injected_stream_is_found(seed):
    d = scored_line_patch(seed)
    found = _find(d)
    assert found, "no protocluster on a patch with a clean stream"
    best = max(found, key=lambda p: p.significance)
    assert best.theta_deg == pytest.approx(30.0, abs=2.0)
    assert best.rho_deg == pytest.approx(2.0, abs=0.3)
    assert best.significance > FLOOR
    purity = np.mean(best.source_id >= STREAM_ID0)
    assert purity >= 0.9
    top = np.argsort(-d["score"])[:PARAMS.top_n]
    in_top = np.sum(d["source_id"][top] >= STREAM_ID0)
    assert np.sum(best.source_id >= STREAM_ID0) >= 0.6 * in_top       # completeness in top-N
    assert best.pm_phi == pytest.approx(1.0, abs=0.3)
    assert best.pm_lam == pytest.approx(-4.0, abs=0.3)


def test_stream_free_patches_yield_nothing_above_threshold():
    best = [max((p.significance for p in _find(scored_line_patch(seed, n_stream=0))), default=0.0)
            for seed in range(100, 112)]
    assert max(best) < FLOOR
    # the same search finds a faint stream (40 stars, half of them in the top 100) above them
    faint = max(p.significance for p in _find(scored_line_patch(7, n_stream=40)))
    assert faint > max(best) + 1.0


def test_compact_clump_is_not_a_line():
    d = scored_line_patch(3, n_stream=0)
    rng = np.random.default_rng(4)
    n = 40
    clump = {"phi": rng.normal(2, 0.3, n), "lam": rng.normal(-1, 0.3, n),
             "pm_phi": rng.normal(0, 0.3, n), "pm_lam": rng.normal(-5, 0.3, n),
             "score": rng.normal(4, 0.5, n), "source_id": STREAM_ID0 + np.arange(n)}
    d = {k: np.r_[d[k], clump[k]] for k in d}
    found = _find(d)
    assert not any(np.mean(p.source_id >= STREAM_ID0) > 0.5 for p in found)


def test_empirical_background_absorbs_a_half_empty_patch():
    """A patch cut in half (a survey or latitude edge): under a uniform-disc null every line
    through the crowded half has twice its expected stars; the empirical null (all scored stars
    of the signal region) knows the cut and keeps the best line of noise unremarkable."""
    uniform_params = LineFindSettings(**{**PARAMS.__dict__, "min_background_stars": 10**9})
    empirical, uniform = [], []
    for seed in range(200, 206):
        d = scored_line_patch(seed, n_stream=0, mask_south=True)
        top = np.argsort(-d["score"])[:PARAMS.top_n]
        empirical += [find_lines(d["phi"][top], d["lam"][top], PARAMS, d["phi"], d["lam"],
                                 max_lines=1)[0]["significance"]]
        uniform += [find_lines(d["phi"][top], d["lam"][top], uniform_params,
                               max_lines=1)[0]["significance"]]
    assert max(empirical) < 5.0
    assert min(uniform) > 4.5
    assert np.mean(uniform) > np.mean(empirical) + 1.2


def test_protoclusters_frame_rows_carry_group_keys_and_members():
    d = scored_line_patch(0)
    pdf = pd.DataFrame(d).assign(patch_id=42, pm_axis="pm_phi", sr_lo=-3.0, sr_hi=3.0,
                                 method="cathode", retraining=2)
    out = protoclusters_frame(pdf, PARAMS)
    assert list(out.columns) == ["patch_id", "pm_axis", "sr_lo", "sr_hi", "method",
                                 "retraining", *PROTOCLUSTER_COLUMNS]
    assert len(out) >= 1 and set(out["patch_id"]) == {42} and set(out["retraining"]) == {2}
    row = out.sort_values("significance").iloc[-1]
    assert len(row["member_ids"]) == row["n_line"] == len(row["member_scores"])
    assert protoclusters_frame(pdf.iloc[:0], PARAMS).empty
    with pytest.raises(KeyError, match="phi"):
        protoclusters_frame(pdf.drop(columns=["phi"]), PARAMS)


def test_result_does_not_depend_on_input_order():
    d = scored_line_patch(5)
    perm = np.random.default_rng(0).permutation(len(d["phi"]))
    a = _find(d)
    b = _find({k: v[perm] for k, v in d.items()})
    assert len(a) == len(b) >= 1
    for x, y in zip(a, b):
        assert (x.theta_deg, x.rho_deg, x.significance) == (y.theta_deg, y.rho_deg,
                                                            y.significance)
        assert np.array_equal(np.sort(x.source_id), np.sort(y.source_id))

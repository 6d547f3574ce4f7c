"""Stream candidates across overlapping patches, false-positive threshold, recovery, the job.

A toy sky in ICRS: a smooth background (uniform on a cap, broad proper motions, scores N(0, 1))
and optionally a stream along the great circle through the centres of two neighbouring patches
of the order-2 grid (21 and 22, 16.8 deg apart, so their 10 deg fiducial discs overlap). Each
patch sees the stars in its own frame (:func:`gaialake.streams.patch_grid.to_patch_frame`), sliced into
signal regions on both proper-motion axes, with its own score noise, as anomaly_scores would be.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaialake.streams.candidates import (CANDIDATE_COLUMNS, UNION_METHOD, MergeSettings,
                                         clopper_pearson, false_positive_summary,
                                         merge_protoclusters, segment_geometry, union_methods,
                                         union_protoclusters)
from gaialake.conf import load_conf
from gaialake.streams.linefind import LineFindSettings, protoclusters_frame
from gaialake.streams.patch_grid import angular_distance_deg, patch_centers, rotation_matrices, to_patch_frame
from gaialake.streams.recovery import match_known_tracks, member_recovery

CONF = load_conf()
PARAMS = LineFindSettings.from_conf(CONF)
MERGE = MergeSettings.from_conf(CONF)
FLOOR = float(CONF.get("find_streams.min_candidate_significance"))
CENTERS = patch_centers(2, 30.0, [21, 22])
STREAM_ID0 = 10**8
SPEED_MASYR = 8.0


def _unit(ra, dec):
    ra, dec = np.radians(ra), np.radians(dec)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def _radec(v):
    return (np.mod(np.degrees(np.arctan2(v[..., 1], v[..., 0])), 360.0),
            np.degrees(np.arcsin(np.clip(v[..., 2], -1, 1))))


def _stream_pole() -> np.ndarray:
    a, b = (_unit(*CENTERS.loc[CENTERS.patch_id == p, ["ra", "dec"]].to_numpy()[0])
            for p in (21, 22))
    pole = np.cross(a, b)
    return pole / np.linalg.norm(pole)


def toy_sky(seed: int, stream: bool, n_stream: int = 250, density: float = 30.0,
            cap_deg: float = 26.0) -> pd.DataFrame:
    """source_id, ra, dec, pmra, pmdec, latent score, stream name ('' for the background)."""
    rng = np.random.default_rng(seed)
    centre = (157.5, 43.0)
    area = 2 * np.pi * (1 - np.cos(np.radians(cap_deg))) * (180 / np.pi) ** 2
    n = rng.poisson(area * density)
    z = rng.uniform(np.cos(np.radians(cap_deg)), 1, n)
    az = rng.uniform(0, 2 * np.pi, n)
    local = np.stack([z, np.sqrt(1 - z ** 2) * np.cos(az), np.sqrt(1 - z ** 2) * np.sin(az)], -1)
    ra, dec = _radec(local @ rotation_matrices(*centre))
    out = pd.DataFrame({"source_id": np.arange(n, dtype=np.int64), "ra": ra, "dec": dec,
                        "pmra": rng.normal(0, 5, n), "pmdec": rng.normal(-2, 5, n),
                        "latent": rng.normal(0, 1, n), "stream": ""})
    if stream:
        pole = _stream_pole()
        a = _unit(*CENTERS.loc[CENTERS.patch_id == 21, ["ra", "dec"]].to_numpy()[0])
        y = np.cross(pole, a)
        omega = np.arccos(a @ _unit(*CENTERS.loc[CENTERS.patch_id == 22,
                                                 ["ra", "dec"]].to_numpy()[0]))
        ang = rng.uniform(-0.6 * omega, 1.6 * omega, n_stream)
        off = np.radians(rng.normal(0, 0.12, n_stream))
        v = ((np.cos(ang)[:, None] * a + np.sin(ang)[:, None] * y) * np.cos(off)[:, None]
             + np.sin(off)[:, None] * pole)
        vel = SPEED_MASYR * np.cross(pole, v)
        sra, sdec = _radec(v)
        r, d = np.radians(sra), np.radians(sdec)
        east = np.stack([-np.sin(r), np.cos(r), 0 * r], -1)
        north = np.stack([-np.sin(d) * np.cos(r), -np.sin(d) * np.sin(r), np.cos(d)], -1)
        out = pd.concat([out, pd.DataFrame({
            "source_id": STREAM_ID0 + np.arange(n_stream), "ra": sra, "dec": sdec,
            "pmra": np.sum(vel * east, -1) + rng.normal(0, 0.4, n_stream),
            "pmdec": np.sum(vel * north, -1) + rng.normal(0, 0.4, n_stream),
            "latent": rng.normal(2.5, 1, n_stream), "stream": "toy-1"})], ignore_index=True)
    return out


def patch_tables(sky: pd.DataFrame, seed: int, noise: float = 0.3, sr_width: float = 6.0,
                 sr_step: float = 3.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(patch_stars, anomaly_scores) of the two patches, with the columns of those tables."""
    rng = np.random.default_rng(seed)
    stars, scores = [], []
    for c in CENTERS.itertuples():
        dist = angular_distance_deg(sky.ra, sky.dec, c.ra, c.dec)
        s = sky[dist < 15.0]
        phi, lam, pmp, pml = to_patch_frame(s.ra, s.dec, s.pmra, s.pmdec, c.ra, c.dec)
        fid = dist[dist < 15.0] < 10.0
        stars.append(pd.DataFrame({"patch_id": c.patch_id, "source_id": s.source_id.to_numpy(),
                                   "ra": s.ra.to_numpy(), "dec": s.dec.to_numpy(),
                                   "phi": phi, "lam": lam, "pm_phi": pmp, "pm_lam": pml,
                                   "g": rng.uniform(16, 20.2, len(s)),
                                   "bp_rp": rng.uniform(0.5, 1.0, len(s)), "fiducial": fid}))
        score = s.latent.to_numpy() + rng.normal(0, noise, len(s))
        for axis, m in (("pm_phi", pmp), ("pm_lam", pml)):
            for lo in np.arange(-12.0, 9.1, sr_step):
                sel = fid & (m >= lo) & (m < lo + sr_width)
                scores.append(pd.DataFrame({
                    "patch_id": c.patch_id, "source_id": s.source_id.to_numpy()[sel],
                    "pm_axis": axis, "sr_lo": lo, "sr_hi": lo + sr_width, "method": "cathode",
                    "retraining": 0, "score": score[sel]}))
    return pd.concat(stars, ignore_index=True), pd.concat(scores, ignore_index=True)


def protoclusters_of(patch_stars: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """What the job's applyInPandas step does, in pandas."""
    joined = scores.merge(patch_stars[patch_stars.fiducial], on=["patch_id", "source_id"])
    out = [protoclusters_frame(g, PARAMS) for _, g in
           joined.groupby(["patch_id", "pm_axis", "sr_lo", "sr_hi", "method", "retraining"])]
    return pd.concat([o for o in out if len(o)], ignore_index=True)


@pytest.fixture(scope="module")
def stream_stars():
    return toy_sky(1, stream=True)


@pytest.fixture(scope="module")
def stream_sky(stream_stars):
    sky = stream_stars
    patch_stars, scores = patch_tables(sky, 2)
    return sky, patch_stars, scores, protoclusters_of(patch_stars, scores)


@pytest.fixture(scope="module")
def null_sky():
    sky = toy_sky(11, stream=False)
    patch_stars, scores = patch_tables(sky, 12)
    return sky, patch_stars, scores, protoclusters_of(patch_stars, scores)


def test_segments_carry_the_stream_great_circle_and_proper_motion_to_icrs(stream_sky):
    sky, _, _, pcs = stream_sky
    geo = segment_geometry(pcs, CENTERS)
    best = pcs["significance"].to_numpy().argmax()
    pole = _stream_pole()
    angle = np.degrees(np.arccos(min(1.0, abs(float(geo["pole"][best] @ pole)))))
    assert angle < 1.0
    # the proper-motion centre in ICRS is the stream's at the segment midpoint
    mid = geo["mid"][best]
    truth = SPEED_MASYR * np.cross(pole, mid)
    assert np.linalg.norm(geo["pm_vec"][best] - truth) < 0.5


def test_merging_two_overlapping_patches_yields_one_candidate(stream_sky):
    sky, _, _, pcs = stream_sky
    assert set(pcs.loc[pcs.significance > 8, "patch_id"]) == {21, 22}   # seen in both
    cands, members = merge_protoclusters(pcs, CENTERS, MERGE)
    assert list(cands.columns) == CANDIDATE_COLUMNS
    strong = cands[cands.significance > FLOOR]
    assert len(strong) == 1, strong
    top = strong.iloc[0]
    assert top.patch_ids == [21, 22]
    assert top.n_protoclusters >= 4
    assert top.significance > pcs.significance.max()      # two patches add evidence
    mine = members[members.candidate_id == top.candidate_id]
    truth = sky.loc[sky.stream != "", ["source_id", "stream"]]
    per_cand, per_stream = member_recovery(mine, truth)
    assert per_stream.iloc[0].purity >= 0.9
    assert per_stream.iloc[0].n_true >= 80


def test_distinct_lines_stay_distinct_candidates(stream_sky):
    """Synthetic protoclusters: the tolerances split lines that differ in angle, offset or
    proper motion, and join the same line seen from the neighbouring patch."""
    _, _, _, pcs = stream_sky
    base = pcs.sort_values("significance").iloc[[-1]].copy()
    base["member_ids"] = [[1, 2, 3, 4, 5, 6]]
    base["member_scores"] = [[1.0] * 6]

    def variant(**changes):
        row = base.copy()
        for k, v in changes.items():
            row[k] = v
        row["member_ids"] = [[100, 101, 102, 103, 104, 105]]          # no shared stars
        return row

    cases = {
        "rotated 20 deg": (variant(theta_deg=float(base.theta_deg.iloc[0]) + 20), 2),
        "offset 3 deg": (variant(rho_deg=float(base.rho_deg.iloc[0]) + 3), 2),
        "pm off by 4 mas/yr": (variant(pm_lam=float(base.pm_lam.iloc[0]) + 4), 2),
        "other method": (variant(method="anode"), 2),
        "same line again": (variant(sr_lo=99.0), 1),
    }
    for name, (row, expected) in cases.items():
        cands, _ = merge_protoclusters(pd.concat([base, row], ignore_index=True), CENTERS,
                                       MERGE)
        assert len(cands) == expected, name


def test_union_merges_two_methods_lines_of_the_stream_into_one_candidate(stream_sky):
    """A second method ranks the same sky with other errors: its top stars are partly other
    members; the union candidate holds both methods' members and counts more of the stream."""
    sky, patch_stars, scores, pcs = stream_sky
    _, other = patch_tables(sky, 5, noise=0.8)
    both = pd.concat([pcs, protoclusters_of(patch_stars, other.assign(method="cwola"))],
                     ignore_index=True)
    methods = union_methods(["cathode", "cwola"], ["cathode", "cwola"])
    cands, members = merge_protoclusters(union_protoclusters(both, methods), CENTERS, MERGE)
    assert set(cands.method) == {"cathode", "cwola", UNION_METHOD}
    truth = sky.loc[sky.stream != "", ["source_id", "stream"]]
    top = {m: cands[cands.method == m].iloc[0] for m in ("cathode", "cwola", UNION_METHOD)}
    ids = {m: set(members.loc[members.candidate_id == c.candidate_id, "source_id"])
           for m, c in top.items()}
    n_true = {m: int(member_recovery(members[members.candidate_id == c.candidate_id],
                                     truth)[1].iloc[0].n_true) for m, c in top.items()}
    assert ids[UNION_METHOD] >= ids["cathode"] | ids["cwola"]
    assert n_true[UNION_METHOD] > max(n_true["cathode"], n_true["cwola"])
    assert top[UNION_METHOD].significance >= top["cathode"].significance
    # the other methods' candidates are unchanged by the union
    alone, _ = merge_protoclusters(pcs, CENTERS, MERGE)
    np.testing.assert_allclose(cands[cands.method == "cathode"].significance,
                               alone.significance)


@pytest.mark.parametrize("methods, why", [(["cwola"], "two or more"),
                                          (["cwola", "union"], "two or more"),
                                          (["cwola", "anode"], "['anode'] not among")])
def test_union_names_its_conf_key_for_a_bad_method_list(methods, why):
    with pytest.raises(ValueError, match=r"find_streams\.union") as err:
        union_methods(methods, ["cwola", "cathode"])
    assert why in str(err.value)
    assert union_methods([], ["cwola"]) == []


def test_stream_free_sky_yields_nothing_above_threshold(stream_sky, null_sky):
    null_cands, _ = merge_protoclusters(null_sky[3], CENTERS, MERGE)
    assert len(null_cands) > 0                       # noise does make weak protoclusters
    assert null_cands.significance.max() < FLOOR
    cands, _ = merge_protoclusters(stream_sky[3], CENTERS, MERGE)
    fp = false_positive_summary(cands.significance.to_numpy(),
                                null_cands.significance.to_numpy(), FLOOR)
    assert fp["threshold"] == FLOOR
    assert fp["n_above"] == 1                        # the stream, and only the stream
    # the threshold is the most significant stream-free candidate when above the floor
    fp = false_positive_summary(np.array([3.0, 12.0, 30.0]), np.array([4.0, 10.0]), 7.0)
    assert (fp["threshold"], fp["n_above"], fp["n_null"], fp["n_above_floor"],
            fp["n_null_floor"]) == (10.0, 2, 0, 2, 1)
    # one realization: its maximum 10 beats the floor it did not set, a false positive
    assert (fp["n_fp_realizations"], fp["fp_rate"]) == (1, 1.0)


def test_threshold_is_the_largest_of_k_stream_free_maxima_with_a_leave_one_out_rate():
    null = np.array([4.0, 10.0, 6.5, 8.0, 1.0])
    real = np.array([0, 0, 1, 2, 2])
    fp = false_positive_summary(np.array([3.0, 9.0, 30.0]), null, 7.0, real, 4)
    assert fp["threshold"] == 10.0 and fp["n_above"] == 1
    assert fp["null_maxima"] == "10.00, 6.50, 8.00, 0.00"     # realization 3 found nothing
    assert (fp["null_max_min"], fp["null_max_median"], fp["null_max_max"]) == (0.0, 7.25, 10.0)
    # left out, 10 beats max(7, 6.5, 8, 0) = 8; 8 does not beat 10; the others are below 7
    assert fp["n_fp_realizations"] == 1 and fp["fp_rate"] == 0.25
    assert fp["fp_rate_lo"] == pytest.approx(clopper_pearson(1, 4)[0])
    # every maximum below the floor: no false positive in any realization
    quiet = false_positive_summary(np.array([12.0]), np.array([5.0, 6.0, 4.0]), 7.0,
                                   np.array([0, 1, 2]), 3)
    assert quiet["threshold"] == 7.0 and quiet["n_fp_realizations"] == 0
    assert quiet["fp_rate_hi"] == pytest.approx(1 - 0.025 ** (1 / 3))
    with pytest.raises(ValueError, match="realization ids"):
        false_positive_summary(np.array([1.0]), null, 7.0, real, 2)


def test_clopper_pearson_matches_the_exact_binomial_bounds():
    from scipy.stats import binom

    lo, hi = clopper_pearson(2, 10)
    assert binom.sf(1, 10, lo) == pytest.approx(0.025)         # P(X >= 2 | lo) = alpha / 2
    assert binom.cdf(2, 10, hi) == pytest.approx(0.025)        # P(X <= 2 | hi) = alpha / 2
    assert clopper_pearson(0, 3) == (0.0, pytest.approx(1 - 0.025 ** (1 / 3)))
    assert clopper_pearson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="k <= n"):
        clopper_pearson(4, 3)


def test_member_recovery_counts_purity_and_completeness():
    truth = pd.DataFrame({"source_id": np.arange(100), "stream": ["a"] * 60 + ["b"] * 40})
    members = pd.DataFrame({"candidate_id": ["c1"] * 40 + ["c2"] * 10 + ["c3"] * 5,
                            "source_id": np.r_[np.arange(30), 1000 + np.arange(10),   # 30 a
                                               30 + np.arange(10),                     # 10 a
                                               2000 + np.arange(5)]})                  # none
    per_cand, per_stream = member_recovery(members, truth, searchable=np.arange(50))
    c = per_cand.set_index("candidate_id")
    assert c.loc["c1", "purity"] == pytest.approx(0.75)
    assert c.loc["c3", "matched_stream"] is None
    s = per_stream.set_index("stream")
    assert s.loc["a", "best_candidate"] == "c1"
    assert s.loc["a", "completeness"] == pytest.approx(30 / 50)       # 50 searchable of a
    assert s.loc["a", "completeness_all"] == pytest.approx(40 / 50)
    assert bool(s.loc["a", "recovered"]) and not bool(s.loc["b", "recovered"])


def test_candidates_along_gd1_are_labelled_from_galstreams():
    pytest.importorskip("galstreams")
    from gaialake.streams.recovery import galstreams_tracks

    tracks = galstreams_tracks()
    assert len(tracks) >= 100
    gd1 = next(t for t in tracks if t.name.startswith("GD-1"))
    rng = np.random.default_rng(0)
    k = rng.choice(len(gd1.ra), 40)
    pos = pd.DataFrame({"candidate_id": "on", "ra": gd1.ra[k] + rng.normal(0, 0.2, 40),
                        "dec": gd1.dec[k] + rng.normal(0, 0.2, 40)})
    off = pos.assign(candidate_id="off", dec=pos.dec + 6.0)
    j = k[0]
    cands = pd.DataFrame({"candidate_id": ["on", "off", "wrong-pm"],
                          "ra": [gd1.ra[j]] * 3, "dec": [gd1.dec[j], gd1.dec[j] + 6, gd1.dec[j]],
                          "pmra": [gd1.pmra[j], gd1.pmra[j], gd1.pmra[j] + 6],
                          "pmdec": [gd1.pmdec[j]] * 3})
    labels = match_known_tracks(pd.concat([pos, off, pos.assign(candidate_id="wrong-pm")]),
                                cands, tracks)
    assert labels["on"].startswith("GD-1")
    assert labels["off"] is None
    assert labels["wrong-pm"] is None or not labels["wrong-pm"].startswith("GD-1")


def test_find_streams_job_writes_candidates_members_and_recovery(spark, conf, stream_stars,
                                                                 tmp_path):
    from gaialake.io.delta import read_table, write_table
    from gaialake.jobs import find_streams

    sky = stream_stars
    patch_stars, scores = patch_tables(sky, 2, sr_step=6.0)     # 16 groups: a quicker job
    # a second method (other errors) and the union of both
    other = patch_tables(sky, 5, noise=0.8, sr_step=6.0)[1].assign(method="cwola")
    scores = pd.concat([scores, other], ignore_index=True)
    conf.set("find_streams.union", ["cathode", "cwola"])
    run_id = "toy"
    write_table(spark.createDataFrame(patch_stars.assign(run_id=run_id)), conf, "patch_stars",
                partition_by=["patch_id"])
    write_table(spark.createDataFrame(scores.assign(run_id=run_id)), conf, "anomaly_scores")
    truth = sky.loc[sky.stream != "", ["source_id", "stream"]]
    write_table(spark.createDataFrame(truth), conf, "truth_streams")
    # a few columns of gaia_source, without its hpx partition column
    write_table(spark.createDataFrame(sky[["source_id", "ra", "dec", "pmra", "pmdec"]]), conf,
                "gaia_source", partition_by=())
    null_path = tmp_path / "null_warehouse" / "stream_candidates"
    spark.createDataFrame(pd.DataFrame({"method": ["cathode", "cathode"],
                                        "significance": [5.0, 9.5]})) \
        .write.format("delta").save(str(null_path))
    conf.set("find_streams.null_candidates", str(null_path))
    conf.set("find_streams.known_tracks.source", "truth")
    conf.set("find_streams.plots_dir", str(tmp_path / "figures"))
    conf.set("find_streams.max_plots", 1)
    conf.set("spark.shuffle_partitions", 4)

    summary = find_streams.run(conf)

    cands = read_table(spark, conf, "stream_candidates").toPandas()
    members = read_table(spark, conf, "stream_members").toPandas()
    assert summary["candidates"] == len(cands) > 0
    above = cands[cands.above_threshold & (cands.method == "cathode")]
    assert len(above) == 1
    top = above.iloc[0]
    union = cands[cands.above_threshold & (cands.method == "union")]
    assert len(union) == 1 and union.iloc[0].significance >= top.significance
    members_of = lambda c: set(members.loc[members.candidate_id == c, "source_id"])
    assert members_of(union.iloc[0].candidate_id) >= members_of(top.candidate_id)
    assert summary["false_positive"]["union"]["threshold"] == FLOOR   # no stream-free union
    assert list(top.patch_ids) == [21, 22] and top.threshold == pytest.approx(9.5)
    assert top.known_match == "toy-1"
    assert set(cands.run_id) == {summary["run_id"]}
    assert set(members.candidate_id) <= set(cands.candidate_id)
    rec = summary["recovery"][0]
    assert rec["stream"] == "toy-1" and rec["recovered"]
    assert rec["purity"] >= 0.9 and rec["completeness"] > 0.3
    fp = summary["false_positive"]["cathode"]
    assert fp["n_above"] == 1 and fp["fp_fraction_truth"] == 0.0
    assert (tmp_path / "figures" / "candidates_sky.png").exists()
    assert (tmp_path / "figures" / f"{top.candidate_id}.png").exists()
    n_sql = spark.sql("SELECT count(*) FROM gaialake.stream_candidates").first()[0]
    assert n_sql == len(cands)

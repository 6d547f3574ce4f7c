"""`gaialake score`: the registered champions score patch_stars into anomaly_scores.

A tiny sky (tests/helpers.py's toy patch, smaller) is searched by `gaialake anomaly`
with ``streams.max_group_rows`` set so that the big patch's groups stream through Petastorm and
the small patch's groups run in tasks; then `gaialake score` runs three times: ANODE rescoring
everything (must reproduce the anomaly job's ANODE scores), the same again (idempotent), and
CATHODE on new stars only (``score.mode=new``: the training run's out-of-fold rows stay).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.helpers import toy_patch, toy_search_sets, write_toy_sky

N_NEW = 40


def _table(spark, conf) -> pd.DataFrame:
    from gaialake.io.delta import read_table

    return read_table(spark, conf, "anomaly_scores").toPandas()


@pytest.fixture(scope="module")
def scored(spark, tmp_path_factory):
    from gaialake.conf import load_conf
    from gaialake.io.delta import read_table, write_table
    from gaialake.jobs import anomaly, patches, score

    tmp = tmp_path_factory.mktemp("score")
    sets = toy_search_sets(tmp, 3, 20, "streams.max_group_rows=1000")
    conf = load_conf(sets=sets)
    big = toy_patch(3000, 100, seed=11)
    small = toy_patch(700, 0, seed=12).assign(source_id=lambda d: d.source_id + 10**9)
    a, _ = write_toy_sky(spark, conf, big, small, np.random.default_rng(4))
    patches.run(conf)
    found = anomaly.run(conf)
    t0 = _table(spark, conf)

    def run_score(*extra):
        c = load_conf(sets=sets + list(extra))
        c.set("patches.only", conf.get("patches.only"))
        return score.run(c), _table(spark, c)

    s1, t1 = run_score("score.method=anode", "score.mode=all")
    s2, t2 = run_score("score.method=anode", "score.mode=all")
    # new stars: copies of fiducial stars of the big patch under new source ids, moved a little
    stars = read_table(spark, conf, "patch_stars").where(
        f"patch_id = {int(a.patch_id)} AND fiducial AND pm_phi >= -9 AND pm_phi < -3").toPandas()
    new = stars.sample(N_NEW, random_state=1).assign(
        source_id=lambda d: d.source_id + 5 * 10**9, phi=lambda d: d.phi + 0.01)
    write_table(spark.createDataFrame(new[stars.columns]), conf, "patch_stars", mode="append")
    s3, t3 = run_score("score.method=cathode", "score.mode=new")
    return {"conf": conf, "found": found, "t0": t0, "s1": s1, "t1": t1, "s2": s2, "t2": t2,
            "s3": s3, "t3": t3, "new_ids": set(new.source_id), "sets": sets}


def test_search_streamed_the_big_patch_and_ran_the_small_one_in_tasks(scored):
    found, t0 = scored["found"], scored["t0"]
    assert found["groups_trained"] == 2 and found["groups_skipped"] == 0
    assert found["groups_streamed"] == 1
    assert t0.patch_id.nunique() == 2 and set(t0.method) == {"anode", "cathode"}


def test_score_job_reproduces_the_anomaly_jobs_anode_scores(scored):
    t0, s1, t1 = scored["t0"], scored["s1"], scored["t1"]
    keys = ["patch_id", "source_id", "pm_axis", "sr_lo"]
    before = t0[t0.method == "anode"]
    after = t1[t1.method == "anode"]
    assert set(after.run_id) == {s1["run_id"]} and s1["run_id"] != s1["train_run"]
    assert len(after) == len(before) == s1["rows"] > 200
    both = before.merge(after, on=keys, suffixes=("_job", "_score"))
    assert len(both) == len(before)
    # same flows, same feature map, float32 both ways: the same log R
    np.testing.assert_allclose(both.score_score, both.score_job, rtol=1e-4, atol=1e-4)
    # the CATHODE rows of the search are untouched
    pd.testing.assert_frame_equal(
        t0[t0.method == "cathode"].sort_values(keys).reset_index(drop=True),
        t1[t1.method == "cathode"].sort_values(keys).reset_index(drop=True))


def test_score_job_is_idempotent(scored):
    t1, s2, t2 = scored["t1"], scored["s2"], scored["t2"]
    keys = ["patch_id", "source_id", "pm_axis", "sr_lo", "method"]
    a, b = (t.sort_values(keys).reset_index(drop=True) for t in (t1, t2))
    assert len(a) == len(b) and set(b[b.method == "anode"].run_id) == {s2["run_id"]}
    # recomputed with the same flows: equal to float32 rounding (BLAS may differ in the last bit)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-6, atol=1e-6)


def test_cathode_new_mode_scores_only_new_stars_and_keeps_out_of_fold_rows(scored):
    t0, t2, s3, t3 = scored["t0"], scored["t2"], scored["s3"], scored["t3"]
    cath = t3[t3.method == "cathode"]
    added = cath[cath.run_id == s3["run_id"]]
    assert set(added.source_id) == scored["new_ids"] and len(added) == N_NEW == s3["rows"]
    assert added.score.between(0, 1).all() and added.score.std() > 0
    kept = cath[cath.run_id == s3["train_run"]]
    assert len(kept) == (t0.method == "cathode").sum()
    assert len(t3[t3.method == "anode"]) == len(t2[t2.method == "anode"])


def test_unknown_alias_is_a_clear_error(scored):
    from gaialake.conf import load_conf
    from gaialake.jobs import score

    conf = load_conf(sets=scored["sets"] + ["score.method=anode", "score.alias=nope"])
    with pytest.raises(LookupError, match="gaialake-anode.*'nope'"):
        score.run(conf)

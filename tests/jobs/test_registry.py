"""Registry and tables in step: `anomaly` registers models and moves @champion only after
anomaly_scores is committed (a failed write leaves no version and a FAILED run), `score`
(mode new) never replaces out-of-fold rows when its model's run has none in the table, and an
empty patch_stars does not replace anomaly_scores."""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from tests.helpers import toy_patch, toy_search_sets, write_toy_sky


def _scores(spark, conf) -> pd.DataFrame:
    from gaialake.io.delta import read_table

    keys = ["method", "patch_id", "source_id", "pm_axis", "sr_lo"]
    return read_table(spark, conf, "anomaly_scores").toPandas().sort_values(keys) \
        .reset_index(drop=True)


def _runs(conf) -> list:
    import mlflow

    from gaialake.io import tracking

    tracking.configure(conf)
    return mlflow.search_runs(experiment_names=[conf.get("mlflow.experiment")],
                              output_format="list")


@pytest.fixture(scope="module")
def searched(spark, tmp_path_factory):
    from gaialake.conf import load_conf
    from gaialake.io import tracking
    from gaialake.jobs import anomaly, patches

    tmp = tmp_path_factory.mktemp("registry")
    sets = toy_search_sets(tmp, 2, 10, "streams.cathode.folds=2")
    conf = load_conf(sets=sets)
    big = toy_patch(2500, 60, seed=21)
    small = toy_patch(300, 0, seed=22).assign(source_id=lambda d: d.source_id + 10**9)
    write_toy_sky(spark, conf, big, small, np.random.default_rng(5))
    patches.run(conf)

    # 1. the write of anomaly_scores fails (a file where its folder goes): after the training
    blocker = conf.table_path("anomaly_scores")
    os.makedirs(os.path.dirname(blocker), exist_ok=True)
    with open(blocker, "w") as fh:
        fh.write("not a table")
    with pytest.raises(Exception) as failed:
        anomaly.run(conf)
    after_failure = {"error": str(failed.value), "models": tracking.list_models(conf),
                     "runs": _runs(conf),
                     "trained": os.path.isdir(conf.table_path("_staging_anomaly"))}
    os.remove(blocker)

    # 2. two good runs: v1 then v2 (v2's rows replace v1's)
    first = anomaly.run(conf)
    second = anomaly.run(conf)
    return {"conf": conf, "sets": sets, "after_failure": after_failure, "first": first,
            "second": second}


def test_a_failed_write_registers_no_model_and_ends_its_run_failed(searched):
    after = searched["after_failure"]
    # the kill landed at the write: the groups were trained and staged, the write failed
    assert after["trained"] and "anomaly_scores" in after["error"], after["error"][-2000:]
    assert after["models"] == [], after["models"]      # no version, no @champion
    statuses = {r.info.run_name: r.info.status for r in after["runs"]
                if r.data.tags.get("gaialake.job") == "anomaly"}
    assert statuses == {"anomaly": "FAILED"}, statuses
    assert not [r for r in after["runs"] if r.info.status == "RUNNING"]


def test_champion_is_the_run_whose_rows_the_table_holds(searched, spark):
    from gaialake.io import tracking

    conf, second = searched["conf"], searched["second"]
    table = _scores(spark, conf)
    assert set(table.run_id) == {second["run_id"]}
    for method in ("anode", "cathode"):
        _, _, version = tracking.load_torch_state(conf, f"gaialake-{method}")
        assert version.run_id == second["run_id"] and str(version.version) == "2"


def test_score_new_refuses_a_champion_whose_run_has_no_rows_and_changes_nothing(searched, spark):
    from gaialake.conf import load_conf
    from gaialake.io import tracking
    from gaialake.jobs import score

    conf = searched["conf"]
    before = _scores(spark, conf)
    tracking.promote(conf, "gaialake-cathode", "1")   # v1's rows were replaced by v2's run
    try:
        c = load_conf(sets=searched["sets"] + ["score.method=cathode", "score.mode=new"])
        c.set("patches.only", conf.get("patches.only"))
        with pytest.raises(LookupError, match=f"run {searched['first']['run_id']}.*out-of-fold"):
            score.run(c)
    finally:
        tracking.promote(conf, "gaialake-cathode", "2")
    pd.testing.assert_frame_equal(before, _scores(spark, conf))


def test_anomaly_on_an_empty_patch_stars_keeps_its_table_and_champion(searched, spark):
    from gaialake import tables
    from gaialake.io import tracking
    from gaialake.io.delta import EmptyResultError, write_table
    from gaialake.jobs import anomaly

    conf = searched["conf"]
    before, models = _scores(spark, conf), tracking.list_models(conf)
    empty = spark.createDataFrame([], tables.PATCH_STARS.schema)
    write_table(empty, conf, tables.PATCH_STARS, mode="overwrite")
    with pytest.raises(EmptyResultError, match="patch_stars.*--allow-empty"):
        anomaly.run(conf)
    pd.testing.assert_frame_equal(before, _scores(spark, conf))
    assert tracking.list_models(conf) == models

"""The stream-free run's conf: its own paths and database, streams off, and where find_streams
finds its candidates."""
from __future__ import annotations

import pytest

from gaialake.conf import load_conf
from gaialake.streams.nullsky import (SUFFIXED_PATHS, fingerprint, null_candidates_path,
                                      null_candidates_paths, null_sky_conf)


def test_null_sky_conf_has_its_own_paths_seed_and_no_streams():
    conf = load_conf(sets=["paths.warehouse=/tmp/wh/", "patches.only=[22]"])
    null = null_sky_conf(conf)
    for key in SUFFIXED_PATHS:
        assert null.path(f"paths.{key}") != conf.path(f"paths.{key}"), key
    assert null.path("paths.warehouse") == "/tmp/wh_nostreams"
    assert null.get("paths.jar_cache") == conf.get("paths.jar_cache")
    assert null.get("catalog.database") == conf.get("catalog.database") + "_nostreams"
    assert null.get("sky.streams") == "off" and null.get("seed") != conf.get("seed")
    assert null.get("find_streams.null_candidates") is None
    # the search itself is the stream sky's
    for key in ("patches", "streams", "sky.region", "sky.n_stars", "find_streams.top_n"):
        assert null.get(key) == conf.get(key), key
    assert conf.get("sky.streams") == "on"            # the stream sky's conf is untouched


def test_null_candidates_auto_is_the_null_runs_table_and_null_means_none():
    conf = load_conf(sets=["paths.warehouse=/tmp/wh"])
    assert null_candidates_path(conf) == "/tmp/wh_nostreams/stream_candidates"
    assert null_candidates_path(conf.with_overrides(["find_streams.null_candidates=null"])) is None
    other = conf.with_overrides(["find_streams.null_candidates=/data/null/stream_candidates"])
    assert null_candidates_path(other) == "/data/null/stream_candidates"


def test_null_sky_refuses_streams_on_and_an_empty_suffix():
    with pytest.raises(ValueError, match="streams off"):
        null_sky_conf(load_conf(sets=["null_sky.set={sky.streams: on}"]))
    with pytest.raises(ValueError, match="suffix"):
        null_sky_conf(load_conf(sets=["null_sky.suffix=''"]))


def test_fingerprint_changes_with_the_search_not_with_paths():
    conf = load_conf()
    key = fingerprint(null_sky_conf(conf))
    assert key == fingerprint(null_sky_conf(load_conf(sets=["paths.warehouse=/elsewhere",
                                                           "spark.shuffle_partitions=64"])))
    for change in ("sky.n_stars=5000", "patches.only=[22]", "find_streams.top_n=50",
                   "null_sky.set={seed: 7, sky.streams: off}"):
        assert fingerprint(null_sky_conf(load_conf(sets=[change]))) != key, change


@pytest.mark.parametrize("conf_file", ["cluster.yaml", "databricks.yaml"])
def test_cluster_confs_calibrate_on_a_full_sky_at_dr3_density(conf_file):
    from gaialake.conf import REPO_ROOT

    conf = load_conf(REPO_ROOT / "conf" / conf_file)
    null = null_sky_conf(conf)
    assert null.get("sky.region") == "full" and float(null.get("sky.n_stars")) >= 1.7e9
    assert null.get("sky.streams") == "off" and null.get("seed") != conf.get("seed")


def test_each_stream_free_realization_has_its_own_seed_paths_and_table():
    conf = load_conf(sets=["paths.warehouse=/tmp/wh", "null_sky.realizations=3"])
    nulls = [null_sky_conf(conf, k) for k in range(3)]
    assert [n.get("seed") for n in nulls] == [20261126, 20261127, 20261128]
    assert [n.path("paths.warehouse") for n in nulls] == [
        "/tmp/wh_nostreams", "/tmp/wh_nostreams_1", "/tmp/wh_nostreams_2"]
    assert len({n.get("catalog.database") for n in nulls}) == 3
    assert len({fingerprint(n) for n in nulls}) == 3
    assert null_candidates_paths(conf) == [f"{n.path('paths.warehouse')}/stream_candidates"
                                           for n in nulls]
    with pytest.raises(ValueError, match="null_sky.realizations"):
        null_sky_conf(conf, 3)
    with pytest.raises(ValueError, match=">= 1"):
        null_candidates_paths(load_conf(sets=["null_sky.realizations=0"]))

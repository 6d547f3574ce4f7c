"""The conf's schema (conf/default.yaml's keys and types), ranges and choices, and its errors:
unknown keys with the nearest known one, wrong types and out-of-range values with the key,
invalid YAML with the file and line. No Spark."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from gaialake.conf import REPO_ROOT, ConfError, load_conf

SHIPPED = [None, "tiny.yaml", "cluster.yaml", "databricks.yaml"]


@pytest.mark.parametrize("conf_file", SHIPPED)
def test_shipped_confs_pass_the_checks(conf_file):
    conf = load_conf(REPO_ROOT / "conf" / conf_file if conf_file else None)
    assert conf.get("patches.fiducial_deg") <= conf.get("patches.radius_deg")


def test_keys_the_code_reads_are_in_default_yaml():
    # a key read with conf.get("a.b", default) but missing from default.yaml could not be set
    conf = load_conf()
    pattern = re.compile(r"(?<![\w.])conf\.(?:get|path|report_path)\(\s*"
                         r"\"([a-z_]+(?:\.[a-z_0-9]+)+)\"")
    keys = {key for folder in ("lib", "jobs", "models")
            for path in (REPO_ROOT / folder).rglob("*.py")
            for key in pattern.findall(path.read_text())}
    assert len(keys) > 50
    missing = sorted(k for k in keys if conf.get(k, KeyError) is KeyError)
    assert not missing, f"read by the code, not in conf/default.yaml: {missing}"


@pytest.mark.parametrize("item, message", [
    ("patches.radius_degs=10",
     "--set patches.radius_degs=10: conf key patches.radius_degs is unknown; "
     "did you mean patches.radius_deg?"),
    ("patchs.radius_deg=10", "did you mean patches.radius_deg?"),
    ("null_sky.set={sky.n_star: 5}", "conf key sky.n_star is unknown; did you mean sky.n_stars?"),
    ("accreted.side_sky={g_limt: 17.0}",
     "conf key sky.g_limt is unknown; did you mean sky.g_limit?"),
    ("nonsense=1", "conf key nonsense is unknown"),
])
def test_an_unknown_key_fails_with_the_nearest_known_key(item, message):
    with pytest.raises(ConfError, match=re.escape(message)):
        load_conf(sets=[item])


def test_an_unknown_key_in_a_conf_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("patches:\n  only: [22]\n  radius_degs: 10\n")
    with pytest.raises(ConfError, match=re.escape(
            f"{path} line 3: conf key patches.radius_degs is unknown; "
            "did you mean patches.radius_deg?")):
        load_conf(path)


@pytest.mark.parametrize("item, message", [
    ("sky.n_stars=abc", "conf sky.n_stars: 'abc' is not a number"),
    ("seed=1.5", "conf seed: 1.5 is not an integer"),
    ("ingest.prune_missing=off",
     "conf ingest.prune_missing: 'off' is not a boolean (true or false)"),
    ("patches.only=22", "conf patches.only: 22 is not a list"),
    ("patches=3", "conf patches: 3 is not a section"),
    ("spark.shuffle_partitions=[4]", "conf spark.shuffle_partitions: [4] is not an integer"),
    ("mlflow.experiment=null", "conf mlflow.experiment: null is not a string"),
    ("null_sky.set={sky.n_stars: many}", "conf sky.n_stars: 'many' is not a number"),
])
def test_a_wrong_type_fails_with_the_key_and_the_type(item, message):
    with pytest.raises(ConfError, match=re.escape(message)):
        load_conf(sets=[item])


def test_values_of_the_right_type_pass():
    conf = load_conf(sets=[
        "patches.radius_deg=12",                 # an int where the default is a float
        "sky.n_stars=2e6", "sky.region=full",    # 2e6: a float (YAML 1.2), a count is a number
        "spark.master=null", "density.completeness=null", "upsample.flow.passes=null",
        "score.method=anode", "bench_train.flow={type: maf, transforms: 2}",   # null defaults
        "spark.conf.spark.sql.ansi.enabled=true",          # open sections take any key
        "streams.cathode.classifier.max_depth=3", "streams.flow.bins=8",
        "null_sky.set={seed: 7, sky.streams: off}", "find_streams.known_tracks.source=truth"])
    assert conf.get("sky.n_stars") == 2e6 and conf.get("patches.radius_deg") == 12
    assert conf.get("spark.conf") == {"spark": {"sql": {"ansi": {"enabled": True}}}}


@pytest.mark.parametrize("item, message", [
    ("patches.radius_deg=-5", "conf patches.radius_deg: -5 is out of range (must be in (0, 180])"),
    ("patches.radius_deg=0", "conf patches.radius_deg: 0 is out of range"),
    ("patches.fiducial_deg=0", "conf patches.fiducial_deg: 0 is out of range"),
    ("patches.fiducial_deg=20", "conf patches.fiducial_deg: 20 is larger than patches.radius_deg"),
    ("sky.n_stars=0", "conf sky.n_stars: 0 is out of range (must be > 0)"),
    ("streams.train.val_fraction=1.5",
     "conf streams.train.val_fraction: 1.5 is out of range (must be in [0, 1])"),
    ("upsample.heldout_fraction=-0.1", "conf upsample.heldout_fraction: -0.1 is out of range"),
    ("null_sky.set={sky.n_stars: 0}", "conf sky.n_stars: 0 is out of range"),
    ("sky.galaxy=C", "conf sky.galaxy: 'C' is not one of A, B"),
    ("sky.streams=maybe", "conf sky.streams: 'maybe' is not one of on, off, true, false"),
])
def test_out_of_range_values_fail_with_the_key(item, message):
    with pytest.raises(ConfError, match=re.escape(message)):
        load_conf(sets=[item])


def test_a_smaller_radius_in_a_conf_file_is_checked_against_the_fiducial_disc(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text("patches: {radius_deg: 5.0}\n")
    with pytest.raises(ConfError, match="fiducial_deg: 10.0 is larger than patches.radius_deg"):
        load_conf(path)
    assert load_conf(path, ["patches.fiducial_deg=4"]).get("patches.fiducial_deg") == 4


def test_invalid_yaml_names_the_file_line_and_column(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("patches:\n  only: [22\n  radius_deg: 10\nsky: {n_stars: 5}\n")
    with pytest.raises(ConfError,
                       match=rf"{re.escape(str(path))} line \d+ column \d+: invalid YAML"):
        load_conf(path)
    path.write_text("sky:\n  n_stars: 5\n\tg_limit: 20\n")      # a tab indent
    with pytest.raises(ConfError, match=rf"{re.escape(str(path))} line 3 column 1: invalid YAML"):
        load_conf(path)


def test_a_key_given_twice_names_the_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("sky:\n  n_stars: 5000\n  g_limit: 19.0\n  n_stars: 6000\n")
    with pytest.raises(ConfError, match=re.escape(f"{path} line 4: key 'n_stars' is given twice")):
        load_conf(path)


def test_a_conf_file_that_is_no_mapping_and_a_bad_set_value_fail(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- sky\n- patches\n")
    with pytest.raises(ConfError, match="expected sections"):
        load_conf(path)
    with pytest.raises(ConfError, match=re.escape("--set sky.region=[1: invalid YAML value")):
        load_conf(sets=["sky.region=[1"])
    with pytest.raises(ValueError, match="key=value"):        # ConfError is a ValueError
        load_conf(sets=["sky.n_stars"])


def test_a_wrong_type_in_a_conf_file_names_its_line(tmp_path):
    path = Path(tmp_path / "types.yaml")
    path.write_text("seed: 3\nnull_sky:\n  set:\n    sky.n_stars: lots\n")
    with pytest.raises(ConfError, match=re.escape(
            f"{path} line 4: null_sky.set entry sky.n_stars: conf sky.n_stars: 'lots' is not a "
            "number")):
        load_conf(path)


#: every shipped conf: default.yaml (None) and each conf/*.yaml
ALL_SHIPPED = [None] + sorted(p.name for p in (REPO_ROOT / "conf").glob("*.yaml")
                              if p.name != "default.yaml")
#: the conf sections of the search (patches to scores to candidates)
SEARCH_SECTIONS = ("patches", "streams", "score", "find_streams")


@pytest.mark.parametrize("conf_file", ALL_SHIPPED)
def test_shipped_confs_are_blind(conf_file):
    """No shipped conf lists patches or names a stream in the search's settings: the searched
    patches come from a rule (every |b| >= 30 deg patch, or those inside the generated sky)."""
    import yaml

    from gaialake.sky.stream_mocks import STREAMS
    from gaialake.streams.patch_grid import patch_centers, patches_inside, searched_patches
    from gaialake.sky.skymodel import region_pixels

    path = REPO_ROOT / "conf" / (conf_file or "default.yaml")
    raw = yaml.safe_load(path.read_text()) or {}
    assert not (raw.get("patches") or {}).get("only"), f"{path.name} lists patches"
    search = yaml.safe_dump({k: raw.get(k) for k in SEARCH_SECTIONS}).lower()
    names = set(STREAMS) | {"gd-1", "pal 5", "pal5", "ngc 5466"}
    assert not [n for n in names if n in search], f"{path.name}: a stream named in {SEARCH_SECTIONS}"
    conf = load_conf(path if conf_file else None)
    assert conf.get("patches.b_min_deg") <= 30.0
    grid = patch_centers(int(conf.get("patches.grid_order")), 30.0)
    got = searched_patches(conf)
    if conf.get("patches.within_region") and conf.get("sky.region") != "full":
        order = int(conf.get("sky.model_order"))
        want = patches_inside(grid, region_pixels(conf.get("sky.region"), order), order,
                              float(conf.get("patches.fiducial_deg")))
        assert got.patch_id.tolist() == want.patch_id.tolist() and len(got) >= 1
    else:
        assert got.patch_id.tolist() == grid.patch_id.tolist()


@pytest.mark.parametrize("conf_file", ["cluster.yaml", "databricks.yaml"])
def test_cluster_confs_search_every_high_latitude_patch(conf_file):
    from gaialake.streams.patch_grid import searched_patches

    centers = searched_patches(load_conf(REPO_ROOT / "conf" / conf_file))
    assert len(centers) == 96 and (abs(centers.b) >= 30).all()


def test_a_retired_key_fails_with_what_replaced_it(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("sky:\n  realistic_streams: false\n")
    with pytest.raises(ConfError, match=re.escape(
            f"{path} line 2: conf key sky.realistic_streams is retired: streams are always "
            "thinned by the field's factor (real contrast); remove it")):
        load_conf(path)

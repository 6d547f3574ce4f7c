"""generate's folder and manifest: only files it wrote are ever deleted (no Spark)."""
from __future__ import annotations

import json

import pytest

from gaialake.conf import load_conf
from gaialake.sky.skyfiles import (MANIFEST_FILE, PARAMS_FILE, ForeignFilesError, foreign_files,
                                   manifest_files, prepare_raw)


def _touch(path, text: str = "x") -> None:
    path.write_text(text)


def test_default_raw_folder_is_generates_own_not_data_raw():
    conf = load_conf()
    assert conf.get("paths.raw") == "data/synthetic/raw"
    assert conf.path("paths.raw").endswith("/data/synthetic/raw")


def test_rerun_removes_only_files_of_the_manifest(tmp_path):
    raw = tmp_path / "raw"
    assert prepare_raw(str(raw), ["GaiaSource_000000-000999.csv.gz",
                                  "GaiaSource_001000-001999.csv.gz"]) == 0
    for name in manifest_files(str(raw)):
        _touch(raw / name)
    assert json.loads((raw / MANIFEST_FILE).read_text())["files"] == manifest_files(str(raw))
    # the next run writes one other file: both old ones go, the manifest lists the new one
    assert prepare_raw(str(raw), ["GaiaSource_002000-002999.csv.gz"]) == 2
    assert sorted(p.name for p in raw.glob("GaiaSource_*")) == []
    assert manifest_files(str(raw)) == ["GaiaSource_002000-002999.csv.gz"]


def test_a_users_bulk_file_is_never_deleted_and_the_folder_is_refused(tmp_path):
    raw = tmp_path / "raw"
    prepare_raw(str(raw), ["GaiaSource_000000-000999.csv.gz"])
    _touch(raw / "GaiaSource_000000-000999.csv.gz", "generated")
    _touch(raw / PARAMS_FILE, json.dumps({"files": ["GaiaSource_000000-000999.csv.gz"]}))
    _touch(raw / "GaiaSource_786097-786431.csv.gz", "a real DR3 file")   # the user's download
    assert foreign_files(str(raw)) == ["GaiaSource_786097-786431.csv.gz"]
    with pytest.raises(ForeignFilesError, match="GaiaSource_786097-786431.csv.gz.*paths.raw"):
        prepare_raw(str(raw), ["GaiaSource_000000-000999.csv.gz"])
    # nothing touched: neither the user's file nor generate's own
    assert (raw / "GaiaSource_786097-786431.csv.gz").read_text() == "a real DR3 file"
    assert (raw / "GaiaSource_000000-000999.csv.gz").read_text() == "generated"


def test_folder_of_an_older_generate_lists_its_files_in_sky_model_json(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    _touch(raw / PARAMS_FILE, json.dumps({"files": ["GaiaSource_000000-000999.csv.gz"]}))
    _touch(raw / "GaiaSource_000000-000999.csv.gz")
    assert prepare_raw(str(raw), ["GaiaSource_000000-000999.csv.gz"]) == 1
    assert not (raw / "GaiaSource_000000-000999.csv.gz").exists()
    # a folder of real files with no manifest at all is refused whole
    real = tmp_path / "dr3"
    real.mkdir()
    _touch(real / "GaiaSource_000000-003111.csv.gz")
    with pytest.raises(ForeignFilesError):
        prepare_raw(str(real), ["GaiaSource_000000-003111.csv.gz"])
    assert (real / "GaiaSource_000000-003111.csv.gz").exists()

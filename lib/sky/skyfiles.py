"""The synthetic sky as files: DR3 bulk files written by Spark tasks, and the model's parameters.

:func:`write_files` runs one task per file range (or spreads the ranges over fewer tasks; the
files are the same bytes either way): each samples its stars
(:func:`gaialake.sky.skymodel.sample_range`), writes ``GaiaSource_AAAAAA-BBBBBB.csv.gz`` and
returns its truth rows. :func:`write_params` writes ``sky_model.json`` beside the files.

The folder's manifest (:data:`MANIFEST_FILE`) lists every bulk file generate wrote there; it is
written before the tasks run (a killed run's files are listed too). :func:`prepare_raw` removes
only the files an earlier manifest lists, and refuses a folder holding bulk files that no
manifest lists (:func:`foreign_files`: real DR3 files, a user's download): generate never
deletes or overwrites a file it did not write.
"""
from __future__ import annotations

import fnmatch
import json
import os
import time

from gaialake.io.bulkfile import write_bulk_file
from gaialake.io.dr3schema import DR3_COLUMNS
from gaialake.sky.skymodel import SkyModel, sample_range

__all__ = ["PARAMS_FILE", "MANIFEST_FILE", "TRUTH_ROWS_DDL", "ForeignFilesError",
           "manifest_files", "foreign_files", "check_raw", "prepare_raw", "clean_raw",
           "write_params", "write_files"]

#: The model's parameters, written beside the bulk files.
PARAMS_FILE = "sky_model.json"
#: generate's manifest beside the bulk files: ``{"files": [names], ...}``.
MANIFEST_FILE = "generated_files.json"
#: The bulk files of a folder (ESA's names).
BULK_PATTERN = "GaiaSource_*.csv.gz"
#: The truth rows the tasks return (before ``run_id``): the star's origin, component, stream
#: (null outside streams) and the index of its file range.
TRUTH_ROWS_DDL = "source_id long, origin string, component string, stream string, file_index int"


class ForeignFilesError(RuntimeError):
    """The output folder of generate holds bulk files that generate did not write."""


def _fs(raw: str):
    """(fsspec file system, path) of a URI; (None, raw) of a local folder."""
    if "://" not in raw:
        return None, raw
    import fsspec

    return fsspec.core.url_to_fs(raw)


def _read_text(raw: str, name: str) -> str | None:
    fs, root = _fs(raw)
    path = f"{root.rstrip('/')}/{name}"
    if fs is None:
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return fh.read()
    return fs.cat_file(path).decode() if fs.exists(path) else None


def _write_text(raw: str, name: str, text: str) -> None:
    fs, root = _fs(raw)
    path = f"{root.rstrip('/')}/{name}"
    if fs is None:
        os.makedirs(root, exist_ok=True)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)      # a killed write leaves the old manifest whole
        return
    fs.makedirs(root, exist_ok=True)
    fs.pipe_file(path, text.encode())


def _bulk_files(raw: str) -> list[str]:
    """Names of the bulk files (:data:`BULK_PATTERN`) in ``raw``; [] when it does not exist."""
    fs, root = _fs(raw)
    if fs is None:
        names = os.listdir(root) if os.path.isdir(root) else []
    else:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)] \
            if fs.exists(root) else []
    return sorted(n for n in names if fnmatch.fnmatchcase(n, BULK_PATTERN))


def manifest_files(raw: str) -> list[str]:
    """The bulk files generate wrote in ``raw``: its manifest's list; for a folder of an older
    generate without one, the ``files`` of its :data:`PARAMS_FILE`; [] when neither exists."""
    for name in (MANIFEST_FILE, PARAMS_FILE):
        text = _read_text(raw, name)
        if text is not None:
            try:
                return sorted(str(f) for f in json.loads(text).get("files", []))
            except (ValueError, AttributeError) as err:
                raise ForeignFilesError(f"{raw}/{name}: not generate's JSON ({err}): remove it "
                                        f"only if generate wrote every bulk file there") from err
    return []


def foreign_files(raw: str) -> list[str]:
    """Bulk files in ``raw`` that no manifest of generate lists (e.g. real DR3 files)."""
    listed = set(manifest_files(raw))
    return [n for n in _bulk_files(raw) if n not in listed]


def check_raw(raw: str) -> None:
    """Fail with :class:`ForeignFilesError` naming them when ``raw`` holds bulk files that no
    manifest of generate lists."""
    foreign = foreign_files(raw)
    if foreign:
        raise ForeignFilesError(
            f"{raw} holds {len(foreign)} bulk files that gaialake generate did not write (not "
            f"in its manifest {MANIFEST_FILE}), e.g. {', '.join(foreign[:3])}: generate writes "
            f"only into a folder of its own and never deletes or overwrites such files. Set "
            f"paths.raw to another folder (default data/synthetic/raw) or move these files")


def prepare_raw(raw: str, files: list[str]) -> int:
    """Make ``raw`` ready for a generate run that writes ``files`` (names): fail with
    :class:`ForeignFilesError` when it holds bulk files no manifest lists (none is touched),
    remove the files the earlier manifest lists, and write the new manifest (before any file
    is written). Returns how many files were removed."""
    check_raw(raw)
    old = manifest_files(raw)
    present = set(_bulk_files(raw))
    removed = [n for n in old if n in present]
    # the union first: a run killed while removing still lists what is left
    _write_text(raw, MANIFEST_FILE, json.dumps(
        {"written_by": "gaialake generate", "files": sorted(set(old) | set(files))}, indent=1))
    fs, root = _fs(raw)
    for name in removed:
        path = f"{root.rstrip('/')}/{name}"
        if fs is None:
            os.remove(path)
        else:
            fs.rm(path)
    _write_text(raw, MANIFEST_FILE, json.dumps(
        {"written_by": "gaialake generate", "files": sorted(files)}, indent=1))
    return len(removed)


def clean_raw(raw: str) -> int:
    """Remove the bulk files generate's manifest lists in ``raw`` (never another file); returns
    how many were removed. Fails like :func:`prepare_raw` on files no manifest lists."""
    return prepare_raw(raw, [])


def write_params(raw: str, params: dict) -> None:
    """Write ``params`` as JSON to ``<raw>/sky_model.json`` (local paths or fsspec URIs)."""
    _write_text(raw, PARAMS_FILE, json.dumps(params, indent=1, default=str))


def _task(model: SkyModel, raw: str, seconds):
    """mapInPandas function: each input row is a range index; writes its file, yields truth."""
    def generate(batches):
        import pandas as pd

        for batch in batches:
            for i in batch["id"].tolist():
                t0 = time.perf_counter()
                fr = model.ranges[int(i)]
                table, truth = sample_range(model, fr)
                write_bulk_file(f"{raw.rstrip('/')}/{fr.file_name}", table, DR3_COLUMNS)
                seconds.add(time.perf_counter() - t0)
                truth["file_index"] = int(i)
                yield pd.DataFrame(truth)
    return generate


def write_files(spark, model: SkyModel, raw: str, n_tasks: int = 0):
    """Run the tasks lazily: a DataFrame of truth rows (:data:`TRUTH_ROWS_DDL`) whose computation
    writes the bulk files under ``raw``; and the accumulator of task seconds. ``n_tasks`` 0: one
    per file."""
    n_tasks = min(n_tasks or len(model.ranges), len(model.ranges))
    seconds = spark.sparkContext.accumulator(0.0)
    df = (spark.range(len(model.ranges), numPartitions=n_tasks)
          .mapInPandas(_task(model, raw, seconds), TRUTH_ROWS_DDL))
    return df, seconds

"""Files of a density validation mock: its DR3 bulk files and its truth (a thin I/O adapter).

``gaialake density_mock`` writes, into one folder (local path or URI):

- ``GaiaSource_<first>-<last>.csv.gz`` bulk files (:func:`gaialake.io.bulkfile.write_bulk_file`),
  listed first in the sky generator's manifest (:func:`gaialake.sky.skyfiles.prepare_raw`: a
  re-run replaces the files it wrote and refuses a folder holding bulk files it did not);
- ``truth_density.json`` (:data:`gaialake.density.mock_catalog.TRUTH_FILE`): the mock's
  parameters, which ``gaialake ingest`` passes over and ``gaialake density`` reads when
  ``density.catalog.truth`` names it (:func:`read_truth`).
"""
from __future__ import annotations

import json
import os
from typing import Any

import pyarrow as pa

__all__ = ["prepare_folder", "write_file", "write_truth", "read_truth", "remove_folder"]


def _fs(path: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))


def prepare_folder(raw: str, names: list[str]) -> int:
    """Make ``raw`` ready for the bulk files ``names`` (the generator's manifest); returns the
    number of earlier files removed."""
    from gaialake.sky.skyfiles import prepare_raw

    return prepare_raw(raw, names)


def write_file(raw: str, name: str, table: pa.Table) -> int:
    """Write ``table`` (152 DR3 columns) as the bulk file ``raw/name``; returns bytes."""
    from gaialake.io.bulkfile import write_bulk_file
    from gaialake.io.dr3schema import DR3_COLUMNS

    return write_bulk_file(f"{raw.rstrip('/')}/{name}", table, DR3_COLUMNS)


def write_truth(path: str, spec: dict[str, Any]) -> None:
    """Write the truth ``spec`` as JSON to ``path`` (written to ``<path>.tmp``, then renamed)."""
    fs, target = _fs(path)
    fs.create_dir(os.path.dirname(target) or ".", recursive=True)
    with fs.open_output_stream(f"{target}.tmp") as out:
        out.write(json.dumps(spec, indent=1).encode())
    fs.move(f"{target}.tmp", target)


def read_truth(path: str) -> dict[str, Any]:
    """The truth spec at ``path`` (a file :func:`write_truth` wrote)."""
    fs, target = _fs(path)
    try:
        with fs.open_input_stream(target) as stream:
            return json.loads(stream.read().decode())
    except FileNotFoundError as err:
        raise FileNotFoundError(f"conf density.catalog.truth={path}: no such file (run "
                                "`gaialake density_mock`, which writes it beside the bulk "
                                "files)") from err


def remove_folder(path: str) -> bool:
    """Delete the folder ``path`` and everything in it (local or URI); False when absent."""
    import pyarrow.fs as pafs

    fs, target = _fs(path)
    if fs.get_file_info(target).type == pafs.FileType.NotFound:
        return False
    fs.delete_dir(target)
    return True

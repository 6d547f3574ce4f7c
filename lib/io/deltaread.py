"""Read a Delta table's current snapshot without Spark (pyarrow + the transaction log).

For notebooks and quick looks: replays ``_delta_log`` (the last checkpoint, then the JSON
commits after it) to find the live Parquet files, and reads them with pyarrow, adding the
partition columns. Tables with deletion vectors or column mapping are refused with a clear
error (use Spark). Example::

    from gaialake.io.deltaread import read_delta
    df = read_delta("warehouse/stream_candidates").to_pandas()
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["live_files", "read_delta"]


def _checkpoint(log: Path) -> tuple[int, list[Path]]:
    last = log / "_last_checkpoint"
    if not last.exists():
        return -1, []
    version = int(json.loads(last.read_text())["version"])
    parts = sorted(log.glob(f"{version:020d}.checkpoint*.parquet"))
    return version, parts


def live_files(table: str | Path) -> tuple[list[tuple[str, dict]], dict]:
    """(path, partition values) of every live data file, and the table's metadata action."""
    root = Path(table)
    log = root / "_delta_log"
    if not log.is_dir():
        raise FileNotFoundError(f"{root}: not a Delta table (no _delta_log)")
    files: dict[str, dict] = {}
    metadata: dict = {}
    cp_version, parts = _checkpoint(log)
    for part in parts:
        t = pq.read_table(part, columns=["add", "metaData"]).to_pylist()
        for row in t:
            if row.get("add"):
                files[row["add"]["path"]] = dict(row["add"].get("partitionValues") or {})
            if row.get("metaData"):
                metadata = row["metaData"]
    for commit in sorted(log.glob("*.json")):
        if int(commit.stem) <= cp_version:
            continue
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                if action["add"].get("deletionVector"):
                    raise NotImplementedError(f"{root}: deletion vectors; read it with Spark")
                files[action["add"]["path"]] = dict(action["add"].get("partitionValues") or {})
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
            elif "metaData" in action:
                metadata = action["metaData"]
    conf = metadata.get("configuration") or {}
    if conf.get("delta.columnMapping.mode", "none") != "none":
        raise NotImplementedError(f"{root}: column mapping; read it with Spark")
    return [(str(root / unquote(p)), v) for p, v in sorted(files.items())], metadata


#: Delta's atomic types as Arrow types (others read as strings; nested ones as nulls).
_ATOMIC = {"long": pa.int64(), "integer": pa.int32(), "short": pa.int16(), "byte": pa.int8(),
           "double": pa.float64(), "float": pa.float32(), "boolean": pa.bool_(),
           "string": pa.string(), "date": pa.date32(), "timestamp": pa.timestamp("us", "UTC")}


def read_delta(table: str | Path, columns: Sequence[str] | None = None,
               filter_partitions: dict | None = None) -> pa.Table:
    """The live rows of a Delta table as one Arrow table (partition columns included)."""
    files, metadata = live_files(table)
    schema = json.loads(metadata["schemaString"]) if metadata.get("schemaString") else None
    types = {f["name"]: f["type"] for f in schema["fields"]} if schema else {}
    pieces = []
    for path, parts in files:
        if filter_partitions and any(str(parts.get(k)) != str(v) for k, v in filter_partitions.items()):
            continue
        cols = None if columns is None else [c for c in columns if c not in parts]
        t = pq.read_table(path, columns=cols)
        for k, v in parts.items():
            if columns is None or k in columns:
                arr = pa.array([v] * t.num_rows, pa.string())
                target = _ATOMIC.get(types.get(k), pa.string())
                t = t.append_column(k, pc.cast(arr, target) if v is not None else pa.nulls(t.num_rows, target))
        pieces.append(t)
    if not pieces:       # an empty table (or partition): no rows, the table's columns
        return pa.schema([pa.field(name, _ATOMIC.get(kind, pa.string()) if isinstance(kind, str)
                                   else pa.null())
                          for name, kind in types.items()
                          if columns is None or name in columns]).empty_table()
    return pa.concat_tables(pieces, promote=True)

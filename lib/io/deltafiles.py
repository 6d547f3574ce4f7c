"""Delta data files written by pyarrow: hive-style partition folders and per-file statistics.

An executor writes the files of a table straight into its directory and returns one
:func:`add_action` record per file; the driver commits them to the Delta log
(:func:`gaialake.io.delta.commit_files`). The statistics are those Delta collects itself
(``numRecords``, ``minValues``, ``maxValues``, ``nullCount`` of the table's
``delta.dataSkippingStatsColumns``), so data skipping works as on files Spark wrote.
"""
from __future__ import annotations

import json
import os
import uuid
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

__all__ = ["write_partitioned", "file_stats", "schema_differences", "STRING_PREFIX"]

#: Leading characters of a string min/max Delta keeps (its ``dataSkippingStringPrefixLength``).
STRING_PREFIX = 32


def schema_differences(schema: pa.Schema, expected: pa.Schema) -> list[str]:
    """How ``schema`` differs from ``expected`` (names, order and types; nullability aside), as
    lines naming each column; empty when they agree."""
    got = [(f.name, f.type) for f in schema]
    want = [(f.name, f.type) for f in expected]
    if got == want:
        return []
    have, need = dict(got), dict(want)
    out = [f"column {n}: {have[n]} where the table has {t}" for n, t in want
           if n in have and have[n] != t]
    out += [f"column {n} ({t}) is missing" for n, t in want if n not in have]
    out += [f"column {n} ({t}) is not in the table" for n, t in got if n not in need]
    return out or [f"column order {[n for n, _ in got]} differs from {[n for n, _ in want]}"]


def write_partitioned(table: pa.Table, root: str, partition: str, partition_values: np.ndarray,
                      stats_columns: Sequence[str], compression: str = "snappy",
                      expected: pa.Schema | None = None) -> list[dict]:
    """Write ``table`` as one Parquet file per value of ``partition`` under
    ``<root>/<partition>=<value>/`` (local paths); returns each file's add-action fields.

    ``table`` is sorted by ``partition_values`` (int64, one per row, not stored in the files: the
    folder names it), and each file keeps that order. ``stats_columns`` name the columns whose
    statistics the records carry. ``expected``: the table's data schema (partition column
    aside); rows of another schema raise ``ValueError`` before any file is written, so a commit
    never adds a file whose schema differs from the table's.
    """
    records = []
    if expected is not None:
        diff = schema_differences(table.schema, expected)
        if diff:
            raise ValueError(f"rows to write under {root} differ from the table's schema: "
                             + "; ".join(diff[:5]))
    if table.num_rows == 0:
        return records
    starts = np.concatenate([[0], np.flatnonzero(np.diff(partition_values)) + 1, [table.num_rows]])
    for lo, hi in zip(starts[:-1], starts[1:]):
        value = int(partition_values[lo])
        rel = f"{partition}={value}/part-{uuid.uuid4().hex}.c000.{compression}.parquet"
        target = os.path.join(root, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        part = table.slice(lo, hi - lo)
        pq.write_table(part, target, compression=compression)
        st = os.stat(target)
        records.append({"path": rel, "size": st.st_size, "partition_value": str(value),
                        "modification_time": int(st.st_mtime * 1000),
                        "stats": file_stats(part, stats_columns)})
    return records


def file_stats(table: pa.Table, columns: Sequence[str]) -> str:
    """Delta's statistics JSON of one data file: numRecords, and min, max and null count of each
    of ``columns`` present in ``table``.

    A min/max is left out (so no file is skipped on it) where Delta could not compare it as it
    compares the file's values: a float column holding NaN or an infinity, an all-null column, a
    string max longer than :data:`STRING_PREFIX` (a string min is cut to that prefix as Delta
    does).
    """
    mins, maxs, nulls = {}, {}, {}
    present = set(table.column_names)
    for name in columns:
        if name not in present:
            continue
        col = table.column(name)
        nulls[name] = col.null_count
        if col.null_count == len(col):
            continue
        if pa.types.is_floating(col.type) and not pc.all(pc.is_finite(col)).as_py():
            continue
        lo, hi = (v.as_py() for v in pc.min_max(col).values())
        if isinstance(lo, str):
            mins[name] = lo[:STRING_PREFIX]
            if len(hi) <= STRING_PREFIX:
                maxs[name] = hi
        else:
            mins[name], maxs[name] = lo, hi
    return json.dumps({"numRecords": table.num_rows, "minValues": mins, "maxValues": maxs,
                       "nullCount": nulls}, allow_nan=False)


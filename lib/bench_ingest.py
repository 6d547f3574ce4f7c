"""Ingest benchmark: ``gaialake ingest`` vs pyarrow CSV -> Parquet on the same bulk files.

Run as ``python -m gaialake.bench_ingest pyarrow RAW OUT``: the single-pass baseline, pyarrow's
multithreaded CSV reader (types from the ECSV header) writing one Parquet file per bulk file.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .bulkfile import open_bulk, read_header
from .schema import FALSE_VALUES, NULL_VALUES, TRUE_VALUES, arrow_type

__all__ = ["pyarrow_csv_to_parquet"]


def pyarrow_csv_to_parquet(raw: str, out: str) -> int:
    """Convert every GaiaSource_*.csv.gz under ``raw`` to Parquet in ``out``; returns rows."""
    Path(out).mkdir(parents=True, exist_ok=True)
    rows = 0
    for path in sorted(Path(raw).glob("GaiaSource_*.csv.gz")):
        header = read_header(str(path))
        with open_bulk(str(path)) as stream:
            table = pacsv.read_csv(
                stream,
                read_options=pacsv.ReadOptions(skip_rows=header.header_lines,
                                               column_names=header.names, use_threads=True),
                parse_options=pacsv.ParseOptions(delimiter=header.delimiter),
                convert_options=pacsv.ConvertOptions(
                    column_types={c.name: arrow_type(c.datatype) for c in header.columns},
                    null_values=NULL_VALUES, true_values=TRUE_VALUES, false_values=FALSE_VALUES,
                    strings_can_be_null=True))
        pq.write_table(table, Path(out) / (path.name[:-7] + ".parquet"))
        rows += table.num_rows
    return rows


if __name__ == "__main__":
    if sys.argv[1] == "pyarrow":
        print(pyarrow_csv_to_parquet(sys.argv[2], sys.argv[3]))

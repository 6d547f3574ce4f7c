"""Ingest benchmark: ``gaialake ingest`` vs two baselines on the same bulk files.

- pyarrow CSV -> Parquet, the single-pass floor: ``python -m gaialake.bench.ingest_bench pyarrow RAW
  OUT`` (pyarrow's multithreaded CSV reader, types from the ECSV header, one Parquet file per
  bulk file);
- hats-import (the HATS/LSDB importer), the HEALPix-partitioned peer: ``lib/bench/hats_import.py`` run
  by the python of its own virtual environment (:func:`measure_hats_import`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gaialake.bench.kit import measure_command
from gaialake.io.bulkfile import open_bulk, read_header
from gaialake.io.dr3schema import FALSE_VALUES, NULL_VALUES, TRUE_VALUES, arrow_type

__all__ = ["pyarrow_csv_to_parquet", "hats_summary", "measure_hats_import", "HATS_SCRIPT"]

#: The hats-import script (run by the hats venv's python, never imported here).
HATS_SCRIPT = Path(__file__).with_name("hats_import.py")
_SUMMARY = "hats_import_summary "  # hats_import.SUMMARY and a space: its summary line's start


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


def hats_summary(output: str) -> dict:
    """The summary the hats script printed last (rows, pixels, pipeline_s, version...)."""
    found = [ln for ln in output.splitlines() if ln.startswith(_SUMMARY)]
    if not found:
        raise ValueError(f"no '{_SUMMARY.strip()}' line in the hats-import output: {output[-300:]!r}")
    return json.loads(found[-1][len(_SUMMARY):])


def measure_hats_import(python: Path, raw: Path, out: Path, cores: int) -> dict:
    """hats-import over the bulk files under ``raw`` into ``out``/gaia, run by ``python`` on
    ``cores`` dask worker processes: the script's summary plus ``seconds`` and ``peak_mib`` of
    its process tree and the catalog's ``bytes``; ``{"error": why}`` when it cannot run."""
    if not python.exists():
        return {"error": f"{python} not found (`make .venv-hats` creates it)"}
    try:
        m = measure_command([str(python), str(HATS_SCRIPT), str(raw), str(out), str(cores)])
        summary = hats_summary(m.output)
    except (RuntimeError, ValueError) as err:
        return {"error": " ".join(str(err).split())[-400:]}
    catalog = [f for f in (out / "gaia").rglob("*") if f.is_file()]
    return {**summary, "seconds": m.seconds, "peak_mib": m.peak_mib,
            "bytes": sum(f.stat().st_size for f in catalog)}


if __name__ == "__main__":
    if sys.argv[1] == "pyarrow":
        print(pyarrow_csv_to_parquet(sys.argv[2], sys.argv[3]))

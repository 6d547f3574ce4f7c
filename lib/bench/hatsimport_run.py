"""hats-import baseline of ``make bench``: Gaia DR3 bulk files -> one HATS catalog.

A standalone script for the hats virtual environment (``.venv-hats``, made by ``make``; its
numpy >= 2 and pandas >= 3 cannot live beside gaialake's numpy 1.26), so it imports nothing
from gaialake::

    .venv-hats/bin/python lib/bench/hatsimport_run.py RAW OUT CORES

Reads every ``GaiaSource_*.csv.gz`` under RAW the way hats-import reads Gaia DR3 (its
``CsvReader`` with ``comment="#"``, gzip, and a Parquet schema file for the column types, here
written from the first file's ECSV header), on a local dask cluster of CORES single-threaded
worker processes, into the catalog ``OUT/gaia``; rows sorted by ``_healpix_29`` (hats' default,
as gaialake sorts by ``hpx29``). Then counts the rows in the catalog's data files and prints one
line, the last: ``hats_import_summary {"rows": ..., "pixels": ..., "pipeline_s": ...}``, where
``pipeline_s`` is the import itself (seconds, no interpreter or cluster start).
"""
from __future__ import annotations

import gzip
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from dask.distributed import Client, LocalCluster
from hats_import.catalog.arguments import ImportArguments
from hats_import.catalog.file_readers import CsvReader
from hats_import.pipeline import pipeline_with_client

SUMMARY = "hats_import_summary"
ARROW = {"int64": pa.int64(), "int32": pa.int32(), "int16": pa.int16(), "int8": pa.int8(),
         "uint8": pa.uint8(), "float64": pa.float64(), "float32": pa.float32(),
         "bool": pa.bool_(), "string": pa.string()}


def ecsv_schema(path: Path) -> pa.Schema:
    """Arrow schema from the ``datatype`` list of a bulk file's ECSV header."""
    lines = []
    with gzip.open(path, "rt", encoding="utf-8") as text:
        for line in text:
            if not line.startswith("#"):
                break
            lines.append(line[2:])
    meta = yaml.safe_load("".join(lines[1:]))  # lines[0] is '%ECSV 1.0'
    return pa.schema([(c["name"], ARROW[c.get("datatype", "string")]) for c in meta["datatype"]])


def import_catalog(raw: Path, out: Path, cores: int) -> dict:
    """Run hats-import over the bulk files; returns the summary (rows counted in the output)."""
    files = sorted(raw.glob("GaiaSource_*.csv.gz"))
    out.mkdir(parents=True, exist_ok=True)
    schema_file = out / "gaia_schema.parquet"
    pq.write_table(ecsv_schema(files[0]).empty_table(), schema_file)
    args = ImportArguments(
        output_artifact_name="gaia", output_path=out, input_file_list=files,
        file_reader=CsvReader(comment="#", schema_file=schema_file, compression="gzip"),
        ra_column="ra", dec_column="dec", use_schema_file=schema_file,
        dask_tmp=out / "dask_tmp", progress_bar=False, resume=False)
    with LocalCluster(n_workers=cores, threads_per_worker=1, processes=True,
                      local_directory=out / "dask_tmp", dashboard_address=None) as cluster, \
            Client(cluster) as client:
        t0 = time.perf_counter()
        pipeline_with_client(args, client)
        seconds = time.perf_counter() - t0
    data = sorted((out / "gaia" / "dataset").rglob("Npix=*.parquet"))
    return {"rows": sum(pq.ParquetFile(f).metadata.num_rows for f in data), "pixels": len(data),
            "files": len(files), "pipeline_s": seconds, "cores": cores,
            "version": version("hats-import")}


if __name__ == "__main__":
    summary = import_catalog(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
    print(SUMMARY, json.dumps(summary), flush=True)

"""The synthetic sky as files: DR3 bulk files written by Spark tasks, and the model's parameters.

:func:`write_files` runs one task per file range (or spreads the ranges over fewer tasks; the
files are the same bytes either way): each samples its stars
(:func:`gaialake.sky.skymodel.sample_range`), writes ``GaiaSource_AAAAAA-BBBBBB.csv.gz`` and
returns its truth rows. :func:`write_params` writes ``sky_model.json`` beside the files; it
marks the folder as generated, so :func:`clean_raw` removes an earlier run's files first.
"""
from __future__ import annotations

import glob
import json
import os
import time

from gaialake.io.bulkfile import write_bulk_file
from gaialake.io.dr3schema import DR3_COLUMNS
from gaialake.sky.skymodel import SkyModel, sample_range

__all__ = ["PARAMS_FILE", "TRUTH_ROWS_DDL", "clean_raw", "write_params", "write_files"]

#: The model's parameters, written beside the bulk files.
PARAMS_FILE = "sky_model.json"
#: The truth rows the tasks return (before ``run_id``): the star's origin, component, stream
#: (null outside streams) and the index of its file range.
TRUTH_ROWS_DDL = "source_id long, origin string, component string, stream string, file_index int"


def clean_raw(raw: str) -> int:
    """Remove the bulk files of an earlier generate run in a local ``raw`` directory (one with
    :data:`PARAMS_FILE`); returns how many were removed."""
    if "://" in raw or not os.path.exists(os.path.join(raw, PARAMS_FILE)):
        return 0
    old = glob.glob(os.path.join(raw, "GaiaSource_*.csv.gz"))
    for path in old:
        os.remove(path)
    return len(old)


def write_params(raw: str, params: dict) -> None:
    """Write ``params`` as JSON to ``<raw>/sky_model.json`` (local paths or fsspec URIs)."""
    text = json.dumps(params, indent=1, default=str)
    if "://" in raw:
        import fsspec

        with fsspec.open(f"{raw.rstrip('/')}/{PARAMS_FILE}", "w") as fh:
            fh.write(text)
        return
    os.makedirs(raw, exist_ok=True)
    with open(os.path.join(raw, PARAMS_FILE), "w") as fh:
        fh.write(text)


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

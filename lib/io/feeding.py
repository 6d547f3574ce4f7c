"""Feeding torch from Spark: the device of a task, and Petastorm loaders over DataFrames.

Two ways to feed torch: per group (``applyInPandas``: the group's rows arrive as a
pandas DataFrame inside the task; use :func:`task_device`) and streaming (:func:`torch_loader`:
Petastorm's ``make_spark_converter`` -> ``make_torch_dataloader``, for more rows than memory).
Petastorm needs ``df._jdf`` and so does not run over Spark Connect; this module is the one place
to add a second loader (pyarrow.dataset, Mosaic Streaming) for such clusters.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["task_device", "torch_loader", "stack_batch"]


def task_device():
    """``cuda`` when Spark gave this task a GPU, else CPU with torch threads = task cpus.

    Outside a Spark task (driver, tests): cuda when available, else CPU.
    """
    import torch

    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
    except ImportError:  # pragma: no cover - pyspark is a dependency
        ctx = None
    if ctx is not None:
        gpus = ctx.resources().get("gpu")
        if gpus is not None and gpus.addresses and torch.cuda.is_available():
            return torch.device(f"cuda:{gpus.addresses[0]}")
        torch.set_num_threads(max(1, int(ctx.cpus())))
        return torch.device("cpu")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _cache_url(conf) -> str:
    root = conf.table_path("_petastorm")
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(root).as_uri()
    return root


@contextmanager
def torch_loader(df, columns: Sequence[str], *, batch_size: int, conf, shuffle: bool = True,
                 seed: int = 0, num_epochs: int | None = 1, workers: int = 1) -> Iterator:
    """A Petastorm torch DataLoader over ``df[columns]`` (float32), yielding dicts of tensors.

    The DataFrame is materialised once as Parquet under ``<warehouse>/_petastorm`` (Petastorm's
    converter cache) and deleted on exit. With ``shuffle`` it is materialised in a random order
    (``seed``): Petastorm shuffles row groups, rows inside a row group and a buffer of 4
    batches, so rows that arrive sorted (a Delta table by sky pixel) would otherwise fill each
    batch from one file's stretch of sky.
    """
    from petastorm.spark import SparkDatasetConverter, make_spark_converter
    from pyspark.sql import functions as F

    spark = df.sparkSession
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, _cache_url(conf))
    rows = df.select(*[F.col(c).cast("float") for c in columns])
    if shuffle:
        rows = rows.orderBy(F.rand(int(seed) % 2**31))
    converter = make_spark_converter(rows)
    try:
        import torch
        from petastorm.pytorch import BatchedDataLoader

        # BatchedDataLoader collates column batches (the default loader goes row by row:
        # ~2x slower than an in-memory loop); it shuffles with torch's RNG, seeded here
        torch.manual_seed(seed)
        kwargs = dict(batch_size=batch_size, num_epochs=num_epochs, workers_count=workers,
                      shuffling_queue_capacity=(4 * batch_size if shuffle else 0),
                      data_loader_fn=BatchedDataLoader)
        if shuffle:
            kwargs["seed"] = seed
            kwargs["shuffle_rows"] = True
        try:
            ctx = converter.make_torch_dataloader(**kwargs)
        except TypeError:  # older petastorm without seed/shuffle_rows
            kwargs.pop("seed", None)
            kwargs.pop("shuffle_rows", None)
            ctx = converter.make_torch_dataloader(**kwargs)
        with ctx as loader:
            yield loader
    finally:
        converter.delete()


def stack_batch(batch: dict, columns: Sequence[str]):
    """A Petastorm batch (dict of 1-D tensors) as one (B, len(columns)) float tensor."""
    import torch

    return torch.stack([batch[c] for c in columns], dim=1).float()

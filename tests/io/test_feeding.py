"""Petastorm feeding: every row of a Spark DataFrame reaches torch once per epoch."""
from __future__ import annotations

import numpy as np
import torch

from gaialake.io.feeding import stack_batch, task_device, torch_loader


def test_petastorm_loader_delivers_each_row_once_per_epoch(spark, conf):
    n = 3000
    df = spark.range(n).selectExpr("cast(id as double) AS a", "cast(id * 2 as double) AS b")
    seen = []
    with torch_loader(df, ["a", "b"], batch_size=256, conf=conf, shuffle=True, seed=1,
                      num_epochs=2) as loader:
        for batch in loader:
            x = stack_batch(batch, ["a", "b"])
            assert x.dtype == torch.float32 and x.shape[1] == 2
            assert torch.equal(x[:, 1], 2 * x[:, 0])
            seen.append(x[:, 0].numpy())
    values = np.sort(np.concatenate(seen))
    np.testing.assert_array_equal(values, np.repeat(np.arange(n, dtype=np.float32), 2))


def test_a_sorted_table_reaches_every_batch_mixed(spark, conf):
    # rows sorted in 8 files (a Delta table by sky pixel): each batch spans the whole range
    n, batch_size = 16_000, 256
    df = spark.range(0, n, numPartitions=8).selectExpr("cast(id as double) AS a")
    spans = []
    with torch_loader(df, ["a"], batch_size=batch_size, conf=conf, shuffle=True, seed=3,
                      num_epochs=1) as loader:
        for batch in loader:
            a = batch["a"].numpy()
            if len(a) == batch_size:
                spans.append(a.max() - a.min())
    assert len(spans) >= n // batch_size - 1
    assert min(spans) > 0.8 * n     # one file's stretch would span <= n / 8


def test_task_device_is_cpu_with_task_threads_on_executors(spark):
    def probe(_):
        import torch as t
        dev = task_device()
        yield (str(dev), t.get_num_threads())

    out = spark.sparkContext.parallelize([0], 1).mapPartitions(probe).collect()
    assert out == [("cpu", 1)]

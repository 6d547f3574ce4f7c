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


def test_task_device_is_cpu_with_task_threads_on_executors(spark):
    def probe(_):
        import torch as t
        dev = task_device()
        yield (str(dev), t.get_num_threads())

    out = spark.sparkContext.parallelize([0], 1).mapPartitions(probe).collect()
    assert out == [("cpu", 1)]

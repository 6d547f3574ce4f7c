"""Dealing per-file and per-partition work to few Spark tasks."""
from __future__ import annotations

from gaialake.io.spark import TASKS_PER_CORE, deal, dealt_frame


def test_keys_are_dealt_to_tasks_with_balanced_weights():
    groups = deal({1: 100, 2: 60, 3: 50, 4: 40, 5: 10}, tasks=2)
    assert sorted(sorted(g) for g in groups) == [[1, 4], [2, 3, 5]]    # 140 rows and 120
    assert deal({7: 5}, tasks=8) == [[7]]                            # never an empty task
    assert deal({}, tasks=4) == []


def test_a_dealt_frame_has_one_partition_per_group(spark):
    weights = {f"file{i:02d}": 10 + i for i in range(20)}
    frame = dealt_frame(spark, weights, lambda k: (k, weights[k]), "name string, size long")
    parts = [sorted(r.name for r in p) for p in frame.rdd.glom().collect()]
    tasks = TASKS_PER_CORE * spark.sparkContext.defaultParallelism
    assert len(parts) == min(tasks, len(weights))
    assert sorted(n for p in parts for n in p) == sorted(weights)        # every key once
    expected = deal(weights, tasks)
    assert sorted(parts) == sorted(sorted(g) for g in expected)

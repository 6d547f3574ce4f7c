"""The stream search's Spark tasks: how (patch, axis, SR, retraining) groups reach the cores."""
from __future__ import annotations

import pandas as pd

from gaialake.streams.search_spark import TASK_KEY, spread_tasks


def test_each_group_lands_whole_in_one_partition_and_groups_spread_over_the_partitions(spark):
    # 12 groups of 50 rows in 12 partitions: hashing the key puts two or three groups in some
    # partitions and none in others (measured: 6 of 12 empty, 3 groups in three); by range each
    # partition holds about one group's rows
    groups = [(patch, axis, sr, 0) for patch in (19, 21, 122) for axis in ("pm_phi", "pm_lam")
              for sr in (0, 1)]
    rows = pd.DataFrame([dict(zip(TASK_KEY, g), source_id=i * 100 + j)
                         for i, g in enumerate(groups) for j in range(50)])
    df = spark.createDataFrame(rows, "patch_id long, pm_axis string, sr_index int, "
                                     "retraining int, source_id long")
    parts = spread_tasks(df, len(groups)).rdd.glom().collect()
    keys = [{tuple(r[k] for k in TASK_KEY) for r in part} for part in parts]
    owner = {}
    for i, part in enumerate(keys):
        for key in part:
            assert key not in owner, f"group {key} split over partitions {owner[key]} and {i}"
            owner[key] = i
    assert set(owner) == set(groups)
    assert max(len(k) for k in keys) <= 2
    assert sum(1 for k in keys if not k) <= 2

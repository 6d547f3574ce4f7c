"""The mapInPandas functions of the upsampled mock on pandas frames, and their Spark tasks."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaialake.upsample.mock_spark import flow_sampler


def test_flow_sampler_partitions_are_seeded_and_reproducible():
    from gaialake.models.galaxyflow import build_galaxyflow, galaxyflow_config
    from gaialake.io.tracking import state_to_bytes

    x = np.random.default_rng(0).normal(size=(500, 6)) + [-8, 0, 0, 0, 220, 0]
    config = galaxyflow_config(x, ["x", "y", "z", "vx", "vy", "vz"], transforms=1, hidden=8)
    state = state_to_bytes(build_galaxyflow(config).state_dict())
    tasks = pd.DataFrame({"partition": [0, 1], "n": [300, 200]})
    run = lambda seeds: pd.concat(flow_sampler(config, state, seeds, 0.3, 0.3, "r")([tasks]))
    a, b = run({0: 11, 1: 12}), run({0: 11, 1: 12})
    # the same stars to float rounding (MKL may differ in the last bit with memory alignment)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=1e-9)
    assert len(a) == 500 and a["particle_id"].is_unique
    c = run({0: 11, 1: 99})
    pd.testing.assert_frame_equal(a[a.particle_id < 2**32], c[c.particle_id < 2**32],
                                  check_exact=False, rtol=1e-9, atol=1e-9)
    assert not np.allclose(a[a.particle_id >= 2**32]["x"], c[c.particle_id >= 2**32]["x"])
    assert set(a["split"]) == {"fit", "eval", "mock"}


def test_flow_mock_gives_each_sampling_task_one_partition(spark):
    """Hash partitioning put both of 2 sampling partitions in one task (one core sampled
    everything); range partitioning gives every task its own."""
    from gaialake.models.galaxyflow import build_galaxyflow, galaxyflow_config
    from gaialake.upsample.mock_spark import flow_mock

    x = np.random.default_rng(1).normal(size=(300, 6)) + [-8, 0, 0, 0, 220, 0]
    model = build_galaxyflow(galaxyflow_config(x, ["x", "y", "z", "vx", "vy", "vz"],
                                               transforms=1, hidden=8))
    for parts in (2, 8):
        mock = flow_mock(spark, model, 40 * parts, {p: 100 + p for p in range(parts)}, 0.3, 0.3,
                         "r")
        sizes = mock.rdd.glom().map(len).collect()
        assert sizes == [40] * parts


def test_feed_auto_collects_small_particle_sets_and_streams_large_ones():
    from gaialake.upsample.mock_spark import choose_feed

    assert choose_feed("auto", 2_000_000, 2_000_000) == "memory"
    assert choose_feed("auto", 2_000_001, 2_000_000) == "petastorm"
    assert choose_feed("petastorm", 10, 2_000_000) == "petastorm"
    with pytest.raises(ValueError, match="upsample.feed"):
        choose_feed("disk", 10, 10)

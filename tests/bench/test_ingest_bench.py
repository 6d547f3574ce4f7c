"""The ingest profile from a `gaialake ingest` log: Spark start, stages summed over batches."""
from __future__ import annotations

import pytest

from gaialake.bench.ingest_bench import PROFILE_STAGES, ingest_profile

LOG = """21:00:00 INFO gaialake.cli: job ingest: start
21:00:08 INFO gaialake.spark: Spark session ready in 8.0 s (local)
21:00:09 INFO gaialake.ingest: batch 1/2 (64 files): start
21:00:09 INFO gaialake.ingest: check headers: done in 1.5 s
21:00:11 INFO gaialake.ingest: 64 files parsed in 40.0 s and written in 12.0 s of task time (summed over the tasks)
21:00:40 INFO gaialake.ingest: parse and write (arrow writer): done in 27.0 s
21:00:43 INFO gaialake.ingest: duplicate check: done in 3.0 s
21:00:45 INFO gaialake.ingest: write gaia_source (arrow writer): done in 2.0 s
21:00:47 INFO gaialake.ingest: write quarantine and ingest_log: done in 2.5 s
21:00:47 INFO gaialake.ingest: batch 1/2 (64 files): done 6,400,000 rows in 40.0 s, 160,000 rows/s
21:00:47 INFO gaialake.ingest: batch 2/2 (35 files): start
21:00:48 INFO gaialake.ingest: check headers: done in 0.5 s
21:00:48 INFO gaialake.ingest: 35 files parsed in 22.0 s and written in 6.0 s of task time (summed over the tasks)
21:01:03 INFO gaialake.ingest: parse and write (arrow writer): done in 15.0 s
21:01:05 INFO gaialake.ingest: duplicate check: done in 2.0 s
21:01:07 INFO gaialake.ingest: write gaia_source (arrow writer): done in 2.0 s
21:01:10 INFO gaialake.ingest: write quarantine and ingest_log: done in 3.5 s
21:01:10 INFO gaialake.ingest: batch 2/2 (35 files): done 3,500,000 rows in 24.0 s, 145,833 rows/s
21:01:10 INFO gaialake.cli: job ingest: done in 75.0 s {"files": 99}
"""


def test_profile_sums_each_stage_over_the_batches_and_accounts_for_every_second():
    prof = ingest_profile(LOG, seconds=78.0)
    assert prof["python_start"] == pytest.approx(3.0)
    assert prof["spark_session"] == pytest.approx(8.0)
    assert prof["check headers"] == pytest.approx(2.0)
    assert prof["parse and write (arrow writer)"] == pytest.approx(42.0)
    assert prof["write quarantine and ingest_log"] == pytest.approx(6.0)
    assert prof["task_parse_core_s"] == pytest.approx(62.0)
    assert prof["task_write_core_s"] == pytest.approx(18.0)
    assert prof["other_batch"] == pytest.approx(64.0 - 59.0)     # batches less their stages
    assert prof["other_job"] == pytest.approx(75.0 - 64.0 - 8.0)
    parts = ["python_start", "spark_session", "other_job", "other_batch", *PROFILE_STAGES]
    assert sum(prof[k] for k in parts) == pytest.approx(78.0)

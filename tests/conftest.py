"""Shared fixtures: one local SparkSession for the whole run (DESIGN §8), tmp paths per test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from gaialake.conf import Conf, load_conf


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("gaialake")


@pytest.fixture(scope="session")
def spark(session_dir):
    """The one local SparkSession of the test run (2 cores, small shuffles)."""
    from gaialake.io.spark import get_spark

    conf = load_conf(sets=[f"paths.metastore={session_dir / 'metastore'}",
                           "spark.shuffle_partitions=4", "spark.driver_memory=4g"])
    session = get_spark(conf)
    yield session
    session.stop()


@pytest.fixture
def conf(tmp_path) -> Conf:
    """Conf with a fresh raw/warehouse/mlflow under the test's tmp dir."""
    return load_conf(sets=[f"paths.raw={tmp_path / 'raw'}",
                           f"paths.warehouse={tmp_path / 'warehouse'}",
                           f"paths.mlflow={tmp_path / 'mlruns'}",
                           f"paths.report={tmp_path / 'report'}",
                           "spark.shuffle_partitions=4"])


@pytest.fixture(autouse=True, scope="session")
def _quiet_threads():
    os.environ.setdefault("OMP_NUM_THREADS", "2")

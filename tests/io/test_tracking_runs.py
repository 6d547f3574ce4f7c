"""A failed or killed job leaves its MLflow runs FAILED or KILLED, never RUNNING."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from gaialake.io import tracking

# a job run with a child run, killed inside the child by the given signal (by the process itself:
# the kill lands while both runs are open)
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from gaialake.conf import load_conf
    from gaialake.io import tracking

    conf = load_conf(sets=[f"paths.mlflow={sys.argv[1]}"])
    with tracking.job_run(conf, "unit") as run:
        with tracking.child_run("child") as child:
            print(run.info.run_id, child.info.run_id, flush=True)
            os.kill(os.getpid(), int(sys.argv[2]))
            signal.pause()
""")


def _statuses(conf, *run_ids: str) -> list[str]:
    import mlflow

    tracking.configure(conf)
    return [mlflow.get_run(r).info.status for r in run_ids]


def _killed_run(conf, signum: int) -> tuple[str, str, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, conf.path("paths.mlflow"), str(signum)],
                         capture_output=True, text=True, timeout=300)
    ids = out.stdout.split()
    assert len(ids) == 2, out.stderr[-3000:]
    return ids[0], ids[1], out.returncode


def test_runs_of_a_kill9ed_job_are_marked_killed_by_the_next_job_run(conf):
    parent, child, rc = _killed_run(conf, signal.SIGKILL)
    assert rc == -signal.SIGKILL
    # the kill landed mid-run: both runs were left RUNNING
    assert _statuses(conf, parent, child) == ["RUNNING", "RUNNING"]
    with tracking.job_run(conf, "unit") as run:
        assert _statuses(conf, parent, child) == ["KILLED", "KILLED"]
    assert _statuses(conf, run.info.run_id) == ["FINISHED"]


def test_sigterm_ends_the_runs_killed(conf):
    parent, child, rc = _killed_run(conf, signal.SIGTERM)
    assert rc != 0
    assert _statuses(conf, parent, child) == ["KILLED", "KILLED"]


def test_a_failing_job_ends_its_runs_failed_and_a_live_process_run_is_left_alone(conf):
    import mlflow

    with pytest.raises(RuntimeError, match="boom"):
        with tracking.job_run(conf, "unit") as run:
            with tracking.child_run("child") as child:
                raise RuntimeError("boom")
    assert _statuses(conf, run.info.run_id, child.info.run_id) == ["FAILED", "FAILED"]
    assert mlflow.active_run() is None
    # a run of a live process (this one) stays RUNNING while another job run starts and ends
    client = mlflow.MlflowClient()
    open_id = client.create_run(run.info.experiment_id, tags={
        "gaialake.host": socket.gethostname(), "gaialake.pid": str(os.getpid())}).info.run_id
    try:
        with tracking.job_run(conf, "unit"):
            pass
        assert _statuses(conf, open_id) == ["RUNNING"]
    finally:
        client.set_terminated(open_id, "FINISHED")

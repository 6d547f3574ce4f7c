"""MLflow tracking: a torch model logged as pyfunc, registered, loaded back by alias."""
from __future__ import annotations

import pandas as pd
import torch

from gaialake.io import tracking


def build_linear(config):
    return torch.nn.Linear(config["n_in"], 1)


def predict_linear(module, df: pd.DataFrame):
    with torch.no_grad():
        return module(torch.tensor(df.to_numpy(), dtype=torch.float32)).numpy()[:, 0]


def test_model_round_trips_through_registry_by_alias(conf):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1)
    cfg = {"n_in": 3, "predict": "tests.io.test_tracking:predict_linear"}
    with tracking.job_run(conf, "unit") as run:
        with tracking.child_run("child"):
            pass
        v1 = tracking.log_torch_model("m", "tests.io.test_tracking:build_linear", cfg,
                                      tracking.state_to_bytes(net.state_dict()),
                                      registered_name="gaialake-test")
    assert str(v1.version) == "1" and run.info.run_id
    loaded = tracking.load_torch_model(conf, "gaialake-test")
    x = torch.randn(5, 3)
    assert torch.allclose(loaded(x), net(x))
    assert str(loaded.gaialake_version) == "1"

    import mlflow
    pyfunc = mlflow.pyfunc.load_model("models:/gaialake-test@champion")
    df = pd.DataFrame(x.numpy(), columns=list("abc"))
    assert abs(pyfunc.predict(df) - net(x).detach().numpy()[:, 0]).max() < 1e-6

    # the resolved conf is logged on the parent run
    params = mlflow.get_run(run.info.run_id).data.params
    assert params["paths.warehouse"] == conf.get("paths.warehouse")


def test_curves_are_logged_per_step_in_batches(conf):
    import mlflow

    long = [float(i) for i in range(1500)]            # more than one batch of 1000
    with tracking.job_run(conf, "curves") as run:
        tracking.log_curves({"a.loss": [3.0, float("nan"), 1.0], "b:val": long})
        tracking.set_tags({"skipped.x": "reason", "skipped.y": 5})
    client = mlflow.tracking.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "a.loss")
    assert sorted((m.step, m.value) for m in history) == [(0, 3.0), (2, 1.0)]
    long_history = client.get_metric_history(run.info.run_id, "b_val")
    assert sorted(m.step for m in long_history) == list(range(1500))
    assert mlflow.get_run(run.info.run_id).data.tags["skipped.y"] == "5"
    tracking.log_curves({"outside": [1.0]})          # no active run: nothing, no error


def test_missing_model_names_the_store(conf):
    import pytest
    with pytest.raises(LookupError, match="no model 'gaialake-nothing'"):
        tracking.load_torch_model(conf, "gaialake-nothing")


def test_models_list_and_promote_move_the_champion_alias(conf):
    from gaialake.io.tracking import list_models, promote

    with tracking.job_run(conf, "unit"):
        for seed in (1, 2):
            torch.manual_seed(seed)
            tracking.log_torch_model("m", "tests.io.test_tracking:build_linear", {"n_in": 2},
                                     torch.nn.Linear(2, 1).state_dict(), registered_name="gaialake-x")
    rows = list_models(conf)
    assert [(r["version"], r["aliases"]) for r in rows] == [(1, ""), (2, "champion")]
    promote(conf, "gaialake-x", "1")
    assert [r["aliases"] for r in list_models(conf)] == ["champion", ""]
    assert str(tracking.load_torch_model(conf, "gaialake-x").gaialake_version) == "1"

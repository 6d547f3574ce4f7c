"""MLflow: runs, torch models as pyfunc wrappers, the registry.

Executors never write to MLflow: they return weights and metrics as rows, and the driver logs
them here. A zuko flow cannot be traced by MLflow's pytorch flavor (its forward returns a
distribution), so models are logged as :class:`TorchStateModel`, an ``mlflow.pyfunc`` wrapper
around a ``state_dict`` and a JSON config; ``config["builder"]`` is the dotted
``"module:function"`` that rebuilds the torch module from the config.

Example::

    with job_run(conf, "anomaly") as run:
        version = log_torch_model("flow", "gaialake.models.flows:build_flow", cfg, sd,
                                  registered_name="gaialake-anode")
    module = load_torch_model(conf, "gaialake-anode")          # alias "champion"
"""
from __future__ import annotations

import importlib
import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

__all__ = ["tracking_uri", "configure", "job_run", "child_run", "end_dead_runs", "JobTerminated",
           "log_metrics", "log_curves", "log_figures", "log_params", "set_tags", "log_text",
           "log_dict", "log_torch_model", "list_models", "promote",
           "load_torch_state", "load_torch_model", "build_module", "TorchStateModel",
           "flatten", "state_to_bytes", "state_from_bytes"]

ALIAS = "champion"


def tracking_uri(conf) -> str:
    """The MLflow store: ``mlflow.tracking_uri`` when set, else a SQLite file under
    ``paths.mlflow``."""
    uri = conf.get("mlflow.tracking_uri", None)
    if uri:
        return str(uri)
    root = Path(conf.path("paths.mlflow"))
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def configure(conf) -> str:
    """Point MLflow at the conf's tracking/registry store and experiment; returns the URI."""
    import mlflow

    uri = tracking_uri(conf)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = str(conf.get("mlflow.experiment"))
    if uri.startswith("sqlite:") and mlflow.get_experiment_by_name(name) is None:
        artifacts = Path(conf.path("paths.mlflow")) / "artifacts"
        mlflow.create_experiment(name, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(name)
    return uri


def flatten(d: Mapping, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as one level with dotted keys (``{"a": {"b": 1}}`` -> ``{"a.b": 1}``)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class JobTerminated(BaseException):
    """SIGTERM while a job run is open: its MLflow runs end KILLED (a BaseException, like
    KeyboardInterrupt, so that ``except Exception`` blocks do not swallow it)."""


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` (clock ticks since boot, from /proc; "" without
    /proc): with the pid it tells a live process from a later one given the same pid."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _process_tags() -> dict[str, str]:
    """Tags naming this process: host, pid and its start time."""
    import socket

    pid = os.getpid()
    return {"gaialake.host": socket.gethostname(), "gaialake.pid": str(pid),
            "gaialake.pid_start": _process_start(pid)}


def _process_alive(pid: int, start: str) -> bool:
    """Whether process ``pid`` of this host runs and (when known) started at ``start``."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or not _process_start(pid) or _process_start(pid) == start


def end_dead_runs(experiment_id: str) -> list[str]:
    """Mark KILLED the runs of ``experiment_id`` still RUNNING whose process (tagged by
    :func:`job_run` and :func:`child_run`) on this host is gone (``kill -9``, a lost
    machine's restart); returns their run ids. Runs of other hosts are left as they are."""
    import socket

    from mlflow import MlflowClient

    client = MlflowClient()
    host = socket.gethostname().replace("'", "")
    runs = client.search_runs([experiment_id],
                              filter_string=f"attributes.status = 'RUNNING' and "
                                            f"tags.`gaialake.host` = '{host}'",
                              max_results=1000)
    killed = []
    for r in runs:
        pid = r.data.tags.get("gaialake.pid", "")
        start = r.data.tags.get("gaialake.pid_start", "")
        if not pid.isdigit() or _process_alive(int(pid), start):
            continue
        client.set_tag(r.info.run_id, "gaialake.ended_by",
                       f"process {pid} gone; marked KILLED by process {os.getpid()}")
        client.set_terminated(r.info.run_id, status="KILLED")
        killed.append(r.info.run_id)
    return killed


def _end_runs(stop_at: str, status: str) -> None:
    """End the active runs down to and including ``stop_at`` (nested ones first)."""
    import mlflow
    from mlflow.tracking import fluent

    try:
        if stop_at not in [r.info.run_id for r in fluent._active_run_stack.get()]:
            return      # already ended (by whoever ended it): leave the outer runs alone
    except AttributeError:  # another MLflow layout: end down to stop_at as below
        pass
    while (active := mlflow.active_run()) is not None:
        run_id = active.info.run_id
        mlflow.end_run(status)
        if run_id == stop_at:
            return


@contextmanager
def job_run(conf, job: str, **tags: str) -> Iterator[Any]:
    """A parent MLflow run for one job; logs the resolved conf (params + conf.yaml).

    The run ends FINISHED, FAILED on an exception, KILLED on Ctrl-C or SIGTERM (SIGTERM is
    turned into :class:`JobTerminated` while the run is open, in the main thread). A job's runs
    are tagged with this host and process, and a new job run first marks KILLED the runs left
    RUNNING by a process that is gone (:func:`end_dead_runs`: e.g. a ``kill -9``).
    """
    import signal
    import threading

    import mlflow

    configure(conf)
    experiment = mlflow.get_experiment_by_name(str(conf.get("mlflow.experiment")))
    if experiment is not None:
        dead = end_dead_runs(experiment.experiment_id)
        if dead:
            from gaialake.log import get_logger

            get_logger("tracking").warning(
                "marked KILLED %d MLflow runs left RUNNING by a process that is gone: %s",
                len(dead), ", ".join(dead))
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None

    def terminate(signum, frame):
        raise JobTerminated(f"job {job}: SIGTERM")

    run = mlflow.start_run(run_name=job, tags={"gaialake.job": job, **_process_tags(), **tags})
    run_id = run.info.run_id
    if main:
        signal.signal(signal.SIGTERM, terminate)
    try:
        params = {k: str(v)[:500] for k, v in flatten(dict(conf)).items()}
        items = list(params.items())
        for i in range(0, len(items), 90):
            mlflow.log_params(dict(items[i:i + 90]))
        mlflow.log_text(conf.to_yaml(), "conf.yaml")
        yield run
    except BaseException as err:
        killed = isinstance(err, (KeyboardInterrupt, JobTerminated))
        _end_runs(run_id, "KILLED" if killed else "FAILED")
        raise
    else:
        _end_runs(run_id, "FINISHED")
    finally:
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


@contextmanager
def child_run(name: str, **tags: str) -> Iterator[Any]:
    """A nested run (e.g. one per patch) under the active job run; ends FAILED on an
    exception (KILLED on Ctrl-C or SIGTERM), tagged with this process like the job run."""
    import mlflow

    run = mlflow.start_run(run_name=name, nested=True, tags={**_process_tags(), **tags})
    try:
        yield run
    except BaseException as err:
        killed = isinstance(err, (KeyboardInterrupt, JobTerminated))
        _end_runs(run.info.run_id, "KILLED" if killed else "FAILED")
        raise
    else:
        _end_runs(run.info.run_id, "FINISHED")


def log_metrics(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """Log the finite numbers of ``metrics`` to the active run (nothing without one); keys
    have ``:`` replaced (MLflow refuses it), other values are passed over."""
    import math

    import mlflow

    if mlflow.active_run() is None:
        return
    clean = {k.replace(":", "_"): float(v) for k, v in metrics.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    if clean:
        mlflow.log_metrics(clean, step=step)


def log_curves(curves: Mapping[str, Sequence[float]]) -> None:
    """Log each curve of ``curves`` (key -> one value per step, e.g. a loss per epoch) to the
    active run in batches of 1000 values (one store transaction each, not one per step);
    non-finite values are left out, keys have ``:`` replaced (nothing without a run)."""
    import math
    import time

    import mlflow
    from mlflow.entities import Metric

    run = mlflow.active_run()
    if run is None:
        return
    now = int(time.time() * 1000)
    points = [Metric(k.replace(":", "_"), float(v), now, step)
              for k, values in curves.items() for step, v in enumerate(values)
              if isinstance(v, (int, float)) and math.isfinite(v)]
    client = mlflow.tracking.MlflowClient()
    for i in range(0, len(points), 1000):
        client.log_batch(run.info.run_id, metrics=points[i:i + 1000])


def log_params(params: Mapping[str, Any]) -> None:
    """Log ``params`` (values as strings, at most 500 characters) to the active run (nothing
    without one)."""
    import mlflow

    if mlflow.active_run() is not None and params:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set ``tags`` (values as strings, at most 250 characters) on the active run (nothing
    without one)."""
    import mlflow

    if mlflow.active_run() is not None and tags:
        mlflow.set_tags({k: str(v)[:250] for k, v in tags.items()})


def log_text(text: str, artifact_file: str) -> None:
    """Log ``text`` as the artifact ``artifact_file`` (a path in the run, e.g. ``a/b.csv``) of
    the active run (nothing without one); a dict is logged as JSON with :func:`log_dict`."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_text(text, artifact_file)


def log_dict(obj: Mapping[str, Any], artifact_file: str) -> None:
    """Log ``obj`` as the JSON (or YAML, by suffix) artifact ``artifact_file`` of the active
    run (nothing without one)."""
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.log_dict(dict(obj), artifact_file)


def log_figures(paths, folder: str | None = "figures") -> None:
    """Log files (figures, tables) as artifacts of the active run under ``folder``."""
    import mlflow

    if mlflow.active_run() is None:
        return
    for path in paths:
        mlflow.log_artifact(str(path), folder)


def state_to_bytes(state_dict: Mapping[str, Any]) -> bytes:
    """A torch state_dict as bytes (what executors return in rows)."""
    import torch

    buf = io.BytesIO()
    torch.save(dict(state_dict), buf)
    return buf.getvalue()


def state_from_bytes(data: bytes) -> dict[str, Any]:
    """A torch state_dict from :func:`state_to_bytes`'s bytes (tensors on CPU)."""
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def build_module(config: Mapping[str, Any]):
    """Rebuild a torch module from a config whose ``builder`` is ``"module:function"``."""
    module_name, func = str(config["builder"]).split(":")
    return getattr(importlib.import_module(module_name), func)(config)


class _PyFunc:
    """Lazily defined so importing this module does not import mlflow."""


def _pyfunc_class():
    import mlflow.pyfunc

    class TorchStateModel(mlflow.pyfunc.PythonModel):
        """pyfunc wrapper: artifacts ``state`` (torch state_dict) and ``config`` (JSON).

        ``predict`` calls ``config["predict"]`` (``"module:function"``, taking the module and a
        pandas DataFrame) when the model defines one.
        """

        def load_context(self, context) -> None:
            import torch

            self.config = json.loads(Path(context.artifacts["config"]).read_text())
            self.module = build_module(self.config)
            self.module.load_state_dict(torch.load(context.artifacts["state"], map_location="cpu",
                                                   weights_only=True))
            self.module.eval()

        def predict(self, context, model_input, params=None):
            if "predict" not in self.config:
                raise NotImplementedError(f"model {self.config.get('builder')} has no predict "
                                          "function in its config; load it with load_torch_model")
            module_name, func = self.config["predict"].split(":")
            return getattr(importlib.import_module(module_name), func)(self.module, model_input)

    return TorchStateModel


def __getattr__(name: str):
    if name == "TorchStateModel":
        return _pyfunc_class()
    raise AttributeError(name)


def log_torch_model(artifact_name: str, builder: str, config: Mapping[str, Any],
                    state_dict: Mapping[str, Any] | bytes, *, registered_name: str | None = None,
                    alias: str | None = ALIAS, metadata: Mapping[str, Any] | None = None):
    """Log a torch module as a pyfunc model in the active run; register it when asked.

    Returns the registered ``ModelVersion`` (alias set) or None when not registered.
    """
    import mlflow
    import torch
    from mlflow import MlflowClient

    cfg = {**dict(config), "builder": builder}
    state = state_from_bytes(state_dict) if isinstance(state_dict, bytes) else dict(state_dict)
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(state, os.path.join(tmp, "state.pt"))
        Path(tmp, "config.json").write_text(json.dumps(cfg, default=str))
        info = mlflow.pyfunc.log_model(
            name=artifact_name, python_model=_pyfunc_class()(),
            artifacts={"state": os.path.join(tmp, "state.pt"),
                       "config": os.path.join(tmp, "config.json")},
            pip_requirements=["torch", "zuko", "gaialake"], metadata=dict(metadata or {}))
    if registered_name is None:
        return None
    version = mlflow.register_model(info.model_uri, registered_name)
    if alias:
        MlflowClient().set_registered_model_alias(registered_name, alias, version.version)
    return version


def load_torch_state(conf, registered_name: str, alias: str = ALIAS):
    """(config, state_dict, version) of a registered model: what the driver ships to executors."""
    import mlflow
    import torch
    from mlflow import MlflowClient

    configure(conf)
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(registered_name, alias)
    except mlflow.exceptions.MlflowException as err:
        raise LookupError(f"no model {registered_name!r} with alias {alias!r} in "
                          f"{tracking_uri(conf)}: run the job that trains it first "
                          f"(`gaialake models list` shows what is registered)") from err
    path = mlflow.artifacts.download_artifacts(f"models:/{registered_name}/{version.version}")
    art = Path(path) / "artifacts"
    config = json.loads((art / "config.json").read_text())
    state = torch.load(art / "state.pt", map_location="cpu", weights_only=True)
    return config, state, version


def load_torch_model(conf, registered_name: str, alias: str = ALIAS):
    """The torch module registered under ``registered_name@alias`` (eval mode, on CPU).

    Its config is attached as ``module.gaialake_config``.
    """
    config, state, version = load_torch_state(conf, registered_name, alias)
    module = build_module(config)
    module.load_state_dict(state)
    module.eval()
    module.gaialake_config = config
    module.gaialake_version = version.version
    return module


def list_models(conf) -> list[dict]:
    """Every registered model version of the conf's registry: name, version, aliases (comma
    separated), run id, creation time (ms since the epoch); sorted by name and version."""
    from mlflow import MlflowClient

    configure(conf)
    client = MlflowClient()
    rows = []
    for model in client.search_registered_models():
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        for v in client.search_model_versions(f"name = '{model.name}'"):
            rows.append({"name": model.name, "version": int(v.version),
                         "aliases": ",".join(sorted(by_version.get(str(v.version), []))),
                         "run_id": v.run_id, "created": v.creation_timestamp})
    return sorted(rows, key=lambda r: (r["name"], r["version"]))


def promote(conf, name: str, version: str, alias: str = ALIAS) -> None:
    """Point ``alias`` (default ``champion``, what scoring jobs load) of the registered model
    ``name`` at ``version``; an unknown version fails with MLflow's message."""
    from mlflow import MlflowClient

    configure(conf)
    client = MlflowClient()
    client.get_model_version(name, str(version))
    client.set_registered_model_alias(name, alias, str(version))

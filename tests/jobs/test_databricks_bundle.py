"""The Databricks asset bundle (conf/databricks) against the pipeline that exists, and the cluster
and Databricks confs. No Spark, no workspace: the bundle's YAML is read and resolved here the way
the Databricks CLI resolves it (``${var.*}`` from databricks.yml, paths relative to their file).
"""
from __future__ import annotations

import importlib.util
import re
from importlib.metadata import entry_points

import pytest
import yaml

from gaialake.cli import PIPELINE
from gaialake.conf import REPO_ROOT, load_conf

BUNDLE = REPO_ROOT / "conf" / "databricks"
#: Stages that train models: they need the GPU job cluster (DESIGN §6).
TRAINING = {"anomaly", "null_sky", "accreted", "density", "upsample"}
VAR = re.compile(r"\$\{var\.(\w+)\}")
JOB_PARAM = re.compile(r"\{\{job\.parameters\.(\w+)\}\}")


@pytest.fixture(scope="module")
def bundle() -> dict:
    root = yaml.safe_load((BUNDLE / "databricks.yml").read_text())
    files = [f for pattern in root.get("include", []) for f in sorted(BUNDLE.glob(pattern))]
    assert files, "databricks.yml includes no resource files"
    root["_files"] = {}
    for f in files:
        res = yaml.safe_load(f.read_text())["resources"]
        for kind, items in res.items():
            for key, item in items.items():
                root.setdefault("resources", {}).setdefault(kind, {})[key] = item
                root["_files"][key] = f
    return root


@pytest.fixture(scope="module")
def job(bundle) -> dict:
    jobs = bundle["resources"]["jobs"]
    assert list(jobs) == ["gaialake"], list(jobs)
    return jobs["gaialake"]


def _resolve(value, variables: dict):
    """``${var.name}`` replaced by the variable's default, as the Databricks CLI does."""
    if isinstance(value, str):
        def sub(m):
            assert m.group(1) in variables, f"undefined bundle variable {m.group(1)!r}"
            return str(variables[m.group(1)]["default"])
        return VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, variables) for v in value]
    return value


def _stage(task: dict) -> str:
    return task["python_wheel_task"]["parameters"][0]


def _ancestors(tasks: dict[str, dict], key: str) -> set[str]:
    out: set[str] = set()
    todo = [d["task_key"] for d in tasks[key].get("depends_on", [])]
    while todo:
        k = todo.pop()
        if k not in out:
            out.add(k)
            todo += [d["task_key"] for d in tasks[k].get("depends_on", [])]
    return out


def test_every_task_is_an_existing_pipeline_stage_and_every_stage_has_a_task(job):
    stages = [_stage(t) for t in job["tasks"]]
    assert [t["task_key"] for t in job["tasks"]] == stages       # task named after its stage
    for stage in stages:
        assert stage in PIPELINE, stage
        assert importlib.util.find_spec(f"gaialake.jobs.{stage}") is not None, \
            f"task {stage}: no module gaialake.jobs.{stage} (jobs/{stage}.py)"
    built = [s for s in PIPELINE if importlib.util.find_spec(f"gaialake.jobs.{s}") is not None]
    assert sorted(stages) == sorted(built), "every built stage runs once in the job"


def test_tasks_run_the_wheels_gaialake_console_script(bundle, job):
    (script,) = [e for e in entry_points(group="console_scripts") if e.name == "gaialake"]
    assert script.value == "gaialake.cli:main"
    (artifact,) = bundle["artifacts"].values()
    assert artifact["type"] == "whl"
    assert (BUNDLE / artifact["path"]).resolve() == REPO_ROOT and (REPO_ROOT / "setup.py").exists()
    for task in job["tasks"]:
        wheel = task["python_wheel_task"]
        assert wheel["package_name"] == "gaialake" and wheel["entry_point"] == "gaialake"
        (lib,) = task["libraries"]
        whl = bundle["_files"]["gaialake"].parent / lib["whl"]
        assert whl.parent.resolve() == REPO_ROOT / "dist" and whl.name.endswith(".whl"), lib


def test_dependencies_follow_the_pipeline_order_and_the_data_flow(job):
    tasks = {t["task_key"]: t for t in job["tasks"]}
    for key, task in tasks.items():
        for dep in task.get("depends_on", []):
            assert PIPELINE.index(dep["task_key"]) < PIPELINE.index(key), (dep, key)
    # what each stage reads is written by an ancestor (DESIGN §1)
    assert _ancestors(tasks, "ingest") == {"generate"}
    assert _ancestors(tasks, "find_streams") == {"generate", "ingest", "patches", "anomaly",
                                                 "null_sky"}
    assert _ancestors(tasks, "null_sky") == set()     # its own synthetic sky, in its own paths
    assert {"ingest"} <= _ancestors(tasks, "accreted")
    assert _ancestors(tasks, "report") == set(tasks) - {"report"}


def test_training_tasks_run_on_the_gpu_cluster_and_the_rest_on_cpu(bundle, job):
    variables = bundle["variables"]
    clusters = {c["job_cluster_key"]: _resolve(c["new_cluster"], variables)
                for c in job["job_clusters"]}
    for task in job["tasks"]:
        cluster = clusters[task["job_cluster_key"]]
        gpu = "gpu" in cluster["spark_version"]
        assert gpu == (_stage(task) in TRAINING), (_stage(task), cluster["spark_version"])
        if gpu:
            assert float(cluster["spark_conf"]["spark.task.resource.gpu.amount"]) == 1.0
        # Petastorm needs classic PySpark (df._jdf): no shared/Spark Connect access mode
        assert cluster["data_security_mode"] == "SINGLE_USER"
        assert int(cluster["num_workers"]) >= 1


def test_task_parameters_give_the_cli_a_conf_with_the_jobs_table_locations(bundle, job):
    params = {p["name"]: _resolve(p["default"], bundle["variables"]) for p in job["parameters"]}
    assert {"raw", "warehouse", "catalog", "schema"} <= set(params)
    run_values = {"raw": "/Volumes/cat/sch/raw", "warehouse": "s3://bucket/gaialake",
                  "catalog": "cat", "schema": "sch"}
    for task in job["tasks"]:
        args = task["python_wheel_task"]["parameters"][1:]
        assert len(args) % 2 == 0 and set(args[::2]) <= {"--conf", "--set"}, args
        used = {m for a in args for m in JOB_PARAM.findall(a)}
        assert used <= set(params), used - set(params)
        values = [JOB_PARAM.sub(lambda m: run_values[m.group(1)], a) for a in args]
        # conf/ is the bundle's sync root: ${workspace.file_path}/x is conf/x of the repository
        conf_file = next(v for f, v in zip(values[::2], values[1::2]) if f == "--conf")
        assert conf_file.startswith("${workspace.file_path}/")
        local = REPO_ROOT / "conf" / conf_file.split("/", 1)[1]
        sets = [v for f, v in zip(values[::2], values[1::2]) if f == "--set"]
        conf = load_conf(local, sets)
        assert conf.get("spark.mode") == "databricks"
        assert conf.path("paths.raw") == run_values["raw"]
        assert conf.path("paths.warehouse") == run_values["warehouse"]
        assert conf.get("catalog.database") == "cat.sch"
    assert [p for p in bundle["sync"]["paths"]] == [".."]


def test_cluster_and_databricks_confs_hold_the_full_dr3_settings():
    cluster = load_conf(REPO_ROOT / "conf" / "cluster.yaml")
    assert cluster.get("spark.mode") == "cluster" and cluster.get("spark.master") is None
    assert cluster.get("catalog.partition_order") == 3
    assert cluster.get("streams.flow")["transforms"] == 15 and cluster.get("streams.flow")["hidden"] == 128
    assert cluster.get("streams.train")["max_epochs"] == 100
    dbx = load_conf(REPO_ROOT / "conf" / "databricks.yaml")
    assert dbx.get("spark.mode") == "databricks" and dbx.get("mlflow.tracking_uri") == "databricks"
    assert dbx.get("catalog.partition_order") == 3
    for key in ("paths.raw", "paths.warehouse"):
        assert dbx.path(key).startswith(("dbfs:/", "/Volumes/")), key

"""`gaialake upsample`: GalaxyFlow upsampling of star particles, judged by the 3-sample test.

Stages (conf section ``upsample``):

1. **particles**: a star-particle snapshot (``upsample.snapshot``: Parquet or HDF5, see
   :mod:`gaialake.upsample.particles`) or, when null, the default synthetic galaxy near the Sun; split
   (seeded) into ``train`` / ``val`` (the flow's early-stopping set; both are the *training
   particles*) and ``heldout``; written to Delta ``star_particles``.
2. **flow**: GalaxyFlow trained mass-weighted on the ``train`` rows, fed by the Petastorm loader
   (``gaialake.io.feeding.torch_loader``; ``upsample.feed: memory`` trains from an in-memory copy),
   on the GPU when there is one; logged to MLflow and registered ``gaialake-galaxyflow``
   (alias champion).
3. **sample**: ``multiple`` x (training particles) stars, drawn by ``mapInPandas`` over
   ``sample_partitions`` partitions, partition p seeded with ``conf.seed_for("upsample", p)``.
4. **baseline**: the EnBiD-like kernel upsampler (:mod:`gaialake.upsample.enbid`): kernels from the
   training particles in one task (k-NN needs them all), children spawned by partition.
5. **mock**: Delta ``upsampled_mock`` (x, y, z kpc, vx, vy, vz km/s, age Gyr, feh dex,
   particle_id, split, method, parent_id, run_id): ``method`` is ``galaxyflow`` or ``enbid``;
   ``split`` is the row's role in the 3-sample test (``fit``: trains the classifier, ``eval``:
   scored, ``mock``: the rest); ``parent_id``: the EnBiD child's particle.
6. **3-sample test** (:mod:`gaialake.upsample.three_sample`): AUC table to MLflow, Delta ``upsample_auc``
   and ``<upsample.report_dir>/auc.json`` + ``auc.md``.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.log import get_logger, stage

__all__ = ["run", "load_particles", "split_labels", "flow_sampler", "enbid_kernels_fn",
           "enbid_spawner", "MOCK_TABLE", "PARTICLE_TABLE", "AUC_TABLE", "REGISTERED_NAME"]

log = get_logger("upsample")

MOCK_TABLE, PARTICLE_TABLE, AUC_TABLE = "upsampled_mock", "star_particles", "upsample_auc"
REGISTERED_NAME = "gaialake-galaxyflow"
_ID_STRIDE = 1 << 32          # particle_id of a mock star: partition * 2^32 + row


def load_particles(conf: Conf):
    """The snapshot of ``upsample.snapshot``, or the default synthetic galaxy when null."""
    from gaialake.upsample.particles import make_galaxy, read_snapshot

    uc = conf.get("upsample")
    radius = uc.get("radius_kpc")
    if uc.get("snapshot"):
        return read_snapshot(conf.path("upsample.snapshot"), group=str(uc.get("hdf5_group", "/")),
                             radius_kpc=None if radius is None else float(radius))
    gal = uc["galaxy"]
    return make_galaxy(int(gal["n_particles"]), conf.seed_for("upsample", "galaxy") % 2**32,
                       radius_kpc=float(radius), n_clumps=int(gal["n_clumps"]),
                       with_chemistry=bool(gal["with_chemistry"]))


def split_labels(n: int, heldout_fraction: float, val_fraction: float, seed: int) -> np.ndarray:
    """``train`` / ``val`` / ``heldout`` per particle (seeded); val is a share of the training
    particles (the flow's early-stopping set)."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_ho = int(round(heldout_fraction * n))
    n_val = int(round(val_fraction * (n - n_ho)))
    labels = np.full(n, "train", dtype=object)
    labels[order[:n_ho]] = "heldout"
    labels[order[n_ho:n_ho + n_val]] = "val"
    return labels


def _roles(rng: np.random.Generator, n: int, f_fit: float, f_eval: float) -> np.ndarray:
    u = rng.uniform(size=n)
    return np.where(u < f_fit, "fit", np.where(u < f_fit + f_eval, "eval", "mock"))


def _mock_frame(columns: list[str], values: np.ndarray, ids: np.ndarray, roles: np.ndarray,
                method: str, parent: np.ndarray | None, run_id: str):
    import pandas as pd

    out = pd.DataFrame({c: values[:, i] for i, c in enumerate(columns)})
    for c in ("age", "feh"):
        if c not in out:
            out[c] = np.nan
    out["particle_id"] = ids.astype(np.int64)
    out["split"] = roles
    out["method"] = method
    out["parent_id"] = pd.array(parent, dtype="Int64") if parent is not None else \
        pd.array([None] * len(out), dtype="Int64")
    out["run_id"] = run_id
    return out


MOCK_SCHEMA = ("x double, y double, z double, vx double, vy double, vz double, age double, "
               "feh double, particle_id long, split string, method string, parent_id long, "
               "run_id string")


def flow_sampler(config: dict, state: bytes, seeds: dict[int, int], f_fit: float, f_eval: float,
                 run_id: str):
    """The mapInPandas function: rows (partition, n) in, that many flow stars out."""

    def fn(frames):
        from gaialake.models.galaxyflow import build_galaxyflow
        from gaialake.io.tracking import state_from_bytes

        device = _device()
        model = build_galaxyflow(config)
        model.load_state_dict(state_from_bytes(state))
        model.to(device).eval()
        for pdf in frames:
            for part, n in zip(pdf["partition"], pdf["n"]):
                seed = seeds[int(part)]
                stars = model.sample(int(n), seed=seed)
                roles = _roles(np.random.default_rng(seed + 1), len(stars), f_fit, f_eval)
                ids = int(part) * _ID_STRIDE + np.arange(len(stars))
                yield _mock_frame(model.columns, stars, ids, roles, "galaxyflow", None, run_id)
    return fn


def enbid_kernels_fn(columns: list[str], k: int, eta: float, kernel: str):
    """mapInPandas over one partition holding every training particle: adds the kernel."""

    def fn(frames):
        import pandas as pd

        from gaialake.upsample.enbid import kernel_cholesky

        pdf = pd.concat(list(frames), ignore_index=True)
        if len(pdf) == 0:
            return
        chol = kernel_cholesky(pdf[columns].to_numpy(np.float64), k=k, eta=eta, kernel=kernel)
        pdf["chol"] = list(chol.reshape(len(pdf), -1))
        yield pdf
    return fn


def enbid_spawner(columns: list[str], multiple: float, mean_mass: float, seeds: dict[int, int],
                  radius_kpc: float | None, f_fit: float, f_eval: float, run_id: str):
    """mapInPandas over particles with kernels: their children, seeded per partition."""

    def fn(frames):
        from pyspark import TaskContext

        from gaialake.upsample.enbid import spawn
        from gaialake.upsample.particles import SUN_POSITION_KPC

        part = TaskContext.get().partitionId()
        rng = np.random.default_rng(seeds[part])
        inside = None if radius_kpc is None else (
            lambda a: np.linalg.norm(a[:, :3] - SUN_POSITION_KPC, axis=1) < radius_kpc)
        offset = 0
        for pdf in frames:
            if len(pdf) == 0:
                continue
            feats = pdf[columns].to_numpy(np.float64)
            chol = np.stack(pdf["chol"].to_numpy()).reshape(len(pdf), 6, 6)
            expect = multiple * pdf["mass"].to_numpy() / mean_mass
            counts = (np.floor(expect) + (rng.uniform(size=len(pdf)) < expect % 1)).astype(int)
            kids, parent = spawn(feats, chol, counts, rng, inside=inside)
            roles = _roles(rng, len(kids), f_fit, f_eval)
            ids = part * _ID_STRIDE + offset + np.arange(len(kids))
            offset += len(kids)
            yield _mock_frame(columns, kids, ids, roles, "enbid",
                              pdf["particle_id"].to_numpy()[parent], run_id)
    return fn


def _device():
    try:
        from gaialake.io.feeding import task_device

        return task_device()
    except ImportError:  # pragma: no cover
        import torch

        return torch.device("cpu")


def _tracking():
    try:
        from gaialake.io import tracking
    except ImportError:  # pragma: no cover
        return None
    return tracking


def _train_flow(conf: Conf, spark, train_df, val_pdf, columns: list[str], config: dict):
    """Train GalaxyFlow on the train rows (Petastorm loader, or in memory); returns model, fit."""
    import torch

    from gaialake.models.galaxyflow import (FitSettings, build_galaxyflow, fit_galaxyflow,
                                            fit_on_batches)

    uc = conf.get("upsample")
    settings = FitSettings.from_dict(uc["flow"])
    seed = conf.seed_for("upsample", "flow") % 2**31
    device = _device()
    torch.manual_seed(seed)
    model = build_galaxyflow(config).to(device)
    say = log.info
    feed = str(uc.get("feed", "petastorm"))
    try:
        from gaialake.io.feeding import stack_batch, torch_loader
    except ImportError:  # pragma: no cover - feeding is part of the package
        feed = "memory"
    if feed == "memory":
        pdf = train_df.select(*columns, "mass").toPandas()
        return model, fit_galaxyflow(model, pdf[columns].to_numpy(), pdf["mass"].to_numpy(),
                                     settings, seed, device, say)
    if feed != "petastorm":
        raise ValueError(f"conf upsample.feed: {feed!r} is not petastorm or memory")
    mean_mass = float(train_df.agg({"mass": "avg"}).first()[0])
    n_train = train_df.count()
    steps = max(1, n_train // settings.batch_size)
    val = (model.standardise(val_pdf[columns].to_numpy()),
           torch.as_tensor(val_pdf["mass"].to_numpy() / mean_mass, dtype=torch.float32,
                           device=device))
    with torch_loader(train_df, columns + ["mass"], batch_size=settings.batch_size, conf=conf,
                      shuffle=True, seed=seed, num_epochs=None) as loader:
        stream = iter(loader)

        def batches(epoch: int):
            for _ in range(steps):
                batch = next(stream)
                x = stack_batch(batch, columns).to(device)
                w = (batch["mass"].float() / mean_mass).to(device)
                yield model.standardise(x), w

        fit = fit_on_batches(model, batches, val, settings, steps, seed, say)
    return model, fit


def run(conf: Conf) -> dict:
    import pandas as pd
    import torch
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType

    from gaialake.io.delta import read_table, write_table
    from gaialake.models.galaxyflow import BUILDER, galaxyflow_config
    from gaialake.io.spark import get_spark
    from gaialake.upsample.three_sample import three_sample_test

    uc = conf.get("upsample")
    torch.set_num_threads(int(uc.get("torch_threads", 1)))
    t0 = time.perf_counter()
    spark = get_spark(conf)
    tracking = _tracking()
    run_ctx = tracking.job_run(conf, "upsample") if tracking else nullcontext()
    with run_ctx as mlrun:
        run_id = mlrun.info.run_id if mlrun is not None else f"local-{int(time.time())}"
        with stage(log, "particles") as st:
            particles = load_particles(conf)
            columns = particles.columns
            table = particles.to_arrow().to_pandas()
            table["split"] = split_labels(len(particles), float(uc["heldout_fraction"]),
                                          float(uc["flow"]["val_fraction"]),
                                          conf.seed_for("upsample", "split"))
            table["run_id"] = run_id
            write_table(spark.createDataFrame(table), conf, PARTICLE_TABLE)
            st.count = len(table)
            st.extra = f"{particles.source}, columns {columns}"
        del table
        parts_df = read_table(spark, conf, PARTICLE_TABLE).where(F.col("run_id") == run_id)
        train_df = parts_df.where(F.col("split") == "train")
        training_df = parts_df.where(F.col("split").isin("train", "val"))
        radius = particles.radius_kpc
        del particles

        with stage(log, "train flow") as st:
            stats = _model_space_stats(train_df, columns)
            fc = uc["flow"]
            config = galaxyflow_config(None, columns, stats=stats, transforms=int(fc["transforms"]),
                                       hidden=int(fc["hidden"]), layers=int(fc["layers"]),
                                       bins=int(fc["bins"]), passes=fc.get("passes", 2),
                                       radius_kpc=radius)
            val_pdf = parts_df.where(F.col("split") == "val").select(*columns, "mass").toPandas()
            model, fit = _train_flow(conf, spark, train_df, val_pdf, columns, config)
            st.count = fit.samples
            st.extra = json.dumps(fit.metrics())

        n_training = training_df.count()
        n_mock = int(round(float(uc["multiple"]) * n_training))
        f_fit = min(0.5, float(uc["classifier_rows"]) / max(n_mock, 1))
        f_eval = min(0.5, float(uc["classifier_rows"]) / max(n_mock, 1))
        n_parts = int(uc["sample_partitions"])
        seeds = {p: conf.seed_for("upsample", p) % 2**62 for p in range(n_parts)}

        with stage(log, "sample flow") as st:
            from gaialake.io.tracking import state_to_bytes

            counts = np.full(n_parts, n_mock // n_parts)
            counts[: n_mock % n_parts] += 1
            tasks = spark.createDataFrame(pd.DataFrame({"partition": np.arange(n_parts),
                                                        "n": counts}))
            tasks = tasks.repartition(n_parts, "partition")
            flow_df = tasks.mapInPandas(
                flow_sampler(config, state_to_bytes(model.cpu().state_dict()), seeds, f_fit,
                             f_eval, run_id), MOCK_SCHEMA)
            write_table(flow_df, conf, MOCK_TABLE, replace_where="method = 'galaxyflow'")
            st.count = n_mock

        with stage(log, "baseline (EnBiD)") as st:
            ec = uc["enbid"]
            mean_mass = float(training_df.agg(F.avg("mass")).first()[0])
            kern_schema = training_df.select("particle_id", *columns, "mass").schema.add(
                "chol", ArrayType(DoubleType()))
            kernels = training_df.select("particle_id", *columns, "mass").coalesce(1).mapInPandas(
                enbid_kernels_fn(columns, int(ec["k"]), float(ec["eta"]), str(ec["kernel"])),
                kern_schema)
            eseeds = {p: conf.seed_for("upsample", "enbid", p) % 2**62 for p in range(n_parts)}
            enbid_df = kernels.repartition(n_parts, "particle_id").mapInPandas(
                enbid_spawner(columns, float(uc["multiple"]), mean_mass, eseeds, radius, f_fit,
                              f_eval, run_id), MOCK_SCHEMA)
            write_table(enbid_df, conf, MOCK_TABLE, replace_where="method = 'enbid'")
            st.count = n_mock

        mock = read_table(spark, conf, MOCK_TABLE).where(F.col("run_id") == run_id)
        with stage(log, "3-sample test") as st:
            rows = mock.where(F.col("split").isin("fit", "eval")) \
                .select(*columns, "split", "method").toPandas()
            held = parts_df.where(F.col("split") == "heldout").select(*columns, "mass").toPandas()
            pick = lambda m, s: rows[(rows.method == m) & (rows.split == s)][columns].to_numpy()
            result = three_sample_test(
                held[columns].to_numpy(), pick("galaxyflow", "eval"), pick("enbid", "eval"),
                conf.seed_for("upsample", "classifier") % 2**31,
                particle_weight=held["mass"].to_numpy(), classifier=str(uc["classifier"]),
                flow_fit=pick("galaxyflow", "fit"), baseline_fit=pick("enbid", "fit"))
            st.count = len(rows) + len(held)
            st.extra = json.dumps(result.metrics())
        log.info("3-sample test (GalaxyFlow vs EnBiD-like baseline):\n%s", result.markdown())

        auc_pdf = pd.DataFrame(result.rows)
        auc_pdf["classifier"] = result.classifier
        auc_pdf["run_id"] = run_id
        write_table(spark.createDataFrame(auc_pdf), conf, AUC_TABLE)
        report = Path(conf.report_path("upsample.report_dir"))
        report.mkdir(parents=True, exist_ok=True)
        (report / "auc.json").write_text(json.dumps({"run_id": run_id, "rows": result.rows},
                                                    indent=2))
        (report / "auc.md").write_text(result.markdown() + "\n")
        mock_counts = {f"{m}": int(c) for m, c in mock.groupBy("method").count().collect()}
        if mlrun is not None:
            import mlflow

            mlflow.log_metrics({**result.metrics(), **{f"flow_{k}": float(v) for k, v in
                                                      fit.metrics().items()},
                                "n_particles": float(len(val_pdf) + n_training),
                                "n_mock": float(n_mock)})
            mlflow.log_text(result.markdown(), "auc.md")
            mlflow.log_dict({"rows": result.rows}, "auc.json")
            version = tracking.log_torch_model(
                "galaxyflow", BUILDER, config, model.cpu().state_dict(),
                registered_name=REGISTERED_NAME,
                metadata={"columns": columns, "auc": result.metrics()})
            log.info("registered %s version %s (alias champion)", REGISTERED_NAME,
                     getattr(version, "version", None))
    return {"run_id": run_id, "particles": int(parts_df.count()), "mock_rows": mock_counts,
            **{k: round(v, 4) for k, v in result.metrics().items()},
            "seconds": round(time.perf_counter() - t0, 1)}


def _model_space_stats(df, columns: list[str]) -> tuple[list[float], list[float]]:
    """Mean and (population) std of each column in model space (log for LOG_COLUMNS), by Spark."""
    from pyspark.sql import functions as F

    from gaialake.models.galaxyflow import LOG_COLUMNS

    exprs = []
    for c in columns:
        col = F.log(F.col(c)) if c in LOG_COLUMNS else F.col(c)
        exprs += [F.avg(col).alias(f"m_{c}"), F.stddev_pop(col).alias(f"s_{c}")]
    row = df.agg(*exprs).first()
    return [float(row[f"m_{c}"]) for c in columns], [float(row[f"s_{c}"]) for c in columns]


if __name__ == "__main__":
    sys.exit(job_main("upsample"))

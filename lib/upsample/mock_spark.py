"""Spark adapters of the upsampled mock: the flow's standardising statistics, GalaxyFlow
training from a DataFrame, and the ``mapInPandas`` steps that draw the mock.

- :func:`model_space_stats`: mean and std of each column in the flow's model space.
- :func:`train_galaxyflow_df`: GalaxyFlow trained mass-weighted on a DataFrame's rows, fed by
  the Petastorm loader (``gaialake.io.feeding.torch_loader``) or from an in-memory copy, on the
  task's device (``gaialake.io.feeding.task_device``).
- :func:`flow_mock`: ``n_mock`` flow stars over partitions, partition p seeded with
  ``seeds[p]`` (:func:`flow_sampler` is its task function).
- :func:`enbid_mock`: the EnBiD-like baseline: kernels of every training particle in one task
  (the k-NN needs them all), children spawned by partition (:func:`enbid_kernels_fn`,
  :func:`enbid_spawner`).
- :func:`write_dr3`: the flow stars as DR3 bulk files and ``truth_origin.parquet``
  (:mod:`gaialake.upsample.dr3out`), written by the tasks: stars keyed by their file
  (:func:`file_index_fn`), one partition per group of files (:func:`dr3_writer`), the truth
  rows streamed into one Parquet file by one task (:func:`truth_writer`); :func:`dr3_stars`
  picks the flow stars (with their parent's ``component``); :func:`write_dr3_of_run` is the
  job's stage (settings and seeds from the conf).
- :func:`judge_frames`: the 3-sample test's inputs collected on the driver.

The rows follow :mod:`gaialake.upsample.mock`.
"""
from __future__ import annotations

from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from gaialake import tables
from gaialake.upsample import mock

__all__ = ["model_space_stats", "train_galaxyflow_df", "flow_sampler", "flow_mock",
           "enbid_kernels_fn", "enbid_spawner", "enbid_mock", "file_index_fn", "dr3_writer",
           "truth_writer", "write_dr3", "dr3_stars", "write_dr3_of_run", "judge_frames"]

FrameFn = Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]


def model_space_stats(df, columns: Sequence[str]) -> tuple[list[float], list[float]]:
    """Mean and (population) std of each column in model space (log for
    ``gaialake.models.galaxyflow.LOG_COLUMNS``), by Spark."""
    from pyspark.sql import functions as F

    from gaialake.models.galaxyflow import LOG_COLUMNS

    exprs = []
    for c in columns:
        col = F.log(F.col(c)) if c in LOG_COLUMNS else F.col(c)
        exprs += [F.avg(col).alias(f"m_{c}"), F.stddev_pop(col).alias(f"s_{c}")]
    row = df.agg(*exprs).first()
    return [float(row[f"m_{c}"]) for c in columns], [float(row[f"s_{c}"]) for c in columns]


#: ``upsample.feed`` values: ``auto`` is ``memory`` up to ``upsample.memory_max_rows``
#: training rows, else ``petastorm``.
FEEDS = ("auto", "memory", "petastorm")


def choose_feed(feed: str, n_rows: int, max_rows: int) -> str:
    """``memory`` or ``petastorm`` for ``n_rows`` training rows under ``upsample.feed``
    ``feed`` (``auto``: memory up to ``max_rows`` rows, ``upsample.memory_max_rows``)."""
    if feed not in FEEDS:
        raise ValueError(f"conf upsample.feed: {feed!r} is not one of {FEEDS}")
    if feed != "auto":
        return feed
    return "memory" if n_rows <= max_rows else "petastorm"


def train_galaxyflow_df(train_df, val_pdf: pd.DataFrame, config: dict, settings, *, seed: int,
                        conf, feed: str = "petastorm", logger=None, n_rows: int | None = None):
    """A GalaxyFlow of ``config`` trained on ``train_df``'s rows (``columns`` of the config,
    ``mass`` M_sun; ``n_rows`` of them when the caller has counted them); returns ``(model,
    TrainResult)``.

    ``feed="petastorm"``: batches stream from the Petastorm loader (shuffled with ``seed``) and
    ``val_pdf`` (the validation particles) is the early-stopping set; ``feed="memory"``: the
    rows are collected and :func:`gaialake.models.galaxyflow.fit_galaxyflow` trains on them with
    the same early-stopping set. ``settings``: :class:`gaialake.models.train.TrainSettings`.
    """
    import torch

    from gaialake.io.feeding import stack_batch, task_device, torch_loader
    from gaialake.models.galaxyflow import build_galaxyflow, fit_galaxyflow, train_galaxyflow

    columns = list(config["columns"])
    device = task_device()
    torch.manual_seed(seed)
    model = build_galaxyflow(config).to(device)
    if feed == "memory":
        pdf = train_df.select(*columns, "mass").toPandas()
        return model, fit_galaxyflow(model, pdf[columns].to_numpy(), pdf["mass"].to_numpy(),
                                     settings, seed, device, logger,
                                     val=(val_pdf[columns].to_numpy(),
                                          val_pdf["mass"].to_numpy()))
    if feed != "petastorm":
        raise ValueError(f"conf upsample.feed: {feed!r} is not petastorm or memory")
    from pyspark.sql import functions as F

    row = train_df.agg(F.avg("mass").alias("mean"), F.count(F.lit(1)).alias("n")).first()
    mean_mass = float(row["mean"])
    steps = max(1, (int(row["n"]) if n_rows is None else int(n_rows)) // settings.batch_size)
    val = (model.standardise(val_pdf[columns].to_numpy()),
           torch.as_tensor(val_pdf["mass"].to_numpy() / mean_mass, dtype=torch.float32,
                           device=device))
    with torch_loader(train_df, columns + ["mass"], batch_size=settings.batch_size, conf=conf,
                      shuffle=True, seed=seed, num_epochs=None) as loader:
        stream = iter(loader)

        def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for _ in range(steps):
                batch = next(stream)
                x = stack_batch(batch, columns).to(device)
                w = (batch["mass"].float() / mean_mass).to(device)
                yield model.standardise(x), w

        fit = train_galaxyflow(model, batches, val, settings, steps, seed, device, logger)
    return model, fit


def flow_sampler(config: dict, state: bytes, seeds: Mapping[int, int], f_fit: float,
                 f_eval: float, run_id: str, parents: mock.ParentIndex | None = None) -> FrameFn:
    """The mapInPandas function: rows (partition, n) in, that many flow stars out (mock rows,
    partition p seeded with ``seeds[p]``, parents from ``parents`` when given); ``state``: the
    flow's state_dict as bytes."""

    def fn(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from gaialake.io.feeding import task_device
        from gaialake.io.tracking import state_from_bytes
        from gaialake.models.galaxyflow import build_galaxyflow

        model = build_galaxyflow(config)
        model.load_state_dict(state_from_bytes(state))
        model.to(task_device()).eval()
        for pdf in frames:
            for part, n in zip(pdf["partition"], pdf["n"]):
                yield mock.flow_stars(model, int(part), int(n), seeds[int(part)], f_fit, f_eval,
                                      run_id, parents)
    return fn


def flow_mock(spark, model, n_mock: int, seeds: Mapping[int, int], f_fit: float, f_eval: float,
              run_id: str, parents: mock.ParentIndex | None = None):
    """A DataFrame of ``n_mock`` stars of the GalaxyFlow ``model`` (mock rows), drawn by
    ``len(seeds)`` partitions; with ``parents`` (the training particles, shipped to every
    task), each star's parent_id and origin are its nearest particle's."""
    from gaialake.io.tracking import state_to_bytes

    n_parts = len(seeds)
    tasks = spark.createDataFrame(pd.DataFrame({"partition": np.arange(n_parts),
                                                "n": mock.partition_counts(n_mock, n_parts)}))
    return tasks.repartitionByRange(n_parts, "partition").mapInPandas(
        flow_sampler(model.config, state_to_bytes(model.cpu().state_dict()), seeds, f_fit,
                     f_eval, run_id, parents), tables.UPSAMPLED_MOCK.schema)


def enbid_kernels_fn(columns: Sequence[str], k: int, eta: float, kernel: str) -> FrameFn:
    """mapInPandas over one partition holding every training particle: adds the kernel's
    Cholesky factor (kpc, km/s) as ``chol`` (36 values)."""

    def fn(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from gaialake.upsample.enbid import kernel_cholesky

        pdf = pd.concat(list(frames), ignore_index=True)
        if len(pdf) == 0:
            return
        chol = kernel_cholesky(pdf[list(columns)].to_numpy(np.float64), k=k, eta=eta,
                               kernel=kernel)
        pdf["chol"] = list(chol.reshape(len(pdf), -1))
        yield pdf
    return fn


def enbid_spawner(columns: Sequence[str], multiple: float, mean_mass: float,
                  seeds: Mapping[int, int], radius_kpc: float | None, f_fit: float,
                  f_eval: float, run_id: str) -> FrameFn:
    """mapInPandas over particles with kernels: their children (mock rows), seeded with
    ``seeds[partition]``."""

    def fn(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        rng = np.random.default_rng(seeds[part])
        first_id = part * mock.ID_STRIDE
        for pdf in frames:
            if len(pdf) == 0:
                continue
            out = mock.enbid_children(pdf, columns, multiple, mean_mass, rng, radius_kpc,
                                      first_id, f_fit, f_eval, run_id)
            first_id += len(out)
            yield out
    return fn


def enbid_mock(training_df, columns: Sequence[str], enbid_conf: Mapping, multiple: float,
               seeds: Mapping[int, int], radius_kpc: float | None, f_fit: float, f_eval: float,
               run_id: str):
    """A DataFrame of the EnBiD children (mock rows) of ``training_df``'s particles;
    ``enbid_conf``: k, eta, kernel (``upsample.enbid``); children spawned by ``len(seeds)``
    partitions."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, DoubleType, StructField, StructType

    mean_mass = float(training_df.agg(F.avg("mass")).first()[0])
    labels = ["origin"] if "origin" in training_df.columns else []
    particles = training_df.select("particle_id", *columns, "mass", *labels)
    kernels = particles.coalesce(1).mapInPandas(
        enbid_kernels_fn(columns, int(enbid_conf["k"]), float(enbid_conf["eta"]),
                         str(enbid_conf["kernel"])),
        StructType(particles.schema.fields + [StructField("chol", ArrayType(DoubleType()))]))
    return kernels.repartition(len(seeds), "particle_id").mapInPandas(
        enbid_spawner(columns, multiple, mean_mass, seeds, radius_kpc, f_fit, f_eval, run_id),
        tables.UPSAMPLED_MOCK.schema)


def file_index_fn(n_files: int) -> FrameFn:
    """mapInPandas: mock rows in, the same rows with ``file_index`` (their bulk file) out."""

    def fn(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from gaialake.sky.kinematics import transforms
        from gaialake.upsample.dr3out import file_index_of

        tf = transforms()
        for pdf in frames:
            pdf["file_index"] = file_index_of(pdf[["x", "y", "z"]].to_numpy().T,
                                              pdf[["vx", "vy", "vz"]].to_numpy().T, tf, n_files)
            yield pdf
    return fn


def dr3_writer(out_dir: str, settings, seeds: Mapping[int, int]) -> FrameFn:
    """mapInPandas over stars partitioned by ``file_index``: writes each file of the partition
    (:func:`gaialake.upsample.dr3out.observe_file`, seeded ``seeds[file_index]``) and yields
    its truth rows (:data:`gaialake.upsample.dr3out.TRUTH_ROWS_DDL`)."""

    def fn(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from gaialake.io.bulkfile import write_bulk_file
        from gaialake.io.dr3schema import DR3_COLUMNS
        from gaialake.sky.kinematics import transforms
        from gaialake.sky.mockobs import file_name
        from gaialake.upsample.dr3out import observe_file

        frames = [f for f in frames if len(f)]
        if not frames:     # a partition that no file index hashed to
            return
        pdf = pd.concat(frames, ignore_index=True)
        tf = transforms()
        for index, stars in pdf.groupby("file_index", sort=True):
            table, truth = observe_file(stars, seeds[int(index)], settings, tf)
            if table.num_rows == 0:
                continue
            write_bulk_file(f"{out_dir.rstrip('/')}/{file_name(int(index), settings.n_files)}",
                            table, DR3_COLUMNS)
            truth["file_index"] = int(index)
            yield truth
    return fn


def truth_writer(path: str) -> FrameFn:
    """mapInPandas over all truth rows in one partition: streams them into the Parquet file
    ``path`` (written to ``<path>.tmp``, then renamed) and yields (file_index, n) counts."""

    def fn(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import os

        import pyarrow as pa
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        fs, target = pafs.FileSystem.from_uri(path if "://" in path else os.path.abspath(path))
        schema = pa.schema([("source_id", pa.int64()), ("origin", pa.string()),
                            ("component", pa.string()), ("parent_id", pa.int64())])
        counts: dict[int, int] = {}
        with pq.ParquetWriter(f"{target}.tmp", schema, filesystem=fs) as writer:
            for pdf in frames:
                for index, n in pdf["file_index"].value_counts().items():
                    counts[int(index)] = counts.get(int(index), 0) + int(n)
                writer.write_table(pa.Table.from_pandas(pdf[schema.names], schema=schema,
                                                        preserve_index=False))
        fs.move(f"{target}.tmp", target)
        yield pd.DataFrame({"file_index": list(counts), "n": list(counts.values())},
                           dtype="int64")
    return fn


def write_dr3(stars_df, out_dir: str, settings, seeds: Mapping[int, int]) -> dict[int, int]:
    """Write the mock stars of ``stars_df`` (upsampled_mock rows, optional ``component``) as
    DR3 bulk files and ``truth_origin.parquet`` in ``out_dir``, all by the tasks (one Spark
    action; only per-file counts reach the driver). ``settings``:
    :class:`gaialake.upsample.dr3out.Dr3OutSettings`; ``seeds``: per file index. Earlier
    bulk files of this writer are replaced (the generator's manifest,
    :func:`gaialake.sky.skyfiles.prepare_raw`, which refuses a folder holding bulk files it
    did not write). Returns the stars written per file index."""
    from pyspark.sql.types import StructField, StructType, IntegerType

    from gaialake.sky.skyfiles import prepare_raw
    from gaialake.sky.mockobs import file_name
    from gaialake.upsample.dr3out import TRUTH_FILE, TRUTH_ROWS_DDL

    prepare_raw(out_dir, [file_name(i, settings.n_files) for i in range(settings.n_files)])
    keyed = stars_df.mapInPandas(
        file_index_fn(settings.n_files),
        StructType(stars_df.schema.fields + [StructField("file_index", IntegerType())]))
    truth = keyed.repartitionByRange(settings.n_files, "file_index").mapInPandas(
        dr3_writer(out_dir, settings, seeds), TRUTH_ROWS_DDL)
    counts = truth.repartition(1).mapInPandas(
        truth_writer(f"{out_dir.rstrip('/')}/{TRUTH_FILE}"), "file_index long, n long").collect()
    return {int(r["file_index"]): int(r["n"]) for r in counts}


def dr3_stars(mock_df, particles_df):
    """The flow stars of ``mock_df`` (``upsampled_mock`` rows of one run) for :func:`write_dr3`,
    with their parent particle's ``component`` when ``particles_df`` (``star_particles`` rows
    of the run) has one."""
    from pyspark.sql import functions as F

    stars = mock_df.where(F.col("method") == "galaxyflow")
    if "component" in particles_df.columns:
        stars = stars.join(particles_df.select(F.col("particle_id").alias("parent_id"),
                                               "component"), "parent_id", "left")
    return stars


def write_dr3_of_run(conf, mock_df, particles_df) -> dict[int, int]:
    """The job's DR3 stage: :func:`dr3_stars` of one run's ``upsampled_mock`` and
    ``star_particles`` rows written by :func:`write_dr3` into ``upsample.dr3_out``, settings
    :meth:`gaialake.upsample.dr3out.Dr3OutSettings.from_conf`, file k seeded
    ``conf.seed_for("upsample", "dr3", k)``. Returns the stars written per file index."""
    from gaialake.log import get_logger
    from gaialake.upsample.dr3out import Dr3OutSettings

    if "origin" not in particles_df.columns:
        get_logger("upsample").warning("upsample.dr3_out without upsample.labels: "
                                       "truth_origin.parquet has null origins")
    settings = Dr3OutSettings.from_conf(conf)
    seeds = {i: conf.seed_for("upsample", "dr3", i) for i in range(settings.n_files)}
    return write_dr3(dr3_stars(mock_df, particles_df), conf.path("upsample.dr3_out"), settings,
                     seeds)


def judge_frames(mock_df, heldout_df, columns: Sequence[str]
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 3-sample test's inputs on the driver: the mock's ``fit`` and ``eval`` rows
    (``columns``, ``split``, ``method``) and the held-out particles (``columns``, ``mass``)."""
    from pyspark.sql import functions as F

    rows = mock_df.where(F.col("split").isin("fit", "eval")) \
        .select(*columns, "split", "method").toPandas()
    return rows, heldout_df.select(*columns, "mass").toPandas()

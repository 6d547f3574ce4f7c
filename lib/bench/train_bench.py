"""Training-feed and scoring benchmarks of the stream search (``gaialake bench``).

:func:`run_train_bench`: the same conditional MAF (:func:`gaialake.models.flows.build_flow`,
``bench_train.flow``, default ``streams.flow``) trained with the same optimiser step (a) by a
bare torch/zuko loop over in-memory tensors and (b) fed by Spark + Petastorm
(:func:`gaialake.io.feeding.torch_loader`) over the same rows in a Delta table. The epochs of
the two alternate (a, b, a, b, ...) after one untimed warm-up epoch each, so both see the same
machine load; the overhead ratio is (a) samples/s over (b) samples/s (the budget: <= 1.15).
CPU seconds of this process (torch, and Petastorm's reader threads) are reported beside wall
seconds: on a shared machine wall time is inflated, CPU time much less.

:func:`run_score_bench`: stars/s per core of the registered-model scoring path
(:func:`gaialake.streams.scorer.score_stars`) for ANODE and CATHODE, in one process with one
torch thread, and through Spark (``mapInPandas``,
:func:`gaialake.streams.search_spark.score_frame`); plus the training seconds per epoch of
one group and the minutes per patch they imply.

Both run on a GPU machine as they are: the device is :func:`gaialake.io.feeding.task_device`
(``cuda`` when ``torch.cuda.is_available()`` on the driver). Both return flat dicts of numbers
(and a few strings); nothing here asserts on time.

>>> run_train_bench(load_conf(), 200_000)["overhead_ratio"]       # doctest: +SKIP
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import torch

from gaialake.conf import Conf
from gaialake.log import get_logger

__all__ = ["run_train_bench", "run_score_bench", "bench_features", "bench_patch_stars",
           "bench_device"]

log = get_logger("bench_train")

FEATURES = ["x0", "x1", "x2", "x3", "x4"]
TABLE = "_bench_train"


def bench_device() -> torch.device:
    """The device a bench runs on: the task's (driver: cuda when available, else CPU)."""
    from gaialake.io.feeding import task_device

    return task_device()


def bench_features(n_rows: int, seed: int) -> pd.DataFrame:
    """n rows of 5 standardised features x0..x4 correlated with one context c (float32):
    the shape of the stream search's mapped features, with structure for a flow to learn."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=n_rows)
    a = np.array([0.8, -0.5, 0.3, 0.0, 0.6])
    x = c[:, None] * a + rng.normal(size=(n_rows, 5)) * np.array([0.6, 0.8, 1.0, 1.0, 0.5])
    x[:, 3] = np.tanh(x[:, 3]) * 2 + 0.3 * x[:, 4] ** 2
    out = pd.DataFrame(x.astype(np.float32), columns=FEATURES)
    out["c"] = c.astype(np.float32)
    return out


def bench_patch_stars(n_rows: int, seed: int, patch_id: int = 0, radius_deg: float = 15.0,
                      fiducial_deg: float = 10.0, g_max: float = 20.2,
                      bp_rp_window: tuple[float, float] = (0.5, 1.0),
                      pm_phi_range: tuple[float, float] = (-15.0, 15.0)) -> pd.DataFrame:
    """A smooth patch of ``patch_stars`` rows (phi, lam deg; pm mas/yr; g, bp_rp mag) with
    pm_phi inside ``pm_phi_range`` (the scored axis)."""
    rng = np.random.default_rng(seed)
    r = radius_deg * np.sqrt(rng.uniform(0, 1, n_rows))
    t = rng.uniform(0, 2 * np.pi, n_rows)
    k, g_lo = 0.7, 14.0
    u = rng.uniform(0, 1, n_rows)
    g = g_max + np.log(np.exp(-k * (g_max - g_lo)) + u * (1 - np.exp(-k * (g_max - g_lo)))) / k
    sig = 2.5 + 0.8 * (g_max - g)
    lo, hi = pm_phi_range
    pm_phi = np.clip(rng.normal(-2.0, sig), lo, np.nextafter(hi, lo))
    return pd.DataFrame({
        "patch_id": np.int64(patch_id), "source_id": np.arange(n_rows, dtype=np.int64) * 3 + 1,
        "phi": r * np.cos(t), "lam": r * np.sin(t), "pm_phi": pm_phi,
        "pm_lam": rng.normal(-0.5, sig), "g": g,
        "bp_rp": rng.uniform(bp_rp_window[0] + 1e-3, bp_rp_window[1] - 1e-3, n_rows),
        "fiducial": r < fiducial_deg})


def _settings(conf: Conf) -> dict:
    b = conf.get("bench_train", {}) or {}
    return {"epochs": int(b.get("epochs", 2)), "batch_size": int(b.get("batch_size", 512)),
            "threads": int(b.get("threads", 1)), "flow": b.get("flow")}


def _memory_batches(x: torch.Tensor, c: torch.Tensor, batch: int,
                    gen: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    order = torch.randperm(len(x), generator=gen).to(x.device)
    for i in range(0, len(order), batch):
        idx = order[i:i + batch]
        yield x[idx], c[idx]


def _epoch(flow, opt, batches: Iterable, device: torch.device) -> tuple[int, float, float]:
    """One epoch of optimiser steps: (samples, wall s, CPU s of this process)."""
    w0, c0, n = time.perf_counter(), time.process_time(), 0
    flow.train()
    for xb, cb in batches:
        xb, cb = xb.to(device, non_blocking=True), cb.to(device, non_blocking=True)
        loss = -flow(cb).log_prob(xb).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(xb)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return n, time.perf_counter() - w0, time.process_time() - c0


@contextmanager
def _batched_loader(df, columns: list[str], *, batch_size: int, conf: Conf, seed: int):
    """Candidate fix for :func:`gaialake.io.feeding.torch_loader`: the same Petastorm converter
    and reader, with ``petastorm.pytorch.BatchedDataLoader`` (columnar, torch shuffling buffer)
    in place of the default row-by-row ``DataLoader``. Infinite epochs."""
    from petastorm.pytorch import BatchedDataLoader
    from petastorm.spark import SparkDatasetConverter, make_spark_converter
    from pyspark.sql import functions as F

    from gaialake.io.feeding import _cache_url

    spark = df.sparkSession
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, _cache_url(conf))
    converter = make_spark_converter(df.select(*[F.col(c).cast("float") for c in columns]))
    try:
        with converter.make_torch_dataloader(
                batch_size=batch_size, num_epochs=None, workers_count=1,
                shuffling_queue_capacity=4 * batch_size, seed=seed, shuffle_rows=True,
                data_loader_fn=BatchedDataLoader) as loader:
            yield loader
    finally:
        converter.delete()


def _flow_and_opt(conf: Conf, seed: int, device: torch.device):
    from gaialake.models.flows import build_flow
    from gaialake.models.train import TrainSettings

    flow = _settings(conf)["flow"] or conf.get("streams.flow")
    cfg = {**dict(flow), "features": len(FEATURES), "context": 1}
    tc = TrainSettings.from_dict(dict(conf.get("streams.train")))
    flow = build_flow(cfg, seed=seed).to(device)
    return flow, torch.optim.AdamW(flow.parameters(), lr=tc.lr, weight_decay=tc.weight_decay), cfg


def run_train_bench(conf: Conf, n_rows: int) -> dict:
    """Samples/s of the conditional MAF fed (a) from memory and (b) by Spark + Petastorm.

    Returns ``memory_samples_s``, ``petastorm_samples_s``, ``overhead_ratio`` (a / b, wall),
    ``overhead_ratio_cpu`` (CPU s per sample, b / a), ``loader_only_samples_s`` (Petastorm
    batches/s without training, i.e. what the feed can deliver), ``petastorm_setup_s`` (Delta ->
    Petastorm's Parquet caches of both loaders, once per DataFrame), the ``batched_*`` figures
    of the same feed with ``petastorm.pytorch.BatchedDataLoader`` (a candidate fix for the
    default row-by-row loader of ``torch_loader``), and the settings.
    """
    from gaialake.io.delta import read_table, write_table
    from gaialake.io.feeding import stack_batch, torch_loader
    from gaialake.io.spark import get_spark

    s = _settings(conf)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(s["threads"])
    device = bench_device()
    seed = conf.seed_for("bench_train", "train", n_rows)
    try:
        rows = bench_features(n_rows, seed % 2**32)
        spark = get_spark(conf)
        t0 = time.perf_counter()
        write_table(spark.createDataFrame(rows), conf, TABLE, mode="overwrite")
        write_s = time.perf_counter() - t0
        df = read_table(spark, conf, TABLE)
        bs = s["batch_size"]
        steps = math.ceil(n_rows / bs)
        x = torch.as_tensor(rows[FEATURES].to_numpy(), device=device)
        c = torch.as_tensor(rows[["c"]].to_numpy(), device=device)
        gen = torch.Generator().manual_seed(seed % 2**63)
        flow_a, opt_a, cfg = _flow_and_opt(conf, seed, device)
        flow_b, opt_b, _ = _flow_and_opt(conf, seed, device)
        flow_c, opt_c, _ = _flow_and_opt(conf, seed, device)
        t0 = time.perf_counter()
        with torch_loader(df, FEATURES + ["c"], batch_size=bs, conf=conf, shuffle=True,
                          seed=seed % 2**32, num_epochs=None) as loader, \
                _batched_loader(df.select(*FEATURES, "c").where("c > -1e30"), FEATURES + ["c"],
                                batch_size=bs, conf=conf, seed=seed % 2**32) as batched:
            streams = {"b": iter(loader), "c": iter(batched)}
            firsts = {k: next(v) for k, v in streams.items()}
            setup_s = time.perf_counter() - t0

            def petastorm_batches(which: str, warm: bool):
                pending = [firsts[which]] if warm else []
                for _ in range(steps):
                    batch = pending.pop() if pending else next(streams[which])
                    yield stack_batch(batch, FEATURES), stack_batch(batch, ["c"])

            # warm-up (untimed): torch kernels, Petastorm's reader pools
            _epoch(flow_a, opt_a, _memory_batches(x, c, bs, gen), device)
            _epoch(flow_b, opt_b, petastorm_batches("b", True), device)
            _epoch(flow_c, opt_c, petastorm_batches("c", True), device)
            a, b, bb = np.zeros(3), np.zeros(3), np.zeros(3)
            for _ in range(s["epochs"]):
                a += _epoch(flow_a, opt_a, _memory_batches(x, c, bs, gen), device)
                b += _epoch(flow_b, opt_b, petastorm_batches("b", False), device)
                bb += _epoch(flow_c, opt_c, petastorm_batches("c", False), device)
            only = {}
            for which in ("b", "c"):
                w0, c0, n_only = time.perf_counter(), time.process_time(), 0
                for _ in range(steps):
                    n_only += len(next(streams[which])["c"])
                only[which] = (n_only, time.perf_counter() - w0, time.process_time() - c0)
        with torch.no_grad():
            nll_a = float(-flow_a(c[:20000]).log_prob(x[:20000]).mean())
            nll_b = float(-flow_b(c[:20000]).log_prob(x[:20000]).mean())
    finally:
        torch.set_num_threads(threads_before)
    out = {
        "n_rows": n_rows, "batch_size": bs, "epochs_timed": s["epochs"],
        "torch_threads": s["threads"], "device": str(device),
        "flow": f"{cfg.get('type', 'maf')} {cfg.get('transforms')}x{cfg.get('hidden')}",
        "memory_samples_s": a[0] / a[1], "petastorm_samples_s": b[0] / b[1],
        "overhead_ratio": (a[0] / a[1]) / (b[0] / b[1]),
        "memory_cpu_s_per_1k": 1e3 * a[2] / a[0], "petastorm_cpu_s_per_1k": 1e3 * b[2] / b[0],
        "overhead_ratio_cpu": (b[2] / b[0]) / (a[2] / a[0]) if a[2] > 0 else math.nan,
        "memory_wall_s": a[1], "petastorm_wall_s": b[1],
        "batched_samples_s": bb[0] / bb[1],
        "overhead_ratio_batched": (a[0] / a[1]) / (bb[0] / bb[1]),
        "batched_cpu_s_per_1k": 1e3 * bb[2] / bb[0],
        "overhead_ratio_batched_cpu": (bb[2] / bb[0]) / (a[2] / a[0]) if a[2] > 0 else math.nan,
        "loader_only_samples_s": only["b"][0] / only["b"][1],
        "loader_only_cpu_s_per_1k": 1e3 * only["b"][2] / max(only["b"][0], 1),
        "batched_loader_only_samples_s": only["c"][0] / only["c"][1],
        "batched_loader_only_cpu_s_per_1k": 1e3 * only["c"][2] / max(only["c"][0], 1),
        "petastorm_setup_s": setup_s, "delta_write_s": write_s,
        "final_nll_memory": nll_a, "final_nll_petastorm": nll_b,
    }
    log.info("train feed: memory %.0f samples/s, Petastorm %.0f samples/s, ratio %.2fx "
             "(CPU %.2fx); BatchedDataLoader %.2fx (CPU %.2fx); device %s",
             out["memory_samples_s"], out["petastorm_samples_s"], out["overhead_ratio"],
             out["overhead_ratio_cpu"], out["overhead_ratio_batched"],
             out["overhead_ratio_batched_cpu"], device)
    return out


def _search_modules(conf: Conf, stars: pd.DataFrame, seed: int, epochs: int):
    """Train one group (every method of the search) on ``stars``; the SearchModels and the
    group's training seconds and epochs."""
    import dataclasses

    from gaialake.streams.scorer import build_search_model, group_key, state_for_groups
    from gaialake.streams.search import SearchSettings, score_group
    from gaialake.streams.regions import signal_regions_from_conf

    settings = SearchSettings.from_conf(conf)
    settings = dataclasses.replace(
        settings, methods=("cathode", "anode"), min_patch_stars=100, min_sr_stars=50,
        train=dataclasses.replace(settings.train, max_epochs=epochs, patience=epochs + 1))
    pm = stars["pm_phi"].to_numpy()
    sr = max((s for s in signal_regions_from_conf(conf) if s.axis == "pm_phi"),
             key=lambda s: int(s.contains(pm).sum()))
    sub = stars[sr.contains(pm)]
    t0 = time.perf_counter()
    res = score_group(stars, sr, settings, seed, device=bench_device())
    seconds = time.perf_counter() - t0
    key = group_key(int(stars["patch_id"].iloc[0]), sr.axis, sr.index)
    modules = {}
    for method in ("anode", "cathode"):
        group = {"key": key, "patch_id": int(stars["patch_id"].iloc[0]), "pm_axis": sr.axis,
                 "sr_lo": sr.lo, "sr_hi": sr.hi, "feature_map": res.feature_map,
                 "classifier_bytes": len(res.weights.get("classifiers", b""))}
        config = {"method": method, "flow": settings.flow, "groups": [group]}
        module = build_search_model(config)
        module.load_state_dict(state_for_groups(method, [group], {key: res.weights}))
        modules[method] = (module.eval(), config)
    epochs_run = int(res.metrics.get("cr_epochs", epochs)) + int(res.metrics.get("sr_epochs", 0))
    return modules, sr, len(sub), seconds, epochs_run, res.metrics


def run_score_bench(conf: Conf, n_rows: int) -> dict:
    """Stars/s per core of ANODE and CATHODE scoring with the registered-model path.

    One group is trained on a synthetic patch of min(n_rows, 50,000) stars (2 epochs; not
    timed as scoring), then ``n_rows`` stars inside its signal region are scored (a) in this
    process with one torch thread (``*_stars_s_core``: by wall; ``*_stars_cpu_s_core``: stars
    per CPU second) and (b) through Spark's ``mapInPandas`` on every local core
    (``spark_*_stars_s_core`` = stars / wall / cores). ``patch_minutes_est``: the measured
    training seconds per epoch per star, times the stars of a patch (``n_rows``) times
    ``streams.train.max_epochs`` times the groups of a patch (axes x signal regions), / 60.
    """
    from gaialake.streams.scorer import score_stars
    from gaialake.streams.search_spark import score_frame
    from gaialake.streams.regions import signal_regions_from_conf
    from gaialake.io.spark import get_spark

    s = _settings(conf)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(s["threads"])
    seed = conf.seed_for("bench_train", "score", n_rows)
    device = bench_device()
    out: dict = {"n_rows": n_rows, "torch_threads": s["threads"], "device": str(device)}
    try:
        n_train = min(n_rows, 50_000)
        train_stars = bench_patch_stars(n_train, seed % 2**32)
        modules, sr, n_sr, train_s, epochs_run, metrics = _search_modules(conf, train_stars,
                                                                          seed, 2)
        stars = bench_patch_stars(n_rows, (seed + 1) % 2**32,
                                  pm_phi_range=(sr.lo, sr.hi)).assign(
            source_id=lambda d: d.source_id + 10**12)
        out.update({"train_group_stars": n_train, "train_group_seconds": train_s,
                    "group_seconds_per_epoch_per_1k_stars": 1e3 * train_s / max(epochs_run, 1)
                    / n_train})
        groups = len(signal_regions_from_conf(conf))
        out["patch_minutes_est"] = (out["group_seconds_per_epoch_per_1k_stars"] * n_rows / 1e3
                                    * int(conf.get("streams.train.max_epochs")) * groups / 60)
        out["groups_per_patch"] = groups
        for method, (module, config) in modules.items():
            module.to(device)
            score_stars(module, stars.iloc[:1000])          # warm-up
            w0, c0 = time.perf_counter(), time.process_time()
            got = score_stars(module, stars)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            if len(got) != n_rows:
                raise RuntimeError(f"score bench: {len(got)} scores for {n_rows} stars")
            out[f"{method}_stars_s_core"] = n_rows / wall / s["threads"]
            out[f"{method}_stars_cpu_s_core"] = n_rows / cpu if cpu > 0 else math.nan
            module.to("cpu")
        spark = get_spark(conf)
        cores = int(spark.sparkContext.defaultParallelism)
        df = spark.createDataFrame(stars).repartition(cores).cache()
        df.count()
        warm = spark.createDataFrame(stars.iloc[:100 * cores]).repartition(cores)
        for method, (module, config) in modules.items():
            key = f"bench/{method}/{seed}"
            for frame_in, timed in ((warm, False), (df, True)):
                # untimed first: Python workers start and build the model once (worker reuse)
                frame, payload = score_frame(frame_in, config, module.state_dict(), key)
                w0 = time.perf_counter()
                frame.write.format("noop").mode("overwrite").save()
                wall = time.perf_counter() - w0
                payload.unpersist()
            out[f"spark_{method}_stars_s_core"] = n_rows / wall / cores
        out["spark_cores"] = cores
        df.unpersist()
    finally:
        torch.set_num_threads(threads_before)
    log.info("score: ANODE %.0f, CATHODE %.0f stars/s per core (in process); Spark %.0f, %.0f",
             out["anode_stars_s_core"], out["cathode_stars_s_core"],
             out["spark_anode_stars_s_core"], out["spark_cathode_stars_s_core"])
    return out

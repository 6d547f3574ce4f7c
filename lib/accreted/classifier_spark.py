"""The accreted-star classifier on Spark: scoring and features on executors (``mapInPandas``,
the weights broadcast), training and transfer streamed through Petastorm
(:func:`gaialake.io.feeding.torch_loader`), the labelled scores of a catalog for evaluation.

- :func:`training_rows`: features of the stars passing the cuts, joined with ``truth_origin``,
  split train/val by a seeded hash of source_id;
- :func:`train_streaming`: each variant's net trained with class weights, standardised by the
  training rows' moments, Platt-calibrated on the validation rows;
- :func:`transfer_streaming`: the ``5d`` net fine-tuned on a catalog's own radial-velocity stars
  labelled by the ``6d`` net (no truth; after Ostdiek et al. 2020);
- :func:`evaluate`: scored and labelled stars of a catalog, collected to the driver.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

import numpy as np

from gaialake import tables
from gaialake.accreted.features import ASTROMETRY_COLUMNS, PHOTOMETRY_COLUMNS, variant_features
from gaialake.accreted.scoring import uses_photometry
from gaialake.accreted.settings import AccretedSettings
from gaialake.accreted.sources import has_tables
from gaialake.conf import Conf
from gaialake.io.delta import read_table
from gaialake.io.feeding import stack_batch, task_device, torch_loader
from gaialake.io.tracking import state_from_bytes, state_to_bytes
from gaialake.log import get_logger, stage
from gaialake.models.accreted_net import (AccretedClassifier, build_accreted_model, fit_platt,
                                          raw_logits, set_standardization, train_epochs,
                                          transfer_epochs)

__all__ = ["INPUT_COLUMNS", "SCORE_SCHEMA", "VELOCITY_SCHEMA", "score_catalog", "feature_rows",
           "split_column", "training_rows", "train_streaming", "transfer_streaming", "evaluate",
           "capped", "truth_labels", "velocity_sample", "catalog_rows", "catalog_counts"]

log = get_logger("accreted")

#: The ``gaia_source`` columns scoring, features and cuts read.
INPUT_COLUMNS = ["source_id", *ASTROMETRY_COLUMNS, *PHOTOMETRY_COLUMNS]
#: Rows of :func:`score_catalog`: the catalog's columns that scoring fills.
SCORE_SCHEMA = tables.ACCRETED_CATALOG.schema_without("is_accreted", "model_version", "run_id")
#: The extra rows of :func:`score_catalog` with ``extra``: the Toomre speed and spherical
#: velocities (km/s).
VELOCITY_SCHEMA = "v_toomre_kms double, v_r double, v_theta double, v_phi double"

_MODELS: dict = {}  # executor-side cache: (state hash, config) -> model


def _model_from(broadcast, config: dict) -> AccretedClassifier:
    """The model of a broadcast state (built once per Python worker)."""
    key = (hashlib.sha1(broadcast.value).hexdigest(), json.dumps(config, sort_keys=True))
    if key not in _MODELS:
        model = build_accreted_model(config)
        model.load_state_dict(state_from_bytes(broadcast.value))
        _MODELS.clear()
        _MODELS[key] = model.eval()
    return _MODELS[key]


def _inputs(df, config: dict):
    """``df``'s :data:`INPUT_COLUMNS` (the photometric ones only for a model of ``config``
    that reads them; a clear error when some are missing)."""
    columns = [c for c in INPUT_COLUMNS if uses_photometry(config) or c not in PHOTOMETRY_COLUMNS]
    missing = [c for c in columns if c not in df.columns]
    if missing:
        hint = (" (or set accreted.photometry=false: kinematic features only)"
                if set(missing) <= set(PHOTOMETRY_COLUMNS) else "")
        raise KeyError(f"gaia_source lacks columns {missing} needed to score accreted stars"
                       f"{hint}")
    return df.select(*columns)


def score_catalog(df, state_bytes: bytes, config: dict, *, extra: bool = False):
    """``df`` (DR3 rows with the astrometry columns) scored on executors: :data:`SCORE_SCHEMA`
    rows of :func:`gaialake.accreted.scoring.score_stars` (null p_accreted with a reason for
    stars failing the cuts or with missing astrometry), plus :data:`VELOCITY_SCHEMA` with
    ``extra``. Deterministic."""
    broadcast = df.sparkSession.sparkContext.broadcast(state_bytes)

    def score(batches):
        import torch

        from gaialake.accreted.scoring import score_stars

        task_device()  # torch threads = task cpus
        torch.manual_seed(0)
        model = _model_from(broadcast, config)
        for pdf in batches:
            out = score_stars(model, pdf, extra=extra)
            out.insert(0, "source_id", pdf["source_id"].to_numpy())
            yield out

    schema = SCORE_SCHEMA + (", " + VELOCITY_SCHEMA if extra else "")
    return _inputs(df, config).mapInPandas(score, schema)


def feature_rows(df, config: dict):
    """(stars of ``df`` passing the cuts with both variants' features, {variant: feature
    columns}): columns ``source_id``, ``f5_*``, ``f6_*`` (null where a variant does not
    apply)."""
    phot = uses_photometry(config)
    names = {v: [f"f{v[0]}_{c}" for c in variant_features(v, phot)] for v in config["variants"]}
    schema = "source_id long, " + ", ".join(f"{c} double" for v in names.values() for c in v)

    def make(batches):
        import pandas as pd

        from gaialake.accreted.features import features, phase_space_of, quality_mask

        for pdf in batches:
            keep, _ = quality_mask(pdf, **config["cuts"])
            pdf = pdf[keep]
            ps = phase_space_of(pdf)
            out = {"source_id": pdf["source_id"].to_numpy()}
            for v, cols in names.items():
                x = features(pdf, v, ps, phot)
                out.update({c: x[:, i] for i, c in enumerate(cols)})
            yield pd.DataFrame(out)

    return _inputs(df, config).mapInPandas(make, schema), names


def split_column(seed: int, val_fraction: float):
    """A Spark column: ``val`` for a seeded hash fraction of source_ids, else ``train``
    (deterministic)."""
    from pyspark.sql import functions as F

    bucket = F.pmod(F.xxhash64(F.col("source_id"), F.lit(int(seed))), F.lit(10000))
    return F.when(bucket < int(round(val_fraction * 10000)), "val").otherwise("train")


def _finite(cols: list[str]):
    """A Spark condition: every column of ``cols`` non-null and not NaN."""
    from pyspark.sql import functions as F

    cond = None
    for c in cols:
        term = F.col(c).isNotNull() & ~F.isnan(F.col(c))
        cond = term if cond is None else cond & term
    return cond


def _seed(conf: Conf, *parts: Any) -> int:
    return conf.seed_for("accreted", *parts) % (2**31)


def truth_labels(spark, source: Conf):
    """``source``'s ``truth_origin`` as (source_id, accreted boolean, component)."""
    from pyspark.sql import functions as F

    return read_table(spark, source, tables.TRUTH_ORIGIN).select(
        "source_id", (F.col("origin") == "accreted").alias("accreted"), "component")


def training_rows(spark, conf: Conf, settings: AccretedSettings, source: Conf, config: dict):
    """(features of ``source``'s stars passing the cuts with ``label`` (1.0 accreted) and
    ``split`` (train/val), {variant: feature columns})."""
    from pyspark.sql import functions as F

    feats, names = feature_rows(read_table(spark, source, tables.GAIA_SOURCE), config)
    truth = read_table(spark, source, tables.TRUTH_ORIGIN).select(
        "source_id", (F.col("origin") == "accreted").cast("double").alias("label"))
    rows = feats.join(truth, "source_id").withColumn(
        "split", split_column(_seed(conf, "split"), settings.train.val_fraction))
    return rows, names


def _loader_epochs(loader, steps: int, cols: list[str], label: str):
    """``batches(epoch)`` over an endless Petastorm loader: ``steps`` batches per epoch."""
    it = iter(loader)

    def batches(_epoch: int):
        for _ in range(steps):
            batch = next(it)
            yield stack_batch(batch, cols), batch[label].float()
    return batches


def train_streaming(conf: Conf, settings: AccretedSettings, rows, names: dict,
                    model: AccretedClassifier, device) -> dict:
    """Train and calibrate every variant of ``model`` on ``rows`` (:func:`training_rows`),
    streaming from Spark through Petastorm. Returns per-variant counts and calibration."""
    from pyspark.sql import functions as F

    batch_size, epochs = settings.train.batch_size, settings.train.max_epochs
    out = {}
    for variant, cols in names.items():
        data = rows.where(_finite(cols))
        train = data.where(F.col("split") == "train").select(*cols, "label")
        stats = train.agg(F.count("*").alias("n"), F.sum("label").alias("pos"),
                          *[F.mean(c).alias(f"m{i}") for i, c in enumerate(cols)],
                          *[F.stddev(c).alias(f"s{i}") for i, c in enumerate(cols)]).first()
        n, pos = int(stats["n"]), int(stats["pos"] or 0)
        if pos == 0 or pos == n:
            raise ValueError(f"accreted: the {variant} training rows need both classes "
                             f"({n} rows, {pos} accreted); enlarge the training sky")
        net = model.nets[variant]
        set_standardization(net, mean=[stats[f"m{i}"] for i in range(len(cols))],
                            std=[stats[f"s{i}"] or 1.0 for i in range(len(cols))])
        seed = _seed(conf, "train", variant)
        steps = max(1, math.ceil(n / batch_size))
        with stage(log, f"train {variant} ({n:,} rows, {pos:,} accreted, {epochs} epochs)") as st:
            with torch_loader(train, cols + ["label"], batch_size=batch_size, conf=conf,
                              shuffle=True, seed=seed, num_epochs=None) as loader:
                history = train_epochs(net, _loader_epochs(loader, steps, cols, "label"),
                                       settings.train, pos_weight=(n - pos) / pos,
                                       device=device, seed=seed, logger=log)
            st.count = n * epochs
        net.cpu()
        val = data.where(F.col("split") == "val").select(*cols, "label")
        logits, labels = [], []
        with torch_loader(val, cols + ["label"], batch_size=8192, conf=conf, shuffle=False,
                          num_epochs=1) as loader:
            for batch in loader:
                logits.append(raw_logits(net, stack_batch(batch, cols)))
                labels.append(batch["label"].numpy())
                if sum(len(x) for x in logits) >= settings.calibration_max_rows:
                    break
        a, b = fit_platt(net, np.concatenate(logits), np.concatenate(labels))
        out[variant] = {"train_rows": n, "train_accreted": pos, "pos_weight": (n - pos) / pos,
                        "platt_a": a, "platt_b": b, "final_loss": history[-1],
                        "val_rows": int(sum(len(x) for x in logits))}
        log.info("%s: Platt a=%.3f b=%.3f on %d validation rows", variant, a, b,
                 out[variant]["val_rows"])
    return out


def transfer_streaming(conf: Conf, settings: AccretedSettings, spark, source: Conf,
                       base: AccretedClassifier, device) -> AccretedClassifier:
    """A copy of ``base`` with its ``5d`` net fine-tuned on ``source``'s radial-velocity stars
    labelled by the ``6d`` net (streamed through Petastorm); ``base`` when disabled."""
    if not settings.transfer_enabled or not {"5d", "6d"} <= set(base.nets):
        return base
    config = base.config
    cols = [f"f5_{c}" for c in variant_features("5d", uses_photometry(config))]
    broadcast = spark.sparkContext.broadcast(state_to_bytes(base.state_dict()))

    def teach(batches):
        import pandas as pd

        from gaialake.accreted.scoring import teacher_rows

        task_device()
        model = _model_from(broadcast, config)
        for pdf in batches:
            _, x5, p6 = teacher_rows(model, pdf)
            out = pd.DataFrame(x5, columns=cols)
            out["p_teacher"] = p6
            yield out

    rows = _inputs(read_table(spark, source, tables.GAIA_SOURCE), config).where(
        "radial_velocity IS NOT NULL").mapInPandas(
        teach, ", ".join(f"{c} double" for c in cols) + ", p_teacher double")
    n = rows.count()
    model = copy.deepcopy(base)
    where = source.path("paths.warehouse")
    if n == 0:
        log.warning("transfer: no radial-velocity stars in %s; 5d net left as trained", where)
        return model
    batch_size, epochs = settings.transfer.batch_size, settings.transfer.max_epochs
    seed = _seed(conf, "transfer", where)
    with stage(log, f"transfer 5d on {n:,} radial-velocity stars of {where}") as st:
        with torch_loader(rows, cols + ["p_teacher"], batch_size=batch_size, conf=conf,
                          shuffle=True, seed=seed, num_epochs=None) as loader:
            transfer_epochs(model.nets["5d"],
                            _loader_epochs(loader, max(1, math.ceil(n / batch_size)), cols,
                                           "p_teacher"),
                            settings.transfer, device=device, seed=seed, logger=log)
        st.count = n * epochs
    model.cpu().eval()
    return model


def capped(df, cap: int, seed: int):
    """``df``, or a seeded sample of about ``cap`` rows when it has more."""
    n = df.count()
    return df.sample(fraction=cap / n, seed=seed) if n > cap else df


def evaluate(conf: Conf, settings: AccretedSettings, spark, source: Conf,
             model: AccretedClassifier, split: str | None = None):
    """Scored, labelled stars of ``source`` (pandas: p_accreted, accreted, v_toomre_kms
    (km/s), variant, component, v_r, v_phi (km/s)), at most ``eval_max_rows`` (seeded
    sample); ``split`` ``val`` keeps the stars held out of training only."""
    from pyspark.sql import functions as F

    scored = score_catalog(read_table(spark, source, tables.GAIA_SOURCE),
                           state_to_bytes(model.state_dict()), model.config, extra=True)
    rows = scored.where(F.col("p_accreted").isNotNull()).join(truth_labels(spark, source),
                                                              "source_id")
    if split is not None:
        rows = rows.where(split_column(_seed(conf, "split"), settings.train.val_fraction) == split)
    rows = rows.select("p_accreted", "accreted", "v_toomre_kms", "variant", "component", "v_r",
                       "v_phi")
    return capped(rows, settings.eval_max_rows, _seed(conf, "eval")).toPandas()


def velocity_sample(spark, conf: Conf, settings: AccretedSettings, scored):
    """The ``6d`` stars of ``scored`` (:func:`score_catalog` with ``extra``), with their truth
    where ``conf``'s warehouse has ``truth_origin``, at most ``plot_max_rows`` (seeded
    sample), as pandas: v_r, v_phi (km/s), p_accreted [, accreted, component]."""
    from pyspark.sql import functions as F

    six = scored.where(F.col("variant") == "6d")
    if has_tables(spark, conf, tables.TRUTH_ORIGIN):
        six = six.join(truth_labels(spark, conf), "source_id", "left")
    six = capped(six, settings.plot_max_rows, _seed(conf, "plot"))
    return six.select("v_r", "v_phi", "p_accreted",
                      *(["accreted", "component"] if "accreted" in six.columns else [])).toPandas()


def catalog_rows(scored, threshold: float, model_version: str, run_id: str):
    """The ``accreted_catalog`` rows of ``scored`` (:func:`score_catalog`): ``is_accreted`` =
    p_accreted >= ``threshold`` (False where null), the model version and run id."""
    from pyspark.sql import functions as F

    return (scored
            .withColumn("is_accreted", F.coalesce(F.col("p_accreted") >= F.lit(float(threshold)),
                                                  F.lit(False)))
            .withColumn("model_version", F.lit(model_version))
            .withColumn("run_id", F.lit(run_id))
            .select(*tables.ACCRETED_CATALOG.columns))


def catalog_counts(catalog) -> dict[str, int]:
    """Rows, scored rows and selected (is_accreted) rows of an ``accreted_catalog`` frame."""
    from pyspark.sql import functions as F

    counts = {r["variant"]: (int(r["n"]), int(r["sel"] or 0)) for r in catalog.groupBy(
        "variant").agg(F.count("*").alias("n"),
                       F.sum(F.col("is_accreted").cast("int")).alias("sel")).collect()}
    return {"catalog_rows": sum(n for n, _ in counts.values()),
            "catalog_scored": sum(n for k, (n, _) in counts.items() if k),
            "catalog_accreted": sum(s for _, s in counts.values())}

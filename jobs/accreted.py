"""``gaialake accreted``: train the accreted-star classifier on galaxy A, test it on galaxy B,
write ``accreted_catalog``.

1. Sources: a galaxy's catalog + truth is the main warehouse when ``sky.galaxy`` is that galaxy
   and ``truth_origin`` exists there, else its own sky, generated and ingested once into
   ``<accreted.side_root>/<galaxy>/{raw,warehouse}`` (catalog database ``<db>_sky_<galaxy>``)
   with the ``accreted.side_sky`` settings (re-made when those settings change).
2. Train (galaxy ``accreted.train_galaxy``): features of the stars passing the quality cuts
   (:mod:`gaialake.accreted.features`) by ``mapInPandas``, joined with ``truth_origin``, split by a
   hash of source_id; each variant's MLP (``5d``, ``6d``) streams its training rows from Spark
   through Petastorm (:func:`gaialake.io.feeding.torch_loader`) with class weights, and is
   Platt-calibrated on the validation rows (:mod:`gaialake.models.accreted_net`).
3. Transfer: for each catalog it scores, the ``5d`` net is fine-tuned on that catalog's own
   radial-velocity stars labelled by the ``6d`` net (no truth; after Ostdiek et al. 2020).
4. Evaluate: ROC AUC on A's held-out stars and on B; purity/completeness on B against the
   Toomre cut |v - v_LSR| > ``accreted.baseline_cut_kms``; the catalog threshold is the most
   complete selection with purity >= ``accreted.target_purity`` on B.
5. Apply: the main ``gaia_source`` scored on executors (``mapInPandas``, weights broadcast) ->
   Delta ``accreted_catalog`` (source_id, p_accreted, variant, unscored_reason, is_accreted,
   model_version, run_id); MLflow run, registered ``gaialake-accreted`` (alias champion);
   figures under ``accreted.figures_dir``: the accreted stars in (v_r, v_phi), purity vs
   completeness on B.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.log import get_logger, stage

__all__ = ["run", "side_conf", "galaxy_source", "feature_rows", "score_catalog", "train_streaming",
           "transfer_streaming", "evaluate", "REGISTERED_NAME"]

log = get_logger("accreted")

REGISTERED_NAME = "gaialake-accreted"
BUILDER = "gaialake.models.accreted_net:build_accreted_model"
SOURCE_MARKER = "accreted_source.json"
SCORE_SCHEMA = "source_id long, p_accreted double, variant string, unscored_reason string"
EXTRA_SCHEMA = ", v_toomre_kms double, v_r double, v_theta double, v_phi double"
NEEDED = ["source_id", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error", "pmdec",
          "pmdec_error", "radial_velocity", "radial_velocity_error", "ruwe"]

_MODELS: dict = {}  # executor-side cache: (state hash, config) -> model


# ---------------------------------------------------------------- sources ----------------------
def _has_tables(spark, conf: Conf, *tables: str) -> bool:
    from gaialake.io.delta import table_exists

    return all(table_exists(spark, conf.table_path(t)) for t in tables)


def side_conf(conf: Conf, galaxy: str) -> tuple[Conf, str]:
    """(conf of ``galaxy``'s own sky under ``accreted.side_root``, its marker text): paths,
    catalog database ``<db>_sky_<galaxy>`` and ``sky`` = main sky + ``accreted.side_sky``."""
    root = f"{conf.path('accreted.side_root').rstrip('/')}/{galaxy}"
    side = conf.with_overrides([f"paths.raw={root}/raw", f"paths.warehouse={root}/warehouse",
                                f"catalog.database={conf.get('catalog.database')}_sky_{galaxy.lower()}",
                                f"sky.galaxy={galaxy}"])
    for key, value in (conf.get("accreted.side_sky", {}) or {}).items():
        side.set(f"sky.{key}", value)
    marker = json.dumps({"seed": side.get("seed"), "sky": side.get("sky")}, sort_keys=True,
                        default=str)
    return side, marker


def galaxy_source(spark, conf: Conf, galaxy: str) -> Conf:
    """The conf whose warehouse holds ``gaia_source`` and ``truth_origin`` of ``galaxy``
    (module docstring, step 1); generates and ingests a side sky when needed (or when the
    side sky's settings changed since it was made: ``<side_root>/<galaxy>/accreted_source.json``)."""
    if str(conf.get("sky.galaxy")) == galaxy and _has_tables(spark, conf, "gaia_source",
                                                              "truth_origin"):
        return conf
    side, marker = side_conf(conf, galaxy)
    root = str(Path(side.path("paths.raw")).parent) if "://" not in side.path("paths.raw") \
        else side.path("paths.raw").rsplit("/", 1)[0]
    marker_path = Path(root) / SOURCE_MARKER
    local = "://" not in root
    if (local and marker_path.exists() and marker_path.read_text() == marker
            and _has_tables(spark, side, "gaia_source", "truth_origin")):
        log.info("galaxy %s: reusing the sky under %s", galaxy, root)
        return side
    from gaialake.jobs import generate, ingest

    if local and Path(root).exists():
        shutil.rmtree(root)
    with stage(log, f"galaxy {galaxy}: generate + ingest its sky under {root}") as st:
        st.count = generate.run(side)["stars"]
        ingest.run(side)
    if local:
        marker_path.write_text(marker)
    return side


# ---------------------------------------------------------------- executors --------------------
def _model_from(bc, config: dict):
    """The model of a broadcast state (built once per Python worker)."""
    import hashlib

    key = (hashlib.sha1(bc.value).hexdigest(), json.dumps(config, sort_keys=True))
    if key not in _MODELS:
        from gaialake.models.accreted_net import build_accreted_model
        from gaialake.io.tracking import state_from_bytes

        model = build_accreted_model(config)
        model.load_state_dict(state_from_bytes(bc.value))
        _MODELS.clear()
        _MODELS[key] = model.eval()
    return _MODELS[key]


def score_catalog(df, state_bytes: bytes, config: dict, *, extra: bool = False):
    """``df`` (DR3 rows with the astrometry columns) scored on executors: source_id and the
    columns of :func:`gaialake.models.accreted_net.score_stars` (null p_accreted with a reason for
    stars failing the cuts or with missing astrometry). Deterministic."""
    bc = df.sparkSession.sparkContext.broadcast(state_bytes)

    def score(batches):
        import torch

        from gaialake.io.feeding import task_device
        from gaialake.models.accreted_net import score_stars

        task_device()  # torch threads = task cpus
        torch.manual_seed(0)
        model = _model_from(bc, config)
        for pdf in batches:
            out = score_stars(model, pdf, extra=extra)
            out.insert(0, "source_id", pdf["source_id"].to_numpy())
            yield out

    missing = [c for c in NEEDED if c not in df.columns]
    if missing:
        raise KeyError(f"gaia_source lacks columns {missing} needed to score accreted stars")
    return df.select(*NEEDED).mapInPandas(score, SCORE_SCHEMA + (EXTRA_SCHEMA if extra else ""))


def feature_rows(df, config: dict):
    """Stars of ``df`` passing the cuts, with both variants' features (``f5_*``, ``f6_*``;
    null where a variant does not apply)."""
    from gaialake.accreted.features import VARIANTS, features, phase_space, quality_mask

    cuts = dict(config["cuts"])
    names = {v: [f"f{v[0]}_{c}" for c in VARIANTS[v]] for v in config["variants"]}
    schema = "source_id long, " + ", ".join(f"{c} double" for v in names.values() for c in v)

    def make(batches):
        import pandas as pd

        for pdf in batches:
            keep, _ = quality_mask(pdf, **cuts)
            pdf = pdf[keep]
            ps = phase_space(*(pdf[c].to_numpy(float) for c in ("ra", "dec", "parallax", "pmra",
                                                                 "pmdec", "radial_velocity")))
            out = {"source_id": pdf["source_id"].to_numpy()}
            for v, cols in names.items():
                x = features(pdf, v, ps)
                out.update({c: x[:, i] for i, c in enumerate(cols)})
            yield pd.DataFrame(out)

    return df.select(*NEEDED).mapInPandas(make, schema), names


def _finite(cols):
    from pyspark.sql import functions as F

    cond = None
    for c in cols:
        term = F.col(c).isNotNull() & ~F.isnan(F.col(c))
        cond = term if cond is None else cond & term
    return cond


def _split(seed: int, val_fraction: float):
    """'val' for a seeded hash fraction of source_ids, else 'train' (deterministic)."""
    from pyspark.sql import functions as F

    bucket = F.pmod(F.xxhash64(F.col("source_id"), F.lit(int(seed))), F.lit(10000))
    return F.when(bucket < int(round(val_fraction * 10000)), "val").otherwise("train")


# ---------------------------------------------------------------- training ---------------------
def _loader_epochs(loader, steps: int, cols: list[str], label: str):
    """``batches(epoch)`` over an endless Petastorm loader: ``steps`` batches per epoch."""
    from gaialake.io.feeding import stack_batch

    it = iter(loader)

    def batches(_epoch: int):
        for _ in range(steps):
            batch = next(it)
            yield stack_batch(batch, cols), batch[label].float()
    return batches


def train_streaming(conf: Conf, rows, names: dict, model, device) -> dict:
    """Train and calibrate every variant of ``model`` on ``rows`` (features + label + split),
    streaming from Spark through Petastorm. Returns per-variant counts and calibration."""
    from pyspark.sql import functions as F

    from gaialake.io.feeding import stack_batch, torch_loader
    from gaialake.models.accreted_net import (fit_platt, raw_logits, set_standardization,
                                           train_epochs)

    tc = conf.get("accreted.train")
    bs, epochs = int(tc["batch_size"]), int(tc["epochs"])
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
        seed = conf.seed_for("accreted", "train", variant) % (2**31)
        steps = max(1, math.ceil(n / bs))
        with stage(log, f"train {variant} ({n:,} rows, {pos:,} accreted, {epochs} epochs)") as st:
            with torch_loader(train, cols + ["label"], batch_size=bs, conf=conf, shuffle=True,
                              seed=seed, num_epochs=None) as loader:
                history = train_epochs(net, _loader_epochs(loader, steps, cols, "label"), epochs,
                                       pos_weight=(n - pos) / pos, lr=float(tc["lr"]),
                                       weight_decay=float(tc["weight_decay"]), device=device,
                                       seed=seed, logger=log)
            st.count = n * epochs
        net.cpu()
        val = data.where(F.col("split") == "val").select(*cols, "label")
        logits, labels, cap = [], [], int(tc["calibration_max_rows"])
        with torch_loader(val, cols + ["label"], batch_size=8192, conf=conf, shuffle=False,
                          num_epochs=1) as loader:
            for batch in loader:
                logits.append(raw_logits(net, stack_batch(batch, cols)))
                labels.append(batch["label"].numpy())
                if sum(len(x) for x in logits) >= cap:
                    break
        a, b = fit_platt(net, np.concatenate(logits), np.concatenate(labels))
        out[variant] = {"train_rows": n, "train_accreted": pos, "pos_weight": (n - pos) / pos,
                        "platt_a": a, "platt_b": b, "final_loss": history[-1],
                        "val_rows": int(sum(len(x) for x in logits))}
        log.info("%s: Platt a=%.3f b=%.3f on %d validation rows", variant, a, b,
                 out[variant]["val_rows"])
    return out


def transfer_streaming(conf: Conf, spark, source: Conf, base, device):
    """A copy of ``base`` with its ``5d`` net fine-tuned on ``source``'s radial-velocity stars
    labelled by the ``6d`` net (streamed through Petastorm); ``base`` when disabled."""
    import copy

    from gaialake.io.delta import read_table
    from gaialake.io.feeding import torch_loader
    from gaialake.models.accreted_net import transfer_epochs
    from gaialake.io.tracking import state_to_bytes

    tc = conf.get("accreted.transfer")
    if not tc.get("enabled", True) or not {"5d", "6d"} <= set(base.nets):
        return base
    from gaialake.accreted.features import FEATURES_5D

    cols = [f"f5_{c}" for c in FEATURES_5D]
    bc = spark.sparkContext.broadcast(state_to_bytes(base.state_dict()))
    config = base.config

    def teach(batches):
        import pandas as pd

        from gaialake.io.feeding import task_device
        from gaialake.models.accreted_net import teacher_rows

        task_device()
        model = _model_from(bc, config)
        for pdf in batches:
            _, x5, p6 = teacher_rows(model, pdf)
            out = pd.DataFrame(x5, columns=cols)
            out["p_teacher"] = p6
            yield out

    df = read_table(spark, source, "gaia_source").select(*NEEDED)
    rows = df.where("radial_velocity IS NOT NULL").mapInPandas(
        teach, ", ".join(f"{c} double" for c in cols) + ", p_teacher double")
    n = rows.count()
    model = copy.deepcopy(base)
    if n == 0:
        log.warning("transfer: no radial-velocity stars in %s; 5d net left as trained",
                    source.path("paths.warehouse"))
        return model
    bs, epochs = int(tc["batch_size"]), int(tc["epochs"])
    seed = conf.seed_for("accreted", "transfer", source.path("paths.warehouse")) % (2**31)
    with stage(log, f"transfer 5d on {n:,} radial-velocity stars of "
                    f"{source.path('paths.warehouse')}") as st:
        with torch_loader(rows, cols + ["p_teacher"], batch_size=bs, conf=conf, shuffle=True,
                          seed=seed, num_epochs=None) as loader:
            transfer_epochs(model.nets["5d"], _loader_epochs(loader, max(1, math.ceil(n / bs)),
                                                             cols, "p_teacher"),
                            epochs, lr=float(tc["lr"]), device=device, seed=seed, logger=log)
        st.count = n * epochs
    model.cpu().eval()
    return model


# ---------------------------------------------------------------- evaluation -------------------
def evaluate(conf: Conf, spark, source: Conf, model, split: str | None = None):
    """Scored, labelled stars of ``source`` (pandas: p_accreted, accreted, v_toomre_kms,
    variant, component, v_r, v_phi), at most ``accreted.eval_max_rows`` (seeded sample);
    ``split`` 'val' keeps the held-out stars of training only."""
    from pyspark.sql import functions as F

    from gaialake.io.delta import read_table
    from gaialake.io.tracking import state_to_bytes

    scored = score_catalog(read_table(spark, source, "gaia_source"),
                           state_to_bytes(model.state_dict()), model.config, extra=True)
    truth = read_table(spark, source, "truth_origin").select(
        "source_id", (F.col("origin") == "accreted").alias("accreted"), "component")
    rows = scored.where(F.col("p_accreted").isNotNull()).join(truth, "source_id")
    if split is not None:
        tc = conf.get("accreted.train")
        rows = rows.where(_split(conf.seed_for("accreted", "split") % (2**31),
                                 float(tc["val_fraction"])) == split)
    rows = rows.select("p_accreted", "accreted", "v_toomre_kms", "variant", "component", "v_r",
                       "v_phi")
    n = rows.count()
    cap = int(conf.get("accreted.eval_max_rows"))
    if n > cap:
        rows = rows.sample(fraction=cap / n, seed=conf.seed_for("accreted", "eval") % (2**31))
    return rows.toPandas()


def _metrics(pdf, cut_kms: float, prefix: str) -> dict:
    from gaialake.accreted.evaluation import compare_with_baseline, roc_auc

    out = {}
    y = pdf["accreted"].to_numpy(bool)
    p = pdf["p_accreted"].to_numpy(float)
    v = pdf["v_toomre_kms"].to_numpy(float)
    for name, m in (("", np.ones(len(pdf), bool)), ("_5d", (pdf["variant"] == "5d").to_numpy()),
                    ("_6d", (pdf["variant"] == "6d").to_numpy())):
        if m.sum() == 0 or y[m].all() or not y[m].any():
            continue
        if prefix == "A":
            out[f"auc_A{name}"] = roc_auc(p[m], y[m])
            out[f"auc_baseline_A{name}"] = roc_auc(np.nan_to_num(v[m]), y[m])
        else:
            c = compare_with_baseline(p[m], v[m], y[m], cut_kms)
            out.update({f"{k}_B{name}": val for k, val in c.items()})
        out[f"n_{prefix}{name}"] = int(m.sum())
        out[f"n_accreted_{prefix}{name}"] = int(y[m].sum())
    return out


# ---------------------------------------------------------------- the job ----------------------
def run(conf: Conf) -> dict:
    import torch
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from gaialake.accreted.evaluation import threshold_for_purity
    from gaialake.io.delta import read_table, write_table
    from gaialake.io.feeding import task_device
    from gaialake.io import tracking
    from gaialake.models.accreted_net import build_accreted_model, model_config
    from gaialake.io.spark import get_spark

    ac = conf.get("accreted")
    torch.set_num_threads(int(ac.get("torch_threads", 1)))
    t0 = time.perf_counter()
    spark = get_spark(conf)
    train_src = galaxy_source(spark, conf, str(ac["train_galaxy"]))
    eval_src = galaxy_source(spark, conf, str(ac["eval_galaxy"]))
    device = task_device()
    config = model_config(hidden=ac["net"]["hidden"], dropout=float(ac["net"].get("dropout", 0.0)),
                          variants=ac["variants"], cuts=ac["cuts"])
    cut_kms = float(ac["baseline_cut_kms"])
    with tracking.job_run(conf, "accreted", train_galaxy=str(ac["train_galaxy"]),
                          eval_galaxy=str(ac["eval_galaxy"])) as mlrun:
        run_id = mlrun.info.run_id
        torch.manual_seed(conf.seed_for("accreted", "init") % (2**31))
        base = build_accreted_model(config)
        feats, names = feature_rows(read_table(spark, train_src, "gaia_source"), config)
        truth = read_table(spark, train_src, "truth_origin").select(
            "source_id", (F.col("origin") == "accreted").cast("double").alias("label"))
        rows = (feats.join(truth, "source_id")
                .withColumn("split", _split(conf.seed_for("accreted", "split") % (2**31),
                                            float(ac["train"]["val_fraction"])))
                .persist(StorageLevel.MEMORY_AND_DISK))
        train_info = train_streaming(conf, rows, names, base, device)
        rows.unpersist()

        same_as_train = conf.path("paths.warehouse") == train_src.path("paths.warehouse")
        model_a = transfer_streaming(conf, spark, train_src, base, device)
        model_b = transfer_streaming(conf, spark, eval_src, base, device)
        model_main = model_a if same_as_train else transfer_streaming(conf, spark, conf, base, device)

        with stage(log, "evaluate on A (held out) and B") as st:
            eval_a = evaluate(conf, spark, train_src, model_a, split="val")
            eval_b = evaluate(conf, spark, eval_src, model_b)
            st.count = len(eval_a) + len(eval_b)
        metrics = {**_metrics(eval_a, cut_kms, "A"), **_metrics(eval_b, cut_kms, "B")}
        pb, yb = eval_b["p_accreted"].to_numpy(float), eval_b["accreted"].to_numpy(bool)
        chosen = threshold_for_purity(pb, yb, float(ac["target_purity"]))
        metrics.update({"threshold": chosen["threshold"], "purity_B_at_threshold": chosen["purity"],
                        "completeness_B_at_threshold": chosen["completeness"],
                        "target_purity": float(ac["target_purity"])})
        for v, info in train_info.items():
            metrics.update({f"{k}_{v}": val for k, val in info.items()})
        threshold = chosen["threshold"] if np.isfinite(chosen["threshold"]) else 1.0
        if not np.isfinite(chosen["threshold"]):
            log.warning("no threshold reaches purity %.2f on %s: the catalog selects nothing",
                        ac["target_purity"], ac["eval_galaxy"])

        from gaialake.io.tracking import state_to_bytes

        state = state_to_bytes(model_main.state_dict())
        version = tracking.log_torch_model(
            "accreted", BUILDER, {**config, "threshold": threshold}, state,
            registered_name=REGISTERED_NAME,
            metadata={"threshold": threshold, "target_purity": float(ac["target_purity"])})
        model_version = str(version.version)

        with stage(log, "score gaia_source -> accreted_catalog") as st:
            scored = (score_catalog(read_table(spark, conf, "gaia_source"), state, config,
                                    extra=True)
                      .persist(StorageLevel.MEMORY_AND_DISK))
            catalog = scored.select(
                "source_id", "p_accreted", "variant", "unscored_reason",
                F.coalesce(F.col("p_accreted") >= F.lit(float(threshold)),
                           F.lit(False)).alias("is_accreted"),
                F.lit(model_version).alias("model_version"), F.lit(run_id).alias("run_id"))
            write_table(catalog, conf, "accreted_catalog")
            counts = {r["variant"]: (int(r["n"]), int(r["sel"] or 0)) for r in
                      read_table(spark, conf, "accreted_catalog").groupBy("variant").agg(
                          F.count("*").alias("n"),
                          F.sum(F.col("is_accreted").cast("int")).alias("sel")).collect()}
            st.count = sum(n for n, _ in counts.values())
        metrics.update({"catalog_rows": st.count,
                        "catalog_scored": sum(n for k, (n, _) in counts.items() if k),
                        "catalog_accreted": sum(s for _, s in counts.values())})

        figures = _figures(conf, spark, scored, eval_b, threshold, cut_kms)
        scored.unpersist()
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                            if isinstance(v, (int, float)) and np.isfinite(v)})
        for fig in figures:
            mlflow.log_artifact(str(fig), "figures")
    summary = {"run_id": run_id, "model_version": model_version,
               "seconds": round(time.perf_counter() - t0, 1),
               **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()
                  if not k.startswith(("platt", "pos_weight", "final_loss"))}}
    return summary


def _figures(conf: Conf, spark, scored, eval_b, threshold: float, cut_kms: float) -> list:
    """The velocity-space figure of the main catalog's 6D stars and the purity/completeness
    figure on B."""
    from pyspark.sql import functions as F

    from gaialake.accreted.evaluation import (cut_metrics, plot_purity_completeness,
                                        plot_velocity_space)
    from gaialake.io.delta import read_table

    out_dir = Path(conf.report_path("accreted.figures_dir"))
    six = scored.where(F.col("variant") == "6d")
    if _has_tables(spark, conf, "truth_origin"):
        six = six.join(read_table(spark, conf, "truth_origin").select(
            "source_id", (F.col("origin") == "accreted").alias("accreted"), "component"),
            "source_id", "left")
    n = six.count()
    cap = int(conf.get("accreted.plot_max_rows"))
    if n > cap:
        six = six.sample(fraction=cap / n, seed=conf.seed_for("accreted", "plot") % (2**31))
    pdf = six.select("v_r", "v_phi", "p_accreted",
                     *(["accreted", "component"] if "accreted" in six.columns else [])).toPandas()
    figures = []
    if len(pdf):
        truth = pdf["accreted"].fillna(False).to_numpy(bool) if "accreted" in pdf else None
        figures.append(plot_velocity_space(
            pdf["v_r"].to_numpy(float), pdf["v_phi"].to_numpy(float),
            pdf["p_accreted"].to_numpy(float) >= threshold, out_dir / "velocity_space.png",
            truth=truth, components=pdf["component"].to_numpy(object) if truth is not None
            else None, title=f"main catalog, stars with radial velocity: p_accreted >= "
                             f"{threshold:.3f} (galaxy {conf.get('sky.galaxy')})"))
    y = eval_b["accreted"].to_numpy(bool)
    base = cut_metrics(eval_b["v_toomre_kms"].to_numpy(float) > cut_kms, y)
    sel = cut_metrics(eval_b["p_accreted"].to_numpy(float) >= threshold, y)
    figures.append(plot_purity_completeness(
        {"classifier": (eval_b["p_accreted"].to_numpy(float), y),
         "|v - v_LSR|": (np.nan_to_num(eval_b["v_toomre_kms"].to_numpy(float)), y)},
        out_dir / "purity_completeness_B.png",
        points={f"Toomre cut {cut_kms:.0f} km/s": (base["completeness"], base["purity"]),
                "catalog threshold": (sel["completeness"], sel["purity"])},
        title=f"galaxy {conf.get('accreted.eval_galaxy')} (held-out accretion history)"))
    return figures


if __name__ == "__main__":
    sys.exit(job_main("accreted"))

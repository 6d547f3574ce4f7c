"""``gaialake find_streams``: anomaly scores -> ``stream_candidates`` and ``stream_members``.

Via Machinae's line finding (:mod:`gaialake.streams.linefind`) runs on executors, one task per
(patch, pm_axis, signal region, method) group of ``anomaly_scores`` joined to the fiducial
stars of ``patch_stars`` (``applyInPandas``; adaptive coalescing is off for the stage so groups
spread over executors). Only the protoclusters (a few rows per group) come back to the driver,
which merges them into candidates across signal regions and patches
(:mod:`gaialake.streams.candidates`), sets the false-positive threshold from a stream-free run's
candidates (``find_streams.null_candidates``: the ``stream_candidates`` table of a run with
``sky.streams=off``; its most significant candidate, at least
``find_streams.min_candidate_significance``), labels candidates that follow a known track, and
on a synthetic sky measures purity and completeness against ``truth_streams``
(:mod:`gaialake.streams.recovery`). Both tables are rewritten whole; figures and ``summary.json``
(false-positive summary per method, recovery per injected stream) go to
``find_streams.plots_dir`` and, with MLflow, to the job's run.

The false-positive rate needs the same search on the stream-free sky: ``gaialake null_sky``
(a stage of ``gaialake pipeline``, before this one) runs it in its own paths.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from gaialake.streams.candidates import (CANDIDATE_COLUMNS, MEMBER_COLUMNS, MergeParams,
                                 false_positive_summary, merge_protoclusters)
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists, write_table
from gaialake.streams.linefind import LineFindParams, protocluster_spark_schema, protoclusters_frame
from gaialake.log import get_logger, stage
from gaialake.streams.nullsky import null_candidates_path
from gaialake.streams.patch_grid import from_patch_frame, patch_centers, to_patch_frame
from gaialake.io.spark import get_spark

__all__ = ["run", "find_protoclusters_spark", "CANDIDATES_SCHEMA", "MEMBERS_SCHEMA"]

log = get_logger("find_streams")

CANDIDATES_SCHEMA = ("candidate_id string, method string, patch_ids array<long>, "
                     "lead_patch_id long, theta double, rho double, pm_phi double, "
                     "pm_lam double, pole_ra double, pole_dec double, ra double, dec double, "
                     "length_deg double, pmra double, pmdec double, significance double, "
                     "n_protoclusters int, n_members int, known_match string, "
                     "above_threshold boolean, threshold double, run_id string")
MEMBERS_SCHEMA = ("candidate_id string, source_id long, score double, n_detections int, "
                  "run_id string")
GROUP_KEYS = ["patch_id", "pm_axis", "sr_lo", "sr_hi", "method"]


def find_protoclusters_spark(scores, stars, params: LineFindParams):
    """Protoclusters of every (patch, axis, signal region, method) group, as a Spark DataFrame.

    ``scores``: anomaly_scores rows; ``stars``: patch_stars rows (fiducial ones are used).
    """
    from pyspark.sql import functions as F

    fid = (stars.where(F.col("fiducial"))
           .select("patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam"))
    joined = (scores.select(*GROUP_KEYS, "source_id", "score")
              .join(fid, ["patch_id", "source_id"]))

    def search(pdf: pd.DataFrame) -> pd.DataFrame:
        return protoclusters_frame(pdf, params)

    return (joined.repartition(*GROUP_KEYS)
            .groupBy(*GROUP_KEYS).applyInPandas(search, protocluster_spark_schema()))


def _null_significance(spark, conf: Conf) -> pd.DataFrame | None:
    """(method, significance) of the stream-free run's candidates; None when there is none."""
    path = null_candidates_path(conf)
    if path is None:
        return None
    if not table_exists(spark, path):
        log.warning("no stream-free candidates at %s (run gaialake null_sky): the threshold is "
                    "the floor find_streams.min_candidate_significance alone", path)
        return None
    return spark.read.format("delta").load(path).select("method", "significance").toPandas()


def _member_stars(spark, conf: Conf, stars, members: pd.DataFrame,
                  candidates: pd.DataFrame) -> pd.DataFrame:
    """Members with ra, dec, pmra, pmdec, g, bp_rp and coordinates in their lead patch frame."""
    from pyspark.sql import functions as F

    if members.empty:
        return pd.DataFrame(columns=["candidate_id", "source_id", "ra", "dec"])
    ids = spark.createDataFrame(pd.DataFrame({"source_id": members["source_id"].unique()}))
    rows = (stars.join(F.broadcast(ids), "source_id")
            .select("source_id", "patch_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp")
            .dropDuplicates(["source_id"]).toPandas())
    centers = patch_centers(int(conf.get("patches.grid_order")), -90.0).set_index("patch_id")
    ra, dec, pmra, pmdec = from_patch_frame(rows["phi"], rows["lam"], rows["pm_phi"],
                                            rows["pm_lam"],
                                            centers.loc[rows["patch_id"], "ra"].to_numpy(),
                                            centers.loc[rows["patch_id"], "dec"].to_numpy())
    rows = rows.assign(ra=ra, dec=dec, pmra=pmra, pmdec=pmdec).drop(
        columns=["patch_id", "phi", "lam", "pm_phi", "pm_lam"])
    out = members.merge(rows, on="source_id", how="left").merge(
        candidates[["candidate_id", "lead_patch_id"]], on="candidate_id")
    c = centers.loc[out["lead_patch_id"]]
    phi, lam, pm_phi, pm_lam = to_patch_frame(out["ra"], out["dec"], out["pmra"], out["pmdec"],
                                              c["ra"].to_numpy(), c["dec"].to_numpy())
    return out.assign(phi=phi, lam=lam, pm_phi=pm_phi, pm_lam=pm_lam)


def _tracks(spark, conf: Conf):
    from gaialake.streams.recovery import galstreams_tracks, truth_tracks

    source = str(conf.get("find_streams.known_tracks.source", "auto"))
    if source == "none":
        return None, "none"
    if source in ("auto", "galstreams"):
        tracks = galstreams_tracks()
        if tracks is not None:
            return tracks, "galstreams"
        if source == "galstreams":
            raise ImportError("find_streams.known_tracks.source=galstreams but galstreams is "
                              "not installed (pip install galstreams==1.2.1)")
    if not table_exists(spark, conf.table_path("truth_streams")):
        log.info("known tracks: no galstreams and no truth_streams table: no labels")
        return None, "none"
    truth = read_table(spark, conf, "truth_streams").select("source_id", "stream")
    gaia = read_table(spark, conf, "gaia_source").select("source_id", "ra", "dec", "pmra",
                                                         "pmdec")
    stars = gaia.join(truth, "source_id").toPandas()
    return truth_tracks(stars, seed=conf.seed_for("find_streams", "tracks") % 2**32), "truth"


def _recovery(spark, conf: Conf, stars, members: pd.DataFrame):
    from pyspark.sql import functions as F

    from gaialake.streams.recovery import member_recovery

    if not table_exists(spark, conf.table_path("truth_streams")):
        return None, None
    truth_df = read_table(spark, conf, "truth_streams").select("source_id", "stream")
    truth = truth_df.toPandas()
    searchable = (stars.where(F.col("fiducial")).select("source_id")
                  .join(truth_df.select("source_id"), "source_id").distinct().toPandas())
    return member_recovery(members, truth, searchable["source_id"].to_numpy(),
                           float(conf.get("find_streams.recovery.min_purity")),
                           int(conf.get("find_streams.recovery.min_true")))


def _plots(conf: Conf, spark, stars, candidates: pd.DataFrame, member_stars: pd.DataFrame,
           threshold: float) -> list[Path]:
    from pyspark.sql import functions as F

    from gaialake.streams.plots import plot_candidate, plot_candidate_map

    out_dir = Path(conf.report_path("find_streams.plots_dir"))
    paths = [plot_candidate_map(candidates, out_dir / "candidates_sky.png", threshold,
                                member_stars)]
    shown = candidates.head(int(conf.get("find_streams.max_plots")))
    if shown.empty:
        return paths
    leads = sorted({int(p) for p in shown["lead_patch_id"]})
    patches = stars.where(F.col("patch_id").isin(leads))
    counts = {int(r[0]): int(r[1]) for r in patches.groupBy("patch_id").count().collect()}
    frac = min(1.0, int(conf.get("find_streams.field_sample")) / max(1, max(counts.values(),
                                                                             default=1)))
    seed = conf.seed_for("find_streams", "plot") % 2**31
    field = (patches.where(F.rand(seed) < frac)
             .select("patch_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp").toPandas())
    for cand in shown.itertuples(index=False):
        mine = member_stars[member_stars["candidate_id"] == cand.candidate_id]
        paths.append(plot_candidate(cand._asdict(), mine, out_dir / f"{cand.candidate_id}.png",
                                    field[field["patch_id"] == cand.lead_patch_id]))
    return paths


def _mlflow_log(metrics: dict, artifacts: list[Path], tables: dict[str, pd.DataFrame]) -> None:
    try:
        import mlflow
    except ImportError:
        return
    if mlflow.active_run() is None:
        return
    mlflow.log_metrics({k: float(v) for k, v in metrics.items()
                        if isinstance(v, (int, float)) and np.isfinite(v)})
    for path in artifacts:
        mlflow.log_artifact(str(path), artifact_path="find_streams")
    for name, frame in tables.items():
        if frame is not None:
            mlflow.log_text(frame.to_csv(index=False), f"find_streams/{name}.csv")


def run(conf: Conf) -> dict:
    from pyspark.sql import functions as F

    from gaialake.jobs.patches import job_run_id
    from gaialake.streams.recovery import match_known_tracks

    spark = get_spark(conf)
    params = LineFindParams.from_conf(conf)
    merge = MergeParams.from_conf(conf)
    scores = read_table(spark, conf, "anomaly_scores")
    stars = read_table(spark, conf, "patch_stars")
    for name, frame, cols in (("anomaly_scores", scores, GROUP_KEYS + ["source_id", "score"]),
                              ("patch_stars", stars, ["patch_id", "source_id", "phi", "lam",
                                                      "pm_phi", "pm_lam", "g", "bp_rp",
                                                      "fiducial"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise KeyError(f"{name} at {conf.table_path(name)} lacks columns {missing}")
    methods = list(conf.get("find_streams.methods", []) or [])
    if methods:
        scores = scores.where(F.col("method").isin(methods))
    floor = float(conf.get("find_streams.min_candidate_significance"))

    with job_run_id(conf, "find_streams") as run_id:
        coalesce = spark.conf.get("spark.sql.adaptive.coalescePartitions.enabled", "true")
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
        try:
            with stage(log, "line finding per (patch, signal region)") as st:
                pcs = find_protoclusters_spark(scores, stars, params).toPandas()
                st.count = len(pcs)
        finally:
            spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", coalesce)
        ids = pcs["patch_id"].unique() if len(pcs) else []
        centers = patch_centers(int(conf.get("patches.grid_order")), -90.0,
                                [int(i) for i in ids] or None)
        with stage(log, "merge protoclusters into candidates") as st:
            candidates, members = merge_protoclusters(pcs, centers, merge)
            st.count = len(candidates)

        null = _null_significance(spark, conf)
        fp: dict[str, dict] = {}
        candidates["threshold"] = floor
        for method in sorted(set(candidates["method"])) if len(candidates) else []:
            mine = candidates["method"] == method
            null_sig = (null.loc[null["method"] == method, "significance"].to_numpy()
                        if null is not None else np.array([]))
            summary = false_positive_summary(candidates.loc[mine, "significance"].to_numpy(),
                                             null_sig, floor)
            if null is None:
                summary.update({k: float("nan") for k in summary
                                if k.startswith(("n_null", "fp_fraction"))})
            fp[method] = summary
            candidates.loc[mine, "threshold"] = summary["threshold"]
        candidates["above_threshold"] = candidates["significance"] > candidates["threshold"]

        member_stars = _member_stars(spark, conf, stars, members, candidates)
        tracks, track_source = _tracks(spark, conf)
        if tracks and len(candidates):
            kt = conf.get("find_streams.known_tracks")
            labels = match_known_tracks(member_stars, candidates, tracks,
                                        float(kt["tol_deg"]), float(kt["min_frac"]),
                                        float(kt["pm_tol_masyr"]))
            candidates["known_match"] = candidates["candidate_id"].map(labels)
        per_cand, per_stream = _recovery(spark, conf, stars, members)
        if per_cand is not None and len(candidates):
            above = candidates.loc[candidates["above_threshold"], "candidate_id"]
            matched = per_cand.set_index("candidate_id").loc[above, "matched_stream"]
            for method in fp:
                mine = candidates.loc[candidates["above_threshold"]
                                      & (candidates["method"] == method), "candidate_id"]
                fp[method]["fp_fraction_truth"] = (
                    float(per_cand.set_index("candidate_id").loc[mine, "matched_stream"]
                          .isna().mean()) if len(mine) else float("nan"))
            log.info("truth: %d of %d candidates above threshold match an injected stream",
                     int(matched.notna().sum()), len(above))

        with stage(log, "write stream_candidates, stream_members") as st:
            cand_out = candidates.assign(run_id=run_id)[CANDIDATE_COLUMNS + ["threshold",
                                                                             "run_id"]]
            cand_out["known_match"] = cand_out["known_match"].astype(object).where(
                cand_out["known_match"].notna(), None)
            mem_out = members.assign(run_id=run_id)[MEMBER_COLUMNS + ["run_id"]]
            write_table(spark.createDataFrame(cand_out, CANDIDATES_SCHEMA), conf,
                        "stream_candidates", mode="overwrite")
            write_table(spark.createDataFrame(mem_out, MEMBERS_SCHEMA), conf, "stream_members",
                        mode="overwrite")
            st.count = len(cand_out) + len(mem_out)

        threshold = float(min((s["threshold"] for s in fp.values()), default=floor))
        with stage(log, "figures"):
            figures = _plots(conf, spark, stars, candidates, member_stars, threshold)
        summary = {"run_id": run_id, "protoclusters": int(len(pcs)),
                   "candidates": int(len(candidates)),
                   "members": int(len(members)), "known_tracks": track_source,
                   "false_positive": fp}
        if per_stream is not None:
            summary["recovery"] = per_stream.to_dict(orient="records")
        out_dir = Path(conf.report_path("find_streams.plots_dir"))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        metrics = {"protoclusters": len(pcs), "candidates": len(candidates)}
        for method, s in fp.items():
            metrics.update({f"{method}_{k}": v for k, v in s.items()})
        if per_stream is not None:
            for row in per_stream.itertuples(index=False):
                metrics.update({f"{row.stream}_purity": row.purity,
                                f"{row.stream}_completeness": row.completeness})
        _mlflow_log(metrics, figures + [out_dir / "summary.json"],
                    {"recovery_streams": per_stream, "recovery_candidates": per_cand})
    return summary


if __name__ == "__main__":
    sys.exit(job_main("find_streams"))

"""``gaialake find_streams``: anomaly scores -> ``stream_candidates`` and ``stream_members``.

Via Machinae's line finding (:mod:`gaialake.streams.linefind`) runs on executors, one task per
(patch, pm_axis, signal region, method, retraining) group of ``anomaly_scores`` joined to the
fiducial stars of ``patch_stars`` (:func:`gaialake.streams.linefind_spark.find_protoclusters_spark`;
adaptive coalescing is off for the stage so groups spread over executors). Only the
protoclusters (a few rows per group) come back to the driver, which merges retraining 0's into
candidates across signal regions and patches (:mod:`gaialake.streams.candidates`; with
``find_streams.union``, the listed methods' protoclusters are also merged together as method
``union``), counts in
how many of the ``streams.retrainings`` retrainings each reappears (``n_retrainings``; it counts
only with at least ``find_streams.consistency.min_retrainings``, on both skies), sets the
false-positive threshold from stream-free runs' candidates (``find_streams.null_candidates``:
the ``stream_candidates`` tables of the ``null_sky.realizations`` runs with ``sky.streams=off``;
the largest of their consistent maxima, at least ``find_streams.min_candidate_significance``;
the false-positive rate, leave one realization out, with its Clopper-Pearson interval:
:func:`gaialake.streams.candidates.false_positive_summary`), labels candidates that
follow a known track, and on a synthetic sky measures purity and completeness against
``truth_streams`` (:mod:`gaialake.streams.recovery`). Both tables are rewritten whole; figures
and ``summary.json`` (false-positive summary per method, recovery per injected stream) go to
``find_streams.plots_dir`` and, with MLflow, to the job's run.

The false-positive rate needs the same search on the stream-free sky: ``gaialake null_sky``
(a stage of ``gaialake pipeline``, before this one) runs it in its own paths.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from gaialake import tables
from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io import tracking
from gaialake.io.delta import read_table, refuse_empty, write_table
from gaialake.io.spark import get_spark
from gaialake.log import get_logger, stage
from gaialake.streams.candidates import (CANDIDATE_COLUMNS, MEMBER_COLUMNS, MergeSettings,
                                         apply_thresholds, merge_protoclusters,
                                         retraining_settings, union_methods,
                                         union_protoclusters)
from gaialake.streams.linefind import LineFindSettings
from gaialake.streams.linefind_spark import (GROUP_KEYS, SCORE_COLUMNS, STAR_COLUMNS,
                                             find_protoclusters_spark, known_tracks,
                                             member_stars, null_significance, plot_candidates,
                                             require_columns, score_retrainings, truth_recovery)
from gaialake.streams.patch_grid import patch_centers
from gaialake.streams.recovery import match_known_tracks, truth_false_positives
from gaialake.streams.search_spark import adaptive_coalescing

__all__ = ["run"]

log = get_logger("find_streams")


def run(conf: Conf) -> dict:
    """Find stream candidates in ``anomaly_scores``; write the candidates and their members."""
    from pyspark.sql import functions as F

    spark = get_spark(conf)
    params = LineFindSettings.from_conf(conf)
    merge = MergeSettings.from_conf(conf)
    retrainings, min_retrainings = retraining_settings(conf)
    scores = score_retrainings(read_table(spark, conf, tables.ANOMALY_SCORES), retrainings, conf)
    stars = read_table(spark, conf, tables.PATCH_STARS)
    require_columns(scores, SCORE_COLUMNS, tables.ANOMALY_SCORES, conf)
    require_columns(stars, STAR_COLUMNS, tables.PATCH_STARS, conf)
    if scores.isEmpty():
        refuse_empty(conf, tables.STREAM_CANDIDATES, "find_streams: anomaly_scores is empty")
    methods = list(conf.get("find_streams.methods", []) or [])
    if methods:
        scores = scores.where(F.col("method").isin(methods))
    union = conf.get("find_streams.union", []) or []
    if union:
        union = union_methods(union, [r["method"] for r in
                                      scores.select("method").distinct().collect()])
    floor = float(conf.get("find_streams.min_candidate_significance"))

    with tracking.job_run(conf, "find_streams") as run:
        run_id = run.info.run_id
        with adaptive_coalescing(spark, False), \
                stage(log, "line finding per (patch, signal region)") as st:
            protoclusters = (find_protoclusters_spark(scores, stars, params).toPandas()
                             .sort_values(GROUP_KEYS + ["cluster", "theta_deg"],
                                          ignore_index=True))
            st.count = n_found = len(protoclusters)
            protoclusters = union_protoclusters(protoclusters, union)
        ids = protoclusters["patch_id"].unique() if len(protoclusters) else []
        centers = patch_centers(int(conf.get("patches.grid_order")), -90.0,
                                [int(i) for i in ids] or None)
        with stage(log, "merge protoclusters into candidates") as st:
            candidates, members = merge_protoclusters(protoclusters, centers, merge)
            st.count = len(candidates)
        null, n_null_skies = null_significance(spark, conf, min_retrainings)
        fp = apply_thresholds(candidates, null, floor, n_null_skies, min_retrainings)
        for method, s in fp.items():
            log.info("%s: threshold %.2f (max of %s stream-free maxima [%s]); false-positive "
                     "rate %s of %s realizations, %.0f %% interval [%.2f, %.2f]; found in < %d "
                     "of %d retrainings: %s candidates, %s stream-free ones dropped", method,
                     s["threshold"], s["n_realizations"], s["null_maxima"],
                     s["n_fp_realizations"], s["n_realizations"], 95, s["fp_rate_lo"],
                     s["fp_rate_hi"], min_retrainings, retrainings, s["n_inconsistent"],
                     s["n_null_inconsistent"])

        positions = member_stars(spark, conf, stars, members, candidates)
        tracks, track_source = known_tracks(spark, conf)
        if tracks and len(candidates):
            known = conf.get("find_streams.known_tracks")
            labels = match_known_tracks(positions, candidates, tracks, float(known["tol_deg"]),
                                        float(known["min_frac"]), float(known["pm_tol_masyr"]))
            candidates["known_match"] = candidates["candidate_id"].map(labels)
        per_cand, per_stream = truth_recovery(spark, conf, stars, members)
        if per_cand is not None and len(candidates):
            fractions, n_matched, n_above = truth_false_positives(candidates, per_cand)
            for method, fraction in fractions.items():
                fp[method]["fp_fraction_truth"] = fraction
            log.info("truth: %d of %d candidates above threshold match an injected stream",
                     n_matched, n_above)

        with stage(log, "write stream_candidates, stream_members") as st:
            cand_out = candidates.assign(run_id=run_id)[CANDIDATE_COLUMNS + ["threshold",
                                                                             "run_id"]]
            cand_out["known_match"] = cand_out["known_match"].astype(object).where(
                cand_out["known_match"].notna(), None)
            mem_out = members.assign(run_id=run_id)[MEMBER_COLUMNS + ["run_id"]]
            write_table(spark.createDataFrame(cand_out, tables.STREAM_CANDIDATES.schema), conf,
                        tables.STREAM_CANDIDATES, mode="overwrite")
            write_table(spark.createDataFrame(mem_out, tables.STREAM_MEMBERS.schema), conf,
                        tables.STREAM_MEMBERS, mode="overwrite")
            st.count = len(cand_out) + len(mem_out)

        threshold = float(min((s["threshold"] for s in fp.values()), default=floor))
        with stage(log, "figures"):
            figures = plot_candidates(conf, stars, candidates, positions, threshold)
        summary = {"run_id": run_id, "protoclusters": int(n_found),
                   "candidates": int(len(candidates)), "members": int(len(members)),
                   "known_tracks": track_source, "false_positive": fp, "retrainings": retrainings}
        if per_stream is not None:
            summary["recovery"] = per_stream.to_dict(orient="records")
        out_dir = Path(conf.report_path("find_streams.plots_dir"))
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        metrics = {"protoclusters": n_found, "candidates": len(candidates)}
        for method, s in fp.items():
            metrics.update({f"{method}_{k}": v for k, v in s.items()})
        for row in per_stream.itertuples(index=False) if per_stream is not None else []:
            metrics.update({f"{row.stream}_purity": row.purity,
                            f"{row.stream}_completeness": row.completeness})
        tracking.log_metrics(metrics)
        tracking.log_figures(figures + [out_dir / "summary.json"], "find_streams")
        for name, frame in (("recovery_streams", per_stream), ("recovery_candidates", per_cand)):
            if frame is not None:
                tracking.log_text(frame.to_csv(index=False), f"find_streams/{name}.csv")
    return summary


if __name__ == "__main__":
    sys.exit(job_main("find_streams"))

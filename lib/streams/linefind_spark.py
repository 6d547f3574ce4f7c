"""Line finding on Spark and the table reads around it: thin adapters of ``gaialake find_streams``.

- :func:`find_protoclusters_spark`: Via Machinae's line finding
  (:func:`gaialake.streams.linefind.protoclusters_frame`) on executors, one task per (patch,
  pm axis, signal region, method) group of ``anomaly_scores`` joined to the fiducial stars of
  ``patch_stars``; only the protoclusters (a few rows per group) come back;
- :func:`score_retrainings`: ``anomaly_scores`` checked to hold the retrainings of the conf;
- :func:`null_significance`: the stream-free runs' candidates
  (:func:`gaialake.streams.nullsky.null_candidates_paths`);
- :func:`member_stars`: candidate members with ICRS positions and proper motions and
  coordinates in their lead patch frame;
- :func:`known_tracks`: the tracks candidates are labelled with (galstreams, or the injected
  streams of ``truth_streams``);
- :func:`truth_recovery`: purity and completeness against ``truth_streams``;
- :func:`plot_candidates`: the full-sky map and one figure per leading candidate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from gaialake import tables
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists
from gaialake.log import get_logger
from gaialake.streams.linefind import (GROUP_KEYS, LineFindSettings, protocluster_spark_schema,
                                       protoclusters_frame)
from gaialake.streams.nullsky import null_candidates_paths
from gaialake.streams.patch_grid import from_patch_frame, patch_centers, to_patch_frame
from gaialake.streams.recovery import Track

__all__ = ["GROUP_KEYS", "SCORE_COLUMNS", "STAR_COLUMNS", "require_columns",
           "score_retrainings", "find_protoclusters_spark", "null_significance", "member_stars",
           "known_tracks", "truth_recovery", "plot_candidates"]

log = get_logger("find_streams")

#: The ``anomaly_scores`` and ``patch_stars`` columns line finding reads.
SCORE_COLUMNS = GROUP_KEYS + ["source_id", "score"]
STAR_COLUMNS = ["patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam", "g", "bp_rp",
                "fiducial"]


def require_columns(frame, columns: Sequence[str], table: tables.TableSpec, conf: Conf) -> None:
    """Raise a KeyError naming ``table``'s path when ``frame`` lacks any of ``columns``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{table.name} at {conf.table_path(table.name)} lacks columns {missing}")


def score_retrainings(scores, retrainings: int, conf: Conf):
    """``scores`` (anomaly_scores rows), with ``retraining`` 0 when the table predates the
    column; a ValueError unless it holds retrainings 0 .. ``retrainings`` - 1 exactly (or is
    empty)."""
    from pyspark.sql import functions as F

    if "retraining" not in scores.columns:
        scores = scores.withColumn("retraining", F.lit(0).cast("int"))
    held = sorted(int(r[0]) for r in scores.select("retraining").distinct().collect())
    if held and held != list(range(retrainings)):
        raise ValueError(f"{tables.ANOMALY_SCORES.name} at "
                         f"{conf.table_path(tables.ANOMALY_SCORES.name)} holds retrainings "
                         f"{held}, but streams.retrainings is {retrainings}: re-run "
                         "gaialake anomaly with this conf")
    return scores


def find_protoclusters_spark(scores, stars, params: LineFindSettings):
    """Protoclusters of every (patch, axis, signal region, method) group, as a Spark DataFrame
    (:func:`gaialake.streams.linefind.protocluster_spark_schema`).

    ``scores``: anomaly_scores rows; ``stars``: patch_stars rows (fiducial ones are used).
    """
    from pyspark.sql import functions as F

    fid = (stars.where(F.col("fiducial"))
           .select("patch_id", "source_id", "phi", "lam", "pm_phi", "pm_lam"))
    joined = scores.select(*SCORE_COLUMNS).join(fid, ["patch_id", "source_id"])

    def search(pdf: pd.DataFrame) -> pd.DataFrame:
        return protoclusters_frame(pdf, params)

    return (joined.repartition(*GROUP_KEYS)
            .groupBy(*GROUP_KEYS).applyInPandas(search, protocluster_spark_schema()))


def null_significance(spark, conf: Conf, min_retrainings: int = 1
                      ) -> tuple[pd.DataFrame | None, int]:
    """(method, significance, n_retrainings, realization) of the stream-free runs' candidates
    (:func:`gaialake.streams.nullsky.null_candidates_paths`) and how many realizations were
    read; (None, 0) when there is none. A missing realization's table is logged and left out;
    a table without ``n_retrainings`` (written before the consistency filter) counts each
    candidate as found once, and fails when ``min_retrainings`` > 1."""
    from pyspark.sql import functions as F

    frames = []
    for path in null_candidates_paths(conf):
        if not table_exists(spark, path):
            log.warning("no stream-free candidates at %s (run gaialake null_sky): this "
                        "realization is left out of the threshold", path)
            continue
        table = spark.read.format("delta").load(path)
        if "n_retrainings" not in table.columns:
            if min_retrainings > 1:
                raise KeyError(f"stream-free candidates at {path} lack n_retrainings: re-run "
                               "gaialake null_sky (null_sky.force=true) with "
                               "streams.retrainings")
            table = table.withColumn("n_retrainings", F.lit(1))
        frames.append(table.select("method", "significance", "n_retrainings")
                      .toPandas().assign(realization=len(frames)))
    if not frames:
        log.warning("no stream-free candidates: the threshold is the floor "
                    "find_streams.min_candidate_significance alone")
        return None, 0
    return pd.concat(frames, ignore_index=True), len(frames)


def member_stars(spark, conf: Conf, stars, members: pd.DataFrame,
                 candidates: pd.DataFrame) -> pd.DataFrame:
    """Members with ra, dec (deg), pmra, pmdec (mas/yr), g, bp_rp and phi, lam, pm_phi, pm_lam
    in the frame of their candidate's lead patch; ``stars``: the patch_stars DataFrame."""
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
    lead = centers.loc[out["lead_patch_id"]]
    phi, lam, pm_phi, pm_lam = to_patch_frame(out["ra"], out["dec"], out["pmra"], out["pmdec"],
                                              lead["ra"].to_numpy(), lead["dec"].to_numpy())
    return out.assign(phi=phi, lam=lam, pm_phi=pm_phi, pm_lam=pm_lam)


def known_tracks(spark, conf: Conf) -> tuple[list[Track] | None, str]:
    """(tracks, their source) of ``find_streams.known_tracks.source``: ``galstreams``,
    ``truth`` (the injected streams' tracks; ``auto`` falls back to it without galstreams) or
    ``none``."""
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
    if not table_exists(spark, conf.table_path(tables.TRUTH_STREAMS.name)):
        log.info("known tracks: no galstreams and no truth_streams table: no labels")
        return None, "none"
    truth = read_table(spark, conf, tables.TRUTH_STREAMS).select("source_id", "stream")
    gaia = read_table(spark, conf, tables.GAIA_SOURCE).select("source_id", "ra", "dec", "pmra",
                                                              "pmdec")
    stars = gaia.join(truth, "source_id").toPandas()
    return truth_tracks(stars, seed=conf.seed_for("find_streams", "tracks") % 2**32), "truth"


def truth_recovery(spark, conf: Conf, stars, members: pd.DataFrame
                   ) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """:func:`gaialake.streams.recovery.member_recovery` of the members against
    ``truth_streams`` (completeness over the fiducial stream stars); (None, None) without it."""
    from pyspark.sql import functions as F

    from gaialake.streams.recovery import member_recovery

    if not table_exists(spark, conf.table_path(tables.TRUTH_STREAMS.name)):
        return None, None
    truth_df = read_table(spark, conf, tables.TRUTH_STREAMS).select("source_id", "stream")
    truth = truth_df.toPandas()
    searchable = (stars.where(F.col("fiducial")).select("source_id")
                  .join(truth_df.select("source_id"), "source_id").distinct().toPandas())
    return member_recovery(members, truth, searchable["source_id"].to_numpy(),
                           float(conf.get("find_streams.recovery.min_purity")),
                           int(conf.get("find_streams.recovery.min_true")))


def plot_candidates(conf: Conf, stars, candidates: pd.DataFrame, members: pd.DataFrame,
                    threshold: float) -> list[Path]:
    """The full-sky candidate map and one figure per candidate (the first
    ``find_streams.max_plots``) over a seeded sample of at most ``find_streams.field_sample``
    stars of its lead patch, in ``find_streams.plots_dir``; returns the files."""
    from pyspark.sql import functions as F

    from gaialake.streams.candidate_figures import plot_candidate, plot_candidate_map

    out_dir = Path(conf.report_path("find_streams.plots_dir"))
    paths = [plot_candidate_map(candidates, out_dir / "candidates_sky.png", threshold, members)]
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
        mine = members[members["candidate_id"] == cand.candidate_id]
        paths.append(plot_candidate(cand._asdict(), mine, out_dir / f"{cand.candidate_id}.png",
                                    field[field["patch_id"] == cand.lead_patch_id]))
    return paths

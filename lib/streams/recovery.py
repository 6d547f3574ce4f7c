"""Stream candidates against truth: member purity and completeness, and known-track labels.

- :func:`member_recovery`: on a synthetic sky, each candidate's majority truth stream and
  purity, and for each injected stream the best candidate's purity and completeness (the
  published GD-1 figures on real data: CWoLa 56 % purity / 51 % completeness, SkyCURTAINs
  75.4 % / 37.9 %). Completeness counts against the stream's *searchable* members (those in a
  patch's fiducial disc after the cuts) when they are given, else against all its members.
- :func:`match_known_tracks`: label candidates whose members lie along a known stream track
  (galstreams' compilation, read from its track files: :func:`galstreams_tracks`; or the
  injected streams' own tracks from the truth table: :func:`truth_tracks`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["member_recovery", "patch_recovery", "truth_false_positives", "Track",
           "galstreams_tracks", "truth_tracks", "match_known_tracks", "recovery_by_method",
           "above_members", "pooled_recovery", "recovery_once"]


def member_recovery(members: pd.DataFrame, truth: pd.DataFrame,
                    searchable: np.ndarray | None = None, min_purity: float = 0.5,
                    min_true: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Purity and completeness of candidate members against injected streams.

    members: candidate_id, source_id. truth: source_id, stream (one row per stream star).
    searchable: source_ids that the search could have found (e.g. fiducial stars of the
    patches); truth stars outside it are left out of the completeness denominator.
    Returns (per_candidate, per_stream):

    - per_candidate: candidate_id, n_members, matched_stream (the truth stream holding most of
      its members, None when none does), n_true, purity = n_true / n_members;
    - per_stream: stream, n_truth, best_candidate (the candidate matched to it with most of its
      stars), n_true, purity, completeness = n_true / n_truth, completeness_all (the union of
      every candidate matched to it), recovered (purity >= min_purity and n_true >= min_true).
    """
    for name, frame, cols in (("members", members, ["candidate_id", "source_id"]),
                              ("truth", truth, ["source_id", "stream"])):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise KeyError(f"member_recovery: {name} lacks columns {missing}")
    truth = truth[["source_id", "stream"]].drop_duplicates("source_id")
    if searchable is not None:
        reachable = truth[truth["source_id"].isin(np.asarray(searchable, np.int64))]
    else:
        reachable = truth
    n_truth = reachable.groupby("stream").size()
    mem = members[["candidate_id", "source_id"]].drop_duplicates().merge(truth, on="source_id",
                                                                         how="left")
    n_members = mem.groupby("candidate_id").size().rename("n_members")
    counts = (mem.dropna(subset=["stream"]).groupby(["candidate_id", "stream"]).size()
              .rename("n_true").reset_index())
    best = (counts.sort_values(["candidate_id", "n_true", "stream"], ascending=[True, False, True])
            .drop_duplicates("candidate_id"))
    per_cand = n_members.reset_index().merge(best, on="candidate_id", how="left")
    per_cand = per_cand.rename(columns={"stream": "matched_stream"})
    per_cand["n_true"] = per_cand["n_true"].fillna(0).astype(int)
    per_cand["purity"] = per_cand["n_true"] / per_cand["n_members"]
    per_cand["matched_stream"] = per_cand["matched_stream"].astype(object).where(
        per_cand["n_true"] > 0, None)

    rows = []
    for stream in sorted(truth["stream"].unique()):
        n_t = int(n_truth.get(stream, 0))
        mine = per_cand[per_cand["matched_stream"] == stream].sort_values(
            ["n_true", "purity"], ascending=False)
        if mine.empty:
            rows.append({"stream": stream, "n_truth": n_t, "best_candidate": None, "n_true": 0,
                         "purity": 0.0, "completeness": 0.0, "completeness_all": 0.0,
                         "recovered": False})
            continue
        top = mine.iloc[0]
        stars = set(truth.loc[truth["stream"] == stream, "source_id"])
        union = set(mem.loc[mem["candidate_id"].isin(mine["candidate_id"]), "source_id"]) & stars
        rows.append({"stream": stream, "n_truth": n_t, "best_candidate": top["candidate_id"],
                     "n_true": int(top["n_true"]), "purity": float(top["purity"]),
                     "completeness": float(top["n_true"] / n_t) if n_t else float("nan"),
                     "completeness_all": float(len(union) / n_t) if n_t else float("nan"),
                     "recovered": bool(top["purity"] >= min_purity and top["n_true"] >= min_true)})
    return per_cand, pd.DataFrame(rows)


def truth_false_positives(candidates: pd.DataFrame, per_candidate: pd.DataFrame
                          ) -> tuple[dict[str, float], int, int]:
    """On a synthetic sky: per method, the fraction of its candidates above threshold that
    match no injected stream (NaN without such candidates); and how many candidates above
    threshold match one, of how many.

    ``candidates``: candidate_id, method, above_threshold; ``per_candidate``: the first result
    of :func:`member_recovery`.
    """
    matched = per_candidate.set_index("candidate_id")["matched_stream"]
    above = candidates[candidates["above_threshold"]]
    fractions = {}
    for method in sorted(set(candidates["method"])):
        mine = above.loc[above["method"] == method, "candidate_id"]
        fractions[method] = (float(matched.loc[mine].isna().mean()) if len(mine)
                             else float("nan"))
    return fractions, int(matched.loc[above["candidate_id"]].notna().sum()), len(above)


@dataclass
class Track:
    """A stream track on the sky: points (ra, dec in deg) and, when known, pmra*, pmdec (mas/yr)."""

    name: str
    ra: np.ndarray
    dec: np.ndarray
    pmra: np.ndarray | None = None
    pmdec: np.ndarray | None = None


def galstreams_tracks(step_deg: float = 0.2) -> list[Track] | None:
    """The "On" tracks of the installed galstreams (1.2.1: 141 tracks), or None without it.

    Reads galstreams' master log and ECSV track files directly (building its ``MWStreams``
    object takes minutes); each track is thinned to about one point per ``step_deg``.
    """
    try:
        import galstreams
    except ImportError:
        return None
    root = Path(galstreams.__file__).resolve().parent
    from astropy.table import Table

    log = Table.read(root / "lib" / "master_log.txt", format="ascii.commented_header").to_pandas()
    tracks = []
    for row in log.itertuples(index=False):
        if int(getattr(row, "On")) != 1:
            continue
        path = root / "tracks" / f"track.{row.Imp}.{row.Name}.{row.TrackRefs}.ecsv"
        if not path.exists():
            continue
        t = pd.read_csv(path, comment="#")
        ra, dec = t["ra"].to_numpy(np.float64), t["dec"].to_numpy(np.float64)
        if len(ra) > 2:
            v = _unit(ra, dec)
            arc = np.degrees(np.arccos(np.clip(np.sum(v[1:] * v[:-1], -1), -1, 1))).sum()
            keep = np.unique(np.linspace(0, len(ra) - 1, max(2, int(arc / step_deg) + 1))
                             .round().astype(int))
        else:
            keep = np.arange(len(ra))
        pmra = t["pm_ra_cosdec"].to_numpy(np.float64)[keep] if "pm_ra_cosdec" in t else None
        pmdec = t["pm_dec"].to_numpy(np.float64)[keep] if "pm_dec" in t else None
        tracks.append(Track(str(row.TrackName), ra[keep], dec[keep], pmra, pmdec))
    return tracks


def truth_tracks(stars: pd.DataFrame, max_points: int = 2000, seed: int = 0) -> list[Track]:
    """Tracks of injected streams from their stars: stream, ra, dec (+ pmra, pmdec if present).

    Each stream's track is a random subset of at most ``max_points`` of its stars.
    """
    rng = np.random.default_rng(seed)
    out = []
    for name, g in stars.groupby("stream", sort=True):
        take = rng.permutation(len(g))[:max_points]
        g = g.iloc[np.sort(take)]
        pm = "pmra" in g and "pmdec" in g
        out.append(Track(str(name), g["ra"].to_numpy(np.float64), g["dec"].to_numpy(np.float64),
                         g["pmra"].to_numpy(np.float64) if pm else None,
                         g["pmdec"].to_numpy(np.float64) if pm else None))
    return out


def _unit(ra_deg, dec_deg) -> np.ndarray:
    ra, dec = np.radians(np.asarray(ra_deg, np.float64)), np.radians(np.asarray(dec_deg,
                                                                                np.float64))
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def match_known_tracks(member_positions: pd.DataFrame, candidates: pd.DataFrame,
                       tracks: list[Track], tol_deg: float = 1.0, min_frac: float = 0.5,
                       pm_tol_masyr: float = 2.0) -> dict[str, str | None]:
    """Label each candidate with the known track its members follow, or None.

    member_positions: candidate_id, ra, dec (deg) of its members; candidates: candidate_id,
    ra, dec (deg, centre), pmra, pmdec (mas/yr, proper-motion centre). A candidate matches a
    track when at least ``min_frac`` of its members lie within ``tol_deg`` of the track and,
    where the track has proper motions, its proper-motion centre is within ``pm_tol_masyr`` of
    the track's at the track point nearest its centre. The best-matching track wins.
    """
    from scipy.spatial import cKDTree

    chord = 2 * np.sin(np.radians(tol_deg) / 2)
    trees = [(t, cKDTree(_unit(t.ra, t.dec))) for t in tracks if len(t.ra)]
    out: dict[str, str | None] = {}
    groups = dict(tuple(member_positions.groupby("candidate_id")))
    for cand in candidates.itertuples(index=False):
        pos = groups.get(cand.candidate_id)
        out[cand.candidate_id] = None
        if pos is None or pos.empty:
            continue
        pos = pos[np.isfinite(pos["ra"].to_numpy(np.float64))
                  & np.isfinite(pos["dec"].to_numpy(np.float64))]
        if pos.empty:
            continue
        v = _unit(pos["ra"], pos["dec"])
        centre = _unit(cand.ra, cand.dec)
        best, best_frac = None, min_frac
        for track, tree in trees:
            dist, _ = tree.query(v, distance_upper_bound=chord)
            frac = float(np.mean(np.isfinite(dist)))
            if frac < best_frac:
                continue
            if track.pmra is not None and np.all(np.isfinite([cand.pmra, cand.pmdec])):
                _, k = tree.query(centre)
                if np.isfinite(track.pmra[k]) and np.isfinite(track.pmdec[k]):
                    dpm = np.hypot(track.pmra[k] - cand.pmra, track.pmdec[k] - cand.pmdec)
                    if dpm > pm_tol_masyr:
                        continue
            best, best_frac = track.name, frac
        out[cand.candidate_id] = best
    return out


def patch_recovery(members: pd.DataFrame, truth: pd.DataFrame, patch_stars: pd.DataFrame,
                   stream: str, min_purity: float = 0.5, min_true: int = 5) -> pd.DataFrame:
    """Purity and completeness of ``stream`` in each patch's fiducial disc.

    members: candidate_id, source_id (e.g. the members of candidates above threshold); truth:
    source_id, stream; patch_stars: patch_id, source_id, fiducial. Per patch, the members and
    the truth are cut to the patch's fiducial stars and :func:`member_recovery` is run.
    Returns patch_id, n_truth (the stream's fiducial stars there), n_true, purity, completeness.
    """
    rows = []
    fid = patch_stars.loc[patch_stars["fiducial"].astype(bool), ["patch_id", "source_id"]]
    for patch_id, ids in fid.groupby("patch_id")["source_id"]:
        inside = ids.to_numpy(np.int64)
        mine = members[members["source_id"].isin(inside)]
        _, per_stream = member_recovery(mine, truth[truth["stream"] == stream], inside,
                                        min_purity, min_true)
        row = (per_stream.iloc[0] if len(per_stream)
               else {"n_truth": 0, "n_true": 0, "purity": 0.0, "completeness": float("nan")})
        rows.append({"patch_id": int(patch_id), "n_truth": int(row["n_truth"]),
                     "n_true": int(row["n_true"]), "purity": float(row["purity"]),
                     "completeness": float(row["completeness"])})
    return pd.DataFrame(rows, columns=["patch_id", "n_truth", "n_true", "purity",
                                       "completeness"])


def recovery_by_method(candidates: pd.DataFrame, members: pd.DataFrame, truth: pd.DataFrame,
                       patch_stars: pd.DataFrame, stream: str, methods: Sequence[str] = ()
                       ) -> dict[str, pd.DataFrame]:
    """:func:`patch_recovery` of ``stream`` by each method's above-threshold candidates
    (candidates: candidate_id, method, above_threshold; members: candidate_id, source_id):
    method -> its per-patch rows, for the methods of ``candidates`` and ``methods`` (a method
    with no candidate above its threshold finds nothing: n_true 0 in every patch)."""
    return {method: patch_recovery(above_members(candidates, members, method), truth,
                                   patch_stars, stream)
            for method in sorted(set(candidates["method"].astype(str)) | set(methods))}


def above_members(candidates: pd.DataFrame, members: pd.DataFrame, method: str
                  ) -> pd.DataFrame:
    """The rows of ``members`` (candidate_id, ...) whose candidate is one of ``method``'s
    above its threshold (candidates: candidate_id, method, above_threshold)."""
    mine = candidates[candidates["above_threshold"].astype(bool)
                      & (candidates["method"].astype(str) == method)]
    return members[members["candidate_id"].isin(mine["candidate_id"])]


def pooled_recovery(patches: Sequence[dict]) -> tuple[float, float]:
    """(purity, completeness) of a stream pooled over patches (rows with :func:`patch_recovery`'s
    n_truth, n_true, purity): its members found / the members found (the best candidate's in
    each patch), and / its members in the fiducial discs; NaN where none was found or is there."""
    rec = [p for p in patches if p.get("n_truth")]
    n_true = sum(p["n_true"] for p in rec)
    n_found = sum(p["n_true"] / p["purity"] for p in rec if p["purity"] > 0)
    n_truth = sum(p["n_truth"] for p in rec)
    return (n_true / n_found if n_found else float("nan"),
            n_true / n_truth if n_truth else float("nan"))


def recovery_once(members: pd.DataFrame, truth: pd.DataFrame, patch_stars: pd.DataFrame,
                  stream: str) -> tuple[float, float]:
    """(purity, completeness) of ``stream`` by its best-matched candidate among ``members``
    (candidate_id, source_id), each star counted once over the union of the patches' fiducial
    discs (overlapping patches share stars, which :func:`pooled_recovery` counts in each);
    (NaN, 0) where no candidate matches it, (NaN, NaN) where none of its stars is there."""
    fiducial = patch_stars.loc[patch_stars["fiducial"].astype(bool), "source_id"].unique()
    inside = members[members["source_id"].isin(fiducial)]
    _, per_stream = member_recovery(inside, truth[truth["stream"] == stream], fiducial,
                                    min_true=1)
    if per_stream.empty or not per_stream.iloc[0]["n_truth"]:
        return float("nan"), float("nan")
    row = per_stream.iloc[0]
    found = row["best_candidate"] is not None
    return (float(row["purity"]) if found else float("nan"), float(row["completeness"]))

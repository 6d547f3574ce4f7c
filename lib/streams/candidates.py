"""Stream candidates: protoclusters merged across signal regions and neighbouring patches.

Each protocluster (:mod:`gaialake.streams.linefind`) is a line segment in its own patch frame.
To compare segments found in different patch frames, each is carried to ICRS
(:func:`gaialake.streams.patch_grid.from_patch_frame`): sample points along the segment give
its great circle (the pole: the normal of the plane the points lie closest to, by SVD) and its
midpoint; its mean proper motion is carried to ICRS at the midpoint as a 3-d tangent vector.

Two protoclusters of the same method *match* when either

- they share at least ``min_shared_frac`` of the smaller one's stars (the same stars found in
  overlapping signal regions or overlapping patches), or
- their great circles agree (pole angle <= ``theta_tol_deg``, each midpoint within
  ``rho_tol_deg`` of the other's circle), the segments come within ``max_gap_deg`` of each other,
  and their proper motions agree within ``pm_tol_masyr`` (after parallel transport of one
  tangent vector to the other's midpoint along the great circle joining them).

Candidates are the connected components of the match graph (single linkage), so a long stream
crossing several patches becomes one candidate. The candidate's **significance** combines its
protoclusters' significances ``z_i`` in quadrature, each weighted by the fraction ``f_i`` of its
stars not already in a more significant protocluster of the candidate:
``S = sqrt(sum_i f_i z_i^2)``. Independent detections (the other half of a stream seen in a
neighbouring patch) add in quadrature like independent Gaussian tests; a repeat of the same
stars (the same clump in an overlapping signal region or patch) adds nothing, so a noise clump
seen many times does not grow into a candidate (on toy stream-free skies the plain quadrature
sum let repeated clumps of 8 stars reach S ~ 10). The protoclusters are not independent tests,
so S is a ranking statistic, not a p-value; the threshold comes from the same statistic on a
stream-free sky (:func:`false_positive_summary`).

**Retraining consistency** (issue 18 item 4(a); Porto & Shih 2025 report about half the false
positives at the same acceptance). With ``streams.retrainings`` K > 1 every group was trained K
times with different seeds and line finding ran on each retraining's scores. The candidates are
those of retraining 0, merged from its protoclusters alone; each gets ``n_retrainings``, the
number of retrainings (0 included) holding a protocluster that matches one of its protoclusters
by the merging test above (:func:`match_between`: shared stars, or the same great circle,
segment neighbourhood and proper motion). The match is by geometry as well as by members
because a retraining's top-N stars differ: the same stream is found with partly other stars.
A candidate counts (:func:`consistent`) when ``n_retrainings >= min_retrainings``
(``find_streams.consistency.min_retrainings``, default K); :func:`apply_thresholds` applies
that filter to the searched sky's candidates and, before their maxima are taken, to the
stream-free skies', so the threshold and the false-positive rate are measured at the same
acceptance.

**Union of methods** (``find_streams.union``): the protoclusters of two or more score methods
are also merged together as one more method, ``union`` (:func:`union_protoclusters`), so a
stream whose members one method ranks high in one signal region and another method in another
becomes one candidate holding both sets of stars. Its significance is the same quadrature sum
(a second method's detection of the same stars adds nothing); its members' ``score`` is the
highest of the methods' scores, which are on different scales (a rank within the candidate's
protoclusters only). Its threshold comes from the stream-free skies' ``union`` candidates, as
for any method.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gaialake.conf import Conf, settings_from

__all__ = ["MergeSettings", "segment_geometry", "match_matrix", "match_between",
           "merge_protoclusters", "UNION_METHOD", "union_methods",
           "union_protoclusters", "retraining_settings", "consistent", "clopper_pearson",
           "realization_maxima", "false_positive_summary", "apply_thresholds",
           "CANDIDATE_COLUMNS", "MEMBER_COLUMNS"]

#: Columns of ``stream_candidates`` (besides run_id), in order.
CANDIDATE_COLUMNS = ["candidate_id", "method", "patch_ids", "lead_patch_id", "theta", "rho",
                     "pm_phi", "pm_lam", "pole_ra", "pole_dec", "ra", "dec", "length_deg",
                     "pmra", "pmdec", "significance", "n_protoclusters", "n_members",
                     "n_retrainings", "known_match", "above_threshold"]
#: Columns of ``stream_members`` (besides run_id).
MEMBER_COLUMNS = ["candidate_id", "source_id", "score", "n_detections"]


@dataclass(frozen=True)
class MergeSettings:
    """Merging tolerances (conf section ``find_streams.merge``; deg and mas/yr).

    theta_tol_deg: pole angle between two great circles; rho_tol_deg: distance of a segment's
    midpoint from the other's great circle; max_gap_deg: closest approach of the two segments;
    pm_tol_masyr: proper-motion difference; min_shared_frac: shared-star fraction (of the
    smaller protocluster) that matches on its own; n_samples: points per segment.
    """

    theta_tol_deg: float = 5.0
    rho_tol_deg: float = 1.0
    max_gap_deg: float = 4.0
    pm_tol_masyr: float = 1.5
    min_shared_frac: float = 0.3
    n_samples: int = 21

    @classmethod
    def from_conf(cls, conf: Conf) -> "MergeSettings":
        """The tolerances of ``find_streams.merge`` (absent keys: the defaults)."""
        return settings_from(cls, conf.get("find_streams.merge", None), "find_streams.merge")


def _unit(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def _radec(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vec = vec / np.linalg.norm(vec, axis=-1, keepdims=True)
    return (np.mod(np.degrees(np.arctan2(vec[..., 1], vec[..., 0])), 360.0),
            np.degrees(np.arcsin(np.clip(vec[..., 2], -1, 1))))


def _tangent(ra_deg: np.ndarray, dec_deg: np.ndarray, pmra: np.ndarray,
             pmdec: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    east = np.stack([-np.sin(ra), np.cos(ra), np.zeros_like(ra)], -1)
    north = np.stack([-np.sin(dec) * np.cos(ra), -np.sin(dec) * np.sin(ra), np.cos(dec)], -1)
    return east * np.asarray(pmra)[..., None] + north * np.asarray(pmdec)[..., None]


def segment_geometry(protoclusters: pd.DataFrame, centers: pd.DataFrame,
                     n_samples: int = 21) -> dict[str, np.ndarray]:
    """ICRS geometry of each protocluster's segment.

    ``protoclusters``: patch_id, theta_deg, rho_deg, t_min_deg, t_max_deg, pm_phi, pm_lam;
    ``centers``: patch_id, ra, dec (deg) of the patch centres. Returns arrays: ``points``
    (n, n_samples, 3) unit vectors, ``pole`` (n, 3) with pole z >= 0, ``mid`` (n, 3),
    ``pm_vec`` (n, 3) tangent proper motion at the midpoint (mas/yr), ``pmra``, ``pmdec``
    (mas/yr, at the midpoint), ``ra``, ``dec`` (deg, midpoint), ``pole_ra``, ``pole_dec``.
    """
    from gaialake.streams.patch_grid import from_patch_frame

    by_id = centers.set_index("patch_id")
    missing = sorted(set(protoclusters["patch_id"]) - set(by_id.index))
    if missing:
        raise KeyError(f"segment_geometry: no patch centre for patch_id {missing[:10]}")
    ra0 = by_id.loc[protoclusters["patch_id"], "ra"].to_numpy(np.float64)
    dec0 = by_id.loc[protoclusters["patch_id"], "dec"].to_numpy(np.float64)
    th = np.radians(protoclusters["theta_deg"].to_numpy(np.float64))
    rho = protoclusters["rho_deg"].to_numpy(np.float64)
    f = np.linspace(0.0, 1.0, n_samples)
    t_lo = protoclusters["t_min_deg"].to_numpy(np.float64)
    t_hi = protoclusters["t_max_deg"].to_numpy(np.float64)
    t = t_lo[:, None] + (t_hi - t_lo)[:, None] * f[None, :]          # (n, s)
    phi = rho[:, None] * np.cos(th)[:, None] - t * np.sin(th)[:, None]
    lam = rho[:, None] * np.sin(th)[:, None] + t * np.cos(th)[:, None]
    zeros = np.zeros_like(phi)
    ra, dec, _, _ = from_patch_frame(phi, lam, zeros, zeros, ra0[:, None], dec0[:, None])
    points = _unit(ra, dec)
    # pole: the direction of least variance of the sample points about the origin
    _, _, vt = np.linalg.svd(points, full_matrices=False)
    pole = vt[:, -1, :]
    pole = np.where((pole[:, 2:3] < 0), -pole, pole)
    tmid = 0.5 * (t_lo + t_hi)
    phi_m = rho * np.cos(th) - tmid * np.sin(th)
    lam_m = rho * np.sin(th) + tmid * np.cos(th)
    ra_m, dec_m, pmra, pmdec = from_patch_frame(
        phi_m, lam_m, protoclusters["pm_phi"].to_numpy(np.float64),
        protoclusters["pm_lam"].to_numpy(np.float64), ra0, dec0)
    pole_ra, pole_dec = _radec(pole)
    return {"points": points, "pole": pole, "mid": _unit(ra_m, dec_m),
            "pm_vec": _tangent(ra_m, dec_m, pmra, pmdec), "pmra": pmra, "pmdec": pmdec,
            "ra": ra_m, "dec": dec_m, "pole_ra": pole_ra, "pole_dec": pole_dec}


def _transport(vec: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Rotate tangent vectors ``vec`` at ``src`` to ``dst`` about the axis ``src x dst``."""
    axis = np.cross(src, dst)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    c = np.sum(src * dst, -1, keepdims=True)
    k = np.divide(axis, s, out=np.zeros_like(axis), where=s > 1e-12)
    # Rodrigues: v c + (k x v) s + k (k.v)(1 - c)
    return vec * c + np.cross(k, vec) * s + k * np.sum(k * vec, -1, keepdims=True) * (1 - c)


def _match_inputs(protoclusters: pd.DataFrame, geometry: dict[str, np.ndarray]) -> dict:
    """What the match test reads of each protocluster: its geometry, method and member set."""
    n = len(protoclusters)
    method = protoclusters["method"].to_numpy() if "method" in protoclusters else np.zeros(n)
    members = [set(np.asarray(m, np.int64).tolist()) for m in protoclusters["member_ids"]]
    return {**geometry, "method": method, "members": members}


def _match_row(i: int, a: dict, b: dict, j: np.ndarray, params: MergeSettings) -> np.ndarray:
    """Whether protocluster ``i`` of ``a`` matches protoclusters ``j`` of ``b`` (the test of
    the module docstring); ``a``, ``b``: :func:`_match_inputs`."""
    sin_rho = np.sin(np.radians(params.rho_tol_deg))
    cos_theta = np.cos(np.radians(params.theta_tol_deg))
    cos_gap = np.cos(np.radians(params.max_gap_deg))
    pole, mid, pts, pmv = (b[k][j] for k in ("pole", "mid", "points", "pm_vec"))
    same_method = b["method"][j] == a["method"][i]
    pole_ok = np.abs(pole @ a["pole"][i]) >= cos_theta
    rho_ok = (np.abs(mid @ a["pole"][i]) <= sin_rho) & (np.abs(np.sum(a["mid"][i] * pole, -1))
                                                      <= sin_rho)
    # closest approach of the two segments' sample points
    closest = np.einsum("sk,jtk->jst", a["points"][i], pts).reshape(len(j), -1).max(1)
    gap_ok = closest >= cos_gap
    moved = _transport(pmv, mid, np.broadcast_to(a["mid"][i], mid.shape))
    pm_ok = np.linalg.norm(moved - a["pm_vec"][i], axis=-1) <= params.pm_tol_masyr
    mine = a["members"][i]
    shared = np.array([len(mine & b["members"][k]) / max(1, min(len(mine), len(b["members"][k])))
                       for k in j])
    return same_method & ((shared >= params.min_shared_frac)
                          | (pole_ok & rho_ok & gap_ok & pm_ok))


def match_matrix(protoclusters: pd.DataFrame, geometry: dict[str, np.ndarray],
                 params: MergeSettings) -> np.ndarray:
    """Boolean (n, n) matrix: protoclusters i and j match (see the module docstring)."""
    n = len(protoclusters)
    a = _match_inputs(protoclusters, geometry)
    out = np.eye(n, dtype=bool)
    for i in range(n - 1):
        j = np.arange(i + 1, n)
        ok = _match_row(i, a, a, j, params)
        out[i, j] = ok
        out[j, i] = ok
    return out


def match_between(first: pd.DataFrame, first_geometry: dict[str, np.ndarray],
                  second: pd.DataFrame, second_geometry: dict[str, np.ndarray],
                  params: MergeSettings) -> np.ndarray:
    """Boolean (n_first, n_second) matrix: protocluster i of ``first`` matches j of ``second``
    (the test of :func:`match_matrix`, between two sets, e.g. two retrainings)."""
    a, b = _match_inputs(first, first_geometry), _match_inputs(second, second_geometry)
    j = np.arange(len(second))
    out = np.zeros((len(first), len(second)), bool)
    for i in range(len(first)):
        out[i] = _match_row(i, a, b, j, params)
    return out


def _components(adjacency: np.ndarray) -> np.ndarray:
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    _, labels = connected_components(csr_matrix(adjacency), directed=False)
    return labels


def _combined_significance(member_lists: list, significance: np.ndarray) -> float:
    """``sqrt(sum f_i z_i^2)``, f_i: fraction of i's stars new to the more significant ones."""
    seen: set[int] = set()
    total = 0.0
    for i in np.argsort(-np.asarray(significance), kind="stable"):
        ids = set(np.asarray(member_lists[i], np.int64).tolist())
        new = len(ids - seen) / max(1, len(ids))
        total += new * float(significance[i]) ** 2
        seen |= ids
    return float(np.sqrt(total))


def merge_protoclusters(protoclusters: pd.DataFrame, centers: pd.DataFrame,
                        params: MergeSettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge protoclusters into stream candidates.

    ``protoclusters``: rows of :func:`gaialake.streams.linefind.protoclusters_frame` (group keys,
    line, significance, member_ids, member_scores); ``centers``: patch_id, ra, dec (deg).
    Returns (candidates, members): candidates with :data:`CANDIDATE_COLUMNS` (``known_match``
    None and ``above_threshold`` False until set by the caller), sorted by significance, ids
    ``<method>-<rank>``; members with :data:`MEMBER_COLUMNS` (score: the star's highest score
    over the candidate's protoclusters; n_detections: in how many protoclusters it appears).

    Protoclusters of several retrainings (column ``retraining``; absent: all of retraining 0):
    the candidates are retraining 0's, merged from its protoclusters alone, and
    ``n_retrainings`` counts the retrainings (0 included) holding a protocluster that
    :func:`match_between` matches with one of the candidate's (module docstring).
    """
    empty = (pd.DataFrame(columns=CANDIDATE_COLUMNS), pd.DataFrame(columns=MEMBER_COLUMNS))
    if protoclusters.empty:
        return empty
    every = protoclusters.reset_index(drop=True)
    retraining = (every["retraining"].to_numpy(np.int64) if "retraining" in every
                  else np.zeros(len(every), np.int64))
    geo_all = segment_geometry(every, centers, params.n_samples)
    first = retraining == 0
    pcs = every[first].reset_index(drop=True)
    if pcs.empty:
        return empty
    geo = {k: v[first] for k, v in geo_all.items()}
    # per protocluster of retraining 0: does retraining k hold a match?
    found_in = [match_between(pcs, geo, every[retraining == k].reset_index(drop=True),
                              {n: v[retraining == k] for n, v in geo_all.items()},
                              params).any(1)
                for k in sorted(set(retraining.tolist()) - {0})]
    labels = _components(match_matrix(pcs, geo, params))
    cands, mems = [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        sig = pcs["significance"].to_numpy()[idx]
        lead = idx[np.argmax(sig)]
        combined = _combined_significance([pcs.at[i, "member_ids"] for i in idx], sig)
        ids = np.concatenate([np.asarray(pcs.at[i, "member_ids"], np.int64) for i in idx])
        scores = np.concatenate([np.asarray(pcs.at[i, "member_scores"], np.float64)
                                 for i in idx])
        m = (pd.DataFrame({"source_id": ids, "score": scores}).groupby("source_id")["score"]
             .agg(["max", "size"]).reset_index()
             .rename(columns={"max": "score", "size": "n_detections"}))
        pts = geo["points"][idx].reshape(-1, 3)
        centre = pts.mean(0)
        cra, cdec = _radec(centre)
        length = np.degrees(np.arccos(np.clip((pts @ pts.T).min(), -1, 1)))
        cands.append({
            "method": str(pcs.at[lead, "method"]) if "method" in pcs else "",
            "patch_ids": sorted({int(p) for p in pcs["patch_id"].to_numpy()[idx]}),
            "lead_patch_id": int(pcs.at[lead, "patch_id"]),
            "theta": float(pcs.at[lead, "theta_deg"]), "rho": float(pcs.at[lead, "rho_deg"]),
            "pm_phi": float(pcs.at[lead, "pm_phi"]), "pm_lam": float(pcs.at[lead, "pm_lam"]),
            "pole_ra": float(geo["pole_ra"][lead]), "pole_dec": float(geo["pole_dec"][lead]),
            "ra": float(cra), "dec": float(cdec), "length_deg": float(length),
            "pmra": float(geo["pmra"][lead]), "pmdec": float(geo["pmdec"][lead]),
            "significance": combined,
            "n_protoclusters": int(len(idx)), "n_members": int(len(m)),
            "n_retrainings": 1 + sum(int(hit[idx].any()) for hit in found_in),
            "known_match": None, "above_threshold": False, "_members": m,
        })
    cands.sort(key=lambda c: (c["method"], -c["significance"], c["lead_patch_id"]))
    rank: dict[str, int] = {}
    for c in cands:
        rank[c["method"]] = rank.get(c["method"], 0) + 1
        c["candidate_id"] = f"{c['method'] or 'cand'}-{rank[c['method']]:04d}"
        m = c.pop("_members")
        m.insert(0, "candidate_id", c["candidate_id"])
        mems.append(m)
    candidates = pd.DataFrame(cands)[CANDIDATE_COLUMNS]
    members = pd.concat(mems, ignore_index=True)[MEMBER_COLUMNS]
    return candidates, members


#: The method name of the candidates merged from several methods' protoclusters.
UNION_METHOD = "union"


def union_methods(methods: list[str] | None, available: list[str]) -> list[str]:
    """The methods of ``find_streams.union`` (``methods``; empty: no union), checked against
    ``available``, the methods searched: at least two of them, and not ``union`` itself."""
    methods = [str(m) for m in methods or []]
    if not methods:
        return []
    if len(set(methods)) < 2 or UNION_METHOD in methods:
        raise ValueError(f"find_streams.union: needs two or more score methods (not "
                         f"{UNION_METHOD!r}), got {methods}")
    missing = sorted(set(methods) - set(available))
    if missing:
        raise ValueError(f"find_streams.union: method(s) {missing} not among the searched "
                         f"methods {sorted(set(available))} (anomaly_scores, "
                         f"find_streams.methods)")
    return methods


def union_protoclusters(protoclusters: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """``protoclusters`` plus a copy of those of ``methods`` (:func:`union_methods`) labelled
    :data:`UNION_METHOD`, which :func:`merge_protoclusters` then merges as one method."""
    if not methods:
        return protoclusters
    copy = protoclusters[protoclusters["method"].isin(methods)].assign(method=UNION_METHOD)
    return pd.concat([protoclusters, copy], ignore_index=True)


def retraining_settings(conf: Conf) -> tuple[int, int]:
    """(K, min_retrainings): ``streams.retrainings`` and
    ``find_streams.consistency.min_retrainings`` (null: K), which must lie in 1 .. K."""
    k = int(conf.get("streams.retrainings", 1))
    value = conf.get("find_streams.consistency.min_retrainings", None)
    least = k if value is None else int(value)
    if k < 1 or not 1 <= least <= k:
        raise ValueError(f"find_streams.consistency.min_retrainings must lie in 1 .. "
                         f"streams.retrainings ({k}), got {least}")
    return k, least


def consistent(candidates: pd.DataFrame, min_retrainings: int) -> np.ndarray:
    """Boolean mask of the candidates found in at least ``min_retrainings`` retrainings
    (column ``n_retrainings``; a frame without it: each found once)."""
    n = (candidates["n_retrainings"].to_numpy(np.int64) if "n_retrainings" in candidates
         else np.ones(len(candidates), np.int64))
    return n >= int(min_retrainings)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (exact binomial) interval of a rate from ``k`` of ``n`` trials at
    confidence ``level``; (0, 1) when ``n`` is 0."""
    from scipy.stats import beta

    if not 0 <= k <= n:
        raise ValueError(f"clopper_pearson: need 0 <= k <= n, got k={k}, n={n}")
    alpha = 1.0 - level
    lo = float(beta.ppf(alpha / 2, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(1 - alpha / 2, k + 1, n - k)) if k < n else 1.0
    return lo, hi


def realization_maxima(null_significance: np.ndarray, null_realization: np.ndarray,
                       n_realizations: int) -> np.ndarray:
    """The most significant candidate of each stream-free realization ``0 .. n - 1`` (0.0 for a
    realization without candidates: S >= 0)."""
    sig = np.asarray(null_significance, np.float64)
    real = np.asarray(null_realization, np.int64)
    if len(real) and (real.min() < 0 or real.max() >= n_realizations):
        raise ValueError(f"realization ids {sorted(set(real.tolist()))} outside 0.."
                         f"{n_realizations - 1}")
    maxima = np.zeros(n_realizations)
    np.maximum.at(maxima, real, sig)
    return maxima


def false_positive_summary(significance: np.ndarray, null_significance: np.ndarray,
                           floor: float = 0.0, null_realization: np.ndarray | None = None,
                           n_realizations: int = 1, level: float = 0.95) -> dict[str, float]:
    """The false-positive threshold and rate from K stream-free skies (Via Machinae, section 5).

    null_significance / null_realization: the stream-free candidates' significances and the
    realization (0 .. K-1, K = ``n_realizations``) each comes from (None: all from one).

    threshold: the largest of the K realizations' maxima, at least ``floor`` (the statistic:
    max; null_max_min / null_max_median / null_max_max give their spread, null_maxima lists
    them); n_above: candidates of the searched sky above it; n_null: stream-free candidates above
    it (0 by construction unless the floor is higher); n_above_floor, n_null_floor: the same at
    the floor alone.

    The false-positive rate is measured out of sample (leave one out): realization k counts as
    a false positive when its maximum exceeds the threshold set by the other K-1 realizations
    (the floor alone when K = 1); fp_rate = n_fp_realizations / K with its Clopper-Pearson
    interval (fp_rate_lo, fp_rate_hi) at ``level``. It estimates the chance that a stream-free
    sky of the searched area yields a candidate above a threshold it did not set; with the
    threshold the max of K exchangeable maxima it is about 1 / (K + 1) unless the floor
    dominates.
    """
    sig = np.asarray(significance, np.float64)
    null = np.asarray(null_significance, np.float64)
    real = (np.zeros(len(null), np.int64) if null_realization is None
            else np.asarray(null_realization, np.int64))
    maxima = realization_maxima(null, real, n_realizations)
    threshold = float(max(floor, maxima.max() if len(maxima) else floor))
    others = [max([floor, *np.delete(maxima, k)]) for k in range(len(maxima))]
    n_fp = int(np.sum(maxima > np.asarray(others))) if len(maxima) else 0
    lo, hi = clopper_pearson(n_fp, len(maxima), level)
    return {"threshold": threshold, "n_above": int(np.sum(sig > threshold)),
            "n_null": int(np.sum(null > threshold)), "n_null_candidates": int(len(null)),
            "n_realizations": int(n_realizations),
            "null_maxima": ", ".join(f"{m:.2f}" for m in maxima),
            "null_max_min": float(maxima.min()) if len(maxima) else float("nan"),
            "null_max_median": float(np.median(maxima)) if len(maxima) else float("nan"),
            "null_max_max": float(maxima.max()) if len(maxima) else float("nan"),
            "n_fp_realizations": n_fp,
            "fp_rate": n_fp / len(maxima) if len(maxima) else float("nan"),
            "fp_rate_lo": lo, "fp_rate_hi": hi,
            "n_above_floor": int(np.sum(sig > floor)), "n_null_floor": int(np.sum(null > floor))}


def apply_thresholds(candidates: pd.DataFrame, null_significance: pd.DataFrame | None,
                     floor: float, n_realizations: int = 1,
                     min_retrainings: int = 1) -> dict[str, dict[str, float]]:
    """Set each candidate's ``threshold`` (its method's :func:`false_positive_summary`
    threshold) and ``above_threshold`` (significance above it and :func:`consistent`) in place;
    returns the summary per method.

    ``null_significance``: (method, significance, realization, n_retrainings) of the candidates
    of ``n_realizations`` stream-free skies (without ``realization``: one sky); None when there
    is none: the threshold is ``floor`` and the stream-free counts, maxima and rates are NaN.
    The consistency filter (``min_retrainings``) drops candidates of both skies before anything
    is counted or a maximum taken; ``n_inconsistent`` / ``n_null_inconsistent`` count the
    dropped ones.
    """
    fp: dict[str, dict[str, float]] = {}
    candidates["threshold"] = floor
    keep = consistent(candidates, min_retrainings)
    for method in sorted(set(candidates["method"])) if len(candidates) else []:
        mine = (candidates["method"] == method).to_numpy()
        sig = candidates.loc[mine & keep, "significance"].to_numpy()
        dropped = {"min_retrainings": int(min_retrainings),
                   "n_inconsistent": int(np.sum(mine & ~keep))}
        if null_significance is not None:
            null = null_significance[null_significance["method"] == method]
            ok = consistent(null, min_retrainings)
            dropped["n_null_inconsistent"] = int(np.sum(~ok))
            null = null[ok]
            real = null["realization"] if "realization" in null else None
            summary = false_positive_summary(sig, null["significance"].to_numpy(), floor, real,
                                             n_realizations)
        else:
            summary = false_positive_summary(sig, np.array([]), floor)
            summary.update({k: float("nan") for k in summary
                            if k.startswith(("n_null", "null_", "fp_", "n_fp", "n_real"))})
            dropped["n_null_inconsistent"] = float("nan")
        fp[method] = {**summary, **dropped}
        candidates.loc[mine, "threshold"] = summary["threshold"]
    candidates["above_threshold"] = (candidates["significance"] > candidates["threshold"]) & keep
    return fp

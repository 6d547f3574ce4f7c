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
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gaialake.conf import Conf, settings_from

__all__ = ["MergeSettings", "segment_geometry", "match_matrix", "merge_protoclusters",
           "clopper_pearson", "realization_maxima", "false_positive_summary", "apply_thresholds",
           "CANDIDATE_COLUMNS", "MEMBER_COLUMNS"]

#: Columns of ``stream_candidates`` (besides run_id), in order.
CANDIDATE_COLUMNS = ["candidate_id", "method", "patch_ids", "lead_patch_id", "theta", "rho",
                     "pm_phi", "pm_lam", "pole_ra", "pole_dec", "ra", "dec", "length_deg",
                     "pmra", "pmdec", "significance", "n_protoclusters", "n_members",
                     "known_match", "above_threshold"]
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


def match_matrix(protoclusters: pd.DataFrame, geometry: dict[str, np.ndarray],
                 params: MergeSettings) -> np.ndarray:
    """Boolean (n, n) matrix: protoclusters i and j match (see the module docstring)."""
    n = len(protoclusters)
    pole, mid, pts, pmv = geometry["pole"], geometry["mid"], geometry["points"], geometry["pm_vec"]
    method = protoclusters["method"].to_numpy() if "method" in protoclusters else np.zeros(n)
    members = [set(np.asarray(m, np.int64).tolist()) for m in protoclusters["member_ids"]]
    sin_rho = np.sin(np.radians(params.rho_tol_deg))
    cos_theta = np.cos(np.radians(params.theta_tol_deg))
    cos_gap = np.cos(np.radians(params.max_gap_deg))
    out = np.eye(n, dtype=bool)
    for i in range(n - 1):
        j = np.arange(i + 1, n)
        same_method = method[j] == method[i]
        pole_ok = np.abs(pole[j] @ pole[i]) >= cos_theta
        rho_ok = (np.abs(mid[j] @ pole[i]) <= sin_rho) & (np.abs(np.sum(mid[i] * pole[j], -1))
                                                          <= sin_rho)
        # closest approach of the two segments' sample points
        closest = np.einsum("sk,jtk->jst", pts[i], pts[j]).reshape(len(j), -1).max(1)
        gap_ok = closest >= cos_gap
        moved = _transport(pmv[j], mid[j], np.broadcast_to(mid[i], mid[j].shape))
        pm_ok = np.linalg.norm(moved - pmv[i], axis=-1) <= params.pm_tol_masyr
        shared = np.array([len(members[i] & members[k]) / max(1, min(len(members[i]),
                                                                     len(members[k])))
                           for k in j])
        ok = same_method & ((shared >= params.min_shared_frac)
                            | (pole_ok & rho_ok & gap_ok & pm_ok))
        out[i, j] = ok
        out[j, i] = ok
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
    """
    if protoclusters.empty:
        return (pd.DataFrame(columns=CANDIDATE_COLUMNS), pd.DataFrame(columns=MEMBER_COLUMNS))
    pcs = protoclusters.reset_index(drop=True)
    geo = segment_geometry(pcs, centers, params.n_samples)
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
                     floor: float, n_realizations: int = 1) -> dict[str, dict[str, float]]:
    """Set each candidate's ``threshold`` (its method's :func:`false_positive_summary`
    threshold) and ``above_threshold`` (significance above it) in place; returns the summary
    per method.

    ``null_significance``: (method, significance, realization) of the candidates of
    ``n_realizations`` stream-free skies (without ``realization``: one sky); None when there is
    none: the threshold is ``floor`` and the stream-free counts, maxima and rates are NaN.
    """
    fp: dict[str, dict[str, float]] = {}
    candidates["threshold"] = floor
    for method in sorted(set(candidates["method"])) if len(candidates) else []:
        mine = candidates["method"] == method
        if null_significance is not None:
            null = null_significance[null_significance["method"] == method]
            real = null["realization"] if "realization" in null else None
            summary = false_positive_summary(candidates.loc[mine, "significance"].to_numpy(),
                                             null["significance"].to_numpy(), floor, real,
                                             n_realizations)
        else:
            summary = false_positive_summary(candidates.loc[mine, "significance"].to_numpy(),
                                             np.array([]), floor)
            summary.update({k: float("nan") for k in summary
                            if k.startswith(("n_null", "null_", "fp_", "n_fp", "n_real"))})
        fp[method] = summary
        candidates.loc[mine, "threshold"] = summary["threshold"]
    candidates["above_threshold"] = candidates["significance"] > candidates["threshold"]
    return fp

"""Line finding in one (patch, signal region): top-N stars, DBSCAN in proper motion, Hough lines.

The second half of Via Machinae (Shih et al. 2021, arXiv 2104.12789, section 4; Via Machinae 2.0,
arXiv 2303.01529). For one patch and one proper-motion signal region:

1. keep the ``top_n`` stars of the fiducial disc with the highest anomaly score;
2. cluster them in proper motion (pm_phi, pm_lam in mas/yr) with DBSCAN (sklearn): a stream is
   compact in proper motion, the high-score background is not;
3. for every cluster, a Hough transform over lines ``rho = phi cos(theta) + lam sin(theta)``
   (theta in [0, 180) deg, rho in deg, patch frame) counts the stars in a strip of full width
   ``line_width_deg`` around each line;
4. the most significant line of each cluster (then the next, with its stars removed, up to
   ``max_lines_per_cluster``) is a *protocluster*: its stars, its line and its significance.

**Significance.** Under the null hypothesis the ``n`` stars of a cluster are drawn from the
sky distribution of all scored stars of the signal region (or, when fewer than
``min_background_stars`` of them are given, uniformly over the fiducial disc). A line strip then
holds ``k`` of the ``n`` stars with probability Binomial(n, p), where ``p`` is the fraction of all
scored fiducial stars inside the strip (or the strip's area fraction of the disc, exact for a
strip cut by a circle). The significance is the one-sided Gaussian equivalent of the binomial
tail, ``z = Phi^-1(1 - P(K >= k))`` computed in log space (``scipy.special.ndtri_exp``) so that
it stays finite for very significant lines. ``n_expected = n p`` is the expected background along
the line. ``z`` is a local significance: the search over (cluster, theta, rho, signal region,
patch) is a large trials factor, which the false-positive threshold from a stream-free sky
calibrates (see :mod:`gaialake.streams.candidates`). Lines must be long: strips with a chord shorter
than ``min_chord_deg`` are not searched and protoclusters whose stars span less than
``min_length_deg`` along the line (10th to 90th percentile) are dropped, so a compact clump
(a globular cluster, a dense knot) is not taken for a stream.

Example::

    params = LineFindSettings(top_n=100)
    found = find_protoclusters(phi, lam, pm_phi, pm_lam, score, source_id, params)
    best = max(found, key=lambda p: p.significance)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gaialake.conf import Conf, settings_from

__all__ = ["LineFindSettings", "Protocluster", "strip_fraction_uniform", "hough_counts",
           "binomial_significance", "find_lines", "find_protoclusters", "protoclusters_frame",
           "PROTOCLUSTER_COLUMNS", "GROUP_KEYS", "protocluster_spark_schema"]


@dataclass(frozen=True)
class LineFindSettings:
    """Line-finding settings (conf section ``find_streams``; angles in deg, pm in mas/yr).

    top_n: stars kept per (patch, signal region) by score; fiducial_radius_deg: radius of the
    disc the stars come from; dbscan_eps_masyr, dbscan_min_samples: DBSCAN in proper motion;
    min_cluster_stars: smallest cluster searched for lines; line_width_deg: full width of a line
    strip; n_theta: Hough angles over [0, 180) deg; rho_step_deg: Hough offset step;
    min_chord_deg: shortest strip (chord through the disc) searched; min_line_stars: fewest
    stars on a line; min_length_deg: shortest extent of a line's stars; min_significance: lowest
    significance kept; max_lines_per_cluster: lines taken from one cluster;
    min_background_stars: fewest scored stars for the empirical background (else uniform);
    max_background_stars: the empirical background uses every k-th star (by source_id) above
    this many.
    """

    top_n: int = 100
    fiducial_radius_deg: float = 10.0
    dbscan_eps_masyr: float = 1.0
    dbscan_min_samples: int = 5
    min_cluster_stars: int = 8
    line_width_deg: float = 0.6
    n_theta: int = 180
    rho_step_deg: float = 0.2
    min_chord_deg: float = 6.0
    min_line_stars: int = 6
    min_length_deg: float = 3.0
    min_significance: float = 3.0
    max_lines_per_cluster: int = 2
    min_background_stars: int = 500
    max_background_stars: int = 200_000

    @classmethod
    def from_conf(cls, conf: Conf) -> "LineFindSettings":
        """Read ``find_streams.<field>`` for every field (missing or null keys keep the default;
        a null ``fiducial_radius_deg`` is ``patches.fiducial_deg``)."""
        section = dict(conf.get("find_streams", None) or {})
        if section.get("fiducial_radius_deg") is None:
            section["fiducial_radius_deg"] = conf.get("patches.fiducial_deg", None)
        return settings_from(cls, section, "find_streams", strict=False)


@dataclass
class Protocluster:
    """One line of one proper-motion cluster in one (patch, signal region).

    theta_deg, rho_deg: the line ``rho = phi cos(theta) + lam sin(theta)`` in the patch frame;
    t_min_deg, t_max_deg: extent of its stars along the line (t = -phi sin + lam cos, deg);
    n_cluster: stars of the cluster; n_line: of them on the line; n_expected: background
    expectation on the line; significance: binomial z (see the module docstring);
    pm_phi, pm_lam, pm_phi_std, pm_lam_std: mean and spread of its stars' proper motions (mas/yr);
    cluster: DBSCAN label; source_id, score: its stars.
    """

    theta_deg: float
    rho_deg: float
    t_min_deg: float
    t_max_deg: float
    n_cluster: int
    n_line: int
    n_expected: float
    significance: float
    pm_phi: float
    pm_lam: float
    pm_phi_std: float
    pm_lam_std: float
    cluster: int
    source_id: np.ndarray = field(repr=False)
    score: np.ndarray = field(repr=False)


def strip_fraction_uniform(rho_deg: np.ndarray, width_deg: float,
                           radius_deg: float) -> np.ndarray:
    """Fraction of a disc of ``radius_deg`` inside the strip ``|x.n - rho| <= width/2`` (exact).

    Uses the area of the disc below a chord at signed distance u,
    ``A(u) = R^2 (pi - acos(u/R)) + u sqrt(R^2 - u^2)``.
    """
    r = float(radius_deg)

    def below(u: np.ndarray) -> np.ndarray:
        u = np.clip(u, -r, r)
        return r * r * (np.pi - np.arccos(u / r)) + u * np.sqrt(np.maximum(r * r - u * u, 0.0))

    rho = np.asarray(rho_deg, np.float64)
    return (below(rho + width_deg / 2) - below(rho - width_deg / 2)) / (np.pi * r * r)


def _grid(params: LineFindSettings) -> tuple[np.ndarray, np.ndarray]:
    theta = np.arange(params.n_theta) * (180.0 / params.n_theta)
    r = params.fiducial_radius_deg
    n_rho = int(np.floor(r / params.rho_step_deg))
    rho = np.arange(-n_rho, n_rho + 1) * params.rho_step_deg
    return theta, rho


def hough_counts(phi: np.ndarray, lam: np.ndarray, theta_deg: np.ndarray, rho_deg: np.ndarray,
                 width_deg: float) -> np.ndarray:
    """Stars within ``width/2`` of each line (theta, rho): an int array (n_theta, n_rho)."""
    phi = np.asarray(phi, np.float64)
    lam = np.asarray(lam, np.float64)
    t = np.radians(np.asarray(theta_deg, np.float64))
    lo, hi = rho_deg - width_deg / 2, rho_deg + width_deg / 2
    out = np.empty((len(t), len(rho_deg)), np.int64)
    for i in range(len(t)):
        col = np.sort(phi * np.cos(t[i]) + lam * np.sin(t[i]))
        out[i] = np.searchsorted(col, hi, side="right") - np.searchsorted(col, lo, side="left")
    return out


def binomial_significance(k: np.ndarray, n: int, p: np.ndarray) -> np.ndarray:
    """One-sided Gaussian z of P(K >= k), K ~ Binomial(n, p), computed in log space."""
    from scipy.special import ndtri_exp
    from scipy.stats import binom

    k = np.asarray(k)
    p = np.clip(np.asarray(p, np.float64), 1e-12, 1 - 1e-12)
    log_tail = binom.logsf(k - 1, n, p)
    z = -ndtri_exp(np.minimum(log_tail, np.log(0.5)))
    return np.where(k > n * p, z, 0.0)


def _background_fraction(params: LineFindSettings, bg_phi: np.ndarray | None,
                         bg_lam: np.ndarray | None) -> np.ndarray:
    """Null probability of a star falling in each Hough strip, (n_theta, n_rho)."""
    theta, rho = _grid(params)
    if bg_phi is not None and len(bg_phi) >= params.min_background_stars:
        counts = hough_counts(bg_phi, bg_lam, theta, rho, params.line_width_deg)
        return (counts + 0.5) / (len(bg_phi) + 1.0)
    frac = strip_fraction_uniform(rho, params.line_width_deg, params.fiducial_radius_deg)
    return np.broadcast_to(frac, (len(theta), len(rho))).copy()


def _line_members(phi: np.ndarray, lam: np.ndarray, theta_deg: float, rho_deg: float,
                  width_deg: float) -> np.ndarray:
    t = np.radians(theta_deg)
    return np.abs(phi * np.cos(t) + lam * np.sin(t) - rho_deg) <= width_deg / 2


def _refine(phi: np.ndarray, lam: np.ndarray) -> tuple[float, float]:
    """Total-least-squares line through points: (theta_deg in [0, 180), rho_deg)."""
    x, y = phi - phi.mean(), lam - lam.mean()
    cov = np.cov(np.stack([x, y]))
    _, vecs = np.linalg.eigh(cov)
    normal = vecs[:, 0]                                          # smallest-variance direction
    theta = np.degrees(np.arctan2(normal[1], normal[0]))
    rho = phi.mean() * normal[0] + lam.mean() * normal[1]
    if theta < 0:
        theta += 180.0
        rho = -rho
    if theta >= 180.0:
        theta -= 180.0
        rho = -rho
    return float(theta), float(rho)


def find_lines(phi: np.ndarray, lam: np.ndarray, params: LineFindSettings,
               bg_phi: np.ndarray | None = None, bg_lam: np.ndarray | None = None,
               max_lines: int | None = None, null_fraction: np.ndarray | None = None
               ) -> list[dict]:
    """The most significant lines through a set of stars (positions in deg, patch frame).

    Returns up to ``max_lines`` dicts (theta_deg, rho_deg, members (bool mask), n_line,
    n_expected, significance), each found after removing the previous line's stars.
    ``bg_phi, bg_lam`` are all scored stars of the signal region (the null distribution);
    ``null_fraction`` is their strip fractions when already computed (reused across clusters).
    """
    phi = np.asarray(phi, np.float64)
    lam = np.asarray(lam, np.float64)
    n = len(phi)
    theta, rho = _grid(params)
    frac = (null_fraction if null_fraction is not None
            else _background_fraction(params, bg_phi, bg_lam))
    chord = 2 * np.sqrt(np.maximum(params.fiducial_radius_deg ** 2 - rho ** 2, 0.0))
    searchable = np.broadcast_to(chord >= params.min_chord_deg, frac.shape)
    uniform = bg_phi is None or len(bg_phi) < params.min_background_stars
    active = np.ones(n, bool)
    lines: list[dict] = []
    for _ in range(max_lines or params.max_lines_per_cluster):
        if active.sum() < params.min_line_stars:
            break
        counts = hough_counts(phi[active], lam[active], theta, rho, params.line_width_deg)
        z = np.where(searchable & (counts >= params.min_line_stars),
                     binomial_significance(counts, n, frac), -np.inf)
        i, j = np.unravel_index(np.argmax(z), z.shape)
        if not np.isfinite(z[i, j]):
            break
        best = {"theta_deg": float(theta[i]), "rho_deg": float(rho[j])}
        members = active & _line_members(phi, lam, best["theta_deg"], best["rho_deg"],
                                         params.line_width_deg)
        # refine by a least-squares fit to the strip's stars; keep it when it does not lose stars
        t_ref, r_ref = _refine(phi[members], lam[members])
        refined = active & _line_members(phi, lam, t_ref, r_ref, params.line_width_deg)
        if refined.sum() >= members.sum():
            best, members = {"theta_deg": t_ref, "rho_deg": r_ref}, refined
        k = int(members.sum())
        if uniform:
            p = float(strip_fraction_uniform(best["rho_deg"], params.line_width_deg,
                                             params.fiducial_radius_deg))
        else:
            inside = _line_members(np.asarray(bg_phi), np.asarray(bg_lam), best["theta_deg"],
                                   best["rho_deg"], params.line_width_deg).sum()
            p = (inside + 0.5) / (len(bg_phi) + 1.0)
        sig = float(binomial_significance(np.array([k]), n, np.array([p]))[0])
        lines.append({**best, "members": members, "n_line": k, "n_expected": n * p,
                      "significance": sig})
        active &= ~members
    return lines


def find_protoclusters(phi: np.ndarray, lam: np.ndarray, pm_phi: np.ndarray,
                       pm_lam: np.ndarray, score: np.ndarray, source_id: np.ndarray,
                       params: LineFindSettings) -> list[Protocluster]:
    """Protoclusters of one (patch, signal region) from its scored fiducial stars.

    Inputs are per star (deg, mas/yr, score, int64 id), all the scored stars of the fiducial
    disc: the top ``params.top_n`` by score are searched, all of them form the background.
    Stars with a non-finite score are ignored; the result does not depend on the input order.
    """
    from sklearn.cluster import DBSCAN

    phi, lam, pm_phi, pm_lam, score = (np.asarray(a, np.float64)
                                       for a in (phi, lam, pm_phi, pm_lam, score))
    source_id = np.asarray(source_id, np.int64)
    ok = np.isfinite(score) & np.isfinite(phi) & np.isfinite(lam) & np.isfinite(pm_phi) \
        & np.isfinite(pm_lam)
    order = np.flatnonzero(ok)[np.argsort(source_id[ok], kind="stable")]  # input order-free
    phi, lam, pm_phi, pm_lam, score, source_id = (a[order] for a in
                                                  (phi, lam, pm_phi, pm_lam, score, source_id))
    if len(score) < params.min_cluster_stars:
        return []
    step = max(1, int(np.ceil(len(phi) / params.max_background_stars)))
    bg_phi, bg_lam = phi[::step], lam[::step]
    top = np.argsort(-score, kind="stable")[:params.top_n]
    labels = DBSCAN(eps=params.dbscan_eps_masyr,
                    min_samples=params.dbscan_min_samples).fit_predict(
        np.stack([pm_phi[top], pm_lam[top]], 1))
    out: list[Protocluster] = []
    null_fraction = None
    for label in sorted(set(labels) - {-1}):
        idx = top[labels == label]
        if len(idx) < params.min_cluster_stars:
            continue
        if null_fraction is None:
            null_fraction = _background_fraction(params, bg_phi, bg_lam)
        for line in find_lines(phi[idx], lam[idx], params, bg_phi=bg_phi, bg_lam=bg_lam,
                               null_fraction=null_fraction):
            if line["significance"] < params.min_significance:
                continue
            mem = idx[line["members"]]
            th = np.radians(line["theta_deg"])
            t = -phi[mem] * np.sin(th) + lam[mem] * np.cos(th)
            lo, hi = np.percentile(t, [10, 90])
            if hi - lo < params.min_length_deg:
                continue
            out.append(Protocluster(
                theta_deg=line["theta_deg"], rho_deg=line["rho_deg"],
                t_min_deg=float(t.min()), t_max_deg=float(t.max()),
                n_cluster=len(idx), n_line=line["n_line"], n_expected=line["n_expected"],
                significance=line["significance"],
                pm_phi=float(pm_phi[mem].mean()), pm_lam=float(pm_lam[mem].mean()),
                pm_phi_std=float(pm_phi[mem].std()), pm_lam_std=float(pm_lam[mem].std()),
                cluster=int(label), source_id=source_id[mem], score=score[mem]))
    return out


#: Columns of a protocluster row (besides the group keys patch_id, pm_axis, sr_lo, sr_hi, method,
#: retraining).
PROTOCLUSTER_COLUMNS = ["cluster", "theta_deg", "rho_deg", "t_min_deg", "t_max_deg",
                        "n_cluster", "n_line", "n_expected", "significance", "pm_phi", "pm_lam",
                        "pm_phi_std", "pm_lam_std", "member_ids", "member_scores"]
#: The columns of a line-finding group (a patch, pm axis, signal region, method and retraining).
GROUP_KEYS = ["patch_id", "pm_axis", "sr_lo", "sr_hi", "method", "retraining"]


def protocluster_spark_schema() -> str:
    """The Spark DDL schema of :func:`protoclusters_frame`'s output (for applyInPandas)."""
    return ("patch_id long, pm_axis string, sr_lo double, sr_hi double, method string, "
            "retraining int, cluster int, theta_deg double, rho_deg double, "
            "t_min_deg double, t_max_deg double, n_cluster int, n_line int, "
            "n_expected double, significance double, "
            "pm_phi double, pm_lam double, pm_phi_std double, pm_lam_std double, "
            "member_ids array<long>, member_scores array<double>")


def protoclusters_frame(stars: pd.DataFrame, params: LineFindSettings) -> pd.DataFrame:
    """Protoclusters of one (patch, signal region) group as rows (the applyInPandas function).

    ``stars``: one group's rows with patch_id, pm_axis, sr_lo, sr_hi, method, retraining,
    source_id, phi, lam (deg), pm_phi, pm_lam (mas/yr), score; fiducial stars only.
    """
    need = GROUP_KEYS + ["source_id", "phi", "lam", "pm_phi", "pm_lam", "score"]
    missing = [c for c in need if c not in stars.columns]
    if missing:
        raise KeyError(f"protoclusters_frame: input lacks columns {missing} "
                       f"(join of anomaly_scores and patch_stars)")
    cols = GROUP_KEYS + PROTOCLUSTER_COLUMNS
    if stars.empty:
        return pd.DataFrame(columns=cols)
    keys = {k: stars[k].iloc[0] for k in GROUP_KEYS}
    found = find_protoclusters(stars["phi"].to_numpy(), stars["lam"].to_numpy(),
                               stars["pm_phi"].to_numpy(), stars["pm_lam"].to_numpy(),
                               stars["score"].to_numpy(), stars["source_id"].to_numpy(), params)
    rows = [{**keys, "cluster": p.cluster, "theta_deg": p.theta_deg, "rho_deg": p.rho_deg,
             "t_min_deg": p.t_min_deg, "t_max_deg": p.t_max_deg, "n_cluster": p.n_cluster,
             "n_line": p.n_line, "n_expected": p.n_expected, "significance": p.significance,
             "pm_phi": p.pm_phi, "pm_lam": p.pm_lam, "pm_phi_std": p.pm_phi_std,
             "pm_lam_std": p.pm_lam_std, "member_ids": p.source_id.tolist(),
             "member_scores": p.score.tolist()} for p in found]
    out = pd.DataFrame(rows, columns=cols)
    return out.astype({"patch_id": "int64", "sr_lo": "float64", "sr_hi": "float64",
                       "retraining": "int32", "cluster": "int32", "n_cluster": "int32",
                       "n_line": "int32"})

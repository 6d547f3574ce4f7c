"""Evaluating the accreted-star classifier: ROC AUC, purity/completeness, the Toomre baseline,
and the velocity-space figure.

purity = accreted among the selected stars (precision); completeness = selected among the
accreted stars (recall). The baseline is the Toomre-diagram halo cut |v - v_LSR| > 220 km/s
(:func:`gaialake.accreted.features.toomre_speed`; without a radial velocity its lower bound). The
classifier *beats* the baseline when, at the baseline's purity, it is more complete (and so it
selects more accreted stars for the same contamination), the comparison of Ostdiek et al. 2020.
Pure numpy/sklearn; the job collects (score, label) pairs of the labelled evaluation stars.
"""
from __future__ import annotations

from pathlib import Path
import numpy as np

__all__ = ["roc_auc", "purity_completeness", "threshold_for_purity", "cut_metrics",
           "completeness_at_purity", "compare_with_baseline", "TOOMRE_CUT_KMS",
           "plot_velocity_space", "plot_purity_completeness", "labelled_metrics",
           "catalog_threshold", "catalog_figures"]

TOOMRE_CUT_KMS = 220.0


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels).astype(bool)
    if s.shape != y.shape:
        raise ValueError(f"scores {s.shape} and labels {y.shape} differ in shape")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN/inf: evaluate only the scored stars")
    if y.all() or not y.any():
        raise ValueError(f"labels need both classes (got {y.sum()} accreted of {len(y)})")
    return s, y


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (accreted = positive)."""
    from sklearn.metrics import roc_auc_score

    s, y = _check(scores, labels)
    return float(roc_auc_score(y, s))


def purity_completeness(scores: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Purity and completeness of the selection ``score >= threshold`` for every distinct
    threshold (ascending): {threshold, purity, completeness, n_selected}."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="stable")
    ss, ys = s[order], y[order]
    tp = np.cumsum(ys)
    n = np.arange(1, len(ss) + 1)
    last = np.r_[ss[1:] != ss[:-1], True]  # last index of each tie group: select all ties
    thr, tp, n = ss[last], tp[last], n[last]
    return {"threshold": thr[::-1], "purity": (tp / n)[::-1],
            "completeness": (tp / y.sum())[::-1], "n_selected": n[::-1]}


def threshold_for_purity(scores: np.ndarray, labels: np.ndarray, purity: float,
                         ) -> dict[str, float]:
    """The lowest threshold whose selection ``score >= t`` has purity >= ``purity`` (the most
    complete such selection): {threshold, purity, completeness, n_selected}; threshold NaN and
    completeness 0 when no threshold reaches it."""
    curve = purity_completeness(scores, labels)
    ok = np.flatnonzero(curve["purity"] >= purity)
    if not len(ok):
        return {"threshold": float("nan"), "purity": float("nan"), "completeness": 0.0,
                "n_selected": 0}
    i = ok[np.argmax(curve["completeness"][ok])]
    return {k: float(curve[k][i]) for k in curve}


def completeness_at_purity(scores: np.ndarray, labels: np.ndarray, purity: float) -> float:
    """Highest completeness of a selection ``score >= t`` with purity >= ``purity``."""
    return threshold_for_purity(scores, labels, purity)["completeness"]


def cut_metrics(selected: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Purity and completeness of a boolean selection."""
    sel = np.asarray(selected, bool)
    y = np.asarray(labels, bool)
    n = int(sel.sum())
    return {"purity": float(y[sel].mean()) if n else float("nan"),
            "completeness": float(sel[y].mean()) if y.any() else float("nan"), "n_selected": n}


def compare_with_baseline(p_accreted: np.ndarray, v_toomre_kms: np.ndarray, labels: np.ndarray,
                          cut_kms: float = TOOMRE_CUT_KMS) -> dict[str, float]:
    """The classifier against the Toomre cut on the same stars: both AUCs, the cut's purity and
    completeness, and the classifier's completeness at the cut's purity (and purity at its
    completeness)."""
    p, y = _check(p_accreted, labels)
    base = cut_metrics(np.asarray(v_toomre_kms) > cut_kms, y)
    curve = purity_completeness(p, y)
    reach = curve["completeness"] >= base["completeness"]
    return {"auc": roc_auc(p, y), "auc_baseline": roc_auc(np.nan_to_num(v_toomre_kms), y),
            "baseline_purity": base["purity"], "baseline_completeness": base["completeness"],
            "completeness_at_baseline_purity": completeness_at_purity(p, y, base["purity"]),
            "purity_at_baseline_completeness": float(curve["purity"][reach].max())
            if reach.any() else float("nan")}


def labelled_metrics(labelled, cut_kms: float, galaxy: str) -> dict[str, float]:
    """Metrics of labelled, scored stars (pandas: accreted, p_accreted, v_toomre_kms (km/s),
    variant), for all of them and per variant (suffixes ``""``, ``_5d``, ``_6d``): on the
    training galaxy ``A`` the AUCs of the classifier and of the Toomre speed, on another the
    comparison with the Toomre cut at ``cut_kms`` (:func:`compare_with_baseline`); and the
    numbers of stars and of accreted stars. Keys end in ``_<galaxy><suffix>``."""
    out = {}
    y = labelled["accreted"].to_numpy(bool)
    p = labelled["p_accreted"].to_numpy(float)
    v = labelled["v_toomre_kms"].to_numpy(float)
    for name, m in (("", np.ones(len(labelled), bool)),
                    ("_5d", (labelled["variant"] == "5d").to_numpy()),
                    ("_6d", (labelled["variant"] == "6d").to_numpy())):
        if m.sum() == 0 or y[m].all() or not y[m].any():
            continue
        if galaxy == "A":
            out[f"auc_A{name}"] = roc_auc(p[m], y[m])
            out[f"auc_baseline_A{name}"] = roc_auc(np.nan_to_num(v[m]), y[m])
        else:
            compared = compare_with_baseline(p[m], v[m], y[m], cut_kms)
            out.update({f"{k}_{galaxy}{name}": val for k, val in compared.items()})
        out[f"n_{galaxy}{name}"] = int(m.sum())
        out[f"n_accreted_{galaxy}{name}"] = int(y[m].sum())
    return out


def catalog_threshold(train_held_out, test, target_purity: float,
                      ) -> tuple[float, dict[str, float]]:
    """(the catalog threshold, its metrics), chosen on the training catalog alone: the most
    complete selection p_accreted >= t with purity >= ``target_purity`` among its held-out
    labelled, scored stars (``train_held_out``, pandas: p_accreted, accreted); 1.0 (nothing
    selected) when none reaches it. The ``test`` catalog's labelled stars are then evaluated
    blind at that threshold: metrics ``purity_B_at_threshold``, ``completeness_B_at_threshold``
    (and ``_A_`` for the training stars)."""
    chosen = threshold_for_purity(train_held_out["p_accreted"].to_numpy(float),
                                  train_held_out["accreted"].to_numpy(bool), target_purity)
    threshold = chosen["threshold"] if np.isfinite(chosen["threshold"]) else 1.0
    blind = cut_metrics(test["p_accreted"].to_numpy(float) >= threshold,
                        test["accreted"].to_numpy(bool))
    metrics = {"threshold": threshold, "threshold_found": float(np.isfinite(chosen["threshold"])),
               "purity_A_at_threshold": chosen["purity"],
               "completeness_A_at_threshold": chosen["completeness"],
               "purity_B_at_threshold": blind["purity"],
               "completeness_B_at_threshold": blind["completeness"],
               "n_selected_B_at_threshold": blind["n_selected"],
               "target_purity": float(target_purity)}
    return threshold, metrics


def catalog_figures(out_dir: str | Path, velocity, held_out, threshold: float, cut_kms: float,
                    galaxy: str, held_out_galaxy: str) -> list[Path]:
    """The figures of a catalog: its ``6d`` stars in (v_r, v_phi) (``velocity``: pandas v_r,
    v_phi (km/s), p_accreted [, accreted, component]; skipped when empty), and purity vs
    completeness on the held-out galaxy's labelled stars (``held_out``) for the classifier and
    the Toomre speed, with the Toomre cut at ``cut_kms`` and the catalog ``threshold``."""
    out_dir = Path(out_dir)
    figures = []
    if len(velocity):
        truth = velocity["accreted"].fillna(False).to_numpy(bool) if "accreted" in velocity \
            else None
        figures.append(plot_velocity_space(
            velocity["v_r"].to_numpy(float), velocity["v_phi"].to_numpy(float),
            velocity["p_accreted"].to_numpy(float) >= threshold, out_dir / "velocity_space.png",
            truth=truth, components=velocity["component"].to_numpy(object)
            if truth is not None else None,
            title=f"main catalog, stars with radial velocity: p_accreted >= {threshold:.3f} "
                  f"(galaxy {galaxy})"))
    y = held_out["accreted"].to_numpy(bool)
    p = held_out["p_accreted"].to_numpy(float)
    v = held_out["v_toomre_kms"].to_numpy(float)
    base, sel = cut_metrics(v > cut_kms, y), cut_metrics(p >= threshold, y)
    figures.append(plot_purity_completeness(
        {"classifier": (p, y), "|v - v_LSR|": (np.nan_to_num(v), y)},
        out_dir / "purity_completeness_B.png",
        points={f"Toomre cut {cut_kms:.0f} km/s": (base["completeness"], base["purity"]),
                "catalog threshold": (sel["completeness"], sel["purity"])},
        title=f"{held_out_galaxy}: test catalog, threshold chosen on the training catalog"))
    return figures


def plot_purity_completeness(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
                             points: dict[str, tuple[float, float]] | None = None,
                             title: str = "") -> Path:
    """Purity vs completeness: ``curves`` {label: (scores, labels)}, ``points`` {label:
    (completeness, purity)} (e.g. the Toomre cut, the chosen threshold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2))
    for name, (s, y) in curves.items():
        c = purity_completeness(s, y)
        ax.plot(c["completeness"], c["purity"], label=name)
    for name, (comp, pur) in (points or {}).items():
        ax.plot([comp], [pur], "o", label=name)
    ax.set_xlabel("completeness")
    ax.set_ylabel("purity")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_velocity_space(v_r_kms: np.ndarray, v_phi_kms: np.ndarray, selected: np.ndarray,
                        path: str | Path, truth: np.ndarray | None = None,
                        title: str = "", components: np.ndarray | None = None) -> Path:
    """The science figure: all stars (grey density) and the selected accreted stars in
    (v_r, v_phi) (km/s, v_phi > 0 prograde); with ``truth`` a second panel shows the true
    accreted stars (coloured by ``components`` when given). A radially anisotropic component
    (GSE) is a wide-in-v_r, narrow-in-v_phi "sausage" at v_phi ~ 0; a prograde one (Nyx) sits
    at v_phi > 0 with two v_r lobes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, np.ndarray]] = [("classified accreted", np.asarray(selected, bool))]
    if truth is not None:
        panels.append(("true accreted", np.asarray(truth, bool)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.4), squeeze=False)
    lim = [[-500, 500], [-400, 400]]
    for k, (ax, (name, sel)) in enumerate(zip(axes[0], panels)):
        ax.hist2d(v_r_kms, v_phi_kms, bins=100, range=lim, cmap="Greys", cmin=1,
                  norm=matplotlib.colors.LogNorm())
        groups = [(name, sel, "C3")]
        if k == 1 and components is not None:
            comps = np.asarray(components, dtype=object)
            groups = [(f"{c}", sel & (comps == c), f"C{3 + i}")
                      for i, c in enumerate(sorted(set(comps[sel].tolist())))]
        for label, m, color in groups:
            ax.scatter(v_r_kms[m], v_phi_kms[m], s=2, c=color, alpha=0.5,
                       label=f"{label} ({int(m.sum())})")
        ax.set_xlabel("v_r (km/s)")
        ax.set_ylabel("v_phi (km/s, prograde > 0)")
        ax.set_xlim(*lim[0])
        ax.set_ylim(*lim[1])
        ax.legend(loc="lower right", fontsize=8, markerscale=4)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Plots of stream candidates: one figure per candidate and a full-sky map of all of them.

Matplotlib with the Agg backend (files only, no display); every function writes a PNG and
returns its path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["plot_candidate", "plot_candidate_map"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_candidate(candidate: dict | pd.Series, members: pd.DataFrame, path: str | Path,
                   field: pd.DataFrame | None = None) -> Path:
    """Sky (patch frame), proper motion and colour-magnitude panels of one candidate.

    candidate: candidate_id, lead_patch_id, theta, rho (deg), significance, n_members,
    known_match. members: phi, lam (deg, lead patch frame), pm_phi, pm_lam (mas/yr), g, bp_rp
    (mag), score. field: the same columns for a sample of the patch's stars (grey background).
    """
    plt = _pyplot()
    cand = dict(candidate)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    ax_sky, ax_pm, ax_cmd = axes
    if field is not None and len(field):
        kw = dict(s=1, c="0.8", rasterized=True, lw=0)
        ax_sky.scatter(field["phi"], field["lam"], **kw)
        ax_pm.scatter(field["pm_phi"], field["pm_lam"], **kw)
        ax_cmd.scatter(field["bp_rp"], field["g"], **kw)
    kw = dict(s=12, c=members["score"], cmap="viridis", edgecolor="k", lw=0.3)
    sc = ax_sky.scatter(members["phi"], members["lam"], **kw)
    ax_pm.scatter(members["pm_phi"], members["pm_lam"], **kw)
    ax_cmd.scatter(members["bp_rp"], members["g"], **kw)
    th = np.radians(float(cand["theta"]))
    t = np.linspace(-15, 15, 2)
    rho = float(cand["rho"])
    ax_sky.plot(rho * np.cos(th) - t * np.sin(th), rho * np.sin(th) + t * np.cos(th), "r-",
                lw=0.8, alpha=0.7)
    lim = 15.0
    ax_sky.set(xlim=(lim, -lim), ylim=(-lim, lim), aspect="equal",
               xlabel="phi [deg]", ylabel="lam [deg]",
               title=f"patch {cand.get('lead_patch_id')}")
    if len(members):
        cx, cy = members["pm_phi"].median(), members["pm_lam"].median()
        ax_pm.set(xlim=(cx - 8, cx + 8), ylim=(cy - 8, cy + 8))
    ax_pm.set(xlabel="pm_phi [mas/yr]", ylabel="pm_lam [mas/yr]", aspect="equal",
              title="proper motion")
    ax_cmd.invert_yaxis()
    ax_cmd.set(xlabel="BP-RP [mag]", ylabel="G [mag]", title="colour-magnitude")
    fig.colorbar(sc, ax=axes, label="anomaly score", shrink=0.8)
    match = cand.get("known_match")
    fig.suptitle(f"{cand['candidate_id']}: S = {float(cand['significance']):.1f}, "
                 f"{int(cand['n_members'])} stars"
                 + (f", matches {match}" if match else ""))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _wrap(ra_deg: np.ndarray) -> np.ndarray:
    """RA (deg) to Mollweide x (rad), RA increasing to the left, 180 deg at the edges."""
    return -np.radians(np.mod(np.asarray(ra_deg) + 180.0, 360.0) - 180.0)


def plot_candidate_map(candidates: pd.DataFrame, path: str | Path,
                       threshold: float | None = None,
                       member_positions: pd.DataFrame | None = None) -> Path:
    """Full-sky (ICRS, Mollweide) map of candidates coloured by significance.

    candidates: candidate_id, ra, dec (deg, centre), significance, known_match.
    member_positions: candidate_id, ra, dec of members (drawn as small dots) when given.
    Candidates at or below ``threshold`` are drawn faint.
    """
    plt = _pyplot()
    fig = plt.figure(figsize=(12, 6.5))
    ax = fig.add_subplot(111, projection="mollweide")
    ax.grid(True, alpha=0.3)
    if len(candidates):
        sig = candidates["significance"].to_numpy(np.float64)
        strong = sig > threshold if threshold is not None else np.ones(len(sig), bool)
        vmin, vmax = float(sig.min()), float(max(sig.max(), sig.min() + 1e-6))
        if member_positions is not None and len(member_positions):
            top = set(candidates.loc[strong, "candidate_id"])
            mp = member_positions[member_positions["candidate_id"].isin(top)]
            ax.scatter(_wrap(mp["ra"]), np.radians(mp["dec"]), s=1, c="0.4", lw=0)
        ax.scatter(_wrap(candidates["ra"][~strong]), np.radians(candidates["dec"][~strong]),
                   s=10, c="0.7", lw=0, label="below threshold")
        sc = ax.scatter(_wrap(candidates["ra"][strong]), np.radians(candidates["dec"][strong]),
                        s=40, c=sig[strong], cmap="plasma", vmin=vmin, vmax=vmax,
                        edgecolor="k", lw=0.4)
        fig.colorbar(sc, ax=ax, orientation="horizontal", shrink=0.6, pad=0.06,
                     label="significance")
        for row in candidates[strong].itertuples(index=False):
            label = row.known_match if getattr(row, "known_match", None) else None
            if label:
                ax.annotate(label, (_wrap(row.ra), np.radians(row.dec)), fontsize=7,
                            xytext=(3, 3), textcoords="offset points")
    ax.set_xticklabels([f"{int(v)}°" for v in (150, 120, 90, 60, 30, 0, 330, 300, 270, 240,
                                                  210)])
    title = f"{len(candidates)} stream candidates (ICRS)"
    if threshold is not None:
        title += f", threshold S > {threshold:.1f}"
    ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

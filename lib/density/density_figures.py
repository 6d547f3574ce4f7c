"""Figures of the density validation: recovered vs true density (M_sun/pc^3)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_density_validation"]


def plot_density_validation(table, out_dir: Path, name: str) -> list[Path]:
    """Two PNGs from a density_grid frame (pandas): rho vs rho_true over the grid, and a
    profile (vs z for the slab, vs r for a sphere) with the ensemble errors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = table
    ws = t["well_sampled"].to_numpy(bool)
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.errorbar(t["rho_true"][ws], t["rho"][ws], yerr=t["rho_err"][ws], fmt=".", ms=3,
                alpha=0.6, label="well sampled")
    ax.plot(t["rho_true"][~ws], t["rho"][~ws], "x", ms=3, color="0.6", label="sparse")
    lo = float(np.nanmin(t["rho_true"])) * 0.8
    hi = float(np.nanmax(t["rho_true"])) * 1.2
    ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    ax.set(xscale="log", yscale="log", xlabel=r"true $\rho$ [M$_\odot$/pc$^3$]",
           ylabel=r"recovered $\rho$ [M$_\odot$/pc$^3$]", title=f"density grid, mock {name}")
    ax.legend()
    paths.append(out_dir / f"density_{name}_scatter.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    if name == "slab":
        coord, label = t["z"].to_numpy(), "z [kpc]"
    else:
        coord = np.sqrt(t["x"] ** 2 + t["y"] ** 2 + t["z"] ** 2).to_numpy()
        label = "r [kpc]"
    ax.errorbar(coord[ws], t["rho"][ws], yerr=t["rho_err"][ws], fmt=".", ms=3, alpha=0.5,
                label="recovered (well sampled)")
    order = np.argsort(coord)
    ax.plot(coord[order], t["rho_true"].to_numpy()[order], "k-", lw=1, label="true")
    ax.set(yscale="log", xlabel=label, ylabel=r"$\rho$ [M$_\odot$/pc$^3$]")
    ax.legend()
    paths.append(out_dir / f"density_{name}_profile.png")
    fig.savefig(paths[-1], dpi=110, bbox_inches="tight")
    plt.close(fig)
    return paths

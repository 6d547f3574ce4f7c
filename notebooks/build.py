"""Writes the notebooks of this folder (run: python notebooks/build.py); they are committed.

Each notebook reads the outputs of one science job through gaialake.io.deltaread (no Spark) from
the warehouse named by conf: GAIALAKE_CONF (a YAML file) and GAIALAKE_SET ("k=v;k=v").
"""
from pathlib import Path

import nbformat as nbf

HERE = Path(__file__).parent

SETUP = '''import os
import matplotlib.pyplot as plt
import numpy as np
from gaialake.conf import load_conf
from gaialake.io.deltaread import read_delta

conf = load_conf(os.environ.get("GAIALAKE_CONF") or None,
                 [s for s in os.environ.get("GAIALAKE_SET", "").split(";") if s])
def table(name, columns=None):
    """A gaialake table as pandas (the live Delta snapshot, read with pyarrow)."""
    return read_delta(conf.table_path(name), columns=columns).to_pandas()
print("warehouse:", conf.path("paths.warehouse"))'''

NOTEBOOKS = {
    "streams": ("# Stellar streams (Via Machinae: ANODE / CATHODE)\n"
                "Candidates found by `gaialake find_streams`, their members, and how they compare "
                "with the streams injected in the synthetic sky.", [
        '''cands = table("stream_candidates")
print(len(cands), "candidates;", int(cands.above_threshold.sum()), "above the false-positive threshold")
cands.sort_values("significance", ascending=False).head(10)[
    ["candidate_id", "method", "significance", "n_members", "ra", "dec", "pmra", "pmdec", "known_match"]]''',
        '''fig, ax = plt.subplots(figsize=(7, 4))
sc = ax.scatter(cands.ra, cands.dec, c=cands.significance, s=10 + 3 * cands.n_members, cmap="viridis")
ax.set_xlabel("ra (deg)"); ax.set_ylabel("dec (deg)"); fig.colorbar(sc, label="significance")
ax.set_title("stream candidates"); plt.show()''',
        '''members = table("stream_members")
stars = table("patch_stars", ["source_id", "ra", "dec", "pm_phi", "pm_lam", "g", "bp_rp"]).drop_duplicates("source_id")
top = cands.sort_values("significance", ascending=False).iloc[0]
m = members[members.candidate_id == top.candidate_id].merge(stars, on="source_id")
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
axes[0].scatter(m.ra, m.dec, s=6); axes[0].set_xlabel("ra (deg)"); axes[0].set_ylabel("dec (deg)")
axes[1].scatter(m.bp_rp, m.g, s=6); axes[1].invert_yaxis(); axes[1].set_xlabel("BP-RP"); axes[1].set_ylabel("G")
fig.suptitle(f"top candidate {top.candidate_id}: {len(m)} members"); plt.show()''',
        '''if os.path.exists(conf.table_path("truth_streams")):
    truth = table("truth_streams")
    hits = members.merge(truth, on="source_id", how="left")
    print(hits.groupby("candidate_id").stream.agg(lambda s: s.value_counts().to_dict()).head(10))''',
    ]),
    "accreted": ("# Accreted halo stars\n"
                 "The catalogue written by `gaialake accreted`: probabilities and where the "
                 "likely-accreted stars sit in the sky.", [
        '''acc = table("accreted_catalog")
print(len(acc), "stars scored;", int(acc.p_accreted.notna().sum()), "with a score")
acc.p_accreted.describe()''',
        '''fig, ax = plt.subplots(figsize=(6, 4))
ax.hist(acc.p_accreted.dropna(), bins=50, log=True)
ax.set_xlabel("p_accreted"); ax.set_ylabel("stars"); plt.show()''',
        '''pos = table("gaia_source", ["source_id", "ra", "dec"])
hi = acc[acc.p_accreted > 0.5].merge(pos, on="source_id")
fig, ax = plt.subplots(figsize=(7, 4))
ax.scatter(hi.ra, hi.dec, s=2)
ax.set_xlabel("ra (deg)"); ax.set_ylabel("dec (deg)"); ax.set_title(f"{len(hi)} stars with p_accreted > 0.5")
plt.show()''',
        '''if os.path.exists(conf.table_path("truth_origin")):
    truth = table("truth_origin")
    j = acc.merge(truth, on="source_id")
    print(j.groupby("origin").p_accreted.mean())''',
    ]),
    "density": ("# Dark-matter density from the collisionless Boltzmann equation\n"
                "The density grid written by `gaialake density`, against the mock's true density.", [
        '''grid = table("density_grid")
grid.describe().T[["mean", "min", "max"]]''',
        '''r = np.sqrt(grid.x**2 + grid.y**2 + grid.z**2)
fig, ax = plt.subplots(figsize=(6, 4))
ax.errorbar(r, grid.rho, yerr=grid.rho_err, fmt=".", alpha=0.5, label="recovered")
if "rho_true" in grid:
    ax.plot(r, grid.rho_true, "k.", ms=3, label="true")
ax.set_yscale("log"); ax.set_xlabel("r (kpc)"); ax.set_ylabel("rho (M_sun / pc^3)"); ax.legend(); plt.show()''',
        '''if "rho_true" in grid:
    rel = (grid.rho - grid.rho_true).abs() / grid.rho_true
    print(f"median |rho - rho_true| / rho_true = {rel.median():.3f}, p90 = {rel.quantile(0.9):.3f}")''',
    ]),
    "upsample": ("# Upsampled mocks (GalaxyFlow)\n"
                 "Star particles and the synthetic stars the flow samples from them.", [
        '''mock = table("upsampled_mock")
print(mock.split.value_counts())
mock.head()''',
        '''fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for split, g in mock.groupby("split"):
    g = g.sample(min(len(g), 5000), random_state=0)
    axes[0].scatter(g.x, g.y, s=1, alpha=0.4, label=split)
    axes[1].scatter(g.vx, g.vy, s=1, alpha=0.4, label=split)
axes[0].set_xlabel("x (kpc)"); axes[0].set_ylabel("y (kpc)")
axes[1].set_xlabel("vx (km/s)"); axes[1].set_ylabel("vy (km/s)"); axes[0].legend(); plt.show()''',
    ]),
}


def main() -> None:
    for name, (intro, cells) in NOTEBOOKS.items():
        nb = nbf.v4.new_notebook()
        nb.cells = [nbf.v4.new_markdown_cell(intro), nbf.v4.new_code_cell(SETUP)]
        nb.cells += [nbf.v4.new_code_cell(c) for c in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbf.write(nb, HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()

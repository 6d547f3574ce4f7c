"""Figures of the synthetic sky: counts map, errors vs G, injected streams.

:func:`make_figures` reads the bulk files of ``paths.raw`` one at a time (a few columns; only
histograms and the stream members are kept, never the catalog) and the member ids from the
``truth_streams`` table, and writes PNGs under ``sky.figures_dir``:

- ``sky_counts.png``: healpy Mollweide map of log10 star counts per pixel, Galactic coordinates;
- ``errors_vs_g.png``: median parallax/pmra/pmdec errors and radial_velocity_error in bins of G,
  with the model's DR3 relations;
- ``model_full_sky.png``: the model's expected counts over the whole sky (G < limit, with dust),
  whatever region was generated;
- ``streams_on_sky.png``: injected stream members on the sky (ra, dec) with galstreams' tracks,
  and GD-1 in its own frame (phi1, phi2).

Run: ``python -m gaialake.sky.sky_figures [--conf FILE] [--set key=value ...]``.
"""
from __future__ import annotations

import glob
import os
import sys

import numpy as np

from gaialake.conf import Conf, load_conf
from gaialake.log import get_logger

__all__ = ["make_figures", "plot_model_map", "plot_count_map", "plot_errors_vs_g", "plot_streams"]

log = get_logger("sky.figures")

G_EDGES = np.arange(8.0, 20.8, 0.25)
ERR_EDGES = np.geomspace(1e-3, 1e2, 401)
ERR_COLUMNS = ["parallax_error", "pmra_error", "pmdec_error", "radial_velocity_error"]


def _matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_count_map(counts: np.ndarray, order: int, path: str, title: str = "") -> str:
    """Mollweide map (Galactic) of log10 counts per nested pixel at ``order`` (ICRS pixels)."""
    import healpy as hp

    plt = _matplotlib()
    m = np.where(counts > 0, np.log10(np.maximum(counts, 1)), hp.UNSEEN)
    hp.mollview(m, nest=True, coord=["C", "G"], title=title or "synthetic Gaia sky: log10 stars per pixel",
                unit=f"log10 N / pixel (order {order})", cmap="viridis")
    hp.graticule(dpar=30, dmer=60, alpha=0.4)
    plt.savefig(path, dpi=120, bbox_inches="tight")
    plt.close("all")
    return path


def plot_model_map(conf: Conf, path: str, order: int = 5) -> str:
    """Mollweide map of the model's expected star counts (log10 per pixel) over the full sky."""
    from gaialake.sky.skymodel import build_sky_model, expected_counts

    full = conf.with_overrides(["sky.region=full", f"sky.model_order={order}", "sky.streams=off",
                                "sky.stars_per_file=1e15", "sky.sample_order=" + str(order)])
    model = build_sky_model(full)
    counts = expected_counts(model, np.arange(12 * 4**order), order).sum(axis=0)
    return plot_count_map(counts, order, path, f"model ({model.galaxy}), full sky: "
                          f"{model.natural_count:.2e} stars with G < {model.g_limit}")


def _median_from_hist(hist: np.ndarray) -> np.ndarray:
    """Median (in ERR_EDGES units) of each row of a histogram over ERR_EDGES."""
    cum = np.cumsum(hist, axis=1)
    tot = cum[:, -1:]
    k = np.argmax(cum >= 0.5 * np.maximum(tot, 1), axis=1)
    centers = np.sqrt(ERR_EDGES[:-1] * ERR_EDGES[1:])
    return np.where(tot[:, 0] > 0, centers[k], np.nan)


def plot_errors_vs_g(hists: dict[str, np.ndarray], path: str, rv_g_limit: float = 14.5) -> str:
    """Median errors in G bins (from 2-D histograms over G_EDGES x ERR_EDGES) with model curves."""
    from gaialake.sky.observe import parallax_error_mas, pm_errors_masyr, rv_error_kms

    plt = _matplotlib()
    g = 0.5 * (G_EDGES[:-1] + G_EDGES[1:])
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"parallax_error": ("C0", "parallax_error (mas)"), "pmra_error": ("C1", "pmra_error (mas/yr)"),
              "pmdec_error": ("C2", "pmdec_error (mas/yr)")}
    for col, (c, label) in styles.items():
        ax[0].plot(g, _median_from_hist(hists[col]), "o", ms=3, color=c, label=f"{label}, sky median")
    gg = np.linspace(8, 20.7, 200)
    pmra, pmdec = pm_errors_masyr(gg)
    ax[0].plot(gg, parallax_error_mas(gg), "-", color="C0", lw=1, label="DR3 relation (parallax)")
    ax[0].plot(gg, pmra, "--", color="C1", lw=1)
    ax[0].plot(gg, pmdec, ":", color="C2", lw=1)
    ax[0].set(yscale="log", xlabel="G (mag)", ylabel="uncertainty", title="astrometric errors vs G")
    ax[0].legend(fontsize=7)
    ax[1].plot(g, _median_from_hist(hists["radial_velocity_error"]), "o", ms=3, color="C3",
               label="radial_velocity_error, sky median")
    gr = np.linspace(8, rv_g_limit, 100)
    ax[1].plot(gr, rv_error_kms(gr, rv_g_limit), "-", color="C3", lw=1, label="model")
    ax[1].set(yscale="log", xlabel="G (mag)", ylabel="km/s", title="radial velocity errors (bright subset)")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_streams(members: dict[str, tuple[np.ndarray, np.ndarray]], path: str,
                 background: tuple[np.ndarray, np.ndarray] | None = None) -> str:
    """Stream members (ra, dec in deg, per stream) with galstreams' tracks; GD-1 in phi1/phi2."""
    import astropy.coordinates as coord
    import astropy.units as u

    from gaialake.sky.stream_mocks import STREAMS, galstreams_track, stream_frame, track_in_frame

    plt = _matplotlib()
    fig, ax = plt.subplots(1, 2, figsize=(13, 4.8), gridspec_kw=dict(width_ratios=[1.2, 1]))
    if background is not None and len(background[0]):
        ax[0].hexbin(background[0], background[1], gridsize=120, bins="log", cmap="Greys", mincnt=1,
                     linewidths=0)
    for i, (name, (ra, dec)) in enumerate(sorted(members.items())):
        ax[0].scatter(ra, dec, s=2, color=f"C{i}", label=f"{name} ({len(ra)} members)")
        spec = STREAMS.get(name)
        if spec is not None and spec.track:
            t = galstreams_track(spec.track)
            ax[0].plot(t.ra.deg, t.dec.deg, "-", color=f"C{i}", lw=0.8, alpha=0.8)
    ax[0].set(xlabel="ra (deg)", ylabel="dec (deg)", title="injected streams and galstreams tracks")
    ax[0].invert_xaxis()
    ax[0].legend(fontsize=7, markerscale=4)
    if "gd1" in members:
        ra, dec = members["gd1"]
        s = coord.SkyCoord(ra=ra * u.deg, dec=dec * u.deg).transform_to(stream_frame("GD1Koposov10"))
        ax[1].scatter(s.phi1.wrap_at(180 * u.deg).deg, s.phi2.deg, s=2, color="C0", label="GD-1 members")
        T = track_in_frame(STREAMS["gd1"].track, "GD1Koposov10")
        ax[1].plot(T["phi1"], T["phi2"], "k-", lw=1, label="galstreams GD-1-I21 track")
        ax[1].set(xlabel="phi1 (deg)", ylabel="phi2 (deg)", ylim=(-8, 6), title="GD-1 frame (Koposov+10)")
        ax[1].legend(fontsize=7, markerscale=4)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _member_ids(conf: Conf) -> dict[int, str]:
    try:
        from gaialake import tables
        from gaialake.io.delta import read_table
        from gaialake.io.spark import get_spark

        df = read_table(get_spark(conf), conf, tables.TRUTH_STREAMS)
        return {int(r[0]): r[1] for r in df.select("source_id", "stream").collect()}
    except FileNotFoundError:
        return {}


def make_figures(conf: Conf, count_order: int = 7, max_background: int = 200000) -> list[str]:
    """Write the figures of the sky in ``paths.raw`` under ``sky.figures_dir``; returns their
    paths."""
    import pyarrow.compute as pc

    from gaialake.io.bulkfile import parse_bulk_file

    raw = conf.path("paths.raw")
    files = sorted(glob.glob(os.path.join(raw, "GaiaSource_*.csv.gz")))
    if not files:
        raise FileNotFoundError(f"no GaiaSource_*.csv.gz in {raw}: run `gaialake generate` first")
    out_dir = conf.report_path("sky.figures_dir")
    os.makedirs(out_dir, exist_ok=True)
    ids = _member_ids(conf)
    member_set = np.fromiter(ids, np.int64, len(ids))
    counts = np.zeros(12 * 4**count_order)
    hists = {c: np.zeros((len(G_EDGES) - 1, len(ERR_EDGES) - 1)) for c in ERR_COLUMNS}
    members: dict[str, list] = {}
    bg_ra, bg_dec, seen = [], [], 0
    rng = np.random.default_rng(conf.seed_for("sky", "figures"))
    keep_fraction = min(1.0, max_background / float(conf.get("sky.n_stars", 1e6)))
    for f in files:
        for batch in parse_bulk_file(f):
            if batch.num_rows == 0:
                continue
            hpx29 = batch.column("hpx29").to_numpy(zero_copy_only=False)
            np.add.at(counts, hpx29 >> (2 * (29 - count_order)), 1)
            g = batch.column("phot_g_mean_mag").to_numpy(zero_copy_only=False).astype(float)
            for c in ERR_COLUMNS:
                e = pc.fill_null(batch.column(c), np.nan).to_numpy(zero_copy_only=False).astype(float)
                ok = np.isfinite(e)
                hists[c] += np.histogram2d(g[ok], e[ok], bins=[G_EDGES, ERR_EDGES])[0]
            ra = batch.column("ra").to_numpy(zero_copy_only=False)
            dec = batch.column("dec").to_numpy(zero_copy_only=False)
            keep = rng.random(len(ra)) < keep_fraction
            bg_ra.append(ra[keep]), bg_dec.append(dec[keep])
            seen += len(ra)
            if len(member_set):
                sid = batch.column("source_id").to_numpy(zero_copy_only=False)
                hit = np.isin(sid, member_set)
                for s, r, d in zip(sid[hit], ra[hit], dec[hit]):
                    members.setdefault(ids[int(s)], []).append((r, d))
    paths = [plot_model_map(conf, os.path.join(out_dir, "model_full_sky.png")),
             plot_count_map(counts, count_order, os.path.join(out_dir, "sky_counts.png"),
                            f"synthetic Gaia sky ({seen:,} stars, G < {conf.get('sky.g_limit', 20.7)})"),
             plot_errors_vs_g(hists, os.path.join(out_dir, "errors_vs_g.png"),
                              float(conf.get("sky.rv_g_limit", 14.5)))]
    mem = {k: (np.array([p[0] for p in v]), np.array([p[1] for p in v])) for k, v in members.items()}
    paths.append(plot_streams(mem, os.path.join(out_dir, "streams_on_sky.png"),
                              (np.concatenate(bg_ra), np.concatenate(bg_dec))))
    log.info("figures: %s", ", ".join(paths))
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m gaialake.sky.sky_figures [--conf FILE] [--set key=value ...]``: write the
    figures; returns the exit status."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m gaialake.sky.sky_figures", description=__doc__.split("\n")[0])
    parser.add_argument("--conf")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    make_figures(load_conf(args.conf, args.set))
    return 0


if __name__ == "__main__":
    sys.exit(main())

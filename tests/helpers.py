"""Shared builders of the test suite (import from here, never from another test file).

- Gaia DR3 bulk files in ESA's exact format: :func:`dr3_table`, :func:`dr3_lines`,
  :func:`write_dr3_file` (ECSV header, nulls, booleans).
- The stream-search toy patch: :func:`toy_patch` (a patch in its own frame with a labelled
  stream), :data:`STREAM_SR` (the signal region holding its stream), :func:`toy_patch_on_sky`
  and :func:`write_toy_sky` (the patch put on the sky and written as ``gaia_source``);
  :func:`realistic_search_settings`, :func:`search_toy_patch` and :data:`THRESHOLD_Z` of the
  realistic-contrast tests.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.stats import truncnorm

from gaialake.io.bulkfile import format_columns
from gaialake.astro.healpix import pixel_of
from gaialake.io.dr3schema import DR3_COLUMNS, arrow_type, header_text
from gaialake.streams.patch_grid import from_patch_frame, patch_centers
from gaialake.streams.regions import SignalRegion


def dr3_table(n: int, seed: int = 0, ra_range=(150.0, 160.0), dec_range=(30.0, 40.0)) -> pa.Table:
    """``n`` plausible DR3 rows: real columns filled, the rest null; unique source_ids."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(*ra_range, n)
    dec = rng.uniform(*dec_range, n)
    pix12 = pixel_of(ra, dec, 12)
    source_id = (pix12 << 35) + rng.choice(2**30, n, replace=False) + seed * 7
    g = rng.uniform(12, 20.5, n).astype(np.float32)
    values = {
        "solution_id": np.full(n, 1636148068921376768, np.int64),
        "designation": np.array([f"Gaia DR3 {s}" for s in source_id], dtype=object),
        "source_id": source_id.astype(np.int64),
        "random_index": rng.choice(10**9, n, replace=False).astype(np.int64),
        "ref_epoch": np.full(n, 2016.0),
        "ra": ra, "dec": dec,
        "parallax": rng.normal(0.3, 0.5, n), "parallax_error": rng.uniform(0.02, 0.5, n).astype(np.float32),
        "pmra": rng.normal(-3, 5, n), "pmdec": rng.normal(-4, 5, n),
        "pmra_error": rng.uniform(0.02, 0.6, n).astype(np.float32),
        "pmdec_error": rng.uniform(0.02, 0.6, n).astype(np.float32),
        "ruwe": rng.uniform(0.9, 1.3, n).astype(np.float32),
        "astrometric_params_solved": np.full(n, 31, np.int8),
        "astrometric_primary_flag": rng.random(n) < 0.5,
        "phot_g_mean_mag": g, "bp_rp": rng.uniform(0.3, 2.0, n).astype(np.float32),
        "phot_variable_flag": np.array(["NOT_AVAILABLE"] * n, dtype=object),
        "has_xp_continuous": rng.random(n) < 0.3,
    }
    cols = []
    for c in DR3_COLUMNS:
        t = arrow_type(c.datatype)
        if c.name in values:
            v = values[c.name]
            mask = None
            if c.name in ("parallax", "pmra", "pmdec"):  # a few 2-parameter sources
                mask = np.zeros(n, bool)
                mask[::17] = True
            cols.append(pa.array(v, type=t, mask=mask))
        else:
            cols.append(pa.nulls(n, t))
    return pa.Table.from_arrays(cols, names=[c.name for c in DR3_COLUMNS])


def dr3_lines(table: pa.Table) -> list[str]:
    return format_columns(table, DR3_COLUMNS).to_pylist()


def write_dr3_file(path: Path, lines: list[str], header: str | None = None) -> Path:
    """Write data lines under an ESA ECSV header as gzip."""
    with gzip.open(path, "wt", newline="\n") as out:
        out.write(header_text(DR3_COLUMNS) if header is None else header)
        for line in lines:
            out.write(line + "\n")
    return path


STREAM_SR = SignalRegion("pm_phi", 1, -9.0, -3.0)
#: Line significance (binomial z) a protocluster must reach to count as found in the
#: realistic-contrast searches of the toy patch (with the stream and its stream-free twin).
THRESHOLD_Z = 6.0


def search_toy_patch(n_stream: int, settings) -> tuple:
    """The realistic-contrast search: :func:`toy_patch` (seed 2, 30,000 field stars and
    ``n_stream`` stream stars) scored by ``settings`` in :func:`score_group` (seed 3), then the
    line finder on the scores; (patch, the scored stars, their scores, the protoclusters)."""
    import torch

    from gaialake.streams.linefind import LineFindSettings, find_protoclusters
    from gaialake.streams.search import score_group

    torch.set_num_threads(1)
    patch = toy_patch(30000, n_stream, seed=2)
    scores = score_group(patch, STREAM_SR, settings, seed=3).scores
    stars = patch.set_index("source_id").loc[scores.source_id]
    lines = find_protoclusters(stars.phi, stars.lam, stars.pm_phi, stars.pm_lam,
                               scores.score.to_numpy(), scores.source_id.to_numpy(),
                               LineFindSettings())
    return patch, stars, scores.score.to_numpy(), lines


def realistic_search_settings():
    """The search of the realistic-contrast toy-patch tests: CATHODE with a control-region MAF
    4 x 32 (<= 20 epochs), boosted trees of 100 iterations, 5 folds; a pm range holding every
    toy star (with (-15, 15) the few stars beyond it leave the control region, and CATHODE's
    best line fell from z 7.4 to 4.0: the test's margin is that of one seed)."""
    from gaialake.models.train import TrainSettings
    from gaialake.streams.regions import FeatureMap
    from gaialake.streams.search import SearchSettings

    return SearchSettings(methods=("cathode",), flow={"type": "maf", "transforms": 4,
                                                      "hidden": 32},
                          train=TrainSettings(lr=1e-3, batch_size=256, max_epochs=20, patience=4),
                          fmap=FeatureMap(15.0, {3: (None, 20.2), 4: (0.5, 1.0)}),
                          classifier={"max_iter": 100}, min_patch_stars=100, min_sr_stars=50,
                          pm_range=(-50.0, 50.0))   # the toy patch's stars are the group: all


def toy_patch(n_background: int = 20000, n_stream: int = 300, seed: int = 0,
              radius_deg: float = 15.0, fiducial_deg: float = 10.0, g_max: float = 20.2,
              bp_rp_window: tuple[float, float] = (0.5, 1.0)) -> pd.DataFrame:
    """A patch in its own frame (phi, lam deg; pm mas/yr; g, bp_rp mag) with a ``stream`` label.

    Background: uniform in the disc, G rising exponentially to ``g_max``, pm Gaussian with a
    dispersion growing with G and means drifting with position, colour a truncated Gaussian in
    the window whose mean follows G. Stream: the line lam = 0.2 phi + 1 (width 0.25 deg), pm
    (-6 + 0.05 phi, 2.5) +- 0.3 mas/yr, on a narrow colour-magnitude sequence.
    """
    rng = np.random.default_rng(seed)
    nb = n_background
    r = radius_deg * np.sqrt(rng.uniform(0, 1, nb))
    t = rng.uniform(0, 2 * np.pi, nb)
    phi, lam = r * np.cos(t), r * np.sin(t)
    k, g_lo = 0.7, 14.0
    u = rng.uniform(0, 1, nb)
    g = g_max + np.log(np.exp(-k * (g_max - g_lo)) + u * (1 - np.exp(-k * (g_max - g_lo)))) / k
    sig = 2.5 + 0.8 * (g_max - g)
    mu_c, sc = 0.75 + 0.03 * (g - 18), 0.12
    lo, hi = bp_rp_window
    bg = pd.DataFrame({
        "phi": phi, "lam": lam,
        "pm_phi": rng.normal(-2.0 + 0.05 * lam, sig), "pm_lam": rng.normal(-0.5 + 0.04 * phi, sig),
        "g": g,
        "bp_rp": truncnorm.rvs((lo - mu_c) / sc, (hi - mu_c) / sc, loc=mu_c, scale=sc,
                               random_state=rng)})
    ns = n_stream
    sphi = rng.uniform(-12, 12, ns)
    sg = g_max - rng.exponential(1.2, ns)
    sg = np.where(sg < 16, 16 + rng.uniform(0, g_max - 16, ns), sg)
    st = pd.DataFrame({
        "phi": sphi, "lam": 0.2 * sphi + 1 + rng.normal(0, 0.25, ns),
        "pm_phi": -6 + 0.05 * sphi + rng.normal(0, 0.3, ns), "pm_lam": 2.5 + rng.normal(0, 0.3, ns),
        "g": sg, "bp_rp": 0.62 + 0.04 * (sg - 18) + rng.normal(0, 0.015, ns)})
    st = st[(np.hypot(st.phi, st.lam) < radius_deg) & (st.bp_rp > lo) & (st.bp_rp < hi)]
    out = pd.concat([bg.assign(stream=False), st.assign(stream=True)], ignore_index=True)
    out = out.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    out["source_id"] = np.arange(len(out), dtype=np.int64) * 7 + 1
    out["fiducial"] = np.hypot(out.phi, out.lam) < fiducial_deg
    return out


def toy_patch_on_sky(patch: pd.DataFrame, ra0: float, dec0: float, rng) -> pd.DataFrame:
    ra, dec, pmra, pmdec = from_patch_frame(patch.phi, patch.lam, patch.pm_phi, patch.pm_lam,
                                            ra0, dec0)
    return pd.DataFrame({"source_id": patch.source_id.to_numpy(np.int64), "ra": ra, "dec": dec,
                         "pmra": pmra, "pmdec": pmdec,
                         "parallax": rng.uniform(-0.3, 0.9, len(patch)),
                         "phot_g_mean_mag": patch.g.to_numpy(), "bp_rp": patch.bp_rp.to_numpy()})


def write_toy_sky(spark, conf, near: pd.DataFrame, far: pd.DataFrame, rng) -> tuple:
    """Put toy patch ``near`` at the first patch centre of a 30 deg grid and ``far`` at the
    centre farthest from it, restrict ``patches.only`` to those two, and write gaia_source;
    returns the two centres (rows of the grid)."""
    from gaialake.io.delta import write_table

    grid = patch_centers(2, 30.0)
    a = grid.iloc[0]
    b = grid.iloc[int(np.argmax(np.hypot(grid.ra - a.ra, grid.dec - a.dec)))]
    conf.set("patches.only", [int(a.patch_id), int(b.patch_id)])
    src = pd.concat([toy_patch_on_sky(near, a.ra, a.dec, rng), toy_patch_on_sky(far, b.ra, b.dec, rng)],
                    ignore_index=True)
    src["hpx"] = pixel_of(src.ra, src.dec, int(conf.get("catalog.partition_order")))
    write_table(spark.createDataFrame(src), conf, "gaia_source", partition_by=["hpx"])
    return a, b


def toy_search_sets(tmp: Path, max_epochs: int, max_iter: int, *extra: str) -> list[str]:
    """``--set`` items of a small, fast stream search with its paths under ``tmp``: one pm axis
    over [-9, 0] mas/yr, a 2 x 16 MAF trained ``max_epochs``, CATHODE's boosted trees of
    ``max_iter`` iterations; ``extra`` items are appended."""
    return [f"paths.raw={tmp / 'raw'}", f"paths.warehouse={tmp / 'warehouse'}",
            f"paths.mlflow={tmp / 'mlruns'}", "spark.shuffle_partitions=4",
            "streams.pm_axes=[pm_phi]", "streams.pm_range_masyr=[-9.0, 0.0]",
            "streams.flow={type: maf, transforms: 2, hidden: 16}",
            f"streams.train.max_epochs={max_epochs}",
            f"streams.cathode.classifier={{max_iter: {max_iter}}}",
            "streams.min_patch_stars=300", "streams.min_sr_stars=50", *extra]


#: One ingest benchmark's results, as bench_ingest returns them (tests/bench).
BENCH_INGEST = {"rows": 1000, "files": 1, "raw_bytes": 1 << 20, "cores": 2, "pyarrow_s": 1.0,
                "pyarrow_rows_s_core": 500.0, "pyarrow_peak_mib": 100.0, "parquet_bytes": 1 << 20,
                "ingest_s": 10.0, "ingest_rows_s_core": 50.0, "ingest_peak_mib": 900.0,
                "delta_bytes": 200_000, "ingest_stage_s": 5.0, "ingest_stage_rows_s_core": 100.0,
                "ratio_wall": 0.1, "ratio_stage": 0.2, "generate_stars_s_core": 1e4,
                "generate_s": 3.0, "generate_peak_mib": 800.0}

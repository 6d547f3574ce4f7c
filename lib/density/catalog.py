"""6D stars of a DR3-format catalog for the density measurement (``density.source: catalog``).

Pure pandas/numpy; the Spark adapter is :mod:`gaialake.io.densityread`. The steps:

1. **Parent sample** (:func:`quality_mask`): stars with a 5- or 6-parameter astrometric
   solution (``astrometric_params_solved`` 31 or 95; 3 has no parallax), ``ruwe <= ruwe_max``
   (single-star solutions), ``(parallax - zp) / parallax_error >= parallax_over_error``, within
   ``radius_kpc`` of the Sun, and absolute magnitude ``M_G = G + 5 log10(parallax_c / mas) - 10
   < abs_mag_max`` (no extinction). The last cut makes the tracer volume-limited: every star
   with ``M_G < abs_mag_max`` inside the radius is brighter than
   ``G_max = abs_mag_max + 10 + 5 log10(radius / kpc)``, so a magnitude limit fainter than
   ``G_max`` does not make the parent sample depend on distance. Gaia's astrometric catalog is
   taken as complete at ``G_max`` (~15 for the defaults; DR3 is >95 % complete from G 12 to 19
   outside crowded fields, Cantat-Gaudin et al. 2023, A&A 669, A55); what is not assumed is
   measured: :func:`astrometric_reach` gives, per G bin, the distance out to which the
   parallax_over_error cut keeps 90 % of the stars, to be compared with the radius.
2. **Distances** (:func:`distance_from_parallax`): ``d = 1 / (parallax - zp)`` with the DR3
   zero point ``zp`` (Lindegren et al. 2021, A&A 649, A4: -0.017 mas from quasars, varying by
   ~0.01-0.02 mas with G, colour and position). :func:`distance_bias_bound` bounds the
   fractional bias at the selection radius: ``1 / poe_min^2`` from the noise (second order in
   sigma_parallax / parallax; the cut truncates the tail that would make it diverge) plus
   ``radius * zp_err`` from the zero point's spread; the distance scatter there is
   ``radius / poe_min``.
3. **Frame**: Galactocentric x (kpc), v (km/s) with astropy and the conf's solar parameters
   (:func:`gaialake.density.selection.icrs_to_galactocentric`).
4. **Radial-velocity selection function** estimated from the catalog itself: the parent stars
   are binned by G, BP-RP (a null colour is its own bin) and HEALPix pixel (nested, order
   ``hpx_order``) (:func:`cell_columns`); per cell ``s = n_rv / n_parent``, the fraction of the
   parent stars that have a radial velocity with ``radial_velocity_error <= rv_error_max_kms``
   (:func:`selection_function`). RV stars get n(x) weights ``1 / s`` (:func:`selection_weights`)
   so that the weights of a cell sum to its parent count; cells with ``s < floor`` are dropped
   and counted, by distance shell (:func:`selection_summary`: the parent fraction lost per shell
   is the distance-dependent incompleteness left). Assumed: inside a cell the RV selection does
   not depend on distance or velocity (Gaia's RVS selection is on G_RVS, colour and crowding).
   The estimate's own noise enters the errors: :class:`SelectionResampler` re-draws each cell's
   counts for every bootstrap member (its RV stars' Poisson counts, Poisson draws for the rest
   of the parent sample) and recomputes the weights, so s varies by its binomial spread.
5. **Errors** (:func:`velocity_errors_kms`, :func:`error_budget`): the heliocentric 3D velocity
   error propagated from parallax, proper motion and RV errors (first order, correlations
   ignored); stars above ``v_error_max_kms`` are cut when it is set. Left: the errors inflate
   velocity dispersions by ``<eps^2>`` and blur positions by ``d sigma_parallax / parallax``;
   :func:`error_budget` reports both (``v_err_var_frac_max`` bounds the fractional inflation of
   the coldest dispersion squared, to first order the fractional density bias of a Jeans-like
   estimator), nothing is deconvolved.

Units: deg, mas, mas/yr, km/s, mag, kpc.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

from gaialake.astro.frame import SolarParameters
from gaialake.astro.healpix import order_npix, pixel_of
from gaialake.density.selection import icrs_to_galactocentric
from gaialake.density.validation import ValidationSample

__all__ = ["INPUT_COLUMNS", "STAR_COLUMNS", "CELL_COLUMNS", "ANNOTATED_SCHEMA", "K_KMS_PER_MASYR_KPC",
           "CatalogSettings", "pushdown_predicate", "reach_predicate", "distance_from_parallax", "quality_mask",
           "cell_columns", "annotate", "selection_function", "selection_weights",
           "selection_summary", "SelectionResampler", "selection_resampler",
           "sample_rows", "SAMPLE_SCHEMA", "sample_metrics", "sample_of_rows",
           "velocity_errors_kms", "error_budget", "distance_bias_bound",
           "g_bin_sql", "astrometric_reach", "catalog_sample"]

#: ``gaia_source`` columns the density job reads.
INPUT_COLUMNS = ("source_id", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error",
                 "pmdec", "pmdec_error", "radial_velocity", "radial_velocity_error", "ruwe",
                 "astrometric_params_solved", "phot_g_mean_mag", "bp_rp")
#: Columns of an annotated parent star (:func:`annotate`) besides the cell and ``has_rv``.
STAR_COLUMNS = ("source_id", "ra", "dec", "parallax", "parallax_error", "pmra", "pmra_error",
                "pmdec", "pmdec_error", "radial_velocity", "radial_velocity_error",
                "phot_g_mean_mag", "bp_rp")
#: The selection-function cell (G bin, colour bin, pixel) and the distance shell.
CELL_COLUMNS = ("g_bin", "c_bin", "pix", "shell")
#: Rows of :func:`annotate` as Spark DDL.
ANNOTATED_SCHEMA = ", ".join(
    [f"{c} {'long' if c == 'source_id' else 'double'}" for c in STAR_COLUMNS]
    + ["g_bin int", "c_bin int", "pix long", "shell int", "has_rv boolean"])
#: km/s per (mas/yr x kpc): the IAU astronomical unit per Julian year in km/s.
K_KMS_PER_MASYR_KPC = 4.740470463533348


@dataclass(frozen=True)
class CatalogSettings:
    """Conf ``density.catalog`` and ``density.radius_kpc`` (units in the names)."""

    radius_kpc: float
    params_solved: tuple[int, ...] = (31, 95)
    ruwe_max: float = 1.4
    parallax_over_error: float = 10.0
    zero_point_mas: float = -0.017
    zero_point_err_mas: float = 0.015
    abs_mag_max: float | None = 2.5
    rv_error_max_kms: float = 5.0
    v_error_max_kms: float | None = None
    g_range_mag: tuple[float, float] = (3.0, 17.0)
    g_step_mag: float = 0.25
    bp_rp_range_mag: tuple[float, float] = (-0.5, 3.5)
    bp_rp_step_mag: float = 0.5
    hpx_order: int = 3
    floor: float = 0.05
    shell_kpc: float = 1.0
    max_rows: int = 2_000_000

    @classmethod
    def from_conf(cls, density_conf: Mapping[str, Any]) -> "CatalogSettings":
        """From the conf section ``density`` (its ``catalog`` section and ``radius_kpc``)."""
        c = density_conf["catalog"]
        sel = c["selection"]
        opt = (lambda v: None if v is None else float(v))
        out = cls(float(density_conf["radius_kpc"]),
                  tuple(int(p) for p in c["astrometric_params_solved"]),
                  float(c["ruwe_max"]), float(c["parallax_over_error"]),
                  float(c["parallax_zero_point_mas"]), float(c["parallax_zero_point_err_mas"]),
                  opt(c["abs_mag_max"]), float(c["rv_error_max_kms"]), opt(c["v_error_max_kms"]),
                  tuple(float(g) for g in sel["g_range_mag"]), float(sel["g_step_mag"]),
                  tuple(float(b) for b in sel["bp_rp_range_mag"]), float(sel["bp_rp_step_mag"]),
                  int(sel["hpx_order"]), float(sel["floor"]), float(sel["shell_kpc"]),
                  int(c["max_rows"]))
        for key, ok in (("parallax_over_error", out.parallax_over_error > 0),
                        ("selection.g_step_mag", out.g_step_mag > 0),
                        ("selection.bp_rp_step_mag", out.bp_rp_step_mag > 0),
                        ("selection.shell_kpc", out.shell_kpc > 0),
                        ("selection.hpx_order", 0 <= out.hpx_order <= 12),
                        ("selection.floor", 0 < out.floor <= 1),
                        ("selection.g_range_mag", out.g_range_mag[1] > out.g_range_mag[0]),
                        ("selection.bp_rp_range_mag",
                         out.bp_rp_range_mag[1] > out.bp_rp_range_mag[0])):
            if not ok:
                raise ValueError(f"conf density.catalog.{key}: out of range ({c})")
        if out.max_count_rows > out.max_rows:
            raise ValueError(f"the selection-function counts may have {out.max_count_rows} rows, "
                             f"more than conf density.catalog.max_rows {out.max_rows}: lower "
                             "density.catalog.selection.hpx_order or coarsen its bins")
        return out

    @property
    def n_g(self) -> int:
        """Number of G bins."""
        return int(np.ceil((self.g_range_mag[1] - self.g_range_mag[0]) / self.g_step_mag))

    @property
    def n_c(self) -> int:
        """Number of BP-RP bins (the null-colour bin -1 not counted)."""
        return int(np.ceil((self.bp_rp_range_mag[1] - self.bp_rp_range_mag[0])
                           / self.bp_rp_step_mag))

    @property
    def max_count_rows(self) -> int:
        """The most (cell, shell) rows the bin counts can have."""
        return (self.n_g * (self.n_c + 1) * order_npix(self.hpx_order)
                * int(np.ceil(self.radius_kpc / self.shell_kpc)))


def pushdown_predicate(s: CatalogSettings) -> str:
    """Spark SQL predicate on raw ``gaia_source`` columns holding every star of
    :func:`quality_mask` (the absolute-magnitude cut as its G bound at the radius)."""
    solved = ", ".join(str(p) for p in s.params_solved)
    parts = [f"astrometric_params_solved IN ({solved})", f"ruwe <= {s.ruwe_max!r}",
             f"parallax > {s.zero_point_mas + 1.0 / s.radius_kpc!r}",
             f"parallax - ({s.zero_point_mas!r}) >= {s.parallax_over_error!r} * parallax_error",
             "phot_g_mean_mag IS NOT NULL"]
    if s.abs_mag_max is not None:
        parts.append(f"phot_g_mean_mag < {s.abs_mag_max + 10.0 + 5.0 * np.log10(s.radius_kpc)!r}")
    return " AND ".join(f"({p})" for p in parts)


def reach_predicate(s: CatalogSettings) -> str:
    """Spark SQL predicate of the stars whose parallax errors :func:`astrometric_reach` uses:
    the solution and ruwe cuts, a G magnitude and a positive parallax error."""
    solved = ", ".join(str(p) for p in s.params_solved)
    return (f"astrometric_params_solved IN ({solved}) AND ruwe <= {s.ruwe_max!r} AND "
            "phot_g_mean_mag IS NOT NULL AND parallax_error > 0")


def distance_from_parallax(parallax_mas, zero_point_mas: float) -> np.ndarray:
    """Heliocentric distance (kpc) ``1 / (parallax - zero_point)``; NaN where that is <= 0."""
    p = np.asarray(parallax_mas, float) - zero_point_mas
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(p > 0, 1.0 / p, np.nan)


def quality_mask(pdf: pd.DataFrame, s: CatalogSettings) -> np.ndarray:
    """The parent sample: astrometric cuts, within the radius, M_G < abs_mag_max (bool array)."""
    num = (lambda c: pd.to_numeric(pdf[c], errors="coerce").to_numpy(float))
    plx_c = num("parallax") - s.zero_point_mas
    d = distance_from_parallax(num("parallax"), s.zero_point_mas)
    solved = pd.to_numeric(pdf["astrometric_params_solved"], errors="coerce")
    g = num("phot_g_mean_mag")
    with np.errstate(invalid="ignore", divide="ignore"):
        keep = (solved.isin(s.params_solved).to_numpy() & (num("ruwe") <= s.ruwe_max)
                & (plx_c >= s.parallax_over_error * num("parallax_error"))
                & (d < s.radius_kpc) & np.isfinite(g))
        if s.abs_mag_max is not None:
            keep &= g + 5.0 * np.log10(plx_c) - 10.0 < s.abs_mag_max
    return keep


def cell_columns(pdf: pd.DataFrame, s: CatalogSettings) -> dict[str, np.ndarray]:
    """The selection cell of each star: ``g_bin``, ``c_bin`` (G and BP-RP bins, clipped to the
    ranges; -1: null colour), ``pix`` (nested HEALPix at ``hpx_order``) and ``shell``
    (distance // shell_kpc)."""
    g = pd.to_numeric(pdf["phot_g_mean_mag"], errors="coerce").to_numpy(float)
    c = pd.to_numeric(pdf["bp_rp"], errors="coerce").to_numpy(float)
    g_bin = np.clip(np.floor((g - s.g_range_mag[0]) / s.g_step_mag), 0, s.n_g - 1)
    c_bin = np.where(np.isfinite(c), np.clip(np.floor((c - s.bp_rp_range_mag[0])
                                                      / s.bp_rp_step_mag), 0, s.n_c - 1), -1)
    d = distance_from_parallax(pdf["parallax"].to_numpy(float), s.zero_point_mas)
    return {"g_bin": g_bin.astype(np.int32), "c_bin": c_bin.astype(np.int32),
            "pix": pixel_of(pdf["ra"].to_numpy(float), pdf["dec"].to_numpy(float), s.hpx_order),
            "shell": np.floor(d / s.shell_kpc).astype(np.int32)}


def annotate(pdf: pd.DataFrame, s: CatalogSettings) -> pd.DataFrame:
    """The parent stars of ``pdf`` (raw :data:`INPUT_COLUMNS`): :data:`STAR_COLUMNS` as
    float64 (source_id int64), their :data:`CELL_COLUMNS`, and ``has_rv`` (a finite radial
    velocity with ``radial_velocity_error <= rv_error_max_kms``)."""
    missing = [c for c in INPUT_COLUMNS if c not in pdf.columns]
    if missing:
        raise KeyError(f"gaia_source lacks columns {missing} that density.source: catalog reads")
    parent = pdf.loc[quality_mask(pdf, s)]
    out = pd.DataFrame({c: pd.to_numeric(parent[c], errors="coerce").astype(float)
                        for c in STAR_COLUMNS if c != "source_id"}, index=parent.index)
    out.insert(0, "source_id", parent["source_id"].astype(np.int64))
    for name, col in cell_columns(out, s).items():
        out[name] = col
    rv, rv_err = out["radial_velocity"].to_numpy(), out["radial_velocity_error"].to_numpy()
    with np.errstate(invalid="ignore"):
        out["has_rv"] = np.isfinite(rv) & (rv_err <= s.rv_error_max_kms)
    return out.reset_index(drop=True)


def selection_function(counts: pd.DataFrame, floor: float) -> pd.DataFrame:
    """Per cell (g_bin, c_bin, pix) from (cell, shell) counts ``n_parent``, ``n_rv``: the
    summed counts, ``s = n_rv / n_parent`` and ``kept`` (``s >= floor``)."""
    cells = counts.groupby(["g_bin", "c_bin", "pix"], as_index=False)[["n_parent", "n_rv"]].sum()
    if (cells["n_rv"] > cells["n_parent"]).any():
        raise ValueError("selection cells with more RV stars than parent stars: the counts are "
                         "not of the same sample")
    cells["s"] = cells["n_rv"] / cells["n_parent"].where(cells["n_parent"] > 0)
    cells["kept"] = cells["s"] >= floor
    return cells


def selection_weights(stars: pd.DataFrame, cells: pd.DataFrame
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights ``1 / s`` of RV ``stars`` (rows with the cell columns; weight 0 outside kept
    cells), the mask of stars in kept cells and each star's cell (its row of ``cells``)."""
    rows = cells.reset_index(drop=True).rename_axis("cell_row").reset_index()
    keyed = stars[["g_bin", "c_bin", "pix"]].merge(rows, on=["g_bin", "c_bin", "pix"],
                                                   how="left", validate="many_to_one")
    if keyed["s"].isna().any():
        raise ValueError(f"{int(keyed['s'].isna().sum())} RV stars fall in no counted cell: "
                         "the stars and the counts are not of the same read")
    kept = keyed["kept"].to_numpy(bool)
    return (np.where(kept, 1.0 / keyed["s"].to_numpy(float), 0.0), kept,
            keyed["cell_row"].to_numpy(np.int64))


@dataclass(frozen=True)
class SelectionResampler:
    """The RV selection function re-estimated on one bootstrap member's resample of the parent
    sample: ``cell`` (n,) the kept cell index of each sample star, per cell ``n_rv_other`` (RV
    stars not in the sample, e.g. cut on their velocity error) and ``n_non_rv`` (parent stars
    without an RV)."""

    cell: np.ndarray
    n_rv_other: np.ndarray
    n_non_rv: np.ndarray

    def __call__(self, count: np.ndarray, seed: int) -> np.ndarray:
        """The sample stars' weights for their bootstrap ``count`` (n,): :meth:`cell_weights`
        of their summed counts per cell, at each star's cell."""
        summed = np.bincount(self.cell, weights=np.asarray(count, float),
                             minlength=len(self.n_non_rv))
        return self.cell_weights(summed, seed)[self.cell]

    def cell_weights(self, summed_count: np.ndarray, seed: int) -> np.ndarray:
        """Per cell ``n_parent* / n_rv*`` from the sample stars' bootstrap counts summed per
        cell: ``n_rv*`` = ``summed_count`` + Poisson(n_rv_other), ``n_parent*`` = n_rv* +
        Poisson(n_non_rv) (draws from ``seed``), i.e. every parent star counted Poisson(1)
        times as the sample stars are; 0 where a cell's n_rv* is 0."""
        rng = np.random.default_rng([int(seed), 0x5E1])
        n_rv = np.asarray(summed_count, float) + rng.poisson(self.n_rv_other)
        n_parent = n_rv + rng.poisson(self.n_non_rv)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(n_rv > 0, n_parent / n_rv, 0.0)


def selection_resampler(cells: pd.DataFrame, cell: np.ndarray, n_in_sample: np.ndarray
                        ) -> SelectionResampler:
    """The :class:`SelectionResampler` of a sample whose stars lie in ``cell`` (index into
    ``cells``, :func:`selection_function`'s, row order) and which holds ``n_in_sample`` stars
    per cell (the whole sample's; ``cell`` may be a subsample's)."""
    n_rv, n_parent = cells["n_rv"].to_numpy(float), cells["n_parent"].to_numpy(float)
    other = n_rv - np.asarray(n_in_sample, float)
    if (other < 0).any():
        raise ValueError("selection cells with more sample stars than RV stars: the stars and "
                         "the counts are not of the same read")
    return SelectionResampler(np.asarray(cell, np.int64), other, n_parent - n_rv)


def sample_rows(stars: pd.DataFrame, cells: pd.DataFrame, s: CatalogSettings,
                solar: SolarParameters) -> pd.DataFrame:
    """The RV ``stars`` of :func:`annotate` in kept selection cells as the sample's rows:
    :data:`SAMPLE_COLUMNS`: ``source_id``, ``cell`` (row of ``cells``), Galactocentric x, y, z
    (kpc) and vx, vy, vz (km/s), ``weight`` 1/s, ``v_err_kms`` (:func:`velocity_errors_kms`),
    ``dist_kpc`` and ``poe`` (parallax over error, zero point removed). Pure; the catalog's
    batches go through it one by one."""
    weight, kept, cell = selection_weights(stars, cells)
    rows = stars.loc[kept]
    if not len(rows):
        return pd.DataFrame({c: np.empty(0, np.int64 if t == "long" else float) for c, t in
                             (f.split() for f in SAMPLE_SCHEMA.split(", "))})
    x, v = icrs_to_galactocentric(rows["ra"], rows["dec"], rows["parallax"] - s.zero_point_mas,
                                  rows["pmra"], rows["pmdec"], rows["radial_velocity"], solar)
    parallax_c = rows["parallax"].to_numpy(float) - s.zero_point_mas
    return pd.DataFrame({
        "source_id": rows["source_id"].to_numpy(np.int64),
        "cell": cell[kept],
        "x": x[:, 0], "y": x[:, 1], "z": x[:, 2], "vx": v[:, 0], "vy": v[:, 1], "vz": v[:, 2],
        "weight": weight[kept], "v_err_kms": velocity_errors_kms(rows, s.zero_point_mas),
        "dist_kpc": distance_from_parallax(rows["parallax"].to_numpy(float), s.zero_point_mas),
        "poe": parallax_c / rows["parallax_error"].to_numpy(float)})


#: :func:`sample_rows`' columns as Spark DDL (its rows in a streamed catalog sample).
SAMPLE_SCHEMA = ("source_id long, cell long, x double, y double, z double, vx double, "
                 "vy double, vz double, weight double, v_err_kms double, dist_kpc double, "
                 "poe double")


def selection_summary(counts: pd.DataFrame, cells: pd.DataFrame, s: CatalogSettings
                      ) -> dict[str, float]:
    """Counts that reconcile: parent and RV stars, those in kept and dropped cells, and the
    parent fraction lost in dropped cells per distance shell (``lost_frac_<lo>_<hi>`` kpc)."""
    kept = counts.merge(cells[["g_bin", "c_bin", "pix", "kept"]], on=["g_bin", "c_bin", "pix"])
    out: dict[str, float] = {
        "n_parent": int(counts["n_parent"].sum()), "n_rv": int(counts["n_rv"].sum()),
        "n_cells": int(len(cells)), "n_cells_dropped": int((~cells["kept"]).sum()),
        "n_parent_kept": int(kept.loc[kept["kept"], "n_parent"].sum()),
        "n_rv_kept": int(kept.loc[kept["kept"], "n_rv"].sum())}
    out["n_rv_dropped"] = out["n_rv"] - out["n_rv_kept"]
    shells = kept.groupby("shell").apply(
        lambda t: 1.0 - t.loc[t["kept"], "n_parent"].sum() / max(t["n_parent"].sum(), 1),
        include_groups=False)
    for shell, lost in shells.items():
        out[f"lost_frac_{shell * s.shell_kpc:g}_{(shell + 1) * s.shell_kpc:g}"] = float(lost)
    return out


def velocity_errors_kms(stars: pd.DataFrame, zero_point_mas: float) -> np.ndarray:
    """Heliocentric 3D velocity error (km/s) from parallax, proper-motion and RV errors: first
    order in each, correlations ignored (sigma_v_alpha^2 = (k d sigma_pmra)^2 +
    (k pmra d^2 sigma_parallax)^2, the same in dec, plus sigma_rv^2; d = 1/parallax_c)."""
    d = distance_from_parallax(stars["parallax"].to_numpy(float), zero_point_mas)
    sp = stars["parallax_error"].to_numpy(float)
    var = stars["radial_velocity_error"].to_numpy(float) ** 2
    for pm in ("pmra", "pmdec"):
        var = var + (K_KMS_PER_MASYR_KPC * d * stars[f"{pm}_error"].to_numpy(float)) ** 2 \
            + (K_KMS_PER_MASYR_KPC * stars[pm].to_numpy(float) * d**2 * sp) ** 2
    return np.sqrt(var)


def error_budget(v_err_kms: np.ndarray, v_kms: np.ndarray, dist_kpc: np.ndarray,
                 parallax_over_error: np.ndarray) -> dict[str, float]:
    """Median and p90 of the velocity error (km/s) and of the distance scatter
    d / (parallax / sigma) (kpc), and ``v_err_var_frac_max``: mean error variance over the
    smallest velocity variance of the sample (first-order bound of the dispersion inflation)."""
    if len(v_err_kms) == 0:
        return {}
    pos = np.asarray(dist_kpc) / np.asarray(parallax_over_error)
    v_var = float(np.min(np.var(v_kms, axis=0)))
    return {"v_err_kms_median": float(np.median(v_err_kms)),
            "v_err_kms_p90": float(np.percentile(v_err_kms, 90)),
            "pos_err_kpc_median": float(np.median(pos)),
            "pos_err_kpc_p90": float(np.percentile(pos, 90)),
            "v_err_var_frac_max": (float(np.mean(v_err_kms**2) / v_var) if v_var > 0
                                   else float("nan"))}


def distance_bias_bound(s: CatalogSettings) -> dict[str, float]:
    """At the selection radius: the fractional distance bias bound ``1 / poe^2 + radius *
    zp_err`` and the distance scatter ``radius / poe`` (kpc)."""
    noise = 1.0 / s.parallax_over_error**2
    zp = s.radius_kpc * s.zero_point_err_mas
    return {"dist_bias_frac_noise": noise, "dist_bias_frac_zero_point": zp,
            "dist_bias_frac_at_radius": noise + zp,
            "dist_scatter_kpc_at_radius": s.radius_kpc / s.parallax_over_error}


def g_bin_sql(s: CatalogSettings) -> str:
    """Spark SQL of the G bin of :func:`cell_columns` (for aggregates over raw rows)."""
    return (f"CAST(LEAST(GREATEST(FLOOR((phot_g_mean_mag - ({s.g_range_mag[0]!r})) / "
            f"{s.g_step_mag!r}), 0), {s.n_g - 1}) AS INT)")


def astrometric_reach(p90: pd.DataFrame, s: CatalogSettings) -> tuple[pd.DataFrame, dict]:
    """From the p90 parallax error (mas) per G bin (``g_bin``, ``parallax_error_p90_mas``) of
    the stars passing the solution and ruwe cuts: the distance (kpc) out to which
    ``parallax_c / parallax_error >= poe`` keeps 90 % of them, ``1 / (poe p90)``, per bin; and
    the smallest reach over the bins up to the parent's G bound with the number of those bins
    whose reach is short of the radius (there the poe cut truncates the parent sample)."""
    out = p90.sort_values("g_bin").reset_index(drop=True)
    out["g_mag"] = s.g_range_mag[0] + (out["g_bin"] + 0.5) * s.g_step_mag
    out["reach_kpc"] = 1.0 / (s.parallax_over_error * out["parallax_error_p90_mas"])
    g_max = np.inf if s.abs_mag_max is None else s.abs_mag_max + 10 + 5 * np.log10(s.radius_kpc)
    used = out[out["g_mag"] - 0.5 * s.g_step_mag < g_max]
    if not len(used):
        return out, {}
    return out, {"reach_min_kpc": float(used["reach_kpc"].min()),
                 "n_g_bins_short_of_radius": int((used["reach_kpc"] < s.radius_kpc).sum())}


def sample_metrics(rows: pd.DataFrame, s: CatalogSettings) -> dict[str, float]:
    """The sample's weight sum, velocity-error and distance budgets (:func:`error_budget`) and
    the distance bias bound, from :func:`sample_rows` (all of them, or a uniform subsample:
    then the weight sum is the subsample's)."""
    out = {"sum_weights": float(rows["weight"].sum())}
    out.update(error_budget(rows["v_err_kms"].to_numpy(), rows[["vx", "vy", "vz"]].to_numpy(),
                            rows["dist_kpc"].to_numpy(), rows["poe"].to_numpy()))
    out.update(distance_bias_bound(s))
    return out


def sample_of_rows(rows: pd.DataFrame, s: CatalogSettings, solar: SolarParameters,
                   grid_radius_frac: float, n_read: int) -> ValidationSample:
    """The density job's :class:`ValidationSample` of :func:`sample_rows`' ``rows`` (after the
    velocity-error cut) out of ``n_read`` RV stars read; ``rho_true`` has no truth."""
    if not len(rows):
        raise ValueError("density.source catalog: no RV star is left after the cuts and the "
                         "selection floor; check density.catalog")
    sun = solar.position_kpc
    return ValidationSample(rows[["x", "y", "z"]].to_numpy(), rows[["vx", "vy", "vz"]].to_numpy(),
                            rows["weight"].to_numpy(), None, "catalog", sun, sun,
                            grid_radius_frac * s.radius_kpc, s.radius_kpc, int(n_read),
                            from_catalog=True, keys=rows["source_id"].to_numpy(np.int64))


def catalog_sample(stars: pd.DataFrame, counts: pd.DataFrame, s: CatalogSettings,
                   solar: SolarParameters, grid_radius_frac: float
                   ) -> tuple[ValidationSample, dict[str, float], SelectionResampler]:
    """The density job's sample from the RV stars of :func:`annotate` (``stars``) and the
    (cell, shell) ``counts``: weights 1/s, Galactocentric x, v (:func:`sample_rows`), the
    velocity-error cut; the selection, distance and error metrics; and the sample's
    :class:`SelectionResampler` (the bootstrap members' weights)."""
    cells = selection_function(counts, s.floor)
    metrics: dict[str, float] = selection_summary(counts, cells, s)
    rows = sample_rows(stars, cells, s, solar)
    if s.v_error_max_kms is not None:
        low_err = rows["v_err_kms"] <= s.v_error_max_kms
        metrics["n_rv_v_error_cut"] = int((~low_err).sum())
        rows = rows.loc[low_err]
    sample = sample_of_rows(rows, s, solar, grid_radius_frac, len(stars))
    metrics.update(sample_metrics(rows, s))
    cell = rows["cell"].to_numpy(np.int64)
    return sample, metrics, selection_resampler(cells, cell,
                                                np.bincount(cell, minlength=len(cells)))

"""The observation model: DR3-like uncertainties vs G, noisy astrometry, source_id, DR3 columns.

Uncertainties (1 sigma) as functions of G (mag), from the Gaia EDR3/DR3 performance relations
(Lindegren et al. 2021; Gaia Collaboration, Brown et al. 2021), with z = 10^(0.4 (max(G, 13) - 15)):

- parallax_error = sqrt(40 + 800 z + 30 z^2) / 1000 mas (0.03 mas at G = 15, 0.08 at 17,
  0.6 at 20, 1.4 at 21);
- pmra_error = 1.05 x, pmdec_error = 0.92 x parallax_error (mas/yr); ra_error = 0.80 x,
  dec_error = 0.70 x parallax_error (mas; positions are not perturbed);
- every star's astrometric errors share a lognormal factor exp(N(0, 0.15)) (scanning law);
- G: sqrt(0.0003^2 + (0.005 10^(0.4 (G - 19)))^2) mag; BP, RP: sqrt(0.001^2 + (0.03 10^(0.4 (G - 19)))^2);
- radial_velocity only for G < ``rv_g_limit`` (the RVS bright subset), with error
  0.12 + 6 exp(0.9 (G - rv_g_limit)) km/s.

ruwe: exp(N(0, 0.07)) for single stars; 8 % (unresolved binaries) get 1.4 + Exp(0.8).

``source_id`` = (level-12 nested HEALPix pixel of (ra, dec)) << 35 | running number within that
pixel (Gaia's convention, without the processing-centre bits), unique over the sky because a
level-12 pixel lies inside one level-8 pixel and each level-8 pixel inside one file.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gaialake.astro.healpix import pixel_of
from gaialake.io.dr3schema import DR3_COLUMNS, arrow_type

__all__ = ["parallax_error_mas", "pm_errors_masyr", "g_error_mag", "bprp_band_error_mag",
           "rv_error_kms", "observe", "assign_source_ids", "dr3_table", "dr3_catalog", "DR3_SOLUTION_ID",
           "G_ZP", "BP_ZP", "RP_ZP"]

DR3_SOLUTION_ID = 4600373030615046144  # a fixed solution_id for the synthetic release
G_ZP, BP_ZP, RP_ZP = 25.6874, 25.3385, 24.7479  # DR3 Vega zero points (mag)


def _z(g: np.ndarray) -> np.ndarray:
    return 10.0 ** (0.4 * (np.maximum(np.asarray(g, np.float64), 13.0) - 15.0))


def parallax_error_mas(g: np.ndarray) -> np.ndarray:
    """DR3-like parallax uncertainty (mas) at G (mag)."""
    z = _z(g)
    return np.sqrt(40.0 + 800.0 * z + 30.0 * z * z) / 1000.0


def pm_errors_masyr(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DR3-like (pmra_error, pmdec_error) in mas/yr at G (mag)."""
    s = parallax_error_mas(g)
    return 1.05 * s, 0.92 * s


def g_error_mag(g: np.ndarray) -> np.ndarray:
    """G-band uncertainty (mag)."""
    return np.hypot(0.0003, 0.005 * 10.0 ** (0.4 * (np.asarray(g) - 19.0)))


def bprp_band_error_mag(g: np.ndarray) -> np.ndarray:
    """BP or RP uncertainty (mag) at G (mag)."""
    return np.hypot(0.001, 0.03 * 10.0 ** (0.4 * (np.asarray(g) - 19.0)))


def rv_error_kms(g: np.ndarray, rv_g_limit: float) -> np.ndarray:
    """Radial-velocity uncertainty (km/s) for stars brighter than ``rv_g_limit``."""
    return 0.12 + 6.0 * np.exp(0.9 * (np.asarray(g) - rv_g_limit))


def observe(rng: np.random.Generator, true: dict[str, np.ndarray], rv_g_limit: float,
            ) -> dict[str, np.ndarray]:
    """Observed DR3 columns from true ones.

    ``true``: ra, dec (deg), distance (kpc), pmra, pmdec (mas/yr), radial_velocity (km/s),
    g, bp_rp (apparent, reddened; mag), l, b, ecl_lon, ecl_lat (deg). Returns the filled DR3
    columns (without source_id / designation: see :func:`assign_source_ids`).
    """
    g_true = np.asarray(true["g"], np.float64)
    n = len(g_true)
    e = rng.standard_normal((8, n))
    factor = np.exp(0.15 * e[0])
    plx_err = parallax_error_mas(g_true) * factor
    pmra_err, pmdec_err = (s * factor for s in pm_errors_masyr(g_true))
    plx = 1.0 / np.asarray(true["distance"]) + plx_err * e[1]
    pmra = np.asarray(true["pmra"]) + pmra_err * e[2]
    pmdec = np.asarray(true["pmdec"]) + pmdec_err * e[3]
    g = g_true + g_error_mag(g_true) * e[4]
    band_err = bprp_band_error_mag(g_true)
    bp_rp = np.asarray(true["bp_rp"]) + np.sqrt(2.0) * band_err * e[5]
    g_rp = -0.02 + 0.56 * bp_rp - 0.04 * bp_rp**2
    rp = g - g_rp
    bp = rp + bp_rp
    bright = g_true < rv_g_limit
    rv_err = np.where(bright, rv_error_kms(g_true, rv_g_limit), np.nan)
    rv = np.where(bright, np.asarray(true["radial_velocity"]) + rv_err * e[6], np.nan)
    binary = rng.random(n) < 0.08
    ruwe = np.where(binary, 1.4 + rng.exponential(0.8, n), np.exp(0.07 * e[7]))
    flux = {}
    for band, mag, zp, err in (("g", g, G_ZP, g_error_mag(g_true)), ("bp", bp, BP_ZP, band_err),
                               ("rp", rp, RP_ZP, band_err)):
        f = 10.0 ** (-0.4 * (mag - zp))
        flux[f"phot_{band}_mean_flux"] = f
        flux[f"phot_{band}_mean_flux_error"] = f * err / 1.0857
        flux[f"phot_{band}_mean_flux_over_error"] = 1.0857 / err
        flux[f"phot_{band}_mean_mag"] = mag
    out = {
        "ra": np.asarray(true["ra"]), "dec": np.asarray(true["dec"]),
        "ra_error": 0.80 * plx_err, "dec_error": 0.70 * plx_err,
        "parallax": plx, "parallax_error": plx_err, "parallax_over_error": plx / plx_err,
        "pm": np.hypot(pmra, pmdec), "pmra": pmra, "pmra_error": pmra_err,
        "pmdec": pmdec, "pmdec_error": pmdec_err, "ruwe": ruwe,
        "astrometric_params_solved": np.full(n, 31, np.int8),
        "bp_rp": bp_rp, "bp_g": bp - g, "g_rp": g - rp,
        "radial_velocity": rv, "radial_velocity_error": rv_err,
        "has_rvs": bright, "ref_epoch": np.full(n, 2016.0),
        "solution_id": np.full(n, DR3_SOLUTION_ID, np.int64),
        "l": true["l"], "b": true["b"], "ecl_lon": true["ecl_lon"], "ecl_lat": true["ecl_lat"],
    }
    out.update(flux)
    return out


def assign_source_ids(rng: np.random.Generator, ra_deg: np.ndarray, dec_deg: np.ndarray,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(source_id int64, order): ``order`` sorts the stars by source_id; ``source_id`` is in
    that sorted order: pixel12 << 35 | running number within the level-12 pixel."""
    pix12 = pixel_of(ra_deg, dec_deg, 12)
    order = np.lexsort((rng.random(len(pix12)), pix12))
    p = pix12[order]
    first = np.r_[True, p[1:] != p[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(p)), 0))
    running = np.arange(len(p)) - group_start
    if running.size and running.max() >= (1 << 35):
        raise ValueError("more than 2^35 stars in one level-12 pixel")
    return (p.astype(np.int64) << 35) | running.astype(np.int64), order


def dr3_table(columns: dict[str, np.ndarray], n: int) -> pa.Table:
    """A pyarrow table with all 152 DR3 columns: the given ones (NaN -> null), others null."""
    arrays = []
    for c in DR3_COLUMNS:
        t = arrow_type(c.datatype)
        if c.name in columns:
            v = columns[c.name]
            if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                arrays.append(pa.array(v, type=pa.float64(), from_pandas=True).cast(t))
            else:
                arrays.append(pa.array(v, type=t) if not isinstance(v, pa.Array) else v.cast(t))
        else:
            arrays.append(pa.nulls(n, type=t))
    return pa.Table.from_arrays(arrays, names=[c.name for c in DR3_COLUMNS])


def dr3_catalog(rng: np.random.Generator, true: dict[str, np.ndarray], g_limit: float,
                rv_g_limit: float) -> tuple[pa.Table, np.ndarray]:
    """Stars observed as a DR3 table: :func:`observe`, kept where the observed G <
    ``g_limit`` (mag), sorted by their new source_id (:func:`assign_source_ids`), with the
    designation. ``true`` as for :func:`observe`. Returns (152-column table, the input row of
    each output row)."""
    cols = observe(rng, true, rv_g_limit)
    kept = np.flatnonzero(cols["phot_g_mean_mag"] < g_limit)
    cols = {k: v[kept] for k, v in cols.items()}
    source_id, order = assign_source_ids(rng, cols["ra"], cols["dec"])
    cols = {k: v[order] for k, v in cols.items()}
    cols["source_id"] = source_id
    table = dr3_table(cols, len(source_id))
    designation = pc.binary_join_element_wise("Gaia DR3 ", pc.cast(table["source_id"], pa.string()),
                                              "")
    table = table.set_column(table.schema.get_field_index("designation"), "designation",
                             designation)
    return table, kept[order]

"""Small Gaia DR3 bulk files in ESA's exact format, for tests (ECSV header, nulls, booleans)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa

from gaialake.bulkfile import format_columns
from gaialake.healpix import pixel_of
from gaialake.schema import DR3_COLUMNS, arrow_type, header_text


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

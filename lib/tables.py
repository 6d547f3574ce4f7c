"""Every table of gaialake: name, columns, partitioning, keys. The only place a table is named.

A job reads and writes tables through their :class:`TableSpec` (``gaialake.io.delta``'s
``write_table(df, conf, tables.PATCH_STARS)``); the Delta directory is
``<paths.warehouse>/<name>`` and the catalog name ``<catalog.database>.<name>``. ``schema`` is
the Spark DDL of the columns a job writes (``run_id`` included where the job adds it); None for
``gaia_source`` and its quarantine, whose columns are those of the ingested files' headers.
Every output row carries the ``run_id`` of the MLflow run that made it; ``source_id`` (int64)
is the join key with ``gaia_source``.

>>> PATCH_STARS.columns[:3]
['patch_id', 'source_id', 'ra']
>>> spec("anomaly_scores") is ANOMALY_SCORES
True
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TableSpec", "TABLES", "spec", "GAIA_SOURCE", "GAIA_SOURCE_QUARANTINE",
           "INGEST_LOG", "TRUTH_ORIGIN", "TRUTH_STREAMS", "PATCH_STARS", "ANOMALY_SCORES",
           "STREAM_CANDIDATES", "STREAM_MEMBERS", "NULL_SKY_STATE", "ACCRETED_CATALOG",
           "DENSITY_GRID", "STAR_PARTICLES", "UPSAMPLED_MOCK", "UPSAMPLE_AUC"]


@dataclass(frozen=True)
class TableSpec:
    """One table: ``name``, ``schema`` (Spark DDL, or None where the data defines it),
    ``partition_by`` (Delta partition columns), ``key`` (columns that identify a row, beyond
    ``run_id``), ``description``."""

    name: str
    schema: str | None
    partition_by: tuple[str, ...] = ()
    key: tuple[str, ...] = ()
    description: str = ""

    @property
    def columns(self) -> list[str]:
        """The column names of ``schema`` in order (empty when the data defines them)."""
        if self.schema is None:
            return []
        return [part.strip().split()[0] for part in _split_ddl(self.schema)]

    def schema_without(self, *names: str) -> str:
        """``schema`` less the columns ``names`` (e.g. the ``run_id`` the driver adds later)."""
        keep = [p.strip() for p in _split_ddl(self.schema or "") if p.strip().split()[0]
                not in names]
        return ", ".join(keep)


def _split_ddl(ddl: str) -> list[str]:
    """Split a DDL column list on the commas outside ``<...>``."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(ddl):
        depth += ch == "<"
        depth -= ch == ">"
        if ch == "," and depth == 0:
            parts.append(ddl[start:i])
            start = i + 1
    parts.append(ddl[start:])
    return [p for p in parts if p.strip()]


GAIA_SOURCE = TableSpec(
    "gaia_source", None, ("hpx",), ("source_id",),
    "DR3 columns as in each bulk file's header, hpx29 (order-29 nested HEALPix), hpx (partition "
    "pixel at catalog.partition_order), source_file")
GAIA_SOURCE_QUARANTINE = TableSpec(
    "gaia_source_quarantine", None, (), ("source_file", "line_number"),
    "rows that failed validation: source_file, line_number, raw_line, reason")
INGEST_LOG = TableSpec(
    "ingest_log",
    "source_file string, file_bytes long, status string, error string, rows_read long, "
    "rows_kept long, rows_quarantined long, ingested_at timestamp, run_id string",
    (), ("source_file",), "one row per bulk file: rows_read = rows_kept + rows_quarantined")
TRUTH_ORIGIN = TableSpec(
    "truth_origin",
    "source_id long, origin string, component string, parent_id long, run_id string",
    (), ("source_id",),
    "mocks only: in_situ or accreted, and the component, of every star; parent_id: the star "
    "particle an upsampled star comes from (null for the synthetic sky)")
TRUTH_STREAMS = TableSpec(
    "truth_streams", "source_id long, stream string, run_id string",
    (), ("source_id",), "mocks only: the stream each injected stream star belongs to")
PATCH_STARS = TableSpec(
    "patch_stars",
    "patch_id long, source_id long, ra double, dec double, phi double, lam double, "
    "pm_phi double, pm_lam double, g double, bp_rp double, fiducial boolean, run_id string",
    ("patch_id",), ("patch_id", "source_id"),
    "the stars of each sky patch in its frame: phi, lam (deg), pm_phi, pm_lam (mas/yr)")
ANOMALY_SCORES = TableSpec(
    "anomaly_scores",
    "patch_id long, source_id long, pm_axis string, sr_lo double, sr_hi double, "
    "method string, retraining int, score double, run_id string",
    ("method",), ("patch_id", "source_id", "pm_axis", "sr_lo", "method", "retraining"),
    "per-star anomaly scores of each (patch, pm axis, signal region) group and method; "
    "retraining: 0 .. streams.retrainings - 1, the same group trained again with another seed")
STREAM_CANDIDATES = TableSpec(
    "stream_candidates",
    "candidate_id string, method string, patch_ids array<long>, lead_patch_id long, "
    "theta double, rho double, pm_phi double, pm_lam double, pole_ra double, pole_dec double, "
    "ra double, dec double, length_deg double, pmra double, pmdec double, "
    "significance double, n_protoclusters int, n_members int, n_retrainings int, "
    "known_match string, above_threshold boolean, threshold double, run_id string",
    (), ("candidate_id",), "stream candidates (of retraining 0) ranked by significance; "
    "n_retrainings: retrainings (itself included) with a matching candidate")
STREAM_MEMBERS = TableSpec(
    "stream_members",
    "candidate_id string, source_id long, score double, n_detections int, run_id string",
    (), ("candidate_id", "source_id"), "the member stars of each candidate")
NULL_SKY_STATE = TableSpec(
    "null_sky_state", "fingerprint string, find_streams_run_id string, candidates int",
    (), ("fingerprint",),
    "the stream-free sky's calibration: the settings' fingerprint and its false-positive "
    "threshold")
ACCRETED_CATALOG = TableSpec(
    "accreted_catalog",
    "source_id long, p_accreted double, variant string, unscored_reason string, "
    "is_accreted boolean, model_version string, run_id string",
    (), ("source_id",),
    "P(accreted) of every gaia_source star (null, with unscored_reason, where it fails the "
    "quality cuts), the net (5d, 6d) that scored it, and is_accreted = p_accreted >= the "
    "registered model's threshold")
DENSITY_GRID = TableSpec(
    "density_grid",
    "x double, y double, z double, rho double, rho_err double, a_x double, a_y double, "
    "a_z double, n_stars long, rho_true double, well_sampled boolean, cbe_residual double, "
    "equilibrium_ok boolean, source string, run_id string",
    (), ("source", "x", "y", "z"),
    "x, y, z (kpc, Galactocentric), rho, rho_err (M_sun/pc^3), a (km/s)^2/kpc per cell; "
    "cbe_residual: rms steady-state CBE residual over the size of its terms (dimensionless), "
    "equilibrium_ok: at most density.equilibrium.max_residual; source: catalog (gaia_source), "
    "catalog_<mock> (a mock's catalog, rho_true its truth) or mock_<mock> (built in memory)")
STAR_PARTICLES = TableSpec(
    "star_particles", None, (), ("particle_id",),
    "the simulation's star particles: particle_id, x..vz (kpc, km/s), age (Gyr) and feh (dex) "
    "when the snapshot has them, mass (M_sun), component (synthetic galaxy only), split "
    "(train, val, heldout), run_id; the columns follow the snapshot")
UPSAMPLED_MOCK = TableSpec(
    "upsampled_mock",
    "x double, y double, z double, vx double, vy double, vz double, age double, "
    "feh double, particle_id long, split string, method string, parent_id long, "
    "origin string, run_id string",
    (), ("method", "particle_id"),
    "upsampled stars by method (galaxyflow, enbid); parent_id: the particle an EnBiD child "
    "comes from, or a flow star's nearest training particle (standardised phase space) when "
    "the particles carry labels; origin (in_situ, accreted): the parent's label, else null")
UPSAMPLE_AUC = TableSpec(
    "upsample_auc",
    "key string, network string, target string, auc double, seed_auc double, "
    "n_positive long, n_negative long, n_fit long, classifier string, run_id string",
    (), ("key",), "the 3-sample test's AUCs, one row per classification target")

#: Every table by name.
TABLES: dict[str, TableSpec] = {t.name: t for t in (
    GAIA_SOURCE, GAIA_SOURCE_QUARANTINE, INGEST_LOG, TRUTH_ORIGIN, TRUTH_STREAMS, PATCH_STARS,
    ANOMALY_SCORES, STREAM_CANDIDATES, STREAM_MEMBERS, NULL_SKY_STATE, ACCRETED_CATALOG,
    DENSITY_GRID, STAR_PARTICLES, UPSAMPLED_MOCK, UPSAMPLE_AUC)}


def spec(table: "TableSpec | str") -> TableSpec:
    """The spec of ``table`` (a spec or a name); a name starting with ``_`` is a scratch table
    (staging, caches) with no fixed columns. Unknown names fail with the known ones listed."""
    if isinstance(table, TableSpec):
        return table
    if table.startswith("_"):
        return TableSpec(table, None)
    if table not in TABLES:
        raise KeyError(f"unknown table {table!r}; tables: {sorted(TABLES)}")
    return TABLES[table]

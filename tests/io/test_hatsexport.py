"""The export's tables without Spark (tests/jobs/test_export.py runs the export)."""
from __future__ import annotations

from gaialake.io.hatsexport import exportable_tables


def test_tables_without_a_source_id_are_not_exportable():
    names = exportable_tables()
    assert names[0] == "gaia_source" and {"accreted_catalog", "stream_members"} <= set(names)
    assert "density_grid" not in names and "stream_candidates" not in names

"""The export's task planning without Spark (tests/jobs/test_export.py runs the export)."""
from __future__ import annotations

from gaialake.io.hatsexport import deal, exportable_tables


def test_partitions_are_dealt_to_tasks_with_balanced_rows():
    groups = deal({1: 100, 2: 60, 3: 50, 4: 40, 5: 10}, tasks=2)
    assert sorted(sorted(g) for g in groups) == [[1, 4], [2, 3, 5]]    # 140 rows and 120
    assert deal({7: 5}, tasks=8) == [[7]]                            # never an empty task


def test_tables_without_a_source_id_are_not_exportable():
    names = exportable_tables()
    assert names[0] == "gaia_source" and {"accreted_catalog", "stream_members"} <= set(names)
    assert "density_grid" not in names and "stream_candidates" not in names

"""The HATS files without Spark: choosing pixels from row counts, writing sorted rows into one
file per pixel, and the refusals that keep a catalog from being half-right."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gaialake.io.hatsfiles import (SPATIAL_INDEX_COLUMN, HatsPixel, check_output_dir, pixel_file,
                                   plan_pixels, write_pixel_files)


def test_a_crowded_pixel_is_split_into_its_non_empty_children_down_to_the_map_order():
    # order-4 counts: order-2 pixel 0 holds 10 + 20 + 500 rows in its order-3 children 0, 1, 2
    # (2 is crowded, its order-4 children 8-11 are not split further: the map's order),
    # order-2 pixel 5 holds 7
    pixels = np.array([0, 5, 8, 9, 10, 11, 5 * 16 + 3])
    counts = np.array([10, 20, 100, 150, 150, 100, 7])
    plan = plan_pixels(pixels, counts, map_order=4, start_order=2, max_rows=120)
    assert plan == [HatsPixel(3, 0, 10), HatsPixel(3, 1, 20), HatsPixel(4, 8, 100),
                    HatsPixel(4, 9, 150), HatsPixel(4, 10, 150), HatsPixel(4, 11, 100),
                    HatsPixel(2, 5, 7)]
    assert sum(p.rows for p in plan) == counts.sum()
    assert plan_pixels(pixels, counts, 4, 2, max_rows=10**6) == [HatsPixel(2, 0, 530),
                                                                   HatsPixel(2, 5, 7)]


def test_pixel_files_follow_the_hats_layout():
    assert pixel_file(4, 326) == "dataset/Norder=4/Dir=0/Npix=326.parquet"
    assert pixel_file(9, 123456) == "dataset/Norder=9/Dir=120000/Npix=123456.parquet"
    assert HatsPixel(28, 5, 0).hpx29_range == (20, 24)


def _rows(index: list[int]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict({SPATIAL_INDEX_COLUMN: pa.array(index, pa.int64()),
                                       "x": pa.array(np.arange(len(index)), pa.float64())})


def test_sorted_rows_become_one_file_per_pixel(tmp_path):
    plan = [HatsPixel(28, 0, 3), HatsPixel(28, 1, 2)]          # _healpix_29 [0, 4) and [4, 8)
    written = write_pixel_files([_rows([0, 1]), _rows([3, 4]), _rows([7])], plan, str(tmp_path))
    assert written == [{"order": 28, "pixel": 0, "rows": 3}, {"order": 28, "pixel": 1, "rows": 2}]
    table = pq.read_table(tmp_path / pixel_file(28, 1))
    assert table.column(SPATIAL_INDEX_COLUMN).to_pylist() == [4, 7]


@pytest.mark.parametrize("batches, message", [
    ([_rows([0, 9])], "lie in no pixel"),
    ([_rows([0, 5]), _rows([1])], "not contiguous"),
])
def test_rows_outside_the_plan_or_unsorted_are_refused(tmp_path, batches, message):
    plan = [HatsPixel(28, 0, 2), HatsPixel(28, 1, 1)]
    with pytest.raises(ValueError, match=message):
        write_pixel_files(batches, plan, str(tmp_path))


def test_an_occupied_directory_is_kept_and_only_a_catalog_is_overwritten(tmp_path):
    check_output_dir(str(tmp_path / "new"), overwrite=False)
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not empty"):
            check_output_dir(str(tmp_path), overwrite)
    assert (tmp_path / "notes.txt").exists()
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "hats.properties").write_text("obs_collection=x\n")
    check_output_dir(str(catalog), overwrite=True)
    assert not catalog.exists()

"""Sky patches: the grid, the patch frame (against astropy), the cuts, and `gaialake patches`."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, SkyOffsetFrame

from gaialake.astro.healpix import pixel_of
from gaialake.conf import load_conf
from gaialake.sky.skymodel import region_pixels
from gaialake.streams.patch_grid import (PatchCutSettings, angular_distance_deg, from_patch_frame, patch_centers,
                              patches_inside, searched_patches, select_patch_stars, to_patch_frame)


def _random_sky(n: int, seed: int):
    rng = np.random.default_rng(seed)
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return ra, dec, rng.normal(0, 8, n), rng.normal(0, 8, n)


def test_patch_frame_matches_astropy_sky_offset_frame_with_proper_motions():
    ra, dec, pmra, pmdec = _random_sky(2000, 1)
    ra0, dec0 = 148.9, 36.2
    c = SkyCoord(ra=ra * u.deg, dec=dec * u.deg, pm_ra_cosdec=pmra * u.mas / u.yr,
                 pm_dec=pmdec * u.mas / u.yr)
    off = c.transform_to(SkyOffsetFrame(origin=SkyCoord(ra=ra0 * u.deg, dec=dec0 * u.deg)))
    phi, lam, pm_phi, pm_lam = to_patch_frame(ra, dec, pmra, pmdec, ra0, dec0)
    np.testing.assert_allclose(phi, off.lon.wrap_at(180 * u.deg).deg, atol=1e-9)
    np.testing.assert_allclose(lam, off.lat.deg, atol=1e-9)
    np.testing.assert_allclose(pm_phi, off.pm_lon_coslat.to_value(u.mas / u.yr), atol=1e-9)
    np.testing.assert_allclose(pm_lam, off.pm_lat.to_value(u.mas / u.yr), atol=1e-9)
    # per-row centres, and the inverse
    back = from_patch_frame(phi, lam, pm_phi, pm_lam, np.full_like(ra, ra0), np.full_like(ra, dec0))
    for got, want in zip(back, (ra, dec, pmra, pmdec)):
        np.testing.assert_allclose(got, want, atol=1e-8)


def test_patch_centre_is_the_origin_and_distance_is_the_frame_radius():
    ra, dec, pmra, pmdec = _random_sky(500, 2)
    phi, lam, _, _ = to_patch_frame(ra, dec, pmra, pmdec, 10.0, -40.0)
    assert np.allclose(to_patch_frame(10.0, -40.0, 0.0, 0.0, 10.0, -40.0)[:2], 0.0, atol=1e-12)
    # great-circle distance to the centre equals the angle of (phi, lam) from the origin
    d = angular_distance_deg(ra, dec, 10.0, -40.0)
    d_frame = np.degrees(np.arccos(np.cos(np.radians(phi)) * np.cos(np.radians(lam))))
    np.testing.assert_allclose(d, d_frame, atol=1e-7)


def test_grid_overlaps_neighbours_and_cuts_on_galactic_latitude():
    grid = patch_centers(2, 30.0)
    assert (np.abs(grid.b) >= 30.0).all() and 0 < len(grid) < 192
    d = angular_distance_deg(grid.ra.values[:, None], grid.dec.values[:, None],
                             grid.ra.values[None], grid.dec.values[None])
    np.fill_diagonal(d, np.inf)
    assert d.min(1).max() < 15.0          # every patch overlaps a neighbour (radius 15 deg)
    # fiducial coverage: any sky point is within 11.8 deg of an order-2 centre (pixel corners)
    full = patch_centers(2, 0.0)
    ra, dec, _, _ = _random_sky(20000, 3)
    near = angular_distance_deg(ra[:, None], dec[:, None], full.ra.values[None],
                                full.dec.values[None]).min(1)
    assert near.max() < 11.8
    with pytest.raises(ValueError, match="not patches"):
        patch_centers(2, 30.0, only=[int(patch_centers(2, 0.0).query("abs(b) < 10").patch_id.iloc[0])])


def test_patches_inside_keeps_the_discs_that_lie_in_the_region():
    grid = patch_centers(2, 30.0)
    c22 = grid.set_index("patch_id").loc[22]
    far = angular_distance_deg(grid.ra, grid.dec, c22.ra, c22.dec)
    # a 12 deg cone on patch 22: its 10 deg disc fits, no other disc does
    cone = [{"ra": c22.ra, "dec": c22.dec, "radius_deg": 12.0}]
    assert patches_inside(grid, region_pixels(cone, 6), 6, 10.0).patch_id.tolist() == [22]
    # moved 4 deg off the centre, the disc crosses the cone's edge: nothing is inside
    off = [{"ra": c22.ra, "dec": c22.dec + 4.0, "radius_deg": 12.0}]
    assert patches_inside(grid, region_pixels(off, 6), 6, 10.0).empty
    # a disc covered only by the union of two cones counts; the full sky holds every patch
    halves = [{"ra": c22.ra, "dec": c22.dec - 5.0, "radius_deg": 12.0},
              {"ra": c22.ra, "dec": c22.dec + 5.0, "radius_deg": 12.0}]
    assert 22 not in patches_inside(grid, region_pixels(halves[:1], 6), 6, 10.0).patch_id.tolist()
    assert 22 in patches_inside(grid, region_pixels(halves, 6), 6, 10.0).patch_id.tolist()
    inside = patches_inside(grid, region_pixels([{**cone[0], "radius_deg": 40.0}], 6), 6, 10.0)
    got = set(inside.patch_id)
    assert set(grid.patch_id[far < 29.0]) <= got <= set(grid.patch_id[far < 31.0])
    assert len(inside) >= 5


def test_searched_patches_follow_the_rule_and_a_user_list_overrides_it():
    conf = load_conf()
    rule = searched_patches(conf)
    # the default sky holds 7 patches' fiducial discs: 4 on GD-1's track, 3 stream-free
    assert rule.patch_id.tolist() == [20, 21, 22, 23, 28, 110, 111]
    assert (rule.b.abs() >= 30).all()
    assert len(searched_patches(load_conf(sets=["patches.within_region=false"]))) == 96
    assert len(searched_patches(load_conf(sets=["sky.region=full"]))) == 96
    assert searched_patches(load_conf(sets=["patches.only=[19, 122]"])).patch_id.tolist() == \
        [19, 122]


def test_select_applies_the_cuts_and_a_null_fails_a_cut():
    cuts = PatchCutSettings()
    base = dict(source_id=1, ra=0.5, dec=0.5, pmra=1.0, pmdec=2.0, parallax=0.2,
                phot_g_mean_mag=19.0, bp_rp=0.7, patch_id=7, patch_ra=0.0, patch_dec=0.0)
    bad = [dict(ra=20.0), dict(phot_g_mean_mag=20.3), dict(parallax=1.5), dict(bp_rp=0.4),
           dict(bp_rp=1.1), dict(bp_rp=np.nan), dict(parallax=np.nan), dict(pmra=np.nan)]
    rows = [base] + [{**base, **b, "source_id": i + 2} for i, b in enumerate(bad)]
    rows.append({**base, "source_id": 99, "ra": 12.0})          # inside, outside the fiducial
    out = select_patch_stars(pd.DataFrame(rows), cuts)
    assert out.source_id.tolist() == [1, 99]
    assert out.fiducial.tolist() == [True, False]


def test_patches_job_writes_each_star_once_per_patch_that_contains_it(spark, conf):
    from gaialake.io.delta import read_table, write_table
    from gaialake.jobs import patches as job

    grid = patch_centers(2, 30.0)
    ids = [int(i) for i in grid.patch_id[:2]]
    centres = grid.set_index("patch_id").loc[ids]
    rng = np.random.default_rng(7)
    n = 6000
    # stars scattered around the two centres (some outside both discs, some failing cuts)
    pick = rng.integers(0, 2, n)
    ra0, dec0 = centres.ra.values[pick], centres.dec.values[pick]
    ra, dec, pmra, pmdec = from_patch_frame(rng.uniform(-22, 22, n), rng.uniform(-22, 22, n),
                                            rng.normal(0, 5, n), rng.normal(0, 5, n), ra0, dec0)
    src = pd.DataFrame({"source_id": np.arange(n, dtype=np.int64) + 10, "ra": ra, "dec": dec,
                        "pmra": pmra, "pmdec": pmdec, "parallax": rng.uniform(-0.5, 1.5, n),
                        "phot_g_mean_mag": rng.uniform(15, 21, n), "bp_rp": rng.uniform(0.3, 1.2, n),
                        "hpx": pixel_of(ra, dec, int(conf.get("catalog.partition_order")))})
    write_table(spark.createDataFrame(src), conf, "gaia_source", partition_by=["hpx"])
    conf.set("patches.only", ids)
    summary = job.run(conf)
    got = read_table(spark, conf, "patch_stars").toPandas()
    # the truth by brute force over every (star, patch) pair
    want = []
    for pid, c in centres.iterrows():
        d = angular_distance_deg(src.ra, src.dec, c.ra, c.dec)
        ok = ((d < 15.0) & (src.phot_g_mean_mag < 20.2) & (src.parallax < 1.0)
              & (src.bp_rp > 0.5) & (src.bp_rp < 1.0))
        want += [(pid, s) for s in src.source_id[ok]]
    assert sorted(zip(got.patch_id, got.source_id)) == sorted(want)
    assert summary["rows"] == len(want) and summary["patches_with_stars"] == 2
    assert got.groupby("patch_id").source_id.nunique().sum() == len(got)   # once per patch
    row = got.iloc[0]
    s = src.set_index("source_id").loc[row.source_id]
    c = centres.loc[row.patch_id]
    phi, lam, pm_phi, pm_lam = to_patch_frame(s.ra, s.dec, s.pmra, s.pmdec, c.ra, c.dec)
    assert np.allclose([row.phi, row.lam, row.pm_phi, row.pm_lam], [phi, lam, pm_phi, pm_lam])
    assert got.fiducial.equals(np.hypot(got.phi, got.lam).lt(10.5) & got.fiducial) and \
        got.fiducial.any() and not got.fiducial.all()
    assert got.run_id.nunique() == 1

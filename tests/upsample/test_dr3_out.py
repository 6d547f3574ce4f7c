"""Upsampled stars as a DR3 catalog: parents by k-d tree, the observation path, and
`gaialake upsample` with upsample.dr3_out then `gaialake ingest` of its folder (one Spark test)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gaialake.sky.kinematics import galactocentric_to_observed, transforms
from gaialake.upsample.dr3out import Dr3OutSettings, file_index_of, observe_stars
from gaialake.upsample.mock import ParentIndex
from gaialake.upsample.particles import make_galaxy


def test_parent_index_gives_each_star_its_nearest_particle_in_standardised_phase_space():
    particles = pd.DataFrame({"x": [0.0, 0.0], "y": [0.0, 0.0], "z": [0.0, 1.0],
                              "vx": [0.0, 100.0], "vy": [0.0, 0.0], "vz": [0.0, 0.0],
                              "particle_id": [7, 9], "origin": ["in_situ", "accreted"]})
    index = ParentIndex.from_frame(particles)
    # in kpc and km/s alike particle 7 is nearer (40 vs 60); in units of the particles' std
    # (0.5 kpc, 50 km/s) particle 9 is: (0.2, 1.2) vs (1.8, 0.8)
    star = np.array([[0.0, 0.0, 0.9, 40.0, 0.0, 0.0]])
    parent, origin = index.parents(star)
    assert parent.tolist() == [9] and origin.tolist() == ["accreted"]
    parent, _ = index.parents(np.array([[0.0, 0.0, 0.1, 5.0, 0.0, 0.0]]))
    assert parent.tolist() == [7]


def test_observed_stars_are_gaia_rows_with_the_g_limit_rv_subset_and_unique_ids():
    gal = make_galaxy(3000, seed=5, radius_kpc=2.0)
    settings = Dr3OutSettings(g_limit=19.0, rv_g_limit=14.0, extinction=True, n_files=4)
    tf = transforms()
    table, rows = observe_stars(np.random.default_rng(0), gal.pos_kpc.T, gal.vel_kms.T, gal.feh,
                                settings, tf)
    g = table.column("phot_g_mean_mag").to_numpy()
    assert 0 < table.num_rows < 3000 and np.all(g < 19.0)
    rv = table.column("radial_velocity").to_numpy(zero_copy_only=False)
    assert np.all(np.isnan(rv[g > 14.3])) and np.isfinite(rv[g < 13.5]).all()
    ids = table.column("source_id").to_numpy()
    assert len(np.unique(ids)) == len(ids)
    true = galactocentric_to_observed(gal.pos_kpc[rows].T, gal.vel_kms[rows].T, tf)
    assert np.allclose(table.column("ra").to_numpy(), true["ra"])
    # parallax: 1/distance within the errors
    pull = (table.column("parallax").to_numpy() - 1 / true["distance"]) \
        / table.column("parallax_error").to_numpy()
    assert abs(np.median(pull)) < 0.2 and 0.8 < np.std(pull) < 1.3


def test_bulk_files_of_mock_stars_are_the_level8_ranges():
    xyz = np.array([[-7.0, -9.0], [0.5, -0.5], [0.2, 0.0]])
    assert set(file_index_of(xyz, np.zeros((2, 3)).T, transforms(), 4)) <= {0, 1, 2, 3}


def test_upsampled_mock_written_as_dr3_ingests_with_its_parents_labels(spark, conf, tmp_path):
    from gaialake.io.delta import read_table
    from gaialake.jobs import ingest, upsample

    gal = make_galaxy(3000, seed=11, radius_kpc=3.0)
    snapshot = tmp_path / "particles.parquet"
    pq.write_table(gal.to_arrow().drop(["component"]), snapshot)
    accreted = np.isin(gal.component, ["halo", "stream"])
    labels = pd.DataFrame({"particle_id": gal.particle_id,
                           "origin": np.where(accreted, "accreted", "in_situ")})
    labels.to_parquet(tmp_path / "labels.parquet")
    out = tmp_path / "dr3"
    conf = conf.with_overrides([
        f"upsample.snapshot={snapshot}", f"upsample.labels={tmp_path / 'labels.parquet'}",
        "upsample.radius_kpc=3.0", "upsample.flow.epochs=2", "upsample.multiple=2",
        "upsample.sample_partitions=3", "upsample.feed=memory", f"upsample.dr3_out={out}",
        f"upsample.report_dir={tmp_path / 'report'}", "sky.g_limit=19.0"])
    summary = upsample.run(conf)

    mock = read_table(spark, conf, "upsampled_mock").where(f"run_id = '{summary['run_id']}'") \
        .toPandas()
    assert mock["origin"].notna().all() and mock["parent_id"].notna().all()
    by_id = labels.set_index("particle_id")["origin"]
    assert (mock["origin"].to_numpy() == by_id.loc[mock["parent_id"]].to_numpy()).all()
    files = sorted(p.name for p in out.glob("GaiaSource_*.csv.gz"))
    assert 1 <= len(files) <= 3 and summary["dr3_rows"] > 0

    # the test's warehouse holds no gaia_source nor truth_origin yet
    ingested = ingest.run(conf.with_overrides([f"paths.raw={out}"]))
    assert ingested["ingested"] == len(files) and ingested["rows_quarantined"] == 0
    assert ingested["rows_kept"] == summary["dr3_rows"] == ingested["truth_tables"]["truth_origin"]
    truth = read_table(spark, conf, "truth_origin").toPandas()
    stars = read_table(spark, conf, "gaia_source").select("source_id").toPandas()
    assert set(truth["source_id"]) == set(stars["source_id"])
    assert (truth["origin"].to_numpy() == by_id.loc[truth["parent_id"]].to_numpy()).all()
    assert set(truth["origin"]) == {"in_situ", "accreted"}

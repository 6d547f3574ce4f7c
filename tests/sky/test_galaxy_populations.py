"""The populations that make the accreted-star test fair: the in-situ splash (halo-like speeds)
and the prograde accreted disk (disk-like speeds), as the sky generator draws and labels them
(``sample_range``'s truth table; the true kinematics of ``_sample_field``'s draws, as in
tests/sky/test_sky_science.py).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from gaialake.accreted import features as G
from gaialake.sky.galaxy import GALAXIES, galaxy_components, splash


@lru_cache(maxsize=2)
def _local_stars(galaxy: str) -> pd.DataFrame:
    """True kinematics of the field stars within 3 kpc of the Sun drawn by the generator for a
    small sky of ``galaxy`` (G < 20.7): component, Toomre speed |v - v_LSR| and spherical
    velocities (km/s, v_phi > 0 prograde)."""
    from gaialake.conf import load_conf
    from gaialake.sky.kinematics import spherical_velocities
    from gaialake.sky.skymodel import _sample_field, build_sky_model

    model = build_sky_model(load_conf(sets=[
        f"sky.galaxy={galaxy}", "sky.n_stars=1.5e5", "sky.region=full", "sky.model_order=3",
        "sky.sample_order=3", "sky.streams=off", "sky.stars_per_file=1e12"]))
    parts = []
    for comp, d in _sample_field(np.random.default_rng(7), model, np.arange(768)):
        (x, y, z), (vx, vy, vz) = d["xyz"], d["vxyz"]
        v_r, _, v_phi = spherical_velocities(x, y, z, vx, vy, vz)
        parts.append(pd.DataFrame({
            "component": comp.name, "v_r": v_r, "v_phi": v_phi,
            "v_toomre_kms": np.sqrt(vx**2 + (vy - G.V_LSR_KMS) ** 2 + vz**2),
            "d_sun_kpc": np.linalg.norm(d["xyz"] - model.tf.t[:, None], axis=0)}))
    df = pd.concat(parts, ignore_index=True)
    return df[df["d_sun_kpc"] < 3.0]


def test_the_generated_sky_labels_splash_in_situ_and_the_accreted_disk_accreted():
    from gaialake.conf import load_conf
    from gaialake.sky.skymodel import build_sky_model, sample_range

    model = build_sky_model(load_conf(sets=["sky.galaxy=B", "sky.n_stars=30000",
                                            "sky.streams=off", "sky.g_limit=17.5"]))
    truth = pd.concat([sample_range(model, fr)[1] for fr in model.ranges], ignore_index=True)
    origin = truth.groupby("component")["origin"].agg(set)
    print(truth["component"].value_counts().to_dict())
    assert origin["splash"] == {"in_situ"} and origin["accreted_disk"] == {"accreted"}
    assert (truth["component"] == "splash").sum() > 100


def test_splash_is_in_situ_in_both_galaxies_with_a_thick_disk_metallicity():
    for galaxy in GALAXIES:
        comps = {c.name: c for c in galaxy_components(galaxy)}
        assert comps["splash"].origin == "in_situ" and -0.7 <= comps["splash"].feh <= -0.2
        assert comps["accreted_disk"].origin == "accreted"
    with pytest.raises(ValueError, match="sky.galaxy"):
        splash("C")


@pytest.mark.parametrize("galaxy", GALAXIES)
def test_splash_has_halo_like_speeds_and_the_accreted_disk_disk_like_ones(galaxy):
    stars = _local_stars(galaxy)
    by = {name: g for name, g in stars.groupby("component")}
    sp, ad, thick = by["splash"], by["accreted_disk"], by["thick_disk"]
    print(galaxy, {k: len(v) for k, v in by.items()})
    assert len(sp) > 150 and len(ad) > 50
    fast = {k: float(np.mean(g["v_toomre_kms"] > 220.0)) for k, g in by.items()}
    print(galaxy, "fraction with |v - v_LSR| > 220 km/s:", {k: round(v, 3) for k, v in fast.items()})
    # the splash: eccentric, slowly rotating orbits, a sizeable part beyond the Toomre cut
    # (Belokurov et al. 2020)
    assert 0.0 < sp["v_phi"].mean() < 100.0 and sp["v_r"].std() > 90.0
    assert fast["splash"] > 0.25 and fast["splash"] > 20 * fast["thick_disk"]
    # the accreted disk: prograde, low eccentricity: mostly below the cut, like the thick disk
    # (within 3 kpc the disk's rotation turns away from v_LSR, which lifts some above it)
    assert ad["v_phi"].mean() > 120.0 and fast["accreted_disk"] < min(0.2, fast["splash"] / 2)
    assert np.median(ad["v_toomre_kms"]) < 1.5 * np.median(thick["v_toomre_kms"])

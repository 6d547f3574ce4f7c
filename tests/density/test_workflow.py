"""The density pipeline's conf checks (the end-to-end run is tests/jobs/test_density.py)."""
from __future__ import annotations

import pytest

from gaialake.density.workflow import train_members
from gaialake.density.validation import build_validation_sample


def test_energy_n_without_a_selection_ball_names_the_conf_keys(conf):
    # the Plummer sphere taken whole has no ball to normalize the energy n(x) on
    conf.set("density.mock", "plummer")
    conf.set("density.n_stars", 500)
    sample = build_validation_sample(conf.get("density"), 0)
    with pytest.raises(ValueError, match="density.plummer.select_radius_kpc"):
        train_members(conf, sample)

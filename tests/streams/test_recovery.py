"""Recovery of injected streams by candidates: per patch, per method, pooled."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gaialake.streams.recovery import (patch_recovery, pooled_recovery, recovery_by_method,
                                      recovery_once)


def _stars() -> pd.DataFrame:
    return pd.DataFrame({"patch_id": [21] * 6 + [22] * 4, "source_id": np.arange(10),
                         "fiducial": [True] * 4 + [False] * 2 + [True] * 4})


def test_patch_recovery_cuts_members_and_truth_to_each_fiducial_disc():
    truth = pd.DataFrame({"source_id": [0, 1, 2, 6, 7], "stream": "gd1"})
    members = pd.DataFrame({"candidate_id": "c1", "source_id": [0, 1, 3, 6]})
    rec = patch_recovery(members, truth, _stars(), "gd1", min_true=1).set_index("patch_id")
    assert rec.loc[21, "n_truth"] == 3 and rec.loc[21, "n_true"] == 2
    assert rec.loc[21, "purity"] == pytest.approx(2 / 3)          # star 3 is field
    assert rec.loc[21, "completeness"] == pytest.approx(2 / 3)
    assert rec.loc[22, "completeness"] == pytest.approx(1 / 2)    # 6 of {6, 7}


def test_recovery_by_method_counts_each_methods_candidates_above_its_threshold():
    truth = pd.DataFrame({"source_id": [0, 1, 2, 6, 7], "stream": "gd1"})
    cands = pd.DataFrame({"candidate_id": ["a", "b", "u", "low"],
                          "method": ["cwola", "ranode", "union", "ranode"],
                          "above_threshold": [True, True, True, False]})
    members = pd.DataFrame({"candidate_id": ["a", "a", "b", "b", "u", "u", "u", "u", "low"],
                            "source_id": [0, 1, 1, 2, 0, 1, 2, 3, 6]})
    rec = recovery_by_method(cands, members, truth, _stars(), "gd1", ["cathode"])
    assert sorted(rec) == ["cathode", "cwola", "ranode", "union"]
    by = {m: r.set_index("patch_id") for m, r in rec.items()}
    assert by["cwola"].loc[21, "n_true"] == 2 and by["ranode"].loc[21, "n_true"] == 2
    assert by["union"].loc[21, "n_true"] == 3                      # a superset: 0, 1, 2
    assert by["union"].loc[21, "purity"] == pytest.approx(3 / 4)   # star 3 is field
    assert by["ranode"].loc[22, "n_true"] == 0                     # "low" is below threshold
    assert (by["cathode"]["n_true"] == 0).all()                    # no candidate: found nothing


def test_pooled_recovery_weighs_the_patches_by_their_stars():
    rows = [{"n_truth": 100, "n_true": 60, "purity": 0.75},   # 80 found
            {"n_truth": 100, "n_true": 20, "purity": 0.5},    # 40 found
            {"n_truth": 0, "n_true": 0, "purity": 0.0}]       # the stream is not there
    purity, completeness = pooled_recovery(rows)
    assert purity == pytest.approx(80 / 120) and completeness == pytest.approx(80 / 200)
    nothing = pooled_recovery([{"n_truth": 50, "n_true": 0, "purity": 0.0}])
    assert np.isnan(nothing[0]) and nothing[1] == 0.0


def test_recovery_once_counts_a_star_of_two_fiducial_discs_once():
    # star 2 lies in both patches' fiducial discs (patch 21's hold 0-3, patch 22's 2, 6-9)
    stars = pd.concat([_stars(), pd.DataFrame({"patch_id": [22], "source_id": [2],
                                               "fiducial": [True]})])
    truth = pd.DataFrame({"source_id": [0, 1, 2, 6, 7, 4], "stream": "gd1"})   # 4: not fiducial
    members = pd.DataFrame({"candidate_id": "c", "source_id": [0, 2, 3, 6]})
    purity, completeness = recovery_once(members, truth, stars, "gd1")
    assert completeness == pytest.approx(3 / 5)     # 0, 2, 6 of {0, 1, 2, 6, 7}
    assert purity == pytest.approx(3 / 4)           # star 3 is field
    # per patch, star 2 counts in both: 2 of {0, 1, 2} in 21 + 2 of {2, 6, 7} in 22 -> 4 / 6
    pooled = pooled_recovery(patch_recovery(members, truth, stars, "gd1", min_true=1)
                             .to_dict(orient="records"))
    assert pooled[1] == pytest.approx(4 / 6)
    assert recovery_once(members.iloc[:0], truth, stars, "gd1")[1] == 0.0   # nothing found
    assert np.isnan(recovery_once(members, truth, stars, "pal5")[1])       # not in the sky

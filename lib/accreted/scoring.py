"""Scoring DR3 rows with the accreted-star classifier, and the registered model's config.

A star passes the quality cuts of the model's config (:func:`gaialake.accreted.features.
quality_mask`), gets its features (:func:`gaialake.accreted.features.features`) and is scored by
the ``6d`` network when it has a radial velocity (and the model has a ``6d`` net), else by the
``5d`` one; stars failing the cuts or with missing astrometry get a null score and a reason.
The transfer set of a catalog (:func:`teacher_rows`) is its radial-velocity stars with the
``6d`` net's probabilities as soft labels. Pure numpy/pandas/torch: the Spark adapters are in
:mod:`gaialake.accreted.classifier_spark`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from gaialake.accreted.features import (PhaseSpace, features, has_photometry,
                                        has_radial_velocity, phase_space_of, quality_mask,
                                        toomre_speed, variant_features, velocity_space)
from gaialake.models.accreted_net import AccretedClassifier, model_config

__all__ = ["DEFAULT_CUTS", "SCORE_COLUMNS", "PREDICT", "classifier_config", "uses_photometry",
           "cut_phase_space",
           "teacher_rows", "score_stars", "predict"]

#: The quality cuts of :func:`gaialake.accreted.features.quality_mask` unless the config sets them.
DEFAULT_CUTS = {"parallax_over_error_min": 5.0, "ruwe_max": 1.4, "distance_max_kpc": None}
#: Columns :func:`score_stars` returns (besides the input's source_id).
SCORE_COLUMNS = ["p_accreted", "variant", "unscored_reason"]
#: The pyfunc ``predict`` entry of the registered model.
PREDICT = "gaialake.accreted.scoring:predict"


def classifier_config(hidden: Sequence[int] = (64, 64, 64), dropout: float = 0.0,
                      variants: Sequence[str] = ("5d", "6d"), cuts: Mapping | None = None,
                      photometry: bool = False) -> dict:
    """The registered model's config: the nets of ``variants`` (feature names from
    :func:`gaialake.accreted.features.variant_features`, photometric ones with
    ``photometry``), ``hidden`` widths, ``dropout``, the quality ``cuts`` (over
    :data:`DEFAULT_CUTS`), ``photometry`` and the pyfunc ``predict`` entry."""
    return {**model_config({v: variant_features(v, photometry) for v in variants}, hidden,
                           dropout),
            "cuts": {**DEFAULT_CUTS, **dict(cuts or {})}, "photometry": bool(photometry),
            "predict": PREDICT}


def uses_photometry(config: Mapping) -> bool:
    """Whether a model of ``config`` reads photometric features (False for models registered
    before ``accreted.photometry``)."""
    return bool(config.get("photometry", False))


def cut_phase_space(config: Mapping, stars) -> tuple[np.ndarray, np.ndarray, PhaseSpace]:
    """(keep, reason per star, Galactocentric phase space) of DR3 rows under the quality cuts
    of ``config``."""
    keep, reason = quality_mask(stars, **{**DEFAULT_CUTS, **dict(config.get("cuts", {}))})
    return keep, reason, phase_space_of(stars)


def teacher_rows(model: AccretedClassifier, stars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transfer set of a catalog: stars passing the cuts with a radial velocity and finite
    features. Returns (row index, ``5d`` features, the ``6d`` net's calibrated probability)."""
    keep, _, ps = cut_phase_space(model.config, stars)
    phot = uses_photometry(model.config)
    x5, x6 = features(stars, "5d", ps, phot), features(stars, "6d", ps, phot)
    ok = keep & np.all(np.isfinite(x5), axis=1) & np.all(np.isfinite(x6), axis=1)
    idx = np.flatnonzero(ok)
    with torch.no_grad():
        net = model.nets["6d"].eval()
        p6 = net.probability(torch.as_tensor(x6[idx], dtype=torch.float32, device=net.mean.device))
    return idx, x5[idx], p6.double().cpu().numpy()


@torch.no_grad()
def score_stars(model: AccretedClassifier, stars, extra: bool = False):
    """P(accreted) of DR3 rows (pandas DataFrame with the astrometry columns of
    :data:`gaialake.accreted.features.ASTROMETRY_COLUMNS`, and its ``PHOTOMETRY_COLUMNS`` for
    a model with photometry).

    Returns a DataFrame with :data:`SCORE_COLUMNS` in the input's row order: ``p_accreted`` is
    null (NaN) and ``unscored_reason`` says why for stars failing the quality cuts or with
    missing astrometry; ``variant`` is ``6d`` where a radial velocity exists (and the model has
    a ``6d`` net), else ``5d``. ``extra``: also ``v_toomre_kms`` (the baseline's
    |v - v_LSR|, km/s) and the spherical velocities ``v_r``, ``v_theta``, ``v_phi`` (km/s).
    Deterministic: the same rows give the same numbers.
    """
    import pandas as pd

    n = len(stars)
    keep, reason, ps = cut_phase_space(model.config, stars)
    p = np.full(n, np.nan)
    variant = np.full(n, None, dtype=object)
    use6 = keep & has_radial_velocity(stars) & ("6d" in model.nets)
    for name, mask in (("6d", use6), ("5d", keep & ~use6)):
        if name not in model.nets or not mask.any():
            continue
        x = features(stars, name, ps, uses_photometry(model.config))[mask]
        good = np.all(np.isfinite(x), axis=1)
        idx = np.flatnonzero(mask)[good]
        if len(idx):
            net = model.nets[name].eval()
            xt = torch.as_tensor(x[good], dtype=torch.float32, device=net.mean.device)
            p[idx] = net.probability(xt).double().cpu().numpy()
            variant[idx] = name
        failed = np.flatnonzero(mask)[~good]
        colour = has_photometry(stars)[failed] if uses_photometry(model.config) else True
        reason[failed] = np.where(colour, "missing_astrometry", "missing_photometry")
    out = pd.DataFrame({"p_accreted": p, "variant": variant, "unscored_reason": reason})
    if extra:
        out["v_toomre_kms"] = toomre_speed(stars, ps)
        out = out.assign(**velocity_space(stars, ps))
    return out


def predict(model: AccretedClassifier, model_input):
    """pyfunc ``predict``: :func:`score_stars` of a pandas DataFrame of DR3 rows."""
    return score_stars(model, model_input)

"""CWoLa anomaly score: a classifier of signal-region stars against their sidebands (Metodiev,
Nachman & Thaler 2017, arXiv 1708.02949; on Gaia, Pettee et al. 2023, arXiv 2305.15179).

No density is modelled. The sidebands (SB) of an SR [lo, hi) on the sliced proper motion are
[lo - w, lo) and [hi, hi + w) (``w``: ``streams.cwola.sideband_masyr``; an SR at the edge of
the search's pm range has its outer sideband past it: a search with CWoLa reads those rows too,
:meth:`gaialake.streams.search.SearchSettings.row_range`). A classifier learns SR stars
(label 1) against SB stars (label 0) on the same mapped features as the flows (position, the
other proper motion, G, BP-RP; the sliced one is left out): where the background's features do not change across SR and SB, the optimal classifier is
a monotone function of P_SR(x) / P_SB(x) = 1 + S(x) / B(x), and a stream concentrated in the SR
stands out. Where they do change (a proper-motion gradient across the patch, colour with pm),
the classifier learns that too: the sidebands on both sides cancel a linear change, not a
curved one. The stars are split into k folds as in CATHODE
(:func:`gaialake.streams.cathode.kfold_scores`), so no SR star is scored by a classifier that
saw it; the classifier is ``streams.cathode.classifier`` (boosted trees or the network
ensemble).

>>> sidebands(np.array([-4.5, -3.5, 0.0, 3.5, 5.0]), SignalRegion("pm_phi", 0, -3.0, 3.0), 1.0)
array([False,  True, False,  True, False])
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from gaialake.streams.cathode import ClassifierSettings, classifier_settings, kfold_scores
from gaialake.streams.regions import SignalRegion

__all__ = ["sidebands", "cwola_scores"]


def sidebands(m: np.ndarray, sr: SignalRegion, width_masyr: float) -> np.ndarray:
    """Whether each sliced proper motion ``m`` (mas/yr) lies in a sideband of ``sr``:
    [lo - width, lo) or [hi, hi + width)."""
    if not width_masyr > 0:
        raise ValueError(f"streams.cwola.sideband_masyr must be > 0, got {width_masyr}")
    m = np.asarray(m, np.float64)
    return ((m >= sr.lo - width_masyr) & (m < sr.lo)) | ((m >= sr.hi) & (m < sr.hi + width_masyr))


def cwola_scores(x_sr: np.ndarray, x_sb: np.ndarray, seed: int, n_folds: int = 5,
                 classifier: Mapping[str, Any] | ClassifierSettings | None = None,
                 device: torch.device | None = None) -> tuple[np.ndarray, dict, list]:
    """Out-of-fold scores in [0, 1] of the SR stars' mapped features ``x_sr`` (n, d) against
    the sideband stars' ``x_sb`` (m, d), metrics and the k classifiers.

    Metrics: ``cwola_fold_auc`` (mean held-out AUC of SR vs SB: ~0.5 when the SR holds the
    sidebands' background and nothing else; well above it when the background changes with the
    sliced proper motion) and ``cwola_sb_stars``."""
    if len(x_sr) < 2 * n_folds or len(x_sb) < 2 * n_folds:
        raise ValueError(f"cwola_scores: {len(x_sr)} SR / {len(x_sb)} sideband stars are too "
                         f"few for {n_folds} folds")
    rng = np.random.default_rng(seed)
    scores, aucs, models = kfold_scores(np.asarray(x_sr, np.float32),
                                        np.asarray(x_sb, np.float32), rng, n_folds,
                                        classifier_settings(classifier), device)
    metrics = {"cwola_fold_auc": float(np.mean(aucs)) if aucs else float("nan"),
               "cwola_sb_stars": int(len(x_sb))}
    return scores, metrics, models

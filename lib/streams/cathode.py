"""CATHODE anomaly score (Hallin et al. 2022, arXiv 2109.00546).

The control-region flow P_CR(x | m) is sampled at the signal-region m values (``oversample``
samples per SR star), and a classifier learns SR data (label 1) against those samples
(label 0). Where P_CR describes the background, the classifier output is a monotone function
of P(x | m) / P_CR(x | m). The SR data are split into k folds; the classifier that scores a
fold is trained on the other folds only, so no star is scored by a model that saw it.
Classifier: scikit-learn's HistGradientBoostingClassifier (samples weighted 1/oversample so the
classes carry equal weight).

>>> scores, metrics = cathode_scores(x_sr, c_sr, cr_flow, seed=1)   # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from gaialake.models.flows import sample

__all__ = ["cathode_scores", "DEFAULT_CLASSIFIER"]

#: HistGradientBoostingClassifier settings (conf ``streams.cathode.classifier`` overrides).
DEFAULT_CLASSIFIER = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31,
                      "min_samples_leaf": 20, "early_stopping": True,
                      "validation_fraction": 0.2, "n_iter_no_change": 10}


def cathode_scores(x_sr: np.ndarray, c_sr: np.ndarray, cr_flow: torch.nn.Module, seed: int,
                   n_folds: int = 5, oversample: int = 4, classifier: dict | None = None
                   ) -> tuple[np.ndarray, dict, list]:
    """Out-of-fold classifier scores in [0, 1] for the SR stars, metrics, and the k classifiers.

    x_sr: mapped features (n, d); c_sr: standardised m (n, 1); cr_flow: the trained CR flow.
    Metrics: ``cathode_fold_auc`` (mean held-out AUC of data vs samples; ~0.5 when the SR holds
    nothing but background) and the sample counts.
    """
    n = len(x_sr)
    if n < 2 * n_folds:
        raise ValueError(f"cathode_scores: {n} SR stars are too few for {n_folds} folds")
    rng = np.random.default_rng(seed)
    c_samp = np.repeat(np.asarray(c_sr, np.float32), oversample, axis=0)
    x_samp = sample(cr_flow, c_samp, seed=int(rng.integers(2**62)))
    finite = np.all(np.isfinite(x_samp), axis=1)
    x_samp, c_samp = x_samp[finite], c_samp[finite]
    fold_data = rng.permutation(n) % n_folds
    fold_samp = rng.permutation(len(x_samp)) % n_folds
    params = {**DEFAULT_CLASSIFIER, **(classifier or {})}
    scores = np.full(n, np.nan)
    aucs, models = [], []
    for k in range(n_folds):
        tr_d, tr_s = fold_data != k, fold_samp != k
        xs = np.concatenate([x_sr[tr_d], x_samp[tr_s]])
        ys = np.concatenate([np.ones(tr_d.sum()), np.zeros(tr_s.sum())])
        w = np.concatenate([np.ones(tr_d.sum()), np.full(tr_s.sum(), tr_d.sum() / tr_s.sum())])
        clf = HistGradientBoostingClassifier(**params, random_state=int(rng.integers(2**31)))
        clf.fit(xs, ys, sample_weight=w)
        held = fold_data == k
        scores[held] = clf.predict_proba(x_sr[held])[:, 1]
        held_s = x_samp[fold_samp == k]
        if len(held_s):
            p_s = clf.predict_proba(held_s)[:, 1]
            aucs.append(roc_auc_score(np.r_[np.ones(held.sum()), np.zeros(len(p_s))],
                                      np.r_[scores[held], p_s]))
        models.append(clf)
    metrics = {"cathode_fold_auc": float(np.mean(aucs)) if aucs else float("nan"),
               "cathode_samples": int(len(x_samp)),
               "cathode_nonfinite_samples": int((~finite).sum())}
    return scores, metrics, models

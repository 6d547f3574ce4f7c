"""CATHODE anomaly score (Hallin et al. 2022, arXiv 2109.00546).

The control-region flow P_CR(x | m) is sampled at the signal-region m values (``oversample``
samples per SR star), and a classifier learns SR data (label 1) against those samples
(label 0). Where P_CR describes the background, the classifier output is a monotone function
of P(x | m) / P_CR(x | m). The SR data are split into k folds; the classifier that scores a
fold is trained on the other folds only, so no star is scored by a model that saw it. Samples
are weighted n_data / n_samples so the classes carry equal weight.

Classifiers (conf ``streams.cathode.classifier.kind``, :data:`CLASSIFIER_KINDS`):

- ``hgb``: scikit-learn's HistGradientBoostingClassifier (the section's other keys are its
  keyword arguments, over :data:`DEFAULT_CLASSIFIER`);
- ``nn_ensemble``: the paper's classifier: per fold, ``members`` small fully-connected ReLU
  networks (3 x 64 by default) trained with binary cross-entropy in
  :func:`gaialake.models.train.train`, each kept at its epoch of lowest validation loss (a
  split of the training folds), their probabilities averaged
  (:class:`gaialake.models.mlp.MLPEnsemble`; settings :class:`NNEnsembleSettings`, the
  section's ``nn_ensemble`` keys).

>>> scores, metrics, models = cathode_scores(x_sr, c_sr, cr_flow, seed=1)   # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from gaialake.conf import settings_from
from gaialake.models.flows import sample
from gaialake.models.mlp import MLPEnsemble, logit_mlp
from gaialake.models.train import TrainSettings, train

__all__ = ["cathode_scores", "kfold_scores", "classifier_settings", "DEFAULT_CLASSIFIER",
           "CLASSIFIER_KINDS", "NNEnsembleSettings", "ClassifierSettings", "fit_nn_ensemble"]

#: HistGradientBoostingClassifier settings (conf ``streams.cathode.classifier`` overrides).
DEFAULT_CLASSIFIER = {"max_iter": 200, "learning_rate": 0.1, "max_leaf_nodes": 31,
                      "min_samples_leaf": 20, "early_stopping": True,
                      "validation_fraction": 0.2, "n_iter_no_change": 10}
#: The classifiers of ``streams.cathode.classifier.kind``.
CLASSIFIER_KINDS = ("hgb", "nn_ensemble")
_WHERE = "streams.cathode.classifier"


@dataclass(frozen=True)
class NNEnsembleSettings:
    """CATHODE's network ensemble (``streams.cathode.classifier.nn_ensemble``): ``members``
    networks per fold (independently seeded), ``hidden`` widths (ReLU), at most ``epochs``
    epochs each with early stopping after ``patience`` epochs without a lower validation loss,
    Adam at ``lr``, ``batch_size`` rows a step, ``val_fraction`` of the training folds held out
    for validation."""

    members: int = 3
    hidden: tuple[int, ...] = (64, 64, 64)
    epochs: int = 30
    patience: int = 5
    lr: float = 1e-3
    batch_size: int = 256
    val_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.members < 1 or self.epochs < 1 or not 0 < self.val_fraction < 1:
            raise ValueError(f"{_WHERE}.nn_ensemble: members and epochs must be >= 1 and "
                             f"val_fraction in (0, 1), got {self}")


@dataclass(frozen=True)
class ClassifierSettings:
    """The ``streams.cathode.classifier`` section: ``kind`` (:data:`CLASSIFIER_KINDS`), the
    boosted trees' keyword arguments (``hgb``, over :data:`DEFAULT_CLASSIFIER`) and the
    network ensemble's settings (``nn``)."""

    kind: str = "hgb"
    hgb: dict = field(default_factory=lambda: dict(DEFAULT_CLASSIFIER))
    nn: NNEnsembleSettings = NNEnsembleSettings()

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None) -> "ClassifierSettings":
        """Settings from the conf section (kind, HistGradientBoostingClassifier keywords,
        ``nn_ensemble``); an unknown kind or keyword fails with its key named."""
        d = dict(section or {})
        kind = str(d.pop("kind", "hgb"))
        if kind not in CLASSIFIER_KINDS:
            raise ValueError(f"conf {_WHERE}.kind: {kind!r} is not one of {CLASSIFIER_KINDS}")
        nn = settings_from(NNEnsembleSettings, d.pop("nn_ensemble", None),
                           f"{_WHERE}.nn_ensemble")
        known = HistGradientBoostingClassifier().get_params()
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise KeyError(f"conf {_WHERE}.{unknown[0]}: not a HistGradientBoostingClassifier "
                           f"keyword (nor kind, nn_ensemble)")
        return cls(kind=kind, hgb={**DEFAULT_CLASSIFIER, **d}, nn=nn)


def _weighted_bce(net: torch.nn.Module, batch: tuple[torch.Tensor, ...]
                  ) -> tuple[torch.Tensor, float]:
    x, y, w = batch
    logit = net(x).squeeze(-1)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y, weight=w,
                                                                reduction="sum")
    total = w.sum()
    return loss / total, float(total)


def fit_nn_ensemble(x: np.ndarray, y: np.ndarray, weight: np.ndarray,
                    settings: NNEnsembleSettings, seed: int,
                    device: torch.device | None = None) -> MLPEnsemble:
    """An :class:`MLPEnsemble` of ``settings.members`` :func:`logit_mlp` networks fitted to
    labels ``y`` (0/1) of rows ``x`` (n, d) by weighted BCE; each member is kept at its epoch of
    lowest validation loss on a seeded ``val_fraction`` split. Returned on the CPU."""
    device = device or torch.device("cpu")
    rng = np.random.default_rng(seed)
    n = len(x)
    perm = rng.permutation(n)
    n_val = max(1, int(round(settings.val_fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"fit_nn_ensemble: {n} rows are too few")
    tensors = [torch.as_tensor(np.asarray(a, np.float32), device=device)
               for a in (x, y, weight)]
    val = [t[torch.as_tensor(perm[:n_val], device=device)] for t in tensors]
    tr = [t[torch.as_tensor(perm[n_val:], device=device)] for t in tensors]
    run = TrainSettings(lr=settings.lr, weight_decay=0.0, batch_size=settings.batch_size,
                        max_epochs=settings.epochs, patience=settings.patience, clip=None)
    members = []
    for _ in range(settings.members):
        member_seed = int(rng.integers(2**62))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(member_seed)
            net = logit_mlp(x.shape[1], settings.hidden)
        gen = torch.Generator().manual_seed(member_seed)

        def batches(epoch: int):
            order = torch.randperm(len(tr[0]), generator=gen).to(device)
            for i in range(0, len(order), run.batch_size):
                idx = order[i:i + run.batch_size]
                yield tuple(t[idx] for t in tr)

        train(net, batches, _weighted_bce, run, seed=member_seed, device=device,
              val_loss=lambda m: float(_weighted_bce(m, tuple(val))[0]), name="cathode_nn")
        members.append(net)
    return MLPEnsemble(members).cpu().eval()


def kfold_scores(x_pos: np.ndarray, x_neg: np.ndarray, rng: np.random.Generator,
                 n_folds: int, settings: ClassifierSettings,
                 device: torch.device | None = None) -> tuple[np.ndarray, list[float], list]:
    """Out-of-fold classifier scores in [0, 1] of the ``x_pos`` rows (label 1) against the
    ``x_neg`` rows (label 0, weighted so both classes carry equal weight): both are split into
    ``n_folds`` folds and the classifier of fold k trains on the other folds only. Returns the
    scores of ``x_pos``, each fold's held-out AUC (pos vs neg; ~0.5 when they are alike) and the
    k classifiers (each with ``predict_proba``). CATHODE's negatives are flow samples, CWoLa's
    the sideband stars (:mod:`gaialake.streams.cwola`)."""
    n = len(x_pos)
    fold_pos = rng.permutation(n) % n_folds
    fold_neg = rng.permutation(len(x_neg)) % n_folds
    scores = np.full(n, np.nan)
    aucs, models = [], []
    for k in range(n_folds):
        tr_p, tr_n = fold_pos != k, fold_neg != k
        xs = np.concatenate([x_pos[tr_p], x_neg[tr_n]])
        ys = np.concatenate([np.ones(tr_p.sum()), np.zeros(tr_n.sum())])
        w = np.concatenate([np.ones(tr_p.sum()), np.full(tr_n.sum(), tr_p.sum() / tr_n.sum())])
        fold_seed = int(rng.integers(2**31))
        if settings.kind == "hgb":
            clf = HistGradientBoostingClassifier(**settings.hgb, random_state=fold_seed)
            clf.fit(xs, ys, sample_weight=w)
        else:
            clf = fit_nn_ensemble(xs, ys, w, settings.nn, seed=fold_seed, device=device)
        held = fold_pos == k
        scores[held] = clf.predict_proba(x_pos[held])[:, 1]
        held_n = x_neg[fold_neg == k]
        if len(held_n):
            p_n = clf.predict_proba(held_n)[:, 1]
            aucs.append(roc_auc_score(np.r_[np.ones(held.sum()), np.zeros(len(p_n))],
                                      np.r_[scores[held], p_n]))
        models.append(clf)
    return scores, aucs, models


def classifier_settings(classifier: Mapping[str, Any] | ClassifierSettings | None
                        ) -> ClassifierSettings:
    """:class:`ClassifierSettings` of a conf section (or the settings themselves)."""
    return classifier if isinstance(classifier, ClassifierSettings) \
        else ClassifierSettings.from_dict(classifier)


def cathode_scores(x_sr: np.ndarray, c_sr: np.ndarray, cr_flow: torch.nn.Module, seed: int,
                   n_folds: int = 5, oversample: int = 4,
                   classifier: Mapping[str, Any] | ClassifierSettings | None = None,
                   device: torch.device | None = None) -> tuple[np.ndarray, dict, list]:
    """Out-of-fold classifier scores in [0, 1] for the SR stars, metrics, and the k classifiers
    (each with ``predict_proba``): :func:`kfold_scores` of the SR stars against the CR flow's
    samples at their m.

    x_sr: mapped features (n, d); c_sr: standardised m (n, 1); cr_flow: the trained CR flow;
    classifier: the ``streams.cathode.classifier`` section (or its settings); device: where the
    network ensemble trains. Metrics: ``cathode_fold_auc`` (mean held-out AUC of data vs
    samples; ~0.5 when the SR holds nothing but background) and the sample counts.
    """
    n = len(x_sr)
    if n < 2 * n_folds:
        raise ValueError(f"cathode_scores: {n} SR stars are too few for {n_folds} folds")
    rng = np.random.default_rng(seed)
    c_samp = np.repeat(np.asarray(c_sr, np.float32), oversample, axis=0)
    x_samp = sample(cr_flow, c_samp, seed=int(rng.integers(2**62)))
    finite = np.all(np.isfinite(x_samp), axis=1)
    x_samp = x_samp[finite]
    scores, aucs, models = kfold_scores(x_sr, x_samp, rng, n_folds,
                                        classifier_settings(classifier), device)
    metrics = {"cathode_fold_auc": float(np.mean(aucs)) if aucs else float("nan"),
               "cathode_samples": int(len(x_samp)),
               "cathode_nonfinite_samples": int((~finite).sum())}
    return scores, metrics, models

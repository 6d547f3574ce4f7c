"""Training the accreted-star classifier on rows held in memory (tests and small skies).

:func:`fit_in_memory` does on a pandas DataFrame what the job does with the Petastorm stream
(:func:`gaialake.accreted.classifier_spark.train_streaming`): quality cuts, features, class-weighted
training and Platt calibration of each variant's net. :func:`transfer_in_memory` fine-tunes the
``5d`` net on a target catalog's own radial-velocity stars labelled by the ``6d`` net (after
Ostdiek et al. 2020, who fine-tuned their 5D network on the Gaia-RAVE cross-match): no truth of
that catalog is used.
"""
from __future__ import annotations

import copy
from typing import Mapping, Sequence

import numpy as np
import torch

from gaialake.accreted.features import features
from gaialake.accreted.scoring import cut_phase_space, teacher_rows, uses_photometry
from gaialake.models.accreted_net import (AccretedClassifier, VariantNet, build_accreted_model,
                                          fit_platt, raw_logits, set_standardization,
                                          tensor_batches, train_epochs, train_settings,
                                          transfer_epochs)

__all__ = ["train_tensors", "fit_in_memory", "transfer_in_memory"]


def train_tensors(x: np.ndarray, y: np.ndarray, *, hidden: Sequence[int] = (64, 64, 64),
                  epochs: int = 10, batch_size: int = 512, lr: float = 2e-3,
                  weight_decay: float = 1e-5, val_fraction: float = 0.25, seed: int = 0,
                  dropout: float = 0.0, device: torch.device | str = "cpu",
                  ) -> tuple[VariantNet, dict]:
    """Train and calibrate one :class:`~gaialake.models.accreted_net.VariantNet` on feature
    rows ``x`` (n, k); ``y`` is 1 for accreted. The first ``val_fraction`` of a seeded
    permutation calibrates. Returns (net on CPU, {"pos_weight", "platt", "val_idx", "history"}).
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = int(round(val_fraction * len(x)))
    train_idx, val_idx = order[n_val:], order[:n_val]
    n_pos = float(y[train_idx].sum())
    if n_pos == 0 or n_pos == len(train_idx):
        raise ValueError(f"training rows need both classes (got {len(train_idx)} rows, "
                         f"{n_pos:.0f} accreted)")
    pos_weight = (len(train_idx) - n_pos) / n_pos
    torch.manual_seed(int(seed))  # the initial weights
    net = VariantNet(x.shape[1], hidden, dropout)
    set_standardization(net, x[train_idx])
    history = train_epochs(
        net, lambda epoch: tensor_batches(x[train_idx], y[train_idx], batch_size, seed + epoch),
        train_settings(epochs, lr, weight_decay, batch_size), pos_weight=pos_weight,
        device=device, seed=seed)
    net = net.cpu()
    platt = fit_platt(net, raw_logits(net, x[val_idx]), y[val_idx])
    return net, {"pos_weight": pos_weight, "platt": platt, "val_idx": val_idx, "history": history}


def fit_in_memory(stars, labels: np.ndarray, config: Mapping, *, epochs: int = 10,
                  batch_size: int = 512, lr: float = 2e-3, weight_decay: float = 1e-5,
                  val_fraction: float = 0.25, seed: int = 0) -> tuple[AccretedClassifier, dict]:
    """Train every variant of ``config`` (:func:`gaialake.accreted.scoring.classifier_config`)
    on labelled DR3 rows (pandas; ``labels`` 1 for accreted): quality cuts, features,
    :func:`train_tensors`. Returns (model, {variant: train_tensors info + "rows", the indices
    of the stars it used})."""
    model = build_accreted_model(config)
    keep, _, ps = cut_phase_space(config, stars)
    y = np.asarray(labels, np.float32)
    infos = {}
    for name in config["variants"]:
        x = features(stars, name, ps, uses_photometry(config))
        ok = keep & np.all(np.isfinite(x), axis=1)
        net, info = train_tensors(x[ok], y[ok], hidden=config["hidden"], epochs=epochs,
                                  batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                  val_fraction=val_fraction, seed=seed,
                                  dropout=float(config.get("dropout", 0.0)))
        model.nets[name].load_state_dict(net.state_dict())
        info["rows"] = np.flatnonzero(ok)
        infos[name] = info
    return model.eval(), infos


def transfer_in_memory(model: AccretedClassifier, target_stars, *, epochs: int = 5,
                       batch_size: int = 512, lr: float = 5e-4, seed: int = 0,
                       ) -> AccretedClassifier:
    """A copy of ``model`` whose ``5d`` net is fine-tuned on the target catalog's own
    radial-velocity stars (:func:`gaialake.accreted.scoring.teacher_rows`; no truth used)."""
    out = copy.deepcopy(model).eval()
    _, x5, p6 = teacher_rows(out, target_stars)
    if len(x5) == 0:
        return out
    transfer_epochs(out.nets["5d"], lambda epoch: tensor_batches(x5, p6, batch_size, seed + epoch),
                    train_settings(epochs, lr, batch_size=batch_size), seed=seed)
    return out.eval()

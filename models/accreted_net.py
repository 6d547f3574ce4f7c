"""The accreted-star classifier's torch modules: an MLP per feature variant, class-weighted
training, soft-label transfer, Platt calibration.

After Ostdiek et al. 2020 (arXiv 1907.06652): a network on phase-space features only (no
photometry) gives each star the probability that it was accreted. One network per feature
variant, named in the config with its feature columns (``gaialake.accreted.features`` defines
``5d``: no radial velocity, and ``6d``: with it).

Each :class:`VariantNet` holds its feature standardisation (``mean``, ``std`` buffers) and its
Platt calibration (``platt`` = (a, b): p = sigmoid(a * logit + b), fitted on a validation split
with the natural class balance), so the ``state_dict`` carries everything learned. Training
(:func:`train_epochs`) uses a class-weighted BCE (``pos_weight`` = n_in_situ / n_accreted): the
network ranks as if the classes were balanced, and the calibration restores the probabilities
of the training galaxy. Transfer (:func:`transfer_epochs`) fine-tunes the calibrated output on
soft labels (another net's probabilities). Both run on :func:`gaialake.models.train.train`.

Config (JSON; ``gaialake.io.tracking`` rebuilds the module from it with
:func:`build_accreted_model`; other keys, such as the quality cuts, ride along)::

    {"variants": {"5d": ["R_kpc", ...], "6d": [...]}, "hidden": [64, 64, 64], "dropout": 0.0}

Example::

    model = build_accreted_model(model_config({"5d": feature_names}, hidden=[32, 32]))
    net = model.nets["5d"]
    set_standardization(net, x_train)
    train_epochs(net, lambda epoch: tensor_batches(x_train, y_train, 512, seed=epoch),
                 train_settings(epochs=5, lr=2e-3), pos_weight=30.0)
    fit_platt(net, raw_logits(net, x_val), y_val)
    p = net.probability(x_val)
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from gaialake.models.train import TrainSettings, train

__all__ = ["VariantNet", "AccretedClassifier", "model_config", "build_accreted_model",
           "set_standardization", "train_settings", "train_epochs", "transfer_epochs",
           "tensor_batches", "raw_logits", "fit_platt"]

Batches = Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]]


class VariantNet(nn.Module):
    """MLP on one feature set: standardise, hidden layers (SiLU), one logit.

    ``forward(x)`` is the raw (class-weighted) logit; :meth:`calibrated_logit` and
    :meth:`probability` apply the Platt calibration.
    """

    def __init__(self, n_features: int, hidden: Sequence[int], dropout: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))
        self.register_buffer("platt", torch.tensor([1.0, 0.0]))
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.SiLU()]
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            width = int(h)
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw logits (n,) of feature rows x (n, n_features)."""
        return self.net((x - self.mean) / self.std).squeeze(-1)

    def calibrated_logit(self, x: torch.Tensor) -> torch.Tensor:
        """Platt-calibrated logits (n,): a * forward(x) + b."""
        return self.platt[0] * self.forward(x) + self.platt[1]

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """Calibrated P(accreted) of feature rows x (n, n_features)."""
        return torch.sigmoid(self.calibrated_logit(x))


class AccretedClassifier(nn.Module):
    """The registered model: one :class:`VariantNet` per feature variant (``nets``)."""

    def __init__(self, config: Mapping):
        super().__init__()
        self.config = dict(config)
        self.nets = nn.ModuleDict({
            name: VariantNet(len(cols), config["hidden"], float(config.get("dropout", 0.0)))
            for name, cols in config["variants"].items()})


def model_config(variants: Mapping[str, Sequence[str]], hidden: Sequence[int] = (64, 64, 64),
                 dropout: float = 0.0) -> dict:
    """The keys :func:`build_accreted_model` reads: ``variants`` {name: feature columns},
    ``hidden`` layer widths, ``dropout``."""
    return {"variants": {name: list(cols) for name, cols in variants.items()},
            "hidden": [int(h) for h in hidden], "dropout": float(dropout)}


def build_accreted_model(config: Mapping) -> AccretedClassifier:
    """The module of ``config`` (:func:`model_config` keys): the builder registered with the
    model, ``gaialake.models.accreted_net:build_accreted_model``."""
    return AccretedClassifier(config)


def set_standardization(net: VariantNet, x: np.ndarray | torch.Tensor | None = None, *,
                        mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                        ) -> None:
    """Set the feature standardisation from rows ``x`` or from given ``mean``/``std``."""
    if x is not None:
        x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        mean, std = x.mean(0), x.std(0)
    net.mean.copy_(torch.as_tensor(np.asarray(mean, dtype=np.float32)))
    net.std.copy_(torch.clamp(torch.as_tensor(np.asarray(std, dtype=np.float32)), min=1e-6))


def tensor_batches(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, batch_size: int,
                   seed: int = 0) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled (x, y) float32 minibatches of in-memory rows (one epoch)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float32)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(seed)))
    for s in range(0, len(x), batch_size):
        idx = order[s:s + batch_size]
        yield x[idx], y[idx]


def train_settings(epochs: int, lr: float, weight_decay: float = 1e-5, batch_size: int = 512,
                   val_fraction: float = 0.2) -> TrainSettings:
    """The classifier's training settings: AdamW (``lr``, ``weight_decay``), a cosine decay of
    the learning rate over ``epochs``, no gradient clipping, a loss line per epoch."""
    return TrainSettings(lr=float(lr), weight_decay=float(weight_decay),
                         batch_size=int(batch_size), max_epochs=int(epochs),
                         val_fraction=float(val_fraction), clip=None, schedule="cosine_epochs",
                         log_every=1)


def train_epochs(net: VariantNet, batches: Batches, settings: TrainSettings, *,
                 pos_weight: float, device: torch.device | str = "cpu", seed: int = 0,
                 logger: logging.Logger | None = None) -> list[float]:
    """Train ``net`` with class-weighted BCE (``pos_weight`` = n_negative / n_positive);
    ``batches(epoch)`` yields (x, y) tensors, y = 1 for accreted. Returns the row-weighted
    mean loss of each epoch; ``net`` ends in eval mode on ``device``."""

    def loss(module: VariantNet, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, int]:
        x, y = batch
        logits = module(x)
        weight = torch.tensor(float(pos_weight), device=logits.device)
        return nn.functional.binary_cross_entropy_with_logits(
            logits, y.float(), pos_weight=weight), len(x)

    return train(net, batches, loss, settings, seed=int(seed), device=device, logger=logger,
                 name="train").train_loss


def transfer_epochs(net: VariantNet, batches: Batches, settings: TrainSettings, *,
                    device: torch.device | str = "cpu", seed: int = 0,
                    logger: logging.Logger | None = None) -> list[float]:
    """Fine-tune the calibrated output of a trained net on soft labels: ``batches(epoch)``
    yields (features, p_teacher); unweighted BCE on the calibrated logit, so the net stays
    calibrated to the teacher. Returns the row-weighted mean loss of each epoch."""

    def loss(module: VariantNet, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, int]:
        x, y = batch
        return nn.functional.binary_cross_entropy_with_logits(
            module.calibrated_logit(x), y.float()), len(x)

    return train(net, batches, loss, settings, seed=int(seed), device=device, logger=logger,
                 name="transfer").train_loss


@torch.no_grad()
def raw_logits(net: VariantNet, x: np.ndarray | torch.Tensor, batch_size: int = 65536
               ) -> np.ndarray:
    """Uncalibrated logits (n,) of feature rows, on CPU."""
    net = net.eval()
    device = net.mean.device
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    out = [net(x[s:s + batch_size].to(device)).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def fit_platt(net: VariantNet, logits: np.ndarray, labels: np.ndarray, iters: int = 200
              ) -> tuple[float, float]:
    """Platt scaling (Platt 1999): fit p = sigmoid(a * logit + b) by unweighted BCE on a
    validation split; stores (a, b) in ``net.platt`` and returns them."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
    if len(z) == 0 or y.min() == y.max():
        raise ValueError("Platt calibration needs validation stars of both classes "
                         f"(got {len(z)} stars, {int(y.sum())} accreted)")
    params = torch.tensor([1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([params], lr=0.5, max_iter=int(iters), line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(params[0] * z + params[1], y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = (float(v) for v in params.detach())
    net.platt.copy_(torch.tensor([a, b]))
    return a, b

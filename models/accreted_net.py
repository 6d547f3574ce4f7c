"""The accreted-star classifier: a torch MLP per feature variant, class-weighted, Platt-calibrated.

After Ostdiek et al. 2020 (arXiv 1907.06652): a network on phase-space features only (no
photometry) gives each star the probability that it was accreted. One network per feature set of
:mod:`gaialake.accreted.features` (``5d``: no radial velocity; ``6d``: with it); a star is scored by
the ``6d`` network when it has a radial velocity, else by the ``5d`` one.

Each :class:`VariantNet` holds its feature standardisation (``mean``, ``std`` buffers) and its
Platt calibration (``platt`` = (a, b): p = sigmoid(a * logit + b), fitted on a validation split
with the natural class balance), so the ``state_dict`` carries everything learned. Training uses
a class-weighted BCE (``pos_weight`` = n_in_situ / n_accreted): the network ranks as if the
classes were balanced, and the calibration restores the probabilities of the training galaxy.

Transfer (:func:`transfer_epochs`): a ``5d`` net trained on one galaxy ranks another galaxy's
debris by the first one's history (galaxy B's retrograde Sequoia sits where A's in-situ halo
dominates). As Ostdiek et al. fine-tuned on the Gaia-RAVE cross-match, the ``5d`` net is
fine-tuned on the scored catalog's own radial-velocity stars with the ``6d`` net's
probabilities as soft labels: no truth of that catalog is used.

Config (JSON; ``gaialake.io.tracking`` rebuilds the module from it)::

    {"variants": {"5d": ["R_kpc", ...], "6d": [...]}, "hidden": [64, 64, 64],
     "dropout": 0.0, "cuts": {"parallax_over_error_min": 5.0, "ruwe_max": 1.4,
     "distance_max_kpc": null}, "predict": "gaialake.models.accreted_net:predict"}

Example::

    model = build_accreted_model(model_config(hidden=[32, 32]))
    net = model.nets["5d"]
    set_standardization(net, x_train)
    train_epochs(net, lambda epoch: tensor_batches(x_train, y_train, 512, seed=epoch), epochs=5,
                 pos_weight=30.0)
    fit_platt(net, raw_logits(net, x_val), y_val)
    p = net.probability(x_val)
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from gaialake.accreted.features import VARIANTS, features, has_radial_velocity, phase_space, quality_mask

__all__ = ["VariantNet", "AccretedClassifier", "model_config", "build_accreted_model",
           "set_standardization", "train_epochs", "transfer_epochs", "tensor_batches",
           "raw_logits", "fit_platt", "train_tensors", "teacher_rows", "fit_in_memory",
           "transfer_in_memory", "score_stars", "predict", "SCORE_COLUMNS"]

#: Columns :func:`score_stars` returns (besides the input's source_id).
SCORE_COLUMNS = ["p_accreted", "variant", "unscored_reason"]

DEFAULT_CUTS = {"parallax_over_error_min": 5.0, "ruwe_max": 1.4, "distance_max_kpc": None}


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
        return self.net((x - self.mean) / self.std).squeeze(-1)

    def calibrated_logit(self, x: torch.Tensor) -> torch.Tensor:
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


def model_config(hidden: Sequence[int] = (64, 64, 64), dropout: float = 0.0,
                 variants: Sequence[str] = ("5d", "6d"), cuts: Mapping | None = None) -> dict:
    """A config for :func:`build_accreted_model` (feature names from ``gaialake.accreted.features``)."""
    return {"variants": {v: list(VARIANTS[v]) for v in variants}, "hidden": [int(h) for h in hidden],
            "dropout": float(dropout), "cuts": {**DEFAULT_CUTS, **dict(cuts or {})},
            "predict": "gaialake.models.accreted_net:predict"}


def build_accreted_model(config: Mapping) -> AccretedClassifier:
    """The builder registered with the model (``gaialake.models.accreted_net:build_accreted_model``)."""
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
    """Shuffled (x, y) minibatches of in-memory rows (one epoch)."""
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(y), dtype=torch.float32)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(int(seed)))
    for s in range(0, len(x), batch_size):
        idx = order[s:s + batch_size]
        yield x[idx], y[idx]


def _fit(net: VariantNet, batches, epochs: int, loss_fn, output: str, lr: float,
         weight_decay: float, device, seed: int, logger, what: str) -> list[float]:
    torch.manual_seed(int(seed))
    net.to(device).train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, int(epochs)))
    history = []
    for epoch in range(int(epochs)):
        total, count = 0.0, 0
        for xb, yb in batches(epoch):
            xb, yb = xb.to(device), yb.to(device).float()
            loss = loss_fn(getattr(net, output)(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
        sched.step()
        history.append(total / max(count, 1))
        if logger is not None:
            logger.info("%s epoch %d/%d: loss %.4f over %d rows", what, epoch + 1, epochs,
                        history[-1], count)
    net.eval()
    return history


def train_epochs(net: VariantNet, batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                 epochs: int, *, pos_weight: float, lr: float = 2e-3, weight_decay: float = 1e-5,
                 device: torch.device | str = "cpu", seed: int = 0,
                 logger: logging.Logger | None = None) -> list[float]:
    """Train ``net`` with class-weighted BCE (``pos_weight`` = n_negative / n_positive) and
    AdamW with a cosine learning-rate decay; ``batches(epoch)`` yields (x, y) tensors, y = 1
    for accreted. Returns the mean loss of each epoch."""
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(float(pos_weight), device=device))
    return _fit(net, batches, epochs, loss_fn, "forward", lr, weight_decay, device, seed, logger,
                "train")


def transfer_epochs(net: VariantNet, batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                    epochs: int, *, lr: float = 5e-4, weight_decay: float = 1e-5,
                    device: torch.device | str = "cpu", seed: int = 0,
                    logger: logging.Logger | None = None) -> list[float]:
    """Transfer learning on the target catalog (after Ostdiek et al. 2020, who fine-tuned their
    5D network on the Gaia-RAVE cross-match): fine-tune the calibrated output of a trained
    ``5d`` net on the target's own radial-velocity stars, whose soft labels are the ``6d`` net's
    probabilities; ``batches(epoch)`` yields (5d features, p_6d). Unweighted BCE on the
    calibrated logit, so the net stays calibrated to the teacher. No truth is used."""
    loss_fn = nn.BCEWithLogitsLoss()
    return _fit(net, batches, epochs, loss_fn, "calibrated_logit", lr, weight_decay, device,
                seed, logger, "transfer")


@torch.no_grad()
def raw_logits(net: VariantNet, x: np.ndarray | torch.Tensor, batch_size: int = 65536) -> np.ndarray:
    """Uncalibrated logits (n,) of feature rows, on CPU."""
    net = net.eval()
    device = net.mean.device
    x = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    out = [net(x[s:s + batch_size].to(device)).cpu() for s in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def fit_platt(net: VariantNet, logits: np.ndarray, labels: np.ndarray, iters: int = 200) -> tuple[float, float]:
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


def train_tensors(x: np.ndarray, y: np.ndarray, *, hidden: Sequence[int] = (64, 64, 64),
                  epochs: int = 10, batch_size: int = 512, lr: float = 2e-3,
                  weight_decay: float = 1e-5, val_fraction: float = 0.25, seed: int = 0,
                  dropout: float = 0.0, device: torch.device | str = "cpu",
                  ) -> tuple[VariantNet, dict]:
    """Train and calibrate one :class:`VariantNet` on in-memory rows (tests, small data).

    ``y`` is 1 for accreted. The last ``val_fraction`` of a seeded permutation calibrates.
    Returns (net on CPU, {"pos_weight", "platt", "val_idx", "history"}).
    """
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_val = int(round(val_fraction * len(x)))
    tr, va = order[n_val:], order[:n_val]
    n_pos = float(y[tr].sum())
    if n_pos == 0 or n_pos == len(tr):
        raise ValueError(f"training rows need both classes (got {len(tr)} rows, {n_pos:.0f} accreted)")
    pos_weight = (len(tr) - n_pos) / n_pos
    torch.manual_seed(int(seed))  # the initial weights
    net = VariantNet(x.shape[1], hidden, dropout)
    set_standardization(net, x[tr])
    history = train_epochs(net, lambda e: tensor_batches(x[tr], y[tr], batch_size, seed + e),
                           epochs, pos_weight=pos_weight, lr=lr, weight_decay=weight_decay,
                           device=device, seed=seed)
    net = net.cpu()
    platt = fit_platt(net, raw_logits(net, x[va]), y[va])
    return net, {"pos_weight": pos_weight, "platt": platt, "val_idx": va, "history": history}


def _cut_phase_space(model: AccretedClassifier, stars):
    """The model's quality cuts (mask, reason per star) and the stars' Galactocentric phase space."""
    cuts = {**DEFAULT_CUTS, **dict(model.config.get("cuts", {}))}
    keep, reason = quality_mask(stars, **cuts)
    cols = {c: np.asarray(stars[c], np.float64) for c in ("ra", "dec", "parallax", "pmra", "pmdec",
                                                          "radial_velocity")}
    ps = phase_space(cols["ra"], cols["dec"], cols["parallax"], cols["pmra"], cols["pmdec"],
                     cols["radial_velocity"])
    return keep, reason, ps


def teacher_rows(model: AccretedClassifier, stars) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transfer set of a catalog: stars passing the cuts with a radial velocity and finite
    features. Returns (row index, ``5d`` features, the ``6d`` net's calibrated probability)."""
    keep, _, ps = _cut_phase_space(model, stars)
    x5, x6 = features(stars, "5d", ps), features(stars, "6d", ps)
    ok = keep & np.all(np.isfinite(x5), axis=1) & np.all(np.isfinite(x6), axis=1)
    idx = np.flatnonzero(ok)
    with torch.no_grad():
        net = model.nets["6d"].eval()
        p6 = net.probability(torch.as_tensor(x6[idx], dtype=torch.float32, device=net.mean.device))
    return idx, x5[idx], p6.double().cpu().numpy()


def fit_in_memory(stars, labels: np.ndarray, config: Mapping, *, epochs: int = 10,
                  batch_size: int = 512, lr: float = 2e-3, weight_decay: float = 1e-5,
                  val_fraction: float = 0.25, seed: int = 0) -> tuple[AccretedClassifier, dict]:
    """Train every variant of ``config`` on labelled DR3 rows held in memory (pandas; tests and
    small skies): quality cuts, features, class-weighted training, Platt calibration. The job
    does the same with the Petastorm stream. Returns (model, {variant: train_tensors info})."""
    model = build_accreted_model(config)
    cuts = {**DEFAULT_CUTS, **dict(config.get("cuts", {}))}
    keep, _ = quality_mask(stars, **cuts)
    cols = {c: np.asarray(stars[c], np.float64) for c in ("ra", "dec", "parallax", "pmra", "pmdec",
                                                          "radial_velocity")}
    ps = phase_space(cols["ra"], cols["dec"], cols["parallax"], cols["pmra"], cols["pmdec"],
                     cols["radial_velocity"])
    y = np.asarray(labels, np.float32)
    infos = {}
    for name in config["variants"]:
        x = features(stars, name, ps)
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
    radial-velocity stars (:func:`transfer_epochs`; no truth used)."""
    import copy

    out = copy.deepcopy(model).eval()
    _, x5, p6 = teacher_rows(out, target_stars)
    if len(x5) == 0:
        return out
    transfer_epochs(out.nets["5d"], lambda e: tensor_batches(x5, p6, batch_size, seed + e),
                    epochs, lr=lr, seed=seed)
    return out.eval()


@torch.no_grad()
def score_stars(model: AccretedClassifier, stars, extra: bool = False):
    """P(accreted) of DR3 rows (pandas DataFrame with the astrometry columns of
    :data:`gaialake.accreted.features.ASTROMETRY_COLUMNS`).

    Returns a DataFrame with :data:`SCORE_COLUMNS` in the input's row order: ``p_accreted`` is
    null (NaN) and ``unscored_reason`` says why for stars failing the quality cuts or with
    missing astrometry; ``variant`` is ``6d`` where a radial velocity exists (and the model has
    a ``6d`` net), else ``5d``. ``extra``: also ``v_toomre_kms`` (the baseline's
    |v - v_LSR|, km/s) and the spherical velocities ``v_r``, ``v_theta``, ``v_phi`` (km/s).
    Deterministic: the same rows give the same numbers.
    """
    import pandas as pd

    from gaialake.accreted.features import toomre_speed, velocity_space

    n = len(stars)
    keep, reason, ps = _cut_phase_space(model, stars)
    p = np.full(n, np.nan)
    variant = np.full(n, None, dtype=object)
    use6 = keep & has_radial_velocity(stars) & ("6d" in model.nets)
    for name, mask in (("6d", use6), ("5d", keep & ~use6)):
        if name not in model.nets or not mask.any():
            continue
        x = features(stars, name, ps)[mask]
        good = np.all(np.isfinite(x), axis=1)
        idx = np.flatnonzero(mask)[good]
        if len(idx):
            net = model.nets[name].eval()
            xt = torch.as_tensor(x[good], dtype=torch.float32, device=net.mean.device)
            p[idx] = net.probability(xt).double().cpu().numpy()
            variant[idx] = name
        reason[np.flatnonzero(mask)[~good]] = "missing_astrometry"
    out = pd.DataFrame({"p_accreted": p, "variant": variant, "unscored_reason": reason})
    if extra:
        out["v_toomre_kms"] = toomre_speed(stars, ps)
        out = out.assign(**velocity_space(stars, ps))
    return out


def predict(model: AccretedClassifier, model_input):
    """pyfunc ``predict``: :func:`score_stars` of a pandas DataFrame of DR3 rows."""
    return score_stars(model, model_input)

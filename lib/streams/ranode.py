"""R-ANODE anomaly score (Das, Kasieczka & Shih 2023, arXiv 2312.11629).

ANODE fits the signal-region (SR) density P(x | m) with a second flow and divides by the
control-region flow. R-ANODE instead fits the SR stars with the mixture

    P(x | m) = (1 - w) P_bg(x | m) + w P_sig(x | m),

where P_bg is the control-region flow, frozen (trained on the CR and interpolated into the SR,
shared with ANODE and CATHODE), and only a small signal flow P_sig and the signal fraction w
(one number per SR, bounded to [w_lo, w_hi] through a sigmoid) are trained, by maximum
likelihood on the SR stars (a validation split for early stopping) in
:func:`gaialake.models.train.train`. The signal flow then has to describe only what the
background does not: a stream, not the whole field. The score is
log P_sig(x | m) - log P_bg(x | m) (the ranking of the posterior signal probability, finite
where that saturates at 1). As ANODE, the stars scored are those trained on; the signal flow
is small and early-stopped so it cannot learn single stars.

>>> model, fit = fit_ranode(x_sr, c_sr, cr_flow, RanodeSettings(), seed=1)   # doctest: +SKIP
>>> score = ranode_log_ratio(model, cr_flow, x_sr, c_sr)                     # doctest: +SKIP
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from gaialake.conf import settings_from
from gaialake.models.flows import build_flow, log_prob
from gaialake.models.train import TrainResult, TrainSettings, train

__all__ = ["RanodeSettings", "SignalMixture", "fit_ranode", "ranode_log_ratio",
           "build_signal_mixture", "ranode_record"]


@dataclass(frozen=True)
class RanodeSettings:
    """The ``streams.ranode`` section: the signal ``flow`` config (features and context are
    set from the data), its ``train`` settings (over ``streams.train``), the initial signal
    fraction ``w_init`` and its bounds ``w_bounds`` (0 < lo < init < hi < 1)."""

    flow: dict = field(default_factory=lambda: {"type": "maf", "transforms": 3, "hidden": 32})
    train: TrainSettings = TrainSettings(lr=3e-3, batch_size=128, max_epochs=40, patience=5)
    w_init: float = 0.05
    w_bounds: tuple[float, float] = (1e-4, 0.5)

    def __post_init__(self) -> None:
        lo, hi = self.w_bounds
        if not 0.0 < lo < self.w_init < hi < 1.0:
            raise ValueError(f"streams.ranode: need 0 < w_bounds[0] < w_init < w_bounds[1] "
                             f"< 1, got w_init {self.w_init}, w_bounds {self.w_bounds}")

    @classmethod
    def from_dict(cls, section: Mapping[str, Any] | None, base_train: TrainSettings
                  ) -> "RanodeSettings":
        """Settings of the ``streams.ranode`` section; ``train`` keys override
        ``base_train`` (``streams.train``); unknown keys fail with their name."""
        d = dict(section or {})
        train_settings = TrainSettings.from_dict(dict(d.pop("train", None) or {}),
                                                 base=base_train, where="streams.ranode.train")
        given: dict[str, Any] = {"train": train_settings}
        bounds = d.pop("w_bounds", None)
        if bounds is not None:
            if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
                raise ValueError(f"conf streams.ranode.w_bounds: two numbers, got {bounds!r}")
            given["w_bounds"] = (float(bounds[0]), float(bounds[1]))
        return settings_from(cls, d, "streams.ranode", **given)


class SignalMixture(torch.nn.Module):
    """P_sig(x | m) (``signal``, a flow) and the signal fraction w in [lo, hi] of R-ANODE's
    mixture; the frozen background enters as precomputed log P_bg."""

    def __init__(self, signal: torch.nn.Module, w_bounds: tuple[float, float],
                 w_init: float | None = None) -> None:
        super().__init__()
        lo, hi = (float(b) for b in w_bounds)
        self.signal = signal
        self.register_buffer("w_bounds", torch.tensor([lo, hi]))
        u = 0.5 if w_init is None else (float(w_init) - lo) / (hi - lo)
        self.w_raw = torch.nn.Parameter(torch.tensor(math.log(u / (1.0 - u))))

    @property
    def w(self) -> torch.Tensor:
        """The signal fraction (a 0-d tensor)."""
        lo, hi = self.w_bounds
        return lo + (hi - lo) * torch.sigmoid(self.w_raw)

    def log_prob(self, x: torch.Tensor, c: torch.Tensor, log_bg: torch.Tensor) -> torch.Tensor:
        """log[(1 - w) P_bg + w P_sig] per row, given log P_bg (n,)."""
        w = self.w
        return torch.logaddexp(torch.log1p(-w) + log_bg,
                               torch.log(w) + self.signal(c).log_prob(x))


def build_signal_mixture(flow_config: dict, w_bounds: tuple[float, float],
                         w_init: float | None = None, seed: int | None = None) -> SignalMixture:
    """A :class:`SignalMixture` with a signal flow of ``flow_config`` (the one flow builder)."""
    return SignalMixture(build_flow(flow_config, seed=seed), w_bounds, w_init)


def _mixture_nll(model: SignalMixture, batch: tuple[torch.Tensor, ...]
                 ) -> tuple[torch.Tensor, int]:
    x, c, log_bg = batch
    return -model.log_prob(x, c, log_bg).mean(), len(x)


def fit_ranode(x_sr: np.ndarray, c_sr: np.ndarray, bg_flow: torch.nn.Module,
               settings: RanodeSettings, seed: int, device: torch.device | None = None
               ) -> tuple[SignalMixture, TrainResult]:
    """Fit the signal flow and w to the SR stars (mapped features x_sr (n, d), standardised m
    c_sr (n, 1)) with ``bg_flow`` (the trained CR flow) frozen; (mixture, TrainResult)."""
    device = device or torch.device("cpu")
    if len(x_sr) < 10:
        raise ValueError(f"fit_ranode: {len(x_sr)} SR stars are too few")
    log_bg = log_prob(bg_flow, x_sr, c_sr)
    ok = np.isfinite(log_bg)
    xt = torch.as_tensor(np.asarray(x_sr, np.float32)[ok])
    ct = torch.as_tensor(np.asarray(c_sr, np.float32)[ok])
    lt = torch.as_tensor(log_bg[ok].astype(np.float32))
    flow_config = {**settings.flow, "features": int(xt.shape[1]), "context": int(ct.shape[1])}
    model = build_signal_mixture(flow_config, settings.w_bounds, settings.w_init, seed=seed)
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    perm = torch.randperm(len(xt), generator=gen)
    n_val = max(1, int(round(settings.train.val_fraction * len(xt))))
    val = [t[perm[:n_val]].to(device) for t in (xt, ct, lt)]
    tr = [t[perm[n_val:]].to(device) for t in (xt, ct, lt)]

    def batches(epoch: int):
        order = torch.randperm(len(tr[0]), generator=gen).to(device)
        for i in range(0, len(order), settings.train.batch_size):
            idx = order[i:i + settings.train.batch_size]
            yield tuple(t[idx] for t in tr)

    def val_nll(m: SignalMixture) -> tuple[float, int]:
        lp = m.log_prob(*val)
        good = torch.isfinite(lp)
        return float(-lp[good].mean()) if good.any() else math.inf, int((~good).sum())

    fit = train(model, batches, _mixture_nll, settings.train, seed=seed, device=device,
                val_loss=val_nll, name="ranode")
    return model, fit


def ranode_log_ratio(model: SignalMixture, bg_flow: torch.nn.Module, x: np.ndarray,
                     c: np.ndarray) -> np.ndarray:
    """The R-ANODE score log P_sig(x | m) - log P_bg(x | m) (float64) of mapped features x and
    context c."""
    return log_prob(model.signal, x, c) - log_prob(bg_flow, x, c)


def ranode_record(mixture: SignalMixture, fit: TrainResult, settings: RanodeSettings,
                  n_features: int) -> tuple[dict, dict, dict]:
    """The group payload's R-ANODE parts (metrics, weights, curves), as both search paths and
    :mod:`gaialake.streams.scorer` read them: ``ranode_*`` fit metrics and the fraction
    ``ranode_w``; ``sig`` (the mixture's state) and ``sig_config`` (its signal flow's config
    for ``n_features`` mapped features and w bounds); the loss curves."""
    metrics = {f"ranode_{k}": v for k, v in fit.metrics().items()}
    metrics["ranode_w"] = float(mixture.w.detach())
    weights = {"sig": fit.state_dict,
               "sig_config": {"flow": {**settings.flow, "features": int(n_features),
                                       "context": 1},
                              "w_bounds": list(settings.w_bounds)}}
    curves = {"ranode_train_loss": fit.train_loss, "ranode_val_loss": fit.val_loss}
    return metrics, weights, curves

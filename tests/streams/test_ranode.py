"""R-ANODE (lib/streams/ranode.py): the mixture fit with a frozen background, and its settings.

The background here is a known density (a standard normal in x, whatever the context), so the
test checks what R-ANODE itself trains: the signal flow and the signal fraction w.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from gaialake.models.train import TrainSettings
from gaialake.streams.ranode import (RanodeSettings, SignalMixture, build_signal_mixture,
                                     fit_ranode, ranode_log_ratio)


class StandardNormal(torch.nn.Module):
    """A frozen 'flow' p(x | c) = N(0, I) in d dimensions (called with the context, as zuko)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(d), requires_grad=False)

    def forward(self, c: torch.Tensor) -> torch.distributions.Distribution:
        loc = self.loc.expand(len(c), -1)
        return torch.distributions.Independent(torch.distributions.Normal(loc, 1.0), 1)


def _data(n: int, n_sig: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    x[:n_sig] = rng.normal([2.0, -1.5], 0.15, size=(n_sig, 2))
    c = rng.uniform(-1, 1, (n, 1))
    return x.astype(np.float32), c.astype(np.float32), np.arange(n) < n_sig


def test_mixture_log_prob_is_the_weighted_sum_and_w_stays_in_its_bounds():
    mix = build_signal_mixture({"features": 2, "context": 1, "transforms": 1, "hidden": 8},
                               (0.01, 0.2), w_init=0.05, seed=0)
    assert abs(float(mix.w.detach()) - 0.05) < 1e-6
    x, c = torch.randn(50, 2), torch.randn(50, 1)
    log_bg = torch.randn(50)
    with torch.no_grad():
        want = torch.log(0.95 * log_bg.exp() + 0.05 * mix.signal(c).log_prob(x).exp())
        torch.testing.assert_close(mix.log_prob(x, c, log_bg), want, rtol=1e-4, atol=1e-5)
        mix.w_raw.fill_(50.0)
        assert float(mix.w) == pytest.approx(0.2)
        mix.w_raw.fill_(-50.0)
        assert float(mix.w) == pytest.approx(0.01)


def test_ranode_learns_the_signal_fraction_and_ranks_the_signal_first():
    torch.set_num_threads(1)
    x, c, is_sig = _data(6000, 240, seed=1)          # 4 % signal, a compact blob
    settings = RanodeSettings(flow={"type": "maf", "transforms": 2, "hidden": 16},
                              train=TrainSettings(lr=3e-3, batch_size=256, max_epochs=15,
                                                  patience=4),
                              w_init=0.1, w_bounds=(1e-4, 0.5))
    bg = StandardNormal(2)
    model, fit = fit_ranode(x, c, bg, settings, seed=2)
    w = float(model.w.detach())
    assert 0.02 < w < 0.08, w
    score = ranode_log_ratio(model, bg, x, c)
    assert np.isfinite(score).all()
    assert roc_auc_score(is_sig, score) > 0.97
    assert isinstance(model, SignalMixture) and fit.best_epoch >= 0


def test_ranode_settings_refuse_bad_bounds_and_unknown_keys():
    base = TrainSettings(lr=1e-3, max_epochs=15)
    s = RanodeSettings.from_dict({"w_init": 0.3, "w_bounds": [0.01, 0.9],
                                  "train": {"max_epochs": 7}}, base)
    assert s.w_bounds == (0.01, 0.9) and s.train.max_epochs == 7 and s.train.lr == 1e-3
    with pytest.raises(ValueError, match="w_init"):
        RanodeSettings.from_dict({"w_init": 0.6}, base)
    with pytest.raises(KeyError, match="streams.ranode.train.epochs"):
        RanodeSettings.from_dict({"train": {"epochs": 3}}, base)
    with pytest.raises(KeyError, match="streams.ranode.w0"):
        RanodeSettings.from_dict({"w0": 0.1}, base)

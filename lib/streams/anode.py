"""ANODE anomaly score (Nachman & Shih 2020, arXiv 2001.04990; Via Machinae, arXiv 2104.12789).

In a signal region (SR) of the conditional variable m, two densities of the features x:
P(x | m) trained on the SR stars, and P_CR(x | m) trained on the control region (CR) and
interpolated into the SR. The score is R = P(x | m) / P_CR(x | m); this module returns log R
(same ranking, finite). Both flows must see the same feature map (then Jacobians cancel).

>>> log_r = anode_log_ratio(sr_flow, cr_flow, x_sr, c_sr)   # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np
import torch

from gaialake.models.flows import build_flow, log_prob, train_flow
from gaialake.models.train import TrainResult, TrainSettings

__all__ = ["anode_log_ratio", "fit_sr_flow"]


def fit_sr_flow(x_sr: np.ndarray, c_sr: np.ndarray, flow_config: dict, train: TrainSettings,
                seed: int, device: torch.device | None = None
                ) -> tuple[torch.nn.Module, TrainResult]:
    """P(x | m) trained on the SR stars (mapped features x_sr, standardised m in c_sr)."""
    flow = build_flow(flow_config, seed=seed)
    return flow, train_flow(flow, x_sr, c_sr, train, seed=seed, device=device)


def anode_log_ratio(sr_flow: torch.nn.Module, cr_flow: torch.nn.Module, x: np.ndarray,
                    c: np.ndarray) -> np.ndarray:
    """log R = log P(x | m) - log P_CR(x | m) for mapped features x and context c."""
    return log_prob(sr_flow, x, c) - log_prob(cr_flow, x, c)

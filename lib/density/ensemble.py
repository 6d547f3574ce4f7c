"""The bootstrap ensemble of phase-space flows: K members on Poisson(1) weights of the same stars.

Each member k sees every star with a count ~ Poisson(1) drawn from ``seed + k``
(:func:`bootstrap_counts`; ``bootstrap=False``: counts 1, the members differ only by their
initialisation), is built and initialised with torch seeded by ``seed + k``, and trained by
:func:`gaialake.models.phase_space.train_flows`. The spread of the members is the sampling
error of the density. With ``reweight`` (a catalog's selection function) each member also
re-estimates the stars' selection weights on its own resample (:func:`member_weights`), so the
spread includes the selection-function estimate. With ``weight_velocity`` the p(v|x) likelihood
carries the same weights as n(x) (weighted maximum likelihood: the weighted mean of log p),
needed when the selection depends on more than position (colour, magnitude) and the populations
it favours move differently; otherwise it carries only the bootstrap count. The stars reach the
training loop from memory (:func:`train_ensemble`) or, through the same function, from a Spark
DataFrame read by Petastorm (:func:`train_ensemble_petastorm`): only the batch source differs.

Positions kpc, velocities km/s; weights are the selection weights (1/completeness) of the stars.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from gaialake.models.phase_space import (PhaseSpaceFlows, build_flows, loader_batches,
                                         tensor_batches, train_flows)

__all__ = ["bootstrap_counts", "member_weights", "train_ensemble", "train_ensemble_petastorm"]

BatchSource = Callable[[int], Iterator[tuple[torch.Tensor, ...]]]
#: (a member's bootstrap counts, its seed) -> the stars' selection weights re-estimated on it
Reweight = Callable[[np.ndarray, int], np.ndarray]


def bootstrap_counts(n: int, members: int, seed: int, bootstrap: bool = True) -> np.ndarray:
    """(members, n) float counts: Poisson(1) per star and member (member k from ``seed + k``),
    or all ones without ``bootstrap``."""
    if not bootstrap:
        return np.ones((members, n))
    return np.array([np.random.default_rng(seed + k).poisson(1.0, n).astype(float)
                     for k in range(members)]).reshape(members, n)


def member_weights(count: np.ndarray, weight: np.ndarray | None, seed: int, *,
                   reweight: Reweight | None = None, weight_velocity: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    """One member's (w_n, w_v) per star from its bootstrap ``count``: w_n = count x selection
    weight (``reweight(count, seed)`` when given, else ``weight``; None: 1), w_v = w_n with
    ``weight_velocity``, else count."""
    count = np.asarray(count, float)
    if reweight is not None:
        w = np.asarray(reweight(count, seed), float)
    else:
        w = np.ones(len(count)) if weight is None else np.asarray(weight, float)
    w_n = count * w
    return w_n, (w_n if weight_velocity else count)


def train_ensemble(x: np.ndarray, v: np.ndarray, weight: np.ndarray | None, config: dict, *,
                   members: int, epochs: int, batch_size: int, lr: float, seed: int,
                   bootstrap: bool = True, ball_points: int = 1024,
                   weight_velocity: bool = False, reweight: Reweight | None = None,
                   device: torch.device | str = "cpu", logger=None,
                   member_batches: Callable[[int], BatchSource] | None = None
                   ) -> list[PhaseSpaceFlows]:
    """K flows (``config``) on Poisson(1)-bootstrap weights of the stars x (kpc), v (km/s).

    Member k's weights: :func:`member_weights` (``reweight`` only with ``bootstrap``).
    ``member_batches(k)`` gives member k's batch source (weight columns of its counts); None:
    in-memory batches of the stars with a non-zero count, shuffled from ``seed + k``.
    """
    counts = bootstrap_counts(len(x), members, seed, bootstrap)
    out = []
    for k in range(members):
        count = counts[k]
        keep = count > 0
        torch.manual_seed(seed + k)
        flows = build_flows(config)
        flows.init_marginal(x[keep], seed + k)
        if member_batches is not None:
            batches = member_batches(k)
        else:
            w_n, w_v = member_weights(count, weight, seed + k,
                                      reweight=reweight if bootstrap else None,
                                      weight_velocity=weight_velocity)
            batches = tensor_batches(x[keep], v[keep], w_n[keep], batch_size, seed + k,
                                     w_v=w_v[keep])
        hist = train_flows(flows, batches, epochs, lr=lr, ball_points=ball_points, device=device,
                           logger=logger, log_every=max(1, epochs // 4))
        if logger is not None:
            logger.info("ensemble member %d/%d: final loss %.4f", k + 1, members, hist["loss"][-1])
        out.append(flows.cpu())
    return out


# --- spark feed ----------------------------------------------------------------------------
def train_ensemble_petastorm(spark, conf, x: np.ndarray, v: np.ndarray,
                             weight: np.ndarray | None, config: dict, *, members: int,
                             epochs: int, batch_size: int, seed: int, bootstrap: bool = True,
                             weight_velocity: bool = False, reweight: Reweight | None = None,
                             **fit) -> list[PhaseSpaceFlows]:
    """:func:`train_ensemble` fed through Petastorm: the stars and each member's weight
    columns (``w_n<k>``, ``w_v<k>`` of :func:`member_weights`) as a Spark DataFrame, read by one
    pass-through loader (shuffled, ``seed``) of ceil(n / batch_size) batches per epoch.
    ``fit``: lr, ball_points, device, logger."""
    import pandas as pd

    from gaialake.io.feeding import torch_loader

    counts = bootstrap_counts(len(x), members, seed, bootstrap)
    pdf = pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "z": x[:, 2],
                        "vx": v[:, 0], "vy": v[:, 1], "vz": v[:, 2]})
    for k in range(members):
        pdf[f"w_n{k}"], pdf[f"w_v{k}"] = member_weights(
            counts[k], weight, seed + k, reweight=reweight if bootstrap else None,
            weight_velocity=weight_velocity)
    steps = max(1, int(np.ceil(len(pdf) / batch_size)))
    with torch_loader(spark.createDataFrame(pdf), list(pdf.columns), batch_size=batch_size,
                      conf=conf, shuffle=True, seed=seed, num_epochs=None) as loader:
        stream = iter(loader)  # Petastorm cannot restart a loader: one stream for every member
        return train_ensemble(x, v, weight, config, members=members, epochs=epochs,
                              batch_size=batch_size, seed=seed, bootstrap=bootstrap,
                              member_batches=lambda k: loader_batches(stream, steps, f"w_n{k}",
                                                                      f"w_v{k}"), **fit)

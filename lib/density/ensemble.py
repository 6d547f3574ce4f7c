"""The bootstrap ensemble of phase-space flows: K members on Poisson(1) weights of the same stars.

Each member k sees every star with a count ~ Poisson(1), a function of the star's key (its
``source_id``, or its row for a mock) and ``seed + k`` alone (:func:`bootstrap_counts`), so a
star gets the same count whichever feed, partition or batch brings it (``bootstrap=False``:
counts 1, the members differ only by their initialisation), is built and initialised with
torch seeded by ``seed + k``, and trained by
:func:`gaialake.models.phase_space.train_flows`. The spread of the members is the sampling
error of the density. With ``reweight`` (a catalog's selection function) each member also
re-estimates the stars' selection weights on its own resample (:func:`member_weights`), so the
spread includes the selection-function estimate. With ``weight_velocity`` the p(v|x) likelihood
carries the same weights as n(x) (weighted maximum likelihood: the weighted mean of log p),
needed when the selection depends on more than position (colour, magnitude) and the populations
it favours move differently; otherwise it carries only the bootstrap count. The stars reach the
training loop from memory (:func:`train_ensemble`) or, through the same function, from a Spark
DataFrame read by Petastorm (:func:`train_ensemble_petastorm`): only the batch source differs.
That DataFrame is the in-memory stars with their weight columns (:func:`member_frame`), or,
for a catalog sample larger than the driver may hold, built on the executors batch by batch
(:func:`member_columns`) and never collected.

Positions kpc, velocities km/s; weights are the selection weights (1/completeness) of the stars.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from gaialake.models.phase_space import (PhaseSpaceFlows, build_flows, loader_batches,
                                         tensor_batches, train_flows)

__all__ = ["bootstrap_counts", "member_weights", "member_frame", "member_columns",
           "feed_columns", "train_ensemble", "train_ensemble_petastorm"]

BatchSource = Callable[[int], Iterator[tuple[torch.Tensor, ...]]]
#: (a member's bootstrap counts, its seed) -> the stars' selection weights re-estimated on it
Reweight = Callable[[np.ndarray, int], np.ndarray]


_MASK64 = (1 << 64) - 1
#: P(count <= j) of Poisson(1), j = 0..17: a uniform u maps to the count #{j: cdf_j <= u}
_POISSON1_CDF = np.cumsum([np.exp(-1.0) / float(np.prod(np.arange(1, j + 1)))
                           for j in range(18)])


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer of uint64 ``z`` (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def bootstrap_counts(keys: np.ndarray, members: int, seed: int, bootstrap: bool = True
                     ) -> np.ndarray:
    """(members, n) float counts: Poisson(1) per star (int64 ``keys``: source_id, or the row)
    and member k, a hash of (key, ``seed + k``) alone; all ones without ``bootstrap``."""
    keys = np.asarray(keys).astype(np.int64).view(np.uint64)
    if not bootstrap:
        return np.ones((members, len(keys)))
    out = np.empty((members, len(keys)))
    for k in range(members):
        salt = int(_splitmix64(np.array([(seed + k) & _MASK64], np.uint64))[0])
        with np.errstate(over="ignore"):
            z = _splitmix64(keys * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt))
        u = (z >> np.uint64(11)).astype(float) * 2.0**-53
        out[k] = np.searchsorted(_POISSON1_CDF, u, side="right")
    return out


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


def member_columns(keys: np.ndarray, weight: np.ndarray | None, *, members: int, seed: int,
                   bootstrap: bool = True, weight_velocity: bool = False,
                   reweight: Reweight | None = None) -> dict[str, np.ndarray]:
    """Each member's weight columns ``w_n<k>``, ``w_v<k>`` of the stars ``keys``:
    :func:`member_weights` on its :func:`bootstrap_counts`, the selection weights
    ``reweight(counts of member k, seed + k)`` (only with ``bootstrap``) or else ``weight``.
    The in-memory feed (:func:`member_frame`) and a streamed sample's batches both use it."""
    counts = bootstrap_counts(keys, members, seed, bootstrap)
    out = {}
    for k in range(members):
        out[f"w_n{k}"], out[f"w_v{k}"] = member_weights(
            counts[k], weight, seed + k, reweight=reweight if bootstrap else None,
            weight_velocity=weight_velocity)
    return out


def member_frame(x: np.ndarray, v: np.ndarray, weight: np.ndarray | None, keys: np.ndarray,
                 **weights):
    """The in-memory stars as the Petastorm feed's rows (pandas): :func:`feed_columns`, the
    weight columns of :func:`member_columns` (``weights``: its keyword arguments)."""
    import pandas as pd

    return pd.DataFrame({"x": x[:, 0], "y": x[:, 1], "z": x[:, 2],
                         "vx": v[:, 0], "vy": v[:, 1], "vz": v[:, 2],
                         **member_columns(keys, weight, **weights)})


def feed_columns(members: int) -> list[str]:
    """The Petastorm feed's columns: x, y, z (kpc), vx, vy, vz (km/s), w_n<k>, w_v<k>."""
    return ["x", "y", "z", "vx", "vy", "vz"] + [f"w_{t}{k}" for k in range(members)
                                                for t in ("n", "v")]


def train_ensemble(x: np.ndarray, v: np.ndarray, weight: np.ndarray | None, config: dict, *,
                   members: int, epochs: int, batch_size: int, lr: float, seed: int,
                   bootstrap: bool = True, ball_points: int = 1024,
                   weight_velocity: bool = False, reweight: Reweight | None = None,
                   device: torch.device | str = "cpu", logger=None,
                   keys: np.ndarray | None = None,
                   member_batches: Callable[[int], BatchSource] | None = None
                   ) -> list[PhaseSpaceFlows]:
    """K flows (``config``) on Poisson(1)-bootstrap weights of the stars x (kpc), v (km/s)
    (``keys``: their int64 ids, default the rows).

    Member k's weights: :func:`member_weights` (``reweight`` only with ``bootstrap``).
    ``member_batches(k)`` gives member k's batch source (weight columns of its counts; then
    x, v may be a uniform subsample: they only set the marginals); None: in-memory batches of
    the stars with a non-zero count, shuffled from ``seed + k``.
    """
    keys = np.arange(len(x)) if keys is None else keys
    counts = bootstrap_counts(keys, members, seed, bootstrap)
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
def train_ensemble_petastorm(conf, feed, n_rows: int, x: np.ndarray, v: np.ndarray,
                             weight: np.ndarray | None, config: dict, *, members: int,
                             epochs: int, batch_size: int, seed: int, **fit
                             ) -> list[PhaseSpaceFlows]:
    """:func:`train_ensemble` fed through Petastorm from ``feed``, a Spark DataFrame of
    ``n_rows`` stars with the :func:`feed_columns` (:func:`member_frame` or
    :func:`member_columns`), read by one pass-through loader (shuffled, ``seed``) of
    ceil(n_rows / batch_size) batches per member epoch; x, v, weight (and ``fit['keys']``)
    are the stars or a uniform subsample (the marginals' initialisation). ``fit``: lr,
    ball_points, bootstrap, weight_velocity, device, logger, keys."""
    from gaialake.io.feeding import torch_loader

    steps = max(1, int(np.ceil(n_rows / batch_size)))
    fit.pop("reweight", None)   # the feed's weight columns carry it
    with torch_loader(feed, feed_columns(members), batch_size=batch_size, conf=conf,
                      shuffle=True, seed=seed, num_epochs=None) as loader:
        stream = iter(loader)  # Petastorm cannot restart a loader: one stream for every member
        return train_ensemble(x, v, weight, config, members=members, epochs=epochs,
                              batch_size=batch_size, seed=seed,
                              member_batches=lambda k: loader_batches(stream, steps, f"w_n{k}",
                                                                      f"w_v{k}"), **fit)

"""The one flow builder of gaialake (zuko), and flow helpers: fitting p(x | c), log_prob, sample.

A flow is built from a JSON-ready config dict (so a registered model can be rebuilt from its
config)::

    {"type": "maf", "features": 5, "context": 1, "transforms": 15, "hidden": 128, "layers": 1}

``type``: ``maf`` (masked autoregressive flow, Papamakarios et al. 2017; the ANODE/CATHODE
setting is 15 MADE blocks of one 128-unit hidden layer) or ``nsf`` (neural spline flow, Durkan
et al. 2019). Optional keys: ``hidden`` as a list of widths (then ``layers`` is ignored),
``activation`` (one of :data:`ACTIVATIONS`; zuko's ReLU when absent), ``randperm`` (random
feature orders), ``bins`` (spline bins, nsf), ``passes`` (nsf: 2 = coupling layers, absent or
None = fully autoregressive). Every flow of the project (stream search, GalaxyFlow, the
phase-space density) is built here.

Fitting goes through :func:`gaialake.models.train.train` (the one training loop):
:func:`train_flow` splits in-memory rows, :func:`train_flow_batches` takes any batch source
(a Petastorm loader, say) and a bounded validation set.

>>> flow = build_flow({"features": 2, "context": 1, "transforms": 2, "hidden": 16})
>>> flow(torch.zeros(3, 1)).sample().shape
torch.Size([3, 2])
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import zuko

from gaialake.models.train import TrainResult, TrainSettings, train

__all__ = ["build_flow", "ACTIVATIONS", "train_flow", "train_flow_batches", "flow_nll",
           "log_prob", "sample"]

#: Hidden-layer activations a flow config may name.
ACTIVATIONS = {"silu": torch.nn.SiLU, "elu": torch.nn.ELU, "tanh": torch.nn.Tanh,
               "relu": torch.nn.ReLU, "gelu": torch.nn.GELU}


def build_flow(config: dict, seed: int | None = None) -> zuko.flows.Flow:
    """A zuko (conditional) flow from ``config`` (see the module docstring); ``seed`` fixes the
    initial weights (the global torch generator is left as it was)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % (2**63))
            return build_flow(config)
    kind = str(config.get("type", "maf")).lower()
    hidden = config.get("hidden", 128)
    hidden = [int(h) for h in hidden] if isinstance(hidden, (list, tuple)) \
        else [int(hidden)] * int(config.get("layers", 1))
    common = dict(features=int(config["features"]), context=int(config.get("context", 0)),
                  transforms=int(config.get("transforms", 5)), hidden_features=hidden,
                  randperm=bool(config.get("randperm", False)))
    activation = config.get("activation")
    if activation is not None:
        if activation not in ACTIVATIONS:
            raise ValueError(f"flow activation {activation!r} not in {sorted(ACTIVATIONS)}")
        common["activation"] = ACTIVATIONS[activation]
    if kind == "maf":
        return zuko.flows.MAF(**common)
    if kind == "nsf":
        passes = config.get("passes")
        return zuko.flows.NSF(**common, bins=int(config.get("bins", 8)),
                              passes=None if passes is None else int(passes))
    raise ValueError(f"flow type must be 'maf' or 'nsf', got {kind!r}")


def flow_nll(flow, x: torch.Tensor, c: torch.Tensor, batch: int = 4096) -> tuple[float, int]:
    """Mean -log p(x | c) over the finite terms, and the number of non-finite ones."""
    total, n, bad = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            lp = flow(c[i:i + batch]).log_prob(x[i:i + batch])
            ok = torch.isfinite(lp)
            total += float(-lp[ok].sum())
            n += int(ok.sum())
            bad += int((~ok).sum())
    return (total / n if n else math.inf), bad


def _nll_loss(flow, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
    x, c = batch
    return -flow(c).log_prob(x).mean(), len(x)


def train_flow(flow: torch.nn.Module, x: np.ndarray, c: np.ndarray, settings: TrainSettings,
               seed: int, device: torch.device | None = None) -> TrainResult:
    """Fit ``flow`` to p(x | c) by maximum likelihood; returns the best state and curves.

    x (n, d) and c (n, k) are float arrays (already mapped and standardised). A
    ``val_fraction`` split and the batch order come from ``seed``; the flow ends loaded with
    its best state.
    """
    device = device or torch.device("cpu")
    if len(x) < 10:
        raise ValueError(f"train_flow: {len(x)} rows are too few to train a flow")
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    xt = torch.as_tensor(np.asarray(x, np.float32))
    ct = torch.as_tensor(np.asarray(c, np.float32))
    perm = torch.randperm(len(xt), generator=gen)
    n_val = max(1, int(round(settings.val_fraction * len(xt))))
    val, tr = perm[:n_val], perm[n_val:]
    x_tr, c_tr = xt[tr].to(device), ct[tr].to(device)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(x_tr), generator=gen).to(device)
        for i in range(0, len(order), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            yield x_tr[idx], c_tr[idx]

    return train_flow_batches(flow, batches, (xt[val], ct[val]), settings, seed, device,
                              name="train_flow")


def train_flow_batches(flow: torch.nn.Module,
                       batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                       val: tuple, settings: TrainSettings, seed: int,
                       device: torch.device | None = None,
                       name: str = "train_flow_batches") -> TrainResult:
    """Fit ``flow`` to p(x | c) from a stream of batches; returns the best state and curves.

    ``batches(epoch)`` yields (x (B, d), c (B, k)) float tensors for one epoch (in-memory
    shuffles from :func:`train_flow`, or a Petastorm loader,
    :func:`gaialake.io.feeding.torch_loader`); ``val`` = (x, c) held out (bounded, in memory)
    for early stopping. The flow ends loaded with its best state.
    """
    device = device or torch.device("cpu")
    x_va = torch.as_tensor(np.asarray(val[0], np.float32), device=device)
    c_va = torch.as_tensor(np.asarray(val[1], np.float32), device=device)
    if len(x_va) < 1:
        raise ValueError(f"{name}: the validation set is empty")
    return train(flow, batches, _nll_loss, settings, seed=seed, device=device,
                 val_loss=lambda f: flow_nll(f, x_va, c_va), name=name)


def log_prob(flow: torch.nn.Module, x: np.ndarray, c: np.ndarray,
             batch: int = 8192) -> np.ndarray:
    """log p(x | c) (in the flow's mapped space) as float64, in batches, without gradients."""
    device = next(flow.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.as_tensor(np.asarray(x[i:i + batch], np.float32), device=device)
            cb = torch.as_tensor(np.asarray(c[i:i + batch], np.float32), device=device)
            out.append(flow(cb).log_prob(xb).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def sample(flow: torch.nn.Module, c: np.ndarray, seed: int, batch: int = 8192) -> np.ndarray:
    """One sample of x per row of context ``c`` (float32 array), reproducible with ``seed``."""
    device = next(flow.parameters()).device
    torch.manual_seed(int(seed) % (2**63))
    out = []
    with torch.no_grad():
        for i in range(0, len(c), batch):
            cb = torch.as_tensor(np.asarray(c[i:i + batch], np.float32), device=device)
            out.append(flow(cb).sample().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

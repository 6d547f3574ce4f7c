"""Conditional normalizing flows (zuko) and their training loop.

A flow is built from a JSON-ready config dict (so a registered model can be rebuilt from its
config, DESIGN §3)::

    {"type": "maf", "features": 5, "context": 1, "transforms": 15, "hidden": 128, "layers": 1}

``type``: ``maf`` (masked autoregressive flow, Papamakarios et al. 2017; the ANODE/CATHODE
setting is 15 MADE blocks of one 128-unit hidden layer) or ``nsf`` (neural spline flow).
The training loop holds out a validation split, stops early when the validation loss has not
improved for ``patience`` epochs, keeps the best state, and guards against NaN losses (a
non-finite batch loss skips that step; too many in a row stop training at the best state).

>>> flow = build_flow({"features": 2, "context": 1, "transforms": 2, "hidden": 16})
>>> flow(torch.zeros(3, 1)).sample().shape
torch.Size([3, 2])
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import zuko

__all__ = ["build_flow", "TrainConfig", "TrainResult", "train_flow", "train_flow_batches",
           "log_prob", "sample",
           "task_device"]


def build_flow(config: dict, seed: int | None = None) -> torch.nn.Module:
    """A zuko conditional flow from ``config`` (see the module docstring); ``seed`` fixes the
    initial weights (the global torch generator is left as it was)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) % (2**63))
            return build_flow(config)
    kind = str(config.get("type", "maf")).lower()
    hidden = [int(config.get("hidden", 128))] * int(config.get("layers", 1))
    common = dict(features=int(config["features"]), context=int(config.get("context", 0)),
                  transforms=int(config.get("transforms", 5)), hidden_features=hidden)
    if kind == "maf":
        return zuko.flows.MAF(**common, randperm=bool(config.get("randperm", False)))
    if kind == "nsf":
        return zuko.flows.NSF(**common, bins=int(config.get("bins", 8)))
    raise ValueError(f"flow type must be 'maf' or 'nsf', got {kind!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings: lr, weight_decay (AdamW), batch_size, max_epochs, patience (epochs
    without validation improvement), val_fraction, max_bad_steps (non-finite losses in a row
    that stop training), clip (gradient norm)."""

    lr: float = 1e-4
    weight_decay: float = 1e-6
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 10
    val_fraction: float = 0.2
    max_bad_steps: int = 20
    clip: float = 5.0

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls, k))(v) for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    """The best state (by validation loss), the loss curves (mean -log p per epoch), why it
    stopped, the skipped non-finite training steps, the non-finite validation terms (left out
    of the mean) of the last epoch, samples seen and seconds."""

    state_dict: dict
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    stopped: str = ""
    bad_steps: int = 0
    val_nonfinite: int = 0
    samples: int = 0
    seconds: float = 0.0

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch] if self.best_epoch >= 0 else math.nan

    def metrics(self) -> dict:
        return {"best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "epochs": len(self.train_loss), "bad_steps": self.bad_steps,
                "samples_per_s": self.samples / self.seconds if self.seconds else math.nan,
                "train_seconds": self.seconds}


def task_device() -> torch.device:
    """The device of this Spark task (gaialake.feeding.task_device when it exists), else CPU."""
    try:
        from gaialake.feeding import task_device as feeding_device
    except ImportError:
        return torch.device("cpu")
    return feeding_device()


def _mean_nll(flow, x: torch.Tensor, c: torch.Tensor, batch: int) -> tuple[float, int]:
    """Mean -log p over the finite terms, and the number of non-finite ones."""
    total, n, bad = 0.0, 0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            lp = flow(c[i:i + batch]).log_prob(x[i:i + batch])
            ok = torch.isfinite(lp)
            total += float(-lp[ok].sum())
            n += int(ok.sum())
            bad += int((~ok).sum())
    return (total / n if n else math.inf), bad


def train_flow(flow: torch.nn.Module, x: np.ndarray, c: np.ndarray, config: TrainConfig,
               seed: int, device: torch.device | None = None) -> TrainResult:
    """Fit ``flow`` to p(x | c) by maximum likelihood; returns the best state and curves.

    x (n, d) and c (n, k) are float arrays (already mapped and standardised). The split and the
    batch order come from ``seed``; the flow ends loaded with its best state.
    """
    device = device or torch.device("cpu")
    if len(x) < 10:
        raise ValueError(f"train_flow: {len(x)} rows are too few to train a flow")
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    xt = torch.as_tensor(np.asarray(x, np.float32))
    ct = torch.as_tensor(np.asarray(c, np.float32))
    perm = torch.randperm(len(xt), generator=gen)
    n_val = max(1, int(round(config.val_fraction * len(xt))))
    val, tr = perm[:n_val], perm[n_val:]
    x_tr, c_tr = xt[tr].to(device), ct[tr].to(device)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(x_tr), generator=gen).to(device)
        for i in range(0, len(order), config.batch_size):
            idx = order[i:i + config.batch_size]
            yield x_tr[idx], c_tr[idx]

    return train_flow_batches(flow, batches, (xt[val], ct[val]), config, seed, device,
                              name="train_flow")


def train_flow_batches(flow: torch.nn.Module,
                       batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                       val: tuple, config: TrainConfig, seed: int,
                       device: torch.device | None = None,
                       name: str = "train_flow_batches") -> TrainResult:
    """Fit ``flow`` to p(x | c) from a stream of batches; returns the best state and curves.

    ``batches(epoch)`` yields (x (B, d), c (B, k)) float tensors for one epoch (in-memory
    shuffles from :func:`train_flow`, or a Petastorm loader, :func:`gaialake.feeding.torch_loader`);
    ``val`` = (x, c) held out (bounded, in memory). Non-finite losses are skipped (NaN guard;
    ``config.max_bad_steps`` in a row stop training); early stopping on the validation loss.
    The flow ends loaded with its best state.
    """
    device = device or torch.device("cpu")
    torch.manual_seed(int(seed) % (2**63))
    flow.to(device)
    x_va = torch.as_tensor(np.asarray(val[0], np.float32), device=device)
    c_va = torch.as_tensor(np.asarray(val[1], np.float32), device=device)
    if len(x_va) < 1:
        raise ValueError(f"{name}: the validation set is empty")
    opt = torch.optim.AdamW(flow.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result = TrainResult(state_dict=copy.deepcopy(flow.state_dict()))
    best, since_best, bad_run = math.inf, 0, 0
    t0 = time.perf_counter()
    for epoch in range(config.max_epochs):
        flow.train()
        total, n = 0.0, 0
        for xb, cb in batches(epoch):
            xb, cb = xb.to(device, non_blocking=True), cb.to(device, non_blocking=True)
            loss = -flow(cb).log_prob(xb).mean()
            if not torch.isfinite(loss):
                result.bad_steps += 1
                bad_run += 1
                opt.zero_grad(set_to_none=True)
                if bad_run >= config.max_bad_steps:
                    break
                continue
            bad_run = 0
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), config.clip)
            opt.step()
            total += float(loss.detach()) * len(xb)
            n += len(xb)
        result.samples += n
        flow.eval()
        val_loss, result.val_nonfinite = _mean_nll(flow, x_va, c_va, 4096)
        result.train_loss.append(total / max(n, 1))
        result.val_loss.append(val_loss)
        if bad_run >= config.max_bad_steps:
            result.stopped = f"{bad_run} non-finite losses in a row at epoch {epoch}"
            break
        if math.isfinite(val_loss) and val_loss < best:
            best, since_best, result.best_epoch = val_loss, 0, epoch
            result.state_dict = copy.deepcopy(flow.state_dict())
        else:
            since_best += 1
            if since_best >= config.patience:
                result.stopped = f"early stop: no val improvement for {since_best} epochs"
                break
    else:
        result.stopped = f"max_epochs {config.max_epochs}"
    result.seconds = time.perf_counter() - t0
    if result.best_epoch < 0:
        raise FloatingPointError(f"{name}: no finite validation loss ({result.stopped})")
    flow.load_state_dict(result.state_dict)
    flow.eval()
    result.state_dict = {k: v.detach().cpu() for k, v in result.state_dict.items()}
    return result


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

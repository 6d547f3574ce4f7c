"""The one training loop of gaialake: every flow, classifier and phase-space model trains here.

:func:`train` takes a torch module, a source of batches for each epoch (in-memory shuffles or a
Petastorm loader), a loss, and a :class:`TrainSettings`; it returns a :class:`TrainResult`. What
differs between models is passed in, not re-implemented:

- the loss: ``loss(module, batch) -> (mean loss tensor, weight)``; the epoch's training loss is
  the weight-averaged batch loss (weight = rows, or the batch's summed sample weights);
- validation and early stopping: ``val_loss(module) -> float`` (or ``(float, n_nonfinite)``),
  evaluated after every epoch in eval mode; the best state (by validation loss, improvements
  of more than ``min_delta``) is restored at the end; without ``val_loss`` the last state is kept;
- the learning-rate schedule (:attr:`TrainSettings.schedule`): constant, or a cosine decay to 0
  over optimiser steps (after ``constant_epochs`` epochs at the initial rate) or over epochs;
- a NaN guard: a non-finite batch loss is skipped (counted in ``bad_steps``);
  ``max_bad_steps`` of them in a row stop training.

The optimiser is AdamW (with ``weight_decay = 0`` it is Adam). The device is where the module
and batches go (``gaialake.io.feeding.task_device`` picks it in a Spark task).

>>> import torch
>>> net = torch.nn.Linear(1, 1)
>>> x = torch.linspace(-1, 1, 64)[:, None]
>>> batches = lambda epoch: [(x, 3 * x)]
>>> mse = lambda m, b: (((m(b[0]) - b[1]) ** 2).mean(), len(b[0]))
>>> result = train(net, batches, mse, TrainSettings(lr=0.1, max_epochs=200), seed=0)
>>> round(float(net.weight.detach()), 1)
3.0
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from gaialake.conf import settings_from

__all__ = ["TrainSettings", "TrainResult", "train", "SCHEDULES"]

#: Learning-rate schedules: ``constant``; ``cosine_steps``: cosine decay to 0 over the optimiser
#: steps after ``constant_epochs`` epochs at the initial rate; ``cosine_epochs``: cosine decay
#: stepped once per epoch over ``max_epochs``.
SCHEDULES = ("constant", "cosine_steps", "cosine_epochs")

Batch = Sequence[torch.Tensor]


@dataclass(frozen=True)
class TrainSettings:
    """How a module trains.

    lr (initial learning rate), weight_decay (AdamW; 0: Adam), batch_size (rows per batch, for
    the batch sources that read it), max_epochs, patience (epochs without a validation
    improvement larger than min_delta that stop training; needs a validation loss),
    val_fraction (rows held out for validation by the callers that split), clip (gradient
    norm; None: no clipping), max_bad_steps (non-finite losses in a row that stop training),
    schedule (one of :data:`SCHEDULES`), constant_epochs (epochs before a ``cosine_steps``
    decay starts), steps_per_epoch (the decay's steps per epoch; None: counted in the first
    epoch, which then must be a constant one), log_every (epochs between progress lines; 0:
    none).
    """

    lr: float = 1e-4
    weight_decay: float = 1e-6
    batch_size: int = 256
    max_epochs: int = 100
    patience: int = 10
    min_delta: float = 0.0
    val_fraction: float = 0.2
    clip: float | None = 5.0
    max_bad_steps: int = 20
    schedule: str = "constant"
    constant_epochs: int = 0
    steps_per_epoch: int | None = None
    log_every: int = 0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"training schedule {self.schedule!r} is not one of {SCHEDULES}")
        if self.schedule == "cosine_steps" and self.constant_epochs == 0 \
                and self.steps_per_epoch is None:
            raise ValueError("a cosine_steps schedule from the first epoch needs steps_per_epoch")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base: "TrainSettings | None" = None,
                  where: str = "train") -> "TrainSettings":
        """Settings from the conf section ``where`` (keys as the fields), over ``base``
        (default: the class defaults); unknown keys fail with their name."""
        return settings_from(cls, d, where, base=base)

    def replace(self, **changes: Any) -> "TrainSettings":
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


@dataclass
class TrainResult:
    """The kept state (best by validation loss, else the last), the loss curves (one value per
    epoch), the best epoch (-1 without validation), why training stopped, the skipped
    non-finite steps, the non-finite validation terms of the last epoch, rows seen and seconds."""

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
        """The validation loss of the kept state (NaN without validation)."""
        return self.val_loss[self.best_epoch] if self.best_epoch >= 0 else math.nan

    def metrics(self) -> dict[str, float]:
        """Scalars for MLflow: best epoch and validation loss, epochs, bad steps, speed."""
        return {"best_epoch": self.best_epoch, "best_val_loss": self.best_val_loss,
                "epochs": len(self.train_loss), "bad_steps": self.bad_steps,
                "samples_per_s": self.samples / self.seconds if self.seconds else math.nan,
                "train_seconds": self.seconds}


def _scheduler(opt: torch.optim.Optimizer, settings: TrainSettings, steps_per_epoch: int | None
               ) -> torch.optim.lr_scheduler.LRScheduler | None:
    if settings.schedule == "cosine_epochs":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, settings.max_epochs))
    if settings.schedule == "cosine_steps" and steps_per_epoch is not None:
        epochs = settings.max_epochs - settings.constant_epochs
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(1, steps_per_epoch * epochs))
    return None


def train(module: torch.nn.Module, batches: Callable[[int], Iterable[Batch]],
          loss: Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, float]],
          settings: TrainSettings, *, seed: int | None = None,
          device: torch.device | str | None = None,
          val_loss: Callable[[torch.nn.Module], float | tuple[float, int]] | None = None,
          logger=None, name: str = "train") -> TrainResult:
    """Fit ``module`` by minimising ``loss`` over ``batches(epoch)``; returns the curves and the
    kept state, which the module ends loaded with (in eval mode).

    ``batches(epoch)`` yields tuples of tensors (moved to ``device`` here); ``seed`` seeds
    torch's global generator first (None: left as it is); ``val_loss`` enables early stopping
    (see the module docstring); ``logger`` gets a line every ``settings.log_every`` epochs.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    if seed is not None:
        torch.manual_seed(int(seed) % (2**63))
    module.to(device)
    opt = torch.optim.AdamW(module.parameters(), lr=settings.lr,
                            weight_decay=settings.weight_decay)
    sched = _scheduler(opt, settings, settings.steps_per_epoch) \
        if settings.constant_epochs == 0 else None
    per_step = settings.schedule == "cosine_steps"
    result = TrainResult(state_dict=copy.deepcopy(module.state_dict()))
    best, since_best, bad_run, steps_seen = math.inf, 0, 0, 0
    t0 = time.perf_counter()
    for epoch in range(settings.max_epochs):
        if per_step and sched is None and epoch == settings.constant_epochs:
            sched = _scheduler(opt, settings, settings.steps_per_epoch or steps_seen)
        module.train()
        total, weight, steps_seen = 0.0, 0.0, 0
        for batch in batches(epoch):
            batch = tuple(t.to(device, non_blocking=True) for t in batch)
            steps_seen += 1
            value, w = loss(module, batch)
            if not torch.isfinite(value):
                result.bad_steps += 1
                bad_run += 1
                opt.zero_grad(set_to_none=True)
                if bad_run >= settings.max_bad_steps:
                    break
                continue
            bad_run = 0
            opt.zero_grad(set_to_none=True)
            value.backward()
            if settings.clip is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), settings.clip)
            opt.step()
            if per_step and sched is not None:
                sched.step()
            total += float(value.detach()) * float(w)
            weight += float(w)
            result.samples += len(batch[0])
        if not per_step and sched is not None:
            sched.step()
        result.train_loss.append(total / weight if weight > 0 else 0.0)
        line = f"{name} epoch {epoch + 1}/{settings.max_epochs}: loss {result.train_loss[-1]:.4f}"
        if val_loss is not None:
            module.eval()
            with torch.no_grad():
                value = val_loss(module)
            v, result.val_nonfinite = value if isinstance(value, tuple) else (value, 0)
            result.val_loss.append(float(v))
            line += f", validation {v:.4f}"
        if logger is not None and settings.log_every and (epoch + 1) % settings.log_every == 0:
            logger.info(line)
        if bad_run >= settings.max_bad_steps:
            result.stopped = f"{bad_run} non-finite losses in a row at epoch {epoch}"
            break
        if val_loss is None:
            continue
        v = result.val_loss[-1]
        if math.isfinite(v) and v < best - settings.min_delta:
            best, since_best, result.best_epoch = v, 0, epoch
            result.state_dict = copy.deepcopy(module.state_dict())
        else:
            since_best += 1
            if since_best >= settings.patience:
                result.stopped = f"early stop: no validation improvement for {since_best} epochs"
                break
    else:
        result.stopped = f"max_epochs {settings.max_epochs}"
    result.seconds = time.perf_counter() - t0
    if val_loss is not None:
        if result.best_epoch < 0:
            raise FloatingPointError(f"{name}: no finite validation loss ({result.stopped})")
        module.load_state_dict(result.state_dict)
    else:
        result.state_dict = copy.deepcopy(module.state_dict())
    module.eval()
    result.state_dict = {k: v.detach().cpu() for k, v in result.state_dict.items()}
    return result

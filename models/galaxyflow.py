"""GalaxyFlow: a normalizing flow over star particles' phase space (Lim et al. 2022,
arXiv:2211.11765), trained mass-weighted and sampled into many more stars.

The flow (zuko, :func:`gaialake.models.flows.build_flow`, unconditional) models the density of
``x, y, z`` (kpc), ``vx, vy, vz`` (km/s) and, when the snapshot has them, ``log(age/Gyr)`` and
``feh`` (dex), each standardised by the training particles' mean and standard deviation and
then compressed by ``asinh`` (the *standard space*: the core stays near-linear while 5-10 sigma
tails such as halo stars and cold streams land inside the splines' [-5, 5] domain instead of their
identity tails). Training maximises the mass-weighted log-likelihood
``sum_i m_i log p(x_i) / sum_i m_i`` so the flow's density is the stellar-mass density and a
sample of ``multiple * n_particles`` stars is a mass-weighted upsampling.

A :class:`GalaxyFlow` is called like a zuko flow: ``model()`` returns the distribution over the
standard space; :meth:`GalaxyFlow.sample` draws physical stars (deterministic for a seed) and keeps
them inside the particle set's selection (``radius_kpc`` of the Sun) when it has one.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=(300, 6))
>>> model = build_galaxyflow(galaxyflow_config(x, ["x", "y", "z", "vx", "vy", "vz"],
...                                            transforms=2, hidden=16))
>>> model.sample(5, seed=1).shape
(5, 6)
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

import zuko

from gaialake.upsample.particles import SUN_POSITION_KPC

__all__ = ["GalaxyFlow", "galaxyflow_config", "build_flow", "build_galaxyflow", "FitSettings", "FitResult",
           "fit_galaxyflow", "fit_on_batches", "weighted_nll", "LOG_COLUMNS", "BUILDER"]

#: Columns modelled in log space (strictly positive).
LOG_COLUMNS = ("age",)
#: Dotted builder for gaialake.io.tracking.log_torch_model.
BUILDER = "gaialake.models.galaxyflow:build_galaxyflow"


def _to_model_space(x: np.ndarray, columns: Sequence[str]) -> np.ndarray:
    out = np.array(x, dtype=np.float64, copy=True)
    for i, c in enumerate(columns):
        if c in LOG_COLUMNS:
            out[:, i] = np.log(out[:, i])
    return out


def galaxyflow_config(features: np.ndarray | None, columns: Sequence[str], *,
                      stats: tuple[Sequence[float], Sequence[float]] | None = None,
                      transforms: int = 6, hidden: int = 128, layers: int = 2, bins: int = 8,
                      passes: int | None = 2, radius_kpc: float | None = None) -> dict:
    """A JSON-ready config: the flow's shape and the standardising transform, fitted to
    ``features`` (``(n, d)`` physical, in ``columns`` order) or given as ``stats`` = (mean, std)
    in model space (log for :data:`LOG_COLUMNS`), e.g. computed by Spark."""
    if stats is None:
        z = _to_model_space(features, columns)
        mean, std = z.mean(axis=0), z.std(axis=0)
    else:
        mean, std = np.asarray(stats[0], float), np.asarray(stats[1], float)
    if np.any(~(std > 0)):
        raise ValueError(f"column {columns[int(np.argmin(std))]!r} is constant: cannot standardise")
    return {"columns": list(columns), "mean": mean.tolist(), "std": std.tolist(),
            "radius_kpc": radius_kpc,
            "flow": {"features": len(columns), "transforms": transforms, "hidden": hidden,
                     "layers": layers, "bins": bins, "passes": passes}}


def build_flow(config: dict) -> zuko.flows.Flow:
    """The zuko neural spline flow of a config's ``flow`` section.

    ``passes=2``: spline coupling layers (halves of the features alternate; sampling costs two
    network passes per transform); ``passes=None``: fully autoregressive (one pass per feature
    to sample: slow on CPU)."""
    passes = config.get("passes", 2)
    return zuko.flows.NSF(features=int(config["features"]), context=0,
                          transforms=int(config["transforms"]), bins=int(config["bins"]),
                          passes=None if passes is None else int(passes),
                          hidden_features=[int(config["hidden"])] * int(config["layers"]))


class GalaxyFlow(torch.nn.Module):
    """A zuko flow over the standard space plus the standardising/log transform.

    ``model()`` -> the flow's distribution over standardised features (``log_prob``, ``sample``);
    :meth:`standardise` / :meth:`physical` map between physical (kpc, km/s, Gyr, dex) and
    standard space; :meth:`sample` draws physical stars.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        self.columns: list[str] = list(config["columns"])
        self.flow = build_flow(config["flow"])
        self.register_buffer("mean", torch.tensor(config["mean"], dtype=torch.float32))
        self.register_buffer("std", torch.tensor(config["std"], dtype=torch.float32))

    def forward(self):
        """The flow's distribution over the standard space."""
        return self.flow()

    def standardise(self, features: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Physical ``(n, d)`` (array or tensor) -> standard space (float32, model's device)."""
        z = torch.as_tensor(features, dtype=torch.float32, device=self.mean.device)
        logs = [i for i, c in enumerate(self.columns) if c in LOG_COLUMNS]
        if logs:
            z = z.clone()
            z[:, logs] = torch.log(z[:, logs])
        return torch.asinh((z - self.mean) / self.std)

    def physical(self, z: torch.Tensor) -> np.ndarray:
        """Standard space -> physical ``(n, d)`` float64 array."""
        out = (torch.sinh(z.double()) * self.std.double() + self.mean.double()).detach().cpu().numpy()
        for i, c in enumerate(self.columns):
            if c in LOG_COLUMNS:
                out[:, i] = np.exp(out[:, i])
        return out

    def inside(self, features: np.ndarray) -> np.ndarray:
        """Mask of rows inside the selection (all True when the config has none)."""
        radius = self.config.get("radius_kpc")
        if radius is None:
            return np.ones(len(features), bool)
        return np.linalg.norm(features[:, :3] - SUN_POSITION_KPC, axis=1) < radius

    @torch.no_grad()
    def sample(self, n: int, seed: int, *, batch: int = 65_536, max_rounds: int = 50
               ) -> np.ndarray:
        """``n`` physical stars ``(n, d)``; the same ``seed`` gives the same stars.

        Base-space noise comes from a ``torch.Generator`` seeded with ``seed`` and is drawn on
        the CPU (identical on any device); stars outside the selection are replaced by more
        draws (rejection)."""
        gen = torch.Generator().manual_seed(int(seed) % (2**63))
        dim = len(self.columns)
        was_training = self.training
        self.eval()
        kept: list[np.ndarray] = []
        have = 0
        for _ in range(max_rounds):
            if have >= n:
                break
            want = int(min(batch, max(64, 1.1 * (n - have))))
            noise = torch.randn(want, dim, generator=gen).to(self.mean.device)
            dist = self.flow()
            x = self.physical(dist.transform.inv(noise))
            x = x[self.inside(x) & np.all(np.isfinite(x), axis=1)]
            kept.append(x)
            have += len(x)
        self.train(was_training)
        out = np.concatenate(kept)[:n] if kept else np.zeros((0, dim))
        if len(out) < n:
            raise RuntimeError(f"GalaxyFlow.sample: only {len(out)} of {n} stars fell inside the "
                               f"selection in {max_rounds} rounds")
        return out


def build_galaxyflow(config: dict) -> GalaxyFlow:
    """Rebuild a :class:`GalaxyFlow` from its config (the MLflow builder)."""
    return GalaxyFlow(config)


def weighted_nll(model: GalaxyFlow, z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Mass-weighted mean negative log-likelihood in standard space."""
    return -(model().log_prob(z) * w).sum() / w.sum()


@dataclass(frozen=True)
class FitSettings:
    """lr (Adam, cosine-annealed to 0), batch_size, epochs (max), patience (epochs without a
    better validation loss), val_fraction (of the training particles, for early stopping)."""

    lr: float = 2e-3
    batch_size: int = 512
    epochs: int = 40
    patience: int = 8
    val_fraction: float = 0.1
    clip: float = 5.0

    @classmethod
    def from_dict(cls, d: dict) -> "FitSettings":
        names = cls.__dataclass_fields__
        return cls(**{k: type(getattr(cls, k))(v) for k, v in d.items() if k in names})


@dataclass
class FitResult:
    """Best state (by validation loss), loss curves (weighted mean -log p per epoch), seconds."""

    state_dict: dict
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    samples: int = 0
    seconds: float = 0.0

    def metrics(self) -> dict:
        best = self.val_loss[self.best_epoch] if self.best_epoch >= 0 else math.nan
        return {"best_epoch": self.best_epoch, "best_val_nll": best,
                "epochs": len(self.train_loss), "train_seconds": self.seconds,
                "samples_per_s": self.samples / self.seconds if self.seconds else math.nan}


def fit_on_batches(model: GalaxyFlow, epoch_batches: Callable[[int], Iterable[tuple[
        torch.Tensor, torch.Tensor]]], val: tuple[torch.Tensor, torch.Tensor],
        settings: FitSettings, steps_per_epoch: int, seed: int,
        log: Callable[[str], None] | None = None) -> FitResult:
    """The training loop over any batch source (in-memory tensors or a Petastorm loader).

    ``epoch_batches(epoch)`` yields ``(z, w)`` standard-space batches and mass weights on the
    model's device; ``val`` is the early-stopping set. The model ends with its best state.
    """
    torch.manual_seed(int(seed) % (2**63))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(1, settings.epochs * steps_per_epoch))
    result = FitResult(state_dict=copy.deepcopy(model.state_dict()))
    best, since = math.inf, 0
    t0 = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        total, weight = 0.0, 0.0
        for z, w in epoch_batches(epoch):
            loss = weighted_nll(model, z, w)
            if not torch.isfinite(loss):
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
            opt.step()
            sched.step()
            total += float(loss.detach()) * float(w.sum())
            weight += float(w.sum())
            result.samples += len(z)
        model.eval()
        with torch.no_grad():
            val_loss = float(sum(weighted_nll(model, val[0][i:i + 8192], val[1][i:i + 8192])
                                 * val[1][i:i + 8192].sum() for i in range(0, len(val[0]), 8192))
                             / val[1].sum())
        result.train_loss.append(total / max(weight, 1e-30))
        result.val_loss.append(val_loss)
        if log is not None:
            log(f"epoch {epoch}: train nll {result.train_loss[-1]:.4f} val nll {val_loss:.4f}")
        if val_loss < best - 1e-4:
            best, since, result.best_epoch = val_loss, 0, epoch
            result.state_dict = copy.deepcopy(model.state_dict())
        else:
            since += 1
            if since >= settings.patience:
                break
    result.seconds = time.perf_counter() - t0
    model.load_state_dict(result.state_dict)
    model.eval()
    return result


def fit_galaxyflow(model: GalaxyFlow, features: np.ndarray, mass: np.ndarray,
                   settings: FitSettings, seed: int, device: torch.device | None = None,
                   log: Callable[[str], None] | None = None) -> FitResult:
    """Train ``model`` on physical ``features`` ``(n, d)`` with masses ``(n,)`` M_sun in memory."""
    device = device or torch.device("cpu")
    model.to(device)
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    z = model.standardise(features).to(device)
    w = torch.as_tensor(mass / mass.mean(), dtype=torch.float32, device=device)
    perm = torch.randperm(len(z), generator=gen).to(device)
    n_val = max(1, int(round(settings.val_fraction * len(z))))
    val, tr = perm[:n_val], perm[n_val:]
    z_tr, w_tr = z[tr], w[tr]

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(z_tr), generator=gen).to(device)
        for i in range(0, max(len(order) - settings.batch_size // 2, 1), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            yield z_tr[idx], w_tr[idx]

    steps = max(1, len(z_tr) // settings.batch_size)
    return fit_on_batches(model, batches, (z[val], w[val]), settings, steps, seed, log)

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
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from gaialake.astro.frame import SUN_POSITION_X_R0_KPC
from gaialake.models.flows import build_flow
from gaialake.models.train import TrainResult, TrainSettings, train

__all__ = ["GalaxyFlow", "galaxyflow_config", "flow_shape", "build_galaxyflow", "TRAIN_DEFAULTS",
           "TRAIN_KEYS", "train_settings", "fit_galaxyflow", "train_galaxyflow", "weighted_nll",
           "mass_weighted_loss", "mass_weighted_val_loss", "LOG_COLUMNS", "BUILDER"]

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
            "flow": {"type": "nsf", "features": len(columns), "context": 0,
                     "transforms": transforms, "hidden": hidden, "layers": layers, "bins": bins,
                     "passes": passes}}


def flow_shape(section: Mapping) -> dict:
    """The flow's shape from a conf section (``upsample.flow``): transforms, hidden (units),
    layers, bins, passes (2: spline coupling layers, two network passes per transform to sample;
    None: fully autoregressive, one pass per feature: slow on CPU)."""
    return {"transforms": int(section["transforms"]), "hidden": int(section["hidden"]),
            "layers": int(section["layers"]), "bins": int(section["bins"]),
            "passes": section.get("passes", 2)}


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
        # configs registered before the flow section named its type and context are NSFs
        self.flow = build_flow({"type": "nsf", "context": 0, "passes": 2, **config["flow"]})
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
        return np.linalg.norm(features[:, :3] - SUN_POSITION_X_R0_KPC, axis=1) < radius

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
    """Mass-weighted mean negative log-likelihood (nats) of standard-space rows ``z`` with
    weights ``w`` (masses, any unit)."""
    return -(model().log_prob(z) * w).sum() / w.sum()


def mass_weighted_loss(model: GalaxyFlow, batch: Sequence[torch.Tensor]
                       ) -> tuple[torch.Tensor, float]:
    """The training loss of a ``(z, w)`` batch: :func:`weighted_nll`, weighted by the batch's
    summed mass ``w``."""
    z, w = batch
    return weighted_nll(model, z, w), float(w.sum())


def mass_weighted_val_loss(z: torch.Tensor, w: torch.Tensor, chunk: int = 8192
                           ) -> Callable[[GalaxyFlow], float]:
    """The validation loss over standard-space rows ``z`` with masses ``w``: the mass-weighted
    mean negative log-likelihood (nats), computed in chunks of ``chunk`` rows."""
    def val_loss(model: GalaxyFlow) -> float:
        return float(sum(weighted_nll(model, z[i:i + chunk], w[i:i + chunk])
                         * w[i:i + chunk].sum() for i in range(0, len(z), chunk)) / w.sum())
    return val_loss


#: GalaxyFlow's training: Adam (no weight decay), gradient norm clipped at 5, early stopping on
#: validation improvements over 1e-4 nats, a progress line every epoch. The cosine decay of the
#: learning rate over the optimiser steps is set by :func:`train_galaxyflow`, which knows the
#: steps per epoch.
TRAIN_DEFAULTS = TrainSettings(lr=2e-3, weight_decay=0.0, batch_size=512, max_epochs=40,
                               patience=8, min_delta=1e-4, val_fraction=0.1, clip=5.0,
                               log_every=1)

#: Keys of the conf's flow section (``upsample.flow``) that are training settings, and the
#: :class:`TrainSettings` field each sets; the section's other keys are :func:`flow_shape`'s.
TRAIN_KEYS = {"lr": "lr", "batch_size": "batch_size", "epochs": "max_epochs",
              "patience": "patience", "val_fraction": "val_fraction", "clip": "clip"}
_SHAPE_KEYS = ("transforms", "hidden", "layers", "bins", "passes")


def train_settings(section: Mapping, where: str = "upsample.flow") -> TrainSettings:
    """GalaxyFlow's :class:`TrainSettings` from the conf's flow section (``upsample.flow``):
    the :data:`TRAIN_KEYS` over :data:`TRAIN_DEFAULTS` (``epochs`` -> ``max_epochs``); the
    flow-shape keys are skipped, any other key fails naming ``where.key``."""
    unknown = sorted(set(section) - set(TRAIN_KEYS) - set(_SHAPE_KEYS))
    if unknown:
        raise KeyError(f"conf {where}.{unknown[0]}: unknown key; known keys: "
                       f"{list(TRAIN_KEYS) + list(_SHAPE_KEYS)}")
    return TrainSettings.from_dict({TRAIN_KEYS[k]: v for k, v in section.items()
                                    if k in TRAIN_KEYS}, base=TRAIN_DEFAULTS, where=where)


def train_galaxyflow(model: GalaxyFlow,
                     batches: Callable[[int], Iterable[tuple[torch.Tensor, torch.Tensor]]],
                     val: tuple[torch.Tensor, torch.Tensor], settings: TrainSettings,
                     steps_per_epoch: int, seed: int, device: torch.device | None = None,
                     logger=None) -> TrainResult:
    """Train ``model`` mass-weighted through :func:`gaialake.models.train.train`.

    ``batches(epoch)`` yields ``(z, w)``: standard-space rows and mass weights (in-memory
    shuffles, or a Petastorm loader); ``val`` = ``(z, w)`` is the early-stopping set. The
    learning rate decays as a cosine over ``steps_per_epoch * max_epochs`` optimiser steps.
    The model ends loaded with its best state.
    """
    settings = settings.replace(schedule="cosine_steps", steps_per_epoch=max(1, steps_per_epoch))
    return train(model, batches, mass_weighted_loss, settings, seed=seed, device=device,
                 val_loss=mass_weighted_val_loss(*val), logger=logger, name="galaxyflow")


def fit_galaxyflow(model: GalaxyFlow, features: np.ndarray, mass: np.ndarray,
                   settings: TrainSettings, seed: int, device: torch.device | None = None,
                   logger=None, val: tuple[np.ndarray, np.ndarray] | None = None
                   ) -> TrainResult:
    """Train ``model`` in memory on physical ``features`` ``(n, d)`` with masses ``(n,)``
    (M_sun); the early-stopping set is ``val`` = (features, masses) when given, else a
    ``val_fraction`` of the rows (drawn with ``seed``)."""
    device = device or torch.device("cpu")
    model.to(device)
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    mean_mass = float(np.mean(mass))
    z = model.standardise(features).to(device)
    w = torch.as_tensor(mass / mean_mass, dtype=torch.float32, device=device)
    perm = torch.randperm(len(z), generator=gen).to(device)
    if val is None:
        n_val = max(1, int(round(settings.val_fraction * len(z))))
        z_val, w_val, tr = z[perm[:n_val]], w[perm[:n_val]], perm[n_val:]
    else:
        z_val = model.standardise(val[0]).to(device)
        w_val = torch.as_tensor(val[1] / mean_mass, dtype=torch.float32, device=device)
        tr = perm
    z_tr, w_tr = z[tr], w[tr]

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(z_tr), generator=gen).to(device)
        for i in range(0, max(len(order) - settings.batch_size // 2, 1), settings.batch_size):
            idx = order[i:i + settings.batch_size]
            yield z_tr[idx], w_tr[idx]

    steps = len(z_tr) // settings.batch_size
    return train_galaxyflow(model, batches, (z_val, w_val), settings, steps, seed, device,
                            logger)

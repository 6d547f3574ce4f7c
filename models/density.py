"""Phase-space density flows for the Boltzmann density: n(x) and p(v|x) as two zuko flows.

As in Lim, Putney, Buckley & Shih (2023, arXiv:2305.13358): ``log f(x, v) = log n(x) +
log p(v|x)``, n a 3D masked autoregressive flow, p a 3D MAF conditioned on x. Inputs are
standardized inside the module, so every method takes and returns physical units (kpc, km/s).

When the stars fill a ball (a selection within a radius of the Sun), n(x) is learned in the
coordinates ``y = u artanh(|u|)/|u|``, ``u = (x - c)/R``, which map the ball onto R^3; the
Jacobian ``log|dy/dx| = -log(1-|u|^2) + 2 log(artanh|u|/|u|) - 3 log R`` is exact, so the hard
edge of the selection is carried by the map and the flow learns a smooth density.

An ensemble is K such modules trained on Poisson-bootstrap weights of the same stars
(weights ~ Poisson(1) per star and member), which gives the sampling spread of the density.

>>> flows = build_flows(flow_config(x, v))            # doctest: +SKIP
>>> train_flows(flows, tensor_batches(x, v, w, 1024, seed=0), epochs=10)  # doctest: +SKIP
>>> flows.log_f(x, v)                                  # doctest: +SKIP
"""
from __future__ import annotations

import copy
import math
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

__all__ = ["PhaseSpaceFlows", "build_flows", "flow_config", "tensor_batches", "train_flows",
           "train_ensemble", "DensityModel", "build_density_model", "density_model_config",
           "loader_batches"]

_ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU,
                "gelu": nn.GELU}


def _flow(kind: str, features: int, context: int, transforms: int, hidden: list[int],
          activation: str):
    import zuko

    if activation not in _ACTIVATIONS:
        raise ValueError(f"density flows: activation {activation!r} not in {sorted(_ACTIVATIONS)}")
    kinds = {"maf": zuko.flows.MAF, "nsf": zuko.flows.NSF}
    if kind not in kinds:
        raise ValueError(f"density flows: kind {kind!r} not in {sorted(kinds)}")
    return kinds[kind](features, context, transforms=transforms, randperm=False,
                       hidden_features=list(hidden), activation=_ACTIVATIONS[activation])


class PhaseSpaceFlows(nn.Module):
    """log f(x, v) = log n(x) + log p(v | x) with two MAFs; physical units in and out.

    ``config`` keys: x_loc, x_scale, v_loc, v_scale, y_loc, y_scale (3 floats each),
    ball_center_kpc (3 floats or None), ball_radius_kpc (float or None), transforms (int),
    hidden (list of int), activation (silu, elu, tanh, relu, gelu), kind (maf: masked
    autoregressive affine; nsf: neural spline). See :func:`flow_config`.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        for name in ("x_loc", "x_scale", "v_loc", "v_scale", "y_loc", "y_scale"):
            self.register_buffer(name, torch.tensor(config[name], dtype=torch.float32))
        center = config.get("ball_center_kpc")
        self.ball_radius = config.get("ball_radius_kpc")
        self.register_buffer("ball_center", torch.tensor(center if center is not None else
                                                         [0.0, 0.0, 0.0], dtype=torch.float32))
        t, h, act = int(config["transforms"]), list(config["hidden"]), config["activation"]
        kind = str(config.get("kind", "maf"))
        self.n_flow = _flow(kind, 3, 0, t, h, act)
        self.v_flow = _flow(kind, 3, 3, t, h, act)

    def _y(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardized flow coordinates of x and log|dy/dx| (per star)."""
        if self.ball_radius is None:
            y, logdet = x, torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
        else:
            u = (x - self.ball_center) / self.ball_radius
            s2 = (u * u).sum(-1, keepdim=True)
            s = torch.sqrt(s2 + 1e-24).clamp(max=1.0 - 1e-6)
            ratio = torch.where(s > 1e-4, torch.atanh(s) / s, 1.0 + s2 / 3.0)  # artanh(s)/s
            y = u * ratio
            logdet = (-torch.log1p(-s * s) + 2.0 * torch.log(ratio)).squeeze(-1) \
                - 3.0 * math.log(self.ball_radius)
        y = (y - self.y_loc) / self.y_scale
        return y, logdet - torch.log(self.y_scale).sum()

    def _c(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_loc) / self.x_scale

    def log_n(self, x: torch.Tensor) -> torch.Tensor:
        """log n(x), x in kpc, n normalized to 1 (per kpc^3)."""
        y, logdet = self._y(x)
        return self.n_flow().log_prob(y) + logdet

    def log_p(self, v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(v | x), v in km/s (per (km/s)^3)."""
        w = (v - self.v_loc) / self.v_scale
        return self.v_flow(self._c(x)).log_prob(w) - torch.log(self.v_scale).sum()

    def log_f(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """log f(x, v) = log n(x) + log p(v|x)."""
        return self.log_n(x) + self.log_p(v, x)

    def sample_v(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` velocities (km/s) at each position: shape (n, *x.shape)."""
        w = self.v_flow(self._c(x)).sample((n,))
        return w * self.v_scale + self.v_loc

    def sample_x(self, n: int) -> torch.Tensor:
        """``n`` positions (kpc) drawn from n(x)."""
        y = self.n_flow().sample((n,)) * self.y_scale + self.y_loc
        if self.ball_radius is None:
            return y
        t = torch.linalg.norm(y, dim=-1, keepdim=True).clamp(min=1e-12)
        return self.ball_center + self.ball_radius * y * torch.tanh(t) / t

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.log_f(x, v)


def build_flows(config: dict) -> PhaseSpaceFlows:
    """The module for ``config`` (the builder that MLflow's wrapper calls to reload weights)."""
    return PhaseSpaceFlows(config)


def flow_config(x: np.ndarray, v: np.ndarray, *, kind: str = "maf", transforms: int = 5,
                hidden: Iterable[int] = (64, 64), activation: str = "silu",
                ball_center_kpc: Iterable[float] | None = None,
                ball_radius_kpc: float | None = None) -> dict:
    """A :class:`PhaseSpaceFlows` config whose standardization comes from stars ``x``, ``v``."""
    x, v = np.asarray(x, float), np.asarray(v, float)
    config = {"x_loc": x.mean(0).tolist(), "x_scale": x.std(0).tolist(),
              "v_loc": v.mean(0).tolist(), "v_scale": v.std(0).tolist(),
              "y_loc": [0.0, 0.0, 0.0], "y_scale": [1.0, 1.0, 1.0],
              "ball_center_kpc": None if ball_center_kpc is None else list(map(float,
                                                                            ball_center_kpc)),
              "ball_radius_kpc": None if ball_radius_kpc is None else float(ball_radius_kpc),
              "kind": kind, "transforms": int(transforms), "hidden": [int(h) for h in hidden],
              "activation": activation}
    probe = PhaseSpaceFlows(config)
    with torch.no_grad():
        y, _ = probe._y(torch.as_tensor(x, dtype=torch.float32))
    config["y_loc"], config["y_scale"] = y.mean(0).tolist(), y.std(0).tolist()
    return config


def tensor_batches(x: np.ndarray, v: np.ndarray, w_n: np.ndarray | None, batch_size: int,
                   seed: int, w_v: np.ndarray | None = None
                   ) -> Callable[[int], Iterator[tuple[torch.Tensor, ...]]]:
    """An epoch -> batches function over in-memory stars: (x, v, w_n, w_v) float32 tensors."""
    xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
    vt = torch.as_tensor(np.asarray(v), dtype=torch.float32)
    ones = torch.ones(len(xt))
    wn = ones if w_n is None else torch.as_tensor(np.asarray(w_n), dtype=torch.float32)
    wv = ones if w_v is None else torch.as_tensor(np.asarray(w_v), dtype=torch.float32)

    def epoch(i: int) -> Iterator[tuple[torch.Tensor, ...]]:
        g = torch.Generator().manual_seed(seed + i)
        order = torch.randperm(len(xt), generator=g)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            yield xt[idx], vt[idx], wn[idx], wv[idx]

    return epoch


def train_flows(flows: PhaseSpaceFlows, batches: Callable[[int], Iterable[tuple]],
                epochs: int, *, lr: float = 1e-3, weight_decay: float = 0.0,
                device: torch.device | str = "cpu", log_every: int = 0, logger=None) -> dict:
    """Fit n(x) and p(v|x) by weighted maximum likelihood; returns the loss history.

    A batch is (x kpc, v km/s, w_n, w_v): w_n weighs the n(x) likelihood (completeness 1/c(d)
    times the bootstrap count), w_v the p(v|x) one (the bootstrap count: the selection does not
    depend on v). Learning rate decays on a cosine after the first epoch.
    """
    flows.to(device).train()
    opt = torch.optim.AdamW(flows.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = None
    history: list[float] = []
    sched = None
    for epoch in range(epochs):
        total, norm = 0.0, 0.0
        for step, (x, v, w, wv) in enumerate(batches(epoch)):
            x, v, w, wv = x.to(device), v.to(device), w.to(device), wv.to(device)
            if sched is None and steps_per_epoch is not None:
                sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                    opt, T_max=max(1, steps_per_epoch * (epochs - 1)))
            loss_n = -(w * flows.log_n(x)).sum() / w.sum().clamp(min=1e-12)
            loss_v = -(wv * flows.log_p(v, x)).sum() / wv.sum().clamp(min=1e-12)
            loss = loss_n + loss_v
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(flows.parameters(), 10.0)
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(x)
            norm += len(x)
        if steps_per_epoch is None:
            steps_per_epoch = step + 1
        history.append(total / max(norm, 1))
        if logger is not None and log_every and (epoch + 1) % log_every == 0:
            logger.info("flows epoch %d/%d: loss %.4f", epoch + 1, epochs, history[-1])
    flows.eval()
    return {"loss": history}


def train_ensemble(x: np.ndarray, v: np.ndarray, weight: np.ndarray | None, config: dict, *,
                   members: int, epochs: int, batch_size: int, lr: float, seed: int,
                   bootstrap: bool = True, device: torch.device | str = "cpu",
                   logger=None) -> list[PhaseSpaceFlows]:
    """K flows on Poisson(1)-bootstrap weights of the stars (``bootstrap=False``: same stars,
    different initialisations). Seeds: ``seed + k`` per member."""
    w0 = np.ones(len(x)) if weight is None else np.asarray(weight, float)
    out = []
    for k in range(members):
        rng = np.random.default_rng(seed + k)
        torch.manual_seed(seed + k)
        count = rng.poisson(1.0, len(x)).astype(float) if bootstrap else np.ones(len(x))
        keep = count > 0
        flows = build_flows(config)
        hist = train_flows(flows, tensor_batches(x[keep], v[keep], (w0 * count)[keep], batch_size,
                                                 seed + k, w_v=count[keep]),
                           epochs, lr=lr, device=device, logger=logger,
                           log_every=max(1, epochs // 4))
        if logger is not None:
            logger.info("ensemble member %d/%d: final loss %.4f", k + 1, members, hist["loss"][-1])
        out.append(flows.cpu())
    return out


class DensityModel(nn.Module):
    """What ``gaialake-density`` registers: the K flows members and their K potentials.

    ``config``: {"flows": [flows config per member], "potentials": [{"loc", "length",
    "velocity", "hidden"} per member]} (MLP potentials). ``fields(x)`` gives the ensemble mean
    density (M_sun/pc^3) and acceleration ((km/s)^2/kpc) at x (kpc).
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        from gaialake.density.potential import MLPPotential

        self.config = copy.deepcopy(config)
        self.flows = nn.ModuleList(build_flows(c) for c in config["flows"])
        self.potentials = nn.ModuleList(
            MLPPotential(p["loc"], p["length"], p["velocity"], tuple(p["hidden"]))
            for p in config["potentials"])

    def fields(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = [p.fields(x) for p in self.potentials]
        return np.mean([r for r, _ in out], 0), np.mean([a for _, a in out], 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rho, _ = self.fields(x.detach().cpu().numpy())
        return torch.as_tensor(rho)


def build_density_model(config: dict) -> DensityModel:
    """Builder of :class:`DensityModel` (``gaialake.models.density:build_density_model``)."""
    return DensityModel(config)


def density_model_config(members: list[PhaseSpaceFlows], potentials: list) -> dict:
    """The config of a :class:`DensityModel` holding ``members`` and their MLP ``potentials``."""
    return {"flows": [m.config for m in members],
            "potentials": [{"loc": p.loc.tolist(), "length": p.length.tolist(),
                            "velocity": p.velocity,
                            "hidden": [m.out_features for m in p.net
                                       if isinstance(m, nn.Linear)][:-1]}
                           for p in potentials]}


def loader_batches(loader, steps_per_epoch: int, w_n: str = "w_n", w_v: str = "w_v"
                   ) -> Callable[[int], Iterator[tuple[torch.Tensor, ...]]]:
    """An epoch -> batches function over a Petastorm loader (dicts of 1-D tensors with columns
    x, y, z (kpc), vx, vy, vz (km/s), and the weight columns ``w_n``, ``w_v``), reading
    ``steps_per_epoch`` batches per epoch from one pass-through iterator (num_epochs=None).
    Pass the same iterator (``iter(loader)``) for every member: Petastorm cannot restart one."""
    it = loader if hasattr(loader, "__next__") else iter(loader)

    def epoch(i: int) -> Iterator[tuple[torch.Tensor, ...]]:
        for _ in range(steps_per_epoch):
            b = next(it)
            x = torch.stack([b["x"], b["y"], b["z"]], 1).float()
            v = torch.stack([b["vx"], b["vy"], b["vz"]], 1).float()
            yield x, v, b[w_n].float(), b[w_v].float()

    return epoch

"""Phase-space density models for the Boltzmann density: n(x) and p(v|x).

As in Lim, Putney, Buckley & Shih (2023, arXiv:2305.13358): ``log f(x, v) = log n(x) +
log p(v|x)``, p a 3D masked autoregressive flow (zuko MAF) conditioned on x. Inputs are
standardized inside the module, so every method takes and returns physical units (kpc, km/s).

n(x) is one of two models (config ``n_model``):

- ``flow``: a 3D MAF after a learned logistic-mixture CDF per coordinate
  (:class:`LogisticMixtureCDF`; a logistic density is a sech^2 sheet, so a few components give
  a disk's peaked n(z), which an affine MAF alone smooths by ~20 % in density).
- ``energy``: ``log n = E(x) - log Q``, E a smooth SiLU MLP and Q its integral over the
  selection ball (so it needs one). Only derivatives of log n enter the CBE; an MLP's are
  smooth and free to be zero (a slab is flat in x, y), where the mixture flow's carry bumps and
  0.03-0.18 /kpc spurious slopes along the plane that the disk's rotation (v_y ~ 200 km/s)
  turns into CBE residuals. A plain MLP is too smooth along z where a disk's cold population
  fades; ``height_octaves`` > 0 feeds it sines of the height too
  (:class:`gaialake.density.potential.HeightEncoding`), which on the slab mock halves the
  density error (docs/density_experiments.md, round 5).

With a ball (a selection within a radius of the Sun), n is a truncated density: q is free
outside the ball and ``log n = log q - log Q``, ``Q = int_ball q``, with Q estimated during
training from uniform points in the ball (differentiable), so the hard edge of the selection
costs nothing and needs no coordinate map.

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
from torch.nn import functional as F

from gaialake.density.potential import scalar_mlp

__all__ = ["LogisticMixtureCDF", "PhaseSpaceFlows", "build_flows", "flow_config",
           "tensor_batches", "train_flows",
           "train_ensemble", "DensityModel", "build_density_model", "density_model_config",
           "loader_batches"]

_ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "tanh": nn.Tanh, "relu": nn.ReLU,
                "gelu": nn.GELU}


def _flow(kind: str, features: int, context: int, transforms: int, hidden: list[int],
          activation: str):
    import zuko

    kinds = {"maf": zuko.flows.MAF, "nsf": zuko.flows.NSF}
    if kind not in kinds:
        raise ValueError(f"density flows: kind {kind!r} not in {sorted(kinds)}")
    return kinds[kind](features, context, transforms=transforms, randperm=False,
                       hidden_features=list(hidden), activation=_ACTIVATIONS[activation])


class LogisticMixtureCDF(nn.Module):
    """Per-feature smooth bijection ``u = logit F(y)``, F a learned K-component logistic-mixture
    CDF of each feature (Flow++-style; Ho et al. 2019).

    A component's density ``(1/4s) sech^2((y - mu)/2s)`` is an isothermal sheet's profile. The
    map is infinitely differentiable, so d log n/dx (what the CBE needs) stays smooth. Computed
    in log space (log F, log(1 - F)), so it is stable far in the tails.
    """

    def __init__(self, features: int, components: int) -> None:
        super().__init__()
        self.loc = nn.Parameter(torch.linspace(-2.0, 2.0, components).repeat(features, 1))
        self.log_scale = nn.Parameter(torch.full((features, components), math.log(0.5)))
        self.logit_w = nn.Parameter(torch.zeros(features, components))

    def _parts(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = (y[..., None] - self.loc) / self.log_scale.exp()
        return t, torch.log_softmax(self.logit_w, -1)

    def log_pdf(self, y: torch.Tensor) -> torch.Tensor:
        """log of each feature's mixture density at y, shape y.shape."""
        t, logw = self._parts(y)
        return torch.logsumexp(logw + F.logsigmoid(t) + F.logsigmoid(-t) - self.log_scale, -1)

    def forward(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, log|du/dy| summed over features)."""
        t, logw = self._parts(y)
        log_cdf = torch.logsumexp(logw + F.logsigmoid(t), -1)
        log_sf = torch.logsumexp(logw + F.logsigmoid(-t), -1)
        return log_cdf - log_sf, (self.log_pdf(y) - log_cdf - log_sf).sum(-1)

    def fit(self, y: torch.Tensor, steps: int = 400, lr: float = 0.05) -> None:
        """Initialise from samples ``y`` (N, features): components at the quantiles, then each
        feature's mixture fitted alone by maximum likelihood (Adam, full batch)."""
        k = self.loc.shape[1]
        with torch.no_grad():
            self.loc.copy_(torch.quantile(y, (torch.arange(k) + 0.5) / k, dim=0).T)
        opt = torch.optim.Adam(self.parameters(), lr=lr)
        for _ in range(steps):
            loss = -self.log_pdf(y).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()


class PhaseSpaceFlows(nn.Module):
    """log f(x, v) = log n(x) + log p(v | x); physical units in and out.

    ``config`` keys: x_loc, x_scale (kpc), v_loc, v_scale (km/s; 3 floats each),
    ball_center_kpc (3 floats or None), ball_radius_kpc (float or None: the support of n),
    n_model (flow or energy), n_hidden (energy MLP widths, None: hidden), marginal_components
    (int, 0: none; flow only), height_octaves (int, 0: none; energy only: sines of the
    standardized height as extra inputs), transforms (int), hidden (list of int), activation
    (silu, elu, tanh, relu, gelu), kind (maf: masked autoregressive affine; nsf: neural
    spline). See :func:`flow_config`.
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        for name in ("x_loc", "x_scale", "v_loc", "v_scale"):
            self.register_buffer(name, torch.tensor(config[name], dtype=torch.float32))
        center = config.get("ball_center_kpc")
        self.ball_radius = config.get("ball_radius_kpc")
        self.register_buffer("ball_center", torch.tensor(center if center is not None else
                                                         [0.0, 0.0, 0.0], dtype=torch.float32))
        self.register_buffer("log_mass", torch.zeros(()))  # log Q of the trained n (ball only)
        t, h, act = int(config["transforms"]), list(config["hidden"]), config["activation"]
        kind = str(config.get("kind", "maf"))
        k = int(config.get("marginal_components") or 0)
        self.n_model = str(config.get("n_model") or "flow")
        if self.n_model not in ("flow", "energy"):
            raise ValueError(f"density flows: n_model {self.n_model!r} is not flow or energy")
        if self.n_model == "energy" and self.ball_radius is None:
            raise ValueError("density flows: n_model 'energy' needs a ball (its normalization)")
        octaves = int(config.get("height_octaves") or 0)
        if octaves and self.n_model != "energy":
            raise ValueError("density flows: height_octaves needs n_model 'energy' (a flow's "
                             "input must stay 3D)")
        if act not in _ACTIVATIONS:
            raise ValueError(f"density flows: activation {act!r} not in {sorted(_ACTIVATIONS)}")
        self.n_marginal = LogisticMixtureCDF(3, k) if k > 0 and self.n_model == "flow" else None
        if self.n_model == "flow":
            self.n_flow = _flow(kind, 3, 0, t, h, act)
        else:
            # log n up to a constant, of the (height-encoded) standardized position
            self.n_energy = scalar_mlp(tuple(config.get("n_hidden") or h), _ACTIVATIONS[act],
                                       octaves)
        self.v_flow = _flow(kind, 3, 3, t, h, act)

    def _c(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_loc) / self.x_scale

    def _log_q(self, x: torch.Tensor) -> torch.Tensor:
        """log of the flow density of positions x (kpc), not truncated to the ball (for the
        energy model: unnormalized, ``log n = log q - log Q`` on the ball)."""
        if self.n_model == "energy":
            return self.n_energy(self._c(x)).squeeze(-1)
        y = self._c(x)
        logdet = -torch.log(self.x_scale).sum()
        if self.n_marginal is not None:
            y, ld = self.n_marginal(y)
            logdet = logdet + ld
        return self.n_flow().log_prob(y) + logdet

    def log_n(self, x: torch.Tensor) -> torch.Tensor:
        """log n(x), x in kpc, n normalized to 1 over its support (per kpc^3)."""
        return self._log_q(x) - self.log_mass

    def log_ball_mass(self, m: int = 1024) -> torch.Tensor:
        """log Q, Q the flow's mass inside the ball, from m uniform points (differentiable;
        global torch RNG); 0 without a ball."""
        if self.ball_radius is None:
            return torch.zeros((), device=self.x_loc.device)
        volume = 4.0 / 3.0 * math.pi * self.ball_radius**3
        log_q = self._log_q(self._ball_points(m).to(self.x_loc.device))
        return torch.logsumexp(log_q, 0) - math.log(m) + math.log(volume)

    def _ball_points(self, m: int) -> torch.Tensor:
        """m points uniform in the ball (kpc), on the CPU (global torch RNG)."""
        d = torch.randn(m, 3)
        d = d / d.norm(dim=1, keepdim=True)
        return self.ball_center.cpu() + self.ball_radius * torch.rand(m, 1) ** (1.0 / 3.0) * d

    def init_marginal(self, x: np.ndarray, seed: int, n_max: int = 20000) -> None:
        """Fit the n(x) marginal transform to (at most n_max of) the stars x (kpc) first."""
        if self.n_marginal is None:
            return
        x = np.asarray(x)[np.random.default_rng(seed).permutation(len(x))[:n_max]]
        self.n_marginal.fit(self._c(torch.as_tensor(x, dtype=torch.float32)))

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

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.log_f(x, v)


def build_flows(config: dict) -> PhaseSpaceFlows:
    """The module for ``config`` (the builder that MLflow's wrapper calls to reload weights)."""
    return PhaseSpaceFlows(config)


def flow_config(x: np.ndarray, v: np.ndarray, *, kind: str = "maf", transforms: int = 5,
                hidden: Iterable[int] = (64, 64), activation: str = "silu",
                marginal_components: int = 0, n_model: str = "flow",
                n_hidden: Iterable[int] | None = None, height_octaves: int = 0,
                ball_center_kpc: Iterable[float] | None = None,
                ball_radius_kpc: float | None = None) -> dict:
    """A :class:`PhaseSpaceFlows` config whose standardization comes from stars ``x``, ``v``."""
    x, v = np.asarray(x, float), np.asarray(v, float)
    return {"x_loc": x.mean(0).tolist(), "x_scale": x.std(0).tolist(),
            "v_loc": v.mean(0).tolist(), "v_scale": v.std(0).tolist(),
            "ball_center_kpc": None if ball_center_kpc is None else list(map(float,
                                                                          ball_center_kpc)),
            "ball_radius_kpc": None if ball_radius_kpc is None else float(ball_radius_kpc),
            "marginal_components": int(marginal_components), "kind": kind, "n_model": n_model,
            "n_hidden": None if n_hidden is None else [int(h) for h in n_hidden],
            "height_octaves": int(height_octaves),
            "transforms": int(transforms), "hidden": [int(h) for h in hidden],
            "activation": activation}


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
                ball_points: int = 1024,
                device: torch.device | str = "cpu", log_every: int = 0, logger=None) -> dict:
    """Fit n(x) and p(v|x) by weighted maximum likelihood; returns the loss history.

    A batch is (x kpc, v km/s, w_n, w_v): w_n weighs the n(x) likelihood (completeness 1/c(d)
    times the bootstrap count), w_v the p(v|x) one (the bootstrap count: the selection does not
    depend on v). With a ball, the n loss is the truncated likelihood -log q + log Q (Q from
    ``ball_points`` uniform points each step), and log Q is stored at the end so log n is
    normalized. Learning rate decays on a cosine after the first epoch.
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
            loss_n = (-(w * flows._log_q(x)).sum() / w.sum().clamp(min=1e-12)
                      + flows.log_ball_mass(ball_points))
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
    with torch.no_grad():  # normalize n over the ball once, on 2^16 points
        flows.log_mass.copy_(torch.logsumexp(torch.stack(
            [flows.log_ball_mass(4096) for _ in range(16)]), 0) - math.log(16))
    return {"loss": history}


def train_ensemble(x: np.ndarray, v: np.ndarray, weight: np.ndarray | None, config: dict, *,
                   members: int, epochs: int, batch_size: int, lr: float, seed: int,
                   bootstrap: bool = True, ball_points: int = 1024,
                   device: torch.device | str = "cpu",
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
        flows.init_marginal(x[keep], seed + k)
        hist = train_flows(flows, tensor_batches(x[keep], v[keep], (w0 * count)[keep], batch_size,
                                                 seed + k, w_v=count[keep]),
                           epochs, lr=lr, ball_points=ball_points, device=device, logger=logger,
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
    """Builder of :class:`DensityModel` (``gaialake.models.phase_space:build_density_model``)."""
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

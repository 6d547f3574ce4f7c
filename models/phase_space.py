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
  (:class:`gaialake.models.mlp.HeightEncoding`), which on the slab mock halves the
  density error (docs/density_experiments.md, round 5).

With a ball (a selection within a radius of the Sun), n is a truncated density: q is free
outside the ball and ``log n = log q - log Q``, ``Q = int_ball q``, with Q estimated during
training from uniform points in the ball (differentiable), so the hard edge of the selection
costs nothing and needs no coordinate map.

Training is :func:`gaialake.models.train.train` (the one training loop) with the loss
:func:`flows_loss`; the ensemble of K modules on Poisson-bootstrap weights of the same stars
(the sampling spread of the density) is :func:`gaialake.density.ensemble.train_ensemble`.

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

from gaialake.models.flows import ACTIVATIONS, build_flow
from gaialake.models.mlp import MLPPotential, scalar_mlp
from gaialake.models.train import TrainSettings, train

__all__ = ["LogisticMixtureCDF", "PhaseSpaceFlows", "build_flows", "flow_config",
           "tensor_batches", "loader_batches", "flows_loss", "train_flows", "DensityModel",
           "build_density_model", "density_model_config"]


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
        settings = TrainSettings(lr=lr, weight_decay=0.0, max_epochs=steps, clip=None)
        train(self, lambda epoch: [(y,)], _marginal_loss, settings, device=y.device,
              name="marginals")


def _marginal_loss(cdf: LogisticMixtureCDF, batch: tuple[torch.Tensor]
                   ) -> tuple[torch.Tensor, int]:
    """Mean negative log-likelihood of the mixture marginals at a batch (y,)."""
    return -cdf.log_pdf(batch[0]).mean(), len(batch[0])


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
        if act not in ACTIVATIONS:
            raise ValueError(f"density flows: activation {act!r} not in {sorted(ACTIVATIONS)}")
        if kind not in ("maf", "nsf"):
            raise ValueError(f"density flows: kind {kind!r} not in ['maf', 'nsf']")
        # zuko flows of 3 features from the one flow builder; p(v|x) has x as context
        flow_spec = {"type": kind, "features": 3, "transforms": t, "hidden": h,
                     "activation": act, "randperm": False}
        self.n_marginal = LogisticMixtureCDF(3, k) if k > 0 and self.n_model == "flow" else None
        if self.n_model == "flow":
            self.n_flow = build_flow({**flow_spec, "context": 0})
        else:
            # log n up to a constant, of the (height-encoded) standardized position
            self.n_energy = scalar_mlp(tuple(config.get("n_hidden") or h), ACTIVATIONS[act],
                                       octaves)
        self.v_flow = build_flow({**flow_spec, "context": 3})

    def _c(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_loc) / self.x_scale

    def log_q(self, x: torch.Tensor) -> torch.Tensor:
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
        return self.log_q(x) - self.log_mass

    def log_ball_mass(self, m: int = 1024) -> torch.Tensor:
        """log Q, Q the flow's mass inside the ball, from m uniform points (differentiable;
        global torch RNG); 0 without a ball."""
        if self.ball_radius is None:
            return torch.zeros((), device=self.x_loc.device)
        volume = 4.0 / 3.0 * math.pi * self.ball_radius**3
        log_q = self.log_q(self._ball_points(m).to(self.x_loc.device))
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


def flows_loss(flows: PhaseSpaceFlows, batch: tuple[torch.Tensor, ...], ball_points: int = 1024
               ) -> tuple[torch.Tensor, int]:
    """The weighted negative log-likelihood of a batch (x kpc, v km/s, w_n, w_v): the n(x) term
    (with a ball: -log q + log Q, Q from ``ball_points`` uniform points) plus the p(v|x) term;
    weight: the batch's rows."""
    x, v, w, wv = batch
    loss_n = (-(w * flows.log_q(x)).sum() / w.sum().clamp(min=1e-12)
              + flows.log_ball_mass(ball_points))
    loss_v = -(wv * flows.log_p(v, x)).sum() / wv.sum().clamp(min=1e-12)
    return loss_n + loss_v, len(x)


def train_flows(flows: PhaseSpaceFlows, batches: Callable[[int], Iterable[tuple]],
                epochs: int, *, lr: float = 1e-3, weight_decay: float = 0.0,
                ball_points: int = 1024,
                device: torch.device | str = "cpu", log_every: int = 0, logger=None) -> dict:
    """Fit n(x) and p(v|x) by weighted maximum likelihood; returns the loss history
    ({"loss": per-epoch row-weighted mean loss}).

    A batch is (x kpc, v km/s, w_n, w_v): w_n weighs the n(x) likelihood (completeness 1/c(d)
    times the bootstrap count), w_v the p(v|x) one (the bootstrap count: the selection does not
    depend on v). With a ball, the n loss is the truncated likelihood -log q + log Q (Q from
    ``ball_points`` uniform points each step), and log Q is stored at the end so log n is
    normalized. AdamW, gradient norm clipped at 10, the learning rate constant in the first
    epoch and then decaying on a cosine over the remaining steps (counted in the first epoch).
    The global torch generator is used as it is (callers seed it).
    """
    settings = TrainSettings(lr=lr, weight_decay=weight_decay, max_epochs=epochs, clip=10.0,
                             schedule="cosine_steps", constant_epochs=1, log_every=log_every)
    result = train(flows, batches, lambda f, b: flows_loss(f, b, ball_points), settings,
                   device=device, logger=logger, name="flows")
    with torch.no_grad():  # normalize n over the ball once, on 2^16 points
        flows.log_mass.copy_(torch.logsumexp(torch.stack(
            [flows.log_ball_mass(4096) for _ in range(16)]), 0) - math.log(16))
    return {"loss": result.train_loss}


class DensityModel(nn.Module):
    """What ``gaialake-density`` registers: the K flows members and their K potentials.

    ``config``: {"flows": [flows config per member], "potentials": [{"loc", "length",
    "velocity", "hidden"} per member]} (MLP potentials). ``fields(x)`` gives the ensemble mean
    density (M_sun/pc^3) and acceleration ((km/s)^2/kpc) at x (kpc).
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = copy.deepcopy(config)
        self.flows = nn.ModuleList(build_flows(c) for c in config["flows"])
        self.potentials = nn.ModuleList(
            MLPPotential(p["loc"], p["length"], p["velocity"], tuple(p["hidden"]))
            for p in config["potentials"])

    def fields(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ensemble mean (rho M_sun/pc^3, a (km/s)^2/kpc) of the potentials at x (N, 3) kpc."""
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

"""MLPs: smooth scalar MLPs of a 3D position (the energy n(x) of the phase-space flows and the
neural gravitational potential fitted to the collisionless Boltzmann equation), and the small
ReLU classifiers of CATHODE's ensemble.

- :func:`scalar_mlp`: 3 -> hidden -> 1 (SiLU by default, so every derivative is smooth), with an
  optional :class:`HeightEncoding` of the height first.
- :class:`MLPPotential`: Phi(x) = V^2 MLP((x - loc) / L), the "deep potential" of Green, Ting &
  Kamdar (2023, ApJ 942, 26; arXiv:2011.04673); its density (lap Phi / 4 pi G) and acceleration
  (-grad Phi) by autograd. Fitted by :func:`gaialake.density.potential.fit_mlp_potential`.
- :func:`logit_mlp`: features -> hidden (ReLU) -> one logit; :class:`MLPEnsemble` averages the
  probabilities of several and answers ``predict_proba`` as a scikit-learn classifier does
  (CATHODE, Hallin et al. 2022, arXiv 2109.00546: 3 x 64 ReLU networks trained with BCE).

Positions kpc, velocities km/s; Phi in (km/s)^2, a in (km/s)^2/kpc, rho in M_sun/pc^3.

>>> net = scalar_mlp((8,), height_octaves=2)
>>> tuple(net(torch.zeros(4, 3)).shape)
(4, 1)
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from gaialake.astro.constants import G_KPC_KMS2_MSUN, MSUN_PC3_IN_KPC3

__all__ = ["HeightEncoding", "scalar_mlp", "MLPPotential", "logit_mlp", "MLPEnsemble"]

_FOUR_PI_G = 4.0 * math.pi * G_KPC_KMS2_MSUN


class HeightEncoding(nn.Module):
    """(c_x, c_y, c_z) -> (c, sin 2^k c_z, cos 2^k c_z for k < octaves), c a standardized
    position: extra flexibility of the energy n(x) along the height only; 0 octaves: c
    unchanged.

    A plain SiLU MLP is too smooth in z where the cold disk population fades (the change of
    d log n/dz between 0.5 and 0.9 kpc comes out 15-45 % high, between 0.9 and 1.3 kpc 15-30 %
    low, at any size or training length); encoding all three coordinates fixes that but fits the
    sample's own Poisson structure along the plane (docs/density_experiments.md, rounds 4-5).
    """

    def __init__(self, octaves: int) -> None:
        super().__init__()
        self.register_buffer("frequencies", 2.0 ** torch.arange(int(octaves), dtype=torch.float32))

    @property
    def width(self) -> int:
        """Features out: 3 + 2 per octave."""
        return 3 + 2 * len(self.frequencies)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        phase = c[..., 2:3] * self.frequencies
        return torch.cat([c, torch.sin(phase), torch.cos(phase)], -1)


def scalar_mlp(hidden: tuple[int, ...], activation: type[nn.Module] = nn.SiLU,
               height_octaves: int = 0) -> nn.Sequential:
    """A smooth MLP from a (standardized) 3D position to one number: 3 -> hidden -> 1, with
    the :class:`HeightEncoding` of ``height_octaves`` first when > 0."""
    encoding = HeightEncoding(height_octaves)
    layers, width = ([encoding] if height_octaves else []), encoding.width
    for h in hidden:
        layers += [nn.Linear(width, int(h)), activation()]
        width = int(h)
    return nn.Sequential(*layers, nn.Linear(width, 1))


class MLPPotential(nn.Module):
    """Phi(x) = V^2 * MLP((x - loc) / L): a smooth (SiLU) potential in (km/s)^2 of x in kpc.

    ``length_kpc`` is one scale per axis (the stars' spread), so a thin disk is as easy to
    represent as a sphere; derivatives carry the per-axis factors. ``velocity_kms`` is V.
    """

    def __init__(self, loc_kpc, length_kpc, velocity_kms: float,
                 hidden: tuple[int, ...] = (64, 64, 64)) -> None:
        super().__init__()
        self.register_buffer("loc", torch.as_tensor(loc_kpc, dtype=torch.float32))
        length = torch.as_tensor(length_kpc, dtype=torch.float32).reshape(-1)
        self.register_buffer("length", length.expand(3).clone())
        self.velocity = float(velocity_kms)
        self.net = scalar_mlp(hidden)

    def scaled(self, xs: torch.Tensor) -> torch.Tensor:
        """Phi / V^2 as a function of the scaled position (x - loc) / L."""
        return self.net(xs).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.velocity**2 * self.scaled((x - self.loc) / self.length)

    def fields(self, x: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """(rho M_sun/pc^3, a = -grad Phi (km/s)^2/kpc) at ``x`` (N, 3) kpc, by autograd."""
        rhos, accs = [], []
        xt = torch.as_tensor(np.asarray(x), dtype=torch.float32)
        v2 = self.velocity**2
        for s in range(0, len(xt), chunk):
            xs = ((xt[s:s + chunk] - self.loc) / self.length).requires_grad_(True)
            with torch.enable_grad():
                grad = torch.autograd.grad(self.scaled(xs).sum(), xs, create_graph=True)[0]
                lap = sum(torch.autograd.grad(grad[:, k].sum(), xs, retain_graph=True)[0][:, k]
                          / self.length[k] ** 2 for k in range(3))
            accs.append((-grad.detach() * v2 / self.length).numpy())
            rhos.append((lap.detach() * v2 / _FOUR_PI_G / MSUN_PC3_IN_KPC3).numpy())
        return np.concatenate(rhos), np.concatenate(accs)


def logit_mlp(features: int, hidden: tuple[int, ...] = (64, 64, 64)) -> nn.Sequential:
    """A classifier network: ``features`` -> hidden (ReLU) -> one logit."""
    layers: list[nn.Module] = []
    width = int(features)
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    return nn.Sequential(*layers, nn.Linear(width, 1))


class MLPEnsemble(nn.Module):
    """The mean probability of trained :func:`logit_mlp` members.

    ``forward(x)`` gives the mean of sigmoid(logit) over members, shape (n,);
    :meth:`predict_proba` takes and returns numpy, (n, 2) columns (1 - p, p), so the ensemble
    stands where a scikit-learn classifier does (pickled with the search's models).
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("MLPEnsemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.sigmoid(m(x).squeeze(-1)) for m in self.members]).mean(0)

    def predict_proba(self, x: np.ndarray, batch: int = 65536) -> np.ndarray:
        """(n, 2) float64: P(class 0), P(class 1) of feature rows ``x`` (n, d)."""
        device = next(self.parameters()).device
        self.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                xb = torch.as_tensor(np.asarray(x[i:i + batch], np.float32), device=device)
                out.append(self(xb).double().cpu().numpy())
        p = np.concatenate(out) if out else np.zeros(0)
        return np.stack([1.0 - p, p], axis=1)

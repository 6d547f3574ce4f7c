"""The n(x) pieces of the density flows: the logistic-mixture marginal and the ball support."""
from __future__ import annotations

import math

import numpy as np
import torch

from gaialake.models.density import LogisticMixtureCDF, build_flows, flow_config, train_flows, \
    tensor_batches


def test_logistic_mixture_cdf_is_a_smooth_bijection_with_the_right_jacobian():
    torch.manual_seed(0)
    m = LogisticMixtureCDF(2, 4)
    with torch.no_grad():
        m.loc.normal_()
        m.log_scale.uniform_(-1.0, 0.5)
        m.logit_w.normal_()
    y = torch.linspace(-30.0, 30.0, 601, dtype=torch.float32)
    yy = torch.stack([y, 0.5 * y], 1).requires_grad_(True)
    u, logdet = m(yy)
    assert torch.isfinite(u).all() and torch.isfinite(logdet).all()
    assert (u[1:] > u[:-1]).all()  # increasing in every feature
    du = torch.stack([torch.autograd.grad(u[:, k].sum(), yy, retain_graph=True)[0][:, k]
                      for k in range(2)], 1)
    inner = yy[:, 0].abs() < 10  # where float32 resolves du/dy; the log-space form is exact
    np.testing.assert_allclose(torch.log(du).sum(1)[inner].detach(), logdet[inner].detach(),
                               atol=1e-3)


def test_fitted_mixture_follows_a_sech2_sheet():
    # an isothermal sheet n(z) ~ sech^2(z / 2s) is one logistic; a sum of two is a disk-like profile
    rng = np.random.default_rng(1)
    z = np.concatenate([rng.logistic(0.0, 0.1, 30000), rng.logistic(0.0, 0.4, 30000)])
    m = LogisticMixtureCDF(1, 6)
    m.fit(torch.as_tensor(z[:, None], dtype=torch.float32), steps=400)
    grid = torch.linspace(-1.5, 1.5, 31)[:, None].requires_grad_(True)
    slope = torch.autograd.grad(m.log_pdf(grid).sum(), grid)[0][:, 0].numpy()
    g = grid.detach().numpy()[:, 0]

    def logpdf(x):
        return np.log(0.5 / (4 * 0.1) / np.cosh(x / 0.2) ** 2
                      + 0.5 / (4 * 0.4) / np.cosh(x / 0.8) ** 2)

    true = np.gradient(logpdf(np.linspace(-1.5, 1.5, 3001)), 0.001)[::100]
    assert np.median(np.abs(slope - true)) < 0.3, np.abs(slope - true)  # d log n/dz, per unit z
    assert np.abs(slope - true).max() < 1.0


def test_truncated_n_is_normalized_over_the_ball_and_ignores_its_edge():
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    # stars uniform in a ball of radius 2 around c: log n = -log(V) inside, flat, zero gradient
    c, r = np.array([1.0, -1.0, 0.5]), 2.0
    d = rng.standard_normal((20000, 3))
    x = c + r * (rng.uniform(size=(20000, 1)) ** (1 / 3)) * d / np.linalg.norm(d, axis=1,
                                                                               keepdims=True)
    v = rng.standard_normal((20000, 3)) * 10.0
    flows = build_flows(flow_config(x, v, transforms=2, hidden=(16, 16), marginal_components=3,
                                    ball_center_kpc=c, ball_radius_kpc=r))
    flows.init_marginal(x, seed=0)
    train_flows(flows, tensor_batches(x, v, None, 1024, seed=0), epochs=15, lr=3e-3)
    pts = torch.as_tensor(x[:4000], dtype=torch.float32).requires_grad_(True)
    log_n = flows.log_n(pts)
    volume = 4 / 3 * math.pi * r**3
    # normalized: E_uniform[n] * V = 1, i.e. the mean of n over the stars is 1 / V
    assert abs(float(torch.logsumexp(log_n.detach(), 0)) - math.log(4000) + math.log(volume)) < 0.1
    grad = torch.autograd.grad(log_n.sum(), pts)[0]
    inner = np.linalg.norm(x[:4000] - c, axis=1) < 0.8 * r
    # flat inside: measured 0.69 /kpc (a tiny flow, 15 epochs); a density that had to fall to
    # zero at the edge, e.g. a Gaussian of the stars' variance, has a median 1.6 /kpc here
    assert float(grad[inner].norm(dim=1).median()) < 1.0

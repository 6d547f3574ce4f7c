"""The n(x) pieces of the density flows: the logistic-mixture marginal, the energy model and the
ball support; the per-height error summary."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gaialake.density.measure import band_errors
from gaialake.models.phase_space import LogisticMixtureCDF, build_flows, flow_config, train_flows, \
    tensor_batches


def _two_sheets_slope(z: np.ndarray) -> np.ndarray:
    """d log n/dz of two equal isothermal sheets, logistic scales 0.1 and 0.4 (n ~ sech^2)."""
    fine = np.linspace(z.min(), z.max(), 100 * (len(z) - 1) + 1)
    log_n = np.log(0.5 / (4 * 0.1) / np.cosh(fine / 0.2) ** 2
                   + 0.5 / (4 * 0.4) / np.cosh(fine / 0.8) ** 2)
    return np.gradient(log_n, fine[1] - fine[0])[::100]


def _uniform_ball(rng: np.random.Generator, n: int, center, radius: float) -> np.ndarray:
    d = rng.standard_normal((n, 3))
    return (np.asarray(center, float)
            + radius * rng.uniform(size=(n, 1)) ** (1 / 3) * d / np.linalg.norm(d, axis=1,
                                                                               keepdims=True))


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
    true = _two_sheets_slope(grid.detach().numpy()[:, 0])
    assert np.median(np.abs(slope - true)) < 0.3, np.abs(slope - true)  # d log n/dz, per unit z
    assert np.abs(slope - true).max() < 1.0


def test_truncated_n_is_normalized_over_the_ball_and_ignores_its_edge():
    torch.manual_seed(2)
    rng = np.random.default_rng(2)
    # stars uniform in a ball of radius 2 around c: log n = -log(V) inside, flat, zero gradient
    c, r = np.array([1.0, -1.0, 0.5]), 2.0
    x = _uniform_ball(rng, 20000, c, r)
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


def test_band_errors_split_the_region_by_height():
    height = np.array([0.1, 0.2, 0.3, 0.7, 1.2, 2.0])
    truth = np.ones(6)
    rho = np.array([1.1, 0.8, 1.5, 1.0, 3.0, 9.0])
    region = np.array([True, True, True, True, True, False])
    out = band_errors(rho, truth, region, height, [0.0, 0.25, 0.5, 1.5, 3.0])
    assert out == pytest.approx({"rho_rel_err_median_0_0.25": 0.15, "n_region_0_0.25": 2,
                                 "rho_rel_err_median_0.25_0.5": 0.5, "n_region_0.25_0.5": 1,
                                 "rho_rel_err_median_0.5_1.5": 1.0, "n_region_0.5_1.5": 2})


@pytest.mark.parametrize("octaves", [0, 3])
def test_energy_n_learns_a_disk_profile_in_a_ball(octaves):
    # two isothermal sheets in z, uniform in x, y, cut to a ball: log n is an MLP (of the
    # position, or with the height encoded too) normalized on the ball by Monte Carlo; its
    # d log n/dz follows the sheets and it is flat in x and y
    torch.manual_seed(3)
    rng = np.random.default_rng(3)
    n, r = 120000, 1.5
    z = np.concatenate([rng.logistic(0.0, 0.1, n // 2), rng.logistic(0.0, 0.4, n // 2)])
    x = np.column_stack([rng.uniform(-r, r, n), rng.uniform(-r, r, n), z])
    x = x[np.linalg.norm(x, axis=1) < r]
    v = rng.standard_normal((len(x), 3)) * 10.0
    flows = build_flows(flow_config(x, v, transforms=1, hidden=(8,), n_model="energy",
                                    n_hidden=(64, 64, 64), height_octaves=octaves,
                                    ball_center_kpc=(0, 0, 0), ball_radius_kpc=r))
    train_flows(flows, tensor_batches(x, v, None, 2048, seed=0), epochs=12, lr=3e-3,
                ball_points=4096)
    u = _uniform_ball(rng, 40000, (0, 0, 0), r)
    log_n = flows.log_n(torch.as_tensor(u, dtype=torch.float32)).detach()
    volume = 4 / 3 * math.pi * r**3
    # normalized on the ball: V times the mean of n over uniform points is 1 (measured 0.005)
    assert abs(float(torch.logsumexp(log_n, 0)) - math.log(40000) + math.log(volume)) < 0.05
    zg = torch.linspace(-0.6, 0.6, 25)
    line = torch.stack([torch.zeros(25), torch.zeros(25), zg], 1).requires_grad_(True)
    grad = torch.autograd.grad(flows.log_n(line).sum(), line)[0].numpy()
    true = _two_sheets_slope(zg.numpy())
    # measured: 0.17 /kpc median error of d log n/dz (0.13 with 3 octaves; values 0-5.1 /kpc;
    # a Gaussian of the stars' variance errs by 2.0), 0.006 /kpc in x, y (0.011)
    assert np.median(np.abs(grad[:, 2] - true)) < 0.3, np.abs(grad[:, 2] - true)
    assert np.median(np.abs(grad[:, :2])) < 0.03  # flat in x, y (the ball does the edge)


def test_height_encoding_adds_sines_of_the_height_only():
    from gaialake.models.mlp import HeightEncoding

    enc = HeightEncoding(3)
    c = torch.tensor([[0.3, -1.2, 0.5], [2.0, 0.7, 0.5]])
    out = enc(c)
    assert out.shape == (2, enc.width) == (2, 9)
    assert torch.equal(out[:, :3], c)
    assert torch.allclose(out[:, 3:6], torch.sin(0.5 * torch.tensor([1.0, 2.0, 4.0])).expand(2, 3))
    assert torch.equal(out[0, 3:], out[1, 3:])  # the same height: the same features


def test_height_encoding_is_for_the_energy_n_only():
    x = np.random.default_rng(0).standard_normal((100, 3))
    with pytest.raises(ValueError, match="height_octaves needs n_model 'energy'"):
        build_flows(flow_config(x, x, height_octaves=3))


def test_energy_n_needs_a_ball():
    x = np.random.default_rng(0).standard_normal((100, 3))
    with pytest.raises(ValueError, match="needs a ball"):
        build_flows(flow_config(x, x, n_model="energy"))


def test_validation_samples_band_by_height_or_by_radius():
    from gaialake.conf import load_conf
    from gaialake.density.validation import build_validation_sample

    x = np.array([[8.0, 0.0, -0.7], [8.5, 1.0, 0.3]])
    slab = load_conf(sets=["density.n_stars=2000"]).get("density")
    np.testing.assert_allclose(build_validation_sample(slab, 0).band_height_kpc(x), [0.7, 0.3])
    sphere = load_conf(sets=["density.n_stars=2000", "density.mock=plummer"]).get("density")
    np.testing.assert_allclose(build_validation_sample(sphere, 0).band_height_kpc(x),
                               np.linalg.norm(x, axis=1))

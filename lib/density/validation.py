"""The validation sample: a mock observed as a Gaia-like 6D catalog and selected like real data.

mock (Galactocentric x, v) -> ICRS observables with optional Gaia-like errors and G magnitudes
(:func:`gaialake.density.selection.observe`) -> back to Galactocentric Cartesian with the conf's
solar parameters -> stars within ``radius_kpc`` of the Sun (slab) -> magnitude limit and
completeness weights 1/c(d). The Plummer sphere is centred on the Galactic centre and kept
within ``plummer.select_radius_kpc`` of its centre (the estimators are validated there, not
the selection).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
from scipy.special import ndtri

from gaialake.density.mocks import PlummerSphere, SlabMock, sample_absolute_mag, slab_from_lists
from gaialake.astro.frame import SolarParameters
from gaialake.density.selection import (completeness_weights, distance_kpc,
                                        icrs_to_galactocentric, observe)

__all__ = ["ValidationSample", "build_validation_sample"]


@dataclass
class ValidationSample:
    """Selected stars (kpc, km/s), their n(x) weights, the mock (None for a catalog: no
    truth), and where to put the grid."""

    x: np.ndarray
    v: np.ndarray
    weight: np.ndarray
    system: Any
    name: str
    sun_kpc: np.ndarray
    grid_center_kpc: np.ndarray
    grid_radius_kpc: float
    ball_radius_kpc: float | None
    n_drawn: int
    ball_center_kpc: np.ndarray | None = None
    spherical: bool = False   # the error bands' coordinate: r about the grid centre, else |z|
    from_catalog: bool = False   # read from gaia_source (a mock's truth may be attached)
    keys: np.ndarray | None = None   # int64 star ids (source_id) keying the bootstrap counts
    #: a catalog sample larger than the driver may hold: the whole of it on the executors
    #: (:class:`gaialake.io.densityread.StarStream`); x, v, weight, keys are then a uniform
    #: subsample (the flows' standardization, the marginals, the potential's fit stars)
    stream: Any = None

    def __post_init__(self) -> None:
        if self.ball_center_kpc is None and self.ball_radius_kpc is not None:
            self.ball_center_kpc = self.grid_center_kpc

    @property
    def n_stars(self) -> int:
        """Stars in the whole sample (a streamed one's too)."""
        return len(self.x) if self.stream is None else int(self.stream.n_rows)

    def star_keys(self) -> np.ndarray:
        """The stars' int64 ids: ``keys``, or the rows."""
        return np.arange(len(self.x)) if self.keys is None else self.keys

    def count_stars(self, grid: np.ndarray, spacing_kpc: float) -> np.ndarray:
        """Stars of the whole sample in the cube cell of side ``spacing_kpc`` around each
        point of ``grid`` (a lattice through ``grid_center_kpc``)."""
        from gaialake.density.measure import count_stars

        if self.stream is not None:
            return self.stream.count_on_lattice(grid, self.grid_center_kpc, spacing_kpc)
        return count_stars(self.x, grid, spacing_kpc)

    def band_height_kpc(self, x: np.ndarray) -> np.ndarray:
        """Where a point (N, 3) kpc sits for the error bands: |z| (kpc) for a disk, the
        distance from the grid centre for a sphere."""
        if self.spherical:
            return np.linalg.norm(np.asarray(x) - self.grid_center_kpc, axis=1)
        return np.abs(np.asarray(x)[:, 2])

    @property
    def has_truth(self) -> bool:
        """Whether the sample comes from a mock with known density and acceleration."""
        return self.system is not None

    @property
    def table_source(self) -> str:
        """The ``source`` column of its ``density_grid`` rows: ``catalog`` (read from
        ``gaia_source``), ``catalog_<name>`` (a mock's catalog read from ``gaia_source``, its
        truth attached) or ``mock_<name>`` (a mock built in memory)."""
        if self.from_catalog:
            return "catalog" if self.system is None else f"catalog_{self.name}"
        return f"mock_{self.name}"

    @property
    def density_true(self) -> Callable[[np.ndarray], np.ndarray]:
        """The mock's true mass density (M_sun/pc^3) as a function of x (N, 3) kpc."""
        return self.system.density_msun_pc3

    @property
    def acceleration_true(self) -> Callable[[np.ndarray], np.ndarray]:
        """The mock's true acceleration ((km/s)^2/kpc) as a function of x (N, 3) kpc."""
        return self.system.acceleration


def build_validation_sample(dconf: Mapping, seed: int) -> ValidationSample:
    """The sample described by the conf section ``density`` (a mapping), seeded by ``seed``."""
    solar = SolarParameters.from_conf(dconf.get("solar"))
    sun = solar.position_kpc
    n = int(dconf["n_stars"])
    name = str(dconf["mock"])
    radius = float(dconf["radius_kpc"])
    grid_frac = float(dconf["grid"]["radius_frac"])
    if name == "plummer":
        pc = dconf["plummer"]
        system = PlummerSphere(float(pc["mass_msun"]), float(pc["b_kpc"]))
        x, v = system.sample(n, seed)
        cut = pc.get("select_radius_kpc")  # null: the whole sphere, no truncation
        cut = None if cut is None else float(cut)
        keep = np.linalg.norm(x, axis=1) < (np.inf if cut is None else cut)
        return ValidationSample(x[keep], v[keep], np.ones(int(keep.sum())), system, name, sun,
                                np.zeros(3), float(pc["grid_radius_kpc"]), cut, n,
                                spherical=True)
    if name != "slab":
        raise ValueError(f"conf density.mock: {name!r} is not slab or plummer")
    sc = dconf["slab"]
    baryons = [{"rho0_msun_pc3": b["rho0_msun_pc3"], "h_kpc": b["h_kpc"]}
               for b in dconf["baryons"]]
    system: SlabMock = slab_from_lists(baryons, sc["rho_dm_msun_pc3"], sc["populations"], sun,
                                       radius)
    x, v = system.sample(n, seed)
    comp = dconf["completeness"]
    mag = sample_absolute_mag(n, float(comp["abs_mag_mean"]), float(comp["abs_mag_sigma"]),
                              seed + 1)
    errs = dconf.get("observe", {}) or {}
    obs = observe(x, v, mag, seed + 2, solar,
                  parallax_error_mas=float(errs.get("parallax_error_mas", 0.0)),
                  pm_error_masyr=float(errs.get("pm_error_masyr", 0.0)),
                  rv_error_kms=float(errs.get("rv_error_kms", 0.0)))
    keep = obs["parallax"] > 0
    g_limit = comp.get("g_limit")
    if g_limit is not None:
        keep &= obs["phot_g_mean_mag"] < float(g_limit)
    xs, vs = icrs_to_galactocentric(obs["ra"][keep], obs["dec"][keep], obs["parallax"][keep],
                                    obs["pmra"][keep], obs["pmdec"][keep],
                                    obs["radial_velocity"][keep], solar)
    d = distance_kpc(xs, solar)
    w, ok = completeness_weights(d, None if g_limit is None else float(g_limit),
                                 float(comp["abs_mag_mean"]), float(comp["abs_mag_sigma"]),
                                 float(comp["min_completeness"]))
    if g_limit is not None:  # beyond c(d) = min_completeness no star is kept: the ball shrinks
        mu = (float(g_limit) - float(comp["abs_mag_mean"])
              - float(comp["abs_mag_sigma"]) * ndtri(float(comp["min_completeness"])))
        radius = min(radius, 10.0 ** (mu / 5.0) / 100.0)
    ok &= d < radius
    return ValidationSample(xs[ok], vs[ok], w[ok], system, name, sun, sun, grid_frac * radius,
                            radius, n)

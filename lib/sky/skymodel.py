"""Expected star counts per HEALPix pixel from the model, file ranges, and sampling one range.

Counts. Along the line of sight to a pixel centre, on ``sky.distance_bins`` log-spaced distance
bins s (kpc, 5 pc .. 200 kpc), component c contributes

    w_c(s) = rho_c(s) s^2 ds F_c(G_lim - DM(s) - A_G(s))    [stars per sr]

with rho_c in stars/kpc^3 (:mod:`~gaialake.sky.galaxy`), F_c the fraction of the component's
luminosity function brighter than the limit (:mod:`~gaialake.sky.photometry`), A_G the dust
column up to s. The model's own ("natural") count of a pixel is the sum times the pixel's solid
angle; ``sky.n_stars`` rescales all of them by one factor (``scale`` = n_stars / natural count of
the region), so the sky keeps the model's shape at any size from 1e4 to 1e9 stars.

Pixels. The region (``sky.region``: ``full`` or a list of cones) is a set of pixels at
``sky.model_order`` (default 6) whose centres lie in a cone. Files are contiguous runs of region
pixels in nested order holding about ``sky.stars_per_file`` expected stars, named by their first
and last level-8 pixel as ESA's ``GaiaSource_AAAAAA-BBBBBB.csv.gz``. Inside a file's range, stars
are drawn per level-``sky.sample_order`` pixel (``auto``: the finest order, at most 9, with 2 or
more stars per pixel on average; 8 for the default sky): Poisson counts per component, distance
from w_c(s) of that pixel, a uniform position inside the pixel, magnitude from the luminosity
function truncated at the limit, velocity from the component's kinematic model.

Streams. Each stream of ``sky.stream_members`` is a mock of its literature member count (stars
with G < limit); the sky injects a seeded subsample of count x ``scale``: thinned by the field's
factor, a stream keeps its real ratio to the field whatever ``sky.n_stars`` is (no setting makes
it denser). :func:`stream_field_ratios` gives that ratio in the searched fiducial discs after
the search's cuts, from the model's expected counts (:func:`expected_cut_counts`).
:func:`sample_range` is everything one Spark task does; its only randomness is the generator
seeded by ``conf.seed_for("sky", <first level-8 pixel of the range>)``, so a file's bytes do not
depend on how ranges are spread over tasks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gaialake.conf import Conf
from gaialake.astro.healpix import order_npix, pixel_center_radec, pixel_of
from gaialake.log import get_logger
from gaialake.sky.galaxy import Component, component_density_cyl, dust_av_per_kpc, galaxy_components
from gaialake.sky.kinematics import (Transforms, circular_velocity_table, galactocentric_to_observed,
                         icrs_to_galactocentric, sample_velocities, transforms)
from gaialake.sky.observe import assign_source_ids, dr3_table, observe
from gaialake.sky.photometry import distance_modulus, extinction_bands, population

__all__ = ["FileRange", "SkyModel", "StarCuts", "build_sky_model", "region_pixels", "los_weights",
           "expected_counts", "expected_cut_counts", "stream_pass_fraction", "stream_field_ratios", "file_ranges", "auto_sample_order", "sample_range", "TRUTH_COLUMNS", "STREAM_FEH"]

log = get_logger("sky")

FILE_ORDER = 8  # ESA's bulk-file names are level-8 pixel ranges
#: [Fe/H] of the mock streams' stars (metal-poor globular-cluster-like isochrone).
STREAM_FEH = -1.5
#: Columns of the truth rows a task returns.
TRUTH_COLUMNS = [("source_id", "int64"), ("origin", "string"), ("component", "string"),
                 ("stream", "string")]


@dataclass(frozen=True)
class FileRange:
    """One bulk file: level-8 pixel range [lo8, hi8], its model-order pixels, expected stars."""
    index: int
    lo8: int
    hi8: int
    pixels: np.ndarray
    expected: float
    seed: int

    @property
    def file_name(self) -> str:
        """The bulk file's name, ``GaiaSource_<lo8>-<hi8>.csv.gz``."""
        return f"GaiaSource_{self.lo8:06d}-{self.hi8:06d}.csv.gz"


@dataclass(frozen=True)
class StarCuts:
    """The search's star cuts as the model's expected counts apply them: G < ``g_max`` (mag),
    ``bp_rp_min`` < BP-RP < ``bp_rp_max`` (mag, reddened), true distance > 1 / ``parallax_max_mas``
    (kpc: the parallax cut without parallax errors, which at |b| >= 30 deg matter only for
    stars brighter than G ~ 16 near 1 kpc)."""
    g_max: float
    bp_rp_min: float
    bp_rp_max: float
    parallax_max_mas: float


@dataclass
class SkyModel:
    """Everything a task needs to sample its range (picklable; no gala, no Spark)."""
    galaxy: str
    components: list[Component]
    g_limit: float
    rv_g_limit: float
    extinction: bool
    model_order: int
    sample_order: int
    dist_edges: np.ndarray
    scale: float
    natural_count: float
    n_stars: float
    ranges: list[FileRange]
    tf: Transforms
    vc_table: tuple[np.ndarray, np.ndarray]
    streams: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    #: per stream, Galactocentric positions (3, n) kpc of its literature-count members in the
    #: region (the injected ones are a ``scale`` subsample)
    stream_pools: dict[str, np.ndarray] = field(default_factory=dict)

    def parameters(self) -> dict:
        """The model's parameters as plain data (logged next to the raw files)."""
        from gaialake.sky.kinematics import SOLAR_PARAMETERS

        return {
            "galaxy": self.galaxy, "components": [c.to_dict() for c in self.components],
            "g_limit": self.g_limit, "rv_g_limit": self.rv_g_limit, "extinction": self.extinction,
            "model_order": self.model_order, "sample_order": self.sample_order,
            "distance_kpc": [float(self.dist_edges[0]), float(self.dist_edges[-1]),
                             len(self.dist_edges) - 1],
            "n_stars_expected": self.n_stars, "natural_count_region": self.natural_count,
            "scale": self.scale, "n_files": len(self.ranges),
            "streams": {k: int(v["xyz"].shape[1]) for k, v in self.streams.items()},
            "stream_members_in_region": {k: int(v.shape[1]) for k, v in self.stream_pools.items()},
            "solar_parameters": SOLAR_PARAMETERS, "potential": "gala MilkyWayPotential2022",
        }


def region_pixels(region, order: int) -> np.ndarray:
    """Nested pixels at ``order`` whose centres lie in the region (``"full"`` or a list of
    cones ``{ra, dec, radius_deg}`` in deg), sorted."""
    npix = order_npix(order)
    if region in ("full", "all", None):
        return np.arange(npix, dtype=np.int64)
    cones = [region] if isinstance(region, dict) else list(region)
    ra, dec = pixel_center_radec(np.arange(npix), order)
    keep = np.zeros(npix, dtype=bool)
    for cone in cones:
        try:
            ra0, dec0, rad = float(cone["ra"]), float(cone["dec"]), float(cone["radius_deg"])
        except (KeyError, TypeError) as err:
            raise ValueError(f"sky.region: each cone needs ra, dec, radius_deg (deg); got {cone!r}"
                             ) from err
        cosd = (np.sin(np.radians(dec)) * np.sin(np.radians(dec0)) + np.cos(np.radians(dec))
                * np.cos(np.radians(dec0)) * np.cos(np.radians(ra - ra0)))
        keep |= cosd >= np.cos(np.radians(rad))
    if not keep.any():
        raise ValueError(f"sky.region {region!r} contains no pixel centre at order {order}")
    return np.flatnonzero(keep).astype(np.int64)


def los_weights(model: SkyModel, ra_deg: np.ndarray, dec_deg: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray]:
    """Line-of-sight weights and dust for directions (deg).

    Returns ``w`` (n_components, n, n_bins) in stars/sr (the model's natural counts) and
    ``a_g_edges`` (n, n_bins + 1), A_G (mag) at the bin edges.
    """
    edges = model.dist_edges
    mid = np.sqrt(edges[:-1] * edges[1:])
    ds = np.diff(edges)
    x, y, z = icrs_to_galactocentric(ra_deg[:, None], dec_deg[:, None], mid[None, :], model.tf)
    R, az = np.hypot(x, y), np.abs(z)
    if model.extinction:
        av_density = dust_av_per_kpc(R, az)
        av_edges = np.concatenate([np.zeros((len(ra_deg), 1)), np.cumsum(av_density * ds, axis=1)],
                                  axis=1)
        av_mid = av_edges[:, :-1] + 0.5 * av_density * ds
    else:
        av_edges = np.zeros((len(ra_deg), len(edges)))
        av_mid = av_edges[:, :-1]
    a_g_mid, _ = extinction_bands(av_mid)
    a_g_edges, _ = extinction_bands(av_edges)
    m_lim = model.g_limit - distance_modulus(mid)[None, :] - a_g_mid
    geom = mid**2 * ds
    w = np.empty((len(model.components), len(ra_deg), len(mid)))
    fracs: dict[float, np.ndarray] = {}
    for i, comp in enumerate(model.components):
        if comp.feh not in fracs:
            fracs[comp.feh] = population(comp.feh).fraction_brighter(m_lim) * geom
        w[i] = component_density_cyl(comp, R, az) * fracs[comp.feh]
    return w, a_g_edges


def _window_cum(feh: float, e_bprp: float, cuts: StarCuts) -> tuple[np.ndarray, np.ndarray]:
    """(absolute G sorted, cumulative number fraction of stars inside the colour window) of a
    population whose colours are reddened by ``e_bprp`` (mag)."""
    pop = population(feh)
    weight = np.diff(np.concatenate([[0.0], pop.cum]))
    col = pop.bp_rp + e_bprp
    return pop.abs_g, np.cumsum(weight * ((col > cuts.bp_rp_min) & (col < cuts.bp_rp_max)))


def _cut_fraction(feh: float, abs_g_limit: np.ndarray, e_bprp: np.ndarray, cuts: StarCuts,
                  e_step: float = 0.01) -> np.ndarray:
    """Fraction of a population with M_G < ``abs_g_limit`` (mag) and reddened colour in the
    window; ``e_bprp`` (mag) is rounded to ``e_step``."""
    lim = np.asarray(abs_g_limit, np.float64)
    e_key = np.round(np.asarray(e_bprp, np.float64) / e_step).astype(np.int64)
    out = np.zeros(lim.shape)
    for k in np.unique(e_key):
        at = e_key == k
        abs_g, cum = _window_cum(feh, k * e_step, cuts)
        i = np.searchsorted(abs_g, lim[at], side="left")
        out[at] = np.where(i > 0, cum[np.maximum(i - 1, 0)], 0.0)
    return out


def expected_cut_counts(model: SkyModel, pixels: np.ndarray, order: int, cuts: StarCuts,
                        ) -> np.ndarray:
    """Natural expected stars (n_components, n_pixels) in nested ``pixels`` that pass ``cuts``
    (and G < the sky's limit); multiply by ``model.scale`` for the generated sky's counts."""
    omega = 4.0 * math.pi / order_npix(order)
    ra, dec = (np.asarray(a) for a in pixel_center_radec(pixels, order))
    edges = model.dist_edges
    mid = np.sqrt(edges[:-1] * edges[1:])
    _, a_g_edges = los_weights(model, ra, dec)
    a_g = 0.5 * (a_g_edges[:, :-1] + a_g_edges[:, 1:])
    _, e_bprp = extinction_bands(a_g / 0.789)
    m_cut = np.minimum(cuts.g_max, model.g_limit) - distance_modulus(mid)[None, :] - a_g
    geom = np.where(mid > 1.0 / cuts.parallax_max_mas, mid**2 * np.diff(edges), 0.0)
    x, y, z = icrs_to_galactocentric(ra[:, None], dec[:, None], mid[None, :], model.tf)
    R, az = np.hypot(x, y), np.abs(z)
    out = np.empty((len(model.components), len(pixels)))
    fracs: dict[float, np.ndarray] = {}
    for i, comp in enumerate(model.components):
        if comp.feh not in fracs:
            fracs[comp.feh] = _cut_fraction(comp.feh, m_cut, e_bprp, cuts) * geom
        out[i] = (component_density_cyl(comp, R, az) * fracs[comp.feh]).sum(axis=1) * omega
    return out


def stream_pass_fraction(model: SkyModel, xyz: np.ndarray, cuts: StarCuts) -> np.ndarray:
    """Probability (per member at Galactocentric ``xyz`` (3, n) kpc) that a stream star drawn
    as :func:`sample_range` draws it (G < the sky's limit) passes ``cuts``."""
    if xyz.shape[1] == 0:
        return np.zeros(0)
    obs = galactocentric_to_observed(xyz, np.zeros_like(xyz), model.tf)
    a_g = _dust_to(model, obs["ra"], obs["dec"], obs["distance"])
    _, e_bprp = extinction_bands(a_g / 0.789)
    dm = distance_modulus(obs["distance"])
    pop = population(STREAM_FEH)
    drawn = np.maximum(pop.fraction_brighter_exact(model.g_limit - dm - a_g), pop.cum[0])
    passed = _cut_fraction(STREAM_FEH, np.minimum(cuts.g_max, model.g_limit) - dm - a_g, e_bprp,
                           cuts)
    return np.where(obs["distance"] > 1.0 / cuts.parallax_max_mas,
                    np.minimum(passed / drawn, 1.0), 0.0)


def stream_field_ratios(model: SkyModel, discs: pd.DataFrame, fiducial_deg: float,
                        cuts: StarCuts) -> dict[str, dict]:
    """Stream-to-field ratio of each stream in the searched fiducial discs, after the cuts.

    ``discs``: patch_id, ra, dec (deg) of the searched patch centres. A stream's discs are those
    holding at least one of its literature-count members; over their union (model-order pixels
    whose centres lie within ``fiducial_deg``) the ratio is the expected members passing the
    cuts over the expected field stars passing them. Both scale with ``model.scale``, so the
    ratio is that of the Galaxy model at any ``sky.n_stars``; ``members`` and ``field`` are the
    generated sky's expected counts.
    """
    out: dict[str, dict] = {}
    if len(discs) == 0:
        return {name: {"patches": [], "members": 0.0, "field": 0.0, "ratio": 0.0}
                for name in model.stream_pools}
    c_ra, c_dec = np.radians(discs["ra"].to_numpy()), np.radians(discs["dec"].to_numpy())
    c_vec = np.stack([np.cos(c_dec) * np.cos(c_ra), np.cos(c_dec) * np.sin(c_ra), np.sin(c_dec)], 1)
    cos_fid = math.cos(math.radians(fiducial_deg))
    ids = discs["patch_id"].to_numpy()
    for name, xyz in sorted(model.stream_pools.items()):
        obs = galactocentric_to_observed(xyz, np.zeros_like(xyz), model.tf)
        r, d = np.radians(obs["ra"]), np.radians(obs["dec"])
        m_vec = np.stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)], 1)
        in_disc = m_vec @ c_vec.T >= cos_fid                      # (members, discs)
        hit = in_disc.any(axis=0)
        members = float(stream_pass_fraction(model, xyz[:, in_disc.any(axis=1)], cuts).sum())
        field_nat = 0.0
        if hit.any():
            pix = np.arange(order_npix(model.model_order))
            p_ra, p_dec = (np.radians(np.asarray(a)) for a in pixel_center_radec(pix, model.model_order))
            p_vec = np.stack([np.cos(p_dec) * np.cos(p_ra), np.cos(p_dec) * np.sin(p_ra),
                              np.sin(p_dec)], 1)
            near = pix[(p_vec @ c_vec[hit].T >= cos_fid).any(axis=1)]
            field_nat = float(expected_cut_counts(model, near, model.model_order, cuts).sum())
        out[name] = {"patches": [int(p) for p in ids[hit]],
                     "members": round(members * model.scale, 1),
                     "field": round(field_nat * model.scale, 1),
                     "ratio": members / field_nat if field_nat > 0 else 0.0}
    return out


def expected_counts(model: SkyModel, pixels: np.ndarray, order: int, chunk: int = 4096,
                    ) -> np.ndarray:
    """Natural expected stars (n_components, n_pixels) with G < limit in nested ``pixels``."""
    omega = 4.0 * math.pi / order_npix(order)
    out = np.empty((len(model.components), len(pixels)))
    for s in range(0, len(pixels), chunk):
        ra, dec = pixel_center_radec(pixels[s:s + chunk], order)
        w, _ = los_weights(model, np.asarray(ra), np.asarray(dec))
        out[:, s:s + chunk] = w.sum(axis=2) * omega
    return out


def file_ranges(pixels: np.ndarray, counts: np.ndarray, order: int, stars_per_file: float,
                seed_of) -> list[FileRange]:
    """Split sorted region ``pixels`` (at ``order`` <= 8) into contiguous runs of about
    ``stars_per_file`` expected stars (``counts`` per pixel); ``seed_of(lo8)`` gives the seed."""
    if order > FILE_ORDER:
        raise ValueError(f"sky.model_order must be <= {FILE_ORDER}, got {order}")
    shift = 2 * (FILE_ORDER - order)
    out: list[FileRange] = []
    start, acc = 0, 0.0
    for i in range(len(pixels)):
        acc += counts[i]
        last = i == len(pixels) - 1
        if acc >= stars_per_file or last:
            pix = pixels[start:i + 1]
            lo8 = int(pix[0]) << shift
            hi8 = ((int(pix[-1]) + 1) << shift) - 1
            out.append(FileRange(len(out), lo8, hi8, pix.copy(), float(acc), seed_of(lo8)))
            start, acc = i + 1, 0.0
    return out


def _stream_members(conf: Conf, region_set: np.ndarray, order: int, tf: Transforms,
                    scale: float) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """(injected members, literature-count members) of each stream inside the region.

    A stream's mock holds its literature member count (``sky.stream_members``, stars with
    G < g_limit); the injected members are a seeded subsample of round(count x ``scale``), the
    factor that thins the field, so a stream keeps its real ratio to the field at any
    ``sky.n_stars``. The second dict holds the literature-count members' Galactocentric
    positions (3, n) in kpc, for :func:`stream_field_ratios`."""
    from gaialake.sky.stream_mocks import STREAMS, mock_stream

    if str(conf.get("sky.streams", "on")).lower() in ("off", "false", "0", "no"):
        return {}, {}
    members = conf.get("sky.stream_members", {}) or {}
    cache = conf.path("sky.cache_dir") if conf.get("sky.cache_dir", None) else None
    injected, full = {}, {}
    for name, n in members.items():
        if name not in STREAMS:
            raise ValueError(f"sky.stream_members: unknown stream {name!r}; known: {sorted(STREAMS)}")
        if int(n) <= 0:
            continue
        seed = conf.seed_for("sky", "stream", name)
        m = mock_stream(STREAMS[name], int(n), seed, cache)
        pix = pixel_of(*_radec(m["xyz"], m["vxyz"], tf), order)
        inside = np.isin(pix, region_set)
        full[name] = m["xyz"][:, inside]
        k = min(int(round(int(n) * scale)), m["xyz"].shape[1])
        pick = np.zeros(m["xyz"].shape[1], dtype=bool)
        rng = np.random.default_rng(conf.seed_for("sky", "stream", name, "thin"))
        pick[rng.choice(m["xyz"].shape[1], size=k, replace=False)] = True
        keep = pick & inside
        injected[name] = {"xyz": m["xyz"][:, keep], "vxyz": m["vxyz"][:, keep], "pix": pix[keep]}
    return injected, full


def _radec(xyz: np.ndarray, vxyz: np.ndarray, tf: Transforms) -> tuple[np.ndarray, np.ndarray]:
    obs = galactocentric_to_observed(xyz, vxyz, tf)
    return obs["ra"], obs["dec"]


def auto_sample_order(n_stars: float, n_region_pixels: int, model_order: int,
                      min_mean_stars: float = 2.0, max_order: int = 9) -> int:
    """The finest order (<= ``max_order``) whose region pixels hold at least ``min_mean_stars``
    stars on average: the line-of-sight work scales with the pixel count, not the star count."""
    order = model_order
    while order < max_order and n_stars / (n_region_pixels * 4 ** (order + 1 - model_order)) >= min_mean_stars:
        order += 1
    return order


def build_sky_model(conf: Conf) -> SkyModel:
    """The sky model of ``conf`` (driver side: evaluates the potential, the mock streams and the
    normalisation; see the module docstring)."""
    galaxy = str(conf.get("sky.galaxy", "A"))
    order = int(conf.get("sky.model_order", 6))
    n_bins = int(conf.get("sky.distance_bins", 160))
    n_stars = float(conf.get("sky.n_stars"))
    if not 1 <= n_stars <= 1e10:
        raise ValueError(f"sky.n_stars must be in [1, 1e10], got {n_stars}")
    pixels = region_pixels(conf.get("sky.region", "full"), order)
    sample_order = conf.get("sky.sample_order", "auto")
    if sample_order == "auto":
        sample_order = auto_sample_order(n_stars, len(pixels), order)
    sample_order = int(sample_order)
    if not order <= sample_order <= 12:
        raise ValueError(f"need sky.model_order <= sky.sample_order <= 12, got {order}, {sample_order}")
    model = SkyModel(
        galaxy=galaxy, components=galaxy_components(galaxy),
        g_limit=float(conf.get("sky.g_limit", 20.7)), rv_g_limit=float(conf.get("sky.rv_g_limit", 14.5)),
        extinction=str(conf.get("sky.extinction", "on")).lower() not in ("off", "false", "0", "no"),
        model_order=order, sample_order=sample_order,
        dist_edges=np.geomspace(0.005, 200.0, n_bins + 1), scale=1.0, natural_count=0.0,
        n_stars=n_stars, ranges=[], tf=transforms(), vc_table=circular_velocity_table())
    counts = expected_counts(model, pixels, order).sum(axis=0)
    model.natural_count = float(counts.sum())
    model.scale = n_stars / model.natural_count
    per_file = float(conf.get("sky.stars_per_file", 100000))
    model.ranges = file_ranges(pixels, counts * model.scale, order, per_file,
                               lambda lo8: conf.seed_for("sky", lo8))
    model.streams, model.stream_pools = _stream_members(conf, pixels, order, model.tf, model.scale)
    return model


def _sample_field(rng: np.random.Generator, model: SkyModel, pix: np.ndarray,
                  ) -> list[tuple[Component, dict[str, np.ndarray]]]:
    """Field stars of every component in sample-order pixels ``pix``: true positions (kpc),
    velocities (km/s), G and BP-RP (mag, with extinction)."""
    order = model.sample_order
    omega = 4.0 * math.pi / order_npix(order)
    ra_c, dec_c = (np.asarray(a) for a in pixel_center_radec(pix, order))
    w, a_g_edges = los_weights(model, ra_c, dec_c)
    edges = model.dist_edges
    nb = len(edges) - 1
    out = []
    for ci, comp in enumerate(model.components):
        wc = w[ci]
        lam = model.scale * omega * wc.sum(axis=1)
        n = rng.poisson(lam)
        total = int(n.sum())
        if total == 0:
            continue
        idx = np.repeat(np.arange(len(pix)), n)
        flat = np.cumsum(wc.ravel())
        row_start = np.concatenate([[0.0], flat[nb - 1::nb][:-1]])
        row_total = wc.sum(axis=1)
        u = row_start[idx] + rng.random(total) * row_total[idx]
        k = np.clip(np.searchsorted(flat, u, side="right") - idx * nb, 0, nb - 1)
        f = rng.random(total)
        dist = edges[k] * (edges[k + 1] / edges[k]) ** f
        frac = (dist - edges[k]) / (edges[k + 1] - edges[k])
        a_g = a_g_edges[idx, k] + frac * (a_g_edges[idx, k + 1] - a_g_edges[idx, k])
        sub = rng.integers(0, 1 << (2 * (29 - order)), size=total, dtype=np.int64)
        ra, dec = pixel_center_radec((pix[idx].astype(np.int64) << (2 * (29 - order))) | sub, 29)
        ra, dec = np.asarray(ra), np.asarray(dec)
        m_lim = model.g_limit - distance_modulus(dist) - a_g
        abs_g, bp_rp0 = population(comp.feh).sample(rng, m_lim)
        av = a_g / 0.789
        _, ebprp = extinction_bands(av)
        xyz = icrs_to_galactocentric(ra, dec, dist, model.tf)
        vxyz = sample_velocities(rng, comp.kinematics, comp.kin_params, *xyz, model.vc_table,
                                 R_d=comp.density_params.get("R_d"))
        out.append((comp, {"xyz": xyz, "vxyz": vxyz, "g": abs_g + distance_modulus(dist) + a_g,
                           "bp_rp": bp_rp0 + ebprp}))
    return out


def _dust_to(model: SkyModel, ra: np.ndarray, dec: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """A_G (mag) to stars at (ra, dec in deg, distance in kpc)."""
    if not model.extinction or len(ra) == 0:
        return np.zeros(len(ra))
    _, a_g_edges = los_weights(model, ra, dec)
    e = model.dist_edges
    k = np.clip(np.searchsorted(e, dist, side="right") - 1, 0, len(e) - 2)
    frac = np.clip((dist - e[k]) / (e[k + 1] - e[k]), 0.0, 1.0)
    i = np.arange(len(ra))
    return a_g_edges[i, k] + frac * (a_g_edges[i, k + 1] - a_g_edges[i, k])


def _sample_streams(rng: np.random.Generator, model: SkyModel, fr: FileRange,
                    ) -> list[tuple[str, dict[str, np.ndarray]]]:
    out = []
    for name in sorted(model.streams):
        m = model.streams[name]
        keep = np.isin(m["pix"], fr.pixels)
        if not keep.any():
            continue
        xyz, vxyz = m["xyz"][:, keep], m["vxyz"][:, keep]
        obs = galactocentric_to_observed(xyz, vxyz, model.tf)
        a_g = _dust_to(model, obs["ra"], obs["dec"], obs["distance"])
        m_lim = model.g_limit - distance_modulus(obs["distance"]) - a_g
        abs_g, bp_rp0 = population(STREAM_FEH).sample(rng, m_lim)
        _, ebprp = extinction_bands(a_g / 0.789)
        out.append((name, {"xyz": xyz, "vxyz": vxyz,
                           "g": abs_g + distance_modulus(obs["distance"]) + a_g,
                           "bp_rp": bp_rp0 + ebprp}))
    return out


def sample_range(model: SkyModel, fr: FileRange, chunk_pixels: int = 4096,
                 ) -> tuple[pa.Table, pd.DataFrame]:
    """The stars of one file range: (DR3 152-column table sorted by source_id, truth rows with
    ``TRUTH_COLUMNS``). Deterministic given ``fr.seed``."""
    rng = np.random.default_rng(fr.seed)
    shift = 2 * (model.sample_order - model.model_order)
    pix = (fr.pixels[:, None] << shift | np.arange(1 << shift)[None, :]).ravel()
    parts, labels = [], []
    for s in range(0, len(pix), chunk_pixels):
        for comp, d in _sample_field(rng, model, pix[s:s + chunk_pixels]):
            parts.append(d)
            labels.append((comp.origin, comp.name, None, d["g"].size))
    for name, d in _sample_streams(rng, model, fr):
        parts.append(d)
        labels.append(("accreted", name, name, d["g"].size))
    if parts:
        xyz = np.concatenate([p["xyz"] for p in parts], axis=1)
        vxyz = np.concatenate([p["vxyz"] for p in parts], axis=1)
        g = np.concatenate([p["g"] for p in parts])
        bp_rp = np.concatenate([p["bp_rp"] for p in parts])
    else:
        xyz = vxyz = np.zeros((3, 0))
        g = bp_rp = np.zeros(0)
    codes = np.repeat(np.arange(len(labels)), [n for *_, n in labels]).astype(np.int64)
    true = galactocentric_to_observed(xyz, vxyz, model.tf)
    true.update(g=g, bp_rp=bp_rp)
    cols = observe(rng, true, model.rv_g_limit)
    visible = cols["phot_g_mean_mag"] < model.g_limit
    cols = {k: v[visible] for k, v in cols.items()}
    codes = codes[visible]
    source_id, order = assign_source_ids(rng, cols["ra"], cols["dec"])
    cols = {k: v[order] for k, v in cols.items()}
    codes = codes[order]
    cols["source_id"] = source_id
    table = dr3_table(cols, len(source_id))
    designation = pc.binary_join_element_wise("Gaia DR3 ", pc.cast(table["source_id"], pa.string()), "")
    table = table.set_column(table.schema.get_field_index("designation"), "designation", designation)
    lab = np.array([list(x[:3]) for x in labels] or np.empty((0, 3)), dtype=object)
    truth = pd.DataFrame({"source_id": source_id,
                          "origin": lab[codes, 0] if len(codes) else np.array([], object),
                          "component": lab[codes, 1] if len(codes) else np.array([], object),
                          "stream": lab[codes, 2] if len(codes) else np.array([], object)})
    return table, truth

"""A density validation mock observed like Gaia DR3 (``gaialake density_mock``; pure numpy).

The mock of conf ``density.mock`` (:mod:`gaialake.density.mocks`) drawn as tracer stars and
observed with the sky generator's observation model, so that ``density.source: catalog`` can
measure it through the path a user runs on DR3 (bulk files -> ``gaialake ingest`` ->
``gaialake density``):

- **stars** (:func:`draw_mock`): the slab inside ``radius_margin x density.radius_kpc`` of the
  Sun, or the Plummer sphere centred on the Sun (conf ``density.plummer`` mass and scale, cut
  at the same radius); parallax scatter moves stars across the selection radius both ways, so
  the mock reaches beyond it. [Fe/H] from N(``feh.mean``, ``feh.sigma``) (dex), independent of
  the kinematics;
- **photometry** (:func:`gaialake.sky.mockobs.draw_photometry`): absolute G and BP-RP from the
  generator's isochrone of each star's [Fe/H] (:func:`gaialake.sky.photometry.population`, Kroupa IMF), its
  luminosity function truncated at ``abs_mag_limit``: fainter stars can never pass
  ``density.catalog.abs_mag_max`` (with parallax noise), and drawing them (99 % of a Kroupa
  population is fainter than M_G = 3.5) would only cost time. Extinction (optional) through the
  generator's dust along the sight-line (:func:`gaialake.sky.mockobs.sightline_a_v`);
- **errors** (:func:`gaialake.sky.observe.dr3_catalog`): DR3 uncertainties vs G (parallax,
  proper motions, photometry, ruwe with 8 % binaries), the observed-G limit ``g_limit``, the
  RVS subset ``G < rv_g_limit`` with its errors, source_ids and the 152 DR3 columns; every
  parallax is offset by ``parallax_zero_point_mas`` (DR3's global zero point, which
  ``density.catalog.parallax_zero_point_mas`` subtracts);
- **radial-velocity selection** (:func:`rv_completeness`): inside the RVS subset a star keeps
  its radial velocity with probability ``1 / (1 + exp((G - g50_mag) / width_mag))`` of its
  observed G, so the fraction of stars with an RV falls with G as in DR3 and the catalog path
  must estimate it (:func:`gaialake.density.catalog.selection_function`);
- **truth** (:func:`truth_spec`, :func:`system_from_truth`): the mock's parameters, from which
  the density job rebuilds rho(x) and a(x) on any grid (``density.catalog.truth``);
- **its own catalog** (:func:`mock_catalog_conf`, ``density.source: mock_catalog``): the conf
  whose ``paths.raw`` is the mock's folder and whose warehouse and catalog database carry
  ``suffix``, so the mock is ingested and measured beside the sky's catalog, never into it; its
  :func:`fingerprint` tells whether the ingested mock is still the one the settings describe.

Units: kpc, km/s, deg, mag, M_sun.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gaialake.astro.frame import SolarParameters
from gaialake.conf import Conf
from gaialake.density.mocks import (PlummerSphere, SlabComponent, SlabMock, TracerPopulation,
                                    slab_from_lists)
from gaialake.density.selection import galactocentric_to_icrs
from gaialake.sky.mockobs import observe_photometry

__all__ = ["TRUTH_FILE", "FINGERPRINT_KEYS", "SUFFIXED_PATHS", "MAX_STARS_PER_FILE",
           "MockCatalogSettings", "draw_mock", "rv_completeness", "observe_stars", "truth_spec",
           "system_from_truth", "mock_catalog_conf", "fingerprint"]

#: The truth file beside the bulk files (a JSON description of the mock).
TRUTH_FILE = "truth_density.json"
#: Conf keys the written mock depends on.
FINGERPRINT_KEYS = ("seed", "density.mock", "density.radius_kpc", "density.solar",
                    "density.slab", "density.plummer", "density.baryons",
                    "density.mock_catalog")
#: ``paths.*`` keys that get ``density.mock_catalog.suffix`` (its catalog's own tables; the
#: metastore is the Spark session's, which the density job starts with its own conf).
SUFFIXED_PATHS = ("warehouse",)
#: Tracers drawn per bulk file at most, on average (a file's rows overflow Arrow's 2 GiB string
#: column beyond ~1.2 M; files are HEALPix ranges, so they differ in size).
MAX_STARS_PER_FILE = 250_000


@dataclass(frozen=True)
class MockCatalogSettings:
    """Conf ``density.mock_catalog`` (units in the names)."""

    raw: str | None
    n_stars: int
    radius_margin: float
    abs_mag_limit: float
    feh_mean: float
    feh_sigma: float
    extinction: bool
    g_limit: float
    rv_g_limit: float
    rv_g50_mag: float
    rv_width_mag: float
    n_files: int
    parallax_zero_point_mas: float = 0.0

    @property
    def files(self) -> int:
        """Bulk files written: ``n_files``, or more so that a file holds about
        :data:`MAX_STARS_PER_FILE` tracers at most (a bigger CSV overflows Arrow's 2 GiB string
        column)."""
        return max(self.n_files, -(-self.n_stars // MAX_STARS_PER_FILE))

    @classmethod
    def from_conf(cls, density_conf: Mapping[str, Any]) -> "MockCatalogSettings":
        """From the conf section ``density`` (its ``mock_catalog`` section)."""
        c = density_conf["mock_catalog"]
        out = cls(None if c["raw"] is None else str(c["raw"]), int(c["n_stars"]),
                  float(c["radius_margin"]), float(c["abs_mag_limit"]),
                  float(c["feh"]["mean"]), float(c["feh"]["sigma"]), bool(c["extinction"]),
                  float(c["g_limit"]), float(c["rv_g_limit"]),
                  float(c["rv_selection"]["g50_mag"]), float(c["rv_selection"]["width_mag"]),
                  int(c["n_files"]), float(c.get("parallax_zero_point_mas") or 0.0))
        for key, ok in (("n_stars", out.n_stars > 0), ("radius_margin", out.radius_margin >= 1),
                        ("feh.sigma", out.feh_sigma >= 0),
                        ("rv_selection.width_mag", out.rv_width_mag > 0),
                        ("n_files", 1 <= out.n_files <= 12 * 4**8)):
            if not ok:
                raise ValueError(f"conf density.mock_catalog.{key}: out of range ({c})")
        return out


def draw_mock(density_conf: Mapping[str, Any], s: MockCatalogSettings, solar: SolarParameters,
              seed: int) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """(the system, x (n, 3) kpc, v (n, 3) km/s, [Fe/H] (n,) dex) of conf ``density.mock``:
    ``s.n_stars`` stars within ``s.radius_margin x density.radius_kpc`` of the Sun."""
    name = str(density_conf["mock"])
    sun = solar.position_kpc
    reach = s.radius_margin * float(density_conf["radius_kpc"])
    if name == "slab":
        sc = density_conf["slab"]
        system = slab_from_lists(density_conf["baryons"], sc["rho_dm_msun_pc3"],
                                 sc["populations"], sun, reach)
        x, v = system.sample(s.n_stars, seed)
    elif name == "plummer":
        pc_ = density_conf["plummer"]
        system = PlummerSphere(float(pc_["mass_msun"]), float(pc_["b_kpc"]),
                               tuple(float(c) for c in sun))
        xs, vs, got, k = [], [], 0, 0
        while got < s.n_stars:     # the sphere cut at the reach, drawn in rounds
            x, v = system.sample(2 * (s.n_stars - got) + 64, seed + k)
            keep = np.linalg.norm(x - sun, axis=1) < reach
            xs.append(x[keep])
            vs.append(v[keep])
            got, k = got + int(keep.sum()), k + 1
        x, v = np.concatenate(xs)[: s.n_stars], np.concatenate(vs)[: s.n_stars]
    else:
        raise ValueError(f"conf density.mock: {name!r} is not slab or plummer")
    feh = np.random.default_rng([seed, 1]).normal(s.feh_mean, s.feh_sigma, len(x))
    return system, x, v, feh


def rv_completeness(g_mag: np.ndarray, g50_mag: float, width_mag: float) -> np.ndarray:
    """The probability that a star of the RVS subset keeps its radial velocity at G (mag):
    ``1 / (1 + exp((G - g50_mag) / width_mag))``."""
    return 0.5 * (1.0 - np.tanh(0.5 * (np.asarray(g_mag, float) - g50_mag) / width_mag))


def _true_observables(x: np.ndarray, v: np.ndarray, solar: SolarParameters) -> dict:
    """The noiseless observables :func:`gaialake.sky.observe.observe` needs (without photometry):
    ra, dec, l, b, ecl_lon, ecl_lat (deg), distance (kpc), pmra, pmdec (mas/yr),
    radial_velocity (km/s), in the frame of ``solar``."""
    import astropy.coordinates as coord
    import astropy.units as u

    obs = galactocentric_to_icrs(x, v, solar)
    sky = coord.SkyCoord(ra=obs["ra"] * u.deg, dec=obs["dec"] * u.deg, frame="icrs")
    gal, ecl = sky.galactic, sky.transform_to(coord.BarycentricMeanEcliptic())
    return {"ra": obs["ra"], "dec": obs["dec"], "distance": 1.0 / obs["parallax"],
            "pmra": obs["pmra"], "pmdec": obs["pmdec"],
            "radial_velocity": obs["radial_velocity"], "l": gal.l.to_value(u.deg),
            "b": gal.b.to_value(u.deg), "ecl_lon": ecl.lon.to_value(u.deg),
            "ecl_lat": ecl.lat.to_value(u.deg)}


def observe_stars(rng: np.random.Generator, x: np.ndarray, v: np.ndarray, feh: np.ndarray,
                  s: MockCatalogSettings, solar: SolarParameters) -> tuple[pa.Table, np.ndarray]:
    """Stars (x (n, 3) kpc, v (n, 3) km/s, [Fe/H] dex) observed as DR3 rows: (152-column table
    of the stars brighter than ``s.g_limit``, sorted by source_id, radial velocities thinned by
    :func:`rv_completeness`; the input row of each)."""
    true = _true_observables(x, v, solar)
    table, rows = observe_photometry(rng, true, np.asarray(x, float).T, solar.position_kpc, feh,
                                     s.extinction, s.g_limit, s.rv_g_limit, s.abs_mag_limit)
    g = table.column("phot_g_mean_mag").to_numpy(zero_copy_only=False)
    has_rv = table.column("radial_velocity").is_valid().to_numpy(zero_copy_only=False)
    keep = has_rv & (rng.random(len(g)) < rv_completeness(g, s.rv_g50_mag, s.rv_width_mag))
    mask = pa.array(keep)
    for name in ("radial_velocity", "radial_velocity_error"):
        col = table.column(name)
        table = table.set_column(table.schema.get_field_index(name), name,
                                 pc.if_else(mask, col, pa.nulls(len(g), col.type)))
    table = table.set_column(table.schema.get_field_index("has_rvs"), "has_rvs",
                             mask.cast(table.schema.field("has_rvs").type))
    if s.parallax_zero_point_mas:
        i = table.schema.get_field_index("parallax")
        table = table.set_column(i, "parallax", pc.add(table.column(i),
                                                        s.parallax_zero_point_mas))
    return table, rows


def truth_spec(system: Any, solar: SolarParameters, **extra: Any) -> dict:
    """The JSON-ready description of a mock ``system`` (its parameters and the solar
    parameters it was observed with), plus ``extra`` (counts, seed)."""
    if isinstance(system, SlabMock):
        body = {"mock": "slab", **asdict(system)}
    elif isinstance(system, PlummerSphere):
        body = {"mock": "plummer", **asdict(system)}
    else:
        raise TypeError(f"truth_spec: no description of {type(system).__name__}")
    return {**body, "solar": asdict(solar), **extra}


def system_from_truth(spec: Mapping[str, Any]) -> tuple[Any, SolarParameters]:
    """(the mock system, the solar parameters it was observed with) of a :func:`truth_spec`."""
    solar = SolarParameters(**{k: (tuple(v) if isinstance(v, list) else v)
                               for k, v in spec["solar"].items()})
    if spec["mock"] == "slab":
        return SlabMock(tuple(SlabComponent(**c) for c in spec["components"]),
                        float(spec["rho_dm_msun_pc3"]),
                        tuple(TracerPopulation(**p) for p in spec["populations"]),
                        tuple(spec["sun_kpc"]), float(spec["radius_kpc"])), solar
    if spec["mock"] == "plummer":
        return PlummerSphere(float(spec["mass_msun"]), float(spec["b_kpc"]),
                             tuple(spec["center_kpc"])), solar
    raise ValueError(f"density truth: unknown mock {spec['mock']!r} (slab or plummer)")


def mock_catalog_conf(conf: Conf) -> Conf:
    """The conf that writes, ingests and measures the mock as a catalog (``density.source:
    mock_catalog``): ``paths.raw`` the mock's folder, warehouse and catalog database
    suffixed with ``density.mock_catalog.suffix``, ``density.source: catalog`` with the mock's
    truth file as ``density.catalog.truth``."""
    if conf.get("density.mock_catalog.raw") is None:
        raise ValueError("conf density.mock_catalog.raw is null: name the folder the mock's "
                         "bulk files are written to (density.source: mock_catalog)")
    out = conf.suffixed(str(conf.get("density.mock_catalog.suffix") or ""), SUFFIXED_PATHS)
    raw = conf.path("density.mock_catalog.raw")
    out.set("paths.raw", raw)
    out.set("density.source", "catalog")
    out.set("density.catalog.truth", f"{raw.rstrip('/')}/{TRUTH_FILE}")
    return out


def fingerprint(conf: Conf) -> str:
    """sha256 of the settings in :data:`FINGERPRINT_KEYS`: equal fingerprints, the same mock."""
    return conf.fingerprint(FINGERPRINT_KEYS)

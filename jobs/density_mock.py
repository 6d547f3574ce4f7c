"""`gaialake density_mock`: the density validation mock written as Gaia DR3 bulk files.

The mock of conf ``density.mock`` (slab or plummer, conf ``density``) drawn as tracer stars and
observed like Gaia (DR3 errors, the observed-G limit, a radial-velocity subset whose fraction
falls with G: :mod:`gaialake.density.mock_catalog`, conf ``density.mock_catalog``), written into
``density.mock_catalog.raw`` as ``GaiaSource_*.csv.gz`` with ``truth_density.json`` beside them.
Then, as on DR3::

    gaialake density_mock --set density.mock_catalog.raw=R
    gaialake ingest --set paths.raw=R --set paths.warehouse=W
    gaialake density --set paths.warehouse=W --set density.source=catalog \\
        --set density.catalog.truth=R/truth_density.json

or all three in one: ``gaialake density`` with ``density.source: mock_catalog`` (``make run``).

No Spark: the stars are drawn and observed file by file in the driver (file k seeded from
conf ``seed`` and k). Re-running replaces the files it wrote (the generator's manifest).
"""
from __future__ import annotations

import sys
import time

import numpy as np

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.log import get_logger, stage

__all__ = ["run"]

log = get_logger("density_mock")


def run(conf: Conf) -> dict:
    """Write the mock's bulk files and truth; returns counts of files, stars drawn, written
    (G < g_limit) and with a radial velocity, and seconds."""
    from gaialake.astro.frame import SolarParameters
    from gaialake.density import mock_catalog as mc
    from gaialake.density.selection import galactocentric_to_icrs
    from gaialake.io import densitymock
    from gaialake.sky.mockobs import file_name, file_of

    t0 = time.perf_counter()
    dconf = conf.get("density")
    settings = mc.MockCatalogSettings.from_conf(dconf)
    if settings.raw is None:
        raise ValueError("conf density.mock_catalog.raw is null: name the folder the bulk files "
                         "are written to")
    raw = conf.path("density.mock_catalog.raw")
    solar = SolarParameters.from_conf(dconf.get("solar"))
    seed = conf.seed_for("density", "mock_catalog") % 2**31
    with stage(log, f"draw {dconf['mock']} mock") as st:
        system, x, v, feh = mc.draw_mock(dconf, settings, solar, seed)
        sky = galactocentric_to_icrs(x, v, solar)
        index = file_of(sky["ra"], sky["dec"], settings.files)
        st.count = len(x)
    names = [file_name(k, settings.files) for k in range(settings.files)]
    removed = densitymock.prepare_folder(raw, names)
    if removed:
        log.info("removed %d bulk files of an earlier density_mock run in %s", removed, raw)
    written = with_rv = files = 0
    with stage(log, f"observe and write {settings.files} files") as st:
        for k in np.unique(index):
            rows = np.flatnonzero(index == k)
            table, _ = mc.observe_stars(np.random.default_rng([seed, 2, int(k)]), x[rows],
                                        v[rows], feh[rows], settings, solar)
            if table.num_rows == 0:
                continue
            densitymock.write_file(raw, names[k], table)
            files += 1
            written += table.num_rows
            with_rv += table.num_rows - table.column("radial_velocity").null_count
        st.count = written
        st.extra = f"{with_rv} with a radial velocity"
    summary = {"mock": str(dconf["mock"]), "files": files, "stars_drawn": int(len(x)),
               "stars_written": int(written), "stars_with_rv": int(with_rv), "seed": seed,
               "fingerprint": mc.fingerprint(conf)}
    truth_path = f"{raw.rstrip('/')}/{mc.TRUTH_FILE}"
    densitymock.write_truth(truth_path, mc.truth_spec(system, solar, **summary))
    return {**summary, "raw": raw, "truth": truth_path,
            "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    sys.exit(job_main("density_mock"))

"""`gaialake pipeline` end to end on a tiny sky (conf/tiny.yaml), as `make run` runs it, then the
notebooks executed against its outputs. One subprocess: its own Spark, metastore and MLflow."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gaialake.conf import load_conf
from gaialake.io.deltaread import read_delta

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    sets = [f"paths.raw={root / 'raw'}", f"paths.warehouse={root / 'wh'}",
            f"paths.metastore={root / 'ms'}", f"paths.mlflow={root / 'mlruns'}",
            f"paths.report={root / 'report'}"]
    args = [sys.executable, "-m", "gaialake.cli", "pipeline", "--conf", str(REPO / "conf" / "tiny.yaml")]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=2400,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-6000:]
    conf = load_conf(REPO / "conf" / "tiny.yaml", sets)
    return conf, sets, out.stderr


def _table(conf, name):
    return read_delta(conf.table_path(name)).to_pandas()


def test_every_stage_wrote_its_tables(pipeline):
    conf, _, log = pipeline
    gaia = _table(conf, "gaia_source")
    ingest_log = _table(conf, "ingest_log")
    assert len(gaia) == ingest_log.rows_kept.sum() > 10_000
    assert (ingest_log.rows_read == ingest_log.rows_kept + ingest_log.rows_quarantined).all()
    assert gaia.source_id.is_unique
    patch = _table(conf, "patch_stars")
    scores = _table(conf, "anomaly_scores")
    assert set(scores.method) == {"anode", "cathode"}
    assert set(scores.source_id) <= set(patch.source_id)
    for name in ("stream_candidates", "stream_members", "accreted_catalog", "density_grid",
                 "upsampled_mock"):
        assert os.path.exists(os.path.join(conf.table_path(name), "_delta_log")), name
    acc = _table(conf, "accreted_catalog")
    assert acc.source_id.isin(gaia.source_id).all()
    assert acc.p_accreted.dropna().between(0, 1).all()
    assert len(_table(conf, "density_grid")) > 0 and len(_table(conf, "upsampled_mock")) > 0
    for stage in ("generate", "ingest", "patches", "anomaly", "find_streams", "report"):
        assert f"job {stage}: done" in log


def test_stream_free_sky_sets_the_threshold_of_the_stream_sky(pipeline):
    from gaialake.streams.nullsky import null_sky_conf

    conf, _, log = pipeline
    assert "job null_sky: done" in log
    null = null_sky_conf(conf)
    null_gaia = _table(null, "gaia_source")
    assert len(null_gaia) > 10_000 and null_gaia.source_id.is_unique
    assert len(_table(null, "truth_streams")) == 0            # no stream stars in the null sky
    assert len(_table(conf, "truth_streams")) > 0
    null_cands = _table(null, "stream_candidates")
    cands = _table(conf, "stream_candidates")
    floor = float(conf.get("find_streams.min_candidate_significance"))
    for method, mine in cands.groupby("method"):
        sig = null_cands.loc[null_cands.method == method, "significance"]
        expected = max(floor, sig.max()) if len(sig) else floor
        assert np.allclose(mine.threshold, expected), method
        assert (mine.above_threshold == (mine.significance > expected)).all()


def test_models_are_registered_with_champion_alias(pipeline):
    from gaialake.jobs.models import list_models

    conf, _, _ = pipeline
    champions = {r["name"] for r in list_models(conf) if "champion" in r["aliases"]}
    assert {"gaialake-anode", "gaialake-cathode"} <= champions


def test_report_has_rendered_figures(pipeline):
    import re
    from gaialake.report.browser import dump_dom

    conf, _, _ = pipeline
    dom = dump_dom(Path(conf.path("paths.report")) / "index.html")
    total = int(re.search(r'data-images="(\d+)"', dom).group(1))
    assert total >= 3
    assert re.search(rf'data-images-rendered="{total}"', dom)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_on_the_outputs(pipeline, notebook):
    import nbformat
    from nbclient import NotebookClient

    _, sets, _ = pipeline
    nb = nbformat.read(notebook, as_version=4)
    os.environ["GAIALAKE_SET"] = ";".join(sets)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3",
                       resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        os.environ.pop("GAIALAKE_SET", None)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors

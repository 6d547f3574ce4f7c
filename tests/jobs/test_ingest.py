"""`gaialake ingest` on local Spark + Delta: quarantine, reconciliation, idempotence, kill -9."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gaialake.io.delta import read_table
from gaialake.astro.healpix import radec_to_hpx29
from gaialake.jobs import ingest
from tests.helpers import dr3_lines, dr3_table, write_dr3_file

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def raw_files(conf):
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    a, b, c = (dr3_table(700, seed=s, ra_range=(10 + 50 * s, 40 + 50 * s)) for s in (1, 2, 3))
    la, lb, lc = dr3_lines(a), dr3_lines(b), dr3_lines(c)
    lb[10] = lb[10].replace(",", ",,", 1)                       # wrong field count
    lb[20] = ",".join(lb[20].split(",")[:7] + ["95.0"] + lb[20].split(",")[8:])  # dec out of range
    lb[30] = lb[31]                                             # duplicate within the file
    lc[5] = la[100]                                             # duplicate across files
    write_dr3_file(raw / "GaiaSource_000001-000002.csv.gz", la)
    write_dr3_file(raw / "GaiaSource_000003-000004.csv.gz", lb)
    write_dr3_file(raw / "GaiaSource_000005-000006.csv.gz", lc)
    good = (raw / "GaiaSource_000001-000002.csv.gz").read_bytes()
    (raw / "GaiaSource_000007-000008.csv.gz").write_bytes(good[:3000] + b"corrupt" * 50)
    (raw / "notes.txt").write_text("not a bulk file")
    return raw


def test_ingest_quarantines_bad_rows_and_reconciles_counts(spark, conf, raw_files):
    conf = conf.with_overrides(["ingest.files_per_batch=2"])
    summary = ingest.run(conf)
    assert summary["failed"] == 1 and summary["ingested"] == 3
    table = read_table(spark, conf, "gaia_source")
    quarantine = read_table(spark, conf, "gaia_source_quarantine").toPandas()
    log = read_table(spark, conf, "ingest_log").toPandas().set_index("source_file")

    assert table.count() == 2100 - 4
    assert sorted(quarantine["reason"].str.split(":").str[0]) == [
        "column dec", "duplicate source_id", "duplicate source_id", "wrong number of fields"]
    assert quarantine.raw_line.notna().all() and (quarantine.line_number > 160).all()
    cross = quarantine[quarantine.reason.str.contains("000001-000002")]
    assert list(cross.source_file) == ["GaiaSource_000005-000006.csv.gz"]

    ok = log[log.status == "ok"]
    assert (ok.rows_read == ok.rows_kept + ok.rows_quarantined).all()
    assert ok.rows_read.sum() == 2100 and ok.rows_kept.sum() == table.count()
    assert ok.rows_quarantined.sum() == len(quarantine)
    failed = log.loc["GaiaSource_000007-000008.csv.gz"]
    assert failed.status == "failed" and "GaiaSource_000007-000008" in failed.error
    assert table.where("source_file = 'GaiaSource_000007-000008.csv.gz'").count() == 0

    pdf = table.select("ra", "dec", "hpx29", "hpx").toPandas()
    np.testing.assert_array_equal(pdf.hpx29, radec_to_hpx29(pdf.ra, pdf.dec))
    shift = 2 * (29 - conf.get("catalog.partition_order"))
    np.testing.assert_array_equal(pdf.hpx, np.right_shift(pdf.hpx29.to_numpy(), shift))
    assert spark.sql("SELECT count(*) FROM gaialake.gaia_source").first()[0] == 2096

    # re-running on the same files changes nothing
    version = spark.sql(f"DESCRIBE HISTORY delta.`{conf.table_path('gaia_source')}`").count()
    again = ingest.run(conf)
    assert again["ingested"] == 0
    assert read_table(spark, conf, "gaia_source").count() == 2096
    assert spark.sql(f"DESCRIBE HISTORY delta.`{conf.table_path('gaia_source')}`").count() == version


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "gaialake.cli", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_killed_ingest_reruns_to_exact_rows_and_new_session_queries_catalog(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    n = 0
    for i in range(3):
        t = dr3_table(1500, seed=10 + i, ra_range=(60 * i, 60 * i + 50))
        write_dr3_file(raw / f"GaiaSource_{i:06d}-{i:06d}.csv.gz", dr3_lines(t))
        n += t.num_rows
    sets = [f"--set=paths.raw={raw}", f"--set=paths.warehouse={tmp_path / 'wh'}",
            f"--set=paths.metastore={tmp_path / 'ms'}", "--set=ingest.files_per_batch=1",
            "--set=spark.shuffle_partitions=2"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = _cli(["ingest", *sets], env, start_new_session=True)
    log_dir = tmp_path / "wh" / "gaia_source" / "_delta_log"
    deadline = time.time() + 240
    while time.time() < deadline and not (log_dir.exists() and len(list(log_dir.glob("*.json"))) >= 2):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the driver and its JVM mid-run
    proc.wait()
    assert log_dir.exists(), "ingest never committed; cannot test the kill"

    rerun = _cli(["ingest", *sets], env)
    out, _ = rerun.communicate(timeout=400)
    assert rerun.returncode == 0, out[-3000:]

    query = _cli(["sql", *sets, "--format", "csv",
                  "SELECT count(*) AS n, count(DISTINCT source_id) AS d FROM gaialake.gaia_source"], env)
    out, _ = query.communicate(timeout=300)
    assert query.returncode == 0, out[-3000:]
    assert f"n,d\n{n},{n}" in out


def test_replaced_and_removed_files_are_reingested_and_pruned(spark, conf):
    # pruning is off by default and refuses to remove more than 10 % of the rows: allow 40 %
    conf = conf.with_overrides(["ingest.prune_missing=true", "ingest.prune_max_fraction=0.5"])
    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    write_dr3_file(raw / "GaiaSource_000001-000001.csv.gz", dr3_lines(dr3_table(300, seed=21)))
    write_dr3_file(raw / "GaiaSource_000002-000002.csv.gz", dr3_lines(dr3_table(200, seed=22, ra_range=(200, 210))))
    ingest.run(conf)
    assert read_table(spark, conf, "gaia_source").count() == 500
    write_dr3_file(raw / "GaiaSource_000001-000001.csv.gz", dr3_lines(dr3_table(120, seed=23)))
    (raw / "GaiaSource_000002-000002.csv.gz").unlink()
    summary = ingest.run(conf)
    assert summary["ingested"] == 1
    table = read_table(spark, conf, "gaia_source")
    assert table.count() == 120
    assert {r[0] for r in table.select("source_file").distinct().collect()} == {"GaiaSource_000001-000001.csv.gz"}
    log = read_table(spark, conf, "ingest_log").toPandas()
    assert list(log.source_file) == ["GaiaSource_000001-000001.csv.gz"] and log.rows_read[0] == 120


def test_duplicate_search_is_skipped_only_when_no_duplicate_is_possible(spark, conf):
    from gaialake.io.catalogload import may_hold_duplicates

    raw = Path(conf.path("paths.raw"))
    raw.mkdir(parents=True)
    a, b = dr3_table(300, seed=11, ra_range=(10, 20)), dr3_table(300, seed=12, ra_range=(200, 210))
    write_dr3_file(raw / "GaiaSource_000001-000001.csv.gz", dr3_lines(a))
    write_dr3_file(raw / "GaiaSource_000002-000002.csv.gz", dr3_lines(b))
    assert ingest.run(conf)["rows_kept"] == 600
    ids = a.column("source_id").to_numpy()
    lo, hi = int(ids.min()), int(ids.max())
    top = max(hi, int(b.column("source_id").to_numpy().max()))
    apart = (top + 1, top + 1000, False)               # beyond every ingested source_id
    assert not may_hold_duplicates(spark, conf, {"new": apart}, ["new"])
    assert may_hold_duplicates(spark, conf, {"new": (apart[0], apart[1], True)}, ["new"])
    assert may_hold_duplicates(spark, conf, {"new": apart, "x": (apart[1], apart[1] + 5, False)},
                               ["new", "x"])
    assert may_hold_duplicates(spark, conf, {"new": (lo + 1, lo + 2, False)}, ["new"])
    # a's own file again (replaced): its old rows are no duplicates
    again = {"GaiaSource_000001-000001.csv.gz": (lo, lo, False)}
    assert not may_hold_duplicates(spark, conf, again, list(again))
    assert may_hold_duplicates(spark, conf, again, ["GaiaSource_000009-000009.csv.gz"])

    # a later file whose one row repeats an ingested source_id is caught
    lines = dr3_lines(dr3_table(200, seed=13, ra_range=(100, 110)))
    lines[50] = dr3_lines(a)[7]
    write_dr3_file(raw / "GaiaSource_000003-000003.csv.gz", lines)
    summary = ingest.run(conf)
    assert summary["rows_quarantined"] == 1 and summary["rows_kept"] == 199
    quarantine = read_table(spark, conf, "gaia_source_quarantine").toPandas()
    assert list(quarantine.reason) == ["duplicate source_id: already ingested from "
                                       "GaiaSource_000001-000001.csv.gz"]
    assert read_table(spark, conf, "gaia_source").count() == 799

"""Every output under the given paths: the metastore follows the warehouse, Spark's warehouse
dir and derby.log live under it, caches and side skies under paths.*."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from gaialake.conf import load_conf

# holds the Derby metastore's file lock the way a running gaialake job does
HOLD_LOCK = textwrap.dedent("""
    import fcntl, sys, time
    fh = open(sys.argv[1], "a")
    fcntl.lockf(fh, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(120)
""")


def test_metastore_caches_and_side_skies_follow_the_given_paths():
    from gaialake.streams.nullsky import null_sky_conf

    conf = load_conf(sets=["paths.warehouse=/data/wh", "paths.cache=/data/cache"])
    assert conf.path("paths.metastore") == "/data/wh/_metastore"
    assert conf.path("sky.cache_dir") == "/data/cache/sky"
    assert conf.path("accreted.side_root").startswith("/data/wh/")
    assert load_conf(sets=["paths.warehouse=s3a://b/wh"]).path("paths.metastore") == \
        "s3a://b/wh/_metastore"
    # the stream-free run's metastore follows its own warehouse
    assert null_sky_conf(conf).path("paths.metastore").startswith("/data/wh_nostreams/")
    # an explicit metastore is kept
    assert load_conf(sets=["paths.metastore=/ms"]).path("paths.metastore") == "/ms"


def test_in_memory_catalog_keeps_sparks_warehouse_dir_under_the_metastore(tmp_path):
    from gaialake.io.spark import _local_builder

    conf = load_conf(sets=[f"paths.warehouse={tmp_path / 'wh'}"])
    lock = tmp_path / "wh" / "_metastore" / "metastore_db" / "dbex.lck"
    lock.parent.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        builder, persistent = _local_builder(conf, None)
    finally:
        holder.kill()
        holder.wait()
    opts = builder._options
    assert not persistent and opts["spark.sql.catalogImplementation"] == "in-memory"
    # not ./spark-warehouse in the working directory
    assert opts["spark.sql.warehouse.dir"].startswith(str(tmp_path / "wh" / "_metastore"))

"""``gaialake sql "<query>"``: run SQL over the gaialake catalog and print the result.

Tables are ``gaialake.<table>``. ``CONE(ra, dec, radius_deg)`` in a WHERE clause is a cone
search that reads only the HEALPix partitions it overlaps (``gaialake.astro.cone``). Works while
another job holds the local metastore (the session then registers the warehouse's Delta tables
itself; see ``gaialake.io.spark``).
"""
from __future__ import annotations

import argparse
import sys

from gaialake.cli import job_main
from gaialake.astro.cone import expand_cones
from gaialake.conf import Conf
from gaialake.io.spark import get_spark


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: the query, ``--format`` and ``--limit`` (rows)."""
    parser.add_argument("query", help="SQL, e.g. \"SELECT count(*) FROM gaialake.gaia_source\"")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.add_argument("--limit", type=int, default=1000, help="rows printed at most")


def main(conf: Conf, args: argparse.Namespace) -> int:
    """Run the query (``CONE(...)`` expanded) and print at most ``--limit`` rows; returns the
    exit status."""
    spark = get_spark(conf)
    spark.sql(f"USE {conf.get('catalog.database')}")
    query = expand_cones(args.query, int(conf.get("catalog.partition_order")))
    df = spark.sql(query).limit(args.limit)
    pdf = df.toPandas()
    if args.format == "csv":
        sys.stdout.write(pdf.to_csv(index=False))
    elif args.format == "json":
        sys.stdout.write(pdf.to_json(orient="records", lines=True))
    else:
        sys.stdout.write(pdf.to_string(index=False) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(job_main("sql"))

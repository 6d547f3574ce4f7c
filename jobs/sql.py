"""``gaialake sql "<query>"``: run SQL over the gaialake catalog and print the result.

Read-only unless ``--write``: a statement that changes tables or the catalog (DELETE, DROP,
CREATE, INSERT, UPDATE, MERGE, ALTER, TRUNCATE, RESTORE, VACUUM, OPTIMIZE, ...) is refused with
exit status 2 before it runs (``gaialake.io.sqlquery``, from Spark's own parse of the statement).
Tables are ``gaialake.<table>``. ``CONE(ra, dec, radius_deg)`` in a WHERE clause is a cone
search that reads only the HEALPix partitions it overlaps (``gaialake.astro.cone``). Works while
another job holds the local metastore (the session then registers the warehouse's Delta tables
itself; see ``gaialake.io.spark``).
"""
from __future__ import annotations

import argparse
import sys

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.spark import get_spark
from gaialake.io.sqlquery import WriteRefusedError, read_only_query


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: the query, ``--format`` and ``--limit`` (rows)."""
    parser.add_argument("query", help="SQL, e.g. \"SELECT count(*) FROM gaialake.gaia_source\"")
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.add_argument("--limit", type=int, default=1000, help="rows printed at most")
    parser.add_argument("--write", action="store_true",
                        help="allow statements that change tables or the catalog (DELETE, DROP, "
                             "CREATE, INSERT, UPDATE, MERGE, ALTER, TRUNCATE, ...)")


def main(conf: Conf, args: argparse.Namespace) -> int:
    """Run the query (``CONE(...)`` expanded) and print at most ``--limit`` rows; returns the
    exit status."""
    spark = get_spark(conf)
    try:
        query = read_only_query(spark, conf, args.query, "gaialake sql",
                                allow_write=getattr(args, "write", False), write_flag="--write")
    except WriteRefusedError as err:
        sys.stderr.write(f"gaialake sql: {err}\n")
        return 2
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

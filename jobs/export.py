"""``gaialake export hats|query``: a table as a HATS catalog, or a query's rows as one file.

- ``gaialake export hats --table <table> --out DIR``: gaia_source, or a table with a
  ``source_id`` (joined to gaia_source's positions), as a HATS catalog that
  ``lsdb.open_catalog(DIR)`` reads (``gaialake.io.hatsexport``).
- ``gaialake export query "<SQL>" --format fits|votable|ecsv|parquet --out FILE``: the query
  run as ``gaialake sql`` runs it (read-only, ``CONE(ra, dec, radius_deg)``), at most
  ``export.max_rows`` rows, written by astropy with DR3 units (``gaialake.io.queryfile``).

An existing ``--out`` is refused unless ``--overwrite`` (which replaces a HATS catalog only,
never another directory). Refusals exit with status 2 and one line on stderr.
"""
from __future__ import annotations

import argparse
import sys

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.hatsexport import exportable_tables, export_hats
from gaialake.io.queryfile import FORMATS, collect_rows, write_query_file
from gaialake.io.spark import get_spark
from gaialake.io.sqlquery import read_only_query
from gaialake.log import get_logger

log = get_logger("export")

EXAMPLES = """examples:
  gaialake export hats --table gaia_source --out gaia_hats
  gaialake export query "SELECT * FROM gaialake.gaia_source WHERE CONE(150, 30, 0.5)" \\
      --format fits --out cone.fits"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: ``hats`` (``--table``) or ``query`` (the SQL, ``--format``),
    ``--out`` and ``--overwrite``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EXAMPLES
    parser.add_argument("command", choices=["hats", "query"],
                        help="hats: a table as a HATS catalog; query: a query's rows as a file")
    parser.add_argument("query", nargs="?", help="query: the SQL (tables are gaialake.<table>)")
    parser.add_argument("--table", choices=exportable_tables(), help="hats: the table")
    parser.add_argument("--format", choices=list(FORMATS), help="query: the file format")
    parser.add_argument("--out", required=True,
                        help="hats: the catalog directory; query: the file (paths or URLs)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing file, or HATS catalog directory, at --out")


def _usage_error(args: argparse.Namespace) -> str | None:
    """What the command lacks (None: nothing)."""
    if args.command == "hats" and (args.table is None or args.query is not None):
        return "needs --table <table> and no query"
    if args.command == "query" and (args.query is None or args.format is None):
        return "needs the SQL and --format " + "|".join(FORMATS)
    return None


def main(conf: Conf, args: argparse.Namespace) -> int:
    """Run ``hats`` or ``query``; returns the exit status (2: refused, one line on stderr)."""
    name = f"gaialake export {args.command}"
    problem = _usage_error(args)
    if problem:
        sys.stderr.write(f"{name}: {problem}\n")
        return 2
    spark = get_spark(conf)
    try:
        if args.command == "hats":
            export_hats(spark, conf, args.table, args.out, overwrite=args.overwrite)
            return 0
        query = read_only_query(spark, conf, args.query, name)
        rows = collect_rows(spark.sql(query), int(conf.get("export.max_rows")))
        write_query_file(rows, args.out, args.format, overwrite=args.overwrite)
    except (FileExistsError, FileNotFoundError, NotImplementedError, ValueError) as err:
        sys.stderr.write(f"{name}: {err}\n")
        return 2
    log.info("export query: %d rows to %s (%s)", rows.num_rows, args.out, args.format)
    return 0


if __name__ == "__main__":
    sys.exit(job_main("export"))

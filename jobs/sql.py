"""``gaialake sql "<query>"``: run SQL over the gaialake catalog and print the result.

Read-only unless ``--write``: a statement that changes tables or the catalog (DELETE, DROP,
CREATE, INSERT, UPDATE, MERGE, ALTER, TRUNCATE, RESTORE, VACUUM, OPTIMIZE, ...) is refused with
exit status 2 before it runs (:func:`write_operation`, from Spark's own parse of the statement).
Tables are ``gaialake.<table>``. ``CONE(ra, dec, radius_deg)`` in a WHERE clause is a cone
search that reads only the HEALPix partitions it overlaps (``gaialake.astro.cone``). Works while
another job holds the local metastore (the session then registers the warehouse's Delta tables
itself; see ``gaialake.io.spark``).
"""
from __future__ import annotations

import argparse
import re
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
    parser.add_argument("--write", action="store_true",
                        help="allow statements that change tables or the catalog (DELETE, DROP, "
                             "CREATE, INSERT, UPDATE, MERGE, ALTER, TRUNCATE, ...)")


#: Commands (Spark plan nodes) that only read: SHOW ..., DESCRIBE ... (also Delta's HISTORY and
#: DETAIL), EXPLAIN, USE, SET (session settings).
READ_ONLY_COMMANDS = re.compile(r"^(Show\w*|Describe\w*|Explain\w*|SetCatalogAndNamespace|"
                                r"SetNamespaceCommand|SetCommand|ResetCommand)$")
#: Plan nodes that write whatever their base class (parsed statements are not all Commands).
WRITE_NODES = re.compile(r"Insert|Delete|Drop|Create|Update|Merge|Alter|Truncate|Replace|Restore|"
                         r"Vacuum|Optimize|Write|Append|Overwrite|Rename|Properties|Repair|Recover|"
                         r"Refresh|Cache|Clone|Convert|Reorg|Comment|Grant|Revoke|Load")
#: The leading keywords of read-only statements (the check when Spark's parser is unavailable).
READ_ONLY_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE",
                      "FROM", "USE")


def write_operation(spark, query: str) -> str | None:
    """The name of the first plan node of ``query`` that changes tables or the catalog (e.g.
    ``DeleteFromTable``), or None for a read-only statement. Parsed by the session's own parser
    (Delta's statements included); without one, a statement not starting with a read-only
    keyword, or naming a write keyword anywhere, counts as a write. A statement that does not
    parse fails with Spark's message (line and position)."""
    try:
        parser = spark._jsparkSession.sessionState().sqlParser()
        command = spark._jvm.java.lang.Class.forName(
            "org.apache.spark.sql.catalyst.plans.logical.Command")
    except Exception:  # no JVM session (Spark Connect): the keyword check
        text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S).upper()
        words = text.split()
        first = words[0].lstrip("(") if words else ""
        written = re.search(r"\b(INSERT|DELETE|DROP|CREATE|UPDATE|MERGE|ALTER|TRUNCATE|REPLACE|"
                            r"RESTORE|VACUUM|OPTIMIZE)\b", text)
        if first in READ_ONLY_KEYWORDS and not written:
            return None
        return written[1] if written else (first or "empty statement")
    from py4j.protocol import Py4JJavaError

    try:
        plan = parser.parsePlan(query)
    except Py4JJavaError as err:
        message = str(err.java_exception.getMessage()).strip()
        raise ValueError(f"gaialake sql: the query does not parse: {message}") from None
    stack = [plan]
    while stack:
        node = stack.pop()
        name = str(node.getClass().getSimpleName()).rstrip("$")
        if READ_ONLY_COMMANDS.match(name):
            continue
        if WRITE_NODES.search(name) or command.isInstance(node):
            return name
        children = node.children()
        stack.extend(children.apply(i) for i in range(children.size()))
    return None


def main(conf: Conf, args: argparse.Namespace) -> int:
    """Run the query (``CONE(...)`` expanded) and print at most ``--limit`` rows; returns the
    exit status."""
    spark = get_spark(conf)
    spark.sql(f"USE {conf.get('catalog.database')}")
    query = expand_cones(args.query, int(conf.get("catalog.partition_order")))
    if not getattr(args, "write", False):
        operation = write_operation(spark, query)
        if operation is not None:
            sys.stderr.write(
                f"gaialake sql: refused: the statement changes tables or the catalog "
                f"({operation}); gaialake sql is read-only unless --write. A table changed by "
                f"mistake is restored from its Delta history: DESCRIBE HISTORY <table>, then "
                f"RESTORE TABLE <table> TO VERSION AS OF <n> (with --write)\n")
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

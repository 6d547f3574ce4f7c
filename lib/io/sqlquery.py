"""Read-only SQL over the gaialake catalog, shared by ``gaialake sql`` and ``gaialake export``.

:func:`read_only_query` is what both commands run first: ``USE <catalog.database>``, the
``CONE(ra, dec, radius_deg)`` cone searches expanded (``gaialake.astro.cone``), and the statement
refused (:class:`WriteRefusedError`) when Spark's own parse of it (:func:`write_operation`) finds a
plan node that changes tables or the catalog.
"""
from __future__ import annotations

import re

from gaialake.astro.cone import expand_cones
from gaialake.conf import Conf

__all__ = ["READ_ONLY_COMMANDS", "WRITE_NODES", "READ_ONLY_KEYWORDS", "WriteRefusedError",
           "write_operation", "read_only_query"]

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


class WriteRefusedError(ValueError):
    """A statement that changes tables or the catalog where only reading is allowed; the message
    says what it would change and how a mistaken change is undone."""


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
        raise ValueError(f"the query does not parse: {message}") from None
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


def read_only_query(spark, conf: Conf, query: str, command: str, allow_write: bool = False,
                    write_flag: str | None = None) -> str:
    """``query`` ready to run in ``spark`` (``USE <catalog.database>`` done, ``CONE(...)``
    expanded at ``catalog.partition_order``); a statement that writes fails with
    :class:`WriteRefusedError` (its message names ``command``, e.g. ``gaialake sql``) unless
    ``allow_write``; ``write_flag``: the command's option that allows writes, if it has one."""
    spark.sql(f"USE {conf.get('catalog.database')}")
    query = expand_cones(query, int(conf.get("catalog.partition_order")))
    if not allow_write:
        operation = write_operation(spark, query)
        if operation is not None:
            raise WriteRefusedError(
                f"refused: the statement changes tables or the catalog ({operation}); "
                f"{command} is read-only{f' unless {write_flag}' if write_flag else ''}."
                f" A table changed by mistake is restored from its Delta history: DESCRIBE "
                f"HISTORY <table>, then RESTORE TABLE <table> TO VERSION AS OF <n> (with "
                f"gaialake sql --write)")
    return query

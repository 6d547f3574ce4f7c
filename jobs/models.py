"""``gaialake models list`` and ``gaialake models promote NAME VERSION``: the MLflow registry.

``promote`` points the ``champion`` alias (what scoring jobs load) at a version.
"""
from __future__ import annotations

import argparse
import sys

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.tracking import ALIAS, list_models, promote

__all__ = ["add_arguments", "main", "list_models", "promote"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's arguments: ``list`` or ``promote NAME VERSION [--alias A]``."""
    parser.add_argument("action", choices=["list", "promote"])
    parser.add_argument("name", nargs="?", help="registered model, e.g. gaialake-cathode")
    parser.add_argument("version", nargs="?", help="version to promote")
    parser.add_argument("--alias", default=ALIAS)


def main(conf: Conf, args: argparse.Namespace) -> int:
    """Print the registered versions, or move an alias; returns the exit status."""
    if args.action == "list":
        rows = list_models(conf)
        if not rows:
            print("no registered models (run the pipeline first)")
        for r in rows:
            print(f"{r['name']:24s} v{r['version']:<4d} {r['aliases']:12s} run {r['run_id']}")
        return 0
    if not (args.name and args.version):
        print("usage: gaialake models promote NAME VERSION", file=sys.stderr)
        return 2
    promote(conf, args.name, args.version, args.alias)
    print(f"{args.name} v{args.version} is now @{args.alias}")
    return 0


if __name__ == "__main__":
    sys.exit(job_main("models"))

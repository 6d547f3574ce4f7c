"""``gaialake models list`` and ``gaialake models promote NAME VERSION``: the MLflow registry.

``promote`` points the ``champion`` alias (what scoring jobs load) at a version.
"""
from __future__ import annotations

import argparse
import sys

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.tracking import ALIAS, configure


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "promote"])
    parser.add_argument("name", nargs="?", help="registered model, e.g. gaialake-cathode")
    parser.add_argument("version", nargs="?", help="version to promote")
    parser.add_argument("--alias", default=ALIAS)


def list_models(conf: Conf) -> list[dict]:
    """Every registered version: name, version, aliases, run id, creation time."""
    from mlflow import MlflowClient

    configure(conf)
    client = MlflowClient()
    rows = []
    for model in client.search_registered_models():
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(str(version), []).append(alias)
        for v in client.search_model_versions(f"name = '{model.name}'"):
            rows.append({"name": model.name, "version": int(v.version),
                         "aliases": ",".join(sorted(by_version.get(str(v.version), []))),
                         "run_id": v.run_id, "created": v.creation_timestamp})
    return sorted(rows, key=lambda r: (r["name"], r["version"]))


def promote(conf: Conf, name: str, version: str, alias: str = ALIAS) -> None:
    from mlflow import MlflowClient

    configure(conf)
    client = MlflowClient()
    client.get_model_version(name, str(version))  # raises with a clear message if absent
    client.set_registered_model_alias(name, alias, str(version))


def main(conf: Conf, args: argparse.Namespace) -> int:
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

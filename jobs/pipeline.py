"""``spark-submit jobs/pipeline.py [--from STAGE] [--to STAGE] [--conf FILE] [--set k=v ...]``.

The whole chain (``gaialake pipeline``) in one Spark application: the stages share the driver
and its executors, so a cluster starts them once. Same arguments as ``gaialake pipeline``.
"""
from __future__ import annotations

import sys

from gaialake.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main(["pipeline", *sys.argv[1:]]))

"""Progress logging: one line per stage start/end with counts, rates and seconds."""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Iterator

__all__ = ["get_logger", "stage"]

_FORMAT = "%(asctime)s %(levelname)s gaialake.%(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    """The logger ``gaialake.<name>``; the first call sets up one stderr handler with
    times."""
    logger = logging.getLogger(f"gaialake.{name}")
    root = logging.getLogger("gaialake")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                               "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logger


class _Stage:
    def __init__(self) -> None:
        self.count: int | None = None
        self.extra: str = ""


@contextmanager
def stage(logger: logging.Logger, name: str) -> Iterator[_Stage]:
    """Log ``name`` start and end; set ``.count`` (rows) and ``.extra`` inside the block."""
    info = _Stage()
    logger.info("%s: start", name)
    t0 = time.perf_counter()
    yield info
    dt = time.perf_counter() - t0
    rate = f", {info.count / dt:,.0f} rows/s" if info.count and dt > 0 else ""
    count = f" {info.count:,} rows" if info.count is not None else ""
    logger.info("%s: done%s in %.1f s%s%s", name, count, dt, rate,
                f" ({info.extra})" if info.extra else "")

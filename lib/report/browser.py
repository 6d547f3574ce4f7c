"""Headless Chromium: render a local page and read back its DOM or a screenshot."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["chromium", "dump_dom", "screenshot"]

_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--allow-file-access-from-files", "--virtual-time-budget=5000"]


def chromium() -> str:
    """The Chromium executable on PATH; fails naming the package to install."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium on PATH: install Debian's `chromium` package "
                            "(apt-get install -y chromium); .ci/run does this")


def _run(args: list[str]) -> str:
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run([chromium(), *_FLAGS, f"--user-data-dir={profile}", *args],
                             capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"chromium failed ({out.returncode}): {out.stderr[-2000:]}")
    return out.stdout


def dump_dom(page: Path) -> str:
    """The page's DOM after load (scripts run) as HTML."""
    return _run(["--dump-dom", Path(page).resolve().as_uri()])


def screenshot(page: Path, png: Path, size: str = "1280,2400") -> Path:
    """Render ``page`` headless into ``png`` at ``size`` ("width,height" in pixels);
    returns ``png``."""
    _run([f"--screenshot={Path(png).resolve()}", f"--window-size={size}", Path(page).resolve().as_uri()])
    return png

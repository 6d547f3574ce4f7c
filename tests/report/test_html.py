"""The HTML report opens in headless Chromium and every image renders."""
from __future__ import annotations

import re

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from gaialake.report.browser import dump_dom, screenshot
from gaialake.report.html import Section, render_report


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    plt.figure(figsize=(3, 2))
    plt.plot([0, 1], [0, 1])
    plt.savefig(path)
    plt.close("all")
    return path


def test_report_renders_its_images_in_chromium(tmp_path):
    root = tmp_path / "report"
    figs = [_png(root / "figures" / "sky" / "counts.png"), _png(root / "figures" / "streams" / "c1.png")]
    sections = [Section("Synthetic sky", figures=figs[:1]),
                Section("Stellar streams", tables=[("AUC", pd.DataFrame({"method": ["cathode"], "auc": [0.97]}))],
                        figures=figs[1:]),
                Section("Dark-matter density")]
    index = render_report(sections, root)
    dom = dump_dom(index)
    total = int(re.search(r'data-images="(\d+)"', dom).group(1))
    rendered = int(re.search(r'data-images-rendered="(\d+)"', dom).group(1))
    assert total == 2 and rendered == 2
    assert "No output yet" in dom and "cathode" in dom
    png = screenshot(index, tmp_path / "shot.png")
    assert png.stat().st_size > 5000


def test_a_missing_image_is_detected(tmp_path):
    root = tmp_path / "report"
    index = render_report([Section("S", figures=[root / "figures" / "gone.png"])], root)
    dom = dump_dom(index)
    assert re.search(r'data-images-rendered="0"', dom)

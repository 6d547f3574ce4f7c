"""The HTML report: sections of figures and tables, one self-contained folder (pure; no Spark)."""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

__all__ = ["Section", "render_report"]


@dataclass
class Section:
    """A titled part of the report: text, tables (DataFrames) and figures (paths to PNGs)."""
    title: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}
h1{border-bottom:2px solid #333} h2{margin-top:2em;border-bottom:1px solid #aaa}
figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{max-width:560px;border:1px solid #ddd} figcaption{font-size:.85em;color:#555}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right} th{background:#eee}
nav a{margin-right:1em}
"""

# After load, record how many images really rendered (a browser test reads these attributes).
_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-rendered', ok);
});
"""


def _anchor(title: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in title.lower())


def render_report(sections: Sequence[Section], out_dir: Path, title: str = "gaialake report",
                  subtitle: str = "") -> Path:
    """Write ``out_dir/index.html`` linking figures relative to ``out_dir``; returns its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>",
             f"<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p><nav>"]
    parts += [f"<a href='#{_anchor(s.title)}'>{html.escape(s.title)}</a>" for s in sections]
    parts.append("</nav>")
    for s in sections:
        parts.append(f"<h2 id='{_anchor(s.title)}'>{html.escape(s.title)}</h2>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        for caption, df in s.tables:
            parts.append(f"<h3>{html.escape(caption)}</h3>")
            parts.append(df.to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0))
        for fig in s.figures:
            rel = Path(fig).resolve().relative_to(out_dir.resolve()) if Path(fig).resolve().is_relative_to(
                out_dir.resolve()) else Path(fig).resolve()
            parts.append(f"<figure><img src='{html.escape(str(rel))}' alt='{html.escape(Path(fig).stem)}'>"
                         f"<figcaption>{html.escape(Path(fig).stem.replace('_', ' '))}</figcaption></figure>")
        if not (s.text or s.tables or s.figures):
            parts.append("<p><em>No output yet: run the stage that makes it.</em></p>")
    parts.append("</body></html>")
    index = out_dir / "index.html"
    index.write_text("\n".join(parts))
    return index

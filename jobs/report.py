"""``gaialake report``: one HTML page over every output (``<paths.report>/index.html``).

Sections: the catalog (sky map of counts, ingest summary), the synthetic sky, stellar streams
(ROC curves of the anomaly scores against the injected streams, candidates), accreted stars,
dark-matter density and upsampled mocks. Each shows the tables that exist and the figures the
jobs wrote under ``<paths.report>/figures/<section>``; what has not run yet says so.
Only small aggregates reach the driver (counts per pixel, histograms of scores).
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from gaialake.cli import job_main
from gaialake.conf import Conf
from gaialake.io.spark import get_spark
from gaialake.log import get_logger
from gaialake.report.html import render_report
from gaialake.report.sections import build_sections

log = get_logger("report")


def run(conf: Conf) -> dict:
    """Write ``<paths.report>/index.html``; returns its path and the number of figures."""
    spark = get_spark(conf)
    root = Path(conf.path("paths.report"))
    sections = build_sections(spark, conf, root)
    index = render_report(sections, root, subtitle=f"generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC "
                                                   f"from {conf.path('paths.warehouse')}")
    log.info("report written: %s", index)
    return {"report": str(index), "figures": sum(len(s.figures) for s in sections)}


if __name__ == "__main__":
    sys.exit(job_main("report"))

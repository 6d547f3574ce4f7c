"""The report's sections from the warehouse's tables and the figures the jobs wrote.

Sections: the catalog (sky map of counts, ingest summary), the synthetic sky, stellar streams
(ROC curves of the anomaly scores against the injected streams, candidates), accreted stars,
dark-matter density and upsampled mocks. Each shows the tables that exist and the figures under
``<paths.report>/figures/<section>``. Only small aggregates reach the driver (counts per pixel,
histograms of scores).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from gaialake import tables
from gaialake.astro.healpix import MAX_ORDER
from gaialake.conf import Conf
from gaialake.io.delta import read_table, table_exists
from gaialake.log import get_logger
from gaialake.report.html import Section
from gaialake.tables import TableSpec

__all__ = ["build_sections", "sky_map", "roc_figure", "SKY_ORDER"]

log = get_logger("report")
#: HEALPix order of the sky map of counts (order 6: 49,152 pixels of 0.84 deg^2).
SKY_ORDER = 6


def _has(spark, conf: Conf, table: TableSpec) -> bool:
    """Whether ``table`` exists in the warehouse."""
    return table_exists(spark, conf.table_path(table.name))


def _figures(root: Path, name: str) -> list[Path]:
    """The PNGs a job wrote under ``<root>/figures/<name>``."""
    return sorted((root / "figures" / name).glob("*.png"))


def sky_map(spark, conf: Conf, out: Path) -> Path:
    """Mollweide map of star counts per order-6 pixel (aggregated on executors)."""
    import healpy as hp
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pyspark.sql import functions as F

    counts = (read_table(spark, conf, tables.GAIA_SOURCE)
              .groupBy(F.shiftright("hpx29", 2 * (MAX_ORDER - SKY_ORDER)).alias("pix")).count().toPandas())
    m = np.full(hp.nside2npix(1 << SKY_ORDER), hp.UNSEEN)
    m[counts.pix.to_numpy()] = np.log10(counts["count"].to_numpy())
    title = f"{tables.GAIA_SOURCE.name}: log10 stars per order-{SKY_ORDER} pixel"
    hp.mollview(m, nest=True, coord=["C", "G"], title=title, unit="log10 N", cmap="viridis")
    hp.graticule(dpar=30, dmer=60, alpha=0.3)
    path = out / "sky_counts.png"
    plt.savefig(path, dpi=90)
    plt.close("all")
    return path


def roc_figure(spark, conf: Conf, out: Path) -> tuple[Path | None, pd.DataFrame]:
    """ROC of each score method, stream members vs the rest, from 400 bins of scores: the
    figure (None when no method has both) and each method's members, others and AUC."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from pyspark.sql import functions as F

    scores = read_table(spark, conf, tables.ANOMALY_SCORES).where(F.col("retraining") == 0)
    truth = read_table(spark, conf, tables.TRUTH_STREAMS).select("source_id", "stream").distinct()
    joined = scores.join(truth, "source_id", "left").withColumn(
        "member", F.col("stream").isNotNull())
    bounds = joined.groupBy("method").agg(F.min("score").alias("lo"), F.max("score").alias("hi"))
    binned = (joined.join(bounds, "method")
              .withColumn("bin", F.least(F.lit(399), F.floor(
                  (F.col("score") - F.col("lo")) / (F.col("hi") - F.col("lo") + 1e-12) * 400)))
              .groupBy("method", "bin", "member").count().toPandas())
    rows, fig = [], plt.figure(figsize=(5, 5))
    for method, g in binned.groupby("method"):
        pos = g[g.member].set_index("bin")["count"].reindex(range(400), fill_value=0).to_numpy()[::-1]
        neg = g[~g.member].set_index("bin")["count"].reindex(range(400), fill_value=0).to_numpy()[::-1]
        if pos.sum() == 0 or neg.sum() == 0:
            continue
        tpr = np.concatenate([[0], np.cumsum(pos) / pos.sum()])
        fpr = np.concatenate([[0], np.cumsum(neg) / neg.sum()])
        auc = float(np.trapz(tpr, fpr))
        rows.append({"method": method, "members": int(pos.sum()), "others": int(neg.sum()),
                     "auc_binned": auc})
        plt.plot(fpr, tpr, label=f"{method} (AUC {auc:.3f})")
    if not rows:
        plt.close(fig)
        return None, pd.DataFrame(rows)
    plt.plot([0, 1], [0, 1], "k:", lw=0.8)
    plt.xlabel("false positive rate (non-members)")
    plt.ylabel("true positive rate (injected stream members)")
    plt.legend(loc="lower right")
    plt.title("anomaly score: members vs background")
    path = out / "roc_anomaly.png"
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path, pd.DataFrame(rows)


def _summary(spark, conf: Conf, section: Section, table: TableSpec, caption: str,
             query: str) -> None:
    """Add ``query`` (over the table as ``{t}``; 20 rows at most) to ``section`` if the table exists."""
    if _has(spark, conf, table):
        view = f"_report_{table.name}"
        read_table(spark, conf, table).createOrReplaceTempView(view)
        section.tables.append((caption, spark.sql(query.format(t=view)).limit(20).toPandas()))


def _stream_search_tables(conf: Conf) -> list[tuple[str, pd.DataFrame]]:
    """find_streams' summary.json: the false-positive threshold from the stream-free sky and the
    recovery of each injected stream."""
    path = Path(conf.report_path("find_streams.plots_dir")) / "summary.json"
    if not path.exists():
        return []
    summary = json.loads(path.read_text())
    out = []
    if summary.get("false_positive"):
        fp = pd.DataFrame(summary["false_positive"]).T.rename_axis("method").reset_index()
        out.append(("False-positive threshold from the stream-free sky (gaialake null_sky)", fp))
    if summary.get("recovery"):
        out.append(("Injected streams recovered", pd.DataFrame(summary["recovery"])))
    return out


def build_sections(spark, conf: Conf, root: Path) -> list[Section]:
    """The report's sections over the tables that exist; figures of its own go to
    ``<root>/figures/report``."""
    figs = root / "figures" / "report"
    figs.mkdir(parents=True, exist_ok=True)

    cat = Section("Catalog")
    if _has(spark, conf, tables.GAIA_SOURCE):
        cat.figures.append(sky_map(spark, conf, figs))
        _summary(spark, conf, cat, tables.INGEST_LOG, "Ingest",
                 "SELECT status, count(*) AS files, sum(rows_read) AS rows_read, sum(rows_kept) AS "
                 "rows_kept, sum(rows_quarantined) AS rows_quarantined FROM {t} GROUP BY status")
        _summary(spark, conf, cat, tables.GAIA_SOURCE_QUARANTINE, "Quarantine reasons",
                 "SELECT split(reason, ':')[0] AS reason, count(*) AS n FROM {t} GROUP BY 1 "
                 "ORDER BY n DESC")

    streams = Section("Stellar streams")
    if _has(spark, conf, tables.ANOMALY_SCORES) and _has(spark, conf, tables.TRUTH_STREAMS):
        roc, table = roc_figure(spark, conf, figs)
        if roc is not None:
            streams.figures.append(roc)
            streams.tables.append(("Anomaly score vs injected streams", table))
    _summary(spark, conf, streams, tables.STREAM_CANDIDATES, "Top stream candidates",
             "SELECT * EXCEPT (run_id, patch_ids) FROM {t} ORDER BY significance DESC")
    streams.tables += _stream_search_tables(conf)
    streams.figures += _figures(root, "streams") + _figures(root, "anomaly")

    acc = Section("Accreted stars", figures=_figures(root, "accreted"))
    _summary(spark, conf, acc, tables.ACCRETED_CATALOG, "Accreted catalog",
             "SELECT count(*) AS stars, avg(p_accreted) AS mean_p, "
             "sum(CASE WHEN p_accreted > 0.5 THEN 1 ELSE 0 END) AS p_gt_half FROM {t}")

    dens = Section("Dark-matter density", figures=_figures(root, "density"))
    _summary(spark, conf, dens, tables.DENSITY_GRID, "Density grid",
             "SELECT count(*) AS points, avg(rho) AS mean_rho, avg(rho_err) AS mean_rho_err FROM {t}")

    up = Section("Upsampled mocks (GalaxyFlow)", figures=_figures(root, "upsample"))
    _summary(spark, conf, up, tables.UPSAMPLE_AUC,
             "3-sample classifier test (seed: 0.952 / 0.950 / 0.508)", "SELECT * FROM {t}")

    sections = [cat, Section("Synthetic sky", figures=_figures(root, "sky")), streams, acc, dens, up]
    log.info("report sections: %s", ", ".join(f"{s.title} ({len(s.figures)} fig)" for s in sections))
    return sections

"""Score methods side by side at DR3 density (``gaialake bench --methods``; issue 18 4(b), 4(c)).

Run after ``make bench-streams``, on its skies: in each patch of the stream sky, the signal
region holding the most of the stream's fiducial members (truth only picks which regions are
measured, after the search) is scored again by every variant of ``bench.methods.variants`` (a
method, or ``method:kind`` with a classifier kind of ``streams.cathode.classifier``), in memory
by :func:`gaialake.streams.search.score_group` with the bench conf's settings, and so is the
same (patch, region) of stream-free realization 0 (its source ids are its own: no member
labels there). Per variant and region: the members' AUC against the field, members among the
top ``find_streams.top_n``, the best line's significance on each sky (find_streams' line finder
on that region alone) and the seconds of both scorings.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from gaialake import tables
from gaialake.conf import Conf
from gaialake.log import get_logger

__all__ = ["parse_variant", "measured_regions", "score_variant", "bench_methods"]

log = get_logger("bench")


def parse_variant(variant: str) -> tuple[str, str | None]:
    """``"cwola"`` -> ("cwola", None); ``"cwola:nn_ensemble"`` -> ("cwola", "nn_ensemble");
    unknown methods or kinds raise naming ``bench.methods.variants``."""
    from gaialake.streams.cathode import CLASSIFIER_KINDS
    from gaialake.streams.search import METHODS

    method, _, kind = str(variant).partition(":")
    if method not in METHODS or (kind and kind not in CLASSIFIER_KINDS):
        raise ValueError(f"conf bench.methods.variants: {variant!r} is not a method of "
                         f"{METHODS}, optionally ':' and a classifier kind of {CLASSIFIER_KINDS}")
    return method, kind or None


def measured_regions(stars: pd.DataFrame, member: np.ndarray, regions: Sequence,
                     per_patch: int = 1) -> list[tuple[int, object, int]]:
    """(patch_id, region, fiducial members) of the ``per_patch`` signal regions holding the most
    fiducial members of each patch (none where a patch holds no member). ``stars``: patch_stars
    rows; ``member``: their stream labels."""
    out = []
    fid = stars["fiducial"].to_numpy(bool) & np.asarray(member, bool)
    for patch_id in sorted(stars["patch_id"].unique()):
        mine = fid & (stars["patch_id"].to_numpy() == patch_id)
        counts = [(int(sr.contains(stars[sr.axis].to_numpy()[mine]).sum()), i)
                  for i, sr in enumerate(regions)]
        best = sorted((c for c in counts if c[0] > 0), key=lambda c: (-c[0], c[1]))[:per_patch]
        out += [(int(patch_id), regions[i], n) for n, i in best]
    return out


def score_variant(stars: pd.DataFrame, sr, settings, member_ids: set, top_n: int,
                  linefind, seed: int) -> dict:
    """Score one (patch, region) group with ``settings`` (one method) and measure it: member
    AUC (NaN without members), members in the top ``top_n``, the best line's significance and
    member fraction, scored stars and seconds. ``stars``: the patch's rows in the settings'
    row range."""
    from sklearn.metrics import roc_auc_score

    from gaialake.streams.linefind import find_protoclusters
    from gaialake.streams.search import score_group

    t0 = time.perf_counter()
    scores = score_group(stars, sr, settings, seed=seed).scores
    seconds = time.perf_counter() - t0
    member = scores["source_id"].isin(member_ids).to_numpy()
    s = scores["score"].to_numpy(np.float64)
    auc = float(roc_auc_score(member, s)) if 0 < member.sum() < len(member) else float("nan")
    pos = stars.set_index("source_id").loc[scores["source_id"]]
    lines = find_protoclusters(pos["phi"], pos["lam"], pos["pm_phi"], pos["pm_lam"], s,
                               scores["source_id"].to_numpy(np.int64), linefind)
    best = max(lines, key=lambda p: p.significance, default=None)
    return {"scored": int(len(s)), "members": int(member.sum()), "auc": auc,
            "top_members": int(scores.loc[np.argsort(-s, kind="stable")[:top_n], "source_id"]
                               .isin(member_ids).sum()),
            "best_z": float(best.significance) if best else 0.0,
            "best_member_frac": (float(np.isin(best.source_id, list(member_ids)).mean())
                                 if best else float("nan")),
            "seconds": seconds}


def _patch_stars(warehouse: Path, patch_ids: Sequence[int] | None = None) -> pd.DataFrame:
    from gaialake.io.deltaread import read_delta

    df = read_delta(str(warehouse / tables.PATCH_STARS.name)).to_pandas()
    return df if patch_ids is None else df[df["patch_id"].isin(patch_ids)]


def bench_methods(conf: Conf, stream_wh: Path, null_wh: Path, stream: str = "gd1") -> dict:
    """Measure every variant on the regions of :func:`measured_regions` of the stream sky
    (warehouse ``stream_wh``) and the same regions of the stream-free sky (``null_wh``), with
    the settings of ``conf`` (the bench-streams conf). Returns rows and settings."""
    from dataclasses import replace

    from gaialake.io.deltaread import read_delta
    from gaialake.streams.cathode import classifier_settings
    from gaialake.streams.linefind import LineFindSettings
    from gaialake.streams.regions import signal_regions_from_conf
    from gaialake.streams.search import SearchSettings

    variants = [(str(v), *parse_variant(v)) for v in conf.get("bench.methods.variants")]
    per_patch = int(conf.get("bench.methods.per_patch"))
    if per_patch < 1:
        raise ValueError(f"conf bench.methods.per_patch: {per_patch} (must be >= 1)")
    for wh in (stream_wh, null_wh):
        if not (wh / tables.PATCH_STARS.name / "_delta_log").exists():
            raise FileNotFoundError(f"{wh}: no {tables.PATCH_STARS.name} table; run make "
                                    f"bench-streams first")
    truth = read_delta(str(stream_wh / tables.TRUTH_STREAMS.name)).to_pandas()
    member_ids = set(truth.loc[truth["stream"] == stream, "source_id"].astype(np.int64))
    skies = {"stream": _patch_stars(stream_wh)}
    regions = measured_regions(skies["stream"], skies["stream"]["source_id"].isin(member_ids),
                               signal_regions_from_conf(conf), per_patch)
    skies["null"] = _patch_stars(null_wh, [p for p, _, _ in regions])
    base = SearchSettings.from_conf(conf)
    lo, hi = base.row_range()
    linefind = LineFindSettings.from_conf(conf)
    seed = int(conf.seed_for("bench", "methods") % 2**31)
    rows = []
    for variant, method, kind in variants:
        clf = base.classifier if kind is None else classifier_settings(
            {**dict(conf.get("streams.cathode.classifier")), "kind": kind})
        settings = replace(base, methods=(method,), classifier=clf)
        for patch_id, sr, n_members in regions:
            row = {"variant": variant, "patch_id": patch_id, "axis": sr.axis,
                   "sr_lo": sr.lo, "sr_hi": sr.hi, "fiducial_members": n_members}
            for sky, stars in skies.items():
                mine = stars[stars["patch_id"] == patch_id]
                m = mine[sr.axis].to_numpy()
                got = score_variant(mine[(m >= lo) & (m < hi)], sr, settings,
                                    member_ids if sky == "stream" else set(), linefind.top_n,
                                    linefind, seed)
                row.update({f"{sky}_{k}": v for k, v in got.items()})
            log.info("bench methods: %s patch %d %s [%g, %g): AUC %.3f, top %d members %d, "
                     "best z %.1f (stream-free %.1f), %.0f + %.0f s", variant, patch_id,
                     sr.axis, sr.lo, sr.hi, row["stream_auc"], linefind.top_n,
                     row["stream_top_members"], row["stream_best_z"], row["null_best_z"],
                     row["stream_seconds"], row["null_seconds"])
            rows.append(row)
    return {"rows": rows, "stream": stream, "top_n": linefind.top_n, "per_patch": per_patch,
            "classifier": dict(conf.get("streams.cathode.classifier")),
            "flow": dict(conf.get("streams.flow")), "train": dict(conf.get("streams.train")),
            "stream_warehouse": str(stream_wh), "null_warehouse": str(null_wh)}

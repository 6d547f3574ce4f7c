"""One stream-search group: a patch, a proper-motion axis and one signal region (SR).

:func:`score_group` is pure (pandas in, pandas out) and is what each Spark task runs: it maps
the features (:class:`gaialake.streams.regions.FeatureMap`), trains the control-region flow
P_CR(x|m) once, then scores the SR stars of the fiducial disc with each method in
``settings.methods``: ``cathode`` (:mod:`gaialake.streams.cathode`, the default), ``anode``
(:mod:`gaialake.streams.anode`) and ``ranode`` (:mod:`gaialake.streams.ranode`), which share
that CR flow, and ``cwola`` (:mod:`gaialake.streams.cwola`: SR against its sidebands, no flow;
a search of cwola alone trains none). It returns the scores, the weights of the flows (state
dicts) and classifiers, and metrics; it never writes anywhere. With ``streams.retrainings``
K > 1 every group is trained K times, each retraining with its own seed
(:func:`gaialake.streams.search_spark.group_seed`), for the retraining-consistency filter of
``find_streams``.

For a group larger than task memory, ``gaialake anomaly`` streams the rows through Petastorm
instead (:mod:`gaialake.streams.streaming`, ``streams.max_group_rows``), with the seeds of
:func:`group_seeds` and the split of :func:`hash_unit` (a seeded hash of ``source_id`` to
[0, 1) that splits rows into validation, training and folds without a shuffle of the whole
group).
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from gaialake.conf import Conf
from gaialake.streams.regions import FeatureMap, SignalRegion, features
from gaialake.streams.anode import anode_log_ratio, fit_sr_flow
from gaialake.streams.cathode import ClassifierSettings, cathode_scores
from gaialake.streams.cwola import cwola_scores, sidebands
from gaialake.streams.ranode import (RanodeSettings, fit_ranode, ranode_log_ratio,
                                      ranode_record)
from gaialake.models.flows import build_flow, train_flow
from gaialake.models.train import TrainSettings

__all__ = ["SearchSettings", "GroupResult", "score_group", "METHODS", "FLOW_METHODS",
           "group_seeds", "hash_unit"]

#: The anomaly scores of the search (``streams.methods``).
METHODS = ("cathode", "anode", "ranode", "cwola")
#: The methods that need the control-region flow.
FLOW_METHODS = ("cathode", "anode", "ranode")


@dataclass(frozen=True)
class SearchSettings:
    """The ``streams`` conf section as one object (see conf/default.yaml)."""

    methods: tuple[str, ...] = METHODS
    flow: dict = field(default_factory=lambda: {"type": "maf", "transforms": 5, "hidden": 64})
    train: TrainSettings = TrainSettings()
    folds: int = 5
    oversample: int = 4
    classifier: dict = field(default_factory=dict)
    ranode: RanodeSettings = RanodeSettings()
    min_patch_stars: int = 2000
    min_sr_stars: int = 200
    fmap: FeatureMap = field(default_factory=FeatureMap)
    retrainings: int = 1
    sideband_masyr: float = 3.0
    pm_range: tuple[float, float] = (-15.0, 15.0)

    def row_range(self) -> tuple[float, float]:
        """The sliced proper motions (mas/yr) of a group's rows: ``pm_range``, widened by
        ``sideband_masyr`` on both sides when CWoLa is run, so that the SRs at the range's
        edges have both sidebands (the control region stays inside ``pm_range``)."""
        pad = self.sideband_masyr if "cwola" in self.methods else 0.0
        return self.pm_range[0] - pad, self.pm_range[1] + pad

    def in_range(self, m: np.ndarray) -> np.ndarray:
        """Whether each sliced proper motion ``m`` (mas/yr) is inside ``pm_range``."""
        return (m >= self.pm_range[0]) & (m < self.pm_range[1])

    @classmethod
    def from_conf(cls, conf: Conf) -> "SearchSettings":
        """The settings of ``conf``'s ``streams`` section; unknown methods, classifier kinds
        and keys of ``streams.cathode.classifier`` and ``streams.ranode`` are refused, and
        ``streams.retrainings`` below 1 and ``streams.cwola.sideband_masyr`` not above 0."""
        methods = tuple(conf.get("streams.methods"))
        bad = [m for m in methods if m not in METHODS]
        if bad or conf.get("streams.method") not in METHODS:
            unknown = bad or conf.get("streams.method")
            raise ValueError(f"streams.methods / streams.method: unknown {unknown}; "
                             f"use {METHODS}")
        retrainings = int(conf.get("streams.retrainings", 1))
        if retrainings < 1:
            raise ValueError(f"streams.retrainings must be >= 1, got {retrainings}")
        sideband = float(conf.get("streams.cwola.sideband_masyr"))
        if not sideband > 0:
            raise ValueError(f"streams.cwola.sideband_masyr must be > 0, got {sideband}")
        train = TrainSettings.from_dict(dict(conf.get("streams.train")))
        classifier = dict(conf.get("streams.cathode.classifier", {}) or {})
        ClassifierSettings.from_dict(classifier)
        return cls(methods=methods, flow=dict(conf.get("streams.flow")), train=train,
                   folds=int(conf.get("streams.cathode.folds")),
                   oversample=int(conf.get("streams.cathode.oversample")),
                   classifier=classifier,
                   ranode=RanodeSettings.from_dict(conf.get("streams.ranode", None), train),
                   min_patch_stars=int(conf.get("streams.min_patch_stars")),
                   min_sr_stars=int(conf.get("streams.min_sr_stars")),
                   fmap=FeatureMap.from_conf(conf), retrainings=retrainings,
                   sideband_masyr=sideband,
                   pm_range=tuple(float(v) for v in conf.get("streams.pm_range_masyr")))


@dataclass
class GroupResult:
    """Scores (source_id, method, score) of the fiducial SR stars, weights per role (``cr``,
    ``sr``: flow state dicts; ``classifiers``: the pickled k-fold CATHODE classifiers;
    ``sig``: R-ANODE's :class:`~gaialake.streams.ranode.SignalMixture` state, ``sig_config``
    its flow config and w bounds), the fitted feature map, metrics and loss curves, and the
    reason when the group was skipped (then ``scores`` is empty)."""

    scores: pd.DataFrame
    weights: dict = field(default_factory=dict)
    feature_map: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    skipped: str = ""


def _empty_scores() -> pd.DataFrame:
    return pd.DataFrame({"source_id": pd.Series([], dtype="int64"),
                         "method": pd.Series([], dtype="object"),
                         "score": pd.Series([], dtype="float64")})


def score_group(stars: pd.DataFrame, sr: SignalRegion, settings: SearchSettings, seed: int,
                device: torch.device | None = None) -> GroupResult:
    """Train and score one (patch, axis, SR) group.

    ``stars``: the patch's stars (columns of ``patch_stars``: source_id, phi, lam, pm_phi,
    pm_lam, g, bp_rp, fiducial) inside ``settings.row_range()`` on the SR's axis; the control
    region is the stars inside ``settings.pm_range`` and outside the SR, the sidebands may reach
    past it. A group with fewer than ``min_patch_stars`` stars in the pm range, or fewer than
    ``min_sr_stars`` in the SR, is skipped with the reason in ``skipped``.
    """
    x, m = features(stars, sr.axis)
    in_rng = settings.in_range(m)
    n = int(in_rng.sum())
    if n < settings.min_patch_stars:
        return GroupResult(_empty_scores(), skipped=f"{n} stars < min_patch_stars "
                                                    f"{settings.min_patch_stars}")
    in_sr = sr.contains(m)
    in_cr = in_rng & ~in_sr
    n_sr, n_cr = int(in_sr.sum()), int(in_cr.sum())
    if n_sr < settings.min_sr_stars:
        return GroupResult(_empty_scores(), skipped=f"{n_sr} SR stars < min_sr_stars "
                                                    f"{settings.min_sr_stars}")
    fmap = FeatureMap(disc_radius_deg=settings.fmap.disc_radius_deg,
                      bounds=dict(settings.fmap.bounds)).fit(x[in_rng], m[in_rng])
    z, c = fmap.transform(x, m)
    flow_config = {**settings.flow, "features": z.shape[1], "context": 1}
    seeds = group_seeds(seed)
    metrics = {"n_stars": n, "n_sr": n_sr, "n_cr": n_cr}
    weights, curves, cr_flow = {}, {}, None
    if any(method in FLOW_METHODS for method in settings.methods):
        cr_flow = build_flow(flow_config, seed=int(seeds[0]))
        cr_fit = train_flow(cr_flow, z[in_cr], c[in_cr], settings.train, int(seeds[0]), device)
        metrics.update({f"cr_{k}": v for k, v in cr_fit.metrics().items()})
        weights["cr"] = cr_fit.state_dict
        curves.update({"cr_train_loss": cr_fit.train_loss, "cr_val_loss": cr_fit.val_loss})

    fid = stars["fiducial"].to_numpy(bool)[in_sr]
    ids = stars["source_id"].to_numpy(np.int64)[in_sr][fid]
    z_sr, c_sr = z[in_sr], c[in_sr]
    parts = []
    if "cathode" in settings.methods:
        s, cm, classifiers = cathode_scores(z_sr, c_sr, cr_flow, seed=int(seeds[1]),
                                            n_folds=settings.folds,
                                            oversample=settings.oversample,
                                            classifier=settings.classifier, device=device)
        metrics.update(cm)
        weights["classifiers"] = pickle.dumps(classifiers)
        parts.append(pd.DataFrame({"source_id": ids, "method": "cathode", "score": s[fid]}))
    if "anode" in settings.methods:
        sr_flow, sr_fit = fit_sr_flow(z_sr, c_sr, flow_config, settings.train, int(seeds[2]),
                                      device)
        metrics.update({f"sr_{k}": v for k, v in sr_fit.metrics().items()})
        weights["sr"] = sr_fit.state_dict
        curves.update({"sr_train_loss": sr_fit.train_loss, "sr_val_loss": sr_fit.val_loss})
        parts.append(pd.DataFrame({"source_id": ids, "method": "anode",
                                   "score": anode_log_ratio(sr_flow, cr_flow, z_sr[fid],
                                                            c_sr[fid])}))
    if "ranode" in settings.methods:
        mixture, sig_fit = fit_ranode(z_sr, c_sr, cr_flow, settings.ranode, int(seeds[3]),
                                      device)
        for part, new in zip((metrics, weights, curves),
                             ranode_record(mixture, sig_fit, settings.ranode, z.shape[1])):
            part.update(new)
        parts.append(pd.DataFrame({"source_id": ids, "method": "ranode",
                                   "score": ranode_log_ratio(mixture, cr_flow, z_sr[fid],
                                                             c_sr[fid])}))
    if "cwola" in settings.methods:
        in_sb = sidebands(m, sr, settings.sideband_masyr)
        metrics["n_sb"] = int(in_sb.sum())
        if in_sb.sum() < settings.min_sr_stars:
            metrics["cwola_skipped"] = 1       # too few sideband stars: no CWoLa score here
        else:
            s, wm, classifiers = cwola_scores(z_sr, z[in_sb], seed=int(seeds[4]),
                                              n_folds=settings.folds,
                                              classifier=settings.classifier, device=device)
            metrics.update(wm)
            weights["cwola_classifiers"] = pickle.dumps(classifiers)
            parts.append(pd.DataFrame({"source_id": ids, "method": "cwola", "score": s[fid]}))
    metrics["n_scored"] = int(len(ids))
    scores = pd.concat(parts, ignore_index=True) if parts else _empty_scores()
    return GroupResult(scores, weights=weights, feature_map=fmap.to_dict(), metrics=metrics,
                       curves=curves)


def group_seeds(seed: int) -> np.ndarray:
    """The seeds of a group (CR flow, CATHODE, ANODE SR flow, R-ANODE signal flow, CWoLa), the
    same in both paths."""
    return np.random.default_rng(seed).integers(2**62, size=5)


def hash_unit(source_id: np.ndarray, seed: int) -> np.ndarray:
    """A seeded hash of int64 ``source_id`` to float64 in [0, 1) (splitmix64 finaliser).

    Stable across processes and partitions, so a row's split (validation, fold, sample) does
    not depend on where or in what order it is read.
    """
    with np.errstate(over="ignore"):
        z = np.asarray(source_id, np.int64).astype(np.uint64)
        z = z + np.uint64((int(seed) * 0x9E3779B97F4A7C15) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)

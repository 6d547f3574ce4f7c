"""The registered stream-search models: every group's flows (and CATHODE or CWoLa classifiers)
in one torch module, rebuilt from a JSON config (``gaialake-anode``, ``gaialake-cathode``,
``gaialake-ranode``, ``gaialake-cwola``), registered in MLflow as a pyfunc model
(:func:`gaialake.io.tracking.log_torch_model`).

Config::

    {"method": "cathode" | "anode" | "ranode" | "cwola", "flow": {flow config}, "groups": [
        {"key": "p12_pm_phi_1", "patch_id": 12, "pm_axis": "pm_phi", "sr_lo": -9.0,
         "sr_hi": -3.0, "feature_map": {...}, "classifier_bytes": 51234,
         "sig_config": {"flow": {...}, "w_bounds": [lo, hi]} or None}, ...]}

State: ``flows.<key>.cr`` (control-region flow), ``flows.<key>.sr`` (ANODE's SR flow),
``signals.<key>`` (R-ANODE's signal flow and w) and, for CATHODE and CWoLa, the buffer
``clf_<key>`` holding the pickled k-fold classifiers (uint8); a CWoLa model has no flows. A
group that did not train the method (R-ANODE in a streamed group, CWoLa without sideband stars)
is left out of that method's model.
:func:`search_model` builds both from the trained groups of a search.
:func:`score_stars` (the pyfunc's :func:`predict`) scores ``patch_stars`` rows with every group
whose patch and SR contain them: ANODE log R; R-ANODE log P_sig / P_bg; CATHODE and CWoLa the
classifiers' mean probability (on
stars a classifier was trained on this is not out-of-fold: the scores of ``anomaly_scores``
are; use this on new stars). :class:`ScoreSettings` is the ``score`` conf section.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from gaialake import tables
from gaialake.conf import Conf
from gaialake.models.flows import build_flow
from gaialake.streams.anode import anode_log_ratio
from gaialake.streams.ranode import build_signal_mixture, ranode_log_ratio
from gaialake.streams.regions import FeatureMap, SignalRegion, features
from gaialake.streams.search import METHODS

__all__ = ["SearchModel", "build_search_model", "predict", "score_stars", "group_key",
           "state_for_groups", "search_model", "ScoreSettings", "SCORE_COLUMNS", "MODES",
           "WEIGHT_OF", "CLASSIFIER_METHODS"]

#: Columns of the scores of :func:`score_stars` (those of ``anomaly_scores`` but run_id).
SCORE_COLUMNS = [c for c in tables.ANOMALY_SCORES.columns if c != "run_id"]
_SCORE_DTYPES = {"patch_id": "int64", "source_id": "int64", "pm_axis": "object",
                 "sr_lo": "float64", "sr_hi": "float64", "method": "object",
                 "retraining": "int32", "score": "float64"}
#: Scoring modes of ``score.mode``: ``new`` stars only, or ``all`` of the model's patches.
MODES = ("new", "all")
#: The weights (:class:`gaialake.streams.search.GroupResult`) each method's model is made of.
WEIGHT_OF = {"cathode": "classifiers", "anode": "sr", "ranode": "sig",
             "cwola": "cwola_classifiers"}
#: The methods whose score is the mean of k-fold classifiers.
CLASSIFIER_METHODS = ("cathode", "cwola")
#: The flows of each method's groups (others: the control-region flow alone).
_ROLES = {"anode": ("cr", "sr"), "cwola": ()}


def group_key(patch_id: int, pm_axis: str, sr_index: int) -> str:
    """The name of a group in a model's config and state (``p<patch>_<axis>_<sr index>``)."""
    return f"p{int(patch_id)}_{pm_axis}_{int(sr_index)}"


@dataclass(frozen=True)
class ScoreSettings:
    """The ``score`` conf section: ``method`` (one of the search's methods; ``score.method`` null:
    ``streams.method``), ``alias`` of the registered model, ``mode`` (one of :data:`MODES`),
    ``fiducial_only`` (score only the stars of the patches' fiducial discs)."""

    method: str
    alias: str = "champion"
    mode: str = "new"
    fiducial_only: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"score.method must be one of {METHODS}, got {self.method!r}")
        if self.mode not in MODES:
            raise ValueError(f"score.mode must be one of {MODES}, got {self.mode!r}")

    @classmethod
    def from_conf(cls, conf: Conf) -> "ScoreSettings":
        """The settings of ``conf``'s ``score`` section."""
        method = conf.get("score.method", None) or conf.get("streams.method")
        return cls(method=method, alias=str(conf.get("score.alias")),
                   mode=str(conf.get("score.mode")),
                   fiducial_only=bool(conf.get("score.fiducial_only")))

    @property
    def registered_name(self) -> str:
        """The registered model's name, ``gaialake-<method>``."""
        return f"gaialake-{self.method}"


class SearchModel(torch.nn.Module):
    """All groups of one search for one method (see the module docstring)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        self.method = config["method"]
        roles = _ROLES.get(self.method, ("cr",))
        flow_cfg = {**config["flow"], "features": 5, "context": 1}
        self.flows = torch.nn.ModuleDict({
            g["key"]: torch.nn.ModuleDict({r: build_flow(flow_cfg) for r in roles})
            for g in config["groups"]})
        self.signals = torch.nn.ModuleDict({
            g["key"]: build_signal_mixture(g["sig_config"]["flow"], g["sig_config"]["w_bounds"])
            for g in config["groups"]} if self.method == "ranode" else {})
        for g in config["groups"]:
            if self.method in CLASSIFIER_METHODS:
                self.register_buffer(f"clf_{g['key']}",
                                     torch.zeros(int(g["classifier_bytes"]), dtype=torch.uint8))

    def classifiers(self, key: str) -> list:
        """The k-fold CATHODE or CWoLa classifiers of the group ``key``."""
        return pickle.loads(getattr(self, f"clf_{key}").numpy().tobytes())

    def score_group(self, group: dict, stars: pd.DataFrame) -> np.ndarray:
        """Scores of ``stars`` (already in the group's patch and SR) with one group's models."""
        fmap = FeatureMap.from_dict(group["feature_map"])
        x, m = features(stars, group["pm_axis"])
        z, c = fmap.transform(x, m)
        flows = self.flows[group["key"]]
        if self.method == "anode":
            return anode_log_ratio(flows["sr"], flows["cr"], z, c)
        if self.method == "ranode":
            return ranode_log_ratio(self.signals[group["key"]], flows["cr"], z, c)
        return np.mean([clf.predict_proba(z)[:, 1] for clf in self.classifiers(group["key"])], 0)


def build_search_model(config: dict) -> SearchModel:
    """The builder named in the registered config."""
    return SearchModel(config)


def score_stars(module: SearchModel, stars: pd.DataFrame) -> pd.DataFrame:
    """Scores (:data:`SCORE_COLUMNS`) of ``patch_stars`` rows (patch_id, source_id, phi, lam
    (deg), pm_phi, pm_lam (mas/yr), g, bp_rp) by every group of ``module`` whose patch and
    signal region [sr_lo, sr_hi) (mas/yr on the group's pm axis) hold them.

    Pure (pandas in, pandas out): groups are looked up by patch_id, so a batch costs its rows
    times the groups of its own patches. ``retraining`` is 0: a registered model holds the
    groups of retraining 0 (``streams.retrainings``).
    """
    by_patch: dict[int, list[dict]] = {}
    for g in module.config["groups"]:
        by_patch.setdefault(int(g["patch_id"]), []).append(g)
    out = []
    for patch_id, sub in stars.groupby("patch_id", sort=True):
        for g in by_patch.get(int(patch_id), []):
            sr = SignalRegion(g["pm_axis"], 0, float(g["sr_lo"]), float(g["sr_hi"]))
            rows = sub[sr.contains(sub[g["pm_axis"]].to_numpy(np.float64))]
            if len(rows):
                out.append(pd.DataFrame({
                    "patch_id": np.int64(patch_id),
                    "source_id": rows["source_id"].to_numpy(np.int64),
                    "pm_axis": g["pm_axis"], "sr_lo": float(g["sr_lo"]),
                    "sr_hi": float(g["sr_hi"]), "method": module.method,
                    "retraining": np.int32(0),
                    "score": np.asarray(module.score_group(g, rows), np.float64)}))
    if not out:
        return pd.DataFrame({c: pd.Series([], dtype=_SCORE_DTYPES[c]) for c in SCORE_COLUMNS})
    return pd.concat(out, ignore_index=True)[SCORE_COLUMNS]


def predict(module: SearchModel, stars: pd.DataFrame) -> pd.DataFrame:
    """The registered pyfunc's ``predict``: :func:`score_stars`."""
    return score_stars(module, stars)


def state_for_groups(method: str, groups: list[dict], weights: dict[str, dict]) -> dict:
    """The SearchModel state dict from per-group weights (``weights[key]`` as in
    :class:`gaialake.streams.search.GroupResult`)."""
    state = {}
    roles = _ROLES.get(method, ("cr",))
    for g in groups:
        w = weights[g["key"]]
        for role in roles:
            for name, tensor in w[role].items():
                state[f"flows.{g['key']}.{role}.{name}"] = tensor
        if method == "ranode":
            for name, tensor in w["sig"].items():
                state[f"signals.{g['key']}.{name}"] = tensor
        if method in CLASSIFIER_METHODS:
            state[f"clf_{g['key']}"] = torch.frombuffer(bytearray(w[WEIGHT_OF[method]]),
                                                        dtype=torch.uint8).clone()
    return state


def search_model(method: str, flow: dict, trained: list[dict]) -> tuple[dict, dict]:
    """(config, state dict) of the :class:`SearchModel` of ``method`` over the ``trained``
    groups (model rows of a search: key, patch_id, pm_axis, sr_lo, sr_hi, feature_map,
    weights); ``flow``: the flow config of ``streams.flow``. Groups without the method's
    weights (:data:`WEIGHT_OF`) are left out."""
    trained = [g for g in trained if WEIGHT_OF[method] in g["weights"]]
    groups = [{"key": g["key"], "patch_id": g["patch_id"], "pm_axis": g["pm_axis"],
               "sr_lo": g["sr_lo"], "sr_hi": g["sr_hi"], "feature_map": g["feature_map"],
               "classifier_bytes": len(g["weights"].get(WEIGHT_OF[method], b""))
               if method in CLASSIFIER_METHODS else 0,
               "sig_config": g["weights"].get("sig_config")}
              for g in trained]
    state = state_for_groups(method, groups, {g["key"]: g["weights"] for g in trained})
    config = {"method": method, "flow": flow, "groups": groups,
              "predict": "gaialake.streams.scorer:predict"}
    return config, state

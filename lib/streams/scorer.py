"""The registered stream-search models: every group's flows (and CATHODE classifiers) in one
torch module, rebuilt from a JSON config (``gaialake-anode``, ``gaialake-cathode``; DESIGN §6).

Config::

    {"method": "cathode" | "anode", "flow": {flow config}, "groups": [
        {"key": "p12_pm_phi_1", "patch_id": 12, "pm_axis": "pm_phi", "sr_lo": -9.0,
         "sr_hi": -3.0, "feature_map": {...}, "classifier_bytes": 51234}, ...]}

State: ``flows.<key>.cr`` (control-region flow), ``flows.<key>.sr`` (ANODE's SR flow) and, for
CATHODE, the buffer ``clf_<key>`` holding the pickled k-fold classifiers (uint8).
:func:`predict` scores ``patch_stars`` rows with every group whose patch and SR contain them:
ANODE log R; CATHODE the classifiers' mean probability (on stars a classifier was trained on this
is not out-of-fold: the scores of ``anomaly_scores`` are; use this on new stars).
"""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import torch

from gaialake.streams.regions import FeatureMap, SignalRegion, features
from gaialake.streams.anode import anode_log_ratio
from gaialake.models.flows import build_flow

__all__ = ["SearchModel", "build_search_model", "predict", "group_key", "state_for_groups"]


def group_key(patch_id: int, pm_axis: str, sr_index: int) -> str:
    return f"p{int(patch_id)}_{pm_axis}_{int(sr_index)}"


class SearchModel(torch.nn.Module):
    """All groups of one search for one method (see the module docstring)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        self.method = config["method"]
        roles = ("cr", "sr") if self.method == "anode" else ("cr",)
        flow_cfg = {**config["flow"], "features": 5, "context": 1}
        self.flows = torch.nn.ModuleDict({
            g["key"]: torch.nn.ModuleDict({r: build_flow(flow_cfg) for r in roles})
            for g in config["groups"]})
        for g in config["groups"]:
            if self.method == "cathode":
                self.register_buffer(f"clf_{g['key']}",
                                     torch.zeros(int(g["classifier_bytes"]), dtype=torch.uint8))

    def classifiers(self, key: str) -> list:
        return pickle.loads(getattr(self, f"clf_{key}").numpy().tobytes())

    def score_group(self, group: dict, stars: pd.DataFrame) -> np.ndarray:
        """Scores of ``stars`` (already in the group's patch and SR) with one group's models."""
        fmap = FeatureMap.from_dict(group["feature_map"])
        x, m = features(stars, group["pm_axis"])
        z, c = fmap.transform(x, m)
        flows = self.flows[group["key"]]
        if self.method == "anode":
            return anode_log_ratio(flows["sr"], flows["cr"], z, c)
        return np.mean([clf.predict_proba(z)[:, 1] for clf in self.classifiers(group["key"])], 0)


def build_search_model(config: dict) -> SearchModel:
    """The builder named in the registered config."""
    return SearchModel(config)


def predict(module: SearchModel, stars: pd.DataFrame) -> pd.DataFrame:
    """Scores of ``patch_stars`` rows (patch_id, source_id, phi, lam, pm_phi, pm_lam, g, bp_rp)
    for every group of ``module`` whose patch and SR hold them."""
    out = []
    for g in module.config["groups"]:
        sub = stars[stars["patch_id"] == g["patch_id"]]
        sr = SignalRegion(g["pm_axis"], 0, g["sr_lo"], g["sr_hi"])
        sub = sub[sr.contains(sub[g["pm_axis"]].to_numpy(np.float64))]
        if len(sub):
            out.append(pd.DataFrame({"patch_id": g["patch_id"], "source_id": sub["source_id"],
                                     "pm_axis": g["pm_axis"], "sr_lo": g["sr_lo"],
                                     "sr_hi": g["sr_hi"], "method": module.method,
                                     "score": module.score_group(g, sub)}))
    cols = ["patch_id", "source_id", "pm_axis", "sr_lo", "sr_hi", "method", "score"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def state_for_groups(method: str, groups: list[dict], weights: dict[str, dict]) -> dict:
    """The SearchModel state dict from per-group weights (``weights[key]`` as in
    :class:`gaialake.streams.search.GroupResult`)."""
    state = {}
    roles = ("cr", "sr") if method == "anode" else ("cr",)
    for g in groups:
        w = weights[g["key"]]
        for role in roles:
            for name, tensor in w[role].items():
                state[f"flows.{g['key']}.{role}.{name}"] = tensor
        if method == "cathode":
            state[f"clf_{g['key']}"] = torch.frombuffer(bytearray(w["classifiers"]),
                                                        dtype=torch.uint8).clone()
    return state

"""The 3-sample classifier test of GalaxyFlow (Lim et al. 2022; the seed talk's table).

Star particles are few, so a 2-sample test "particles vs upsampled stars" has little power.
Instead (the seed's "David's favourite metric, with a twist"):

1. split the particles into a training set and a held-out set;
2. build the flow sample F and the baseline (EnBiD-like) sample B from the training particles;
3. train a classifier between F and B on part of each (the *fit* rows);
4. on the other rows (*eval*) and on the held-out particles P, report three AUCs of the
   classifier's score s = p(baseline):

   ============  ===================================  =================================  =====
   network       target (positive vs negative)        reading                            seed
   ============  ===================================  =================================  =====
   trained on    baseline vs flow (B vs F)            the upsamplers differ              0.952
   applied to    baseline vs particles (B vs P)       particles look unlike the baseline 0.950
   applied to    particles vs flow (P vs F)           particles look like the flow: 0.5  0.508
   ============  ===================================  =================================  =====

Held-out particles enter with their masses as sample weights (the samples are already
mass-weighted). Features are the upsampled columns in the units given. The default classifier is
a neural network (standardised inputs, two hidden layers of 64), as in the seed; ``hgb``
(histogram gradient-boosted trees) is a stricter judge that also resolves small, sharp features
(young clumps, cold streams) which a flow trained briefly on few particles smooths.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p, f, b = rng.normal(size=(400, 2)), rng.normal(size=(800, 2)), rng.normal(size=(800, 2)) * 2
>>> table = three_sample_test(p, f, b, seed=1)
>>> round(table.auc("particles_vs_flow"), 1)
0.5
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

__all__ = ["SEED_AUCS", "ThreeSampleResult", "make_classifier", "three_sample_test",
           "three_sample_of_mock"]

#: The seed talk's table (Lim, Raman, Buckley, Shih): key -> (network, target, AUC).
SEED_AUCS = {
    "baseline_vs_flow": ("trained on", "EnBiD vs. CNF", 0.952),
    "baseline_vs_particles": ("applied to", "EnBiD vs. Star particles", 0.950),
    "particles_vs_flow": ("applied to", "Star particles vs. CNF", 0.508),
}


@dataclass
class ThreeSampleResult:
    """AUCs of the 3-sample test, one row per target (see the module docstring)."""

    rows: list[dict] = field(default_factory=list)
    classifier: str = "mlp"

    def auc(self, key: str) -> float:
        """The AUC of the row ``key`` (e.g. ``particles_vs_flow``)."""
        for row in self.rows:
            if row["key"] == key:
                return float(row["auc"])
        raise KeyError(f"no AUC row {key!r}; rows: {[r['key'] for r in self.rows]}")

    def metrics(self) -> dict[str, float]:
        """Flat ``{"auc_<key>": value}`` for MLflow."""
        return {f"auc_{r['key']}": float(r["auc"]) for r in self.rows}

    def markdown(self) -> str:
        """The table as Markdown (our AUC next to the seed's)."""
        lines = ["| network | classification target | AUC (gaialake) | AUC (seed) |",
                 "|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r['network']} | {r['target']} | {r['auc']:.3f} | {r['seed_auc']:.3f} |")
        return "\n".join(lines)

    def table(self, run_id: str) -> pd.DataFrame:
        """The rows as the ``upsample_auc`` table (``gaialake.tables.UPSAMPLE_AUC``): key,
        network, target, auc, seed_auc, n_positive, n_negative, n_fit, classifier, run_id."""
        out = pd.DataFrame(self.rows)
        out["classifier"] = self.classifier
        out["run_id"] = run_id
        return out

    def write_report(self, folder: str | Path, run_id: str) -> list[Path]:
        """``auc.json`` (run_id and rows) and ``auc.md`` (:meth:`markdown`) in ``folder``;
        returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "auc.json").write_text(json.dumps({"run_id": run_id, "rows": self.rows},
                                                    indent=2))
        (folder / "auc.md").write_text(self.markdown() + "\n")
        return [folder / "auc.json", folder / "auc.md"]


def make_classifier(name: str, seed: int):
    """An sklearn classifier: ``hgb`` (HistGradientBoosting, early-stopped) or ``mlp``."""
    if name == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=300, learning_rate=0.1, max_leaf_nodes=31,
                                              early_stopping=True, validation_fraction=0.15,
                                              n_iter_no_change=15, random_state=seed % 2**32)
    if name == "mlp":
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(StandardScaler(), MLPClassifier(
            hidden_layer_sizes=(64, 64), early_stopping=True, max_iter=200,
            random_state=seed % 2**32))
    raise ValueError(f"classifier must be 'hgb' or 'mlp', got {name!r}")


def _auc(pos: np.ndarray, neg: np.ndarray, w_pos: np.ndarray | None = None,
         w_neg: np.ndarray | None = None) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    w = np.r_[np.ones(len(pos)) if w_pos is None else w_pos,
              np.ones(len(neg)) if w_neg is None else w_neg]
    return float(roc_auc_score(y, np.r_[pos, neg], sample_weight=w))


def three_sample_test(particles: np.ndarray, flow: np.ndarray, baseline: np.ndarray, seed: int, *,
                      particle_weight: np.ndarray | None = None, fit_fraction: float = 0.5,
                      classifier: str = "mlp", flow_fit: np.ndarray | None = None,
                      baseline_fit: np.ndarray | None = None) -> ThreeSampleResult:
    """The 3-sample test: held-out ``particles`` ``(n_p, d)``, ``flow`` and ``baseline`` samples.

    Without ``flow_fit``/``baseline_fit``, a random ``fit_fraction`` of each sample trains the
    classifier and the rest is evaluated; with them, those rows train it and ``flow``/``baseline``
    are the eval rows. ``particle_weight``: masses (M_sun) of the held-out particles.
    """
    rng = np.random.default_rng(seed)
    if flow_fit is None or baseline_fit is None:
        def cut(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            perm = rng.permutation(len(a))
            n_fit = int(round(fit_fraction * len(a)))
            return a[perm[:n_fit]], a[perm[n_fit:]]

        flow_fit, flow = cut(flow)
        baseline_fit, baseline = cut(baseline)
    dims = {particles.shape[1], flow.shape[1], baseline.shape[1], flow_fit.shape[1],
            baseline_fit.shape[1]}
    if len(dims) != 1:
        raise ValueError(f"particles, flow and baseline need the same columns, got widths {dims}")
    clf = make_classifier(classifier, seed)
    x_fit = np.vstack([baseline_fit, flow_fit])
    y_fit = np.r_[np.ones(len(baseline_fit)), np.zeros(len(flow_fit))]
    clf.fit(x_fit, y_fit)

    def score(a: np.ndarray) -> np.ndarray:
        return clf.predict_proba(a)[:, 1]

    s_b, s_f, s_p = score(baseline), score(flow), score(particles)
    w_p = None if particle_weight is None else particle_weight / particle_weight.mean()
    values = {
        "baseline_vs_flow": (_auc(s_b, s_f), len(baseline), len(flow)),
        "baseline_vs_particles": (_auc(s_b, s_p, None, w_p), len(baseline), len(particles)),
        "particles_vs_flow": (_auc(s_p, s_f, w_p, None), len(particles), len(flow)),
    }
    rows = []
    for key, (auc, n_pos, n_neg) in values.items():
        network, target, seed_auc = SEED_AUCS[key]
        rows.append({"key": key, "network": network, "target": target, "auc": auc,
                     "seed_auc": seed_auc, "n_positive": n_pos, "n_negative": n_neg,
                     "n_fit": len(x_fit)})
    return ThreeSampleResult(rows, classifier)


def three_sample_of_mock(mock_rows: pd.DataFrame, heldout: pd.DataFrame, columns: Sequence[str],
                         seed: int, classifier: str = "mlp") -> ThreeSampleResult:
    """The 3-sample test of an upsampled mock: ``mock_rows`` (``columns``, ``split`` fit or
    eval, ``method`` galaxyflow or enbid) train and feed the classifier, ``heldout`` (``columns``
    and ``mass`` M_sun) are the held-out particles."""
    columns = list(columns)

    def pick(method: str, split: str) -> np.ndarray:
        rows = mock_rows[(mock_rows["method"] == method) & (mock_rows["split"] == split)]
        return rows[columns].to_numpy()

    return three_sample_test(heldout[columns].to_numpy(), pick("galaxyflow", "eval"),
                             pick("enbid", "eval"), seed,
                             particle_weight=heldout["mass"].to_numpy(), classifier=classifier,
                             flow_fit=pick("galaxyflow", "fit"), baseline_fit=pick("enbid", "fit"))

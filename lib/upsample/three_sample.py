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
mass-weighted). Features are the upsampled columns in the units given. The seed's classifier
(conf ``upsample.classifier``) is a neural network (standardised inputs, two hidden layers of
64), as in the seed, or ``hgb`` (histogram gradient-boosted trees).

The seed's protocol judges particles vs flow with a classifier that never saw a particle: it
scores only the differences between the two upsamplers, so a flow that misses what the baseline
also misses goes unnoticed. The **strong judge** (:func:`judge_auc`, conf ``upsample.judge``)
trains a classifier for the comparison it reports: held-out particles vs flow stars, and
held-out particles vs baseline stars, each with k-fold held-out evaluation (every row is scored
by a model that did not train on it; the AUC is the mean over the folds, particles weighted by
mass). Its rows are ``particles_vs_flow_strong`` and ``particles_vs_baseline_strong``; both
protocols are reported side by side.

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
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from gaialake import tables

__all__ = ["SEED_AUCS", "STRONG_TARGETS", "JUDGE_KINDS", "ThreeSampleResult", "JudgeSettings",
           "JudgeAuc", "make_classifier", "three_sample_test", "judge_auc", "strong_judge",
           "three_sample_of_mock", "strong_judge_of_mock"]

#: The seed talk's table (Lim, Raman, Buckley, Shih): key -> (network, target, AUC).
SEED_AUCS = {
    "baseline_vs_flow": ("trained on", "EnBiD vs. CNF", 0.952),
    "baseline_vs_particles": ("applied to", "EnBiD vs. Star particles", 0.950),
    "particles_vs_flow": ("applied to", "Star particles vs. CNF", 0.508),
}

#: The strong judge's rows: key -> (positive sample, negative sample, target).
STRONG_TARGETS = {
    "particles_vs_flow_strong": ("particles", "flow", "Star particles vs. CNF"),
    "particles_vs_baseline_strong": ("particles", "baseline", "Star particles vs. EnBiD"),
}

#: Classifiers of the strong judge (conf ``upsample.judge.kind``).
JUDGE_KINDS = ("hgb", "mlp")


@dataclass
class ThreeSampleResult:
    """AUCs of the 3-sample test, one row per target (see the module docstring)."""

    rows: list[dict] = field(default_factory=list)

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
        """The table as Markdown (our AUC, ± its spread over the folds for the strong judge,
        next to the seed's; n/a where the seed has none)."""
        lines = ["| network | classification target | AUC (gaialake) | AUC (seed) |",
                 "|---|---|---|---|"]
        for r in self.rows:
            auc = f"{r['auc']:.3f}" + (f" ± {r['auc_std']:.3f}" if "auc_std" in r else "")
            seed = "n/a" if r["seed_auc"] is None else f"{r['seed_auc']:.3f}"
            lines.append(f"| {r['network']} | {r['target']} | {auc} | {seed} |")
        return "\n".join(lines)

    def table(self, run_id: str) -> pd.DataFrame:
        """The rows as the ``upsample_auc`` table (the columns of
        ``gaialake.tables.UPSAMPLE_AUC``, in order; seed_auc NaN where the seed has none)."""
        out = pd.DataFrame(self.rows)
        out["seed_auc"] = out["seed_auc"].astype(float)
        out["run_id"] = run_id
        return out[tables.UPSAMPLE_AUC.columns]

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


@dataclass(frozen=True)
class JudgeSettings:
    """The strong judge (conf ``upsample.judge``): ``kind`` (:data:`JUDGE_KINDS`: ``hgb``
    boosted trees, trained mass-weighted; ``mlp`` the seed's network, trained unweighted),
    ``folds`` (k of the k-fold held-out evaluation, >= 2) and ``max_rows`` (rows per sample;
    a seeded subsample beyond, so the judge's cost does not grow with the snapshot)."""

    kind: str = "hgb"
    folds: int = 5
    max_rows: int = 40000

    def __post_init__(self) -> None:
        if self.kind not in JUDGE_KINDS:
            raise ValueError(f"upsample.judge.kind must be one of {JUDGE_KINDS}, got {self.kind!r}")
        if self.folds < 2 or self.max_rows < 2 * self.folds:
            raise ValueError(f"upsample.judge: folds={self.folds} must be >= 2 and "
                             f"max_rows={self.max_rows} >= 2 x folds")

    @classmethod
    def from_conf(cls, section: Mapping) -> "JudgeSettings":
        """From the conf section ``upsample.judge``."""
        return cls(str(section["kind"]), int(section["folds"]), int(section["max_rows"]))


@dataclass(frozen=True)
class JudgeAuc:
    """One comparison of the strong judge: ``auc`` (mean over the folds' held-out rows),
    ``auc_std`` (its spread over the folds), rows of each sample used, and ``n_fit`` (rows each
    fold's classifier trained on)."""

    auc: float
    auc_std: float
    n_positive: int
    n_negative: int
    n_fit: int


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
                     "n_fit": len(x_fit), "classifier": classifier})
    return ThreeSampleResult(rows)


def _capped(rng: np.random.Generator, rows: np.ndarray, weight: np.ndarray | None,
            max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` (a seeded subsample of ``max_rows`` beyond) and their weights scaled to mean 1
    (ones when ``weight`` is None)."""
    w = np.ones(len(rows)) if weight is None else np.asarray(weight, np.float64)
    if len(rows) > max_rows:
        pick = np.sort(rng.choice(len(rows), max_rows, replace=False))
        rows, w = rows[pick], w[pick]
    return rows, w / w.mean()


def judge_auc(positive: np.ndarray, negative: np.ndarray, seed: int, *,
              w_positive: np.ndarray | None = None, w_negative: np.ndarray | None = None,
              settings: JudgeSettings = JudgeSettings()) -> JudgeAuc:
    """The strong judge of one comparison: a classifier trained for ``positive`` ``(n, d)``
    vs ``negative`` ``(m, d)`` itself, with held-out evaluation.

    Stratified k-fold (``settings.folds``, shuffled with ``seed``): each fold's classifier
    (:func:`make_classifier` of ``settings.kind``) trains on the other folds and scores its
    own; the AUC is the mean of the folds' AUCs (a model's scores are compared only with its
    own). ``w_positive``/``w_negative`` (e.g. particle masses, M_sun) weigh the rows in the
    AUC and, for ``hgb``, in training; each sample's weights are scaled to mean 1. Two
    samples from one distribution give 0.5 whatever the classifier learns.
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    if positive.ndim != 2 or negative.ndim != 2 or positive.shape[1] != negative.shape[1]:
        raise ValueError(f"judge_auc: samples need the same columns, got shapes "
                         f"{positive.shape} and {negative.shape}")
    rng = np.random.default_rng(seed)
    pos, w_pos = _capped(rng, positive, w_positive, settings.max_rows)
    neg, w_neg = _capped(rng, negative, w_negative, settings.max_rows)
    if min(len(pos), len(neg)) < settings.folds:
        raise ValueError(f"judge_auc: {len(pos)} and {len(neg)} rows are too few for "
                         f"{settings.folds} folds")
    x, w = np.vstack([pos, neg]), np.r_[w_pos, w_neg]
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    folds = StratifiedKFold(settings.folds, shuffle=True, random_state=seed % 2**32)
    aucs, n_fit = [], []
    for k, (fit, held) in enumerate(folds.split(x, y)):
        clf = make_classifier(settings.kind, seed + k)
        if settings.kind == "hgb":
            clf.fit(x[fit], y[fit], sample_weight=w[fit])
        else:
            clf.fit(x[fit], y[fit])
        score = clf.predict_proba(x[held])[:, 1]
        aucs.append(roc_auc_score(y[held], score, sample_weight=w[held]))
        n_fit.append(len(fit))
    return JudgeAuc(float(np.mean(aucs)), float(np.std(aucs)), len(pos), len(neg),
                    int(round(np.mean(n_fit))))


def strong_judge(particles: np.ndarray, flow: np.ndarray, baseline: np.ndarray, seed: int, *,
                 particle_weight: np.ndarray | None = None,
                 settings: JudgeSettings = JudgeSettings()) -> list[dict]:
    """The strong judge's rows (:data:`STRONG_TARGETS`): held-out ``particles`` (weights
    ``particle_weight``, masses in M_sun) vs the ``flow`` sample, and vs the ``baseline``
    sample, each by :func:`judge_auc` with ``seed`` (the same particle subsample in both).
    Rows have the keys of :meth:`ThreeSampleResult.table` plus ``auc_std``."""
    samples = {"particles": particles, "flow": flow, "baseline": baseline}
    network = f"trained for it ({settings.kind}, {settings.folds}-fold held out)"
    rows = []
    for key, (pos, neg, target) in STRONG_TARGETS.items():
        got = judge_auc(samples[pos], samples[neg], seed, w_positive=particle_weight,
                        settings=settings)
        rows.append({"key": key, "network": network, "target": target, "auc": got.auc,
                     "auc_std": got.auc_std, "seed_auc": None, "n_positive": got.n_positive,
                     "n_negative": got.n_negative, "n_fit": got.n_fit,
                     "classifier": settings.kind})
    return rows


def three_sample_of_mock(mock_rows: pd.DataFrame, heldout: pd.DataFrame, columns: Sequence[str],
                         seed: int, classifier: str = "mlp") -> ThreeSampleResult:
    """The 3-sample test of an upsampled mock: ``mock_rows`` (``columns``, ``split`` fit or
    eval, ``method`` galaxyflow or enbid) train and feed the classifier, ``heldout`` (``columns``
    and ``mass`` M_sun) are the held-out particles."""
    pick = _picker(mock_rows, columns)
    return three_sample_test(heldout[list(columns)].to_numpy(), pick("galaxyflow", "eval"),
                             pick("enbid", "eval"), seed,
                             particle_weight=heldout["mass"].to_numpy(), classifier=classifier,
                             flow_fit=pick("galaxyflow", "fit"), baseline_fit=pick("enbid", "fit"))


def strong_judge_of_mock(mock_rows: pd.DataFrame, heldout: pd.DataFrame, columns: Sequence[str],
                         seed: int, settings: JudgeSettings) -> list[dict]:
    """:func:`strong_judge` of an upsampled mock (arguments as :func:`three_sample_of_mock`):
    the held-out particles vs each upsampler's ``eval`` rows (rows no classifier of the seed's
    protocol trained on)."""
    pick = _picker(mock_rows, columns)
    return strong_judge(heldout[list(columns)].to_numpy(), pick("galaxyflow", "eval"),
                        pick("enbid", "eval"), seed, particle_weight=heldout["mass"].to_numpy(),
                        settings=settings)


def _picker(mock_rows: pd.DataFrame, columns: Sequence[str]):
    """``pick(method, split)``: the ``columns`` of those mock rows as an array."""
    columns = list(columns)

    def pick(method: str, split: str) -> np.ndarray:
        rows = mock_rows[(mock_rows["method"] == method) & (mock_rows["split"] == split)]
        return rows[columns].to_numpy()
    return pick

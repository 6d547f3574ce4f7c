"""Signal and control regions in proper motion, the features of the stream search, and the map
of bounded features to an unbounded space.

For each patch and each proper-motion axis (``pm_phi`` or ``pm_lam``), sliding signal regions
(SR) of width ``streams.sr_width_masyr`` step by ``streams.sr_step_masyr`` over
``streams.pm_range_masyr``; the control region (CR) of an SR is the rest of that range. The
features are x = (phi, lam, the other proper motion, g, bp_rp), conditioned on m = the sliced
proper motion (Via Machinae, arXiv 2104.12789, section 3).

Flows put smooth densities on R^n; a hard edge (the patch border, the G < 20.2 limit, the colour
window) makes them pile up probability there, and ANODE then ranks edge stars as anomalous.
:class:`FeatureMap` sends each bounded feature to an unbounded one before training:
the disc phi^2 + lam^2 < R^2 radially by r -> R artanh(r / R) (smooth at the centre), an interval
[lo, hi] by logit, a one-sided limit x < hi by -log(hi - x); then every column is standardised.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gaialake.conf import Conf

__all__ = ["PM_AXES", "SignalRegion", "signal_regions", "signal_regions_from_conf", "features",
           "FeatureMap", "FEATURE_NAMES"]

#: The proper-motion axes an SR can slice (columns of ``patch_stars``).
PM_AXES = ("pm_phi", "pm_lam")
#: Feature order: position, the other pm, photometry.
FEATURE_NAMES = ("phi", "lam", "pm_other", "g", "bp_rp")

_EPS = 1e-6


@dataclass(frozen=True)
class SignalRegion:
    """One SR: ``axis`` in :data:`PM_AXES`, ``lo <= m < hi`` (mas/yr), ``index`` along the axis."""

    axis: str
    index: int
    lo: float
    hi: float

    def contains(self, m: np.ndarray) -> np.ndarray:
        """Whether each proper motion ``m`` (mas/yr, on ``axis``) is in [lo, hi)."""
        return (m >= self.lo) & (m < self.hi)


def signal_regions(width_masyr: float = 6.0, step_masyr: float = 6.0,
                   pm_range_masyr: tuple[float, float] = (-15.0, 15.0),
                   axes: tuple[str, ...] = PM_AXES) -> list[SignalRegion]:
    """Sliding SRs [lo, lo + width) with lo = range_lo + k * step, inside the pm range."""
    lo_r, hi_r = float(pm_range_masyr[0]), float(pm_range_masyr[1])
    if width_masyr <= 0 or step_masyr <= 0 or hi_r - lo_r < width_masyr:
        raise ValueError(f"signal regions need width, step > 0 and a pm range wider than the "
                         f"width; got width={width_masyr}, step={step_masyr}, "
                         f"range={pm_range_masyr}")
    bad = [a for a in axes if a not in PM_AXES]
    if bad:
        raise ValueError(f"streams.pm_axes: unknown axes {bad}; use {PM_AXES}")
    n = int(np.floor((hi_r - lo_r - width_masyr) / step_masyr + 1e-9)) + 1
    return [SignalRegion(axis, k, lo_r + k * step_masyr, lo_r + k * step_masyr + width_masyr)
            for axis in axes for k in range(n)]


def signal_regions_from_conf(conf: Conf) -> list[SignalRegion]:
    """:func:`signal_regions` with the ``streams`` section of conf."""
    return signal_regions(float(conf.get("streams.sr_width_masyr")),
                          float(conf.get("streams.sr_step_masyr")),
                          tuple(conf.get("streams.pm_range_masyr")),
                          tuple(conf.get("streams.pm_axes")))



def features(stars: pd.DataFrame, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """x (n, 5) = (phi, lam, other pm, g, bp_rp) and m (n,) = the ``axis`` proper motion."""
    if axis not in PM_AXES:
        raise ValueError(f"pm axis must be one of {PM_AXES}, got {axis!r}")
    other = PM_AXES[1 - PM_AXES.index(axis)]
    cols = ["phi", "lam", other, "g", "bp_rp"]
    missing = [c for c in cols + [axis] if c not in stars.columns]
    if missing:
        raise KeyError(f"patch stars lack columns {missing}")
    x = stars[cols].to_numpy(np.float64)
    m = stars[axis].to_numpy(np.float64)
    return x, m


@dataclass
class FeatureMap:
    """Bounded features -> standardised unbounded features (and the conditional m standardised).

    disc_radius_deg: phi, lam lie in a disc of this radius (None: no map); bounds: per feature
    index, (lo, hi) with lo None for a one-sided upper limit; (None, None) or absent: no map.
    ``fit`` sets the means and scales from data; ``transform`` is then a fixed function, the
    same for every flow of a group (so density ratios need no Jacobian).
    """

    disc_radius_deg: float | None = 15.0
    bounds: dict[int, tuple[float | None, float | None]] = field(default_factory=dict)
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    m_mean: float = 0.0
    m_scale: float = 1.0

    @classmethod
    def from_conf(cls, conf: Conf, logit: bool | None = None) -> "FeatureMap":
        """The map for patch stars: disc of ``patches.radius_deg``, G < ``patches.g_max``,
        bp_rp in ``patches.bp_rp_window``; ``logit=False`` (or ``streams.logit_map: false``)
        gives the identity plus standardisation."""
        use = bool(conf.get("streams.logit_map", True)) if logit is None else logit
        if not use:
            return cls(disc_radius_deg=None, bounds={})
        window = conf.get("patches.bp_rp_window")
        return cls(disc_radius_deg=float(conf.get("patches.radius_deg")),
                   bounds={3: (None, float(conf.get("patches.g_max"))),
                           4: (float(window[0]), float(window[1]))})

    def _unbound(self, x: np.ndarray) -> np.ndarray:
        z = np.array(x, dtype=np.float64, copy=True)
        if self.disc_radius_deg is not None:
            r_max = self.disc_radius_deg
            r = np.hypot(z[:, 0], z[:, 1])
            u = np.clip(r / r_max, 0.0, 1.0 - _EPS)
            # R artanh(r/R) / r -> 1 as r -> 0: the map is smooth at the patch centre
            gain = np.where(u > 1e-8, r_max * np.arctanh(u) / np.maximum(r, 1e-300), 1.0)
            z[:, 0] *= gain
            z[:, 1] *= gain
        for j, (lo, hi) in self.bounds.items():
            if lo is not None and hi is not None:
                u = np.clip((z[:, j] - lo) / (hi - lo), _EPS, 1.0 - _EPS)
                z[:, j] = np.log(u) - np.log1p(-u)
            elif hi is not None:
                z[:, j] = -np.log(np.maximum(hi - z[:, j], _EPS))
            elif lo is not None:
                z[:, j] = np.log(np.maximum(z[:, j] - lo, _EPS))
        return z

    def fit(self, x: np.ndarray, m: np.ndarray) -> "FeatureMap":
        """Set the standardisation of the unbounded features of ``x`` and of ``m``; returns
        self."""
        z = self._unbound(x)
        self.mean = z.mean(0)
        self.scale = np.where(z.std(0) > 0, z.std(0), 1.0)
        self.m_mean = float(np.mean(m))
        self.m_scale = float(np.std(m)) or 1.0
        return self

    def transform(self, x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(x, m) -> (standardised unbounded x, standardised m), float32."""
        if self.mean is None:
            raise RuntimeError("FeatureMap.transform before fit")
        z = (self._unbound(x) - self.mean) / self.scale
        mz = (np.asarray(m, np.float64) - self.m_mean) / self.m_scale
        return z.astype(np.float32), mz.astype(np.float32)[:, None]

    def to_dict(self) -> dict:
        """JSON-ready description (stored with the models)."""
        return {"disc_radius_deg": self.disc_radius_deg,
                "bounds": {str(k): list(v) for k, v in self.bounds.items()},
                "mean": None if self.mean is None else self.mean.tolist(),
                "scale": None if self.scale is None else self.scale.tolist(),
                "m_mean": self.m_mean, "m_scale": self.m_scale}

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureMap":
        """The map described by :meth:`to_dict`'s output."""
        return cls(disc_radius_deg=d["disc_radius_deg"],
                   bounds={int(k): (v[0], v[1]) for k, v in d["bounds"].items()},
                   mean=None if d["mean"] is None else np.asarray(d["mean"]),
                   scale=None if d["scale"] is None else np.asarray(d["scale"]),
                   m_mean=d["m_mean"], m_scale=d["m_scale"])

"""The ``accreted`` conf section as one typed object."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gaialake.accreted.scoring import classifier_config
from gaialake.models.accreted_net import train_settings
from gaialake.models.train import TrainSettings

__all__ = ["AccretedSettings"]


@dataclass(frozen=True)
class AccretedSettings:
    """How ``gaialake accreted`` trains, transfers, evaluates and thresholds.

    train_galaxy / eval_galaxy (sky galaxies ``A``, ``B``), variants (``5d``, ``6d``),
    photometry (absolute G and BP-RP features beside the kinematics), hidden
    (layer widths), dropout, cuts (quality cuts), train (epochs, batch size, lr, weight decay,
    val_fraction: the hash fraction of training stars held out for calibration),
    calibration_max_rows (validation rows the Platt fit reads), transfer (the fine-tuning's
    settings) and transfer_enabled, target_purity (the catalog threshold's purity on the
    training catalog's held-out stars),
    baseline_cut_kms (Toomre cut, km/s), eval_max_rows and plot_max_rows (rows collected to
    the driver), torch_threads.
    """

    train_galaxy: str
    eval_galaxy: str
    variants: tuple[str, ...]
    photometry: bool
    hidden: tuple[int, ...]
    dropout: float
    cuts: Mapping
    train: TrainSettings
    calibration_max_rows: int
    transfer: TrainSettings
    transfer_enabled: bool
    target_purity: float
    baseline_cut_kms: float
    eval_max_rows: int
    plot_max_rows: int
    torch_threads: int

    @classmethod
    def from_conf(cls, conf) -> "AccretedSettings":
        """The settings of ``conf``'s ``accreted`` section."""
        section = conf.get("accreted")
        train_conf, transfer_conf = section["train"], section["transfer"]
        return cls(
            train_galaxy=str(section["train_galaxy"]), eval_galaxy=str(section["eval_galaxy"]),
            variants=tuple(section["variants"]),
            photometry=bool(section.get("photometry", False)),
            hidden=tuple(section["net"]["hidden"]),
            dropout=float(section["net"].get("dropout", 0.0)), cuts=dict(section["cuts"]),
            train=train_settings(train_conf["epochs"], train_conf["lr"],
                                 train_conf["weight_decay"], train_conf["batch_size"],
                                 train_conf["val_fraction"]),
            calibration_max_rows=int(train_conf["calibration_max_rows"]),
            transfer=train_settings(transfer_conf["epochs"], transfer_conf["lr"],
                                    batch_size=transfer_conf["batch_size"]),
            transfer_enabled=bool(transfer_conf.get("enabled", True)),
            target_purity=float(section["target_purity"]),
            baseline_cut_kms=float(section["baseline_cut_kms"]),
            eval_max_rows=int(section["eval_max_rows"]),
            plot_max_rows=int(section["plot_max_rows"]),
            torch_threads=int(section.get("torch_threads", 1)))

    def model_config(self) -> dict:
        """The registered model's config (:func:`gaialake.accreted.scoring.classifier_config`)."""
        return classifier_config(self.hidden, self.dropout, self.variants, self.cuts,
                                 self.photometry)

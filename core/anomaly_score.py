"""From model outputs to anomaly scores, and a threshold chosen without labels.

Each session has three signals:

- ``rarity``: the mean, over its lines, of ``-log p(line)`` under the training log's line
  frequencies, counted without the training sessions the model itself flags (an unlabeled log
  holds anomalies too, and one that recurs must not make its own lines look common);
- ``context``: the most surprising step of the session read left to right, as *excess*
  surprisal ``-log p(line | lines before) - H(prediction)``, the end of the session included, so
  a step counts only when the model was sure of something else (an extra, missing or
  out-of-order event);
- ``head``: the anomaly head's one-pass estimate of the score (fitted to it, without labels).

Their scales differ, so each is standardised by the median and the MAD of the *training*
sessions (robust to the anomalies hidden in unlabeled training data) and the session score is
their weighted sum. Measured on the HDFS dev split, rarity carries most of the ranking and the
context term the explanation (see README's benchmark); the head is a variant, weight 0 by
default. The threshold comes from the training score distribution alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

COMPONENTS = ("rarity", "context", "head")
DEFAULT_WEIGHTS = {"rarity": 1.0, "context": 1.0, "head": 0.0}


def robust_center_scale(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """Weighted median and 1.4826 * MAD (floored so a constant signal cannot divide by ~0)."""
    center = weighted_quantile(values, 0.5, weights)
    mad = weighted_quantile(np.abs(values - center), 0.5, weights)
    spread = float(np.std(values)) if len(values) else 1.0
    return center, max(1.4826 * mad, 0.05 * spread, 1e-3)


def weighted_quantile(values: np.ndarray, q: float, weights: np.ndarray | None = None) -> float:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return 0.0
    if weights is None:
        return float(np.quantile(values, q))
    order = np.argsort(values)
    cum = np.cumsum(np.asarray(weights, dtype=np.float64)[order])
    return float(values[order][min(np.searchsorted(cum, q * cum[-1]), len(values) - 1)])


@dataclass
class Calibration:
    """Learned at fit time, without labels; stored in ``detector.json``."""

    center: dict[str, float]
    scale: dict[str, float]
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    threshold: float = 0.0
    line_threshold: float = 0.0
    contamination: float = 0.0  # share of training sessions above the threshold
    train_quantiles: dict[str, float] = field(default_factory=dict)

    def combine(self, components: dict[str, np.ndarray]) -> np.ndarray:
        total = None
        for name, weight in self.weights.items():
            if weight == 0.0:
                continue
            z = (components[name] - self.center[name]) / self.scale[name]
            total = weight * z if total is None else total + weight * z
        return total

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(**data)


def label_free_threshold(
    scores: np.ndarray, weights: np.ndarray | None, contamination: float | str
) -> float:
    """Threshold from training scores only.

    A number is the expected share of anomalies (as in PyOD). ``'auto'`` assumes nothing about
    that share: it places the threshold a fixed number of robust deviations above the median of
    the training scores, where a Gaussian-tailed normal population has almost no mass.
    """
    if contamination == "auto":
        center, scale = robust_center_scale(scores, weights)
        return center + AUTO_DEVIATIONS * scale
    return weighted_quantile(scores, 1.0 - float(contamination), weights)


AUTO_DEVIATIONS = 4.0


def severity(score: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """``normal`` below the threshold, then ``high`` and, far above it, ``critical``."""
    out = np.full(len(score), "normal", dtype=object)
    out[score >= threshold] = "high"
    out[score >= threshold + 2 * max(scale, 1e-6)] = "critical"
    return out

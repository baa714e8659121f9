"""From model outputs to anomaly scores, and a threshold chosen without labels.

Each session has three signals:

- ``rarity``: the mean, over its lines, of ``-log p(line)`` under the training log's line
  frequencies, counted without the training sessions the model itself flags (an unlabeled log
  holds anomalies too, and one that recurs must not make its own lines look common);
- ``context``: the most surprising step of the session read left to right, as *excess*
  surprisal ``-log p(line | lines before) - H(prediction)``, the end of the session included, so
  a step counts only when the model was sure of something else (an extra, missing or
  out-of-order event);
- ``top``: the session's highest line score (the line's rarity and surprisal, severity
  weighted): what one bad line says, undiluted by the session's ordinary lines (a mean over a
  40-line block, or a 20-line window, hides a burst of three);
- ``head``: the anomaly head's one-pass estimate of the score (fitted to it, without labels).

Their scales differ, so each is standardised by the median and the MAD of the *training*
sessions (robust to the anomalies hidden in unlabeled training data) and the session score is
their weighted sum. Measured on the HDFS dev split, rarity carries most of the ranking and the
context term the explanation (see README's benchmark); the head is a variant, weight 0 by
default. The threshold comes from the training score distribution alone.

The **line alarm**: a session is also flagged when it holds a line more surprising than all but
``ALARM_LINE_SHARE`` of the training lines (never below the second highest). A weighted sum over
a 20-line window, standardised by a spread that a window's one rare line already widens, cannot
see a burst of three fault lines (a disk-full FATAL among ordinary lines): measured on ten
development logs, the sum alone caught 24 of 60 injected bursts, the sum or the alarm 56. The
session score is the larger of the two, on one scale (``Calibration.session_score``), so the
slider, the grades and every front end see one number.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

COMPONENTS = ("rarity", "context", "top", "head")
DEFAULT_WEIGHTS = {"rarity": 1.0, "context": 1.0, "top": 1.0, "head": 0.0}


def robust_center_scale(
    values: np.ndarray, weights: np.ndarray | None = None, upper: bool = False,
    floor: float = 1e-3,
) -> tuple[float, float]:
    """Weighted median and 1.4826 * MAD, at least ``floor`` (a constant signal cannot divide by
    ~0; ``NAT_RESOLUTION`` says why a signal in nats needs a floor of its own).

    ``upper=True`` takes the larger of that and the upper quartile's distance from the median
    / 0.6745 (the two agree on one symmetric mode): the MAD describes the main mode alone, so it
    cannot see a second, normal mode above it (the boot sequences of a syslog, every line new).
    """
    center = weighted_quantile(values, 0.5, weights)
    mad = weighted_quantile(np.abs(values - center), 0.5, weights)
    spread = float(np.std(values)) if len(values) else 1.0
    scale = 1.4826 * mad
    if upper:
        scale = max(scale, (weighted_quantile(values, 0.75, weights) - center) / 0.6745)
    return center, max(scale, 0.05 * spread, floor)


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
    # Session-score units per nat of line score over ``line_threshold`` (0: no line alarm, as in
    # checkpoints calibrated before it existed).
    alarm_gain: float = 0.0

    def session_score(self, components: dict[str, np.ndarray]) -> np.ndarray:
        """The weighted sum, or where the session's top line is over the line threshold, that
        line's excess put on the session scale if it is larger: flagged exactly when the sum
        crosses ``threshold`` or a line crosses ``line_threshold``."""
        total = self.combine(components)
        if self.alarm_gain <= 0.0 or "top" not in components:
            return total
        alarm = self.threshold + self.alarm_gain * (components["top"] - self.line_threshold)
        return np.maximum(total, alarm)

    def combine(self, components: dict[str, np.ndarray]) -> np.ndarray:
        """The weighted sum of the standardised signals a checkpoint was calibrated with (one
        from before ``top`` existed keeps scoring as it was trained)."""
        total = None
        for name, weight in self.weights.items():
            if weight == 0.0 or name not in self.center:
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
    scores: np.ndarray, weights: np.ndarray | None, contamination: float | str,
    max_share: float = 0.1, second_mode: bool = True, min_scale: float = 1e-3,
) -> float:
    """Threshold from training scores only.

    A number is the expected share of anomalies (as in PyOD). ``'auto'`` assumes nothing about
    that share but that it is small: the threshold sits ``AUTO_DEVIATIONS`` robust deviations
    above the median of the training scores, where a Gaussian-tailed normal population has
    almost no mass. Where that would flag more than ``max_share`` of the training data, what it
    flags is a mode of normal behaviour, not a few anomalies: with ``second_mode`` the deviation
    is then measured with the upper quartile too (``robust_center_scale(upper=True)``: session
    scores, where such a mode is a kind of session, e.g. a boot), and in any case the threshold is
    at least the training quantile that flags ``max_share`` (line scores, whose upper quartile
    is often made of the log's one-off messages and would put the threshold above every line).
    ``min_scale`` floors the robust deviation (``SESSION_SCALE_FLOOR`` for session scores).
    """
    if contamination != "auto":
        return _below(scores, weighted_quantile(scores, 1.0 - float(contamination), weights))
    scores = np.asarray(scores, dtype=np.float64)
    w = np.ones(len(scores)) if weights is None else np.asarray(weights, dtype=np.float64)

    def share(t: float) -> float:
        return float(w[scores >= t].sum() / max(w.sum(), 1e-12))

    center, scale = robust_center_scale(scores, weights, floor=min_scale)
    threshold = center + AUTO_DEVIATIONS * scale
    if second_mode and len(scores) and share(threshold) > max_share:
        center, scale = robust_center_scale(scores, weights, upper=True, floor=min_scale)
        threshold = max(threshold, center + AUTO_DEVIATIONS * scale)
    if len(scores) and share(threshold) > max_share:
        quantile = weighted_quantile(scores, 1.0 - max_share, weights)
        if quantile > threshold:
            threshold = _below(scores, quantile)
    return threshold


def _below(scores: np.ndarray, quantile: float) -> float:
    """A quantile threshold placed *between* two training scores, halfway below ``quantile``:
    the same training data is flagged, but scores that tie with ``quantile`` (identical
    sessions or lines share one score) are not split by a 1e-6 difference, e.g. between ONNX
    Runtime and torch."""
    scores = np.asarray(scores, dtype=np.float64)
    lower = scores[scores < quantile]
    return 0.5 * (quantile + float(lower.max())) if len(lower) else quantile


def line_alarm_threshold(line_scores: np.ndarray) -> float:
    """The training line score that only ``ALARM_LINE_SHARE`` of the training lines reach, and
    at least the second highest: the training log may hold a fault or two of its own, so its
    single most surprising line does not set the bar. Halfway below that score, so that lines
    tying with it (one message, several times) are treated alike. Never less than
    ``AUTO_DEVIATIONS * NAT_RESOLUTION`` above the median line: in a log of a few messages that
    repeat exactly, every line scores alike and the quantile sits on the routine lines, so a
    reworded routine line (a match costs a nat or so) would sound the alarm."""
    scores = np.sort(np.asarray(line_scores, dtype=np.float64))[::-1]
    if len(scores) == 0:
        return 0.0
    floor = float(np.median(scores)) + AUTO_DEVIATIONS * NAT_RESOLUTION
    return max(_alarm_quantile(scores), floor)


def _alarm_quantile(scores: np.ndarray) -> float:
    """``line_alarm_threshold`` before its floor (``scores`` sorted, highest first)."""
    k = min(1 + int(np.ceil(ALARM_LINE_SHARE * len(scores))), len(scores))
    at = scores[k - 1]
    if np.count_nonzero(scores >= at) <= k:
        return _below(scores, at)
    # ``at`` is a routine line's score, tied by many (one message in every session, as in a log
    # of identical requests): the bar goes above it, not below, or that message would flag every
    # session. Halfway to the next higher score; above the highest by a margin wider than the
    # runtimes' differences (ONNX Runtime vs torch: within 1e-4).
    higher = scores[scores > at]
    return 0.5 * (at + float(higher.min())) if len(higher) else at + max(1e-3, 1e-3 * abs(at))


AUTO_DEVIATIONS = 4.0
# The smallest difference in a line's score, in nats, that counts as one unit of evidence: a
# factor of two in the line's probability. Standardising by the training spread alone divides by
# ~0 in a log whose few messages repeat exactly (every session alike): there a reworded routine
# line, matched at a cost of about a nat (``line_matching.py``), scored hundreds of deviations
# and flagged every session. Per-line signals (``top``, ``context``) are floored at it; the
# per-line mean (``rarity``) at the spread of a mean of that many lines (it over the square root
# of the median session length); the session score at ``SESSION_SCALE_FLOOR`` of those units;
# and the line alarm sits at least ``AUTO_DEVIATIONS`` of it above the median line. On the
# development logs the floors bind on the synthetic one and on a few spreads of the small loghub
# logs (``docs/model_notes.md``); HDFS's calibration is unchanged.
NAT_RESOLUTION = float(np.log(2.0))
SESSION_SCALE_FLOOR = 1.0
# The line alarm: lines over the score only this share of the training lines reach.
ALARM_LINE_SHARE = 0.001
# 'auto' at most flags this share of the training sessions, and of the training lines.
AUTO_MAX_SESSION_SHARE = 0.10
AUTO_MAX_LINE_SHARE = 0.05


# Severity grades, lowest first. A grade is a band of the session score measured from the
# threshold in units of the training scores' robust spread: ``elevated`` within 2 of it below,
# ``high`` from it to 2 above, ``critical`` beyond.
GRADES = ("normal", "elevated", "high", "critical")
GRADE_CENTERS = np.array([-3.0, -1.0, 1.0, 3.0])  # band middles, in those units
GRADE_WIDTH = 2.0


def grade_probabilities(score: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """``[n, len(GRADES)]``: a softmax over the grades, each row summing to 1.

    The logits are linear in the score, ``u * c_k - c_k**2 / 2`` with ``u`` the score's distance
    from the threshold in robust SDs and ``c_k`` the grade's band middle: a one-input softmax
    layer whose weights come from the training scores (threshold and spread), never from
    labels. Its argmax changes exactly at the band edges (the threshold is the edge between
    ``elevated`` and ``high``, so ``high`` and ``critical`` are the flagged sessions), and it is
    sure in the middle of a band (p ~ 0.79) and unsure at an edge (0.5 / 0.5).
    """
    u = (np.asarray(score, dtype=np.float64) - threshold) / max(float(scale), 1e-6)
    u = np.nan_to_num(u, nan=-np.inf)
    u = np.clip(u, -1e6, 1e6) * (2.0 / GRADE_WIDTH)
    logits = u[:, None] * GRADE_CENTERS[None, :] - 0.5 * GRADE_CENTERS[None, :] ** 2
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def grade_of(probabilities: np.ndarray) -> np.ndarray:
    """Argmax, a tie going to the higher grade (a score at the threshold is flagged)."""
    top = probabilities.shape[1] - 1 - np.argmax(probabilities[:, ::-1], axis=1)
    return np.asarray(GRADES, dtype=object)[top]


def severity(score: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """The grade (argmax of ``grade_probabilities``): ``normal``/``elevated`` below the
    threshold, ``high`` and, far above it, ``critical``."""
    return grade_of(grade_probabilities(score, threshold, scale))


def grade_columns(score: np.ndarray, threshold: float, scale: float) -> dict[str, np.ndarray]:
    """``grade`` and one ``p_<grade>`` column per grade, lowest grade first."""
    p = grade_probabilities(score, threshold, scale)
    out: dict[str, np.ndarray] = {"grade": grade_of(p).astype(str)}
    for k, name in enumerate(GRADES):
        out[f"p_{name}"] = p[:, k].round(6)
    return out

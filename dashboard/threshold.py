"""The threshold as a share of sessions flagged: the conversions the sidebar's slider needs.

Why a share and not the score itself: scores bunch up (most sessions within a narrow band, a few
far above), so equal steps of score flag wildly different numbers of sessions; equal steps of the
share flagged change the verdict on a comparable number of sessions each time.
"""
from __future__ import annotations

import numpy as np


def threshold_for_top_percent(scores: np.ndarray, percent: float) -> float:
    """The session threshold that flags the top ``percent`` % of sessions.

    Ties are flagged together, so the share actually flagged can be a little higher.
    ``0`` gives a threshold just above the highest score (nothing flagged).
    """
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if not len(scores):
        return 0.0
    k = int(np.ceil(len(scores) * min(max(percent, 0.0), 100.0) / 100.0))
    if k == 0:
        return float(np.nextafter(scores[0], np.inf))
    return float(scores[k - 1])


def threshold_flagging_at_most(scores: np.ndarray, percent: float) -> float:
    """The lowest threshold that flags no more than ``percent`` % of sessions (ties stay
    together, so a tied group that would cross ``percent`` is left unflagged)."""
    scores = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if not len(scores):
        return 0.0
    k = int(np.floor(len(scores) * min(max(percent, 0.0), 100.0) / 100.0 + 1e-9))
    if k >= len(scores):
        return float(scores[-1])
    # The k-th score would flag its whole tie group; start just above that group instead.
    return float(np.nextafter(scores[k], np.inf))


def threshold_for_share(scores: np.ndarray, percent: float, current: float) -> float:
    """The threshold for a slider moved from ``current`` % flagged to ``percent`` %: the
    nearest share on the side it moved to, so every move changes the verdict on at least one
    group of tied sessions (a group larger than the step is never jumped back over)."""
    if percent >= current:
        return threshold_for_top_percent(scores, percent)
    return threshold_flagging_at_most(scores, percent)


def flagged_percent(scores: np.ndarray, threshold: float) -> float:
    """Share of sessions at or above ``threshold``, in percent."""
    scores = np.asarray(scores)
    return float(100.0 * np.mean(scores >= threshold)) if len(scores) else 0.0

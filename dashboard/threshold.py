"""The threshold as "flag the top N %": the two conversions the sidebar needs."""
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


def flagged_percent(scores: np.ndarray, threshold: float) -> float:
    """Share of sessions at or above ``threshold``, in percent."""
    scores = np.asarray(scores)
    return float(100.0 * np.mean(scores >= threshold)) if len(scores) else 0.0

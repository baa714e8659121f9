"""Synthetic anomalies for training the anomaly head without labels.

Why: labels are what users do not have, and most HDFS anomalies are *ordinary* lines in an
unusual session: an event missing, repeated, out of order, or one that does not belong. Each
function below makes one such change to a normal session; the head learns to tell real sessions
from changed ones (outlier exposure with self-made outliers). A changed session that equals some
real training session is dropped, so "normal" is never labelled "anomalous".
"""
from __future__ import annotations

import numpy as np


def _delete(seq: np.ndarray, rng: np.random.Generator, sample_line) -> np.ndarray:
    if len(seq) < 2:
        return _insert(seq, rng, sample_line)
    k = int(rng.integers(1, max(2, len(seq) // 4) + 1))
    k = min(k, len(seq) - 1)
    drop = rng.choice(len(seq), size=k, replace=False)
    return np.delete(seq, drop)


def _insert(seq: np.ndarray, rng: np.random.Generator, sample_line) -> np.ndarray:
    return np.insert(seq, int(rng.integers(0, len(seq) + 1)), sample_line())


def _duplicate(seq: np.ndarray, rng: np.random.Generator, sample_line) -> np.ndarray:
    i = int(rng.integers(0, len(seq)))
    return np.insert(seq, i, seq[i])


def _replace(seq: np.ndarray, rng: np.random.Generator, sample_line) -> np.ndarray:
    out = seq.copy()
    out[int(rng.integers(0, len(seq)))] = sample_line()
    return out


def _swap(seq: np.ndarray, rng: np.random.Generator, sample_line) -> np.ndarray:
    if len(seq) < 2:
        return _insert(seq, rng, sample_line)
    i, j = rng.choice(len(seq), size=2, replace=False)
    out = seq.copy()
    out[i], out[j] = out[j], out[i]
    return out


def _truncate(seq: np.ndarray, rng: np.random.Generator, sample_line) -> np.ndarray:
    if len(seq) < 2:
        return _insert(seq, rng, sample_line)
    return seq[: int(rng.integers(1, len(seq)))]


PERTURBATIONS = (_delete, _insert, _duplicate, _replace, _swap, _truncate)


class Perturber:
    """Draws perturbed copies of sessions; lines to insert come from the training lines."""

    def __init__(self, line_rows: np.ndarray, line_freq: np.ndarray, known: set[bytes], seed: int):
        self.rng = np.random.default_rng(seed)
        self.rows = line_rows
        p = line_freq / line_freq.sum()
        # Half frequency-weighted (an extra ordinary event), half uniform (an unusual event).
        self.p = 0.5 * p + 0.5 / len(p)
        self.known = known

    def sample_line(self) -> int:
        return int(self.rng.choice(self.rows, p=self.p))

    def __call__(self, seq: np.ndarray, tries: int = 5) -> np.ndarray | None:
        for _ in range(tries):
            op = PERTURBATIONS[int(self.rng.integers(len(PERTURBATIONS)))]
            out = op(seq, self.rng, self.sample_line)
            if len(out) and out.astype(np.int32).tobytes() not in self.known:
                return out
        return None

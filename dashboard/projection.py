"""2-D maps of session embeddings (t-SNE or UMAP), on a bounded sample so they stay interactive.

Why the sample is chosen by score rank and not by the current threshold: the map must not be
recomputed every time the slider moves. Keeping the highest-scoring sessions means every session
above any threshold that flags up to ``max_points / 2`` sessions is on the map; labelled anomalies
are always kept too; the rest is a seeded random sample. Identical sessions have identical
embeddings, so only distinct vectors are projected (HDFS repeats a lot) and copies share a point.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tinylogbert.errors import TinyLogBERTError
from tinylogbert.reports.display import plural

METHODS = ("t-SNE", "UMAP")
MIN_DISTINCT_POINTS = 5
# Half of scikit-learn's default: the layout is settled for a few thousand points, in half the time.
TSNE_ITERATIONS = 500


@dataclass(frozen=True)
class SessionSample:
    indices: np.ndarray  # session indices, ascending
    n_top: int  # how many were kept because they score highest
    n_total: int

    @property
    def is_complete(self) -> bool:
        return len(self.indices) == self.n_total


def sample_sessions(
    scores: np.ndarray, labels: np.ndarray | None, max_points: int, seed: int = 0
) -> SessionSample:
    """At most ``max_points`` sessions (more only if there are more labelled anomalies)."""
    n = len(scores)
    if n <= max_points:
        return SessionSample(np.arange(n), n, n)
    n_top = max_points // 2
    keep = np.zeros(n, dtype=bool)
    keep[np.argsort(-np.asarray(scores), kind="stable")[:n_top]] = True
    if labels is not None:
        keep |= np.asarray(labels) == 1
    rest = np.flatnonzero(~keep)
    room = max(max_points - int(keep.sum()), 0)
    keep[np.random.default_rng(seed).choice(rest, size=min(room, len(rest)), replace=False)] = True
    return SessionSample(np.flatnonzero(keep), n_top, n)


def project(embeddings: np.ndarray, method: str, neighbourhood: float, seed: int = 0) -> np.ndarray:
    """[n, 2] coordinates; ``neighbourhood`` is t-SNE's perplexity or UMAP's n_neighbors."""
    if method not in METHODS:
        raise TinyLogBERTError(f"unknown projection {method!r}; use one of {METHODS}")
    distinct, inverse = np.unique(np.asarray(embeddings, dtype=np.float32), axis=0,
                                  return_inverse=True)
    m = len(distinct)
    if m < MIN_DISTINCT_POINTS:
        raise TinyLogBERTError(
            f"only {plural(m, 'distinct session embedding')}: a map needs at least "
            f"{MIN_DISTINCT_POINTS}"
        )
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        perplexity = float(min(neighbourhood, (m - 1) / 3))  # t-SNE needs perplexity < m
        coords = TSNE(n_components=2, perplexity=perplexity, init="pca", max_iter=TSNE_ITERATIONS,
                      random_state=seed).fit_transform(distinct)
    else:
        import umap  # imported here: it compiles with numba on first use (seconds)

        n_neighbors = int(min(max(neighbourhood, 2), m - 1))
        coords = umap.UMAP(n_components=2, n_neighbors=n_neighbors, random_state=seed,
                           n_jobs=1).fit_transform(distinct)
    return np.asarray(coords, dtype=np.float32)[inverse.reshape(-1)]

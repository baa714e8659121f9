"""Classic unsupervised session detectors on templates, built from scikit-learn and numpy.

Each is fitted on the training sessions only (no labels) and scores a session (higher = more
anomalous). The label-free threshold of each comes from its *training* scores with the rule
TinyLogBERT itself uses (``tinylogbert.scoring.anomaly_score.label_free_threshold``), so F1 is comparable.

- template rarity, mean / max: surprisal ``-log p(template)`` of a session's lines, with ``p``
  from training line counts (add-one smoothed, so an unseen template is the rarest of all);
- PCA residual: Xu et al. (SOSP 2009), the original HDFS detector: TF-IDF weighted, centred event
  count vectors, principal subspace keeping 95% of the variance, score = squared prediction error;
- IsolationForest on event count vectors (as in loglizer / Liu et al. 2008);
- unseen templates: how many of a session's lines have a template never seen in training;
- session length: distance of ``log(lines)`` from the training median (too short or too long).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.feature_extraction.text import TfidfTransformer
from tinylogbert.scoring.anomaly_score import AUTO_DEVIATIONS, label_free_threshold

from .data import BenchmarkData
from .report import MethodResult, measure
from .templates import UNSEEN, SessionEvents, prepare_events


class SessionDetector(Protocol):
    name: str
    uses_templates: bool  # False: the score ignores which templates a session holds

    def fit(self, train: SessionEvents) -> SessionDetector: ...

    def score(self, sessions: SessionEvents) -> np.ndarray: ...


@dataclass
class TemplateRarity:
    reduce: str = "mean"  # "mean" or "max" over the session's lines
    uses_templates: bool = True

    @property
    def name(self) -> str:
        return f"Template rarity ({self.reduce})"

    def fit(self, train: SessionEvents) -> TemplateRarity:
        counts = train.vocabulary.counts.astype(np.float64)
        denominator = counts.sum() + len(counts) + 1.0
        self.surprisal_ = -np.log((counts + 1.0) / denominator)
        self.unseen_surprisal_ = -np.log(1.0 / denominator)
        return self

    def score(self, sessions: SessionEvents) -> np.ndarray:
        line = np.where(
            sessions.codes == UNSEEN, self.unseen_surprisal_,
            self.surprisal_[np.maximum(sessions.codes, 0)],
        )
        owner = sessions.member_session()
        n = len(sessions)
        if self.reduce == "max":
            out = np.zeros(n)
            np.maximum.at(out, owner, line)
            return out
        return np.bincount(owner, weights=line, minlength=n) / np.maximum(sessions.lengths(), 1)


@dataclass
class PCAResidual:
    variance: float = 0.95
    name: str = "PCA residual"
    uses_templates: bool = True

    def fit(self, train: SessionEvents) -> PCAResidual:
        self.tfidf_ = TfidfTransformer(norm=None, smooth_idf=True).fit(train.count_matrix())
        x = self._weighted(train)
        self.mean_ = x.mean(axis=0)
        n_components = self.variance if min(x.shape) > 1 else None
        self.pca_ = PCA(n_components=n_components, svd_solver="full").fit(x - self.mean_)
        return self

    def _weighted(self, sessions: SessionEvents) -> np.ndarray:
        return self.tfidf_.transform(sessions.count_matrix()).toarray()

    def score(self, sessions: SessionEvents) -> np.ndarray:
        centred = self._weighted(sessions) - self.mean_
        basis = self.pca_.components_  # rows: orthonormal principal directions
        residual = centred - (centred @ basis.T) @ basis
        return np.einsum("ij,ij->i", residual, residual)


@dataclass
class CountIsolationForest:
    seed: int = 0
    n_estimators: int = 100
    name: str = "IsolationForest"
    uses_templates: bool = True

    def fit(self, train: SessionEvents) -> CountIsolationForest:
        self.forest_ = IsolationForest(
            n_estimators=self.n_estimators, random_state=self.seed
        ).fit(train.count_matrix())
        return self

    def score(self, sessions: SessionEvents) -> np.ndarray:
        return -self.forest_.score_samples(sessions.count_matrix())


@dataclass
class UnseenTemplates:
    name: str = "Unseen templates"
    uses_templates: bool = True

    def fit(self, train: SessionEvents) -> UnseenTemplates:
        return self

    def score(self, sessions: SessionEvents) -> np.ndarray:
        unseen = (sessions.codes == UNSEEN).astype(np.float64)
        return np.bincount(sessions.member_session(), weights=unseen, minlength=len(sessions))


@dataclass
class SessionLength:
    name: str = "Session length"
    uses_templates: bool = False

    def fit(self, train: SessionEvents) -> SessionLength:
        self.median_ = float(np.median(np.log(np.maximum(train.lengths(), 1))))
        return self

    def score(self, sessions: SessionEvents) -> np.ndarray:
        return np.abs(np.log(np.maximum(sessions.lengths(), 1)) - self.median_)


def default_detectors(seed: int) -> list[SessionDetector]:
    return [
        TemplateRarity("mean"), TemplateRarity("max"), PCAResidual(),
        CountIsolationForest(seed=seed), UnseenTemplates(), SessionLength(),
    ]


def threshold_rule_text(contamination: float | str) -> str:
    if contamination == "auto":
        return f"train median + {AUTO_DEVIATIONS:g} robust SD (TinyLogBERT's 'auto' rule)"
    return f"train {1 - float(contamination):.4g} quantile (contamination {contamination})"


def run_baselines(
    data: BenchmarkData,
    sources: tuple[str, ...] = ("words", "drain3"),
    seed: int = 0,
    contamination: float | str = "auto",
) -> list[MethodResult]:
    """Every detector on every template source; session length once (it ignores templates)."""
    results: list[MethodResult] = []
    length_done = False
    for source in sources:
        prepared = prepare_events(
            source, data.train_lines, data.test_lines, data.split.train_ids, data.eval_ids,
            data.parsed.format, data.session_pattern,
        )
        for detector in default_detectors(seed):
            if not detector.uses_templates:
                if length_done:
                    continue
                length_done = True
            started = time.perf_counter()
            detector.fit(prepared.train)
            threshold = label_free_threshold(detector.score(prepared.train), None, contamination)
            fit_seconds = time.perf_counter() - started
            started = time.perf_counter()
            scores = detector.score(prepared.test)
            score_seconds = time.perf_counter() - started
            results.append(measure(
                detector.name, "", "baseline", source if detector.uses_templates else "lines",
                scores, data.eval_labels, threshold, threshold_rule_text(contamination),
                train_seconds=prepared.train_seconds + fit_seconds,
                score_seconds=prepared.test_seconds + score_seconds,
                score_lines=len(data.test_lines),
            ))
    return results


"""The peer, run through its own API: LogLead's unsupervised detectors on HDFS sessions.

LogLead (EvoTestOps, SANER 2024) is the field's benchmarking library; ``pip install loglead`` is an
optional *benchmark* dependency (it is Polars-based and pulls xgboost; see the README of
``benchmarks``). The flow follows its HDFS demos: ``HDFSLoader`` -> ``EventLogEnhancer`` (``mask``,
``words``, ``parse_drain``) -> ``SequenceEnhancer`` (``seq_len``, ``tokens``, ``events``) ->
``AnomalyDetector`` (TF-IDF vectors for IsolationForest, KMeans, RarityModel, OneClassSVM and LOF;
counts for the OOV detector, as in its ``unsupervised_models`` demo). Three deliberate choices:

- the *same* chronological split as every other method: the train part's lines are loaded and
  enhanced first, then the test part's (LogLead's Drain keeps learning online on the test part:
  it has no match-only mode), and ``train_df``/``test_df`` are set before LogLead's own
  ``prepare_train_test_data`` (its ``test_train_split(shuffle=False)`` would re-sort by a
  one-second start time, which ties);
- no labels: the loader attaches them, the harness drops them before the detector sees a row, and
  every ``train_*`` is called with ``filter_anos=False`` (filtering anomalies *uses* labels);
- thresholds: the F1 column uses the rule applied to every method (from training scores, scored
  through ``predict``); the F1 of LogLead's own default decision (``pred_ano``) is kept in
  ``extra.f1_own_rule``.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from tinylogbert.io.log_reader import LogLines
from tinylogbert.scoring.anomaly_score import label_free_threshold
from tinylogbert.scoring.evaluate import evaluate_scores

from .baselines import threshold_rule_text
from .data import BenchmarkData
from .report import MethodResult, Skipped, measure

# LogLead's train_* method -> its keyword arguments (no label filtering: the training is unlabeled)
VECTOR_DETECTORS = {
    "IsolationForest": {"filter_anos": False},
    "KMeans": {"filter_anos": False},
    "RarityModel": {"filter_anos": False},
    "OneClassSVM": {},
    "LOF": {"filter_anos": False},
}
COUNT_DETECTORS = {"OOVDetector": {"filter_anos": False}}
REPRESENTATIONS = {"words": "e_words", "drain": "e_event_drain_id"}
LABEL_COLUMNS = ("normal", "anomaly")


def loglead_unavailable() -> str | None:
    """Why LogLead cannot run here, or None."""
    try:
        import loglead  # noqa: F401
        from loglead import AnomalyDetector  # noqa: F401  (imports sklearn, xgboost)
    except ImportError as exc:
        return f"not installed ({exc}); `pip install loglead` to add these rows"
    return None


@dataclass
class _Part:
    """One part of the split, loaded and enhanced by LogLead."""

    df_seq: Any  # polars.DataFrame (an optional import): one row per session, harness order
    seconds: float


def _fresh_drain() -> None:
    """LogLead keeps one module-level Drain miner; a fresh one per run keeps runs independent."""
    from drain3 import TemplateMiner
    from loglead import parsers

    parsers.DrainTemplateMinerNoMasking = TemplateMiner(
        config=parsers.DrainTemplateMinerNoMasking.config
    )


def _load_part(lines: LogLines, ids: np.ndarray, data: BenchmarkData) -> _Part:
    import polars as pl
    from loglead.enhancers import EventLogEnhancer, SequenceEnhancer
    from loglead.loaders import HDFSLoader

    started = time.perf_counter()
    raw = pl.DataFrame({"column_1": lines.lines.to_pylist()})
    loader = HDFSLoader(filename=str(data.log_path), df=raw,
                        labels_file_name=str(data.labels_path))
    df = loader.execute()
    enhancer = EventLogEnhancer(df)
    enhancer.mask()
    enhancer.words("e_message_normalized")
    df = enhancer.parse_drain()
    sequences = SequenceEnhancer(df=df, df_seq=loader.df_seq)
    sequences.seq_len()
    sequences.tokens("e_words")
    df_seq = sequences.events("e_event_drain_id").drop(LABEL_COLUMNS)
    order = pl.DataFrame({"seq_id": [str(i) for i in ids]})
    df_seq = order.join(df_seq, on="seq_id", how="inner", maintain_order="left")
    return _Part(df_seq, time.perf_counter() - started)


def _scores(sad, df_seq, matrix, detector: str, kwargs: dict) -> tuple[np.ndarray, np.ndarray]:
    """(continuous score, LogLead's own 0/1 decision) of ``df_seq`` through ``predict``."""
    sad.test_df, sad.X_test, sad.X_test_no_anos = df_seq, matrix, matrix
    if detector == "OOVDetector":  # it binds the frame it scores when created
        sad.train_OOVDetector(**kwargs)
    predicted = sad.predict()
    return (predicted["pred_ano_proba"].to_numpy().astype(np.float64),
            predicted["pred_ano"].to_numpy().astype(np.float64))


def run_loglead(
    data: BenchmarkData, seed: int = 0, contamination: float | str = "auto"
) -> tuple[list[MethodResult], list[Skipped]]:
    reason = loglead_unavailable()
    if reason is None and data.parsed.format.name != "hdfs":
        reason = f"LogLead needs a loader per dataset; this harness wires its HDFSLoader only " \
                 f"(format here: {data.parsed.format.name})"
    if reason:
        return [], [Skipped("LogLead", reason)]

    from loglead import AnomalyDetector
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    _fresh_drain()
    train = _load_part(data.train_lines, data.split.train_ids, data)
    test = _load_part(data.test_lines, data.eval_ids, data)
    scored_ids = test.df_seq["seq_id"].to_list()
    labels = pd.Series(data.eval_labels, index=data.eval_ids.astype(str)).reindex(scored_ids)
    skipped = []
    if len(scored_ids) < len(data.eval_ids):
        skipped.append(Skipped("LogLead (some sessions)",
                               f"its loader kept {len(scored_ids):,} of {len(data.eval_ids):,} "
                               "test sessions (it keys each line by its first block id)"))
    results: list[MethodResult] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "data has no labels", ConvergenceWarning
        for representation, column in REPRESENTATIONS.items():
            for detectors, vectorizer in ((VECTOR_DETECTORS, TfidfVectorizer),
                                          (COUNT_DETECTORS, CountVectorizer)):
                sad = AnomalyDetector(item_list_col=column, print_scores=False, auc_roc=True)
                sad.train_df, sad.test_df = train.df_seq, test.df_seq
                started = time.perf_counter()
                sad.prepare_train_test_data(vectorizer_class=vectorizer)
                prepare_seconds = time.perf_counter() - started
                x_train, x_test = sad.X_train, sad.X_test
                for detector, kwargs in detectors.items():
                    np.random.seed(seed)  # LogLead leaves random_state unset: sklearn uses this
                    started = time.perf_counter()
                    getattr(sad, f"train_{detector}")(**kwargs)
                    train_scores, _ = _scores(sad, train.df_seq, x_train, detector, kwargs)
                    threshold = label_free_threshold(train_scores, None, contamination)
                    fit_seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    scores, own_decision = _scores(sad, test.df_seq, x_test, detector, kwargs)
                    score_seconds = time.perf_counter() - started
                    row = measure(
                        f"LogLead {detector}", "", "loglead", representation, scores,
                        labels.to_numpy(), threshold, threshold_rule_text(contamination),
                        train_seconds=train.seconds + prepare_seconds + fit_seconds,
                        score_seconds=test.seconds + score_seconds,
                        score_lines=len(data.test_lines),
                    )
                    row.extra["f1_own_rule"] = evaluate_scores(
                        own_decision, labels.to_numpy(), 0.5).f1
                    results.append(row)
    return results, skipped

"""TinyLogBERT in the benchmark: trained here on the train part, and the shipped checkpoint.

Rows come from the public API only (``fit``, ``score``, the session table). The final ``score`` is
judged at the model's own label-free threshold; each standardised signal the score combines
(the session table's ``z_*`` columns) is reported as a variant with ROC/PR only, to show what each
contributes. Only columns present are reported, so the rows follow the model as it is tuned.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tinylogbert.io.log_reader import LogLines, read_log_file
from tinylogbert.scoring.evaluate import align_labels, read_labels
from tinylogbert.scoring.results import ScoreResult

from .data import BenchmarkData
from .report import MethodResult, Skipped, measure


def model_threshold_rule(contamination: float | str) -> str:
    return f"the model's own, from its training sessions (contamination={contamination})"


@dataclass(frozen=True)
class TinyLogBERTSettings:
    """What to train. ``quick``: a tiny model in seconds, for tests; never for the README table."""

    quick: bool = False
    epochs: int = 5
    head_epochs: int | None = None  # None: the detector's own default (TrainConfig)
    steps_per_epoch: int = 0
    batch_size: int = 32
    clean_epochs: int = 0
    robust_prior: bool = True
    seed: int = 0
    threads: int = 0
    contamination: float | str = "auto"

    def detector(self):
        from tinylogbert.model.tinylogbert_model import ModelConfig
        from tinylogbert.model.training import TrainConfig
        from tinylogbert.scoring.detector import TinyLogBERTDetector

        if self.quick:
            model = ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64)
            training = TrainConfig(epochs=1, head_epochs=1, steps_per_epoch=8, batch_size=16,
                                   seed=self.seed)
            return TinyLogBERTDetector(model_config=model, training=training, vocab_size=200,
                                       contamination=self.contamination,
                                       num_threads=self.threads or None)
        head = {} if self.head_epochs is None else {"head_epochs": self.head_epochs}
        training = TrainConfig(epochs=self.epochs, steps_per_epoch=self.steps_per_epoch,
                               batch_size=self.batch_size, seed=self.seed,
                               clean_epochs=self.clean_epochs, robust_prior=self.robust_prior,
                               **head)
        return TinyLogBERTDetector(training=training, contamination=self.contamination,
                                   num_threads=self.threads or None)

    def describe(self) -> str:
        if self.quick:
            return "quick: tiny model (hidden 32, 1 layer), 8 steps per phase: a smoke test"
        head = "default" if self.head_epochs is None else self.head_epochs
        robust = "robust prior" if self.robust_prior else "plain prior"
        return (f"BERT-mini defaults, {self.epochs} MLM + {self.clean_epochs} clean + {head} head "
                f"epochs, {robust}, batch {self.batch_size}, seed {self.seed}")


def session_rows(
    result: ScoreResult, ids: np.ndarray, labels: np.ndarray, method: str, family: str,
    threshold: float, threshold_rule: str, **timing,
) -> list[MethodResult]:
    """One row for the final score (with F1) and one per ``z_*`` signal (ROC/PR only)."""
    frame = result.session_frame.set_index("session_id").reindex(pd.Index(ids.astype(str)))
    rows = [measure(method, "score", family, "lines", frame["score"].to_numpy(), labels,
                    threshold, threshold_rule, **timing)]
    for column in [c for c in frame.columns if c.startswith("z_")]:
        rows.append(measure(method, column, family, "lines", frame[column].to_numpy(), labels,
                            **timing))
    return rows


def run_tinylogbert(data: BenchmarkData, settings: TinyLogBERTSettings) -> list[MethodResult]:
    """Fit on the train part's lines (no labels), score the test part's lines."""
    detector = settings.detector()
    started = time.perf_counter()
    detector.fit(data.train_lines)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    result = detector.score(data.test_lines)
    score_seconds = time.perf_counter() - started
    rows = session_rows(
        result, data.eval_ids, data.eval_labels, "TinyLogBERT", "tinylogbert",
        detector.threshold_, model_threshold_rule(detector.contamination),
        train_seconds=train_seconds, score_seconds=score_seconds,
        score_lines=len(data.test_lines),
    )
    for row in rows:
        row.note = settings.describe()
    return rows


def run_checkpoint(
    checkpoint: Path, heldout_log: Path, heldout_labels: Path, threads: int = 0
) -> tuple[list[MethodResult], list[Skipped]]:
    """The shipped model on blocks after its training data: never seen, never tuned on."""
    from tinylogbert.model.checkpoint import DETECTOR_FILE
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    if not (checkpoint / DETECTOR_FILE).exists():
        return [], [Skipped("Shipped checkpoint", f"no trained model in {checkpoint}/")]
    for path in (heldout_log, heldout_labels):
        if not path.exists():
            return [], [Skipped("Shipped checkpoint", f"{path}: no such file")]
    detector = TinyLogBERTDetector.load(checkpoint)
    if threads:
        detector.num_threads = threads
    lines: LogLines = read_log_file(heldout_log)
    started = time.perf_counter()
    result = detector.score(lines)
    score_seconds = time.perf_counter() - started
    ids = result.session_frame["session_id"].to_numpy().astype(object)
    labels = align_labels(ids, read_labels(heldout_labels))
    rows = session_rows(
        result, ids[labels >= 0], labels[labels >= 0], "Shipped checkpoint", "checkpoint",
        detector.threshold_, model_threshold_rule(detector.contamination),
        train_seconds=detector.training_summary_.get("train_seconds"),
        score_seconds=score_seconds, score_lines=len(lines),
    )
    for row in rows:
        row.note = f"{checkpoint} on {heldout_log.name}; train s as recorded in the checkpoint"
    return rows, []

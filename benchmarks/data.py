"""Load a labelled log once and cut it into the unlabeled train part and the labelled test part."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tinylogbert.errors import FormatError, LabelError
from tinylogbert.io.log_parser import ParsedLog, parse_log, require_some_parsed
from tinylogbert.io.log_reader import LogLines, read_log_file
from tinylogbert.scoring.evaluate import align_labels, read_labels
from tinylogbert.sessions.grouping import SessionConfig, SessionIndex, build_sessions

from .split import SessionSplit, chronological_split, take_lines


@dataclass(frozen=True)
class BenchmarkData:
    """Everything every method is given; labels are only ever read to evaluate test scores."""

    log_path: Path
    labels_path: Path
    lines: LogLines
    parsed: ParsedLog
    sessions: SessionIndex
    session_pattern: str  # the id regex sessions are built with
    split: SessionSplit
    labels: pd.Series  # 0/1 by session id
    train_lines: LogLines
    test_lines: LogLines

    @property
    def test_labels(self) -> np.ndarray:
        """0/1 per test session (chronological order), -1 where the label file says nothing."""
        return align_labels(self.split.test_ids, self.labels)

    @property
    def eval_ids(self) -> np.ndarray:
        """The test sessions every method is judged on: those the label file names."""
        return self.split.test_ids[self.test_labels >= 0]

    @property
    def eval_labels(self) -> np.ndarray:
        return self.test_labels[self.test_labels >= 0]

    def summary(self) -> dict:
        train_labels = align_labels(self.split.train_ids, self.labels)
        test_labels = self.test_labels
        return {
            "log": str(self.log_path),
            "labels": str(self.labels_path),
            "format": self.parsed.format.name,
            "sessions_by": self.sessions.strategy,
            "lines": len(self.lines),
            "unparsed_lines": self.parsed.n_unparsed,
            "sessions": len(self.sessions),
            "train_sessions": int(self.split.n_train),
            "train_lines": len(self.train_lines),
            "train_anomalies_unused": int((train_labels == 1).sum()),
            "test_sessions": len(self.split.test_ids),
            "test_lines": len(self.test_lines),
            "test_anomalies": int((test_labels == 1).sum()),
            "test_unlabelled": int((test_labels < 0).sum()),
            "split": self.split.describe(),
        }


def load_benchmark_data(
    log_path: str | Path,
    labels_path: str | Path,
    train_fraction: float = 0.5,
    log_format: str = "auto",
    session_id_pattern: str | None = None,
) -> BenchmarkData:
    """Read, parse and split ``log_path``; sessions must carry ids so labels can name them."""
    log_path, labels_path = Path(log_path), Path(labels_path)
    lines = read_log_file(log_path)
    labels = read_labels(labels_path)
    parsed = parse_log(lines, log_format)
    require_some_parsed(parsed)
    pattern = session_id_pattern or parsed.format.session_pattern
    if not pattern:
        raise FormatError(
            f"{log_path}: format {parsed.format.name!r} has no session id; the benchmark labels "
            "sessions by id, so give --session-id REGEX"
        )
    sessions = build_sessions(parsed, SessionConfig(by="id", id_pattern=pattern))
    split = chronological_split(sessions, train_fraction)
    test_labels = align_labels(split.test_ids, labels)
    if not 0 < int((test_labels == 1).sum()) < int((test_labels >= 0).sum()):
        raise LabelError(
            f"{labels_path}: the test part needs both normal and anomalous labelled sessions "
            "(try another --train-fraction)"
        )
    return BenchmarkData(
        log_path=log_path,
        labels_path=labels_path,
        lines=lines,
        parsed=parsed,
        sessions=sessions,
        session_pattern=pattern,
        split=split,
        labels=labels,
        train_lines=take_lines(lines, split.train_lines, "train"),
        test_lines=take_lines(lines, split.test_lines, "test"),
    )

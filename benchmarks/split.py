"""Chronological train/test split of a log by session (HDFS block) first appearance.

Why by first appearance and not at random: a detector deployed on a system is trained on what
happened *before* and judged on what comes *after*; a random split lets a model see the future
(and near-duplicates of its test sessions), which inflates every method. Sessions are ordered by
the line on which each first appears; the first ``train_fraction`` of them train, the rest test.
Training receives the lines of its sessions only, and no labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tinylogbert.errors import LogInputError
from tinylogbert.io.log_reader import LogLines
from tinylogbert.sessions.grouping import SessionIndex


@dataclass(frozen=True)
class SessionSplit:
    """Sessions in chronological order, cut once into a train head and a test tail."""

    session_ids: np.ndarray  # object array of str, ordered by first appearance
    first_line: np.ndarray  # 0-based index of each session's first line (ascending)
    n_train: int
    train_lines: np.ndarray  # sorted 0-based line indices belonging to a train session
    test_lines: np.ndarray  # sorted 0-based line indices belonging to a test session

    @property
    def train_ids(self) -> np.ndarray:
        return self.session_ids[: self.n_train]

    @property
    def test_ids(self) -> np.ndarray:
        return self.session_ids[self.n_train :]

    @property
    def boundary_line(self) -> int:
        """0-based line on which the first test session starts."""
        return int(self.first_line[self.n_train])

    def describe(self) -> str:
        return (
            f"{len(self.session_ids):,} sessions by first appearance: first {self.n_train:,} "
            f"({len(self.train_lines):,} lines) train, last {len(self.test_ids):,} "
            f"({len(self.test_lines):,} lines) test; test starts at line {self.boundary_line + 1:,}"
        )


def chronological_split(index: SessionIndex, train_fraction: float = 0.5) -> SessionSplit:
    """Split ``index``'s sessions by first appearance; raise ``LogInputError`` if a side is empty.

    A line naming sessions on both sides (an HDFS line with two block ids) goes to both parts:
    each part must hold *every* line of its sessions, or a session would be scored truncated.
    """
    if not 0.0 < train_fraction < 1.0:
        raise LogInputError(f"train fraction must be between 0 and 1, got {train_fraction}")
    n_sessions = len(index)
    n_train = round(train_fraction * n_sessions)
    if n_train < 1 or n_train >= n_sessions:
        raise LogInputError(
            f"cannot split {n_sessions:,} sessions {train_fraction:.0%}/{1 - train_fraction:.0%}: "
            "both train and test need at least one session"
        )
    # members are in line order within each session, so a session's first member is its first line
    first_line = index.members[index.offsets[:-1]]
    order = np.argsort(first_line, kind="stable")
    rank = np.empty(n_sessions, dtype=np.int64)
    rank[order] = np.arange(n_sessions)
    member_is_train = rank[index.member_session()] < n_train
    return SessionSplit(
        session_ids=index.ids[order].astype(object),
        first_line=first_line[order],
        n_train=n_train,
        train_lines=np.unique(index.members[member_is_train]),
        test_lines=np.unique(index.members[~member_is_train]),
    )


def take_lines(lines: LogLines, indices: np.ndarray, part: str) -> LogLines:
    """The lines at ``indices`` (0-based, in order) as a new log: what a detector is given."""
    taken = lines.lines.take(pa.array(indices, type=pa.int64()))
    return LogLines(taken, source=f"{lines.source} [{part}]", replaced_bytes=lines.replaced_bytes)

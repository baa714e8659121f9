"""The distinct lines of a scored log, after masking, next to what the model knows about each one.

A "template" is a normalised line (``normalize.normalize_messages``: ids, numbers and paths
masked, lower-cased words): the unit the model reads and counts. Its rarity in a session's score
comes from how often the model saw it in training, so the table puts side by side how often each
template occurs here, how often it occurred in training, how rare the model finds it, when it
first and last appears here, and how many of the sessions holding it are flagged. Templates the
model's vocabulary lacks (never seen in training, or seen fewer than ``min_line_count`` times)
are the new ones: the Timeline marks where each first appears.

Split in two so a threshold change stays cheap: ``TemplateIndex`` (which line is which template,
which sessions hold it) is built once per scored log; ``template_table`` adds the flagged share at
the result's threshold with a few bincounts.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
from tinylogbert.scoring.results import ScoreResult

if TYPE_CHECKING:
    from tinylogbert.scoring.detector import TinyLogBERTDetector

TEMPLATE_COLUMNS = [
    "template", "new", "count", "train_count", "rarity", "first_line_no", "first_timestamp",
    "last_line_no", "last_timestamp", "sessions", "flagged_sessions", "flagged_share", "example",
]


@dataclass(frozen=True)
class ModelLines:
    """What a trained model keeps of its training log's lines: its line vocabulary, each line's
    training count, and the rarity (``-log p(line)``, nats) it gives a line.

    Built once per scored log (``from_detector``), so the tables need no model afterwards.
    """

    vocabulary: tuple[str, ...]
    train_counts: tuple[int, ...]  # per vocabulary line
    min_count: int  # training occurrences a line needed to enter the vocabulary
    robust: bool  # counts leave out the training sessions the model flagged in its own log
    rarity: dict[str, float]  # for the vocabulary and the texts ``from_detector`` was given

    @classmethod
    def from_detector(cls, detector: TinyLogBERTDetector, texts: Iterable[str] = ()
                      ) -> ModelLines:
        """The detector's line statistics, with the rarity of its vocabulary and of ``texts``
        (the log's distinct lines) as scoring computes it (before the severity weight)."""
        from tinylogbert.model.configs import FIRST_LINE_CLASS

        vocabulary = tuple(detector.line_vocab_)
        counts = detector.line_class_counts_[FIRST_LINE_CLASS:FIRST_LINE_CLASS + len(vocabulary)]
        wanted = list(dict.fromkeys([*vocabulary, *texts]))
        rarity = detector.line_rarity(wanted)
        return cls(
            vocabulary=vocabulary,
            train_counts=tuple(int(c) for c in counts),
            min_count=max(int(getattr(detector, "min_line_count", 1) or 1), 1),
            robust=bool(detector.training.robust_prior),
            rarity=dict(zip(wanted, (float(r) for r in rarity))),
        )

    @cached_property
    def train_count(self) -> dict[str, int]:
        return dict(zip(self.vocabulary, self.train_counts))

    def is_known(self, text: str) -> bool:
        return text in self.train_count


def distinct_lines(result: ScoreResult) -> tuple[list[str], np.ndarray]:
    """The log's distinct normalised lines, and per line the index of its own among them."""
    words = result.line_words
    if isinstance(words, pa.ChunkedArray):
        words = words.combine_chunks()
    if not pa.types.is_dictionary(words.type):
        words = words.dictionary_encode()
    texts = [t or "" for t in words.dictionary.to_pylist()]
    codes = words.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    # A null line (none in practice) and '' are the same template: merge duplicates.
    unique, remap = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    return [str(t) for t in unique], remap.reshape(-1)[codes] if len(codes) else codes


@dataclass(frozen=True)
class TemplateIndex:
    """Which template each line is and which sessions hold each template (no threshold)."""

    texts: list[str]
    line_template: np.ndarray  # per line: index into ``texts``
    count: np.ndarray  # per template: lines of this log
    first_line: np.ndarray  # per template: 0-based index of its first line
    last_line: np.ndarray
    pair_template: np.ndarray  # distinct (template, session) pairs: a template in a session
    pair_session: np.ndarray

    @property
    def n_templates(self) -> int:
        return len(self.texts)

    def position(self, text: str) -> int:
        """Index of ``text`` in ``texts``; ``-1`` when this log does not have it."""
        at = int(np.searchsorted(np.asarray(self.texts, dtype=object), text))
        return at if at < len(self.texts) and self.texts[at] == text else -1

    def sessions_with(self, text: str) -> np.ndarray:
        """Session indices (ascending) of the sessions holding at least one line of ``text``."""
        at = self.position(text)
        if at < 0:
            return np.zeros(0, dtype=np.int64)
        return np.sort(self.pair_session[self.pair_template == at])


def template_index(result: ScoreResult) -> TemplateIndex:
    """Group the lines of ``result`` by template (linear in lines, plus one sort of pairs)."""
    texts, line_template = distinct_lines(result)
    n = len(texts)
    count = np.bincount(line_template, minlength=n).astype(np.int64)
    # Every template occurs (the texts come from this log), so each gets a first and last line.
    _, first = np.unique(line_template, return_index=True)
    _, from_end = np.unique(line_template[::-1], return_index=True)
    last = len(line_template) - 1 - from_end
    index = result.sessions
    member_template = line_template[index.members]
    member_session = index.member_session()
    n_sessions = max(len(index), 1)
    pairs = np.unique(member_template * n_sessions + member_session)
    return TemplateIndex(texts, line_template, count, first.astype(np.int64),
                         last.astype(np.int64), pairs // n_sessions, pairs % n_sessions)


def template_table(
    index: TemplateIndex, result: ScoreResult, model: ModelLines,
    raw_lines: pa.Array | None = None, include_absent: bool = True,
) -> pd.DataFrame:
    """One row per template, most frequent here first (see ``TEMPLATE_COLUMNS``).

    ``flagged_share`` is the share of the sessions holding the template that are flagged at
    ``result``'s threshold. ``train_count`` is empty for templates outside the vocabulary (the
    model keeps no count for them); ``include_absent`` adds the vocabulary lines this log lacks
    (count 0). ``example`` is the first occurrence's raw line (``raw_lines``, indexed by line), or
    its message when the raw lines are not at hand.
    """
    flags = result.session_table["is_anomaly"].to_numpy(zero_copy_only=False).astype(bool)
    n = index.n_templates
    sessions = np.bincount(index.pair_template, minlength=n)
    flagged = np.bincount(index.pair_template, weights=flags[index.pair_session],
                          minlength=n).astype(np.int64)
    first, last = index.first_line, index.last_line
    lines = result.line_table
    line_no = lines["line_no"].to_numpy()
    timestamps = lines["timestamp"].to_numpy(zero_copy_only=False)
    source = raw_lines if raw_lines is not None else lines["message"]
    example = source.take(pa.array(first)).to_pylist() if n else []
    known = np.array([model.is_known(t) for t in index.texts], dtype=bool)
    frame = pd.DataFrame({
        "template": index.texts,
        "new": ~known,
        "count": index.count,
        "train_count": pd.array([model.train_count.get(t) for t in index.texts], dtype="Int64"),
        "rarity": [model.rarity.get(t, np.nan) for t in index.texts],
        "first_line_no": line_no[first] if n else [],
        "first_timestamp": timestamps[first] if n else [],
        "last_line_no": line_no[last] if n else [],
        "last_timestamp": timestamps[last] if n else [],
        "sessions": sessions,
        "flagged_sessions": flagged,
        "flagged_share": np.divide(flagged, sessions, out=np.zeros(n), where=sessions > 0),
        "example": example,
    }, columns=TEMPLATE_COLUMNS)
    if include_absent:
        present = set(index.texts)
        absent = [t for t in model.vocabulary if t not in present]
        if absent:
            frame = pd.concat([frame, pd.DataFrame({
                "template": absent, "new": False, "count": 0,
                "train_count": pd.array([model.train_count[t] for t in absent], dtype="Int64"),
                "rarity": [model.rarity.get(t, np.nan) for t in absent],
                "first_line_no": pd.array([None] * len(absent), dtype="Int64"),
                "last_line_no": pd.array([None] * len(absent), dtype="Int64"),
                "sessions": 0, "flagged_sessions": 0, "flagged_share": 0.0,
            }, columns=TEMPLATE_COLUMNS)], ignore_index=True)
    for column in ("first_line_no", "last_line_no"):
        frame[column] = frame[column].astype("Int64")
    return frame.sort_values(["count", "template"], ascending=[False, True],
                             kind="stable").reset_index(drop=True)


def filter_templates(frame: pd.DataFrame, text: str) -> pd.DataFrame:
    """Rows whose template or example contains ``text`` (case-insensitive, plain text)."""
    text = text.strip().lower()
    if not text:
        return frame
    hit = (frame["template"].str.lower().str.contains(text, regex=False)
           | frame["example"].fillna("").astype(str).str.lower().str.contains(text, regex=False))
    return frame[hit]

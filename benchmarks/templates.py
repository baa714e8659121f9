"""Turn lines into templates (event ids) and sessions into sequences of them, for the baselines.

Two template sources, each learned on the training lines only:

- ``words``: core's normalised words of a line (ids, numbers, paths, IPs masked away) *are* its
  template; no parser to fit, and the same text the TinyLogBERT model reads;
- ``drain3``: the field's standard online parser (He et al. 2017) with its default configuration;
  clusters are mined from the training lines, test lines are only *matched* against them
  (``TemplateMiner.match``), so a line no training cluster fits counts as an unseen template.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tinylogbert.errors import LogInputError
from tinylogbert.io.log_formats import LogFormat
from tinylogbert.io.log_parser import ParsedLog, parse_log
from tinylogbert.io.log_reader import LogLines
from tinylogbert.sessions.grouping import SessionConfig, build_sessions

TEMPLATE_SOURCES = ("words", "drain3")
UNSEEN = -1  # code of a template absent from the training lines


class WordsTemplates:
    """A line's template is its normalised words (``ParsedLog.words``)."""

    name = "words"

    def fit_keys(self, parsed: ParsedLog) -> np.ndarray:
        return self.keys(parsed)

    def keys(self, parsed: ParsedLog) -> np.ndarray:
        return parsed.words.to_numpy(zero_copy_only=False).astype(object)


class Drain3Templates:
    """Drain3 clusters, mined from training messages and matched (not learned) on test messages."""

    name = "drain3"

    def __init__(self) -> None:
        from drain3 import TemplateMiner  # a benchmark dependency, not a runtime one
        from drain3.template_miner_config import TemplateMinerConfig

        # Drain3's defaults, given explicitly: without a config it looks for drain3.ini in the
        # working directory (and warns when there is none).
        self.miner = TemplateMiner(config=TemplateMinerConfig())

    def fit_keys(self, parsed: ParsedLog) -> np.ndarray:
        add = self.miner.add_log_message
        return np.array([add(m)["cluster_id"] for m in _messages(parsed)], dtype=object)

    def keys(self, parsed: ParsedLog) -> np.ndarray:
        match = self.miner.match
        clusters = (match(m) for m in _messages(parsed))
        return np.array([c.cluster_id if c else None for c in clusters], dtype=object)


def _messages(parsed: ParsedLog) -> list[str]:
    return [m or "" for m in parsed.table["message"].to_pylist()]


def template_source(name: str) -> WordsTemplates | Drain3Templates:
    if name == "words":
        return WordsTemplates()
    if name == "drain3":
        return Drain3Templates()
    raise LogInputError(f"unknown template source {name!r}; use one of {TEMPLATE_SOURCES}")


@dataclass(frozen=True)
class TemplateVocabulary:
    """Template key -> code, learned from training lines, most frequent first."""

    codes: dict
    counts: np.ndarray  # training line count per code

    @classmethod
    def fit(cls, keys: np.ndarray) -> TemplateVocabulary:
        counts = pd.Series(keys, dtype=object).value_counts(sort=True, dropna=True)
        return cls({k: i for i, k in enumerate(counts.index)}, counts.to_numpy(dtype=np.int64))

    def __len__(self) -> int:
        return len(self.codes)

    def encode(self, keys: np.ndarray) -> np.ndarray:
        codes = pd.Series(keys, dtype=object).map(self.codes)
        return codes.fillna(UNSEEN).to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class SessionEvents:
    """Each session as the template codes of its lines, in line order (``UNSEEN`` for new ones)."""

    ids: np.ndarray
    offsets: np.ndarray  # codes[offsets[i]:offsets[i+1]] are session i's
    codes: np.ndarray
    vocabulary: TemplateVocabulary

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def n_lines(self) -> int:
        return len(self.codes)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def member_session(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.ids)), self.lengths())

    def count_matrix(self) -> sp.csr_matrix:
        """Sessions x (training templates + 1) event counts; the last column counts unseen lines."""
        n_columns = len(self.vocabulary) + 1
        columns = np.where(self.codes == UNSEEN, n_columns - 1, self.codes)
        data = np.ones(len(columns), dtype=np.float64)
        matrix = sp.csr_matrix(
            (data, (self.member_session(), columns)), shape=(len(self.ids), n_columns)
        )
        matrix.sum_duplicates()
        return matrix


@dataclass(frozen=True)
class PreparedEvents:
    train: SessionEvents
    test: SessionEvents
    train_seconds: float  # parse + sessions + templates of the training lines
    test_seconds: float  # the same for the test lines (templates matched, not learned)


def prepare_events(
    source_name: str,
    train_lines: LogLines,
    test_lines: LogLines,
    train_ids: np.ndarray,
    test_ids: np.ndarray,
    log_format: LogFormat,
    session_pattern: str,
) -> PreparedEvents:
    """Parse each part on its own, learn templates on train, encode both parts' sessions."""
    source = template_source(source_name)
    sessions = SessionConfig(by="id", id_pattern=session_pattern)

    started = time.perf_counter()
    parsed = parse_log(train_lines, log_format)
    keys = source.fit_keys(parsed)
    vocabulary = TemplateVocabulary.fit(keys)
    train = _events(parsed, build_sessions(parsed, sessions), vocabulary.encode(keys), train_ids,
                    vocabulary)
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    parsed = parse_log(test_lines, log_format)
    codes = vocabulary.encode(source.keys(parsed))
    test = _events(parsed, build_sessions(parsed, sessions), codes, test_ids, vocabulary)
    test_seconds = time.perf_counter() - started
    return PreparedEvents(train, test, train_seconds, test_seconds)


def _events(
    parsed: ParsedLog, index, line_codes: np.ndarray, wanted: np.ndarray,
    vocabulary: TemplateVocabulary,
) -> SessionEvents:
    """The sessions ``wanted`` (in that order) of a parsed part, as template code sequences."""
    position = pd.Index(index.ids.astype(str)).get_indexer(pd.Index(wanted.astype(str)))
    if (position < 0).any():
        missing = wanted[position < 0][0]
        raise LogInputError(f"{parsed.source}: session {missing!r} is missing from its own part")
    starts, ends = index.offsets[position], index.offsets[position + 1]
    lengths = ends - starts
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    members = np.concatenate([index.members[a:b] for a, b in zip(starts, ends, strict=True)]
                             or [np.empty(0, dtype=np.int64)])
    return SessionEvents(
        ids=np.asarray(wanted, dtype=object), offsets=offsets, codes=line_codes[members],
        vocabulary=vocabulary,
    )

"""A bounded cache of what the model said about each distinct session sequence, across calls.

Why: sessions repeat, not only within one log but across the requests an API serves and the
files a dashboard user uploads. A sequence is keyed by its normalised lines (their text, not
their row numbers, which are local to one call), so a block seen before costs a dictionary
lookup instead of two forward passes. Thread-safe: the API scores in worker threads.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

import numpy as np
from tinylogbert.model.configs import N_PSEUDO_LINES
from tinylogbert.model.onnx_runtime import OnnxTinyLogBERT
from tinylogbert.model.sequence_scores import SequenceScores
from tinylogbert.model.session_corpus import SessionCorpus

if TYPE_CHECKING:
    from tinylogbert.model.tinylogbert_model import TinyLogBERT

# SequenceScores fields that hold one value per sequence; the others hold one per position.
PER_SEQUENCE = ("head", "embedding", "end_surprisal", "end_expected_class", "end_expected_prob",
                "end_entropy")


@dataclass(frozen=True)
class _Entry:
    values: dict[str, np.ndarray]  # per-sequence values (scalars as 0-d) and per-position arrays
    has_embedding: bool


class SequenceCache:
    def __init__(self, max_sequences: int = 50_000) -> None:
        self.max_sequences = max_sequences
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    @staticmethod
    def keys(corpus: SessionCorpus) -> list[str]:
        texts = corpus.line_texts
        return ["\n".join(texts[r - N_PSEUDO_LINES] for r in seq) for seq in corpus.sequences]

    def score(
        self, model: TinyLogBERT | OnnxTinyLogBERT, corpus: SessionCorpus, on_progress=None,
        bidirectional_pass: bool = True,
    ) -> SequenceScores:
        """``score_sequences`` (torch or ONNX Runtime, by the model) for the sequences not cached
        yet; the rest from the cache."""
        keys = self.keys(corpus)
        with self._lock:
            found = [self._entries.get(k) for k in keys]
            for k, entry in zip(keys, found):
                if entry is not None:
                    self._entries.move_to_end(k)
        todo = [i for i, e in enumerate(found) if e is None or (bidirectional_pass and not e.has_embedding)]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            sub = _sub_corpus(corpus, todo)
            if isinstance(model, OnnxTinyLogBERT):
                fresh = model.score_sequences(sub, on_progress, bidirectional_pass=bidirectional_pass)
            else:  # imported here: a process scoring with ONNX Runtime never imports torch
                from tinylogbert.model.inference import score_sequences

                fresh = score_sequences(model, sub, on_progress, bidirectional_pass=bidirectional_pass)
            new = {keys[i]: _entry(fresh, sub, j, bidirectional_pass) for j, i in enumerate(todo)}
            for i in todo:
                found[i] = new[keys[i]]
            with self._lock:
                self._entries.update(new)
                while len(self._entries) > self.max_sequences:
                    self._entries.popitem(last=False)
        elif on_progress:
            on_progress(1.0)
        out = _assemble(found, corpus)
        if not bidirectional_pass:  # the same answer whatever the cache held: no head, no embedding
            out.head[:] = np.nan
            out.embedding[:] = 0.0
        return out


def _sub_corpus(corpus: SessionCorpus, todo: list[int]) -> SessionCorpus:
    sequences = [corpus.sequences[i] for i in todo]
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    return replace(
        corpus,
        sequences=sequences,
        counts=corpus.counts[todo],
        seq_offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    )


def _entry(scores: SequenceScores, corpus: SessionCorpus, j: int, has_embedding: bool) -> _Entry:
    start, end = corpus.seq_offsets[j], corpus.seq_offsets[j + 1]
    values = {}
    for f in fields(SequenceScores):
        array = getattr(scores, f.name)
        values[f.name] = array[j].copy() if f.name in PER_SEQUENCE else array[start:end].copy()
    return _Entry(values, has_embedding)


def _assemble(entries: list[_Entry], corpus: SessionCorpus) -> SequenceScores:
    out = {}
    for f in fields(SequenceScores):
        parts = [e.values[f.name] for e in entries]
        if f.name in PER_SEQUENCE:
            out[f.name] = np.stack(parts) if parts else np.zeros(0, dtype=np.float32)
        else:
            out[f.name] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    if not entries:
        out["embedding"] = np.zeros((0, 0), dtype=np.float32)
    return SequenceScores(**out)

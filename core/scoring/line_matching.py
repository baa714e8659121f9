"""Open-world lines: a line the model does not know by name is judged by the known line it means.

Why: the line classes are exact normalised texts, so one word that a new release adds to a
common message ("terminating" -> "is terminating") made every session that holds it an
``[OTHER]`` line, as rare as a never-seen fault, and flagged every session of the log. The
network already reads every line through its words: a line's input vector is the mean of its
word-piece embeddings, trained so that the encoder can tell the training lines apart. Here a new
line is compared with every known line in that space (cosine similarity), and the known line it
is closest to stands in for it, when it is closer to that line than the training log's *other*
distinct messages are (its nearest neighbour among them, capped at the median of those
neighbours' similarities over the vocabulary): two lines that close are one message written two
ways, not two messages. What stays different is a cost, in nats:
``-log m`` with ``m = (sim - cut) / (1 - cut)`` the share of the remaining distance that the
rewording closes, added to the line's rarity. A message unlike anything seen has no such match
and keeps the ``[OTHER]`` rarity with its word back-off, so it stays surprising; a reworded
error line takes the error line's (rare) class, and its own words still feed the severity
prior. ``docs/model_notes.md`` records the alternatives measured (text Jaccard matching, no
matching).

The matcher uses only what a checkpoint already holds (word-piece embeddings, tokenizer, line
vocabulary), as numpy, so the torch and ONNX runtimes match alike and old checkpoints gain it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tinylogbert.model.configs import FIRST_LINE_CLASS, OTHER_LINE_CLASS

# A known line whose nearest distinct neighbour is further than this still needs at least this
# similarity: a match must share most of its meaning, not only be the least far of few lines.
MATCH_FLOOR = 0.5
# Distinct new texts whose matches are remembered across calls (a live stream repeats them).
CACHE_SIZE = 100_000


@dataclass(frozen=True)
class Matches:
    """Per text: the class it is scored as (``OTHER_LINE_CLASS`` when nothing is close), the
    nearest known line (index into the vocabulary, -1 for an empty vocabulary), its cosine
    similarity, and the novelty cost in nats (``inf`` when unmatched)."""

    line_class: np.ndarray
    nearest: np.ndarray
    similarity: np.ndarray
    cost: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        return self.line_class != OTHER_LINE_CLASS


class LineMatcher:
    """Nearest known line in the network's line-embedding space, with a calibrated cut."""

    def __init__(self, word_embeddings: np.ndarray, tokenizer, vocab: list[str],
                 floor: float = MATCH_FLOOR) -> None:
        self.embeddings = np.asarray(word_embeddings, dtype=np.float32)
        self.tokenizer = tokenizer
        self.vocab = list(vocab)
        self.vectors = self._vectors(self.vocab)
        self.cut = self._cuts(self.vectors, floor)
        self._cache: dict[str, tuple[int, int, float, float]] = {}

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Unit line vectors: the mean word-piece embedding, as the network embeds a line."""
        if not texts:
            return np.zeros((0, self.embeddings.shape[1]), dtype=np.float32)
        ids = self.tokenizer.encode_lines(texts)
        keep = (ids != self.tokenizer.pad_id).astype(np.float32)
        vec = (self.embeddings[ids] * keep[..., None]).sum(1) / np.maximum(keep.sum(1), 1.0)[:, None]
        return vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)

    @staticmethod
    def _cuts(vectors: np.ndarray, floor: float) -> np.ndarray:
        """Per known line: the similarity of its nearest *other* known line (or ``floor``), but
        no higher than the median of those similarities over the vocabulary. A message logged
        with several values of a field (``user root``, ``user guest``) has near-twins among the
        known lines; their closeness says how alike its own variants are, not how far a
        rewording of it may go: uncapped, a renamed component or one added word on Linux's
        ``authentication failure`` lines (twins at 0.95, the rewording at 0.93) matched nothing,
        and 52% of the windows were flagged after 5% of the messages were reworded."""
        if len(vectors) < 2:
            return np.full(len(vectors), floor, dtype=np.float32)
        sim = vectors @ vectors.T
        np.fill_diagonal(sim, -1.0)
        nearest = sim.max(1)
        cap = max(float(np.median(nearest)), floor)
        return np.clip(nearest, floor, cap).astype(np.float32)

    def match(self, texts: list[str]) -> Matches:
        """Matches for ``texts`` (new lines: the caller leaves the known ones out)."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo and len(self.vocab):
            sims = self._vectors(todo) @ self.vectors.T
            nearest = sims.argmax(1)
            best = sims[np.arange(len(todo)), nearest]
            cut = self.cut[nearest]
            closeness = (best - cut) / np.maximum(1.0 - cut, 1e-6)
            if len(self._cache) + len(todo) > CACHE_SIZE:
                self._cache.clear()
            for t, j, s, m in zip(todo, nearest, best, closeness):
                hit = m > 0.0
                self._cache[t] = (int(j) + FIRST_LINE_CLASS if hit else OTHER_LINE_CLASS,
                                  int(j), float(s), float(-np.log(min(m, 1.0))) if hit else np.inf)
        elif todo:
            for t in todo:
                self._cache[t] = (OTHER_LINE_CLASS, -1, 0.0, np.inf)
        rows = [self._cache[t] for t in texts]
        return Matches(
            line_class=np.array([r[0] for r in rows], dtype=np.int64),
            nearest=np.array([r[1] for r in rows], dtype=np.int64),
            similarity=np.array([r[2] for r in rows], dtype=np.float64),
            cost=np.array([r[3] for r in rows], dtype=np.float64),
        )


class OpenVocabulary:
    """The ``text -> class`` lookup ``build_corpus`` takes: known lines by name, new lines by
    their match (computed for a log's distinct new texts at once)."""

    def __init__(self, known: dict[str, int], matches: dict[str, int]) -> None:
        self.known, self.matches = known, matches

    def get(self, text: str, default: int = OTHER_LINE_CLASS) -> int:
        got = self.known.get(text)
        return got if got is not None else self.matches.get(text, default)

    def __bool__(self) -> bool:
        return bool(self.known)

"""The line prior's counting: training occurrences per line class and per word, and the word
back-off of a new line. Shared by ``detector`` (fit, scoring) and ``adapt`` (counts added to a
trained model's), which therefore import it rather than each other."""
from __future__ import annotations

import math

import numpy as np
from tinylogbert.model.configs import OTHER_LINE_CLASS


def _class_counts(
    texts: list[str], counts: np.ndarray, line_class: dict[str, int], n_classes: int
) -> list[int]:
    """Training occurrences per line class (lines outside the vocabulary pool in OTHER)."""
    out = np.zeros(n_classes, dtype=np.int64)
    for text, count in zip(texts, counts):
        out[line_class.get(text, OTHER_LINE_CLASS)] += int(count)
    return out.tolist()


def _word_counts(texts: list[str], counts: np.ndarray) -> dict[str, int]:
    """Training occurrences of each word of the normalised lines (the back-off of new lines)."""
    out: dict[str, int] = {}
    for text, count in zip(texts, counts):
        for word in text.split():
            out[word] = out.get(word, 0) + int(count)
    return dict(sorted(out.items()))


def _word_surprisal(texts: list[str], word_counts: dict[str, int]) -> np.ndarray:
    """Mean ``-log p(word)`` per text (add-half smoothed: an unseen word is the rarest)."""
    total = sum(word_counts.values()) + 0.5 * (len(word_counts) + 1)
    out = np.zeros(len(texts))
    for i, text in enumerate(texts):
        words = text.split()
        if words:
            out[i] = np.mean([-math.log((word_counts.get(w, 0) + 0.5) / total) for w in words])
    return out

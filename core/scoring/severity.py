"""What a log line says about itself: a severity prior from its level and its words.

Every operator reads the level first, and every log has one or writes its errors in words
("failed", "exception"). Rarity alone cannot tell a new FATAL message from a new INFO one (on a
chronological split of BGL about half of the later normal lines are messages never seen
before), so the line prior is weighted by this severity: ``rarity * (1 + severity)``. The prior is
fixed, not learned: it is the same universal reading of levels for every system, applied
without labels, and it only matters where a line is rare — a severe line that the training log
says often (HDFS's WARN ``got exception while serving``) keeps a low score.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Level names, lower-cased, to a rank: 0 routine, 1 warning, 2 error, 3 fatal.
LEVEL_RANKS: dict[str, float] = {
    **dict.fromkeys(("warn", "warning", "w"), 1.0),
    **dict.fromkeys(("error", "err", "severe", "e"), 2.0),
    **dict.fromkeys(("fatal", "failure", "critical", "crit", "alert", "emerg", "emergency",
                     "panic", "f", "c"), 3.0),
}
# Words (of the normalised message) that report an error whatever the level says.
ERROR_WORDS = (
    "error", "errors", "fail", "failed", "failure", "fatal", "exception", "panic", "timeout",
    "refused", "denied", "corrupt", "corrupted", "abort", "aborted", "crash", "crashed",
    "unable", "cannot", "invalid", "lost", "killed", "segfault", "unreachable",
)
ERROR_WORD_RANK = 2.0
_ERROR_PATTERN = r"(?:^|\s)(?:" + "|".join(ERROR_WORDS) + r")(?:\s|$)"


def line_severity(levels: pa.Array | pa.ChunkedArray, words: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Per line, in [0, 3]: the larger of the level's rank and ``ERROR_WORD_RANK`` when the
    normalised message holds an error word. Vectorised (Arrow's RE2 kernels)."""
    n = len(words)
    out = np.zeros(n, dtype=np.float64)
    if n == 0:
        return out
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(levels, pa.string())))
    encoded = pc.dictionary_encode(lowered)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    ranks = np.array([LEVEL_RANKS.get(str(v), 0.0) for v in encoded.dictionary.to_pylist()]
                     + [0.0])
    idx = encoded.indices.fill_null(len(ranks) - 1).to_numpy(zero_copy_only=False)
    out[:] = ranks[idx]
    has_error = pc.match_substring_regex(words, _ERROR_PATTERN).fill_null(False)
    out = np.maximum(out, ERROR_WORD_RANK * np.asarray(has_error, dtype=np.float64))
    return out

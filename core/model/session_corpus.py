"""Sessions as model input: a table of distinct lines and a set of distinct line sequences.

Why distinct: after masking, HDFS has ~20 distinct lines and its 6,900 sessions only ~1,400
distinct sequences. Each distinct line is tokenised once and each distinct sequence is scored
once; results are mapped back to every session and line. This is the biggest speed lever there is.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from tinylogbert.model.configs import (
    CLS_LINE,
    END_LINE_CLASS,
    FIRST_LINE_CLASS,
    MASK_LINE,
    N_PSEUDO_LINES,
    OTHER_LINE_CLASS,
    PAD_LINE,
)
from tinylogbert.model.log_tokenizer import LogTokenizer
from tinylogbert.sessions.grouping import SessionIndex


@dataclass
class SessionCorpus:
    line_texts: list[str]  # distinct normalised lines; table row = N_PSEUDO_LINES + index
    line_tokens: np.ndarray  # [N_PSEUDO_LINES + n_distinct, T] word-piece ids
    line_row: np.ndarray  # per input line: its row in the table
    line_class: np.ndarray  # per table row: its class (OTHER for lines outside the vocabulary)
    sequences: list[np.ndarray]  # distinct chunk sequences (table rows, no [CLS])
    counts: np.ndarray  # occurrences of each distinct sequence
    seq_offsets: np.ndarray  # flat position of each sequence's first line (len n_seq + 1)
    member_flat: np.ndarray  # per entry of sessions.members: its flat (sequence, position)
    session_seqs: list[np.ndarray]  # per session: indices of its chunk sequences

    @property
    def n_positions(self) -> int:
        return int(self.seq_offsets[-1])


def line_table(tokenizer: LogTokenizer, texts: list[str]) -> np.ndarray:
    """Token matrix of the pseudo-lines followed by ``texts``; the ``PAD_LINE`` row stays all
    ``[PAD]``, so padding positions embed to zero."""
    body = tokenizer.encode_lines(texts) if texts else np.zeros((0, 1), dtype=np.int64)
    width = max(body.shape[1], 1)
    table = np.full((N_PSEUDO_LINES + len(texts), width), tokenizer.pad_id, dtype=np.int64)
    table[CLS_LINE, 0] = tokenizer.cls_id
    table[MASK_LINE, 0] = tokenizer.mask_id
    table[N_PSEUDO_LINES:, : body.shape[1]] = body
    return table


def build_line_vocab(
    texts: list[str], counts: np.ndarray, max_classes: int, min_count: int = 1
) -> list[str]:
    """The lines the MLM head predicts by name: the most frequent, ties broken by text.

    Lines seen fewer than ``min_count`` times stay out and pool in ``[OTHER]`` with every line
    never seen: their pooled count is then the log's own rate of new messages (Good-Turing's
    N1 / N for ``min_count=2``), so a new line is as surprising as new lines are in *this* log —
    very in HDFS (19 distinct lines in 100k), mildly in a syslog full of one-off boot messages.
    """
    order = sorted(range(len(texts)), key=lambda i: (-int(counts[i]), texts[i]))
    keep = max(int(min_count), 1)
    return [texts[i] for i in order[: max_classes - FIRST_LINE_CLASS] if counts[i] >= keep]


def build_corpus(
    words: pa.Array, sessions: SessionIndex, tokenizer: LogTokenizer, max_lines: int,
    line_vocab: dict[str, int] | None = None,
) -> SessionCorpus:
    """Deduplicate lines and sessions; chunk sessions longer than the model's window."""
    encoded = words.dictionary_encode() if not pa.types.is_dictionary(words.type) else words
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    texts = encoded.dictionary.to_pylist()
    line_row = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64) + N_PSEUDO_LINES
    rows = line_row[sessions.members].astype(np.int32)

    chunk = max_lines - 1  # position 0 is [CLS]
    seq_index: dict[bytes, int] = {}
    sequences: list[np.ndarray] = []
    counts: list[int] = []
    member_seq = np.empty(len(rows), dtype=np.int64)
    member_pos = np.empty(len(rows), dtype=np.int64)
    session_seqs: list[np.ndarray] = []
    offsets = sessions.offsets
    for s in range(len(sessions)):
        start, end = int(offsets[s]), int(offsets[s + 1])
        mine = []
        for a in range(start, end, chunk):
            b = min(a + chunk, end)
            piece = rows[a:b]
            key = piece.tobytes()
            q = seq_index.get(key)
            if q is None:
                q = seq_index[key] = len(sequences)
                sequences.append(piece.astype(np.int64))
                counts.append(0)
            counts[q] += 1
            member_seq[a:b] = q
            member_pos[a:b] = np.arange(b - a)
            mine.append(q)
        session_seqs.append(np.asarray(mine, dtype=np.int64))
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    seq_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    line_class = np.zeros(N_PSEUDO_LINES + len(texts), dtype=np.int64)
    if line_vocab and texts:
        line_class[N_PSEUDO_LINES:] = [line_vocab.get(t, OTHER_LINE_CLASS) for t in texts]
    return SessionCorpus(
        line_texts=texts,
        line_tokens=line_table(tokenizer, texts),
        line_row=line_row,
        line_class=line_class,
        sequences=sequences,
        counts=np.asarray(counts, dtype=np.int64),
        seq_offsets=seq_offsets,
        member_flat=seq_offsets[member_seq] + member_pos,
        session_seqs=session_seqs,
    )


def pad_batch(sequences: list[np.ndarray]) -> np.ndarray:
    """``[B, 1 + max_len]`` with ``CLS_LINE`` first and ``PAD_LINE`` after each sequence."""
    width = 1 + max(len(s) for s in sequences)
    out = np.full((len(sequences), width), PAD_LINE, dtype=np.int64)
    out[:, 0] = CLS_LINE
    for i, seq in enumerate(sequences):
        out[i, 1 : 1 + len(seq)] = seq
    return out


def next_line_targets(batch: np.ndarray, line_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a padded batch read left to right: position ``t`` names the line at ``t + 1``, and the
    last line's position names ``[END]``. Returns (bool[B, L] where, int[B, L] class)."""
    real = batch >= N_PSEUDO_LINES
    lengths = real.sum(1)
    where = np.zeros(batch.shape, dtype=bool)
    truth = np.zeros(batch.shape, dtype=np.int64)
    where[:, :-1] = real[:, 1:]
    truth[:, :-1] = np.where(real[:, 1:], line_class[batch[:, 1:]], 0)
    rows = np.arange(len(batch))
    where[rows, lengths] = True  # position of the last line (or [CLS] for an empty one)
    truth[rows, lengths] = END_LINE_CLASS
    return where, truth

"""What scoring returns per distinct sequence and position, and the batching both runtimes share.

Why a module of its own (no torch): ``inference.py`` (torch) and ``onnx_runtime.py`` (ONNX
Runtime) fill the same ``SequenceScores`` from the same batches with the same bookkeeping, so the
two runtimes can differ only in the network's arithmetic, never in which position gets which value.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tinylogbert.model.configs import N_PSEUDO_LINES
from tinylogbert.model.session_corpus import SessionCorpus

POSITIONS_PER_BATCH = 8192


@dataclass
class SequenceScores:
    head: np.ndarray  # [n_seq] anomaly head's one-pass estimate
    embedding: np.ndarray  # [n_seq, hidden] float32, the [CLS] vector
    surprisal: np.ndarray  # [n_positions] -log p(line | lines before) (flat, see SessionCorpus)
    expected_class: np.ndarray  # [n_positions] the most likely line class at that position
    expected_prob: np.ndarray  # [n_positions] its probability
    entropy: np.ndarray  # [n_positions] how uncertain the prediction was (nats)
    end_surprisal: np.ndarray  # [n_seq] -log p([END] | the sequence)
    end_expected_class: np.ndarray  # [n_seq] what the model expected instead of the end
    end_expected_prob: np.ndarray  # [n_seq]
    end_entropy: np.ndarray  # [n_seq]


def empty_scores(n_seq: int, n_pos: int, hidden: int) -> SequenceScores:
    return SequenceScores(
        head=np.zeros(n_seq, dtype=np.float32),
        embedding=np.zeros((n_seq, hidden), dtype=np.float32),
        surprisal=np.zeros(n_pos, dtype=np.float32),
        expected_class=np.zeros(n_pos, dtype=np.int32),
        expected_prob=np.zeros(n_pos, dtype=np.float32),
        entropy=np.zeros(n_pos, dtype=np.float32),
        end_surprisal=np.zeros(n_seq, dtype=np.float32),
        end_expected_class=np.zeros(n_seq, dtype=np.int32),
        end_expected_prob=np.zeros(n_seq, dtype=np.float32),
        end_entropy=np.zeros(n_seq, dtype=np.float32),
    )


def length_batches(lengths: np.ndarray) -> list[np.ndarray]:
    """Batches of sequences of one length each (at most ``POSITIONS_PER_BATCH`` positions).

    Why one length: no padding is computed (attention costs width squared): measured with ONNX
    Runtime, one thread, the next-line pass over HDFS_heldout's 182 sequences took 0.27 s
    instead of 0.63 s with batches of mixed lengths, and 30 cold 1,000-line API requests 2.4 s
    instead of 3.4 s. (A sequence's ONNX outputs do not depend on its batch either way, see
    ``onnx_runtime.ALIGN_FLOATS``; torch's differ by ~1e-6 between batchings.)
    """
    order = np.argsort(lengths, kind="stable")
    out, current = [], []
    for i in order:
        if current and (lengths[i] != lengths[current[-1]]
                        or (int(lengths[i]) + 1) * (len(current) + 1) > POSITIONS_PER_BATCH):
            out.append(np.asarray(current))
            current = []
        current.append(i)
    if current:
        out.append(np.asarray(current))
    return out


def write_positions(
    out: SequenceScores, corpus: SessionCorpus, idx: np.ndarray, batch: np.ndarray,
    where: np.ndarray, nll: np.ndarray, top: np.ndarray, top_p: np.ndarray, entropy: np.ndarray,
) -> None:
    """Store one batch's next-line predictions, given at the ``where`` positions (row-major, as
    ``next_line_targets`` marks them): position c predicts line c + 1, or [END]."""
    rows, cols = np.nonzero(where)
    lengths = (batch >= N_PSEUDO_LINES).sum(1)
    is_end = cols == lengths[rows]
    line = ~is_end
    flat = corpus.seq_offsets[idx[rows[line]]] + cols[line]
    out.surprisal[flat] = nll[line]
    out.expected_class[flat] = top[line]
    out.expected_prob[flat] = top_p[line]
    out.entropy[flat] = entropy[line]
    seq = idx[rows[is_end]]
    out.end_surprisal[seq] = nll[is_end]
    out.end_expected_class[seq] = top[is_end]
    out.end_expected_prob[seq] = top_p[is_end]
    out.end_entropy[seq] = entropy[is_end]

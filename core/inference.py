"""Batched inference over distinct sequences: what the model says about each line and session.

For each distinct sequence: one clean pass gives the ``[CLS]`` embedding and the anomaly head's
logit; ``passes`` masked passes hide every ``passes``-th line in turn, so each line is predicted
exactly once from its context. The surprisal of a line is ``-log p(line | rest of session)``; the
line the model expected instead is kept for the explanation.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .session_corpus import SessionCorpus, pad_batch
from .tinylogbert_model import MASK_LINE, N_PSEUDO_LINES, TinyLogBERT

POSITIONS_PER_BATCH = 4096


@dataclass
class SequenceScores:
    head: np.ndarray  # [n_seq] anomaly-head logit
    embedding: np.ndarray  # [n_seq, hidden] float32, the [CLS] vector
    surprisal: np.ndarray  # [n_positions] per line in context (flat, see SessionCorpus)
    expected_class: np.ndarray  # [n_positions] the line class the model found most likely
    expected_prob: np.ndarray  # [n_positions] its probability


def _batches(lengths: np.ndarray) -> list[np.ndarray]:
    order = np.argsort(lengths, kind="stable")
    out, current, width = [], [], 0
    for i in order:
        width = max(width, int(lengths[i]) + 1)
        if current and width * (len(current) + 1) > POSITIONS_PER_BATCH:
            out.append(np.asarray(current))
            current, width = [], int(lengths[i]) + 1
        current.append(i)
    if current:
        out.append(np.asarray(current))
    return out


@torch.inference_mode()
def score_sequences(
    model: TinyLogBERT, corpus: SessionCorpus, passes: int = 4,
    on_progress: Callable[[float], None] | None = None,
) -> SequenceScores:
    model.eval()
    n_seq = len(corpus.sequences)
    table = torch.from_numpy(corpus.line_tokens)
    hidden_size = model.config.hidden_size
    head = np.zeros(n_seq, dtype=np.float32)
    embedding = np.zeros((n_seq, hidden_size), dtype=np.float32)
    surprisal = np.zeros(corpus.n_positions, dtype=np.float32)
    expected_class = np.zeros(corpus.n_positions, dtype=np.int32)
    expected_prob = np.zeros(corpus.n_positions, dtype=np.float32)
    line_class = torch.from_numpy(corpus.line_class)
    lengths = np.array([len(s) for s in corpus.sequences])
    batches = _batches(lengths)
    for b, idx in enumerate(batches):
        batch = pad_batch([corpus.sequences[i] for i in idx])
        B, L = batch.shape
        real = batch >= N_PSEUDO_LINES
        position = np.arange(L)[None, :] - 1  # line position within the sequence
        variants = [batch]
        hidden_masks = []
        for j in range(passes):
            hide = real & (position % passes == j)
            if hide.any():
                masked = batch.copy()
                masked[hide] = MASK_LINE
                variants.append(masked)
                hidden_masks.append(hide)
        hidden = model.encode(table, torch.from_numpy(np.concatenate(variants)))
        clean = hidden[:B]
        head[idx] = model.anomaly_logit(clean).float().numpy()
        embedding[idx] = clean[:, 0].float().numpy()
        for v, hide in enumerate(hidden_masks, start=1):
            where = torch.from_numpy(hide)
            log_probs = model.line_log_probs(hidden[v * B : (v + 1) * B][where])
            truth = line_class[torch.from_numpy(batch)[where]]
            best_lp, best = log_probs.max(dim=1)
            rows, cols = np.nonzero(hide)
            flat = corpus.seq_offsets[idx[rows]] + cols - 1
            surprisal[flat] = -log_probs.gather(1, truth[:, None]).squeeze(1).numpy()
            expected_class[flat] = best.numpy()
            expected_prob[flat] = best_lp.exp().numpy()
        if on_progress:
            on_progress((b + 1) / len(batches))
    return SequenceScores(head, embedding, surprisal, expected_class, expected_prob)

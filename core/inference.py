"""Batched inference: what the model says about each line and each session.

Two passes per *distinct* sequence (sessions repeat, so this is far fewer than the sessions):

- a bidirectional pass gives the ``[CLS]`` embedding and the anomaly head's one-pass estimate;
- a left-to-right pass gives, at every position at once, ``p(next line | the lines before)``:
  a line's surprisal is ``-log p`` of the line that really came, and the end of the session gets
  one too (``-log p([END])``): a session that stops early is as visible as a line that should
  not be there.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .session_corpus import SessionCorpus, next_line_targets, pad_batch
from .tinylogbert_model import N_PSEUDO_LINES, TinyLogBERT

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


def _batches(lengths: np.ndarray) -> list[np.ndarray]:
    """Group sequences of similar length so padding stays small."""
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
    model: TinyLogBERT, corpus: SessionCorpus,
    on_progress: Callable[[float], None] | None = None, clean_pass: bool = True,
) -> SequenceScores:
    """``clean_pass=False`` skips the bidirectional pass (half the work): no embeddings and no
    head estimate (NaN), for callers that need neither, such as the CLI."""
    model.eval()
    table = torch.from_numpy(corpus.line_tokens)
    n_seq, n_pos = len(corpus.sequences), corpus.n_positions
    out = SequenceScores(
        head=np.zeros(n_seq, dtype=np.float32),
        embedding=np.zeros((n_seq, model.config.hidden_size), dtype=np.float32),
        surprisal=np.zeros(n_pos, dtype=np.float32),
        expected_class=np.zeros(n_pos, dtype=np.int32),
        expected_prob=np.zeros(n_pos, dtype=np.float32),
        entropy=np.zeros(n_pos, dtype=np.float32),
        end_surprisal=np.zeros(n_seq, dtype=np.float32),
        end_expected_class=np.zeros(n_seq, dtype=np.int32),
        end_expected_prob=np.zeros(n_seq, dtype=np.float32),
        end_entropy=np.zeros(n_seq, dtype=np.float32),
    )
    batches = _batches(np.array([len(s) for s in corpus.sequences]))
    for b, idx in enumerate(batches):
        batch = pad_batch([corpus.sequences[i] for i in idx])
        B = len(idx)
        rows = np.concatenate([batch, batch]) if clean_pass else batch
        causal = torch.arange(len(rows)) >= (B if clean_pass else 0)
        hidden = model.encode(table, torch.from_numpy(rows), causal)
        if clean_pass:
            out.head[idx] = model.anomaly_logit(hidden[:B]).numpy()
            out.embedding[idx] = hidden[:B, 0].numpy()
            hidden = hidden[B:]
        else:
            out.head[idx] = np.nan
        where, truth = next_line_targets(batch, corpus.line_class)
        log_probs = model.line_log_probs(hidden[torch.from_numpy(where)])
        nll = -log_probs.gather(1, torch.from_numpy(truth[where])[:, None]).squeeze(1).numpy()
        top_lp, top = log_probs.max(dim=1)
        top, top_p = top.numpy(), top_lp.exp().numpy()
        entropy = -(log_probs.exp() * log_probs).sum(1).numpy()
        rows, cols = np.nonzero(where)  # position c predicts line c + 1, or [END]
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
        if on_progress:
            on_progress((b + 1) / len(batches))
    return out

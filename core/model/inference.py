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

import numpy as np
import torch
from tinylogbert.model.sequence_scores import (
    SequenceScores,
    empty_scores,
    length_batches,
    write_positions,
)
from tinylogbert.model.session_corpus import SessionCorpus, next_line_targets, pad_batch
from tinylogbert.model.tinylogbert_model import TinyLogBERT


@torch.inference_mode()
def score_sequences(
    model: TinyLogBERT, corpus: SessionCorpus,
    on_progress: Callable[[float], None] | None = None, bidirectional_pass: bool = True,
) -> SequenceScores:
    """``bidirectional_pass=False`` skips the bidirectional pass (half the work): no embeddings and no
    head estimate (NaN), for callers that need neither, such as the CLI."""
    model.eval()
    table = torch.from_numpy(corpus.line_tokens)
    n_seq, n_pos = len(corpus.sequences), corpus.n_positions
    out = empty_scores(n_seq, n_pos, model.config.hidden_size)
    batches = length_batches(np.array([len(s) for s in corpus.sequences]))
    for b, idx in enumerate(batches):
        batch = pad_batch([corpus.sequences[i] for i in idx])
        B = len(idx)
        rows = np.concatenate([batch, batch]) if bidirectional_pass else batch
        causal = torch.arange(len(rows)) >= (B if bidirectional_pass else 0)
        hidden = model.encode(table, torch.from_numpy(rows), causal)
        if bidirectional_pass:
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
        write_positions(out, corpus, idx, batch, where, nll, top, top_p, entropy)
        if on_progress:
            on_progress((b + 1) / len(batches))
    return out

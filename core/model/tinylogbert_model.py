"""TinyLogBERT: a BERT-mini encoder that reads a session as a sequence of its lines.

Why lines, not words, as positions: an HDFS block has up to ~44 lines of ~8 words; a word-level
sequence (LAnoBERT-style) is ~350 positions and every masked-word pass costs that much. Here each
line is embedded as the mean of its WordPiece embeddings (the same embedding matrix BERT's MLM
decoder is tied to), and the encoder attends over *lines*, so a session is ~20 positions and
anomalies that are about *order and presence of events* (most HDFS anomalies) are what attention
sees. Two heads share the encoder:

- the MLM head predicts which line a masked position holds, over the training lines' vocabulary
  plus ``[OTHER]`` and ``[END]`` (masked-line modelling, LogBERT's masked log-key prediction);
  ``-log p(line | the lines before it)`` is the line's anomaly score (``training.py`` says why
  the model reads only the lines before). A bag-of-word-pieces target was tried first and
  dropped: its loss floor is the entropy of the pieces *within* a line (~log 7 nats), which
  buries the signal under line length;
- the anomaly head (``Linear(h, 64) -> ReLU -> Linear(64, 1)`` on ``[CLS]``) scores the whole
  session in one pass; it is fitted without labels to the multi-pass score (see ``training.py``).
"""
from __future__ import annotations

import torch
from tinylogbert.model.configs import (  # noqa: F401 -- re-exported: they were defined here first
    CLS_LINE,
    END_LINE_CLASS,
    FIRST_LINE_CLASS,
    MASK_LINE,
    N_PSEUDO_LINES,
    OTHER_LINE_CLASS,
    PAD_LINE,
    ModelConfig,
)
from torch import nn
from transformers import BertConfig, BertModel
from transformers.models.bert.modeling_bert import BertPredictionHeadTransform


class TinyLogBERT(nn.Module):
    """Encoder + MLM head + anomaly head. Inputs are line-index sequences into a line table."""

    def __init__(self, bert_config: BertConfig, n_line_classes: int, head_hidden: int = 64) -> None:
        super().__init__()
        self.config = bert_config
        self.n_line_classes = n_line_classes
        self.bert = BertModel(bert_config, add_pooling_layer=False)
        hidden = bert_config.hidden_size
        self.mlm_head = nn.Sequential(
            BertPredictionHeadTransform(bert_config), nn.Linear(hidden, n_line_classes)
        )
        self.anomaly_head = nn.Sequential(
            nn.Linear(hidden, head_hidden), nn.ReLU(), nn.Linear(head_hidden, 1)
        )

    @property
    def pad_token_id(self) -> int:
        return int(self.config.pad_token_id)

    def line_vectors(self, line_tokens: torch.Tensor) -> torch.Tensor:
        """``[n, T]`` token ids -> ``[n, hidden]``: mean of the line's word-piece embeddings."""
        emb = self.bert.embeddings.word_embeddings(line_tokens)
        keep = (line_tokens != self.pad_token_id).unsqueeze(-1).to(emb.dtype)
        return (emb * keep).sum(1) / keep.sum(1).clamp(min=1.0)

    def encode(
        self, line_tokens: torch.Tensor, sequences: torch.Tensor,
        causal: torch.Tensor | bool = False,
    ) -> torch.Tensor:
        """Contextual line vectors ``[B, L, hidden]``.

        ``line_tokens`` is the line table ``[n_lines, T]`` (rows 0..2 pseudo-lines) and
        ``sequences`` ``[B, L]`` indexes into it, position 0 being ``CLS_LINE``. Only the lines
        the batch uses are embedded. ``causal`` (one bool, or one per row) makes a row attend
        left-to-right only, as in UniLM: the same weights then serve both objectives.
        """
        used, inverse = torch.unique(sequences, return_inverse=True)
        causal = torch.as_tensor(causal, dtype=torch.bool).expand(sequences.shape[0])
        return self.encode_vectors(
            self.line_vectors(line_tokens[used])[inverse], sequences != PAD_LINE, causal
        )

    def encode_vectors(
        self, vectors: torch.Tensor, valid: torch.Tensor, causal: torch.Tensor
    ) -> torch.Tensor:
        """``encode`` from the line vectors ``[B, L, hidden]``, the non-padding positions
        ``[B, L]`` and the causal rows ``[B]`` (the part ``onnx_runtime`` exports: no unique)."""
        length = vectors.shape[1]
        lower = torch.ones(length, length, dtype=torch.bool).tril()
        # (~causal | lower), not where(causal, lower, True): ONNX Runtime has no bool Where.
        allowed = (~causal[:, None, None] | lower[None]) & valid[:, None, :]
        # A padding row may see only itself (keeps softmax finite; its output is never used).
        allowed |= torch.eye(length, dtype=torch.bool)[None] & ~valid[:, :, None]
        return self.bert(inputs_embeds=vectors, attention_mask=allowed[:, None]).last_hidden_state

    def line_log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[..., hidden]`` -> log-probabilities over line classes ``[..., n_line_classes]``."""
        return torch.log_softmax(self.mlm_head(hidden), dim=-1)

    def anomaly_logit(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, L, hidden]`` -> ``[B]``, from the ``[CLS]`` position."""
        return self.anomaly_head(hidden[:, 0]).squeeze(-1)


def build_model(
    config: ModelConfig, vocab_size: int, pad_token_id: int, n_line_classes: int
) -> TinyLogBERT:
    return TinyLogBERT(
        config.bert_config(vocab_size, pad_token_id), n_line_classes, config.head_hidden
    )

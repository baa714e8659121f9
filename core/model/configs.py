"""Line ids and the model / training configs, without torch.

Why a module of their own: parsing, building a corpus, loading a checkpoint's settings and
scoring with ONNX Runtime (``onnx_runtime.py``) need these and nothing of torch, so a scoring
process can run without importing torch or transformers. ``tinylogbert_model`` and ``training``
re-export them; import from there or from here.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import BertConfig

# Rows 0..2 of every line table are pseudo-lines: padding, the session's [CLS], a masked line.
PAD_LINE, CLS_LINE, MASK_LINE = 0, 1, 2
N_PSEUDO_LINES = 3
# Line classes: 0 any line outside the vocabulary, 1 "the session ends here", then the vocabulary.
OTHER_LINE_CLASS, END_LINE_CLASS, FIRST_LINE_CLASS = 0, 1, 2


@dataclass(frozen=True)
class ModelConfig:
    """BERT-mini by default (Turc et al. 2019: 4 layers, hidden 256, 4 heads)."""

    hidden_size: int = 256
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    max_lines: int = 256  # positions per sequence, [CLS] included; longer sessions are chunked
    dropout: float = 0.1
    head_hidden: int = 64

    def bert_config(self, vocab_size: int, pad_token_id: int) -> BertConfig:
        from transformers import BertConfig

        return BertConfig(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_lines,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            pad_token_id=pad_token_id,
            type_vocab_size=1,
        )

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5  # passes over the training sessions
    head_epochs: int = 30  # anomaly-head epochs (cheap: frozen encoder, small MLP)
    batch_size: int = 32  # sessions per step
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    min_mask_rate: float = 0.15
    max_mask_rate: float = 0.5
    seed: int = 0
    steps_per_epoch: int = 0  # 0: one pass over the training sessions per epoch
    robust_prior: bool = True  # line frequencies counted without the sessions flagged in training
    clean_epochs: int = 0  # extra epochs on the training sessions the detector does not flag
    clean_learning_rate: float = 2e-4

    def to_dict(self) -> dict:
        return asdict(self)

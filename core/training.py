"""The training loop, readable in one sitting (in the spirit of nanoGPT's ``train.py``).

Phase 1, masked-line modelling: 20% of a session's lines are hidden (80% [MASK], 10% another line,
10% unchanged) and the model predicts which line each hidden one was from the rest of the session.
Phase 2, anomaly head: the MLM loss continues, and the head learns to tell real sessions from
synthetic anomalies (``perturb.py``). Both phases see sessions in proportion to how often they
occur, drawn from the distinct sequences (so a repeated session costs one tokenisation).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from .perturb import Perturber
from .session_corpus import SessionCorpus, pad_batch
from .tinylogbert_model import MASK_LINE, N_PSEUDO_LINES, TinyLogBERT


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5  # masked-line modelling epochs
    head_epochs: int = 2  # anomaly-head epochs (MLM continues alongside)
    batch_size: int = 32
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    mask_prob: float = 0.2
    seed: int = 0
    steps_per_epoch: int = 0  # 0: one pass over the training sessions per epoch

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainProgress:
    phase: str  # "mlm" or "head"
    step: int
    total_steps: int
    loss: float
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return self.step / max(self.total_steps, 1)

    @property
    def eta_s(self) -> float:
        return self.elapsed_s / max(self.step, 1) * (self.total_steps - self.step)


ProgressCallback = Callable[[TrainProgress], None]


def set_seed(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)


def mask_lines(
    batch: np.ndarray, rng: np.random.Generator, prob: float, n_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """BERT's 80/10/10 rule at line level; returns (masked batch, bool[B, L] of targets)."""
    real = batch >= N_PSEUDO_LINES
    targets = real & (rng.random(batch.shape) < prob)
    # Every session gets at least one target, so short sessions still teach something.
    for i in np.flatnonzero(~targets.any(1) & real.any(1)):
        targets[i, rng.choice(np.flatnonzero(real[i]))] = True
    masked = batch.copy()
    roll = rng.random(batch.shape)
    masked[targets & (roll < 0.8)] = MASK_LINE
    swap = targets & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = rng.integers(N_PSEUDO_LINES, n_rows, size=int(swap.sum()))
    return masked, targets


def mlm_loss(
    model: TinyLogBERT, table: torch.Tensor, line_class: torch.Tensor, masked: np.ndarray,
    original: np.ndarray, targets: np.ndarray,
) -> torch.Tensor:
    """Cross-entropy of the true line class at every masked position."""
    hidden = model.encode(table, torch.from_numpy(masked))
    where = torch.from_numpy(targets)
    log_probs = model.line_log_probs(hidden[where])
    truth = line_class[torch.from_numpy(original)[where]]
    return F.nll_loss(log_probs, truth)


class Trainer:
    """Fits a TinyLogBERT on a SessionCorpus. Deterministic for a given seed."""

    def __init__(
        self, model: TinyLogBERT, corpus: SessionCorpus, config: TrainConfig,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self.model = model
        self.corpus = corpus
        self.config = config
        self.on_progress = on_progress
        self.rng = np.random.default_rng(config.seed)
        self.table = torch.from_numpy(corpus.line_tokens)
        self.line_class = torch.from_numpy(corpus.line_class)
        self.weights = corpus.counts / corpus.counts.sum()
        n_sessions = int(corpus.counts.sum())
        self.steps_per_epoch = config.steps_per_epoch or max(
            1, math.ceil(n_sessions / config.batch_size)
        )
        self.history: list[dict] = []

    def _draw(self) -> list[np.ndarray]:
        idx = self.rng.choice(len(self.corpus.sequences), size=self.config.batch_size,
                              p=self.weights)
        return [self.corpus.sequences[i] for i in idx]

    def _perturber(self) -> Perturber:
        rows = np.arange(N_PSEUDO_LINES, len(self.corpus.line_tokens))
        freq = np.zeros(len(rows))
        for seq, count in zip(self.corpus.sequences, self.corpus.counts):
            np.add.at(freq, seq - N_PSEUDO_LINES, count)
        known = {s.astype(np.int32).tobytes() for s in self.corpus.sequences}
        return Perturber(rows, freq + 1e-9, known, self.config.seed + 1)

    def fit(self) -> list[dict]:
        cfg = self.config
        set_seed(cfg.seed)
        mlm_steps = cfg.epochs * self.steps_per_epoch
        head_steps = cfg.head_epochs * self.steps_per_epoch
        total = mlm_steps + head_steps
        optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        warmup = max(1, int(cfg.warmup_fraction * total))

        def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
            if step < warmup:
                return (step + 1) / warmup
            done = (step - warmup) / max(1, total - warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
        perturber = self._perturber() if head_steps else None
        n_rows = len(self.corpus.line_tokens)
        self.model.train()
        start = time.perf_counter()
        for step in range(total):
            phase = "mlm" if step < mlm_steps else "head"
            batch = pad_batch(self._draw())
            masked, targets = mask_lines(batch, self.rng, cfg.mask_prob, n_rows)
            loss = mlm_loss(self.model, self.table, self.line_class, masked, batch, targets)
            record = {"step": step + 1, "phase": phase, "mlm_loss": loss.item()}
            if phase == "head":
                head_loss = self._head_loss(batch, perturber)
                record["head_loss"] = head_loss.item()
                loss = loss + head_loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            record["loss"] = loss.item()
            self.history.append(record)
            if self.on_progress:
                self.on_progress(
                    TrainProgress(phase, step + 1, total, record["loss"], time.perf_counter() - start)
                )
        self.model.eval()
        return self.history

    def _head_loss(self, batch: np.ndarray, perturber: Perturber) -> torch.Tensor:
        normal = [row[(row >= N_PSEUDO_LINES)] for row in batch]
        changed = [p for p in (perturber(s) for s in normal) if p is not None]
        both = pad_batch(normal + changed)
        # The head scores unmasked sessions at inference, so it trains on unmasked ones.
        hidden = self.model.encode(self.table, torch.from_numpy(both))
        logits = self.model.anomaly_logit(hidden)
        labels = torch.zeros(len(both))
        labels[len(normal):] = 1.0
        return F.binary_cross_entropy_with_logits(logits, labels)


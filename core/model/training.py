"""The training loop, readable in one sitting (in the spirit of nanoGPT's ``train.py``).

Two objectives share one BERT-mini, switched by the attention mask as in UniLM (Dong et al.
2019); each batch is half one, half the other:

- **masked-line modelling** (bidirectional): 15-50% of a session's lines are replaced by
  ``[MASK]`` and the model names each hidden line from the rest of the session;
- **next-line modelling** (left-to-right): each position names the line that comes next, or
  ``[END]`` after the last line.

Why both, and why scoring uses the second: with bidirectional MLM alone the model always knows
how many lines a session has, so an *extra* line (HDFS: an error between the deletes) is
predictable from the mere existence of its position and a session that stopped early looks
complete. Measured on the HDFS dev split (first half of blocks for training): a pure MLM scored
block ROC-AUC 0.84 (max line surprisal); reading only the lines before, with ``[END]`` as a class,
is what lets missing, extra and out-of-order events show up (DeepLog's insight, Du et al. 2017).

Unlabeled logs hold anomalies too, and whatever recurs in the training data is learned as
normal. So after the main epochs the detector flags its own training sessions and counts its line
prior without them (``robust_prior``, see ``TinyLogBERTDetector.fit``); optionally,
``clean_epochs`` more epochs (at ``clean_learning_rate``) see only the sessions it did not flag.
Measured on the HDFS dev split (README, ablation): the robust prior raised the label-free F1 from
0.947 to 0.957; a clean epoch sharpens the next-line signal (ROC-AUC 0.970 -> 0.994) but lowered
that F1 to 0.940, so it is off by default.

After that, the anomaly head is fitted on the frozen ``[CLS]`` vectors to predict each training
session's anomaly score: a one-pass estimate of the full score (see ``detector.py``).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tinylogbert.model.configs import TrainConfig
from tinylogbert.model.session_corpus import SessionCorpus, next_line_targets, pad_batch
from tinylogbert.model.tinylogbert_model import MASK_LINE, N_PSEUDO_LINES, TinyLogBERT
from torch.nn import functional as F


@dataclass(frozen=True)
class TrainProgress:
    phase: str  # "mlm", "clean" or "head"
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
    batch: np.ndarray, rng: np.random.Generator, min_rate: float, max_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Hide a random share (drawn per session) of each session's lines; returns
    (masked batch, bool[B, L] of hidden lines). At least one line per session is hidden."""
    real = batch >= N_PSEUDO_LINES
    rate = rng.uniform(min_rate, max_rate, size=(batch.shape[0], 1))
    hidden = real & (rng.random(batch.shape) < rate)
    for i in np.flatnonzero(~hidden.any(1) & real.any(1)):
        hidden[i, rng.choice(np.flatnonzero(real[i]))] = True
    return np.where(hidden, MASK_LINE, batch), hidden


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

    def _step_loss(self) -> torch.Tensor:
        cfg = self.config
        batch = pad_batch(self._draw())
        half = len(batch) // 2
        causal = np.arange(len(batch)) >= half  # first half MLM, second half next-line
        masked, hidden_lines = mask_lines(batch[:half], self.rng, cfg.min_mask_rate,
                                          cfg.max_mask_rate)
        inputs = np.concatenate([masked, batch[half:]])
        out = self.model.encode(self.table, torch.from_numpy(inputs), torch.from_numpy(causal))
        line_class = self.corpus.line_class
        where = np.zeros(batch.shape, dtype=bool)
        truth = np.zeros(batch.shape, dtype=np.int64)
        where[:half] = hidden_lines
        truth[:half][hidden_lines] = line_class[batch[:half][hidden_lines]]
        next_where, next_truth = next_line_targets(batch[half:], line_class)
        where[half:], truth[half:] = next_where, next_truth
        mask = torch.from_numpy(where)
        log_probs = self.model.line_log_probs(out[mask])
        return F.nll_loss(log_probs, torch.from_numpy(truth)[mask])

    def fit_mlm(self, frozen_layers: int = 0) -> list[dict]:
        """The main pretraining: ``epochs`` over all training sessions. ``frozen_layers`` > 0
        (``adapt``): the word-piece embeddings and that many of the lowest encoder layers keep
        their weights, and the gradient stops above them."""
        cfg = self.config
        set_seed(cfg.seed)
        frozen = self._frozen(frozen_layers)
        for param in frozen:
            param.requires_grad_(False)
        try:
            return self._run_epochs(
                "mlm", cfg.epochs * self.steps_per_epoch, cfg.learning_rate,
                max(1, int(cfg.warmup_fraction * cfg.epochs * self.steps_per_epoch)))
        finally:
            for param in frozen:
                param.requires_grad_(True)

    def _frozen(self, frozen_layers: int) -> list[torch.nn.Parameter]:
        if frozen_layers <= 0:
            return []
        bert = self.model.bert
        layers = bert.encoder.layer[:frozen_layers]
        return [*bert.embeddings.parameters(), *(p for layer in layers for p in layer.parameters())]

    def fit_clean(self, keep: np.ndarray) -> list[dict]:
        """``clean_epochs`` more, drawing only the distinct sequences where ``keep`` is True
        (no warm-up: the model is already trained)."""
        cfg = self.config
        weights = self.corpus.counts * keep
        if cfg.clean_epochs <= 0 or weights.sum() == 0:
            return self.history
        all_weights, self.weights = self.weights, weights / weights.sum()
        try:
            return self._run_epochs("clean", cfg.clean_epochs * self.steps_per_epoch,
                                    cfg.clean_learning_rate, 0)
        finally:
            self.weights = all_weights

    def _run_epochs(self, phase: str, total: int, learning_rate: float, warmup: int) -> list[dict]:
        cfg = self.config
        optimizer = torch.optim.AdamW(  # frozen parameters (``fit_mlm``) are left out
            [p for p in self.model.parameters() if p.requires_grad], lr=learning_rate,
            weight_decay=cfg.weight_decay,
        )

        def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
            if step < warmup:
                return (step + 1) / warmup
            done = (step - warmup) / max(1, total - warmup)
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * done))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
        self.model.train()
        start = time.perf_counter()
        for step in range(total):
            loss = self._step_loss()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(optimizer.param_groups[0]["params"], 1.0)
            optimizer.step()
            scheduler.step()
            record = {"step": step + 1, "phase": phase, "loss": loss.item()}
            self.history.append(record)
            if self.on_progress:
                self.on_progress(TrainProgress(phase, step + 1, total, record["loss"],
                                               time.perf_counter() - start))
        self.model.eval()
        return self.history

    def fit_head(self, embeddings: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> None:
        """Regress the anomaly head onto per-sequence targets from frozen [CLS] vectors."""
        cfg = self.config
        set_seed(cfg.seed)
        x = torch.from_numpy(embeddings.astype(np.float32))
        y = torch.from_numpy(targets.astype(np.float32))
        w = torch.from_numpy((weights / weights.sum()).astype(np.float32))
        head = self.model.anomaly_head
        optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=cfg.weight_decay)
        head.train()
        start = time.perf_counter()
        steps = cfg.head_epochs * 10
        for step in range(steps):
            loss = (w * (head(x).squeeze(-1) - y) ** 2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            record = {"step": step + 1, "phase": "head", "loss": loss.item()}
            self.history.append(record)
            if self.on_progress:
                self.on_progress(TrainProgress("head", step + 1, steps, record["loss"],
                                               time.perf_counter() - start))
        head.eval()

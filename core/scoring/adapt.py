"""Follow a release without labels: update a trained detector to a newer log, keeping what it knew.

Why not retrain: a full ``fit`` learns a tokenizer, a line vocabulary and a network from scratch
(five epochs). A release mostly rewords a few messages and adds some; the old network already
reads them through their words. So ``adapt`` keeps the tokenizer (a new word falls back to its
word pieces or ``[UNK]``), appends the new log's frequent lines to the line vocabulary (old lines
keep their class ids), starts each new class's output row as the known line it matches in the
word-piece space (a reworded line starts as the line it rewords; an unmatched one as
``[OTHER]``), fine-tunes one epoch at the clean-epoch learning rate, and keeps the thresholds
and spreads it started from. Line counts are the old counts plus the new log's, so old messages
stay common.

Why the lower half of the encoder stays as it was (``frozen_layers``; the word-piece embeddings
stay too, so the line matcher reads words as the model knew them): measured with
``benchmarks.adapt --variant V --frozen-layers K`` (the later HDFS blocks, four rewordings) and
``benchmarks.adapt_logs`` (nine small logs), against fine-tuning every weight: 2 of BERT-mini's
4 layers frozen took 3.3-3.9 s instead of 5.3-6.7 s for 23,918 lines (a full ``train`` 23-25 s),
kept F1 and the normal share flagged (to one block), and moved ROC-AUC / PR-AUC by -0.014 /
+0.005 (5% reworded), -0.001 / -0.008 (15%), 0 (30%, top1); on the small logs it flagged fewer
sessions on three (Apache, OpenSSH top1, Thunderbird) and one more on OpenSSH 30%. Freezing 3
was faster (2.8-3.0 s) and quieter on Apache but cost HDFS 5% 0.031 ROC-AUC; all 4 cost top1
0.017 / 0.049. With ``recalibrate`` every weight is fine-tuned: the new log's calibration of
the half-frozen model flagged 39.3% / 39.6% of the later normal blocks at 30% / 15% reworded,
against 2.8% / 11.9% with every weight fine-tuned (top1 and 5%: 39.9% / 7.4% against 39.7% /
7.0%).

Why the calibration is kept: the log one adapts on is usually a short sample right after a
release, and calibrating on it alone set the bar near the bulk of the later scores. Measured on
the development logs (``benchmarks.adapt``, ``benchmarks.adapt_logs``), the new log's calibration
flagged 2.8-40% of the later normal HDFS blocks over four rewordings (the kept one 0.8-1.1%) and
more than the kept one on 7 of 8 small logs; it caught more of BGL_2k's anomalies (50-60% against
20-30%). ``recalibrate=True`` (``adapt --recalibrate``) calibrates on the new log as ``fit`` does.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from typing import TYPE_CHECKING

import numpy as np
from tinylogbert.errors import TinyLogBERTError
from tinylogbert.model.configs import FIRST_LINE_CLASS, OTHER_LINE_CLASS
from tinylogbert.model.onnx_runtime import OnnxTinyLogBERT
from tinylogbert.model.session_corpus import build_corpus, build_line_vocab
from tinylogbert.sessions.grouping import build_sessions

if TYPE_CHECKING:
    from tinylogbert.model.training import ProgressCallback
    from tinylogbert.scoring.detector import LogInput, TinyLogBERTDetector


class AdaptError(TinyLogBERTError):
    """The detector or the log cannot be adapted (the message says why)."""


def _grow_head(network, sources: list[int]) -> None:
    """Append one output row per new class to ``network.mlm_head[1]``, copied from the class
    in ``sources`` (weight and bias)."""
    import torch

    old = network.mlm_head[1]
    if not sources:
        return
    grown = torch.nn.Linear(old.in_features, old.out_features + len(sources))
    with torch.no_grad():
        grown.weight[: old.out_features] = old.weight
        grown.bias[: old.out_features] = old.bias
        index = torch.tensor(sources, dtype=torch.long)
        grown.weight[old.out_features:] = old.weight[index]
        grown.bias[old.out_features:] = old.bias[index]
    network.mlm_head[1] = grown
    network.n_line_classes = grown.out_features


# What a detector computes for itself as it scores: left out of the copy (the sequence cache
# holds a lock, which cannot be copied, and every one of these belongs to the old model).
CACHED_ATTRIBUTES = ("_matcher", "_matcher_model", "_sequence_cache", "_sequence_cache_key",
                     "decision_scores_", "labels_")


def _copy_without_caches(detector: TinyLogBERTDetector) -> TinyLogBERTDetector:
    """A deep copy of ``detector`` without ``CACHED_ATTRIBUTES`` (a detector that has scored
    holds them; copying them failed, and would have kept the old model's results)."""
    state = {k: v for k, v in detector.__dict__.items() if k not in CACHED_ATTRIBUTES}
    new = object.__new__(type(detector))
    new.__dict__.update(copy.deepcopy(state))
    return new


def _keep_calibration(new: TinyLogBERTDetector, detector: TinyLogBERTDetector) -> None:
    """``new`` scores with ``detector``'s spreads, thresholds and line alarm."""
    new.calibration_ = copy.deepcopy(detector.calibration_)
    new.threshold_ = detector.threshold_
    new.line_threshold_ = detector.line_threshold_


def default_frozen_layers(detector: TinyLogBERTDetector, recalibrate: bool = False) -> int:
    """The lower half of the encoder; none when the new log recalibrates (module docstring)."""
    return 0 if recalibrate else detector.model_config_.num_hidden_layers // 2


def adapt(
    detector: TinyLogBERTDetector, log: LogInput, epochs: int = 1,
    on_progress: ProgressCallback | None = None, recalibrate: bool = False,
    frozen_layers: int | None = None,
) -> TinyLogBERTDetector:
    """A new detector: ``detector`` updated to ``log`` (``detector`` itself is left untouched);
    ``recalibrate``: thresholds and spreads from ``log`` instead of ``detector``'s;
    ``frozen_layers``: encoder layers kept as they were, from the bottom, beside the word-piece
    embeddings (None: the lower half, or none with ``recalibrate``; 0: every weight is
    fine-tuned)."""
    from tinylogbert.model.inference import score_sequences
    from tinylogbert.model.training import Trainer
    from tinylogbert.scoring.line_prior import _class_counts, _word_counts

    detector._check_fitted()
    if isinstance(detector.network_, OnnxTinyLogBERT):
        raise AdaptError("adapt needs the torch model: load the checkpoint with runtime='torch'")
    if epochs < 1:
        raise AdaptError(f"epochs must be at least 1, got {epochs}")
    n_layers = detector.model_config_.num_hidden_layers
    if frozen_layers is None:
        frozen_layers = default_frozen_layers(detector, recalibrate)
    if not 0 <= frozen_layers <= n_layers:
        raise AdaptError(f"frozen_layers must be between 0 and {n_layers} (the encoder's "
                         f"layers), got {frozen_layers}")
    started = time.perf_counter()
    old_matcher = detector.matcher()
    new = _copy_without_caches(detector)
    new._threads()
    parsed = new.parse(log)
    if len(parsed) == 0:
        raise AdaptError("the log has no lines to adapt to")
    index = build_sessions(parsed, new.sessions)
    encoded = parsed.words.dictionary_encode()
    texts = encoded.dictionary.to_pylist()
    line_ids = encoded.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(line_ids, minlength=len(texts))

    # Line vocabulary: old lines keep their ids; the new log's frequent lines are appended.
    known = set(new.line_vocab_)
    room = max(new.max_line_classes - FIRST_LINE_CLASS - len(new.line_vocab_), 0)
    frequent = build_line_vocab(texts, counts, new.max_line_classes, new.min_line_count)
    added = [t for t in frequent if t not in known][:room]
    sources = [int(c) for c in old_matcher.match(added).line_class] if added else []
    _grow_head(new.network_, sources)
    new.line_vocab_ = list(new.line_vocab_) + added
    new._line_class = {t: i + FIRST_LINE_CLASS for i, t in enumerate(new.line_vocab_)}
    n_classes = len(new.line_vocab_) + FIRST_LINE_CLASS
    old_counts = np.zeros(n_classes, dtype=np.int64)
    old_counts[: len(detector.line_class_counts_)] = detector.line_class_counts_

    def merged(new_counts: np.ndarray) -> list[int]:
        """Old counts plus the new log's (``fit``'s counts are of one log; here, of both)."""
        return (old_counts + np.asarray(_class_counts(texts, new_counts, new._line_class,
                                                      n_classes))).tolist()

    new.line_class_counts_ = merged(counts)
    words = dict(detector.word_counts_ or {})
    for word, count in _word_counts(texts, counts).items():
        words[word] = words.get(word, 0) + count
    new.word_counts_ = dict(sorted(words.items()))

    # Fine-tune: ``epochs`` passes at the clean-epoch learning rate (the model is trained).
    config = dataclasses.replace(new.training, epochs=epochs,
                                 learning_rate=new.training.clean_learning_rate)
    corpus = build_corpus(parsed.words, index, new.tokenizer_, new.model_config_.max_lines,
                          new._line_class)
    trainer = Trainer(new.network_, corpus, config, on_progress)
    history = trainer.fit_mlm(frozen_layers=frozen_layers)
    new._round_weights()
    if new.open_world:
        corpus = new._corpus(parsed, index)
    raw = score_sequences(new.network_, corpus)
    # As ``fit``'s robust prior, on top of the old counts: what the new log's own calibration
    # flags is left out. Not the kept calibration's flags: a new message that most of the new
    # log's sessions hold would be flagged there, left out, and never learned.
    new._calibrate(parsed, index, corpus, raw)
    flagged = new._own_flags
    new._refit_prior(parsed, index, corpus, raw, encoded, texts, flagged, prior_base=old_counts)
    if not recalibrate:
        _keep_calibration(new, detector)
    # The head learns the score on the scale the adapted model scores with.
    per_seq = new._sequence_targets(corpus, raw)
    trainer.fit_head(raw.embedding, per_seq, corpus.counts.astype(np.float64))
    new._round_weights()
    raw = new._with_head(raw)
    if recalibrate:
        new.decision_scores_ = np.round(new._calibrate(parsed, index, corpus, raw, with_head=True),
                                        6)
    else:  # the new log's sessions, judged by the calibration it started from
        new.decision_scores_ = np.round(new._scores_of(parsed, index, corpus, raw), 6)
    new.labels_ = (new.decision_scores_ >= new.threshold_).astype(int)
    seconds = time.perf_counter() - started
    matched = sum(c != OTHER_LINE_CLASS for c in sources)
    new.training_summary_ = {
        **{k: v for k, v in detector.training_summary_.items() if k != "adapted_from"},
        "source": parsed.source,
        "lines": len(parsed),
        "sessions": len(index),
        "distinct_sessions": len(corpus.sequences),
        "distinct_lines": len(texts),
        "flagged_training_sessions": int(flagged.sum()),
        "steps": len(history),
        "final_mlm_loss": next((h["loss"] for h in reversed(history) if h["phase"] == "mlm"), None),
        "train_seconds": round(seconds, 1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "adapted_from": {
            "summary": detector.training_summary_,
            "adapt_seconds": round(seconds, 1),
            "lines": len(parsed),
            "epochs": epochs,
            "new_line_classes": len(added),
            "new_line_classes_matched": int(matched),
            "recalibrated": bool(recalibrate),
            "frozen_layers": int(frozen_layers),
        },
    }
    return new

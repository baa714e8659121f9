"""``TinyLogBERTDetector``: the one object that owns a trained model (fit / score / save / load).

Shaped like a scikit-learn / PyOD estimator: hyper-parameters in ``__init__``, learned state in
attributes ending in ``_`` (``threshold_``, ``tokenizer_``, ``network_``...), ``contamination`` as
the label-free way to set the threshold. Inputs may be a path, raw text, a list of lines, or an
already parsed log.
"""
from __future__ import annotations

import dataclasses

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tinylogbert import __version__
from tinylogbert.errors import NotFittedError
from tinylogbert.io.log_formats import LogFormat
from tinylogbert.io.user_masks import apply_masks, check_masks
from tinylogbert.io.log_parser import ParsedLog
from tinylogbert.io.log_reader import LogLines
from tinylogbert.io.sources import parse, read
from tinylogbert.model.configs import (
    FIRST_LINE_CLASS,
    N_PSEUDO_LINES,
    OTHER_LINE_CLASS,
    ModelConfig,
    TrainConfig,
)
from tinylogbert.model.log_tokenizer import LogTokenizer
from tinylogbert.model.onnx_runtime import OnnxTinyLogBERT
from tinylogbert.model.sequence_cache import SequenceCache
from tinylogbert.model.sequence_scores import SequenceScores
from tinylogbert.model.session_corpus import SessionCorpus, build_corpus, build_line_vocab
from tinylogbert.scoring.anomaly_score import (
    AUTO_MAX_LINE_SHARE,
    AUTO_MAX_SESSION_SHARE,
    DEFAULT_WEIGHTS,
    GRADES,
    NAT_RESOLUTION,
    SESSION_SCALE_FLOOR,
    Calibration,
    label_free_threshold,
    line_alarm_threshold,
    robust_center_scale,
)
from tinylogbert.scoring.estimator_params import EstimatorParams
from tinylogbert.scoring.feedback import apply as apply_feedback
from tinylogbert.scoring.line_matching import LineMatcher, OpenVocabulary
from tinylogbert.scoring.line_prior import _class_counts, _word_counts, _word_surprisal
from tinylogbert.scoring.result_tables import build_result
from tinylogbert.scoring.results import ScoreResult
from tinylogbert.scoring.severity import line_severity
from tinylogbert.sessions.grouping import SessionConfig, SessionIndex, build_sessions

if TYPE_CHECKING:
    from tinylogbert.model.training import ProgressCallback

# torch, transformers and the training loop are imported where a torch model is built or
# trained, not here: a detector loaded with runtime="onnx" scores without importing them.

LogInput = str | Path | LogLines | ParsedLog | list


class PositionSignals(NamedTuple):
    """Per session member (a line where a session holds it; ``end_excess``: per distinct
    sequence), computed once per call."""

    rarity: np.ndarray  # -log p(line) under the training line frequencies, times (1 + severity)
    excess: np.ndarray  # surprisal beyond the prediction's entropy
    end_excess: np.ndarray  # the same for the end of each sequence
    line_score: np.ndarray  # mean of rarity and surprisal: a line's score


class TinyLogBERTDetector(EstimatorParams):
    """Unsupervised log anomaly detector over sessions of log lines.

    A scikit-learn estimator (``get_params`` / ``set_params``, so ``sklearn.base.clone`` works;
    ``estimator_params.py`` says why without subclassing ``BaseEstimator``)
    with PyOD's attributes after ``fit``: ``decision_scores_`` and ``labels_`` for the training
    sessions, ``threshold_``; and PyOD's methods ``decision_function``, ``predict``,
    ``predict_proba`` (the severity grades) and ``fit_predict``. Learned state ends in ``_``;
    ``decision_scores_`` and ``labels_`` belong to a fit and are not saved with the checkpoint.
    """

    def __init__(
        self,
        log_format: str | LogFormat = "auto",
        sessions: SessionConfig = SessionConfig(),
        model_config: ModelConfig = ModelConfig(),
        training: TrainConfig = TrainConfig(),
        vocab_size: int = 1000,
        max_line_tokens: int = 32,
        max_line_classes: int = 4096,
        min_line_count: int = 2,
        contamination: float | str = "auto",
        severity_prior: bool = True,
        open_world: bool = True,
        masks: tuple[str, ...] = (),
        init_from: str | None = None,
        num_threads: int | None = None,
        head_weight: float = 0.0,
    ) -> None:
        self.log_format = log_format
        self.sessions = sessions
        self.model_config = model_config
        self.training = training
        self.vocab_size = vocab_size
        self.max_line_tokens = max_line_tokens
        self.max_line_classes = max_line_classes
        self.min_line_count = min_line_count
        self.contamination = contamination
        self.severity_prior = severity_prior
        self.open_world = open_world
        self.masks = check_masks(masks)
        self.init_from = init_from
        self.num_threads = num_threads
        # The anomaly head's share of the session score (``z_head``), once it is trained: 0 by
        # default (the suite's ablation: docs/model_notes.md).
        self.head_weight = head_weight

    # ---- helpers --------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError("this detector is not trained: call fit() or load() first")

    def _threads(self) -> None:
        if not self.num_threads:
            return
        if isinstance(getattr(self, "network_", None), OnnxTinyLogBERT):  # its own thread pool
            self.network_.set_num_threads(self.num_threads)
        else:
            import torch

            torch.set_num_threads(self.num_threads)

    def parse(
        self, log: LogInput, log_format: str | LogFormat | None = None, training: bool = False
    ) -> ParsedLog:
        """Detection ('auto') tries the trained model's own format first, except for training."""
        if not isinstance(log, ParsedLog):
            prefer = None if training else getattr(self, "format_", None)
            log = parse(read(log), log_format or self.log_format, prefer)
        return self.masked(log)

    def masked(self, parsed: ParsedLog) -> ParsedLog:
        """``parsed`` with the model's own masking rules applied to its words
        (``io/user_masks.py``); the same object when there are none, or they are applied."""
        if not self.masks or getattr(parsed, "masks_applied", ()) == self.masks:
            return parsed
        out = dataclasses.replace(parsed, words=apply_masks(parsed.words, self.masks))
        object.__setattr__(out, "masks_applied", self.masks)
        return out

    def _prepare(
        self, log: LogInput, log_format: str | LogFormat | None = None,
        sessions: SessionConfig | None = None,
    ) -> tuple[ParsedLog, SessionIndex, SessionCorpus]:
        parsed = self.parse(log, log_format)
        index = build_sessions(parsed, sessions or self.sessions)
        return parsed, index, self._corpus(parsed, index)

    def _corpus(self, parsed: ParsedLog, index: SessionIndex) -> SessionCorpus:
        """The model input; with ``open_world``, a line outside the vocabulary that closely
        resembles a known line is scored as that line (``line_matching.py``)."""
        return build_corpus(parsed.words, index, self.tokenizer_, self.model_config_.max_lines,
                            self._vocabulary(parsed.words))

    def _vocabulary(self, words: pa.Array) -> dict[str, int] | OpenVocabulary:
        if not self.open_world or not self._line_class:
            return self._line_class
        distinct = pc.unique(words).to_pylist()
        new = [t for t in distinct if t is not None and t not in self._line_class]
        if not new:
            return self._line_class
        found = self.matcher().match(new)
        return OpenVocabulary(self._line_class, {t: int(c) for t, c in
                                                 zip(new, found.line_class) if c != OTHER_LINE_CLASS})

    def matcher(self) -> LineMatcher:
        """The nearest-known-line matcher of this model (built once per network)."""
        self._check_fitted()
        if getattr(self, "_matcher_model", None) is not self.network_:
            self._matcher = LineMatcher(self._word_embeddings(), self.tokenizer_, self.line_vocab_)
            self._matcher_model = self.network_
        return self._matcher

    def _word_embeddings(self) -> np.ndarray:
        """The word-piece embedding matrix (ONNX Runtime: read from the checkpoint at load)."""
        if isinstance(self.network_, OnnxTinyLogBERT):
            return self.word_embeddings_
        return self.network_.bert.embeddings.word_embeddings.weight.detach().cpu().numpy()

    # ---- fit --------------------------------------------------------------------------------------
    def fit(self, log: LogInput, on_progress: ProgressCallback | None = None) -> TinyLogBERTDetector:
        """Learn tokenizer, model and threshold from an unlabeled log."""
        import torch
        from tinylogbert.model.checkpoint import model_from_pretrained
        from tinylogbert.model.inference import score_sequences
        from tinylogbert.model.tinylogbert_model import build_model
        from tinylogbert.model.training import Trainer

        self._threads()
        started = time.perf_counter()
        parsed = self.parse(log, training=True)
        index = build_sessions(parsed, self.sessions)
        encoded = parsed.words.dictionary_encode()
        texts = encoded.dictionary.to_pylist()
        counts = np.bincount(encoded.indices.to_numpy(zero_copy_only=False), minlength=len(texts))

        def weighted_lines():  # frequency matters to WordPiece; capped so one line cannot dominate
            for text, count in zip(texts, counts):
                for _ in range(min(int(count), 100)):
                    yield text

        self.tokenizer_ = LogTokenizer.train(weighted_lines(), self.vocab_size, self.max_line_tokens)
        self.line_vocab_ = build_line_vocab(texts, counts, self.max_line_classes,
                                            self.min_line_count)
        self._line_class = {t: i + FIRST_LINE_CLASS for i, t in enumerate(self.line_vocab_)}
        self.line_class_counts_ = _class_counts(texts, counts, self._line_class,
                                                len(self.line_vocab_) + FIRST_LINE_CLASS)
        self.word_counts_ = _word_counts(texts, counts)
        self.model_config_ = self.model_config
        n_classes = len(self.line_vocab_) + FIRST_LINE_CLASS
        if self.init_from:
            self.network_ = model_from_pretrained(
                self.init_from, self.tokenizer_.vocab_size, self.tokenizer_.pad_id, n_classes,
                self.model_config.head_hidden,
            )
        else:
            torch.manual_seed(self.training.seed)
            self.network_ = build_model(
                self.model_config, self.tokenizer_.vocab_size, self.tokenizer_.pad_id, n_classes
            )
        corpus = build_corpus(
            parsed.words, index, self.tokenizer_, self.model_config.max_lines, self._line_class
        )
        trainer = Trainer(self.network_, corpus, self.training, on_progress)
        history = trainer.fit_mlm()
        self._round_weights()
        if self.open_world:  # calibrate as scoring will read the log: one-off lines matched
            corpus = self._corpus(parsed, index)
        raw = score_sequences(self.network_, corpus)
        # Contamination-robust step: what the model flags in its own training data is left out
        # of the line frequencies (and of the optional clean epochs), so that an anomaly that
        # recurs in the training log does not make its own lines look common.
        self._calibrate(parsed, index, corpus, raw)
        flagged = self._own_flags
        self._refit_prior(parsed, index, corpus, raw, encoded, texts, flagged)
        if self.training.clean_epochs > 0:
            history = trainer.fit_clean(~_sequences_of(corpus, flagged))
            self._round_weights()
            raw = score_sequences(self.network_, corpus)
            self._calibrate(parsed, index, corpus, raw)
            flagged = self._own_flags
            self._refit_prior(parsed, index, corpus, raw, encoded, texts, flagged)
        # The head learns the score itself, from the [CLS] vector alone (a one-pass estimate).
        per_seq = self._sequence_targets(corpus, raw)
        trainer.fit_head(raw.embedding, per_seq, corpus.counts.astype(np.float64))
        self._round_weights()
        raw = self._with_head(raw)
        # PyOD's contract: the training sessions' scores and flags, in order of first appearance.
        self.decision_scores_ = np.round(
            self._calibrate(parsed, index, corpus, raw, with_head=True), 6)
        self.labels_ = (self.decision_scores_ >= self.threshold_).astype(int)
        train_seconds = time.perf_counter() - started
        self.format_ = parsed.format
        self.training_summary_ = {
            "source": parsed.source,
            "lines": len(parsed),
            "unparsed_lines": parsed.n_unparsed,
            "sessions": len(index),
            "distinct_sessions": len(corpus.sequences),
            "distinct_lines": len(texts),
            "format": parsed.format.name,
            "sessions_by": index.strategy,
            "flagged_training_sessions": int(flagged.sum()),
            "steps": len(history),
            "final_mlm_loss": _last_loss(history, "mlm"),
            "final_clean_loss": _last_loss(history, "clean"),
            "final_head_loss": _last_loss(history, "head"),
            "train_seconds": round(train_seconds, 1),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        return self

    def _with_head(self, raw: SequenceScores) -> SequenceScores:
        """``raw`` with the head's estimate of the trained head: the head reads only the [CLS]
        vectors, which fitting it leaves as they were, so no second encoder pass is needed."""
        import torch

        with torch.no_grad():
            vectors = torch.from_numpy(np.ascontiguousarray(raw.embedding, dtype=np.float32))
            head = self.network_.anomaly_head(vectors).squeeze(-1).numpy()
        return dataclasses.replace(raw, head=head.astype(raw.head.dtype))

    def adapt(self, log: LogInput, epochs: int = 1,
              on_progress: ProgressCallback | None = None,
              recalibrate: bool = False, frozen_layers: int | None = None
              ) -> TinyLogBERTDetector:
        """A new detector updated to a newer ``log`` without labels (``adapt.py``); it keeps
        this detector's thresholds unless ``recalibrate``, and the lower half of its encoder
        (unless ``recalibrate``, or ``frozen_layers`` says otherwise)."""
        from tinylogbert.scoring.adapt import adapt

        return adapt(self, log, epochs, on_progress, recalibrate, frozen_layers)

    def recalibrate(self, log: LogInput, head_weight: float | None = None
                    ) -> TinyLogBERTDetector:
        """Spreads and thresholds again from ``log``'s sessions (the training log: the same
        calibration ``fit`` ended with), optionally with another ``head_weight``; the network and
        the line statistics stay as trained. Returns ``self``.

        Why: the weight of the head is the one score setting a trained model can change without
        training again (the suite's ablation measures it this way)."""
        from tinylogbert.model.inference import score_sequences

        self._check_fitted()
        if head_weight is not None:
            self.head_weight = float(head_weight)
        parsed, index, corpus = self._prepare(log)
        raw = score_sequences(self.network_, corpus)
        self.decision_scores_ = np.round(
            self._calibrate(parsed, index, corpus, raw, with_head=True), 6)
        self.labels_ = (self.decision_scores_ >= self.threshold_).astype(int)
        return self

    def _refit_prior(
        self, parsed: ParsedLog, index: SessionIndex, corpus: SessionCorpus,
        raw: SequenceScores, encoded: pa.DictionaryArray, texts: list[str], flagged: np.ndarray,
        prior_base: np.ndarray | None = None,
    ) -> None:
        """With ``robust_prior``, count line frequencies again without the lines of the
        ``flagged`` training sessions (on top of ``prior_base``: ``adapt``'s old counts), and
        recalibrate."""
        if not self.training.robust_prior or not flagged.any() or flagged.all():
            return
        keep_line = np.ones(len(parsed), dtype=bool)
        keep_line[index.members[flagged[index.member_session()]]] = False
        kept = np.bincount(encoded.indices.to_numpy(zero_copy_only=False)[keep_line],
                           minlength=len(texts))
        counts = _class_counts(texts, kept, self._line_class,
                               len(self.line_vocab_) + FIRST_LINE_CLASS)
        if prior_base is not None:
            counts = (np.asarray(prior_base) + np.asarray(counts)).tolist()
        self.line_class_counts_ = counts
        self._calibrate(parsed, index, corpus, raw)

    # ---- scoring ----------------------------------------------------------------------------------
    def _round_weights(self) -> None:
        """The checkpoint stores fp16 weights; score with exactly those, so a saved and
        reloaded detector gives the same scores as the one that was trained."""
        import torch

        with torch.no_grad():
            for param in self.network_.parameters():
                param.copy_(param.half().float())

    def _line_rarity(self, corpus: SessionCorpus) -> np.ndarray:
        """``-log p(line)`` per line-table row of ``corpus`` (its pseudo-lines first)."""
        return self._rarity(corpus.line_class,
                            [""] * N_PSEUDO_LINES + list(corpus.line_texts))

    def line_rarity(self, texts: list[str]) -> np.ndarray:
        """``-log p(line)`` of normalised lines, exactly as scoring computes it (before the
        severity weight): what the templates table shows as a line's rarity."""
        self._check_fitted()
        vocabulary = self._vocabulary(pa.array(list(texts), type=pa.string()))
        classes = np.array([vocabulary.get(t, OTHER_LINE_CLASS) for t in texts], dtype=np.int64)
        return self._rarity(classes, list(texts))

    def _rarity(self, line_class: np.ndarray, texts: list[str]) -> np.ndarray:
        """From the training log's line frequencies. A line outside the vocabulary (new, or
        seen once) backs off to its words: ``-log p([OTHER]) + mean -log p(word)``, so among
        new messages those made of words the log never uses rank first (a new BGL alert among
        new but ordinary messages)."""
        counts = np.asarray(self.line_class_counts_, dtype=np.float64)
        prob = (counts + 0.5) / (counts.sum() + 0.5 * len(counts))
        rarity = -np.log(prob[line_class])
        words = getattr(self, "word_counts_", None)
        if words:
            other = np.flatnonzero(line_class == OTHER_LINE_CLASS)
            rarity[other] += _word_surprisal([texts[i] for i in other], words)
        if self.open_world:  # a matched new line: its known line's rarity plus what differs
            known = self._line_class
            new = np.flatnonzero((line_class != OTHER_LINE_CLASS)
                                 & np.array([t not in known for t in texts], dtype=bool))
            if len(new):
                texts_new = [texts[i] for i in new]
                unmatched = -np.log(prob[OTHER_LINE_CLASS]) + (
                    _word_surprisal(texts_new, words) if words else 0.0)
                cost = self.matcher().match(texts_new).cost
                rarity[new] = np.minimum(rarity[new] + cost, unmatched)
        return rarity

    def _position_signals(
        self, parsed: ParsedLog, index: SessionIndex, corpus: SessionCorpus, raw: SequenceScores
    ) -> PositionSignals:
        rarity = self._line_rarity(corpus)
        flat_rows = np.concatenate(corpus.sequences) if corpus.sequences else np.zeros(0, int)
        flat = corpus.member_flat
        member_rarity = rarity[flat_rows][flat]
        line_score = 0.5 * (member_rarity + raw.surprisal[flat])
        if self.severity_prior:  # a new FATAL line weighs more than a new INFO one
            weight = 1.0 + self._severity(parsed)[index.members]
            member_rarity, line_score = member_rarity * weight, line_score * weight
        return PositionSignals(
            rarity=member_rarity,
            excess=(raw.surprisal - raw.entropy)[flat],
            end_excess=raw.end_surprisal - raw.end_entropy,
            line_score=line_score,
        )

    @staticmethod
    def _severity(parsed: ParsedLog) -> np.ndarray:
        return line_severity(parsed.table["level"], parsed.words)

    def _components(
        self, corpus: SessionCorpus, index: SessionIndex, raw: SequenceScores,
        signals: PositionSignals,
    ) -> dict[str, np.ndarray]:
        """Per-session signals (see ``anomaly_score.py``)."""
        member_session = index.member_session()
        n = len(index)
        lengths = np.maximum(index.lengths(), 1)
        rarity = np.bincount(member_session, weights=signals.rarity, minlength=n) / lengths
        context = np.full(n, -np.inf)
        np.maximum.at(context, member_session, signals.excess)
        end_excess = signals.end_excess
        last_chunk = np.array([q[-1] for q in corpus.session_seqs], dtype=np.int64)
        context = np.maximum(context, end_excess[last_chunk] if n else context)
        top = np.full(n, -np.inf)
        np.maximum.at(top, member_session, signals.line_score)
        top = np.where(np.isfinite(top), top, 0.0)
        head = np.array([raw.head[q].max() for q in corpus.session_seqs], dtype=np.float64)
        return {"rarity": rarity, "context": context, "top": top, "head": head}

    def _sequence_targets(self, corpus: SessionCorpus, raw: SequenceScores) -> np.ndarray:
        """The calibrated score of each distinct sequence, as if it were a session (the line
        prior without the severity weight: a sequence has no levels, only its lines' words)."""
        rarity = self._line_rarity(corpus)
        flat_rows = np.concatenate(corpus.sequences) if corpus.sequences else np.zeros(0, int)
        position_rarity = rarity[flat_rows]
        excess, end_excess = raw.surprisal - raw.entropy, raw.end_surprisal - raw.end_entropy
        off = corpus.seq_offsets
        rarity = np.add.reduceat(position_rarity, off[:-1]) / np.maximum(np.diff(off), 1)
        context = np.maximum(np.maximum.reduceat(excess, off[:-1]), end_excess)
        top = np.maximum.reduceat(0.5 * (position_rarity + raw.surprisal), off[:-1])
        calib = self.calibration_
        weights = {k: v for k, v in calib.weights.items() if k != "head" and k in calib.center}
        comps = {"rarity": rarity, "context": context, "top": top}
        return sum(w * (comps[k] - calib.center[k]) / calib.scale[k] for k, w in weights.items())

    def _calibrate(
        self, parsed: ParsedLog, index: SessionIndex, corpus: SessionCorpus, raw: SequenceScores,
        with_head: bool = False,
    ) -> np.ndarray:
        """Centre, scale and threshold from the training sessions; returns their scores.
        ``with_head``: the head is trained, and takes ``head_weight`` of the score (before it
        is, its outputs are noise, and its weight 0)."""
        signals = self._position_signals(parsed, index, corpus, raw)
        comps = self._components(corpus, index, raw, signals)
        center, scale = {}, {}
        floors = _scale_floors(index)
        for name, values in comps.items():
            center[name], scale[name] = robust_center_scale(values, floor=floors[name])
        weights = dict(DEFAULT_WEIGHTS)
        if with_head:
            weights["head"] = float(self.head_weight)
        calib = Calibration(center=center, scale=scale, weights=weights)
        own = calib.combine(comps)  # what the session says as a whole
        calib.threshold = label_free_threshold(own, None, self.contamination,
                                               AUTO_MAX_SESSION_SHARE,
                                               min_scale=SESSION_SCALE_FLOOR)
        line_scores = self._line_scores(parsed, index, corpus, signals)
        _, session_spread = robust_center_scale(own, floor=SESSION_SCALE_FLOOR)
        if self.contamination == "auto":  # the line alarm (anomaly_score.py)
            calib.line_threshold = line_alarm_threshold(line_scores)
            _, line_spread = robust_center_scale(line_scores, upper=True, floor=NAT_RESOLUTION)
            calib.alarm_gain = float(session_spread / line_spread)
        else:  # a share of sessions to flag, exactly: no alarm on top of it
            calib.line_threshold = label_free_threshold(line_scores, None, self.contamination,
                                                        AUTO_MAX_LINE_SHARE, second_mode=False)
        scores = calib.session_score(comps)
        calib.contamination = float(np.mean(scores >= calib.threshold))
        calib.train_quantiles = {
            f"q{q}": float(np.quantile(scores, q / 100)) for q in (50, 90, 95, 99, 99.9)
        }
        calib.train_quantiles["scale"] = session_spread
        # The robust prior leaves out what the sessions say as a whole, not the alarm's lines.
        self._own_flags = own >= calib.threshold
        self.calibration_ = calib
        self.threshold_ = calib.threshold
        self.line_threshold_ = calib.line_threshold
        return scores

    def _scores_of(self, parsed: ParsedLog, index: SessionIndex, corpus: SessionCorpus,
                   raw: SequenceScores) -> np.ndarray:
        """The sessions' scores under the current calibration (``_calibrate`` makes a new one)."""
        signals = self._position_signals(parsed, index, corpus, raw)
        return self.calibration_.session_score(self._components(corpus, index, raw, signals))

    @staticmethod
    def _line_scores(
        parsed: ParsedLog, index: SessionIndex, corpus: SessionCorpus, signals: PositionSignals
    ) -> np.ndarray:
        """A line's score: the mean of its rarity and its surprisal where it stands, in nats
        (the max over its sessions)."""
        out = np.full(len(parsed), -np.inf)
        np.maximum.at(out, index.members, signals.line_score)
        return np.where(np.isfinite(out), out, 0.0)

    def score(
        self,
        log: LogInput,
        threshold: float | None = None,
        log_format: str | LogFormat | None = None,
        sessions: SessionConfig | None = None,
        on_progress: Callable[[float], None] | None = None,
        embeddings: bool = True,
    ) -> ScoreResult:
        """Score every line and session of ``log``.

        ``embeddings=False`` skips the pass that yields session embeddings and the head's
        estimate (``z_head`` becomes NaN); the scores are the same and it takes half the time
        (unless the head has a weight in the score: then the pass is made).
        """
        self._check_fitted()
        self._threads()
        parsed, index, corpus = self._prepare(log, log_format, sessions)
        needed = embeddings or bool(self.calibration_.weights.get("head", 0.0))
        raw = self._cache().score(self.network_, corpus, on_progress, bidirectional_pass=needed)
        return self._result(parsed, index, corpus, raw, threshold)

    def _cache(self) -> SequenceCache:
        """Results for distinct sequences, kept across calls (cleared when the model or
        ``open_world`` changes)."""
        # A sequence is keyed by its lines' text: what a text is scored as depends on the
        # network and on whether new lines are matched to known ones.
        key = (self.network_, self.open_world)
        if getattr(self, "_sequence_cache_key", None) != key:
            self._sequence_cache = SequenceCache()
            self._sequence_cache_key = key
        return self._sequence_cache

    def _result(
        self, parsed: ParsedLog, index: SessionIndex, corpus: SessionCorpus,
        raw: SequenceScores, threshold: float | None,
    ) -> ScoreResult:
        """The scores (maths here), then the tables (``result_tables.build_result``), then the
        feedback: the one place it applies, since every front end's scores pass through here."""
        calib = self.calibration_
        thr = self.threshold_ if threshold is None else float(threshold)
        signals = self._position_signals(parsed, index, corpus, raw)
        comps = self._components(corpus, index, raw, signals)
        # Rounded as written, so that flags computed here and by ``with_threshold`` agree.
        session_score = np.round(calib.session_score(comps), 6)
        line_score = np.round(self._line_scores(parsed, index, corpus, signals), 6)
        result = build_result(
            parsed, index, corpus, raw,
            session_score=session_score, line_score=line_score, member_score=signals.line_score,
            standardised={name: (values - calib.center[name]) / calib.scale[name]
                          for name, values in comps.items() if name in calib.center},
            threshold=thr, line_threshold=self.line_threshold_,
            scale=calib.train_quantiles.get("scale", 1.0), line_vocab=self.line_vocab_,
            hidden_size=self.network_.config.hidden_size,
        )
        return apply_feedback(result, getattr(self, "feedback_", None))

    def decision_function(self, log: LogInput) -> np.ndarray:
        """Session scores (higher = more anomalous), in order of first appearance."""
        return self.score(log).session_scores

    def predict(self, log: LogInput) -> np.ndarray:
        """1 for sessions at or above the threshold, else 0."""
        return (self.decision_function(log) >= self.threshold_).astype(int)

    def predict_proba(self, log: LogInput) -> np.ndarray:
        """``[n_sessions, 4]``: p of each severity grade (``classes_``, lowest first); the
        last two, ``high`` and ``critical``, are the flagged grades."""
        frame = self.score(log, embeddings=False).session_table
        return np.column_stack([frame[f"p_{g}"].to_numpy() for g in GRADES])

    @property
    def classes_(self) -> tuple[str, ...]:
        return GRADES

    def fit_predict(self, log: LogInput, on_progress: ProgressCallback | None = None) -> np.ndarray:
        """Fit on ``log`` and return ``labels_``: its own sessions' flags."""
        return self.fit(log, on_progress).labels_

    # ---- persistence (``persistence.py``) --------------------------------------------------------
    def save(self, folder: str | Path, onnx: bool | None = None) -> Path:
        """Write the checkpoint folder (see ``model/checkpoint.py``); with ``model.onnx`` for
        scoring without torch unless ``onnx=False`` (None: when the exporter, ``[onnx]`` extra,
        is there)."""
        from tinylogbert.scoring.persistence import save_detector

        self._check_fitted()
        return save_detector(self, folder, onnx)

    @classmethod
    def load(
        cls, folder: str | Path, runtime: str = "torch", num_threads: int | None = None
    ) -> TinyLogBERTDetector:
        """Load a checkpoint folder; verifies every file's sha256 first. ``runtime``: 'torch'
        (default: ``network_`` is the torch module, scores bit-identical to the saved detector's),
        'onnx' (``model.onnx`` in ONNX Runtime, within 1e-4; torch is never imported) or 'auto'
        (onnx when onnxruntime is installed and the folder has the graph, as ``tinylogbert score``
        does) or 'onnx-int8' (the graph's weights quantized at load, ``model/onnx_int8.py``:
        about 1.5x faster, scores within ~0.2, not bit-identical across batches; ``serve --int8``);
        ``num_threads`` as in ``__init__``."""
        from tinylogbert.scoring.persistence import load_detector

        return load_detector(cls, folder, runtime, num_threads)

    def info(self) -> dict:
        """Model metadata for ``GET /v1/model`` and the dashboard."""
        self._check_fitted()
        return {
            "version": __version__,
            "threshold": self.threshold_,
            "line_threshold": self.line_threshold_,
            "format": self.format_.name,
            "vocab_size": self.tokenizer_.vocab_size,
            "line_classes": len(self.line_vocab_) + FIRST_LINE_CLASS,
            "parameters": self.network_.n_parameters if isinstance(self.network_, OnnxTinyLogBERT)
            else sum(p.numel() for p in self.network_.parameters()),
            "model": self.model_config_.to_dict(),
            "runtime": (("onnx-int8" if self.network_.int8 else "onnx")
                        if isinstance(self.network_, OnnxTinyLogBERT) else "torch"),
            "training_summary": self.training_summary_,
        }


def _scale_floors(index: SessionIndex) -> dict[str, float]:
    """The least spread each session signal is standardised by: ``NAT_RESOLUTION`` for a
    per-line signal, and for ``rarity``, a mean over the session's lines, the spread of a mean of
    that many such lines (over the square root of the median session length)."""
    length = float(np.median(index.lengths())) if len(index) else 1.0
    return {"rarity": NAT_RESOLUTION / np.sqrt(max(length, 1.0)), "context": NAT_RESOLUTION,
            "top": NAT_RESOLUTION, "head": 1e-3}


def _sequences_of(corpus: SessionCorpus, sessions: np.ndarray) -> np.ndarray:
    """bool per distinct sequence: does any of the given sessions contain it?"""
    out = np.zeros(len(corpus.sequences), dtype=bool)
    for s in np.flatnonzero(sessions):
        out[corpus.session_seqs[s]] = True
    return out


def _last_loss(history: list[dict], phase: str) -> float | None:
    losses = [h["loss"] for h in history if h["phase"] == phase]
    return losses[-1] if losses else None

"""Saving and loading a detector: its learned state as JSON beside the weights (safetensors), the
tokenizer and the optional ONNX graph, with every file's sha256 checked before any is read.

Kept out of ``detector.py`` so the estimator reads as fit / score; the folder's layout is
documented in ``tinylogbert.model.checkpoint``.
"""
from __future__ import annotations

import json
import math
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tinylogbert import __version__
from tinylogbert.errors import CheckpointError
from tinylogbert.io.atomic_output import atomic_folder
from tinylogbert.io.log_formats import LogFormat
from tinylogbert.model.checkpoint import (
    DETECTOR_FILE,
    FORMAT_VERSION,
    LINE_VOCAB_FILE,
    check_folder,
    load_weights,
    load_word_embeddings,
    read_json,
    save_weights,
    write_manifest,
)
from tinylogbert.model.configs import FIRST_LINE_CLASS, ModelConfig, TrainConfig
from tinylogbert.model.log_tokenizer import LogTokenizer
from tinylogbert.model.onnx_runtime import (
    OnnxTinyLogBERT,
    choose_runtime,
    load_onnx,
    write_checkpoint_onnx,
)
from tinylogbert.scoring.anomaly_score import Calibration
from tinylogbert.scoring.feedback import FEEDBACK_FILE, read_feedback
from tinylogbert.sessions.grouping import SessionConfig

if TYPE_CHECKING:
    from tinylogbert.scoring.detector import TinyLogBERTDetector


def save_detector(
    det: TinyLogBERTDetector, folder: str | Path, onnx: bool | None = None
) -> Path:
    """The folder ``TinyLogBERTDetector.save`` writes (files as ``model/checkpoint.py`` lists)."""
    if isinstance(det.network_, OnnxTinyLogBERT):
        raise CheckpointError("a detector loaded with runtime='onnx' has no torch weights to "
                              "save; load it with runtime='torch'")
    target = Path(folder)
    if target.is_dir() and any(target.iterdir()) and not (target / DETECTOR_FILE).exists():
        raise CheckpointError(f"{target}: the folder holds other files; save to a new or empty "
                              "folder (or an earlier checkpoint, which is replaced)")
    # Built in a temporary folder beside the target and renamed into place once complete (and
    # fsynced): a killed or failed save leaves the earlier checkpoint, or none.
    with atomic_folder(target) as building:
        _write_files(det, building, target, onnx)
    return target


def _write_files(det: TinyLogBERTDetector, folder: Path, target: Path, onnx: bool | None) -> None:
    sha = save_weights(det.network_, folder)
    det.tokenizer_.save(folder)
    (folder / LINE_VOCAB_FILE).write_text(json.dumps(
        {"lines": det.line_vocab_, "class_counts": [int(c) for c in det.line_class_counts_],
         "word_counts": getattr(det, "word_counts_", None) or {}},
        indent=0,
    ))
    meta = {
        "tinylogbert_version": __version__,
        "checkpoint_format": FORMAT_VERSION,
        "weights_sha256": sha,
        "threshold": det.threshold_,
        "line_threshold": det.line_threshold_,
        "calibration": det.calibration_.to_dict(),
        "log_format": _format_to_dict(det.format_),
        "sessions": asdict(det.sessions),
        "model": det.model_config_.to_dict(),
        "training": det.training.to_dict(),
        "vocab_size": det.vocab_size,
        "max_line_tokens": det.max_line_tokens,
        "max_line_classes": det.max_line_classes,
        "min_line_count": det.min_line_count,
        "contamination": det.contamination,
        "severity_prior": det.severity_prior,
        "open_world": det.open_world,
        "masks": list(det.masks),
        "head_weight": det.head_weight,
        "training_summary": det.training_summary_,
    }
    (folder / DETECTOR_FILE).write_text(json.dumps(meta, indent=2, default=_json_default))
    write_checkpoint_onnx(det.network_, folder, sha, onnx)
    feedback = getattr(det, "feedback_", None)
    if feedback:  # a loaded model's feedback goes with it (a retrained one keeps the folder's)
        (folder / FEEDBACK_FILE).write_text(feedback.to_json(), encoding="utf-8")
    elif (target / FEEDBACK_FILE).is_file():
        shutil.copy2(target / FEEDBACK_FILE, folder / FEEDBACK_FILE)
    write_manifest(folder)  # last: the sha256 of every file above, checked by load


def load_detector(
    cls: type[TinyLogBERTDetector], folder: str | Path, runtime: str = "torch",
    num_threads: int | None = None,
) -> TinyLogBERTDetector:
    """The detector a folder holds (``TinyLogBERTDetector.load`` documents ``runtime``); every
    file's sha256 is checked first."""
    folder = check_folder(folder)
    meta = read_json(folder / DETECTOR_FILE)
    try:
        fmt = LogFormat(**meta["log_format"])
        det = cls(
            log_format="auto",
            sessions=SessionConfig(**meta["sessions"]),
            model_config=ModelConfig(**meta["model"]),
            training=TrainConfig(**meta["training"]),
            vocab_size=meta["vocab_size"],
            max_line_tokens=meta["max_line_tokens"],
            max_line_classes=meta["max_line_classes"],
            min_line_count=meta.get("min_line_count", 1),
            contamination=meta["contamination"],
            # Checkpoints from before the prior existed keep scoring as they were trained.
            severity_prior=meta.get("severity_prior", False),
            # Matching new lines to known ones needs nothing a checkpoint lacks: on for all.
            open_world=meta.get("open_world", True),
            masks=tuple(meta.get("masks", ())),
            num_threads=num_threads,
            head_weight=float(meta.get("head_weight", 0.0)),
        )
        det.format_ = fmt
        det.calibration_ = Calibration.from_dict(meta["calibration"])
        det.threshold_ = float(meta["threshold"])
        det.line_threshold_ = float(meta["line_threshold"])
        det.training_summary_ = meta["training_summary"]
        sha = meta["weights_sha256"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{folder / DETECTOR_FILE}: incomplete or invalid ({exc})") from None
    vocab = read_json(folder / LINE_VOCAB_FILE)
    if not isinstance(vocab, dict) or not {"lines", "class_counts"} <= set(vocab):
        raise CheckpointError(f"{folder / LINE_VOCAB_FILE}: expected lines and class_counts")
    line_vocab = vocab["lines"]
    det.line_vocab_ = line_vocab
    det.line_class_counts_ = vocab["class_counts"]
    det.word_counts_ = vocab.get("word_counts") or {}  # older checkpoints: no back-off
    det._line_class = {t: i + FIRST_LINE_CLASS for i, t in enumerate(line_vocab)}
    det.tokenizer_ = LogTokenizer.load(folder, det.max_line_tokens)
    det.model_config_ = det.model_config
    n_classes = len(line_vocab) + FIRST_LINE_CLASS
    chosen = choose_runtime(folder, runtime)
    if chosen in ("onnx", "onnx-int8"):
        det.network_ = load_onnx(folder, sha, n_classes, num_threads, int8=chosen == "onnx-int8")
        det.word_embeddings_ = load_word_embeddings(folder)  # the line matcher's, without torch
    else:
        det.network_ = load_weights(folder, sha, n_classes, det.model_config.head_hidden)
    det.feedback_ = read_feedback(folder)  # verified with the rest by check_folder
    return det


def _format_to_dict(fmt: LogFormat) -> dict:
    data = asdict(fmt)
    data.pop("groups", None)
    return data


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")



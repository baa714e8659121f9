"""TinyLogBERT core: parse logs, group sessions, train and score a BERT-mini log model.

Nothing heavy is imported here (no torch at import time); import what you need from the
submodules, or use the lazy names below::

    from tinylogbert import TinyLogBERTDetector
    det = TinyLogBERTDetector.load("checkpoint")
    result = det.score("sample_data/HDFS_sample.log.gz")
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "TinyLogBERTDetector": ("tinylogbert.scoring.detector", "TinyLogBERTDetector"),
    "SessionConfig": ("tinylogbert.sessions.grouping", "SessionConfig"),
    "ModelConfig": ("tinylogbert.model.tinylogbert_model", "ModelConfig"),
    "TrainConfig": ("tinylogbert.model.training", "TrainConfig"),
    "ScoreResult": ("tinylogbert.scoring.results", "ScoreResult"),
    "TinyLogBERTError": ("tinylogbert.errors", "TinyLogBERTError"),
}

__all__ = [
    "ModelConfig",
    "ScoreResult",
    "SessionConfig",
    "TinyLogBERTDetector",
    "TinyLogBERTError",
    "TrainConfig",
    "__version__",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'tinylogbert' has no attribute {name!r}")

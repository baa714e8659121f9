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
    "TinyLogBERTDetector": ("tinylogbert.detector", "TinyLogBERTDetector"),
    "SessionConfig": ("tinylogbert.sessions", "SessionConfig"),
    "ModelConfig": ("tinylogbert.tinylogbert_model", "ModelConfig"),
    "TrainConfig": ("tinylogbert.training", "TrainConfig"),
    "ScoreResult": ("tinylogbert.results", "ScoreResult"),
    "TinyLogBERTError": ("tinylogbert.errors", "TinyLogBERTError"),
}

__all__ = [
    "__version__", "TinyLogBERTDetector", "SessionConfig", "ModelConfig", "TrainConfig",
    "ScoreResult", "TinyLogBERTError",
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'core' has no attribute {name!r}")

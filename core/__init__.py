"""TinyLogBERT core: parse logs, group sessions, train and score a BERT-mini log model.

Nothing heavy is imported here (no torch at import time); import what you need from the
submodules, or use the lazy names below::

    from core import TinyLogBERTDetector
    det = TinyLogBERTDetector.load("checkpoint")
    result = det.score("sample_data/HDFS_sample.log.gz")
"""
from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "TinyLogBERTDetector": ("core.detector", "TinyLogBERTDetector"),
    "SessionConfig": ("core.sessions", "SessionConfig"),
    "ModelConfig": ("core.tinylogbert_model", "ModelConfig"),
    "TrainConfig": ("core.training", "TrainConfig"),
    "ScoreResult": ("core.results", "ScoreResult"),
    "TinyLogBERTError": ("core.errors", "TinyLogBERTError"),
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

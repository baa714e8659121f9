"""Which model the dashboard scores with, and training a new one on an uploaded log.

The shipped checkpoint (``checkpoint/`` at the repository root) is the default; the environment
variable ``TINYLOGBERT_MODEL`` points elsewhere (the tests use a tiny model). A model trained in the
dashboard is saved to a temporary folder and used for the rest of the session.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.checkpoint import DETECTOR_FILE
from core.detector import TinyLogBERTDetector
from core.log_reader import LogLines
from core.sessions import SessionConfig
from core.tinylogbert_model import ModelConfig
from core.training import TrainConfig, TrainProgress

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO_ROOT / "checkpoint"
MODEL_ENV = "TINYLOGBERT_MODEL"


def default_model_path() -> Path:
    """``$TINYLOGBERT_MODEL`` if set, else the shipped ``checkpoint/``."""
    override = os.environ.get(MODEL_ENV, "").strip()
    return Path(override).expanduser() if override else SHIPPED_MODEL


def model_exists(path: str | Path) -> bool:
    """True when ``path`` looks like a checkpoint folder (loading still verifies it)."""
    return (Path(path) / DETECTOR_FILE).is_file()


def model_stamp(path: str | Path) -> float:
    """Changes when the checkpoint is rewritten, so a cached model is reloaded."""
    try:
        return (Path(path) / DETECTOR_FILE).stat().st_mtime
    except OSError:
        return 0.0


@dataclass(frozen=True)
class TrainingPreset:
    """A named model size + schedule, so the user picks "fast" rather than ten numbers."""

    label: str
    model: ModelConfig
    training: TrainConfig
    vocab_size: int = 1000


TRAINING_PRESETS: dict[str, TrainingPreset] = {
    preset.label: preset
    for preset in (
        TrainingPreset(
            "Fast: small model, about a minute on 2 cores",
            ModelConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256),
            TrainConfig(epochs=2, head_epochs=1, steps_per_epoch=60),
            vocab_size=500,
        ),
        TrainingPreset(
            "Standard: BERT-mini like the shipped model (slow on a CPU)",
            ModelConfig(),
            TrainConfig(),
        ),
    )
}


def train_model(
    lines: LogLines,
    preset: TrainingPreset,
    log_format: str = "auto",
    sessions: SessionConfig | None = None,
    on_progress: Callable[[TrainProgress], None] | None = None,
    out_dir: str | Path | None = None,
) -> Path:
    """Fit a detector on an (unlabeled) uploaded log and save it; returns the folder."""
    detector = TinyLogBERTDetector(
        log_format=log_format,
        sessions=sessions or SessionConfig(),
        model=preset.model,
        training=preset.training,
        vocab_size=preset.vocab_size,
    )
    detector.fit(lines, on_progress=on_progress)
    folder = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="tinylogbert-dashboard-"))
    return detector.save(folder / "model")

"""Which model the dashboard scores with, and training a new one on an uploaded log.

The shipped checkpoint (``checkpoint/`` at the repository root) is the default; the environment
variable ``TINYLOGBERT_MODEL`` points elsewhere (the tests use a tiny model). A model trained in the
dashboard is saved to a temporary folder and used for the rest of the session; the folder is
deleted when the session trains another model, switches back, or the server stops.

What a visitor may train is bounded (``TrainingLimits``): on a shared server, one upload must not
keep the CPUs busy for hours or fill the disk with checkpoints.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinylogbert.errors import TinyLogBERTError
from tinylogbert.io.log_reader import LogLines
from tinylogbert.model.checkpoint import DETECTOR_FILE, FEEDBACK_FILE, MANIFEST_FILE
from tinylogbert.model.tinylogbert_model import ModelConfig
from tinylogbert.model.training import TrainConfig, TrainProgress
from tinylogbert.reports.display import plural
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.sessions.grouping import SessionConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MODEL = REPO_ROOT / "checkpoint"
MODEL_ENV = "TINYLOGBERT_MODEL"
MAX_TRAIN_LINES_ENV = "TINYLOGBERT_DASHBOARD_MAX_TRAIN_LINES"
MAX_EPOCHS_ENV = "TINYLOGBERT_DASHBOARD_MAX_EPOCHS"
TEMP_PREFIX = "tinylogbert-dashboard-"
_TEMP_FOLDERS: set[Path] = set()  # folders this process trained into, removed at exit


@dataclass(frozen=True)
class TrainingLimits:
    """The most a visitor may train: lines of the upload, and epochs of any phase."""

    max_lines: int = 200_000
    max_epochs: int = 5

    @classmethod
    def from_env(cls) -> TrainingLimits:
        values = {}
        for name, env in (("max_lines", MAX_TRAIN_LINES_ENV), ("max_epochs", MAX_EPOCHS_ENV)):
            raw = os.environ.get(env, "").strip()
            if raw:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise TinyLogBERTError(f"{env} must be an integer, got {raw!r}") from None
                if values[name] <= 0:
                    raise TinyLogBERTError(f"{env} must be positive, got {raw!r}")
        return cls(**values)

    def check(self, n_lines: int, training: TrainConfig) -> None:
        """Refuse (with the limit and how to raise it) what is over a limit."""
        if n_lines > self.max_lines:
            raise TinyLogBERTError(
                f"this dashboard trains on at most {plural(self.max_lines, 'line')} "
                f"({MAX_TRAIN_LINES_ENV}); the file has {n_lines:,}: train on it with the CLI, "
                "'tinylogbert train'")
        epochs = max(training.epochs, training.head_epochs, training.clean_epochs)
        if epochs > self.max_epochs:
            raise TinyLogBERTError(
                f"this dashboard trains at most {plural(self.max_epochs, 'epoch')} "
                f"({MAX_EPOCHS_ENV}); the chosen model size needs {epochs}")


def remove_trained_folder(path: str | Path | None) -> None:
    """Delete a folder the dashboard trained into (``.../tinylogbert-dashboard-*/model``); any
    other path (the shipped or a configured checkpoint) is left alone."""
    if not path:
        return
    root = Path(path).parent
    if root.name.startswith(TEMP_PREFIX) and root.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(root, ignore_errors=True)
        _TEMP_FOLDERS.discard(root)


@atexit.register
def _remove_all_trained_folders() -> None:
    for root in list(_TEMP_FOLDERS):
        shutil.rmtree(root, ignore_errors=True)


def default_model_path() -> Path:
    """``$TINYLOGBERT_MODEL`` if set, else the shipped ``checkpoint/``."""
    override = os.environ.get(MODEL_ENV, "").strip()
    return Path(override).expanduser() if override else SHIPPED_MODEL


def model_exists(path: str | Path) -> bool:
    """True when ``path`` looks like a checkpoint folder (loading still verifies it)."""
    return (Path(path) / DETECTOR_FILE).is_file()


def model_stamp(path: str | Path) -> float:
    """Changes when the checkpoint is rewritten or its feedback changes (both rewrite the
    manifest), so a cached model is reloaded."""
    stamps = []
    for name in (DETECTOR_FILE, MANIFEST_FILE, FEEDBACK_FILE):
        try:
            stamps.append((Path(path) / name).stat().st_mtime_ns)
        except OSError:
            stamps.append(0)
    return float(max(stamps)) / 1e9 if stamps else 0.0


@dataclass(frozen=True)
class TrainingPreset:
    """A named model size + schedule, so the user picks "fast" rather than ten numbers."""

    label: str
    model: ModelConfig
    training: TrainConfig
    vocab_size: int = 1000

    def cli_command(self) -> str:
        """The ``tinylogbert train`` that trains the same model the same way."""
        m, t, default = self.model, self.training, ModelConfig()
        size = "" if m == default else (
            f" --hidden {m.hidden_size} --layers {m.num_hidden_layers} "
            f"--heads {m.num_attention_heads} --intermediate {m.intermediate_size}")
        steps = f" --steps-per-epoch {t.steps_per_epoch}" if t.steps_per_epoch else ""
        return (f"tinylogbert train LOG --out DIR{size} --vocab-size {self.vocab_size} "
                f"--epochs {t.epochs} --head-epochs {t.head_epochs}{steps}")

    def describe(self) -> str:
        t = self.training
        per_epoch = (f"{t.steps_per_epoch} steps" if t.steps_per_epoch else
                     f"one pass over the sessions ({t.batch_size} per step)")
        return (f"{plural(t.epochs, 'epoch')} of {per_epoch}, then "
                f"{plural(t.head_epochs, 'head epoch')}: the schedule of `tinylogbert train`, "
                "so a log takes as many steps here as there")


# Both presets train with the CLI's schedule (``tinylogbert train``'s defaults: 5 epochs of one
# pass over the sessions, 2 head epochs), so the same log takes the same steps in both front
# ends; "Fast" only makes the model smaller.
CLI_SCHEDULE = TrainConfig(epochs=5, head_epochs=2)
TRAINING_PRESETS: dict[str, TrainingPreset] = {
    preset.label: preset
    for preset in (
        TrainingPreset(
            "Fast: small model (hidden 64, 2 layers), several times faster than Standard",
            ModelConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=256),
            CLI_SCHEDULE,
            vocab_size=500,
        ),
        TrainingPreset(
            "Standard: BERT-mini like the shipped model and tinylogbert train's default "
            "(slow on a CPU)",
            ModelConfig(),
            CLI_SCHEDULE,
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
    limits: TrainingLimits | None = None,
) -> Path:
    """Fit a detector on an (unlabeled) uploaded log and save it; returns the folder.

    Within ``limits`` (default: from the environment); a temporary folder is removed again if
    saving fails, and at exit."""
    (limits or TrainingLimits.from_env()).check(len(lines), preset.training)
    detector = TinyLogBERTDetector(
        log_format=log_format,
        sessions=sessions or SessionConfig(),
        model_config=preset.model,
        training=preset.training,
        vocab_size=preset.vocab_size,
    )
    detector.fit(lines, on_progress=on_progress)
    if out_dir:
        return detector.save(Path(out_dir) / "model")
    return _save_to_temporary_folder(detector)


def adapt_model(
    lines: LogLines,
    base: str | Path,
    on_progress: Callable[[TrainProgress], None] | None = None,
    limits: TrainingLimits | None = None,
) -> Path:
    """The model at ``base`` followed to an uploaded newer log (``TinyLogBERTDetector.adapt``:
    one epoch, keeping what it knew), saved to a temporary folder as ``train_model`` does."""
    detector = TinyLogBERTDetector.load(base, runtime="torch")
    (limits or TrainingLimits.from_env()).check(len(lines), TrainConfig(epochs=1, head_epochs=1))
    adapted = detector.adapt(lines, on_progress=on_progress)
    return _save_to_temporary_folder(adapted)


def _save_to_temporary_folder(detector: TinyLogBERTDetector) -> Path:
    """Save to a new temporary folder (removed at exit); removed again if saving fails."""
    folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    _TEMP_FOLDERS.add(folder)
    try:
        return detector.save(folder / "model")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        _TEMP_FOLDERS.discard(folder)
        raise

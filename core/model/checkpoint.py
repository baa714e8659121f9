"""A checkpoint is a folder, in the spirit of Hugging Face's ``save_pretrained``:

- ``config.json``       the BERT encoder's config (``transformers.BertConfig``)
- ``model.safetensors`` all weights (encoder + both heads), fp16 by default
- ``tokenizer.json``    the WordPiece tokenizer (``tokenizers``)
- ``line_vocab.json``   the lines the MLM head predicts by name
- ``detector.json``     everything else: threshold, calibration, configs, training summary,
                        version, and the sha256 of ``model.safetensors``
- ``model.onnx``        optional: the scoring graph for ONNX Runtime (``onnx_runtime.py``),
                        exported from the weights by ``save`` or ``tinylogbert export-onnx``
- ``feedback.json``     optional: sessions a user marked as normal (``feedback.py``), written by
                        ``tinylogbert feedback`` / ``POST /v1/feedback`` / the dashboard, which
                        update this file's line in the manifest
- ``checkpoint.sha256.json``  the sha256 of each file above (written last by ``save``)

Loading checks every file against the manifest before reading any of them, so a changed
``detector.json`` (say, a planted format regex) or tokenizer fails like changed weights do; and it
never unpickles anything. ``model.onnx`` is code as much as data (a graph ONNX Runtime runs),
so it is checked the same way when present, and one the manifest does not list is refused.
Folders saved before the manifest existed (no such file) are still loaded, with the weights' hash from ``detector.json`` as the only check; saving again adds it.
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tinylogbert.errors import CheckpointError
from tinylogbert.io.atomic_output import (
    atomic_file,
    atomic_folder,
    fsync_file,
    is_temp,
    pending_temps,
    write_text,
)
from tinylogbert.io.log_formats import LogFormat

if TYPE_CHECKING:  # torch and transformers load with the weights, not with this module
    import torch
    from tinylogbert.model.tinylogbert_model import TinyLogBERT
    from tinylogbert.sessions.grouping import SessionConfig

# The shipped model: checkpoint/ beside core/ in the source tree (and in an editable install).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "checkpoint"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
LINE_VOCAB_FILE = "line_vocab.json"
DETECTOR_FILE = "detector.json"
REQUIRED_FILES = (CONFIG_FILE, WEIGHTS_FILE, "tokenizer.json", LINE_VOCAB_FILE, DETECTOR_FILE)
# Files a checkpoint may have; the manifest covers each one that is there.
ONNX_FILE = "model.onnx"
FEEDBACK_FILE = "feedback.json"  # (``feedback.py``)
OPTIONAL_FILES = (ONNX_FILE, FEEDBACK_FILE)
MANIFEST_FILE = "checkpoint.sha256.json"
FORMAT_VERSION = 1


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (some libraries' messages span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_weights(model: TinyLogBERT, folder: Path, dtype: torch.dtype | None = None) -> str:
    """Write config.json + model.safetensors (fp16 unless ``dtype``); return their sha256."""
    import torch
    from safetensors.torch import save_file

    dtype = dtype or torch.float16
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(model.config.to_json_string())
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "tinylogbert"})
    return sha256_file(folder / WEIGHTS_FILE)


def trained_format(folder: str | Path) -> LogFormat | None:
    """The log format a checkpoint was trained on, from ``detector.json`` alone (no torch), so a
    caller can parse a log with it while the model loads. None when unreadable: loading the
    model then says why."""
    try:
        meta = json.loads((Path(folder) / DETECTOR_FILE).read_text(encoding="utf-8"))
        return LogFormat(**meta["log_format"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def trained_sessions(folder: str | Path) -> SessionConfig | None:
    """The session rule a checkpoint was trained with, from ``detector.json`` alone (no torch).
    None when unreadable, as ``trained_format``."""
    from tinylogbert.sessions.grouping import SessionConfig

    try:
        meta = json.loads((Path(folder) / DETECTOR_FILE).read_text(encoding="utf-8"))
        return SessionConfig(**meta["sessions"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_json(path: Path) -> dict | list:
    if not path.exists():
        raise CheckpointError(f"{path.parent}: missing {path.name}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None


def check_folder(folder: str | Path, optional_files: bool = True) -> Path:
    """The folder, once it has every file and (when it has a manifest) every file's hash;
    ``optional_files=False`` leaves ``model.onnx`` unchecked (for re-exporting it); the other
    optional files (``feedback.json``) are checked either way."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: no such model folder")
    missing = [name for name in REQUIRED_FILES if not (folder / name).exists()]
    if missing:
        raise CheckpointError(f"{folder}: not a TinyLogBERT checkpoint (missing {', '.join(missing)})")
    verify_manifest(folder, optional_files)
    return folder


def save_copy(folder: str | Path, destination: str | Path) -> Path:
    """Copy a verified checkpoint to ``destination`` (a new or empty folder) and verify the copy,
    so that a model trained in a temporary folder (the dashboard's) outlives it."""
    source = check_folder(folder)
    target = Path(destination).expanduser()
    if not str(destination).strip():
        raise CheckpointError("name a folder to save the model to")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise CheckpointError(f"{target}: exists and is not an empty folder; name a new one")
    if not target.parent.is_dir():
        raise CheckpointError(f"{target.parent}: no such folder to save into")
    try:  # copied into a temporary folder and renamed into place: never a half-saved model
        with atomic_folder(target) as building:
            for path in sorted(source.iterdir()):
                if path.is_file() and not is_temp(path):
                    shutil.copy2(path, building / path.name)
            if not (building / MANIFEST_FILE).exists():
                write_manifest(building)
    except OSError as exc:
        raise CheckpointError(f"{target}: cannot save the model ({one_line(exc)})") from exc
    return check_folder(target)


def archive_bytes(folder: str | Path, name: str = "model") -> bytes:
    """The checkpoint as a .zip (its files under ``name/``, the integrity manifest included),
    verified first so that an archive never carries a changed file."""
    source = check_folder(folder)
    if not (source / MANIFEST_FILE).exists():
        raise CheckpointError(f"{source}: has no manifest; save it again to add one")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.iterdir()):
            if path.is_file() and not is_temp(path):
                archive.write(path, f"{name}/{path.name}")
    return buffer.getvalue()


def manifest_text(folder: str | Path, pending: dict[str, Path] | None = None) -> str:
    """The manifest of ``folder``: the sha256 of every checkpoint file, those in ``pending``
    (name -> the temporary file about to replace it) hashed from their new content."""
    folder, pending = Path(folder), pending or {}
    names = [*REQUIRED_FILES, *(name for name in OPTIONAL_FILES
                                if name in pending or (folder / name).exists())]
    files = {name: sha256_file(pending.get(name, folder / name)) for name in names}
    return json.dumps({"algorithm": "sha256", "files": files}, indent=2) + "\n"


def manifest_with(folder: Path, name: str, new_file: Path) -> str:
    """The folder's (verified) manifest with one file's line set from ``new_file``, the
    temporary about to replace it; the other lines are kept, not recomputed, so an update never
    blesses another file changed behind its back."""
    manifest = read_json(folder / MANIFEST_FILE)
    manifest["files"][name] = sha256_file(new_file)
    return json.dumps(manifest, indent=2) + "\n"


def write_manifest(folder: str | Path) -> Path:
    """Record the sha256 of every checkpoint file; called once all of them are written."""
    path = Path(folder) / MANIFEST_FILE
    write_text(path, manifest_text(folder), durable=True)
    return path


@contextmanager
def manifest_update(folder: Path) -> Iterator[Path]:
    """Change files of a saved checkpoint and its manifest as one: yields the manifest's
    temporary file, which the block fills (``manifest_text`` with the new files pending) after
    writing the files' own temporaries and before renaming them; the manifest is renamed last.
    A kill in between leaves that temporary manifest, complete, and ``verify_manifest``
    finishes the update from it: never a folder that fails its own check."""
    with atomic_file(folder / MANIFEST_FILE, durable=True) as partial:
        yield partial


def verify_manifest(folder: Path, optional_files: bool = True) -> bool:
    """Check every file against ``checkpoint.sha256.json``; False for an older folder without one
    (then only the weights' hash is checked, by ``load_weights``). An update a kill interrupted
    (``manifest_update``) is finished first when its manifest matches the files."""
    try:
        return _verify_manifest(folder, optional_files)
    except CheckpointError:
        if not _finish_interrupted_update(folder):
            raise
    return _verify_manifest(folder, optional_files)


def _finish_interrupted_update(folder: Path) -> bool:
    """Rename into place a manifest a killed writer left complete, if every file it lists (and
    no other) matches it; True when one was."""
    for pending in pending_temps(folder / MANIFEST_FILE):
        try:
            manifest = json.loads(pending.read_text(encoding="utf-8"))
            files = manifest["files"]
            names = [*REQUIRED_FILES, *(n for n in OPTIONAL_FILES if (folder / n).exists())]
            if sorted(files) != sorted(names) or not all(
                    hmac.compare_digest(files[n], sha256_file(folder / n)) for n in names):
                continue
            os.replace(pending, folder / MANIFEST_FILE)
            return True
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return False


def _verify_manifest(folder: Path, optional_files: bool) -> bool:
    path = folder / MANIFEST_FILE
    if not path.exists():
        return False
    manifest = read_json(path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or manifest.get("algorithm") != "sha256":
        raise CheckpointError(f"{path}: not a checkpoint manifest (expected sha256 'files')")
    uncovered = [name for name in REQUIRED_FILES if not isinstance(files.get(name), str)]
    if uncovered:
        raise CheckpointError(f"{path}: does not cover {', '.join(uncovered)}")
    optional = [name for name in OPTIONAL_FILES if optional_files or name != ONNX_FILE]
    present = [name for name in optional if (folder / name).exists()]
    unlisted = [name for name in present if not isinstance(files.get(name), str)]
    if unlisted:
        how = (f"re-export with tinylogbert export-onnx --model {folder}"
               if unlisted[0] == ONNX_FILE else
               "add feedback with tinylogbert feedback, which updates the manifest")
        raise CheckpointError(
            f"{folder / unlisted[0]}: not covered by {MANIFEST_FILE} (not saved with this "
            f"checkpoint): delete it, or {how}")
    listed = [name for name in optional if isinstance(files.get(name), str)]
    lost = [name for name in listed if name not in present]
    if lost:
        raise CheckpointError(f"{folder}: missing {', '.join(lost)} (listed in {MANIFEST_FILE})")
    return _verify_files(folder, files, [*REQUIRED_FILES, *listed])


def _verify_files(folder: Path, files: dict, names: list[str] | tuple[str, ...]) -> bool:
    for name in names:
        expected, actual = files[name], sha256_file(folder / name)
        if not hmac.compare_digest(expected, actual):
            raise CheckpointError(
                f"{folder / name}: sha256 mismatch (expected {expected[:12]}..., got "
                f"{actual[:12]}...): the checkpoint is corrupt or was changed")
    return True


def check_init_from(source: str) -> Path:
    """``--init-from`` takes a local folder with ``model.safetensors`` only: nothing is
    downloaded (no hub ids) and no pickled weights (``pytorch_model.bin``) are ever loaded."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise CheckpointError(f"--init-from {source}: not a local folder (models are not downloaded; "
                              "save the Hugging Face model with save_pretrained and give its folder)")
    if not (folder / "config.json").is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"--init-from {source}: needs config.json and {WEIGHTS_FILE} "
                              "(pickled weights such as pytorch_model.bin are not loaded)")
    return folder


def model_from_pretrained(
    name_or_path: str, vocab_size: int, pad_token_id: int, n_line_classes: int,
    head_hidden: int = 64,
) -> TinyLogBERT:
    """Start the encoder from a Hugging Face BERT saved in a local folder (``save_pretrained``);
    the word embeddings are resized to the log vocabulary. Offline and safetensors only, from
    the CLI and from Python alike: a hub id is not downloaded and pickled weights
    (``pytorch_model.bin``) are never unpickled (``check_init_from`` says why)."""
    from tinylogbert.model.tinylogbert_model import TinyLogBERT
    from transformers import BertModel

    from transformers.utils import logging as hf_logging

    folder = check_init_from(name_or_path)
    # Only the encoder is taken: a checkpoint's pooler and MLM head are expected to be left
    # unused, and transformers' LOAD REPORT table of them (UNEXPECTED keys), its resize notes
    # and its "Loading weights" bar are noise on every --init-from run. Errors still raise.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        bert = BertModel.from_pretrained(folder, add_pooling_layer=False, local_files_only=True,
                                         use_safetensors=True)
        bert.resize_token_embeddings(vocab_size)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    cfg = bert.config
    cfg.pad_token_id = pad_token_id
    model = TinyLogBERT(cfg, n_line_classes, head_hidden)
    model.bert.load_state_dict(bert.state_dict())
    return model


def load_word_embeddings(folder: Path) -> np.ndarray:
    """The word-piece embedding matrix alone, as numpy (no torch): what the line matcher reads
    under ONNX Runtime. The file's sha256 was checked with the folder."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(folder / WEIGHTS_FILE), framework="np") as f:
            return f.get_tensor(WORD_EMBEDDINGS_KEY).astype(np.float32)
    except (SafetensorError, KeyError, OSError) as exc:
        raise CheckpointError(f"{folder / WEIGHTS_FILE}: no word embeddings ({exc})") from None


WORD_EMBEDDINGS_KEY = "bert.embeddings.word_embeddings.weight"


def load_weights(folder: Path, expected_sha256: str, n_line_classes: int, head_hidden: int) -> TinyLogBERT:
    """Verify the hash, then build the model from config.json and load the safetensors."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from tinylogbert.model.tinylogbert_model import TinyLogBERT
    from transformers import BertConfig

    actual = sha256_file(folder / WEIGHTS_FILE)
    if actual != expected_sha256:
        raise CheckpointError(
            f"{folder / WEIGHTS_FILE}: sha256 mismatch (expected {expected_sha256[:12]}..., "
            f"got {actual[:12]}...): the weights are corrupt or were changed"
        )
    raw_config = read_json(folder / CONFIG_FILE)
    try:
        if not isinstance(raw_config, dict):
            raise TypeError(f"a JSON object is needed, not {type(raw_config).__name__}")
        config = BertConfig.from_dict(raw_config)
    except Exception as exc:  # noqa: BLE001 -- transformers raises many kinds; all mean "corrupt"
        raise CheckpointError(
            f"{folder / CONFIG_FILE}: not a valid model config ({one_line(exc)})") from None
    try:
        model = TinyLogBERT(config, n_line_classes, head_hidden)
        state = load_file(str(folder / WEIGHTS_FILE))
        model.load_state_dict({k: v.float() for k, v in state.items()})
    except (SafetensorError, RuntimeError, ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{folder}: weights do not fit the config ({exc})") from None
    model.eval()
    return model

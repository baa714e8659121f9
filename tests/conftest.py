"""Shared fixtures: a tiny model trained in seconds on a small slice of real HDFS data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
SMALL_LOG = DATA / "hdfs_small.log.gz"
SMALL_LABELS = DATA / "hdfs_small_labels.csv"
CHECKPOINT = ROOT / "checkpoint"

torch.set_num_threads(min(2, os.cpu_count() or 1))
# Subprocesses (CLI, server) run this checkout's ``core``, not whatever an editable install of the
# project points at.
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def tiny_detector_factory(**overrides):
    from tinylogbert.model.tinylogbert_model import ModelConfig
    from tinylogbert.model.training import TrainConfig
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    kwargs = dict(
        model_config=ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=64),
        training=TrainConfig(epochs=1, head_epochs=1, steps_per_epoch=8, batch_size=16, seed=0),
        vocab_size=200,
    )
    kwargs.update(overrides)
    return TinyLogBERTDetector(**kwargs)


@pytest.fixture(scope="session")
def tiny_detector():
    """A tiny TinyLogBERT fitted on 300 real HDFS blocks (seconds, not minutes)."""
    return tiny_detector_factory().fit(SMALL_LOG)


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_detector, tmp_path_factory) -> Path:
    return tiny_detector.save(tmp_path_factory.mktemp("ckpt") / "tiny")


def copy_with_changed_weights(checkpoint: Path, folder: Path) -> Path:
    """A copy of ``checkpoint`` whose weights file has one byte flipped (fails the hash check)."""
    import shutil

    shutil.copytree(checkpoint, folder)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    return folder


def deal_small_log(folder: Path, nodes: int = 4) -> list[str]:
    """``SMALL_LOG``'s lines dealt round-robin into ``folder/node-<i>.log``, as ``nodes``
    nodes would write one stream; returns the lines in their original order."""
    import gzip

    with gzip.open(SMALL_LOG, "rt") as handle:
        lines = handle.read().splitlines()
    folder.mkdir()
    for node in range(nodes):
        (folder / f"node-{node}.log").write_text("".join(f"{line}\n" for line in lines[node::nodes]))
    return lines

"""``adapt``: a trained detector follows a reworded release without labels."""
from __future__ import annotations

import gzip
import subprocess
import sys

import numpy as np
import pytest
from benchmarks.evolution import variant_lines
from conftest import SMALL_LOG, tiny_detector_factory
from tinylogbert.model.configs import FIRST_LINE_CLASS
from tinylogbert.model.training import TrainConfig


@pytest.fixture(scope="module")
def base():
    # Three epochs for the base fit, so one adapt epoch is measurably fewer steps.
    training = TrainConfig(epochs=3, head_epochs=1, steps_per_epoch=8, batch_size=16, seed=0)
    return tiny_detector_factory(training=training).fit(SMALL_LOG)


@pytest.fixture(scope="module")
def reworded(base) -> list[str]:
    with gzip.open(SMALL_LOG, "rt") as handle:
        lines = handle.read().splitlines()
    out, info = variant_lines(lines, base.parse(lines), "30%", seed=0)
    assert info["lines_changed"] > 0
    return out


@pytest.fixture(scope="module")
def adapted(base, reworded):
    return base.adapt(reworded)


def test_reworded_lines_become_known_and_old_lines_stay(base, adapted, reworded):
    new_texts = set(adapted.parse(reworded).words.to_pylist())
    added = adapted.line_vocab_[len(base.line_vocab_):]
    assert adapted.line_vocab_[: len(base.line_vocab_)] == base.line_vocab_
    assert added and all(t in new_texts and t not in base.line_vocab_ for t in added)
    assert len(adapted.line_class_counts_) == len(adapted.line_vocab_) + FIRST_LINE_CLASS
    assert sum(adapted.line_class_counts_) > sum(base.line_class_counts_)
    assert adapted.network_.mlm_head[1].out_features == len(adapted.line_class_counts_)
    info = adapted.training_summary_["adapted_from"]
    assert info["summary"] == base.training_summary_ and info["new_line_classes"] == len(added)


def test_input_detector_untouched(base, adapted):
    assert base.network_ is not adapted.network_
    assert base.network_.mlm_head[1].out_features == len(base.line_vocab_) + FIRST_LINE_CLASS
    assert "adapted_from" not in base.training_summary_


def test_flags_less_of_the_reworded_log(base, adapted, reworded):
    before = base.predict(reworded).mean()
    after = adapted.predict(reworded).mean()
    assert after <= max(before, base.labels_.mean())


def test_a_detector_that_has_scored_can_be_adapted(base, adapted, reworded):
    """Scoring leaves caches on a detector (the sequence cache holds a lock): adapting it after
    it scored once failed to copy it. The result is the same as adapting it fresh."""
    base.score(reworded, embeddings=False)
    assert "_sequence_cache" in base.__dict__
    again = base.adapt(reworded)
    assert "_sequence_cache" not in again.__dict__ and again.line_vocab_ == adapted.line_vocab_
    np.testing.assert_array_equal(again.decision_function(reworded),
                                  adapted.decision_function(reworded))


def test_fewer_steps_than_fit(base, adapted):
    assert adapted.training_summary_["steps"] < base.training_summary_["steps"]


def test_save_load_round_trip(adapted, reworded, tmp_path):
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    loaded = TinyLogBERTDetector.load(adapted.save(tmp_path / "adapted", onnx=False))
    assert loaded.line_vocab_ == adapted.line_vocab_
    np.testing.assert_array_equal(loaded.decision_function(reworded),
                                  adapted.decision_function(reworded))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinylogbert.cli.main", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_end_to_end_and_errors(tiny_checkpoint, reworded, tmp_path):
    log = tmp_path / "new.log"
    log.write_text("\n".join(reworded) + "\n")
    proc = run("adapt", "--model", str(tiny_checkpoint), str(log), "--out",
               str(tmp_path / "out"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "threshold" in proc.stdout and "line classes" in proc.stdout
    assert (tmp_path / "out" / "model.safetensors").is_file()
    same = run("adapt", "--model", str(tiny_checkpoint), str(log), "--out", str(tiny_checkpoint))
    assert same.returncode == 2 and "--force" in same.stderr and "Traceback" not in same.stderr
    empty = tmp_path / "empty.log"
    empty.write_text("")
    proc = run("adapt", "--model", str(tiny_checkpoint), str(empty), "--out", str(tmp_path / "o2"))
    assert proc.returncode == 2 and "empty" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("adapt", "--model", str(tmp_path / "nope"), str(log), "--out", str(tmp_path / "o3"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr

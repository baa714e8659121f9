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


def test_adapting_does_not_flood_the_alarms(base, adapted, reworded):
    """Judged by the thresholds it started from, the adapted model flags the reworded log about
    as the model did before adapting (this tiny model reads the rewording as it did: one
    session of 300 either way), and far from every session, which is what a flood looks like."""
    before = base.predict(reworded)
    after = adapted.predict(reworded)
    assert after.sum() <= before.sum() + 1 and after.mean() < 0.5


def test_a_detector_that_has_scored_can_be_adapted(base, adapted, reworded):
    """Scoring leaves caches on a detector (the sequence cache holds a lock): adapting it after
    it scored once failed to copy it. The result is the same as adapting it fresh."""
    base.score(reworded, embeddings=False)
    assert "_sequence_cache" in base.__dict__
    again = base.adapt(reworded)
    assert "_sequence_cache" not in again.__dict__ and again.line_vocab_ == adapted.line_vocab_
    np.testing.assert_array_equal(again.decision_function(reworded),
                                  adapted.decision_function(reworded))


def test_thresholds_are_kept_unless_recalibrated(base, adapted, reworded):
    """By default the adapted model judges by the thresholds and spreads it started from, and its
    own training scores are those thresholds' verdicts; ``recalibrate`` takes them from the log."""
    assert (adapted.threshold_, adapted.line_threshold_) == (base.threshold_, base.line_threshold_)
    assert adapted.calibration_.to_dict() == base.calibration_.to_dict()
    assert adapted.calibration_ is not base.calibration_
    assert not adapted.training_summary_["adapted_from"]["recalibrated"]
    np.testing.assert_allclose(adapted.decision_scores_, adapted.decision_function(reworded),
                               atol=1e-5)
    assert (adapted.labels_ == (adapted.decision_scores_ >= base.threshold_)).all()
    fresh = base.adapt(reworded, recalibrate=True)
    assert fresh.training_summary_["adapted_from"]["recalibrated"]
    assert fresh.calibration_.to_dict() != base.calibration_.to_dict()
    np.testing.assert_allclose(fresh.decision_scores_, fresh.decision_function(reworded), atol=1e-5)


def test_the_head_learns_on_the_scale_the_adapted_model_scores_with(base, reworded, monkeypatch):
    """The head's regression targets are session scores under a calibration; they must be
    under the one the adapted model keeps, or a head given a weight (``--head-weight``) would be
    trained on one scale and read on another. The robust prior's flags stay the new log's own."""
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    seen: list[dict] = []
    original = TinyLogBERTDetector._sequence_targets

    def recording(self, corpus, raw):
        seen.append(self.calibration_.to_dict())
        return original(self, corpus, raw)

    monkeypatch.setattr(TinyLogBERTDetector, "_sequence_targets", recording)
    kept = base.adapt(reworded)
    assert seen == [base.calibration_.to_dict()]
    assert kept.calibration_.to_dict() == base.calibration_.to_dict()
    seen.clear()
    fresh = base.adapt(reworded, recalibrate=True)
    assert len(seen) == 1 and seen[0] != base.calibration_.to_dict()
    # recalibrated at the end, with the head trained: the spreads the head learnt on stay
    assert seen[0]["scale"]["rarity"] == fresh.calibration_.to_dict()["scale"]["rarity"]


def test_the_lower_layers_and_the_embeddings_keep_their_weights(reworded):
    """``frozen_layers``: the word-piece embeddings and the lowest layers are not fine-tuned
    (so the line matcher, which reads the embeddings, stays the one the model knew), the rest
    is; every weight is trainable again afterwards. The default: the lower half."""
    from tinylogbert.model.tinylogbert_model import ModelConfig
    from tinylogbert.scoring.adapt import AdaptError

    config = ModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64)
    training = TrainConfig(epochs=2, head_epochs=1, steps_per_epoch=8, batch_size=16, seed=0)
    two = tiny_detector_factory(model_config=config, training=training).fit(SMALL_LOG)
    before = {k: v.clone() for k, v in two.network_.state_dict().items()}

    def changed(detector) -> set[str]:
        after = detector.network_.state_dict()
        return {k for k, v in before.items() if k in after and after[k].shape == v.shape
                and not bool((after[k] == v).all())}

    top = two.adapt(reworded)
    assert top.training_summary_["adapted_from"]["frozen_layers"] == 1
    moved = changed(top)
    assert not any(k.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for k in moved)
    assert any(k.startswith("bert.encoder.layer.1.") for k in moved)
    assert all(p.requires_grad for p in top.network_.parameters())
    recalibrated = two.adapt(reworded, recalibrate=True)  # as train does: every weight
    assert recalibrated.training_summary_["adapted_from"]["frozen_layers"] == 0
    assert any(k.startswith("bert.encoder.layer.0.") for k in changed(recalibrated))
    every = changed(two.adapt(reworded, frozen_layers=0))
    assert any(k.startswith("bert.embeddings.word_embeddings") for k in every)
    assert any(k.startswith("bert.encoder.layer.0.") for k in every)
    for bad in (-1, 3):
        with pytest.raises(AdaptError, match="between 0 and 2"):
            two.adapt(reworded, frozen_layers=bad)


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
    assert "threshold" in proc.stdout and "(kept)" in proc.stdout and "line classes" in proc.stdout
    assert "every weight fine-tuned" in proc.stdout  # the tiny checkpoint has one layer
    assert (tmp_path / "out" / "model.safetensors").is_file()
    proc = run("adapt", "--model", str(tiny_checkpoint), str(log), "--out",
               str(tmp_path / "recalibrated"), "--quiet", "--recalibrate")
    assert proc.returncode == 0 and "(from the new log)" in proc.stdout, proc.stderr
    same = run("adapt", "--model", str(tiny_checkpoint), str(log), "--out", str(tiny_checkpoint))
    assert same.returncode == 2 and "--force" in same.stderr and "Traceback" not in same.stderr
    proc = run("adapt", "--model", str(tiny_checkpoint), str(log), "--out",
               str(tmp_path / "o4"), "--frozen-layers", "9")
    assert proc.returncode == 2 and "frozen_layers" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    empty = tmp_path / "empty.log"
    empty.write_text("")
    proc = run("adapt", "--model", str(tiny_checkpoint), str(empty), "--out", str(tmp_path / "o2"))
    assert proc.returncode == 2 and "empty" in proc.stderr and "Traceback" not in proc.stderr
    proc = run("adapt", "--model", str(tmp_path / "nope"), str(log), "--out", str(tmp_path / "o3"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr

"""Contamination-robust training: what the model flags in its own training data is left out of
the line frequencies and of the clean epochs."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
from conftest import SMALL_LOG, tiny_detector_factory
from tinylogbert.io.log_reader import read_log_file
from tinylogbert.model.inference import score_sequences
from tinylogbert.model.tinylogbert_model import N_PSEUDO_LINES
from tinylogbert.model.training import TrainConfig, Trainer

TINY_TRAINING = {"epochs": 1, "head_epochs": 1, "steps_per_epoch": 8, "batch_size": 16, "seed": 0}


def test_fit_flags_training_sessions_and_counts_the_prior_without_them(tiny_detector):
    assert tiny_detector.training_summary_["flagged_training_sessions"] > 0
    assert sum(tiny_detector.line_class_counts_) < len(read_log_file(SMALL_LOG))


def test_refit_prior_leaves_out_the_lines_of_flagged_sessions_and_makes_them_rarer():
    detector = tiny_detector_factory(
        training=TrainConfig(**TINY_TRAINING, robust_prior=False)
    ).fit(SMALL_LOG)
    parsed, index, corpus = detector._prepare(SMALL_LOG)
    assert sum(detector.line_class_counts_) == len(parsed)  # plain: every line counted
    plain_rarity = detector._line_rarity(corpus)

    detector.training = replace(detector.training, robust_prior=True)
    raw = score_sequences(detector.network_, corpus)
    encoded = parsed.words.dictionary_encode()
    flagged = detector._calibrate(parsed, index, corpus, raw) >= detector.threshold_
    detector._refit_prior(parsed, index, corpus, raw, encoded, encoded.dictionary.to_pylist(),
                          flagged)
    assert flagged.any() and not flagged.all()
    in_flagged = np.zeros(len(parsed), dtype=bool)
    in_flagged[index.members[flagged[index.member_session()]]] = True
    assert sum(detector.line_class_counts_) == len(parsed) - in_flagged.sum()

    words = np.array(parsed.words.to_pylist(), dtype=object)
    only_flagged = set(words[in_flagged]) - set(words[~in_flagged])
    assert only_flagged, "the small log has lines that occur only in flagged sessions"
    rows = [N_PSEUDO_LINES + i for i, t in enumerate(corpus.line_texts) if t in only_flagged]
    assert (detector._line_rarity(corpus)[rows] > plain_rarity[rows]).all()


def test_clean_epochs_draw_only_the_kept_sequences(tiny_detector):
    _, _, corpus = tiny_detector._prepare(SMALL_LOG)
    config = TrainConfig(steps_per_epoch=3, clean_epochs=2, batch_size=4, seed=0)
    trainer = Trainer(copy.deepcopy(tiny_detector.network_), corpus, config)  # fixture stays
    keep = np.zeros(len(corpus.sequences), dtype=bool)
    keep[[0, 2]] = True
    before = trainer.weights.copy()
    drawn = []
    draw = trainer._draw

    def spy():
        batch = draw()
        drawn.extend(batch)
        return batch

    trainer._draw = spy
    history = trainer.fit_clean(keep)
    assert [h["phase"] for h in history] == ["clean"] * 6
    kept = [corpus.sequences[0], corpus.sequences[2]]
    assert drawn and all(any(seq is k for k in kept) for seq in drawn)
    np.testing.assert_array_equal(trainer.weights, before)


@pytest.mark.parametrize("clean_epochs", [0, 1])
def test_fit_reports_the_clean_phase_only_when_asked(clean_epochs):
    phases = set()
    detector = tiny_detector_factory(
        training=TrainConfig(**TINY_TRAINING, clean_epochs=clean_epochs)
    )
    detector.fit(SMALL_LOG, on_progress=lambda p: phases.add(p.phase))
    assert phases == ({"mlm", "clean", "head"} if clean_epochs else {"mlm", "head"})
    assert (detector.training_summary_["final_clean_loss"] is None) == (clean_epochs == 0)

"""The detector end to end: fit -> score -> save/load -> evaluate, on real HDFS blocks."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import SMALL_LABELS, SMALL_LOG, copy_with_changed_weights, tiny_detector_factory
from tinylogbert.errors import CheckpointError, LabelError, NotFittedError
from tinylogbert.io.log_reader import read_log_file
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.scoring.evaluate import evaluate_scores, read_labels


@pytest.fixture(scope="module")
def small_result(tiny_detector):
    return tiny_detector.score(SMALL_LOG)


def test_every_input_line_is_in_the_output_in_order(small_result):
    n = len(read_log_file(SMALL_LOG))
    lines = small_result.lines
    assert len(lines) == n == 7481
    assert lines["line_no"].tolist() == list(range(1, n + 1))
    assert list(lines.columns[:9]) == [
        "line_no", "session_id", "timestamp", "level", "component", "message", "score",
        "is_anomaly", "parse_ok",
    ]
    assert lines["parse_ok"].all()
    assert np.isfinite(lines["score"]).all()


def test_sessions_are_hdfs_blocks_with_scores_and_top_lines(small_result):
    sessions = small_result.session_frame
    labels = read_labels(SMALL_LABELS)
    assert len(sessions) == 300
    assert set(sessions["session_id"]) == set(labels.index)
    assert sessions["n_lines"].sum() == 7481
    assert list(sessions.columns[:6]) == [
        "session_id", "n_lines", "first_line_no", "score", "is_anomaly", "top_line_no",
    ]
    for _, row in sessions.head(20).iterrows():  # the top line belongs to its session
        top = small_result.lines.iloc[row["top_line_no"] - 1]
        assert row["session_id"] in top["session_id"].split(";")
    assert small_result.session_embeddings.shape == (300, 32)
    assert (sessions["is_anomaly"] == (sessions["score"] >= small_result.threshold)).all()


def test_explanation_names_lines_of_the_session(small_result):
    worst = small_result.session_frame.sort_values("score").iloc[-1]
    explanation = small_result.explain(worst["session_id"], k=3)
    assert explanation.session_id == worst["session_id"]
    assert 1 <= len(explanation.lines) <= 3
    session_lines = set(small_result.session_lines(worst["session_id"])["line_no"])
    assert {r.line_no for r in explanation.lines} <= session_lines
    assert explanation.lines[0].line_no == worst["top_line_no"]
    scores = [r.score for r in explanation.lines]
    assert scores == sorted(scores, reverse=True)
    for reason in explanation.lines:  # the same scale as the LINES.csv score column
        assert reason.score == pytest.approx(small_result.lines.iloc[reason.line_no - 1]["score"],
                                             abs=1e-5)
    assert explanation.summary()
    with pytest.raises(LabelError):
        small_result.explain("blk_does_not_exist")


def test_threshold_changes_flags_without_rescoring(small_result):
    strict = small_result.with_threshold(float(small_result.session_scores.max()) + 1)
    assert strict.n_anomalous_sessions == 0
    loose = small_result.with_threshold(float(small_result.session_scores.min()))
    assert loose.n_anomalous_sessions == 300
    assert (loose.session_scores == small_result.session_scores).all()
    assert loose.lines["session_is_anomaly"].all()


def test_save_load_gives_identical_scores(tiny_detector, tiny_checkpoint, small_result):
    loaded = TinyLogBERTDetector.load(tiny_checkpoint)
    again = loaded.score(SMALL_LOG)
    np.testing.assert_array_equal(again.session_scores, small_result.session_scores)
    np.testing.assert_array_equal(again.line_scores, small_result.line_scores)
    assert loaded.threshold_ == tiny_detector.threshold_
    files = {p.name for p in tiny_checkpoint.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "line_vocab.json",
            "detector.json"} <= files
    meta = json.loads((tiny_checkpoint / "detector.json").read_text())
    assert len(meta["weights_sha256"]) == 64 and meta["threshold"] == tiny_detector.threshold_


def test_changed_weights_fail_the_hash_check(tiny_checkpoint, tmp_path):
    bad = copy_with_changed_weights(tiny_checkpoint, tmp_path / "bad")
    with pytest.raises(CheckpointError, match="sha256 mismatch"):
        TinyLogBERTDetector.load(bad)


@pytest.mark.parametrize("missing", ["tokenizer.json", "detector.json", "model.safetensors"])
def test_missing_checkpoint_file_is_a_clear_error(tiny_checkpoint, tmp_path, missing):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    (bad / missing).unlink()
    with pytest.raises(CheckpointError, match=missing):
        TinyLogBERTDetector.load(bad)


def test_not_a_folder_and_bad_json(tiny_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="no such model folder"):
        TinyLogBERTDetector.load(tmp_path / "nothing")
    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    (bad / "detector.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="detector.json: sha256 mismatch"):  # the manifest
        TinyLogBERTDetector.load(bad)
    (bad / "checkpoint.sha256.json").unlink()  # a folder saved before the manifest existed
    with pytest.raises(CheckpointError, match="not valid JSON"):
        TinyLogBERTDetector.load(bad)


def test_unfitted_detector_refuses_to_score():
    with pytest.raises(NotFittedError):
        TinyLogBERTDetector().score(SMALL_LOG)


def test_training_is_deterministic_for_a_seed():
    # Two fits back to back, so both run with the same torch thread count (other tests change
    # it, and float sums depend on it).
    first = tiny_detector_factory().fit(SMALL_LOG)
    again = tiny_detector_factory().fit(SMALL_LOG)
    assert again.threshold_ == first.threshold_
    assert again.line_vocab_ == first.line_vocab_
    assert again.tokenizer_.tokenizer.get_vocab() == first.tokenizer_.tokenizer.get_vocab()
    assert again.training_summary_["final_mlm_loss"] == first.training_summary_[
        "final_mlm_loss"]


def test_end_to_end_evaluation_on_real_labels(small_result):
    labelled = small_result.with_session_labels(read_labels(SMALL_LABELS))
    y = labelled.session_frame["label"].to_numpy()
    assert y.sum() == 16
    ev = evaluate_scores(labelled.session_scores, y, labelled.threshold)
    assert ev.n == 300 and ev.n_anomalies == 16
    assert 0.0 <= ev.f1 <= 1.0 and ev.roc_auc is not None
    # Even a tiny model trained for seconds ranks anomalies above chance on real data.
    assert ev.roc_auc > 0.6


def test_in_memory_inputs(tiny_detector):
    lines = read_log_file(SMALL_LOG).lines.to_pylist()[:200]
    from_list = tiny_detector.score(lines)
    from_text = tiny_detector.score("\n".join(lines) + "\n")
    assert from_list.n_lines == from_text.n_lines == 200
    np.testing.assert_allclose(from_list.line_scores, from_text.line_scores)


def test_labels_with_no_matching_ids_are_an_error(small_result):
    labels = pd.Series([1], index=pd.Index(["blk_1"], dtype=object), dtype=np.int8)
    with pytest.raises(LabelError, match="none of the 300 sessions"):
        small_result.with_session_labels(labels)


def test_repeated_sessions_come_from_the_cache_with_identical_results(tiny_detector):
    from tinylogbert.model.sequence_cache import SequenceCache

    fresh = tiny_detector.score(SMALL_LOG)
    cache = tiny_detector._cache()
    hits_before = cache.hits
    again = tiny_detector.score(SMALL_LOG)
    assert cache.hits - hits_before == len(set(SequenceCache.keys(
        tiny_detector._prepare(SMALL_LOG)[2])))
    np.testing.assert_array_equal(again.session_scores, fresh.session_scores)
    np.testing.assert_array_equal(again.session_embeddings, fresh.session_embeddings)
    small = SequenceCache(max_sequences=5)
    small.score(tiny_detector.network_, tiny_detector._prepare(SMALL_LOG)[2])
    assert len(small) == 5


def test_skipping_embeddings_keeps_the_scores(tiny_detector, small_result):
    # The cache already holds embeddings for these sessions: the answer must not depend on it.
    quick = tiny_detector.score(SMALL_LOG, embeddings=False)
    np.testing.assert_allclose(quick.session_scores, small_result.session_scores, atol=1e-5)
    assert np.isnan(quick.session_frame["z_head"]).all()
    assert quick.sessions_csv_bytes() == small_result.with_threshold(
        small_result.threshold).sessions_csv_bytes()


def test_explanation_probability_is_the_models_probability_of_the_line(tiny_detector):
    from tinylogbert.model.session_corpus import next_line_targets, pad_batch

    result = tiny_detector.score(SMALL_LOG)
    session = result.session_frame.sort_values("score").iloc[-1]["session_id"]
    reason = result.explain(session, k=1).lines[0]
    # Recompute p(line | lines before) for that line straight from the model.
    _, index, corpus = tiny_detector._prepare(SMALL_LOG)
    i = int(np.flatnonzero(index.ids == session)[0])
    seq = corpus.sequences[corpus.session_seqs[i][0]]
    position = int(np.flatnonzero(index.lines_of(i) == reason.line_no - 1)[0])
    import torch

    batch = pad_batch([seq])
    _, truth = next_line_targets(batch, corpus.line_class)
    with torch.no_grad():
        hidden = tiny_detector.network_.encode(torch.from_numpy(corpus.line_tokens),
                                             torch.from_numpy(batch), True)
        log_probs = tiny_detector.network_.line_log_probs(hidden[0, position])
    expected = float(log_probs[truth[0, position]].exp())
    assert reason.probability == pytest.approx(expected, rel=1e-4)
    assert reason.surprisal == pytest.approx(-np.log(expected), rel=1e-4)


def test_every_line_has_the_embedding_of_its_first_session(small_result):
    """The line-level view of the embeddings (for plots of lines): a line's vector is the [CLS]
    vector of the first session that holds it."""
    vectors = small_result.line_embeddings()
    assert vectors.shape == (small_result.n_lines, small_result.session_embeddings.shape[1])
    index = small_result.sessions
    for session in (0, len(index) // 2, len(index) - 1):
        for line in index.lines_of(session):
            first = min(s for s in range(len(index)) if line in set(index.lines_of(s)))
            np.testing.assert_array_equal(vectors[line], small_result.session_embeddings[first])

"""The scoring design: severity prior, new-message mass, robust spread, softmax grades."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from conftest import ROOT, tiny_detector_factory
from tinylogbert.io.log_reader import read_log_file
from tinylogbert.model.session_corpus import build_line_vocab
from tinylogbert.scoring.anomaly_score import (
    GRADES,
    grade_columns,
    grade_probabilities,
    label_free_threshold,
    robust_center_scale,
)
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.scoring.severity import line_severity

BGL = ROOT / "sample_data" / "loghub_2k" / "BGL_2k.log.gz"
THUNDERBIRD = ROOT / "sample_data" / "loghub_2k" / "Thunderbird_2k.log.gz"


def test_severity_reads_levels_and_error_words():
    levels = pa.array(["INFO", "FATAL", None, "warn", " Info ", "SEVERE", "debug"])
    words = pa.array(["a b", "x", "unexpected error trying", "ok fine", "errors here",
                      "y", "terror is not a word we know"])
    assert line_severity(levels, words).tolist() == [0.0, 3.0, 2.0, 1.0, 2.0, 2.0, 0.0]
    assert line_severity(pa.array([], pa.string()), pa.array([], pa.string())).shape == (0,)


def test_lines_seen_once_pool_with_new_lines():
    texts, counts = ["a", "b", "c", "d"], np.array([5, 1, 2, 1])
    assert build_line_vocab(texts, counts, 4096, min_count=2) == ["a", "c"]
    assert build_line_vocab(texts, counts, 4096, min_count=1) == ["a", "c", "b", "d"]


def test_robust_spread_sees_a_second_mode():
    """A quarter of the sessions in a second, normal mode: the MAD alone flagged all of them."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(0, 1, 750), rng.normal(12, 1, 250)])
    mad_threshold = np.median(scores) + 4 * 1.4826 * np.median(np.abs(scores - np.median(scores)))
    assert np.mean(scores >= mad_threshold) > 0.2
    assert np.mean(scores >= label_free_threshold(scores, None, "auto")) < 0.02
    # On one Gaussian mode the rule is unchanged: the quartile and the MAD agree.
    one = rng.normal(0, 1, 5000)
    _, scale = robust_center_scale(one)
    assert scale == pytest.approx(1.0, abs=0.06)


def test_grades_are_a_softmax_whose_argmax_is_the_band():
    score = np.array([-50.0, 0.0, 3.9, 4.0, 5.9, 6.0, 40.0, np.nan])
    p = grade_probabilities(score, threshold=4.0, scale=1.0)
    assert p.shape == (8, len(GRADES))
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    cols = grade_columns(score, 4.0, 1.0)
    assert list(cols) == ["grade", "p_normal", "p_elevated", "p_high", "p_critical"]
    assert cols["grade"].tolist() == ["normal", "normal", "elevated", "high", "high",
                                      "critical", "critical", "normal"]
    # Sure in a band's middle, unsure at its edge.
    assert p[1, 0] > 0.95 and 0.45 < p[3, 2] < 0.55


def test_session_table_has_grades_that_follow_the_threshold(tiny_detector, tmp_path):
    from conftest import SMALL_LOG

    result = tiny_detector.score(SMALL_LOG)
    frame = result.session_frame
    pcols = [f"p_{g}" for g in GRADES]
    assert list(frame.columns[frame.columns.get_loc("grade"):][:5]) == ["grade", *pcols]
    np.testing.assert_allclose(frame[pcols].sum(axis=1), 1.0, atol=1e-5)
    assert (frame["grade"].to_numpy() == np.array(GRADES)[frame[pcols].to_numpy().argmax(1)]).all()
    flagged = frame["grade"].isin(["high", "critical"])
    assert (flagged == frame["is_anomaly"]).all()
    assert (frame["severity"] == frame["grade"]).all()
    lower = result.with_threshold(float(frame["score"].median()))
    lf = lower.session_frame
    assert (lf["grade"].isin(["high", "critical"]) == lf["is_anomaly"]).all()
    assert lf["is_anomaly"].sum() > frame["is_anomaly"].sum()
    out = tmp_path / "sessions.csv"
    result.write_sessions_csv(out)
    header = out.read_text().splitlines()[0].replace('"', "").split(",")
    assert header[header.index("grade"):][:5] == ["grade", *pcols]


def test_a_new_fatal_line_outweighs_the_same_new_info_line():
    """The severity prior, end to end on real BGL lines: same unseen message, two levels."""
    lines = read_log_file(BGL).lines.to_pylist()[:600]
    det = tiny_detector_factory().fit(lines)
    base = ("- 1117869872 2005.06.04 R23-M1-N8-I:J18-U11 2005-06-04-00.24.32.398284 "
            "R23-M1-N8-I:J18-U11 RAS KERNEL {level} zebra quokka wombat interface")
    scored = det.score(lines[:19] + [base.format(level="INFO")] + lines[20:39]
                       + [base.format(level="FATAL")])
    score = scored.lines["score"].to_numpy()
    assert score[39] > score[19] * 1.5
    plain = tiny_detector_factory(severity_prior=False).fit(lines)
    plain_scores = plain.score(lines[:19] + [base.format(level="INFO")] + lines[20:39]
                               + [base.format(level="FATAL")]).lines["score"].to_numpy()
    assert plain_scores[39] == pytest.approx(plain_scores[19], rel=0.2)


def test_old_checkpoints_keep_scoring_without_the_new_prior(tiny_checkpoint, tmp_path):
    import shutil

    folder = tmp_path / "old"
    shutil.copytree(tiny_checkpoint, folder)
    meta_path = folder / "detector.json"
    meta = json.loads(meta_path.read_text())
    meta.pop("severity_prior", None)
    meta.pop("min_line_count", None)
    meta_path.write_text(json.dumps(meta))
    (folder / "checkpoint.sha256.json").unlink()  # checkpoints of that time had no manifest
    vocab_path = folder / "line_vocab.json"
    vocab = json.loads(vocab_path.read_text())
    vocab.pop("word_counts")
    vocab_path.write_text(json.dumps(vocab))
    det = TinyLogBERTDetector.load(folder)
    assert det.severity_prior is False and det.min_line_count == 1 and det.word_counts_ == {}


def test_pyod_and_scikit_learn_contract(tiny_detector):
    from conftest import SMALL_LOG
    from sklearn.base import clone

    copy = clone(tiny_detector)
    assert not hasattr(copy, "network_")
    assert copy.get_params()["vocab_size"] == 200 and copy.get_params()["min_line_count"] == 2
    copy.set_params(contamination=0.05)
    assert copy.contamination == 0.05 and tiny_detector.contamination == "auto"
    with pytest.raises(ValueError, match="invalid parameter 'contamnation'.*contamination"):
        copy.set_params(contamnation=0.1)
    assert repr(TinyLogBERTDetector(vocab_size=300)) == "TinyLogBERTDetector(vocab_size=300)"
    scores = tiny_detector.decision_scores_
    assert len(scores) == 300 and set(np.unique(tiny_detector.labels_)) <= {0, 1}
    assert (tiny_detector.labels_ == (scores >= tiny_detector.threshold_)).all()
    # The training sessions scored again give the same scores as the fit recorded.
    np.testing.assert_allclose(tiny_detector.decision_function(SMALL_LOG), scores, atol=1e-5)
    proba = tiny_detector.predict_proba(SMALL_LOG)
    assert proba.shape == (300, 4) and tiny_detector.classes_ == GRADES
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert ((proba[:, 2:].sum(1) >= proba[:, :2].sum(1) - 1e-6) | ~tiny_detector.predict(SMALL_LOG).astype(bool)).all()


def test_init_from_in_python_is_offline_and_safetensors_only(tmp_path):
    from tinylogbert.errors import CheckpointError
    from tinylogbert.model.checkpoint import model_from_pretrained

    with pytest.raises(CheckpointError, match="not a local folder"):
        model_from_pretrained("bert-base-uncased", 10, 0, 5)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="pickled weights"):
        model_from_pretrained(str(tmp_path), 10, 0, 5)


def test_init_from_a_local_safetensors_bert_trains(tmp_path):
    from conftest import SMALL_LOG
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=256)).save_pretrained(tmp_path / "bert",
                                                                       safe_serialization=True)
    det = tiny_detector_factory(init_from=str(tmp_path / "bert")).fit(SMALL_LOG)
    assert det.network_.config.hidden_size == 32
    assert np.isfinite(det.decision_scores_).all()


def test_recalibrate_reproduces_fit_and_sets_the_head_weight(tiny_checkpoint, tmp_path):
    """recalibrate on the training log gives back fit's calibration; with head_weight the head
    takes that share of the score (thresholds from the training scores again), and a saved
    model keeps it."""
    from conftest import SMALL_LOG
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    det = TinyLogBERTDetector.load(tiny_checkpoint)
    assert det.head_weight == 0.0 and det.calibration_.weights["head"] == 0.0
    before = det.score(SMALL_LOG, embeddings=False).session_frame
    threshold = det.threshold_
    det.recalibrate(SMALL_LOG)
    assert det.threshold_ == pytest.approx(threshold, abs=1e-6)
    det.recalibrate(SMALL_LOG, head_weight=1.0)
    assert det.calibration_.weights["head"] == 1.0
    assert np.mean(det.decision_scores_ >= det.threshold_) <= 0.25  # label-free, bounded
    after = det.score(SMALL_LOG, embeddings=False).session_frame
    calib = det.calibration_
    z_head = after["z_head"].to_numpy()  # computed: the head is in the score
    assert np.isfinite(z_head).all() and not np.allclose(after.score, before.score)
    reloaded = TinyLogBERTDetector.load(det.save(tmp_path / "headed"))
    assert reloaded.head_weight == 1.0 and reloaded.calibration_.weights == calib.weights
    again = reloaded.score(SMALL_LOG, embeddings=False).session_frame
    np.testing.assert_allclose(again.score, after.score, atol=1e-5)

"""Open-world lines: a reworded message is scored as the line it rewords; the drift warning.

On the shipped checkpoint and real later HDFS blocks: one common message reworded by a newer
release must not flag every block (it did, before lines were matched), a message unlike any
known one must stay surprising, and the front ends must say that the log drifted.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from conftest import CHECKPOINT, ROOT, tiny_detector_factory
from tinylogbert import TinyLogBERTDetector, pipeline
from tinylogbert.io.log_reader import read_log_file, read_log_lines
from tinylogbert.model.configs import FIRST_LINE_CLASS, OTHER_LINE_CLASS
from tinylogbert.scoring.anomaly_score import AUTO_DEVIATIONS, NAT_RESOLUTION
from tinylogbert.scoring.evaluate import align_labels, read_labels
from tinylogbert.scoring.line_matching import LineMatcher

from benchmarks.evolution import Edit, apply_edit, variant_lines
from benchmarks.faults import FAULTS, inject, plan_bursts
from benchmarks.modern_log import write_modern_log

HELDOUT = ROOT / "sample_data" / "HDFS_heldout.log.gz"
LABELS = ROOT / "sample_data" / "HDFS_heldout_labels.csv"
N_LINES = 15_000  # the first blocks of the later log: seconds to score


@pytest.fixture(scope="module")
def checkpoint():
    return TinyLogBERTDetector.load(CHECKPOINT)


@pytest.fixture(scope="module")
def later():
    lines = read_log_file(HELDOUT).lines.to_pylist()[:N_LINES]
    return lines


def _parsed(det, lines):
    return pipeline.parse(read_log_lines(lines, "later"), "auto", det.format_)


def _normal_flagged(det, lines) -> float:
    result = det.score(read_log_lines(lines, "later"), embeddings=False)
    frame = result.session_frame
    y = align_labels(frame.session_id.to_numpy(), read_labels(LABELS))
    return float((frame.score.to_numpy() >= det.threshold_)[y == 0].mean())


def test_a_reworded_common_message_does_not_flag_every_block(checkpoint, later):
    reworded, info = variant_lines(later, _parsed(checkpoint, later), "top1", seed=0)
    assert info["line_share_changed"] > 0.1  # the most frequent message: one line in six
    as_written = _normal_flagged(checkpoint, later)
    assert _normal_flagged(checkpoint, reworded) <= as_written + 0.01
    checkpoint.open_world = False  # exact lines only: what the model did before
    try:
        assert _normal_flagged(checkpoint, reworded) > 0.15
    finally:
        checkpoint.open_world = True


def test_matches_follow_meaning(checkpoint):
    vocab = checkpoint.line_vocab_
    terminating = next(t for t in vocab if t.endswith("packetresponder for block terminating"))
    reworded = terminating.replace("for block", "for block is")
    unlike = "kernel out of memory killed process total vm anon rss"
    found = checkpoint.matcher().match([terminating, reworded, unlike])
    own = FIRST_LINE_CLASS + vocab.index(terminating)
    assert found.line_class[0] == own and found.cost[0] == pytest.approx(0.0, abs=1e-5)
    assert found.line_class[1] == own and 0.0 < found.cost[1] < 1.0
    assert found.line_class[2] == OTHER_LINE_CLASS and np.isinf(found.cost[2])
    rarity = checkpoint.line_rarity([terminating, reworded, unlike])
    assert rarity[0] < rarity[1] < rarity[2]
    assert rarity[2] > 10.0  # unlike anything seen: as rare as a new line ever is


def test_matches_are_the_same_under_onnx_runtime(checkpoint):
    pytest.importorskip("onnxruntime")
    onnx = TinyLogBERTDetector.load(CHECKPOINT, runtime="onnx")
    texts = [t.replace("block", "block now", 1) for t in checkpoint.line_vocab_] + ["x y z"]
    a, b = checkpoint.matcher().match(texts), onnx.matcher().match(texts)
    np.testing.assert_array_equal(a.line_class, b.line_class)
    np.testing.assert_allclose(a.cost, b.cost, rtol=1e-5)


def test_switching_line_matching_off_does_not_reuse_cached_scores(checkpoint, later):
    reworded, _ = variant_lines(later[:3000], _parsed(checkpoint, later[:3000]), "top1", seed=0)
    log = read_log_lines(reworded, "later")
    matched = checkpoint.score(log, embeddings=False).session_scores
    checkpoint.open_world = False
    try:
        exact = checkpoint.score(log, embeddings=False).session_scores
    finally:
        checkpoint.open_world = True
    assert (exact > matched + 1.0).mean() > 0.5


def test_a_fault_unlike_any_known_line_is_still_caught(checkpoint, later):
    parsed = _parsed(checkpoint, later)
    text, where = inject(later, parsed, plan_bursts(parsed, np.arange(len(later)), seed=0))
    assert len(where) == len(FAULTS)
    result = checkpoint.score(read_log_lines(text, "faults"), embeddings=False)
    sid = result.line_table["session_id"].to_pylist()
    flagged = dict(zip(result.session_frame.session_id, result.session_frame.is_anomaly))
    assert all(flagged[sid[w[0]]] for w in where)


def test_a_fault_burst_lands_in_the_session_its_line_names_in_context():
    """A session rule that names its id inside some context (OpenStack's ``[instance: ...]``):
    the injected fault line carries the whole match, so the id rule puts it in that session
    (the injection raised on such a rule before, in pyarrow, for two groups named ``id``)."""
    lines = read_log_file(ROOT / "sample_data" / "loghub_2k" / "OpenStack_2k.log.gz").lines
    lines = lines.to_pylist()[:400]
    parsed = pipeline.parse(read_log_lines(lines, "openstack"), "openstack")
    with_instance = np.flatnonzero(
        [m is not None and "[instance: " in m for m in parsed.table["message"].to_pylist()])
    text, where = inject(lines, parsed, plan_bursts(parsed, with_instance, seed=0))
    assert len(where) == len(FAULTS)
    for burst in where:
        source = text[burst[0] - 1]
        instance = source[source.index("[instance: "):].split("]")[0] + "]"
        assert all(instance in text[i] for i in burst)


def test_drift_warning_names_the_new_message_its_known_line_and_the_fix(checkpoint, later):
    assert pipeline.run(checkpoint, later, name="later.log").warnings == []
    reworded, _ = variant_lines(later, _parsed(checkpoint, later), "top1", seed=0)
    warnings = pipeline.run(checkpoint, reworded, name="later.log").warnings
    assert len(warnings) == 1
    drift = warnings[0]
    assert drift.startswith("drift in later.log: ")
    assert "close to a known message and scored as it" in drift
    assert "scored as 'dfs datanode dataxceiver receiving block src dest'" in drift
    assert "tinylogbert adapt --model MODEL_DIR later.log --out NEW_MODEL_DIR" in drift


def test_cli_and_streaming_say_the_log_drifted(checkpoint, later, tmp_path):
    reworded, _ = variant_lines(later, _parsed(checkpoint, later), "top1", seed=0)
    log = tmp_path / "release2.log"
    log.write_text("\n".join(reworded) + "\n")
    for stream in ("off", "on"):
        run = subprocess.run(
            [sys.executable, "-m", "tinylogbert.cli.main", "score", str(log), "--stream", stream,
             "--out", str(tmp_path / f"lines-{stream}.csv")],
            capture_output=True, text=True, cwd=ROOT, timeout=300)
        assert run.returncode == 0, run.stderr
        assert f"warning: drift in {log}" in run.stderr, (stream, run.stderr)
    assert (tmp_path / "lines-off.csv").read_bytes() == (tmp_path / "lines-on.csv").read_bytes()


def test_rewording_keeps_ids_and_edits_every_line_of_a_type(checkpoint, later):
    parsed = _parsed(checkpoint, later)
    reworded, info = variant_lines(later, parsed, "15%", seed=0)
    assert len(reworded) == len(later) and info["types_reworded"] >= 1
    again, _ = variant_lines(later, parsed, "15%", seed=0)
    assert again == reworded  # fixed settings: the same variant every time
    for old, new in zip(later, reworded):
        if old != new:
            assert old.split()[:5] == new.split()[:5] or old.split()[:3] == new.split()[:3]
            assert [t for t in old.split() if t.startswith("blk_")] == \
                [t for t in new.split() if t.startswith("blk_")]
    assert apply_edit("Deleting block file", None, Edit("insert", 1, "now")) == \
        ("Deleting now block file", None)
    assert apply_edit("Deleting block file", "Svc", Edit("rename_component", 0, "")) == \
        ("Deleting block file", "SvcService")


def test_api_answers_with_the_drift_warning(later):
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.settings import ApiSettings

    det = TinyLogBERTDetector.load(CHECKPOINT)
    reworded, _ = variant_lines(later[:6000], _parsed(det, later[:6000]), "top1", seed=0)
    settings = ApiSettings(max_body_bytes=5_000_000, max_log_bytes=5_000_000, max_lines=10_000,
                           max_line_length=1000, torch_threads=1)
    with TestClient(create_app(str(CHECKPOINT), settings)) as client:
        response = client.post("/v1/score", json={"lines": reworded})
        assert response.status_code == 200, response.text
        drift = [w for w in response.json()["warnings"] if w.startswith("drift in ")]
        assert len(drift) == 1 and "tinylogbert adapt" in drift[0]
        plain = client.post("/v1/score", json={"lines": later[:6000]})
        assert not [w for w in plain.json()["warnings"] if w.startswith("drift in ")]


def test_watch_says_once_that_the_log_drifted(checkpoint, later):
    from tinylogbert.live.session_tracker import SessionTracker

    reworded, _ = variant_lines(later, _parsed(checkpoint, later), "top1", seed=0)
    said: list[str] = []
    tracker = SessionTracker(checkpoint, on_warning=said.append, source="release2.log")
    for start in range(0, len(reworded), 2500):
        tracker.feed(reworded[start:start + 2500], start + 1)
    tracker.close_all()
    drift = [w for w in said if w.startswith("drift in ")]
    assert len(drift) == 1, said


def test_near_twin_known_lines_do_not_block_a_rewording():
    """A message logged with several values of a field has near-twins among the known lines;
    its cut is capped at the vocabulary's median nearest-neighbour similarity, so a rewording
    closer than that still matches. Lines without twins keep their own cut."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    twin = base[0] + 0.05 * rng.normal(size=16)  # "user root" next to "user guest"
    vectors = np.vstack([base, twin])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sim = vectors @ vectors.T
    np.fill_diagonal(sim, -1.0)
    nearest = sim.max(1)
    cuts = LineMatcher._cuts(vectors.astype(np.float32), 0.5)
    cap = max(float(np.median(nearest)), 0.5)
    assert nearest[0] > 0.95 and cuts[0] == pytest.approx(cap) and cuts[0] < nearest[0]
    lone = nearest < cap
    np.testing.assert_allclose(cuts[lone], np.maximum(nearest[lone], 0.5), rtol=1e-6)


def test_a_log_of_identical_requests_is_not_flagged_by_one_reworded_message(tmp_path):
    """Five messages that repeat exactly in every request: the training spread is ~0, so
    standardising by it alone made a reworded routine line (matched, at a cost of about a nat)
    hundreds of deviations and flagged every request. The spreads are floored in nats
    (``NAT_RESOLUTION``); a fault the model never saw still flags its request."""
    folder = tmp_path
    write_modern_log(folder / "train.log", 200, seed=3)
    write_modern_log(folder / "test.log", 60, seed=4)
    train = (folder / "train.log").read_text().splitlines()
    test = (folder / "test.log").read_text().splitlines()
    det = tiny_detector_factory().fit(read_log_lines(train, "train"))
    calib = det.calibration_
    assert calib.scale["top"] >= NAT_RESOLUTION and calib.scale["context"] >= NAT_RESOLUTION
    assert calib.train_quantiles["scale"] >= 1.0
    result = det.score(read_log_lines(train, "train"), embeddings=False)
    assert det.line_threshold_ >= np.median(result.line_scores) + AUTO_DEVIATIONS * NAT_RESOLUTION
    assert result.n_anomalous_sessions == 0
    # One word added to the most common message, in every request.
    reworded = [line.replace("from cache", "from the cache") for line in test]
    assert sum(a != b for a, b in zip(test, reworded)) == 60
    matched = det.score(read_log_lines(reworded, "new"), embeddings=False)
    assert matched.n_anomalous_sessions <= 0.1 * matched.n_sessions
    faulty = list(test)
    at = next(i for i, line in enumerate(faulty) if "charged order" in line)
    faulty.insert(at + 1, faulty[at].replace("level=info", "level=error").split(' msg="')[0]
                  + ' msg="disk full: No space left on device" ' + faulty[at].split('" ', 1)[1])
    caught = det.score(read_log_lines(faulty, "fault"), embeddings=False)
    frame = caught.session_frame.set_index("session_id")
    trace = faulty[at].rsplit("trace_id=", 1)[1].split()[0]
    assert frame.loc[trace, "is_anomaly"]

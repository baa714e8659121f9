"""Feedback on false alarms: marks stored with the model, applied by every front end."""
from __future__ import annotations

import gzip
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SMALL_LOG
from tinylogbert import pipeline
from tinylogbert.cli.main import main
from tinylogbert.errors import CheckpointError
from tinylogbert.model.checkpoint import MANIFEST_FILE, sha256_file
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.scoring.feedback import FEEDBACK_FILE, mark_normal, read_feedback

LOOK_ALIKE = "blk_4242424242424242"
REORDERED = "blk_7373737373737373"
TRIMMED = "blk_5151515151515151"
BGL_2K = Path(__file__).resolve().parent.parent / "sample_data/loghub_2k/BGL_2k.log.gz"


@pytest.fixture(scope="module")
def small_lines() -> list[str]:
    with gzip.open(SMALL_LOG, "rt") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def target(tiny_detector, small_lines) -> str:
    """A flagged session each of whose lines names it alone (so a copy with another block id
    is a session of its own with the same lines) and that has at least two distinct lines."""
    result = pipeline.run(tiny_detector, small_lines).result
    frame = result.session_frame
    for sid in frame[frame["is_anomaly"]].sort_values("score", ascending=False)["session_id"]:
        mine = [line for line in small_lines if sid in line]
        if all(len(re.findall(r"blk_-?\d+", line)) == 1 for line in mine) and \
                len({re.sub(r"\d+", "", line) for line in mine}) > 1:
            return sid
    pytest.skip("no flagged single-block session in the small log")


@pytest.fixture
def model(tiny_checkpoint, tmp_path):
    """A copy of the tiny checkpoint: feedback writes to the folder."""
    return shutil.copytree(tiny_checkpoint, tmp_path / "model")


def with_copies(lines: list[str], sid: str) -> list[str]:
    """``lines`` plus a look-alike of ``sid`` (same lines, another id) and a copy of it with two
    different lines swapped (same set of lines, another sequence)."""
    mine = [line for line in lines if sid in line]
    same = [line.replace(sid, LOOK_ALIKE) for line in mine]
    swapped = [line.replace(sid, REORDERED) for line in mine]
    first = next(i for i in range(1, len(swapped))
                 if re.sub(r"\d+", "", swapped[i]) != re.sub(r"\d+", "", swapped[0]))
    swapped[0], swapped[first] = swapped[first], swapped[0]
    return lines + same + swapped


def session_rows(result) -> pd.DataFrame:
    return result.session_frame.set_index("session_id")


# ---- core -----------------------------------------------------------------------------------------
def sequences(detector, log) -> dict[str, tuple[str, ...]]:
    """Each session's sequence of normalised lines, computed here without ``feedback.py``."""
    from tinylogbert.sessions.grouping import build_sessions

    parsed = detector.parse(log)
    index = build_sessions(parsed, detector.sessions)
    words = parsed.words.to_pylist()
    return {str(sid): tuple(words[m] for m in index.lines_of(i)) for i, sid in enumerate(index.ids)}


def test_marking_suppresses_the_session_and_its_look_alikes_only(model, small_lines, target):
    log = with_copies(small_lines, target)
    detector = TinyLogBERTDetector.load(model)
    before = session_rows(pipeline.run(detector, log).result)
    assert before.loc[[target, LOOK_ALIKE], "is_anomaly"].all()
    assert (before["suppressed_by"] == "").all()
    seqs = sequences(detector, log)
    alike = sorted(sid for sid, seq in seqs.items() if seq == seqs[target])
    assert LOOK_ALIKE in alike and REORDERED not in alike

    feedback, entries = mark_normal(model, SMALL_LOG, [target])
    assert [e.id for e in entries] == ["fb-0001"] and len(feedback) == 1
    scored = pipeline.run(TinyLogBERTDetector.load(model), log).result
    after = session_rows(scored)
    assert sorted(after.index[after["suppressed_by"] == "fb-0001"]) == alike
    assert not after.loc[alike, "is_anomaly"].any()
    assert (after.loc[alike, "grade"] == "normal").all()
    # The score is the model's own; only the verdict changed.
    assert np.allclose(after["score"], before["score"])
    others = after.index.difference(alike)
    assert (after.loc[others, "suppressed_by"] == "").all()  # the reordered copy too
    assert after.loc[REORDERED, "is_anomaly"] == before.loc[REORDERED, "is_anomaly"]
    assert (after.loc[others, "is_anomaly"] == before.loc[others, "is_anomaly"]).all()
    assert scored.n_anomalous_sessions == before["is_anomaly"].sum() - before.loc[alike, "is_anomaly"].sum()
    # The lines of suppressed sessions follow; a lower threshold keeps them suppressed.
    lines = scored.lines
    mine = lines["session_id"].isin(alike)
    assert not lines.loc[mine, "session_is_anomaly"].any()
    assert (lines.loc[mine, "suppressed_by"] == "fb-0001").all()
    assert (lines.loc[mine, "severity"] == "normal").all()
    lower = session_rows(scored.with_threshold(float(before["score"].min()) - 1))
    assert not lower.loc[alike, "is_anomaly"].any()
    assert lower.loc[others, "is_anomaly"].all()


def test_set_match_also_covers_the_reordered_session(model, small_lines, target):
    log = with_copies(small_lines, target)
    mark_normal(model, SMALL_LOG, [target], match="set")
    again = mark_normal(model, SMALL_LOG, [target], match="set")[1]  # no duplicate entry
    assert [e.id for e in again] == ["fb-0001"] and len(read_feedback(model)) == 1
    after = session_rows(pipeline.run(TinyLogBERTDetector.load(model), log).result)
    assert (after.loc[[target, LOOK_ALIKE, REORDERED], "suppressed_by"] == "fb-0001").all()
    seqs = sequences(TinyLogBERTDetector.load(model), log)
    same_set = sorted(sid for sid, seq in seqs.items() if set(seq) == set(seqs[target]))
    assert sorted(after.index[after["suppressed_by"] != ""]) == same_set


def test_feedback_file_is_readable_and_covered_by_the_manifest(model, target, capsys):
    mark_normal(model, SMALL_LOG, [target])
    data = json.loads((model / FEEDBACK_FILE).read_text())
    entry = data["entries"][0]
    assert {"id", "created", "session_id", "source", "match", "lines"} <= set(entry)
    assert entry["session_id"] == target and entry["source"] == SMALL_LOG.name
    assert entry["match"] == "sequence" and all(isinstance(t, str) for t in entry["lines"])
    manifest = json.loads((model / MANIFEST_FILE).read_text())
    assert manifest["files"][FEEDBACK_FILE] == sha256_file(model / FEEDBACK_FILE)
    TinyLogBERTDetector.load(model)  # loads

    entry["lines"] = ["anything at all"]  # a planted entry: suppresses whatever it wants
    (model / FEEDBACK_FILE).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="feedback.json: sha256 mismatch"):
        TinyLogBERTDetector.load(model)
    code = main(["score", str(SMALL_LOG), "--model", str(model), "--out", str(model / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    # One the manifest does not list is refused too; so is a listed one that is gone.
    del manifest["files"][FEEDBACK_FILE]
    (model / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="not covered by"):
        TinyLogBERTDetector.load(model)


def test_a_saved_copy_keeps_its_feedback(model, target, tmp_path):
    mark_normal(model, SMALL_LOG, [target])
    detector = TinyLogBERTDetector.load(model, runtime="torch")
    copy = detector.save(tmp_path / "copy", onnx=False)
    assert [e.session_id for e in TinyLogBERTDetector.load(copy).feedback_.entries] == [target]


def test_id_sessions_still_match_exactly(model, small_lines, target):
    """A block with one line fewer shares a run of 3/4 of its lines with the marked one: a
    window would match it (``windowed=True``), an id session does not."""
    from tinylogbert.sessions.grouping import build_sessions

    mine = [line for line in small_lines if target in line]
    assert len(mine) >= 4  # so that n - 1 lines are at least 3/4 of n
    log = small_lines + [line.replace(target, TRIMMED) for line in mine[1:]]
    feedback, _ = mark_normal(model, SMALL_LOG, [target])
    detector = TinyLogBERTDetector.load(model)
    after = session_rows(pipeline.run(detector, log).result)
    assert after.loc[target, "suppressed_by"] == "fb-0001"
    assert after.loc[TRIMMED, "suppressed_by"] == ""
    parsed = detector.parse(log)
    index = build_sessions(parsed, detector.sessions)
    assert index.strategy.startswith("id ")
    ids = list(index.ids)
    assert feedback.match(parsed.words, index, windowed=True)[ids.index(TRIMMED)] == "fb-0001"


def common_run(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """The longest contiguous run of lines ``a`` and ``b`` share, in order (brute force)."""
    best = 0
    for i in range(len(a)):
        for j in range(len(b)):
            k = 0
            while i + k < len(a) and j + k < len(b) and a[i + k] == b[j + k]:
                k += 1
            best = max(best, k)
    return best


@pytest.fixture(scope="module")
def bgl_lines() -> list[str]:
    with gzip.open(BGL_2K, "rt") as f:
        return f.read().splitlines()


def test_a_window_mark_follows_its_lines_when_the_log_shifts(model, bgl_lines, tmp_path,
                                                             capsys):
    """Issue 23: `feedback --normal L201-220` on a windowed log (BGL: windows of 20 lines), then
    1 or 3 lines prepended. Window L201-220 now holds the marked lines shifted by 1 or 3, and is
    still suppressed; exactly the windows sharing a run of 3/4 of a window with the mark are
    (checked by brute force here); a shift of 6 (over a quarter) is a new window."""
    marked = "L201-220"
    plain = TinyLogBERTDetector.load(model)  # before the mark
    log = tmp_path / "bgl.log"
    log.write_text("\n".join(bgl_lines) + "\n")
    assert main(["feedback", "--model", str(model), "--log", str(log), "--normal", marked]) == 0
    assert f"{marked}: fb-0001 (match sequence, 20 lines)" in capsys.readouterr().out
    mark = sequences(plain, bgl_lines)[marked]
    assert read_feedback(model).entries[0].lines == mark
    detector = TinyLogBERTDetector.load(model)
    for k in (0, 1, 3, 6):
        shifted = bgl_lines[-k:] + bgl_lines if k else bgl_lines  # real lines, prepended
        seqs = sequences(detector, shifted)
        assert len(seqs[marked]) == 20
        assert common_run(mark, seqs[marked]) == 20 - k  # the marked lines, moved by k
        expected = sorted(sid for sid, seq in seqs.items()
                          if common_run(mark, seq) >= math.ceil(0.75 * max(len(mark), len(seq))))
        before = session_rows(plain.score(read_log("\n".join(shifted)), embeddings=False))
        after = session_rows(detector.score(read_log("\n".join(shifted)), embeddings=False))
        assert sorted(after.index[after["suppressed_by"] == "fb-0001"]) == expected, k
        assert (marked in expected) == (k <= 5), k
        assert not after.loc[expected, "is_anomaly"].any()
        assert (after.loc[expected, "grade"] == "normal").all()
        others = after.index.difference(expected)  # different content: judged as before
        assert len(others) > len(after) - 5 and (after.loc[others, "suppressed_by"] == "").all()
        assert (after.loc[others, "is_anomaly"] == before.loc[others, "is_anomaly"]).all()
        if k in (1, 3):
            assert before.loc[marked, "is_anomaly"], k  # a flag the mark really removes
    # Marking the shifted window again reuses the entry that already covers it.
    again = tmp_path / "bgl_shifted.log"
    again.write_text("\n".join(bgl_lines[-3:] + bgl_lines) + "\n")
    feedback, entries = mark_normal(model, again, [marked])
    assert [e.id for e in entries] == ["fb-0001"] and len(feedback) == 1


def read_log(text: str):
    from tinylogbert.io.log_reader import read_log_text

    return read_log_text(text + "\n")


# ---- CLI ------------------------------------------------------------------------------------------
def test_cli_feedback_normal_list_remove_and_score_column(model, target, capsys, tmp_path):
    assert main(["feedback", "--model", str(model), "--log", str(SMALL_LOG),
                 "--normal", target]) == 0
    assert f"{target}: fb-0001" in capsys.readouterr().out
    assert main(["feedback", "--model", str(model), "--list"]) == 0
    out = capsys.readouterr().out
    assert "fb-0001" in out and target in out and "1 feedback entry" in out

    lines, sessions = tmp_path / "lines.csv", tmp_path / "sessions.csv"
    assert main(["score", str(SMALL_LOG), "--model", str(model), "--out", str(lines),
                 "--sessions-out", str(sessions)]) == 0
    assert "sessions like ones marked normal" in capsys.readouterr().out
    frame = pd.read_csv(sessions, dtype={"suppressed_by": str}, keep_default_na=False)
    row = frame.set_index("session_id").loc[target]
    assert row["suppressed_by"] == "fb-0001" and not row["is_anomaly"]
    assert (frame["suppressed_by"] != "").sum() >= 1
    line_frame = pd.read_csv(lines, dtype={"suppressed_by": str}, keep_default_na=False)
    assert "suppressed_by" in line_frame.columns

    assert main(["feedback", "--model", str(model), "--remove", "fb-0009"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no feedback entry 'fb-0009'") and err.count("\n") == 1
    assert main(["feedback", "--model", str(model), "--remove", "fb-0001"]) == 0
    assert "0 entries left" in capsys.readouterr().out
    assert len(read_feedback(model)) == 0
    TinyLogBERTDetector.load(model)  # the manifest followed the removal


def test_cli_feedback_unknown_session_is_one_line(model, capsys):
    assert main(["feedback", "--model", str(model), "--log", str(SMALL_LOG),
                 "--normal", "blk_0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no session blk_0 in") and err.count("\n") == 1
    assert not (model / FEEDBACK_FILE).exists()


# ---- API ------------------------------------------------------------------------------------------
def test_api_feedback_endpoint_with_and_without_key(model, small_lines, target):
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.settings import ApiSettings

    lines = [line for line in small_lines if target in line] + small_lines[:200]
    settings = ApiSettings(torch_threads=torch.get_num_threads(), api_key="s3cret")
    key = {"X-API-Key": "s3cret"}
    with TestClient(create_app(model, settings)) as c:
        body = {"lines": lines, "normal": [target]}
        assert c.post("/v1/feedback", json=body).status_code == 401
        before = c.post("/v1/score", json={"lines": lines}, headers=key).json()
        row = next(s for s in before["sessions"] if s["session_id"] == target)
        assert row["is_anomaly"] and row["suppressed_by"] == ""

        response = c.post("/v1/feedback", json=body, headers=key)
        assert response.status_code == 200, response.text
        assert response.json()["marked"] == {target: "fb-0001"}
        assert response.json()["entries"][0]["source"] == "request"
        after = c.post("/v1/score", json={"lines": lines}, headers=key).json()
        row = next(s for s in after["sessions"] if s["session_id"] == target)
        assert not row["is_anomaly"] and row["suppressed_by"] == "fb-0001"
        assert after["summary"]["suppressed_sessions"] >= 1
        mine = [ln for ln in after["lines"] if ln["session_id"] == target]
        assert mine and not any(ln["session_is_anomaly"] for ln in mine)
        listed = c.get("/v1/feedback", headers=key).json()["entries"]
        assert [e["id"] for e in listed] == ["fb-0001"]

        unknown = c.post("/v1/feedback", json={"lines": lines, "normal": ["blk_0"]}, headers=key)
        assert unknown.status_code == 422 and unknown.json()["error"] == "feedback_error"
        assert c.delete("/v1/feedback/fb-0001").status_code == 401
        assert c.delete("/v1/feedback/fb-0001", headers=key).json()["entries"] == []
    assert read_feedback(model).entries == ()
    TinyLogBERTDetector.load(model)  # stored and verified like every checkpoint file


# ---- dashboard ------------------------------------------------------------------------------------
def test_dashboard_button_marks_the_picked_session(model, monkeypatch):
    from streamlit.testing.v1 import AppTest
    from test_dashboard import APP, TIMEOUT, no_traceback, upload

    monkeypatch.setenv("TINYLOGBERT_MODEL", str(model))
    at = upload(AppTest.from_file(str(APP), default_timeout=TIMEOUT).run())
    at.switch_page("views/anomalies.py").run()
    ids = at.dataframe(key="anomaly_table").value["session_id"].tolist()
    picked = ids[1] if len(ids) > 1 else ids[0]
    at.selectbox(key="anomaly_pick").set_value(picked).run()
    at.button(key="mark_normal").click().run()
    no_traceback(at)
    assert any("Marked" in s.value and picked in s.value for s in at.success)
    left = at.dataframe(key="anomaly_table").value["session_id"].tolist()
    entries = read_feedback(model).entries
    assert [e.session_id for e in entries] == [picked] and entries[0].source == "hdfs_small.log.gz"
    frame = at.session_state["workspace"].scored.session_frame.set_index("session_id")
    suppressed = set(frame.index[frame["suppressed_by"] == "fb-0001"])
    assert picked in suppressed and picked not in left  # it, and its look-alikes, left the list
    assert left == [sid for sid in ids if sid not in suppressed]
    assert at.selectbox(key="anomaly_pick").value in left
    TinyLogBERTDetector.load(model)  # the manifest covers the dashboard's write too


def test_a_running_api_sees_marks_written_by_another_process(model, small_lines, target):
    """The CLI (here: the library call it makes) marks a session while the server runs: the next
    request is judged with the mark, without a restart; a changed file is verified first."""
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.settings import ApiSettings

    lines = [line for line in small_lines if target in line] + small_lines[:200]
    settings = ApiSettings(torch_threads=torch.get_num_threads())

    def flagged(client) -> bool:
        sessions = client.post("/v1/score", json={"lines": lines}).json()["sessions"]
        return next(s for s in sessions if s["session_id"] == target)["is_anomaly"]

    with TestClient(create_app(model, settings)) as c:
        assert flagged(c)
        mark_normal(model, "\n".join(lines) + "\n", [target])  # what `tinylogbert feedback` does
        assert not flagged(c)
        (model / FEEDBACK_FILE).write_text('{"format": 1, "entries": []}', encoding="utf-8")
        response = c.post("/v1/score", json={"lines": lines})
        assert response.status_code >= 400 and "feedback.json" in response.json()["message"]


def test_feedback_writers_share_one_lock_across_processes(model, small_lines, target,
                                                          monkeypatch):
    """While another process writes a folder's feedback, a second writer waits (an OS file lock)
    and, after ``LOCK_TIMEOUT_S``, says so in one line; nothing is written half-way."""
    import subprocess
    import sys

    from tinylogbert.scoring import feedback as fb

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from tinylogbert.scoring.feedback import "
         "_folder_lock\nwith _folder_lock(sys.argv[1]):\n print('held', flush=True); "
         "time.sleep(30)", str(model)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        monkeypatch.setattr(fb, "LOCK_TIMEOUT_S", 0.3)
        with pytest.raises(fb.FeedbackError, match="another process has been writing"):
            mark_normal(model, "\n".join(small_lines) + "\n", [target])
    finally:
        holder.kill()
        holder.wait()
    assert not (model / FEEDBACK_FILE).exists()
    mark_normal(model, "\n".join(small_lines) + "\n", [target])  # the lock died with its holder
    assert [e.id for e in read_feedback(model).entries] == ["fb-0001"]

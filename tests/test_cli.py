"""The CLI contract: names, columns, row counts, one-line errors and exit codes."""
from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from conftest import SMALL_LABELS, SMALL_LOG, copy_with_changed_weights


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "tinylogbert.cli.main", *args], capture_output=True, text=True, timeout=300,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


@pytest.fixture(scope="module")
def scored(tiny_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    lines, sessions = out / "lines.csv", out / "sessions.csv"
    proc = run("score", str(SMALL_LOG), "--model", str(tiny_checkpoint), "--out", str(lines),
               "--sessions-out", str(sessions))
    return lines, sessions, proc


def test_score_writes_one_row_per_line_and_one_per_session(scored):
    lines, sessions, proc = scored
    frame = pd.read_csv(lines)
    assert len(frame) == 7481
    assert list(frame.columns[:9]) == ["line_no", "session_id", "timestamp", "level",
                                       "component", "message", "score", "is_anomaly", "parse_ok"]
    sess = pd.read_csv(sessions)
    assert list(sess.columns[:6]) == ["session_id", "n_lines", "first_line_no", "score",
                                      "is_anomaly", "top_line_no"]
    assert len(sess) == 300
    assert "scored 7,481 lines" in proc.stdout


def test_evaluate_json_has_the_contract_keys(scored, tiny_checkpoint):
    _, sessions, _ = scored
    proc = run("evaluate", "--scores", str(sessions), "--labels", str(SMALL_LABELS), "--json",
               "--model", str(tiny_checkpoint))
    result = json.loads(proc.stdout)
    for key in ("roc_auc", "pr_auc", "precision", "recall", "f1", "n", "n_anomalies",
                "threshold"):
        assert key in result
    assert result["n"] == 300 and result["n_anomalies"] == 16


def test_train_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "model"
    tiny = ["--epochs", "1", "--head-epochs", "1", "--steps-per-epoch", "3", "--hidden", "32",
            "--layers", "1", "--heads", "2", "--quiet"]
    proc = run("train", str(SMALL_LOG), "--out", str(out), *tiny, "--head-weight", "0.5")
    assert "saved to" in proc.stdout
    assert (out / "model.safetensors").exists() and (out / "detector.json").exists()
    meta = json.loads((out / "detector.json").read_text())
    assert meta["head_weight"] == 0.5 and meta["calibration"]["weights"]["head"] == 0.5
    _assert_one_line_error(run("train", str(SMALL_LOG), "--out", str(tmp_path / "m2"), *tiny,
                               "--head-weight", "-1", check=False), "--head-weight -1.0")


def _assert_one_line_error(proc: subprocess.CompletedProcess, text: str) -> None:
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert text in proc.stderr


def test_bad_inputs_give_one_line_errors(tiny_checkpoint, tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)) * 40)
    words = tmp_path / "words.log"
    words.write_text("nothing here looks like hdfs\nat all\n")
    out = str(tmp_path / "o.csv")
    model = ["--model", str(tiny_checkpoint)]
    _assert_one_line_error(run("score", str(empty), *model, "--out", out, check=False), "empty")
    _assert_one_line_error(run("score", str(binary), *model, "--out", out, check=False), "binary")
    _assert_one_line_error(
        run("score", str(words), *model, "--out", out, "--format", "hdfs", check=False),
        "no line matches format 'hdfs'")
    _assert_one_line_error(
        run("score", str(tmp_path / "missing.log"), *model, "--out", out, check=False),
        "no such file")


def test_wrong_hash_is_a_one_line_error(tiny_checkpoint, tmp_path):
    bad = copy_with_changed_weights(tiny_checkpoint, tmp_path / "bad")
    proc = run("score", str(SMALL_LOG), "--model", str(bad), "--out", str(tmp_path / "o.csv"),
               check=False)
    _assert_one_line_error(proc, "sha256 mismatch")


def test_model_errors_from_the_background_load_are_one_line_errors(tmp_path):
    # the model loads in a background thread while the log is parsed: its errors still reach
    # the user as one line, and a bad log is reported without waiting for the model
    proc = run("score", str(SMALL_LOG), "--model", str(tmp_path / "nowhere"), "--out",
               str(tmp_path / "o.csv"), check=False)
    _assert_one_line_error(proc, "nowhere")
    assert not (tmp_path / "o.csv").exists()


def test_bad_label_files(scored, tmp_path):
    _, sessions, _ = scored
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("BlockId,Label\nblk_1,Anomaly\nblk_2,Normal\n")
    _assert_one_line_error(
        run("evaluate", "--scores", str(sessions), "--labels", str(unknown), check=False),
        "none of the 300 sessions")
    one_column = tmp_path / "one.csv"
    one_column.write_text("BlockId\nblk_1\n")
    _assert_one_line_error(
        run("evaluate", "--scores", str(sessions), "--labels", str(one_column), check=False),
        "two columns")
    bad_value = tmp_path / "bad_value.csv"
    bad_value.write_text("BlockId,Label\nblk_1,maybe\n")
    _assert_one_line_error(
        run("evaluate", "--scores", str(sessions), "--labels", str(bad_value), check=False),
        "unknown label value")


def test_score_keeps_the_checkpoints_own_format(tmp_path):
    # a model trained with a format of its own: 'auto' scoring parses with it, not with 'hdfs'
    model = tmp_path / "custom"
    run("train", str(SMALL_LOG), "--out", str(model), "--format", "<Date> <Time> <Content>",
        "--epochs", "1", "--head-epochs", "1", "--steps-per-epoch", "2", "--hidden", "32",
        "--layers", "1", "--heads", "2", "--quiet")
    proc = run("score", str(SMALL_LOG), "--model", str(model), "--out", str(tmp_path / "l.csv"))
    assert "format custom: 100.0% of 2,000 sampled lines" in proc.stdout
    assert "format hdfs" not in proc.stdout


def test_evaluate_reports_the_threshold_it_used(scored, tiny_checkpoint, tmp_path):
    from tinylogbert.reports.display import format_threshold
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    _, sessions, _ = scored
    threshold = TinyLogBERTDetector.load(tiny_checkpoint).threshold_
    frame = pd.read_csv(sessions)
    lowest_flagged = frame.loc[frame["is_anomaly"], "score"].min()
    assert lowest_flagged != threshold  # what evaluate used to report
    model = ["--model", str(tiny_checkpoint)]
    evaluate = ["evaluate", "--scores", str(sessions), "--labels", str(SMALL_LABELS), *model]
    assert json.loads(run(*evaluate, "--json").stdout)["threshold"] == threshold
    assert f"flagged at threshold {format_threshold(threshold)}\n" in run(*evaluate).stdout
    assert json.loads(run(*evaluate, "--json", "--threshold", "1.5").stdout)["threshold"] == 1.5

    # Scores judged at another threshold: refused unless that threshold is given too.
    other = float(frame["score"].quantile(0.5))
    lines2, sessions2 = tmp_path / "l.csv", tmp_path / "s.csv"
    run("score", str(SMALL_LOG), *model, "--threshold", repr(other), "--out", str(lines2),
        "--sessions-out", str(sessions2))
    again = ["evaluate", "--scores", str(sessions2), "--labels", str(SMALL_LABELS), *model]
    _assert_one_line_error(run(*again, check=False), "--threshold with the threshold given")
    ev = json.loads(run(*again, "--json", "--threshold", repr(other)).stdout)
    assert ev["threshold"] == other and ev["n_flagged"] == int((frame["score"] >= other).sum())


def test_train_prints_no_empty_bar_and_init_from_no_load_report(tmp_path):
    """No ``training: 0step`` bar before the work (nor before an empty log's error); a BERT
    with a pooler and MLM head (UNEXPECTED keys for the encoder) loads without transformers'
    LOAD REPORT table; under --quiet nothing at all is written to stderr."""
    from transformers import BertConfig, BertForMaskedLM

    empty = tmp_path / "empty.log"
    empty.write_text("")
    _assert_one_line_error(run("train", str(empty), "--out", str(tmp_path / "e"), check=False),
                           "empty")
    BertForMaskedLM(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                               num_attention_heads=2, intermediate_size=64,
                               max_position_embeddings=256)).save_pretrained(tmp_path / "bert")
    small = ["--epochs", "1", "--head-epochs", "1", "--steps-per-epoch", "2", "--hidden", "32",
             "--layers", "1", "--heads", "2", "--init-from", str(tmp_path / "bert")]
    quiet = run("train", str(SMALL_LOG), "--out", str(tmp_path / "q"), *small, "--quiet")
    assert quiet.stderr == "", quiet.stderr
    loud = run("train", str(SMALL_LOG), "--out", str(tmp_path / "l"), *small)
    assert "LOAD REPORT" not in loud.stderr and "UNEXPECTED" not in loud.stderr
    assert "training:" not in loud.stderr and "0step [00:00, ?step/s]" not in loud.stderr
    assert "mlm" in loud.stderr  # the bars themselves still show


def test_review_lists_the_top_sessions_with_explanations_and_feedback_commands(
        scored, tiny_checkpoint, tmp_path):
    """SESSIONS.csv carries first/last time and the explanation; ``review`` lists the top
    sessions with them and a feedback command that, run as printed, marks the session."""
    import shlex
    import shutil

    from tinylogbert.scoring.detector import TinyLogBERTDetector

    _, sessions, _ = scored
    sess = pd.read_csv(sessions, dtype={"session_id": str})
    assert list(sess.columns[-3:]) == ["first_time", "last_time", "explanation"]
    result = TinyLogBERTDetector.load(tiny_checkpoint).score(SMALL_LOG)
    for i in (0, 7, 299):
        assert sess.explanation[i] == result.explain(i).summary()
        lines = result.session_lines(i)
        assert str(sess.first_time[i]) == str(lines.timestamp.iloc[0])
        assert str(sess.last_time[i]) == str(lines.timestamp.iloc[-1])
    model = tmp_path / "model"
    shutil.copytree(tiny_checkpoint, model)
    proc = run("review", str(sessions), "--top", "5", "--log", str(SMALL_LOG), "--model", str(model))
    blocks = [line for line in proc.stdout.splitlines() if line.startswith("#")]
    top = sess.sort_values("score", ascending=False, kind="stable").head(5)
    assert [b.split()[1] for b in blocks] == list(top.session_id)
    assert top.explanation.iloc[0] in proc.stdout and str(top.first_time.iloc[0]) in proc.stdout
    assert f"grade {top.grade.iloc[0]}" in blocks[0]
    command = next(line for line in proc.stdout.splitlines() if "mark normal:" in line)
    argv = shlex.split(command.split("mark normal: ", 1)[1])
    assert argv[0] == "tinylogbert" and argv[-1] == top.session_id.iloc[0]
    marked = run(*argv[1:])
    assert f"{top.session_id.iloc[0]}: fb-" in marked.stdout
    # bad input: one line, exit 2
    _assert_one_line_error(run("review", str(tmp_path / "missing.csv"), check=False), "no such file")
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    _assert_one_line_error(run("review", str(other), check=False), "no session_id, score column")

"""``tinylogbert parse``: one row per input line, in order, with the parsed fields, parse_ok, the
model's words and the session id; the same format and session rules as ``score``; ``--out``
checked before any work; a one-line summary."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import tinylogbert.cli.main as cli
from tinylogbert import pipeline
from tinylogbert.sessions.grouping import SessionConfig, build_sessions

FIXTURES = Path(__file__).resolve().parent / "data" / "formats"
LOGHUB = FIXTURES / "loghub"
ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(
    r"parsed (?P<lines>[\d,]+) lines in [\d.]+s; format (?P<format>\S+) \((?P<how>[^)]*)\); "
    r"(?P<unparsed>[\d,]+) lines? did not parse \(kept, parse_ok=false\); "
    r"(?P<sessions>[\d,]+) sessions? \((?P<strategy>.*)\); wrote (?P<out>.+)"
)


@pytest.fixture
def run_cli(monkeypatch, capsys):
    monkeypatch.setattr(cli, "EXTRA_COMMAND_MODULES", ("tinylogbert.cli.parse",))

    def run(*argv) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def read_parsed(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_one_row_per_line_in_order_with_the_fields_words_and_session(run_cli, tmp_path):
    out = tmp_path / "hpc.csv"
    code, _, err = run_cli("parse", LOGHUB / "HPC.log", "--out", out)
    assert code == 0, err
    table = read_parsed(out)
    assert list(table.columns) == [
        "line_no", "timestamp", "level", "component", "message",  # the fixed columns
        "LogId", "Node", "State", "Flag",  # hpc's own fields (its Time is the timestamp)
        "parse_ok", "words", "session_id",
    ]
    raw = (LOGHUB / "HPC.log").read_text().splitlines()
    assert table["line_no"].tolist() == [str(i) for i in range(1, len(raw) + 1)]
    loghub = pd.read_csv(LOGHUB / "HPC_structured.csv", dtype=str, keep_default_na=False)
    assert table["message"].tolist() == loghub["Content"].tolist()
    for ours, theirs in (("LogId", "LogId"), ("Node", "Node"), ("State", "State"),
                         ("timestamp", "Time"), ("component", "Component")):
        assert table[ours].tolist() == loghub[theirs].tolist(), ours
    assert set(table["parse_ok"]) == {"true"}
    # The words are the model's input, as the library computes them.
    parsed = pipeline.parse(pipeline.read(LOGHUB / "HPC.log"), "auto")
    assert table["words"].tolist() == parsed.words.to_pylist()
    assert table["session_id"].tolist() == build_sessions(parsed).line_session.to_pylist()


def test_lines_that_do_not_parse_are_kept_in_place(run_cli, tmp_path):
    good = (LOGHUB / "HDFS.log").read_text().splitlines()[:6]
    log = tmp_path / "mixed.log"
    lines = [*good[:3], "java.io.IOException: Connection reset by peer", *good[3:], ""]
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "parsed.csv"
    code, stdout, err = run_cli("parse", log, "--out", out)
    assert code == 0, err
    table = read_parsed(out)
    assert len(table) == len(lines)
    assert table["line_no"].tolist() == [str(i) for i in range(1, len(lines) + 1)]
    assert table["parse_ok"].tolist() == ["true"] * 3 + ["false"] + ["true"] * 3 + ["false"]
    bad = table.iloc[3]
    assert bad["message"] == "java.io.IOException: Connection reset by peer"
    assert bad["timestamp"] == bad["level"] == bad["component"] == ""
    assert bad["words"] != ""  # still read by the model, and in a session like any line
    assert table["session_id"].ne("").all()
    summary = SUMMARY.fullmatch(stdout.strip())
    assert summary and summary["unparsed"] == "2" and summary["format"] == "hdfs", stdout
    # The exception line was set aside to judge the format, and the summary says so in one piece.
    assert summary["how"] == "hdfs: 100.0% of 7 sampled lines, 1 stack-trace line set aside"


def test_summary_line(run_cli, tmp_path):
    out = tmp_path / "bgl.csv"
    code, stdout, err = run_cli("parse", LOGHUB / "BGL.log", "--out", out)
    assert code == 0, err
    assert len(stdout.strip().splitlines()) == 1 and err == ""
    summary = SUMMARY.fullmatch(stdout.strip())
    assert summary, stdout
    assert summary.group("lines", "format", "unparsed", "out") == ("30", "bgl", "0", str(out))
    assert summary["how"] == "bgl: 100.0% of 30 sampled lines"
    assert summary["sessions"] == "2" and summary["strategy"].startswith("windows of 20 lines")
    # A labelled format shows its label, kept out of the message and the words.
    table = read_parsed(out)
    loghub = pd.read_csv(LOGHUB / "BGL_structured.csv", dtype=str, keep_default_na=False)
    assert table["label"].tolist() == loghub["Label"].tolist() and "APPREAD" in set(loghub["Label"])
    assert table["message"].tolist() == loghub["Content"].tolist()
    assert not table["words"].str.contains("appread").any()


def test_sessions_default_to_scores_rule_and_take_the_session_options(run_cli, tmp_path):
    out = tmp_path / "hdfs.csv"
    code, stdout, err = run_cli("parse", LOGHUB / "HDFS.log", "--out", out)
    assert code == 0, err
    table = read_parsed(out)
    parsed = pipeline.parse(pipeline.read(LOGHUB / "HDFS.log"), "auto")
    default = build_sessions(parsed, SessionConfig())
    assert table["session_id"].tolist() == default.line_session.to_pylist()
    assert table["session_id"].str.match(r"blk_-?\d+").all()  # HDFS: block ids
    code, stdout, err = run_cli("parse", LOGHUB / "HDFS.log", "--out", out,
                                "--sessions", "window", "--window", "10")
    assert code == 0, err
    assert read_parsed(out)["session_id"].tolist() == ["L1-10"] * 10 + ["L11-20"] * 10 + [
        "L21-30"] * 10
    assert SUMMARY.fullmatch(stdout.strip())["sessions"] == "3"


def test_a_given_format_or_template(run_cli, tmp_path):
    out = tmp_path / "spark.csv"
    code, stdout, err = run_cli("parse", LOGHUB / "Spark.log", "--out", out,
                                "--format", "<Date> <Time> <Level> <Component>: <Content>")
    assert code == 0, err
    assert "format custom (given)" in stdout
    table = read_parsed(out)
    assert table["level"].iloc[0] == "INFO" and table["timestamp"].iloc[0] == "17/06/09 20:10:40"
    # A named format that parses none of the lines is the wrong format: an error, no file.
    code, stdout, err = run_cli("parse", LOGHUB / "Spark.log", "--out", tmp_path / "no.csv",
                                "--format", "windows")
    assert code == 2 and err.startswith("error: ") and "no line matches format 'windows'" in err
    assert not (tmp_path / "no.csv").exists()


@pytest.mark.parametrize("target, message", [
    ("missing/parsed.csv", "does not exist"),
    (".", "is a folder"),
])
def test_bad_out_fails_before_reading_the_log(run_cli, tmp_path, target, message):
    # The log does not exist either: --out is checked first, before any work.
    code, stdout, err = run_cli("parse", tmp_path / "no-such.log", "--out", tmp_path / target)
    assert code == 2 and stdout == ""
    assert err.startswith("error: --out ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_parse_is_a_tinylogbert_command(tmp_path):
    assert "tinylogbert.cli.parse" in cli.EXTRA_COMMAND_MODULES
    out = tmp_path / "proxifier.csv"
    done = subprocess.run(
        [sys.executable, "-m", "tinylogbert.cli.main", "parse", str(LOGHUB / "Proxifier.log"),
         "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert SUMMARY.fullmatch(done.stdout.strip())["format"] == "proxifier"
    table = read_parsed(out)
    assert table["component"].iloc[0] == "chrome.exe" and len(table) == 30

"""Batch scoring across files: the Ray engine must give the local engine's scores exactly.

The input is the small HDFS log cut into files so that blocks span files, with one line naming two
blocks (its score is the max over both sessions) and one line naming none (a file-local session).
The local reference is ``detector.score`` on the files' concatenation, in order.
"""
from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import SMALL_LOG, deal_small_log
from tinylogbert.batch.batch_inputs import expand_inputs, merge_times, sample_parsed, settings_for
from tinylogbert.errors import LogInputError, TinyLogBERTError
from tinylogbert.io.log_formats import get_format
from tinylogbert.io.log_parser import parse_log
from tinylogbert.io.log_reader import read_log_text
from tinylogbert.sessions.grouping import SessionConfig

TOLERANCE = 1e-5
ORPHAN_LINE = "081109 204005 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.heartbeat: no block here"
# Natural order (part-2 before part-10) is line order; an empty file is skipped.
PARTS = ("part-1.log", "part-2.log.gz", "part-3.log", "part-10.log")


@pytest.fixture(scope="module")
def split_log(tmp_path_factory) -> tuple[Path, list[str], list[list[str]]]:
    """The folder of parts, the concatenated lines, and each part's lines."""
    with gzip.open(SMALL_LOG, "rt") as handle:
        lines = handle.read().splitlines()
    other_block = lines[5200].split("blk_")[1].split()[0]
    lines[100] = f"{lines[100]} and blk_{other_block}"  # one line, two sessions, two files
    lines.insert(3000, ORPHAN_LINE)
    chunks = [lines[:2500], lines[2500:5000], [], lines[5000:]]
    folder = tmp_path_factory.mktemp("split")
    for name, chunk in zip(PARTS, chunks):
        data = "".join(f"{line}\n" for line in chunk).encode()
        (folder / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return folder, lines, chunks


@pytest.fixture(scope="module")
def local_result(tiny_detector, split_log):
    _, lines, _ = split_log
    return tiny_detector.score(read_log_text("\n".join(lines) + "\n"), embeddings=False)


@pytest.fixture(scope="module")
def loaded_detector(tiny_checkpoint):
    """The checkpoint as the CLI and the Ray actors load it (runtime 'auto': ONNX Runtime)."""
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    return TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto")


@pytest.fixture(scope="module")
def loaded_result(loaded_detector, split_log):
    _, lines, _ = split_log
    return loaded_detector.score(read_log_text("\n".join(lines) + "\n"), embeddings=False)


def global_line_no(files: pd.Series, line_no: pd.Series, folder: Path, chunks) -> np.ndarray:
    """(file, line_no) -> line number in the concatenation."""
    offsets = np.cumsum([0] + [len(c) for c in chunks])[:-1]
    start = {str(folder / name): off for name, off in zip(PARTS, offsets)}
    return files.map(start).to_numpy() + line_no.to_numpy()


def assert_same_as_local(local, lines: pd.DataFrame, sessions: pd.DataFrame, split_log) -> None:
    folder, all_lines, chunks = split_log
    # Lines: every input line exactly once, with the local engine's values.
    lines = lines.assign(g=global_line_no(lines["file"], lines["line_no"], folder, chunks))
    lines = lines.sort_values("g").reset_index(drop=True)
    expected = local.lines
    assert lines["g"].tolist() == list(range(1, len(all_lines) + 1))
    for column in ("message", "timestamp", "parse_ok", "is_anomaly", "session_is_anomaly",
                   "severity"):
        assert lines[column].tolist() == expected[column].tolist(), column
    for column in ("score", "session_score"):
        np.testing.assert_allclose(lines[column], expected[column], atol=TOLERANCE, rtol=0)
    orphan = expected["session_id"].str.startswith("no-id:")
    assert orphan.sum() == 1
    assert lines.loc[~orphan, "session_id"].tolist() == expected.loc[~orphan, "session_id"].tolist()
    assert lines.loc[orphan, "session_id"].iloc[0].startswith(f"{folder / 'part-2.log.gz'}:no-id:")
    assert ";" in lines.loc[100, "session_id"]  # the line naming two blocks

    # Sessions: the same ids (the orphan run is keyed by its file), scores and top lines.
    sessions = sessions.assign(
        first=global_line_no(sessions["first_file"], sessions["first_line_no"], folder, chunks),
        top=global_line_no(sessions["top_file"], sessions["top_line_no"], folder, chunks),
    ).set_index("first").sort_index()
    expected = local.session_frame.set_index("first_line_no").sort_index()
    assert len(sessions) == len(expected) == local.n_sessions
    assert sessions.index.tolist() == expected.index.tolist()
    named = ~expected["session_id"].str.startswith("no-id:")
    assert sessions.loc[named, "session_id"].tolist() == expected.loc[named, "session_id"].tolist()
    assert sessions["top"].tolist() == expected["top_line_no"].tolist()
    for column in ("n_lines", "is_anomaly", "severity"):
        assert sessions[column].tolist() == expected[column].tolist(), column
    # Ray writes the CLI's SESSIONS.csv columns: the head's diagnostic z_head stays out.
    assert "z_head" not in sessions.columns
    for column in [c for c in expected.columns
                   if c == "score" or (c.startswith("z_") and c != "z_head")]:
        # z_ columns are written to 4 decimals: a 1e-6 difference can round a last digit apart.
        atol = TOLERANCE if column == "score" else 1e-4 + TOLERANCE
        np.testing.assert_allclose(sessions[column], expected[column], atol=atol, rtol=0)


# ---- without Ray: the stage functions themselves -------------------------------------------------
def test_stage_functions_match_local_engine(tiny_detector, split_log, local_result):
    """The pipeline's functions, run in-process on 3 buckets, give the local scores."""
    from tinylogbert.batch.ray_engine import (
        MEMBER_COLUMNS,
        assign_buckets,
        explode_members,
        file_lines,
        file_memberships,
        score_complete_sessions,
    )

    folder, _, _ = split_log
    files = expand_inputs([str(folder)])
    settings = settings_for(sample_parsed(files, "auto"), tiny_detector.sessions)
    memberships = pa.concat_tables(
        file_memberships(pa.table({"file_index": [i]}), files, settings) for i in range(len(files))
    )
    memberships = assign_buckets(memberships, 3)
    scored = pa.concat_tables(
        score_complete_sessions(
            tiny_detector,
            memberships.filter(pc.equal(memberships["bucket"], b)).drop_columns(["bucket"]),
            settings, files,
        )
        for b in range(3)
    )
    assert len(pc.unique(memberships["bucket"])) == 3  # sessions really were split up
    scores = explode_members(scored.select([*MEMBER_COLUMNS, "score", "is_anomaly", "severity"]))
    lines = pa.concat_tables(
        file_lines(scores.filter(pc.equal(scores["file_index"], i)), files, settings)
        for i in sorted(set(scores["file_index"].to_pylist()))
    )
    sessions = scored.drop_columns(list(MEMBER_COLUMNS))
    assert_same_as_local(local_result, lines.to_pandas(), sessions.to_pandas(), split_log)


def test_merge_times_never_reorder_a_file():
    """Running maximum: a line without a time, or with an earlier one, stays where it is."""
    lines = (
        "no timestamp before the first one",
        "081109 203530 1 INFO dfs.DataNode: a blk_1",
        "a line that does not parse",
        "081109 203529 1 INFO dfs.DataNode: b blk_1",  # a second back: held at 203530
        "081109 203532 1 INFO dfs.DataNode: c blk_1",
    )
    text = "".join(f"{line}\n" for line in lines)
    times = merge_times(parse_log(read_log_text(text), get_format("hdfs")))
    start = pd.Timestamp("2008-11-09 20:35:30", tz="UTC").timestamp()
    assert (times - start).tolist() == [0, 0, 0, 0, 2]
    untimed = parse_log(read_log_text("no time\nnor here\n"), get_format("hdfs"))
    assert np.isnan(merge_times(untimed)).all()


def test_stream_order_merges_sessions_across_files_by_time():
    """One file: file order. Several: time, then line number; rotation and no time as documented."""
    from tinylogbert.batch.ray_engine import stream_order

    nan = float("nan")
    rows = [  # (session, file, line, time, edge)
        ("one-file", 0, 1, 5.0, 1), ("one-file", 0, 2, 3.0, 0), ("one-file", 0, 3, 5.0, 0),
        ("nodes", 0, 4, 10.0, 0), ("nodes", 0, 6, 12.0, 0),
        ("nodes", 1, 1, 11.0, 1), ("nodes", 1, 2, 12.0, 0),
        ("rotated", 1, 7, 20.0, -1), ("rotated", 1, 8, 20.0, -1),
        ("rotated", 2, 1, 20.0, 1), ("rotated", 2, 2, 20.0, 1),
        ("untimed", 0, 9, nan, 0), ("untimed", 2, 3, 5.0, 1),
    ]
    shuffled = [rows[i] for i in np.random.default_rng(0).permutation(len(rows))]
    table = pa.table(dict(zip(("session_key", "file_index", "line_no", "time", "edge"),
                              map(list, zip(*shuffled)))))
    ordered = table.take(pa.array(stream_order(table))).to_pandas()
    got = {key: list(zip(group["file_index"], group["line_no"]))
           for key, group in ordered.groupby("session_key", sort=False)}
    assert list(got) == ["one-file", "nodes", "untimed", "rotated"]  # by first line, file order
    assert got["one-file"] == [(0, 1), (0, 2), (0, 3)]
    assert got["nodes"] == [(0, 4), (1, 1), (1, 2), (0, 6)]  # a tie at 12: line 2 before line 6
    assert got["rotated"] == [(1, 7), (1, 8), (2, 1), (2, 2)]  # file 1 ends where file 2 begins
    assert got["untimed"] == [(0, 9), (2, 3)]


def bgl_lines(n: int) -> list[str]:
    """BGL-style lines (inline labels, no session id): every 37th is an alert."""
    messages = ("instruction cache parity error corrected", "generating core.2275",
                "data TLB error interrupt", "ciod: failed to read message prefix on control stream")
    return [
        f"{'KERNDTLB' if i % 37 == 0 else '-'} {1117838570 + i} 2005.06.03 R02-M1-N{i % 4}-C:J12-U11 "
        f"2005-06-03-15.42.{i % 60:02d}.675872 R02-M1-N{i % 4}-C:J12-U11 RAS KERNEL INFO "
        f"{messages[i % 7 % 4]}"
        for i in range(n)
    ]


def test_window_sessions_stay_within_their_file(tiny_detector, tmp_path):
    """Without ids, sessions are windows of one file, keyed by it; labels come through."""
    from tinylogbert.batch.ray_engine import (
        MEMBER_COLUMNS,
        explode_members,
        file_lines,
        file_memberships,
        score_complete_sessions,
    )

    path = tmp_path / "bgl.log"
    path.write_text("\n".join(bgl_lines(130)) + "\n")
    windows = SessionConfig(by="window", window_size=20, window_step=10)
    local = tiny_detector.score(str(path), log_format="bgl", sessions=windows, embeddings=False)
    files = [str(path)]
    settings = settings_for(sample_parsed(files, "bgl"), windows)
    memberships = file_memberships(pa.table({"file_index": [0]}), files, settings)
    scored = score_complete_sessions(tiny_detector, memberships, settings, files)
    scores = explode_members(scored.select([*MEMBER_COLUMNS, "score", "is_anomaly", "severity"]))
    lines = file_lines(scores, files, settings).to_pandas()
    sessions = scored.drop_columns(list(MEMBER_COLUMNS)).to_pandas()

    expected = local.session_frame
    assert sessions["session_id"].tolist() == [f"{path}:{s}" for s in expected["session_id"]]
    np.testing.assert_allclose(sessions["score"], expected["score"], atol=TOLERANCE, rtol=0)
    assert sessions["label"].tolist() == expected["label"].tolist()
    assert lines["session_id"].tolist() == [
        ";".join(f"{path}:{s}" for s in ids.split(";")) for ids in local.lines["session_id"]
    ]
    np.testing.assert_allclose(lines["score"], local.lines["score"], atol=TOLERANCE, rtol=0)
    assert lines["label"].tolist() == local.lines["label"].tolist()
    assert lines["label"].sum() == 4  # lines 0, 37, 74, 111


BGL_2K = Path(__file__).parent.parent / "sample_data/loghub_2k/BGL_2k.log.gz"


@pytest.fixture(scope="module")
def marked_model(tiny_checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the tiny model with window L201-220 of BGL_2k marked normal, and BGL_2k with 3
    of its lines prepended (the marked window's lines now 3 lines further down)."""
    import shutil

    from tinylogbert.scoring.feedback import mark_normal

    folder = tmp_path_factory.mktemp("marked")
    model = shutil.copytree(tiny_checkpoint, folder / "model")
    with gzip.open(BGL_2K, "rt") as handle:
        lines = handle.read().splitlines()
    mark_normal(model, "\n".join(lines) + "\n", ["L201-220"])
    logs = folder / "logs"
    logs.mkdir()
    (logs / "bgl.log").write_text("\n".join(lines[-3:] + lines) + "\n")
    return model, logs / "bgl.log"


def cli_sessions(model: Path, log: Path, out: Path) -> pd.DataFrame:
    """SESSIONS.csv as ``tinylogbert score --sessions-out`` writes it, every cell as text."""
    from tinylogbert.cli.main import main

    assert main(["score", str(log), "--model", str(model), "--out", str(out / "lines.csv"),
                 "--sessions-out", str(out / "sessions.csv")]) == 0
    return pd.read_csv(out / "sessions.csv", dtype=str, keep_default_na=False)


def assert_sessions_like_cli(sessions: pd.DataFrame, cli: pd.DataFrame, path: Path) -> None:
    """Ray's sessions: the CLI's columns, in its order, and its values (scores within
    ``TOLERANCE``), plus ``first_file``/``top_file``; window ids keyed by the file."""
    assert (sessions["first_file"] == str(path)).all() and (sessions["top_file"] == str(path)).all()
    sessions = sessions.drop(columns=["first_file", "top_file"])
    assert list(sessions.columns) == list(cli.columns)
    assert {"first_time", "last_time", "explanation", "suppressed_by"} <= set(cli.columns)
    assert sessions["session_id"].tolist() == [f"{path}:{s}" for s in cli["session_id"]]
    for column in cli.columns.drop("session_id"):
        if sessions[column].dtype.kind == "f":
            atol = TOLERANCE if column == "score" else 1e-4 + TOLERANCE
            np.testing.assert_allclose(sessions[column], cli[column].astype(float), atol=atol,
                                       rtol=0, err_msg=column)
        elif sessions[column].dtype.kind == "b":
            assert sessions[column].tolist() == (cli[column] == "true").tolist(), column
        else:
            assert sessions[column].astype(str).tolist() == cli[column].tolist(), column
    assert (cli["first_time"] != "").all() and (cli["explanation"] != "").all()
    # The shifted window is suppressed by its mark on both (the window rule, feedback.py).
    assert cli.set_index("session_id").loc["L201-220", "suppressed_by"] == "fb-0001"


def test_stage_sessions_carry_the_cli_session_columns(marked_model, tmp_path):
    """The scorer stage writes SESSIONS.csv's columns (first/last time, explanation, feedback)
    with the CLI's values, on a windowed log whose marked window moved (no Ray needed)."""
    from tinylogbert.batch.ray_engine import (
        MEMBER_COLUMNS,
        file_memberships,
        score_complete_sessions,
    )
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    model, log = marked_model
    detector = TinyLogBERTDetector.load(model, runtime="auto")  # as the CLI and the actors
    files = [str(log)]
    settings = settings_for(sample_parsed(files, "auto", detector.format_), detector.sessions)
    memberships = file_memberships(pa.table({"file_index": [0]}), files, settings)
    scored = score_complete_sessions(detector, memberships, settings, files)
    sessions = scored.drop_columns(list(MEMBER_COLUMNS)).to_pandas()
    assert_sessions_like_cli(sessions, cli_sessions(model, log, tmp_path), log)


def test_expand_inputs_orders_naturally_and_reports_missing(tmp_path, split_log):
    folder, _, _ = split_log
    expected = [str(folder / name) for name in PARTS]
    assert expand_inputs([str(folder)]) == expected
    assert expand_inputs([str(folder / "part-*")]) == expected
    assert expand_inputs([str(folder / "part-10.log"), str(folder)])[0] == expected[-1]
    assert expand_inputs([f"file://{folder}"]) == [f"file://{p}" for p in expected]
    (tmp_path / "notes.txt").write_text("not a log")
    with pytest.raises(LogInputError, match="no .log or .gz file"):
        expand_inputs([str(tmp_path)])
    with pytest.raises(LogInputError, match="no log file matches"):
        expand_inputs([str(tmp_path / "*.log")])
    with pytest.raises(LogInputError, match="no such file or folder"):
        expand_inputs([str(tmp_path / "missing.log")])


# ---- on Ray --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="warning")
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_ray_engine_matches_local_engine(ray_instance, tiny_checkpoint, split_log, loaded_result,
                                         tmp_path, capsys):
    """End to end, through ``tinylogbert score --engine ray``, against the local engine with the
    model loaded as the actors load it."""
    local_result = loaded_result
    from tinylogbert.cli.main import main

    folder, all_lines, _ = split_log
    out = tmp_path / "out"
    command = ["score", str(folder), "--engine", "ray", "--model", str(tiny_checkpoint),
               "--out", str(out), "--csv", "--lines-per-call", "3000"]
    assert main(command) == 0
    assert f"scored {len(all_lines):,} lines of 4 files" in capsys.readouterr().out

    lines = pq.read_table(out / "lines").to_pandas()
    sessions = pq.read_table(out / "sessions").to_pandas()
    assert_same_as_local(local_result, lines, sessions, split_log)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["buckets"] >= 3  # the sessions were scored in several calls
    expected = local_result.summary()
    for key in ("lines", "sessions", "anomalous_sessions", "anomalous_lines", "unparsed_lines",
                "sessions_by"):
        assert summary[key] == expected[key], key
    assert (summary["files"], summary["empty_files"]) == (4, 1)
    assert summary["warnings"] == []  # the model fits the log it was trained on
    csv_lines = pd.concat(pd.read_csv(p) for p in (out / "lines_csv").glob("*.csv"))
    assert len(csv_lines) == len(all_lines)
    assert main(command) == 2  # results are never mixed with an earlier run's
    assert "already holds results" in capsys.readouterr().err


@pytest.mark.ray
def test_ray_engine_merges_a_dealt_log_like_the_local_engine(ray_instance, tiny_checkpoint,
                                                              loaded_detector, tmp_path):
    """A real HDFS log dealt line by line into 4 files, as 4 nodes would write it: every block
    spans files, and merged by time its sessions score as in the one undealt log."""
    from tinylogbert.batch.ray_engine import RayScoreConfig, score_files

    logs = tmp_path / "logs"
    lines = deal_small_log(logs)
    out = tmp_path / "out"
    summary = score_files([str(logs)], str(out),
                          RayScoreConfig(model=str(tiny_checkpoint), lines_per_call=3000))
    local = loaded_detector.score(read_log_text("\n".join(lines) + "\n"), embeddings=False)

    out_lines = pq.read_table(out / "lines").to_pandas()
    assert len(out_lines) == summary.lines == len(lines)  # every input line, once
    spans = out_lines.groupby("session_id")["file"].nunique()
    assert (spans > 1).mean() > 0.9  # the dealing really split the blocks
    expected = local.session_frame.set_index("session_id")
    sessions = pq.read_table(out / "sessions").to_pandas().set_index("session_id")
    assert sorted(sessions.index) == sorted(expected.index)
    sessions = sessions.loc[expected.index]
    np.testing.assert_allclose(sessions["score"], expected["score"], atol=TOLERANCE, rtol=0)
    flagged, expected_flagged = int(sessions["is_anomaly"].sum()), int(expected["is_anomaly"].sum())
    assert abs(flagged - expected_flagged) <= max(1, 0.1 * expected_flagged)
    assert summary.anomalous_sessions == flagged


def test_cli_refuses_engine_option_mixes(tiny_checkpoint, split_log, tmp_path, capsys):
    from tinylogbert.cli.main import main

    folder, _, _ = split_log
    two = [str(folder / "part-1.log"), str(folder / "part-10.log")]
    assert main(["score", *two, "--model", str(tiny_checkpoint), "--out", str(tmp_path / "x")]) == 2
    assert "use --engine ray" in capsys.readouterr().err
    assert main(["score", two[0], "--csv", "--model", str(tiny_checkpoint),
                 "--out", str(tmp_path / "x.csv")]) == 2
    assert "--csv needs --engine ray" in capsys.readouterr().err


def test_ray_engine_without_ray_says_how_to_install_it(monkeypatch, split_log, tmp_path):
    from tinylogbert.cli.ray_options import score_with_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    folder, _, _ = split_log
    with pytest.raises(TinyLogBERTError, match=r"needs Ray: pip install -e '\.\[ray\]'"):
        score_with_ray([str(folder)], "checkpoint", str(tmp_path / "out"))


@pytest.mark.ray
def test_ray_engine_reports_a_bad_file_in_one_line(ray_instance, tiny_checkpoint, split_log,
                                                   tmp_path):
    from tinylogbert.batch.ray_engine import RayScoreConfig, score_files

    folder, _, _ = split_log
    bad = tmp_path / "zz-binary.log"
    bad.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(LogInputError) as error:
        score_files([str(folder / "part-1.log"), str(bad)], str(tmp_path / "out"),
                    RayScoreConfig(model=str(tiny_checkpoint)))
    assert str(error.value) == f"{bad}: this looks like a binary file, not a text log"


def test_batch_format_follows_the_pipelines_one_rule(split_log):
    """Ray decides the format on the first file's head by the pipeline's rule: under 'auto' the
    trained format wins when it parses every sampled line (it used to be plain detection)."""
    from tinylogbert import pipeline

    folder, _, _ = split_log
    files = expand_inputs([str(folder)])
    trained = get_format("<Date> <Time> <Pid> <Level> <Component>: <Content>")
    assert sample_parsed(files, "auto").format.name == "hdfs"  # detection alone
    chosen = sample_parsed(files, "auto", trained).format
    assert chosen.regex == trained.regex
    first = pipeline.read(files[0])
    assert chosen.regex == pipeline.parse(first, "auto", trained).format.regex
    assert settings_for(sample_parsed(files, "auto", trained), SessionConfig()).format.regex \
        == trained.regex


@pytest.mark.ray
def test_ray_engine_warns_when_the_model_does_not_fit(ray_instance, tiny_checkpoint, tmp_path,
                                                      capsys):
    """The local engine's fit warning, from Ray too: BGL lines scored by an HDFS model."""
    from tinylogbert.cli.main import main

    folder = tmp_path / "bgl"
    folder.mkdir()
    with gzip.open(Path(__file__).parent.parent / "sample_data/loghub_2k/BGL_2k.log.gz",
                   "rt") as handle:
        (folder / "bgl.log").write_text("".join(handle.readlines()[:400]))
    out = tmp_path / "out"
    assert main(["score", str(folder), "--engine", "ray", "--model", str(tiny_checkpoint),
                 "--out", str(out), "--format", "auto"]) == 0
    err = capsys.readouterr().err
    assert "warning: the model does not fit" in err and "judged on the first 400 lines" in err
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["warnings"]) == 1 and "does not fit" in summary["warnings"][0]


@pytest.mark.ray
def test_ray_engine_says_the_log_drifted(ray_instance, tmp_path, capsys):
    """A release that rewords the most common message, scored on Ray with the shipped model:
    the drift line, with the known message it resembles and the fix, as the local engine says."""
    from tinylogbert import TinyLogBERTDetector, pipeline
    from tinylogbert.cli.main import main
    from tinylogbert.io.log_reader import read_log_lines

    from benchmarks.evolution import variant_lines

    checkpoint = Path(__file__).parent.parent / "checkpoint"
    with gzip.open(Path(__file__).parent.parent / "sample_data/HDFS_heldout.log.gz",
                   "rt") as handle:
        later = handle.read().splitlines()[:6000]
    det = TinyLogBERTDetector.load(checkpoint)
    parsed = pipeline.parse(read_log_lines(later, "later"), "auto", det.format_)
    reworded, _ = variant_lines(later, parsed, "top1", seed=0)
    folder = tmp_path / "release2"
    folder.mkdir()
    (folder / "release2.log").write_text("\n".join(reworded) + "\n")
    out = tmp_path / "out"
    assert main(["score", str(folder), "--engine", "ray", "--model", str(checkpoint),
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: drift in" in err and "tinylogbert adapt --model MODEL_DIR" in err
    summary = json.loads((out / "summary.json").read_text())
    assert any(w.startswith("drift in") for w in summary["warnings"])


@pytest.mark.ray
def test_ray_engine_sessions_are_the_cli_sessions(ray_instance, marked_model, tmp_path):
    """End to end: ``score --engine ray``'s ``sessions/`` holds SESSIONS.csv's columns and values
    (first_time, last_time, explanation, suppressed_by included)."""
    from tinylogbert.cli.main import main

    model, log = marked_model
    out = tmp_path / "ray"
    assert main(["score", str(log.parent), "--engine", "ray", "--model", str(model),
                 "--out", str(out)]) == 0
    sessions = pq.read_table(out / "sessions").to_pandas()
    sessions = sessions.set_index(sessions["first_line_no"].to_numpy()).sort_index()
    assert_sessions_like_cli(sessions.reset_index(drop=True), cli_sessions(model, log, tmp_path),
                             log)

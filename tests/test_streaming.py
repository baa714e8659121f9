"""Streaming batch scoring (``core/batch/streaming.py``): the in-memory path's files, byte for byte, in
memory that does not grow with the log. Uses the shipped checkpoint with ONNX Runtime (whose
scores do not depend on batch neighbours, which is what makes the bytes equal)."""
from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import zlib

import numpy as np
import pytest
from conftest import CHECKPOINT, ROOT, SMALL_LOG

pytest.importorskip("onnxruntime", reason="streaming's byte-identity is ONNX Runtime's")

from tinylogbert import pipeline
from tinylogbert.batch import streaming
from tinylogbert.cli.main import main
from tinylogbert.errors import TinyLogBERTError
from tinylogbert.io.log_reader import gunzip_bounded, read_log_file
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.sessions.grouping import SessionConfig

BGL = ROOT / "sample_data" / "loghub_2k" / "BGL_2k.log.gz"
HDFS = gzip.decompress(SMALL_LOG.read_bytes()).splitlines()


@pytest.fixture(scope="module")
def detector():
    return TinyLogBERTDetector.load(CHECKPOINT, runtime="onnx")


def _in_memory(detector, log, options, tmp_path) -> tuple[bytes, bytes, list[str]]:
    scored = pipeline.run(detector, log, options)
    scored.result.write_lines_csv(tmp_path / "mem_lines.csv")
    scored.result.write_sessions_csv(tmp_path / "mem_sessions.csv")
    return ((tmp_path / "mem_lines.csv").read_bytes(),
            (tmp_path / "mem_sessions.csv").read_bytes(), scored.warnings)


def _streamed(detector, log, options, tmp_path, chunk_lines):
    summary = streaming.score_file(detector, log, tmp_path / "lines.csv",
                                   tmp_path / "sessions.csv", options,
                                   streaming.StreamConfig(chunk_lines=chunk_lines,
                                                          spill_dir=tmp_path))
    return ((tmp_path / "lines.csv").read_bytes(), (tmp_path / "sessions.csv").read_bytes(),
            summary)


@pytest.mark.parametrize("case", ["hdfs-blocks", "bgl-windows", "bgl-overlapping-windows"])
def test_streaming_writes_the_in_memory_files_byte_for_byte(case, detector, tmp_path):
    if case == "hdfs-blocks":
        log, sessions, chunk = SMALL_LOG, None, 1000  # 8 chunks; blocks span them
    else:
        step = 20 if case == "bgl-windows" else 7
        log, sessions, chunk = BGL, SessionConfig(by="window", window_size=20,
                                                  window_step=step), 333
    options = pipeline.ScoreOptions(sessions=sessions)
    lines, sessions_csv, warnings = _in_memory(detector, log, options, tmp_path)
    got_lines, got_sessions, summary = _streamed(detector, log, options, tmp_path, chunk)
    assert got_lines == lines and got_sessions == sessions_csv
    assert summary.warnings == warnings and summary.chunks > 5
    assert summary.lines == lines.count(b"\n") - 1


def test_the_spill_is_compressed_and_reads_back_whole(tmp_path):
    """The parsed log's temporary copy is written compressed (README: a few MB per million
    HDFS lines, where the raw columns would take over 200), and reads back every line."""
    with streaming.spill(SMALL_LOG, config=streaming.StreamConfig(spill_dir=tmp_path)) as spilled:
        batches = list(spilled.batches())
        raw_bytes = sum(b.nbytes for b in batches)
        assert sum(b.num_rows for b in batches) == spilled.n_lines == len(HDFS)
        assert spilled.spill_bytes * 4 < raw_bytes, (spilled.spill_bytes, raw_bytes)


def test_sessions_open_for_the_whole_log_are_scored_apart_and_merged_on_disk(detector,
                                                                          tmp_path):
    """Renamed HDFS copies dealt line by line: every block stays open to the end, so every line
    is held (as codes) until the last chunk; the sessions are then scored in calls of at most
    ``score_lines`` lines and their lines merged from runs on disk, byte for byte."""
    from benchmarks.throughput import replicate_interleaved

    log = tmp_path / "dealt.log"
    replicate_interleaved(HDFS[:1200], 3600, log, slab=500)
    options = pipeline.ScoreOptions()
    lines, sessions_csv, warnings = _in_memory(detector, log, options, tmp_path)
    summary = streaming.score_file(detector, log, tmp_path / "lines.csv",
                                   tmp_path / "sessions.csv", options,
                                   streaming.StreamConfig(chunk_lines=300, spill_dir=tmp_path,
                                                          score_lines=800))
    assert (tmp_path / "lines.csv").read_bytes() == lines
    assert (tmp_path / "sessions.csv").read_bytes() == sessions_csv
    assert summary.warnings == warnings and summary.max_held_lines > 3000
    assert summary.merged_runs >= 4 and not list(tmp_path.glob("tinylogbert-stream-*"))


def test_feedback_and_a_given_threshold_give_the_same_bytes(tmp_path):
    """Sessions marked normal (``suppressed_by``, the lines' verdicts judged across sessions)
    and a threshold given for the run, streamed as in memory."""
    import shutil

    from tinylogbert.scoring.feedback import mark_normal

    model = tmp_path / "model"
    shutil.copytree(CHECKPOINT, model)
    base = TinyLogBERTDetector.load(model, runtime="onnx")
    flagged = pipeline.run(base, SMALL_LOG).result.session_frame
    flagged = flagged[flagged["is_anomaly"]]["session_id"].tolist()
    mark_normal(model, SMALL_LOG, flagged[:3])
    detector = TinyLogBERTDetector.load(model, runtime="onnx")
    options = pipeline.ScoreOptions(threshold=4.0)
    lines, sessions_csv, _ = _in_memory(detector, SMALL_LOG, options, tmp_path)
    got_lines, got_sessions, summary = _streamed(detector, SMALL_LOG, options, tmp_path, 700)
    assert (got_lines, got_sessions) == (lines, sessions_csv)
    assert summary.suppressed_sessions >= 3 and summary.threshold == 4.0


def test_lines_without_ids_invalid_bytes_and_crlf_across_chunks(detector, tmp_path):
    """Id-less lines group into sessions of 20 across chunk ends, as in memory; repaired bytes
    are counted in the same warning; a CRLF log without a final newline keeps every line."""
    lines = list(HDFS[:1500])
    for at in range(40, 1500, 37):  # an id-less line every 37 lines
        lines.insert(at, b"081109 203615 148 INFO dfs.DataNode: heartbeat ok")
    lines[3] += b" \xff\xfe"
    lines[900] = b"\xc3(" + lines[900]
    log = tmp_path / "odd.log"
    log.write_bytes(b"\r\n".join(lines))
    options = pipeline.ScoreOptions()
    expected = _in_memory(detector, log, options, tmp_path)
    got_lines, got_sessions, summary = _streamed(detector, log, options, tmp_path, 128)
    assert (got_lines, got_sessions) == expected[:2]
    assert summary.warnings == expected[2] and "2 of 1,540 lines" in summary.warnings[0]
    assert b'"no-id:' in got_sessions


def test_gzip_is_read_in_blocks_with_the_in_memory_rules(tmp_path):
    data = gzip.compress(b"".join(line + b"\n" for line in HDFS[:2000]))
    members = data + gzip.compress(b"tail line\n") + b"\x00" * 64  # two members, zero padding
    path = tmp_path / "two.log.gz"
    path.write_bytes(members)
    assert b"".join(streaming._raw_blocks(path)) == gunzip_bounded(members)
    for bad, words in [(data[:-30], "truncated"), (data + b"junk", "unexpected data"),
                       (gzip.compress(data), "gzip inside gzip"),
                       (b"\x1f\x8b\x08 garbage", "cannot be decompressed")]:
        path.write_bytes(bad)
        with pytest.raises(TinyLogBERTError, match=words):
            b"".join(streaming._raw_blocks(path))


def test_bad_input_corpus_gets_the_in_memory_answers(detector, tmp_path, monkeypatch):
    """Every entry of the bad-input corpus: the same error, or the same bytes; the gzip bomb
    and the 200,000 empty members too (one decoder, with its decompressed-size bound)."""
    from test_bad_input import CORPUS, LIMIT

    from tinylogbert.io import log_reader

    monkeypatch.setattr(log_reader, "DEFAULT_MAX_LOG_BYTES", LIMIT)
    for case in CORPUS:
        log = tmp_path / ("in.log.gz" if case.data[:2] == b"\x1f\x8b" else "in.log")
        log.write_bytes(case.data)
        options = pipeline.ScoreOptions(log_format=case.fmt)
        if case.lines is None:
            with pytest.raises(TinyLogBERTError, match=case.error):
                _streamed(detector, log, options, tmp_path, 64)
            continue
        got_lines, got_sessions, _ = _streamed(detector, log, options, tmp_path, 64)
        assert (got_lines, got_sessions) == _in_memory(detector, log, options, tmp_path)[:2], \
            case.name


def test_cli_streams_when_asked_and_writes_the_same_files(tmp_path, capsys):
    args = ["score", str(SMALL_LOG), "--model", str(CHECKPOINT), "--runtime", "onnx"]
    assert main([*args, "--out", str(tmp_path / "a.csv"), "--sessions-out",
                 str(tmp_path / "as.csv"), "--stream", "off"]) == 0
    assert "streamed" not in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "b.csv"), "--sessions-out",
                 str(tmp_path / "bs.csv"), "--chunk-lines", "2000"]) == 0
    out = capsys.readouterr().out
    assert "scored 7,481 lines in 300 sessions" in out and "streamed in 4 chunks" in out
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "as.csv").read_bytes() == (tmp_path / "bs.csv").read_bytes()
    assert not list(tmp_path.glob("*tinylogbert-stream*"))  # the spill folder is removed


@pytest.mark.parametrize("options, words", [
    (["--stream", "on", "--sessions", "time"], "time windows are scored in memory only"),
    (["--stream", "off", "--chunk-lines", "100"], "--chunk-lines is for streaming"),
    (["--chunk-lines", "-3"], "at least 1"),
])
def test_cli_stream_options_that_cannot_work_are_one_line_errors(options, words, tmp_path,
                                                                 capsys):
    code = main(["score", str(SMALL_LOG), "--model", str(CHECKPOINT), "--out",
                 str(tmp_path / "x.csv"), *options])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1


def test_auto_streams_big_files_only(tmp_path, monkeypatch):
    small = tmp_path / "small.log"
    small.write_bytes(b"x\n" * 100)
    assert not streaming.worth_streaming(small)
    monkeypatch.setattr(streaming, "AUTO_STREAM_BYTES", 100)
    assert streaming.worth_streaming(small)
    assert not streaming.supports(SessionConfig(by="time"))


_MEMORY_PROBE = """
import json, sys, tracemalloc
import pyarrow as pa
from tinylogbert import pipeline
from tinylogbert.batch import streaming
from tinylogbert.scoring.detector import TinyLogBERTDetector
det = TinyLogBERTDetector.load(sys.argv[1], runtime="onnx")
mode, out, runs = sys.argv[2], sys.argv[3], []
streaming.READ_BLOCK = 1 << 16  # 64 KiB reads (16 MiB would hold these small logs whole)
tracemalloc.start()
for log in sys.argv[4:]:  # a warm-up, then N, then 4N lines
    tracemalloc.reset_peak()
    if mode == "streaming":
        held = streaming.score_file(det, log, out, config=streaming.StreamConfig(1024)
                                    ).max_held_lines
    else:
        pipeline.run(det, log).result.write_lines_csv(out)
        held = 0
    runs.append({"arrow_peak_mb": pa.default_memory_pool().max_memory() / 2**20,
                 "python_peak_mb": tracemalloc.get_traced_memory()[1] / 2**20, "held": held})
print(json.dumps(runs))
"""


def memory_runs(tmp_path, mode: str = "streaming") -> list[dict]:
    """Peak allocations (Arrow's pool: the log's columns; tracemalloc: numpy and Python) of a
    warm-up, of N and of 4N lines (HDFS copies with renamed blocks), in one fresh process.
    Arrow's peak only grows, so what 4N adds over N is what the log's size costs."""
    from benchmarks.throughput import replicate

    logs = []
    for copies in (1, 2, 8):
        logs.append(tmp_path / f"x{copies}.log")
        replicate(HDFS[:3000], 3000 * copies, logs[-1])
    proc = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(CHECKPOINT), mode,
                           str(tmp_path / "out.csv"), *map(str, logs)],
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout)


def test_memory_does_not_grow_with_the_log(tmp_path):
    """Scoring 4N lines allocates at its peak no more than N lines did (1 MB of slack); the
    lines held at once stay one copy's open blocks plus a chunk. (The in-memory path, measured
    the same way, peaks about 4 times higher for 4N lines: see ``memory_runs(..., 'in-memory')``.)"""
    warm, small, big = memory_runs(tmp_path)
    assert big["held"] <= small["held"] + 1024 < 3000 + 2 * 1024
    assert big["arrow_peak_mb"] <= small["arrow_peak_mb"] + 1, (warm, small, big)
    assert big["python_peak_mb"] <= small["python_peak_mb"] + 1, (warm, small, big)


def test_onnx_scores_of_a_sequence_do_not_depend_on_its_batch(detector):
    """Why the bytes are equal: each sequence scored alone, or as any row of a batch, gives the
    same values, bit for bit (one length per batch; rows aligned to whole float groups)."""
    from tinylogbert.model.sequence_cache import _sub_corpus
    from tinylogbert.model.session_corpus import build_corpus
    from tinylogbert.sessions.grouping import build_sessions

    parsed = pipeline.parse(pipeline.read(SMALL_LOG), "auto", detector.format_)
    index = build_sessions(parsed, detector.sessions)
    corpus = build_corpus(parsed.words, index, detector.tokenizer_,
                          detector.model_config_.max_lines, detector._line_class)
    together = detector.network_.score_sequences(corpus, bidirectional_pass=False)
    for i in range(0, len(corpus.sequences), 9):
        for copies in (1, 3):  # alone, and as rows 0-2 of a batch of one sequence
            sub = _sub_corpus(corpus, [i] * copies)
            alone = detector.network_.score_sequences(sub, bidirectional_pass=False)
            a, b = corpus.seq_offsets[i], corpus.seq_offsets[i + 1]
            for name in ("surprisal", "entropy", "expected_prob"):
                np.testing.assert_array_equal(
                    getattr(alone, name).reshape(copies, -1),
                    np.tile(getattr(together, name)[a:b], (copies, 1)), err_msg=name)
            assert (alone.end_entropy == together.end_entropy[i]).all()


def test_gzip_that_expands_a_thousandfold_comes_out_in_bounded_blocks():
    plain = b"\n" * (40 << 20)  # 40 MiB that compress to ~40 KB
    blocks = list(streaming._gunzip_blocks(io.BytesIO(gzip.compress(plain)), "<x>"))
    assert max(len(b) for b in blocks) <= streaming.READ_BLOCK
    assert zlib.crc32(b"".join(blocks)) == zlib.crc32(plain)


def _service_log_with_stack_traces(json_lines: bool, seed: int = 3) -> list[str]:
    """Interleaved traces of a Java service (trace ids on every event line), most lines being
    stack traces' (no fields of their own), and a few events without a trace id."""
    import random

    rng = random.Random(seed)
    traces = [f"{rng.getrandbits(64):016x}" for _ in range(12)]
    out = []
    for i in range(150):
        fields = {"time": f"2024-03-01T12:{i // 60:02d}:{i % 60:02d}.000Z", "level": "info",
                  "msg": f"step {i % 7} done", "trace_id": rng.choice(traces)}
        if i % 23 == 7:  # an event without a trace id, with its own stack trace
            fields = {"time": fields["time"], "level": "error", "msg": "no trace here"}
        elif i % 3 == 1:
            fields.update(level="error", msg="load failed")
        out.append(json.dumps(fields) if json_lines else
                   " ".join(f'{k}="{v}"' if " " in v else f"{k}={v}" for k, v in fields.items()))
        if fields["level"] == "error":
            out.append("java.lang.IllegalStateException: order has no customer")
            out += [f"\tat com.acme.orders.S{k}.load(S{k}.java:{k + 10})"
                    for k in range(rng.randint(1, 9))]
            out += ["Caused by: java.io.IOException: closed", "\t... 3 more"]
    return out


@pytest.mark.parametrize("case", ["logfmt", "jsonl", "logfmt-windows"])
def test_stack_traces_follow_their_event_across_chunks(case, detector, tmp_path, monkeypatch):
    """Stack-trace lines in their event's session, as in memory: by trace id (also a trace
    cut by a chunk's end, a chunk ending on an exception line whose frames start the next
    chunk, the traces of events without an id) and in windows (a trace cut by a window's end
    stays in its event's windows; a window holding only its lines is no session). JSON logs are
    chunked as the in-memory path slices them: the slices are made small here to cut the log
    often. (The format is named: with most lines a stack trace's, 'auto' would not find it.)"""
    from tinylogbert.io import log_parser
    from tinylogbert.sessions.grouping import window_starts

    fmt = case.split("-")[0]
    log = tmp_path / "service.log"
    lines = _service_log_with_stack_traces(fmt == "jsonl")
    log.write_text("\n".join(lines) + "\n")
    # chunks of ``piece`` lines, one of them ending on an exception line
    piece = next(p for p in range(30, 90)
                 if any(lines[c - 1].startswith("java.") for c in range(p, len(lines), p)))
    for module in (log_parser, streaming):
        monkeypatch.setattr(module, "MIN_PARSE_CHUNK", piece)
        monkeypatch.setattr(module, "MAX_PARSE_CHUNK", piece)
    head = log_parser.parse_log(read_log_file(log), fmt).event_of
    cuts = np.arange(piece, len(lines), piece)
    assert (head[cuts] < cuts).sum() > 5  # traces go on across chunk ends
    assert (head != np.arange(len(head))).mean() > 0.5  # most lines carry no trace id
    windows = SessionConfig(by="window", window_size=5, window_step=2)
    options = pipeline.ScoreOptions(log_format=fmt,
                                    sessions=windows if case.endswith("windows") else None)
    expected = _in_memory(detector, log, options, tmp_path)
    got_lines, got_sessions, summary = _streamed(detector, log, options, tmp_path, piece)
    assert (got_lines, got_sessions) == expected[:2]
    assert summary.chunks == len(cuts) + 1 and b"\tat com.acme" in got_lines
    if case.endswith("windows"):
        assert summary.sessions < len(window_starts(len(lines), 5, 2))  # some windows are none
    else:
        assert summary.sessions_by == "id field <trace_id>" and b'"no-id:' in got_sessions


def test_cri_partial_records_cut_by_a_chunk_end_join_as_in_memory(detector, tmp_path):
    """A CRI message's ``P`` records join its ``F`` (and take its trace id) also when a chunk's
    end falls between them: the open message begins the next chunk."""
    log = ROOT / "tests" / "data" / "formats" / "cri.log"
    lines = log.read_text().splitlines()
    chunk = 13
    assert any(" P " in lines[c - 1] for c in range(chunk, len(lines), chunk))
    options = pipeline.ScoreOptions()
    expected = _in_memory(detector, log, options, tmp_path)
    got_lines, got_sessions, summary = _streamed(detector, log, options, tmp_path, chunk)
    assert (got_lines, got_sessions) == expected[:2]
    assert summary.sessions_by == "id field <trace_id>" and summary.chunks > 20

"""Reading and parsing: every line kept, bad input refused with a clear message."""
from __future__ import annotations

import gzip

import pytest
from tinylogbert.errors import FormatError, LogInputError
from tinylogbert.io.log_parser import parse_log, require_some_parsed
from tinylogbert.io.log_reader import read_log_bytes, read_log_file, read_log_lines, read_log_text
from tinylogbert.io.normalize import normalize_message

HDFS_LINE = (
    "081109 203530 147 INFO dfs.DataNode$DataXceiver: Receiving block blk_4394112519745907149 "
    "src: /10.250.18.114:43996 dest: /10.250.18.114:50010"
)
SEED_LINE = "2023-10-10 08:02:30.123 INFO DFSClient: Successfully read block BP-xxx"


def test_seed_example_normalises_to_its_words():
    assert normalize_message("Successfully read block BP-xxx", "DFSClient") == [
        "dfsclient", "successfully", "read", "block",
    ]
    parsed = parse_log(read_log_text(SEED_LINE + "\n"))
    assert parsed.words[0].as_py().split() == ["dfsclient", "successfully", "read", "block"]
    row = parsed.table.to_pylist()[0]
    assert row["level"] == "INFO" and row["component"] == "DFSClient" and row["parse_ok"]


def test_hdfs_line_parses_and_masks_ids_ips_paths_numbers():
    parsed = parse_log(read_log_text(HDFS_LINE))
    assert parsed.format.name == "hdfs"
    row = parsed.table.to_pylist()[0]
    assert row == {
        "line_no": 1, "timestamp": "081109 203530", "level": "INFO",
        "component": "dfs.DataNode$DataXceiver",
        "message": HDFS_LINE.split(": ", 1)[1], "label": None, "parse_ok": True,
    }
    assert parsed.words[0].as_py() == "dfs datanode dataxceiver receiving block src dest"


@pytest.mark.parametrize(
    "message, words",
    [
        ("Served block blk_-123 to /10.0.0.1", ["served", "block", "to"]),
        ("Deleting block file /mnt/hadoop/dfs/data/current/subdir19/blk_1", ["deleting", "block", "file"]),
        ("size 67108864 at 0x1f2e id 3f2a9c1e-1111-2222-3333-444455556666",
         ["size", "at", "id"]),
        ("GET http://example.org/a?b=1 done", ["get", "done"]),
        ("failure; rhost=220-135-151-1.hinet-ip.hinet.net  user=root",
         ["failure", "rhost", "user", "root"]),
        ("connection from 24.54.76.216 (24-54-76-216.bflony.adelphia.net) at Fri",
         ["connection", "from", "at", "fri"]),
        ("rhost=d211-116-254-214.rev.krline.net.tw", ["rhost"]),
        # code, not hosts: their words stay
        ("at org.apache.hadoop.net.NetUtils.connect", ["at", "org", "apache", "hadoop", "net",
                                                        "netutils", "connect"]),
        ("mapred.task.id is deprecated", ["mapred", "task", "id", "is", "deprecated"]),
    ],
)
def test_masking_rules(message, words):
    assert normalize_message(message) == words


def test_unparsable_lines_are_kept_and_flagged():
    text = HDFS_LINE + "\nthis is not hdfs\n\n" + HDFS_LINE + "\n"
    parsed = parse_log(read_log_text(text), "hdfs")
    assert len(parsed) == 4
    assert parsed.table["parse_ok"].to_pylist() == [True, False, False, True]
    assert parsed.table["message"][1].as_py() == "this is not hdfs"
    assert parsed.n_unparsed == 2
    assert parsed.unparsed_examples()[0] == (2, "this is not hdfs")


def test_named_format_that_matches_nothing_is_an_error():
    parsed = parse_log(read_log_text("hello\nworld\n"), "hdfs")
    with pytest.raises(FormatError, match="no line matches format 'hdfs'"):
        require_some_parsed(parsed)


def test_unknown_format_name_is_a_clear_error():
    with pytest.raises(FormatError, match="unknown format"):
        parse_log(read_log_text("a\n"), "no-such-format")


def test_auto_detection_falls_back_to_generic():
    parsed = parse_log(read_log_text("free text one\nfree text two\n"))
    assert parsed.format.name == "generic"
    assert parsed.table["parse_ok"].to_pylist() == [True, True]


def test_crlf_gzip_and_line_numbers(tmp_path):
    path = tmp_path / "x.log.gz"
    path.write_bytes(gzip.compress(b"a\r\nb\r\n\r\nc"))
    lines = read_log_file(path)
    assert lines.lines.to_pylist() == ["a", "b", "", "c"]
    assert lines.line_no.tolist() == [1, 2, 3, 4]


def test_invalid_utf8_is_replaced_not_fatal():
    lines = read_log_bytes(b"ok\nbad \xff\xfe byte\n")
    assert lines.replaced_bytes
    assert lines.lines.to_pylist() == ["ok", "bad \ufffd\ufffd byte"]


def test_a_one_megabyte_line_is_one_line():
    big = "x" * 1_000_000
    parsed = parse_log(read_log_text(f"{HDFS_LINE}\n{big}\n"), "hdfs")
    assert len(parsed) == 2
    assert len(parsed.words[1].as_py().split()) <= 48


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"  \n\n \n", "empty"),
        (b"\x00\x01\x02\x03binary\x00" * 50, "binary"),
        (b"\x1f\x8bnot really gzip", "gzip"),
    ],
)
def test_bad_bytes_are_refused_with_a_clear_message(data, message):
    with pytest.raises(LogInputError, match=message):
        read_log_bytes(data, "upload.log")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(LogInputError, match="no such file"):
        read_log_file(tmp_path / "nope.log")
    with pytest.raises(LogInputError, match="folder"):
        read_log_file(tmp_path)


def test_line_lists_keep_one_item_per_line():
    lines = read_log_lines(["a\nb", "c"])
    assert lines.lines.to_pylist() == ["a b", "c"]
    with pytest.raises(LogInputError):
        read_log_lines([])


HDFS_LINES = [
    "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving block blk_1 src: /10.0.0.1:1",
    "081109 203519 145 INFO dfs.DataNode$PacketResponder: Received block blk_1 of size 67108864",
]


def test_auto_detection_keeps_a_trained_models_format_when_it_parses_every_line():
    from tinylogbert.io.log_formats import get_format

    custom = get_format("<Date> <Time> <Content>")  # a model trained with a format of its own
    assert parse_log(read_log_lines(HDFS_LINES)).format.name == "hdfs"  # what detection picks
    kept = parse_log(read_log_lines(HDFS_LINES), "auto", prefer=custom)
    assert kept.format is custom
    assert kept.detection.describe() == f"{custom.name}: 100.0% of 2 sampled lines"
    # a format that does not parse every sampled line is not kept: detection decides
    bgl = get_format("bgl")
    assert parse_log(read_log_lines(HDFS_LINES), "auto", prefer=bgl).format.name == "hdfs"
    # nor is the generic fallback, which parses anything
    generic = get_format("generic")
    assert parse_log(read_log_lines(HDFS_LINES), "auto", prefer=generic).format.name == "hdfs"


def test_a_detector_scores_with_its_own_format_but_trains_with_detection(tiny_detector):
    from tinylogbert.io.log_formats import get_format

    custom = get_format("<Date> <Time> <Content>")
    original = tiny_detector.format_
    try:
        tiny_detector.format_ = custom  # as if it had been trained with this format
        assert tiny_detector.parse(read_log_lines(HDFS_LINES)).format is custom
        assert tiny_detector.parse(read_log_lines(HDFS_LINES), training=True).format.name == "hdfs"
    finally:
        tiny_detector.format_ = original

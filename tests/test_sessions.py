"""Sessions: windows by line count and by time span, ids from a regex, a regex group or a named
field; whatever the strategy, every line belongs to at least one session."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tinylogbert.errors import FormatError
from tinylogbert.io.log_parser import parse_log
from tinylogbert.io.log_reader import read_log_file, read_log_lines
from tinylogbert.sessions.grouping import (
    SessionConfig,
    SessionIndex,
    build_sessions,
    parse_times,
    timestamps_to_seconds,
)

FIXTURES = Path(__file__).resolve().parent / "data" / "formats"


def parsed_fixture(name: str, fmt: str = "auto"):
    return parse_log(read_log_file(FIXTURES / f"{name}.log"), fmt)


def sessions_of(index: SessionIndex) -> list[list[int]]:
    return [index.lines_of(i).tolist() for i in range(len(index))]


def assert_every_line_covered(index: SessionIndex, n_lines: int) -> None:
    assert set(index.members.tolist()) == set(range(n_lines))
    assert len(index.line_session) == n_lines
    assert all(index.line_session.to_pylist())


# ---- windows by line count -----------------------------------------------------------------------
def generic_lines(n: int):
    return parse_log(read_log_lines([f"event {i} happened" for i in range(n)]), "generic")


def test_count_windows_cut_the_log_and_keep_the_tail():
    index = build_sessions(generic_lines(45), SessionConfig(by="window", window_size=20))
    assert [len(s) for s in sessions_of(index)] == [20, 20, 5]
    assert list(index.ids) == ["L1-20", "L21-40", "L41-45"]
    assert index.strategy == "windows of 20 lines (step 20)"


def test_sliding_count_windows_overlap():
    index = build_sessions(generic_lines(30), SessionConfig(by="window", window_size=10,
                                                            window_step=5))
    assert sessions_of(index)[1] == list(range(5, 15))
    assert index.line_session[7].as_py() == "L1-10;L6-15"  # a line in two windows names both
    assert_every_line_covered(index, 30)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 120), size=st.integers(1, 30), data=st.data())
def test_count_windows_always_cover_every_line(n, size, data):
    step = data.draw(st.integers(1, size))
    index = build_sessions(generic_lines(n), SessionConfig(by="window", window_size=size,
                                                           window_step=step))
    assert_every_line_covered(index, n)
    assert index.lengths().max() <= size
    starts = [s[0] for s in sessions_of(index)]
    assert starts == list(range(0, starts[-1] + 1, step))


def test_a_step_larger_than_the_window_is_refused():
    with pytest.raises(FormatError, match="left out"):
        build_sessions(generic_lines(10), SessionConfig(by="window", window_size=3, window_step=4))


def test_windows_default_to_the_formats_size():
    parsed = parsed_fixture("bgl")
    assert build_sessions(parsed).strategy == "windows of 20 lines (step 20)"
    small = replace(parsed, format=replace(parsed.format, window_size=7))
    assert build_sessions(small).lengths().max() == 7


# ---- windows by time -----------------------------------------------------------------------------
def test_time_windows_hold_the_lines_of_their_span():
    parsed = parsed_fixture("thunderbird")
    seconds = parse_times(parsed)
    index = build_sessions(parsed, SessionConfig(by="time", time_window=60))
    assert index.strategy == "time windows of 60s (step 60s)"
    assert_every_line_covered(index, len(parsed))
    for members in sessions_of(index):
        start = seconds[members].min()
        assert seconds[members].max() - start < 60
    # Disjoint windows: each line exactly once, in time order.
    assert sorted(index.members.tolist()) == list(range(len(parsed)))


def test_sliding_time_windows_put_a_line_in_each_window_it_falls_in():
    parsed = parsed_fixture("thunderbird")
    index = build_sessions(parsed, SessionConfig(by="time", time_window=60, time_step=20))
    per_line = np.bincount(index.members, minlength=len(parsed))
    seconds = parse_times(parsed)
    late = seconds - seconds.min() >= 40  # far enough from the start to be in 3 windows
    assert (per_line[late] == 3).all() and (per_line >= 1).all()
    assert index.ids[0].startswith("T2005-11-09T")


def test_time_windows_default_to_the_formats_span():
    index = build_sessions(parsed_fixture("bgl"), SessionConfig(by="time"))
    assert index.strategy == "time windows of 300s (step 300s)"


def test_lines_without_a_time_join_the_window_before():
    lines = ["2024-03-01T12:00:00Z web-1 app: start", "  continuation without a time",
             "2024-03-01T12:05:00Z web-1 app: later"]
    parsed = parse_log(read_log_lines(lines), "syslog_iso")
    index = build_sessions(parsed, SessionConfig(by="time", time_window=60))
    assert sessions_of(index) == [[0, 1], [2]]


def test_time_windows_need_some_timestamp():
    with pytest.raises(FormatError, match="need timestamps"):
        build_sessions(generic_lines(5), SessionConfig(by="time"))


def test_timestamps_are_read_in_many_shapes():
    values = pd.Series(["1709294400", "1709294400000", "2024-03-01T12:00:00Z",
                        "2024-03-01T13:00:00+01:00", "Fri Mar 01 12:00:00 2024", "never", None])
    seconds = timestamps_to_seconds(values)
    assert seconds[:5].tolist() == [1709294400.0] * 5
    assert np.isnan(seconds[5:]).all()
    # With a format: what it cannot read is still guessed.
    mixed = timestamps_to_seconds(pd.Series(["2024-03-01 12:00:00,000", "2024-03-01T12:00:00Z"]),
                                  "%Y-%m-%d %H:%M:%S,%f")
    assert mixed.tolist() == [1709294400.0, 1709294400.0]


# ---- ids -----------------------------------------------------------------------------------------
def test_hdfs_blocks_are_sessions_and_a_line_naming_two_blocks_is_in_both():
    lines = [
        "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving blk_-1608999687919862906",
        "081109 203519 145 INFO dfs.DataNode$PacketResponder: Received blk_-1608999687919862906",
        ("081109 203520 35 INFO dfs.FSNamesystem: BLOCK* ask 10.250.14.224:50010 to delete "
         "blk_-1608999687919862906 blk_7503483334202473044"),
        "081109 203521 35 INFO dfs.FSNamesystem: BLOCK* NameSystem.heartbeat: no block named",
    ]
    parsed = parse_log(read_log_lines(lines))
    index = build_sessions(parsed)
    assert index.strategy == r"id /blk_-?\d+/"
    assert list(index.ids) == ["blk_-1608999687919862906", "blk_7503483334202473044", "no-id:4-4"]
    assert sessions_of(index) == [[0, 1, 2], [2], [3]]
    assert index.line_session[2].as_py() == "blk_-1608999687919862906;blk_7503483334202473044"


def test_a_line_naming_one_block_twice_is_in_that_block_once():
    lines = [
        "081109 203518 143 INFO dfs.DataNode$DataXceiver: Receiving blk_1",
        ("081109 214043 19 INFO dfs.FSDataset: Deleting block blk_1 file "
         "/mnt/hadoop/dfs/data/current/subdir4/blk_1"),
        "081109 214044 19 INFO dfs.FSDataset: Deleting blk_1 and blk_2, then blk_1 again",
        "081109 214045 19 INFO dfs.FSDataset: Copied blk_2 to blk_3",
    ]
    index = build_sessions(parse_log(read_log_lines(lines)))
    assert list(index.ids) == ["blk_1", "blk_2", "blk_3"]
    assert sessions_of(index) == [[0, 1, 2], [2, 3], [3]]
    assert index.line_session[1].as_py() == "blk_1"


def test_sessions_are_built_once_per_log_and_config():
    parsed = parsed_fixture("hdfs")
    index = build_sessions(parsed)
    assert build_sessions(parsed, SessionConfig()) is index
    windows = build_sessions(parsed, SessionConfig(by="window", window_size=5))
    assert windows is not index and windows.lengths().max() == 5
    assert replace(parsed).session_cache == {}  # a changed copy builds its own


def test_hdfs_slice_every_line_in_a_block_session():
    parsed = parsed_fixture("hdfs")
    index = build_sessions(parsed)
    assert_every_line_covered(index, len(parsed))
    assert all(sid.startswith("blk_") for sid in index.ids)


def test_a_named_group_keeps_only_the_id():
    parsed = parsed_fixture("openstack")
    index = build_sessions(parsed)  # the format's own pattern: [instance: (?P<id>uuid)]
    assert set(index.ids) >= {"b9000564-fe1a-409b-b8cc-1e88b294cd1d",
                              "7b5d9c1a-3b5f-4a3e-9bd4-23a0e1e4b0c2"}
    assert_every_line_covered(index, len(parsed))


@pytest.mark.parametrize("pattern", [
    r"instance: ([0-9a-f-]{36})",  # an unnamed group: the id is group 1 (google-re2, not Arrow)
])
def test_id_patterns_beyond_arrows_kernels(pattern):
    index = build_sessions(parsed_fixture("openstack"), SessionConfig(by="id", id_pattern=pattern))
    assert "b9000564-fe1a-409b-b8cc-1e88b294cd1d" in set(index.ids)
    instance = list(index.ids).index("b9000564-fe1a-409b-b8cc-1e88b294cd1d")
    assert sessions_of(index)[instance] == [1, 2, 3]


def test_a_pattern_re2_cannot_run_is_refused_with_the_reason():
    """Look-arounds need a backtracking engine, which one request could stall: refused."""
    with pytest.raises(FormatError, match="linear time.*look-around"):
        SessionConfig(by="id", id_pattern=r"(?<=instance: )[0-9a-f-]{36}")


def test_a_parsed_field_can_name_the_sessions():
    parsed = parsed_fixture("bgl")
    index = build_sessions(parsed, SessionConfig(by="id", id_pattern="<Node>"))
    nodes = parsed.field("Node").to_pylist()
    assert set(index.ids) == set(nodes)
    for i, sid in enumerate(index.ids):
        assert {nodes[j] for j in index.lines_of(i)} == {sid}
    assert index.strategy == "id field <Node>"


def test_a_json_key_can_name_the_sessions_and_lines_without_it_still_count():
    parsed = parsed_fixture("jsonl")
    index = build_sessions(parsed, SessionConfig(by="id", id_pattern="<request_id>"))
    assert list(index.ids[:4]) == ["r-81f2", "r-81f3", "r-81f4", "r-81f5"]
    assert_every_line_covered(index, len(parsed))
    # The traceback continues the event before it (its request id); line 8 carries none.
    assert index.line_session.to_pylist()[6] == "r-81f5"
    assert index.ids[-1] == "no-id:8-8"


def test_a_format_with_a_session_field_uses_it():
    lines = ["s1 open", "s2 open", "s1 read", "s1 close", "s2 close"]
    parsed = parse_log(read_log_lines(lines), r"^(?P<Session>s\d+) (?P<Content>.*)$")
    index = build_sessions(parsed)
    assert list(index.ids) == ["s1", "s2"] and sessions_of(index) == [[0, 2, 3], [1, 4]]


def test_an_unknown_field_is_a_clear_error():
    with pytest.raises(FormatError, match=r"has no field 'Rack' \(its fields: <Timestamp>"):
        build_sessions(parsed_fixture("bgl"), SessionConfig(by="id", id_pattern="<Rack>"))


def test_auto_falls_back_to_windows_when_few_lines_carry_an_id():
    parsed = parsed_fixture("openstack")
    lines = read_log_file(FIXTURES / "openstack.log").lines.to_pylist()
    few = parse_log(read_log_lines(lines[:1] * 10 + lines[1:3]), "openstack")
    assert build_sessions(parsed).strategy.startswith("id ")
    assert build_sessions(few).strategy.startswith("windows")


def test_bad_session_settings_are_refused():
    with pytest.raises(FormatError, match="invalid session id pattern"):
        SessionConfig(by="id", id_pattern="blk_(")
    with pytest.raises(FormatError, match="unknown session strategy"):
        SessionConfig(by="blocks")
    with pytest.raises(FormatError, match="has no session id"):
        build_sessions(generic_lines(3), SessionConfig(by="id"))

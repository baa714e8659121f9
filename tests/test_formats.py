"""Log formats: every registry format parses its own fixture and only its own, detection names the
right one, users' templates and regexes work, inline labels never reach the model's input, and a
labelled log goes train -> score -> evaluate --level line from the command line."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tinylogbert.cli.main as cli
from tinylogbert.errors import FormatError
from tinylogbert.io.log_formats import (
    GENERIC,
    LogFormat,
    available_formats,
    format_from_template,
    get_format,
    register,
)
from tinylogbert.io.log_parser import parse_log, rank_formats
from tinylogbert.io.log_reader import read_log_file, read_log_lines
from tinylogbert.sessions.grouping import parse_times

FIXTURES = Path(__file__).resolve().parent / "data" / "formats"
LOGHUB_2K = Path(__file__).resolve().parent.parent / "sample_data" / "loghub_2k"

# fixture -> (format it is written in, what its first line parses to)
EXPECTED = {
    "hdfs": ("hdfs", {"timestamp": "081109 203615", "level": "INFO",
                      "component": "dfs.DataNode$PacketResponder"}),
    "hdfs_seed": ("hdfs_seed", {"timestamp": "2023-10-10 08:02:30.123", "level": "INFO",
                                "component": "DFSClient"}),
    "bgl": ("bgl", {"timestamp": "2005-06-03-15.44.14.669780", "level": "INFO",
                    "component": "KERNEL", "label": "-"}),
    "thunderbird": ("thunderbird", {"timestamp": "2005.11.09 12:01:01",
                                    "component": "crond(pam_unix)", "label": "-",
                                    "message": "session closed for user root"}),
    "spirit": ("thunderbird", {"timestamp": "2005.01.01 00:00:00", "component": "kernel",
                               "label": "-"}),
    "liberty": ("thunderbird", {"timestamp": "2004.12.12 20:12:28", "component": "ntpd",
                                "message": "synchronized to 10.100.24.9, stratum 2"}),
    "hadoop": ("hadoop", {"timestamp": "2015-10-18 18:01:47,978", "level": "INFO",
                          "component": "org.apache.hadoop.mapreduce.v2.app.MRAppMaster"}),
    "spark": ("spark", {"timestamp": "17/06/09 20:10:40", "level": "INFO",
                        "component": "executor.CoarseGrainedExecutorBackend",
                        "message": "Registered signal handlers for [TERM, HUP, INT]"}),
    "zookeeper": ("zookeeper", {"timestamp": "2015-07-29 17:41:41,536", "level": "INFO",
                                "component": "QuorumPeerConfig"}),
    "openstack": ("openstack", {"timestamp": "2017-05-16 00:00:00.008", "level": "INFO",
                                "component": "nova.osapi_compute.wsgi.server"}),
    "linux": ("linux", {"timestamp": "Jun 14 15:16:01", "component": "sshd(pam_unix)"}),
    "syslog_iso": ("syslog_iso", {"timestamp": "2024-03-01T12:00:01.123456+00:00",
                                  "component": "nginx"}),
    "apache": ("apache", {"timestamp": "Sun Dec 04 04:47:44 2005", "level": "notice",
                          "component": None,
                          "message": "workerEnv.init() ok /etc/httpd/conf/workers2.properties"}),
    "android": ("android", {"timestamp": "03-17 16:13:38.811", "level": "D",
                            "component": "WindowManager"}),
    "healthapp": ("healthapp", {"timestamp": "20171223-22:15:29:606", "component": "Step_LSC",
                                "message": "onStandStepChanged 3579"}),
    "jsonl": ("jsonl", {"timestamp": "2024-03-01T12:00:00.120Z", "level": "INFO",
                        "component": "api.http", "message": "GET /v1/orders/8812 200 in 12ms"}),
    # Modern formats (written by tests/data/formats/make_modern.py).
    "logfmt": ("logfmt", {"timestamp": "2024-03-01T12:00:00.000Z", "level": "info",
                          "message": "served in 9549ms"}),
    "cri": ("cri", {"timestamp": "2024-03-01T12:00:00.000000123Z", "level": "info",
                    "component": "api", "message": "GET /v1/orders/574 200"}),
    "rfc5424": ("rfc5424", {"timestamp": "2024-03-01T12:00:00.000Z", "level": "warning",
                            "component": "api", "message": "cache hit key=user:6712"}),
    "rfc3164": ("rfc3164", {"timestamp": "Mar 1 12:00:00", "level": "warning",
                            "component": "api", "message": "cache hit key=user:6712"}),
    # Real loghub slices (tests/data/formats/loghub/, see test_loghub_slice_...).
    "loghub/HPC": ("hpc", {"timestamp": "1077804742", "component": "unix.hw",
                           "message": "Component State Change: Component \\042SCSI-WWID:01000010:"
                           "6005-08b4-0001-00c6-0006-3000-003d-0000\\042 is in the unavailable "
                           "state (HWID=1973)"}),
    "loghub/Proxifier": ("proxifier", {"timestamp": "10.30 16:49:06", "component": "chrome.exe",
                                       "message": "proxy.cse.cuhk.edu.hk:5070 open through proxy "
                                       "proxy.cse.cuhk.edu.hk:5070 HTTPS"}),
    "loghub/Windows": ("windows", {"timestamp": "2016-09-28 04:30:30", "level": "Info",
                                   "component": "CBS"}),
}
BGL_ALERTS = {"APPREAD", "KERNDTLB", "KERNSTOR", "APPSEV"}


def fixture(name: str):
    return read_log_file(FIXTURES / f"{name}.log")


def test_every_registry_format_has_a_fixture():
    covered = {fmt for fmt, _ in EXPECTED.values()}
    registry = {f.name for f in available_formats()} - {GENERIC.name}
    assert registry <= covered, f"formats without a fixture: {registry - covered}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_parses_fully_with_its_format(name):
    fmt_name, first = EXPECTED[name]
    parsed = parse_log(fixture(name), fmt_name)
    rows = parsed.table.to_pylist()
    for key, value in first.items():
        assert rows[0][key] == value, key
    ok = parsed.table["parse_ok"].to_numpy(zero_copy_only=False)
    if name == "jsonl":  # one deliberate non-JSON line, kept whole
        assert ok.sum() == len(rows) - 1
        assert rows[int(np.flatnonzero(~ok)[0])]["message"] == "Traceback (most recent call last):"
    else:
        assert ok.all(), parsed.unparsed_examples()
    # Time windows need readable timestamps: every parsed line has one.
    assert not np.isnan(parse_times(parsed)[ok]).any()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_auto_detection_names_the_format_and_discriminates(name):
    fmt_name, _ = EXPECTED[name]
    parsed = parse_log(fixture(name), "auto")
    assert parsed.format.name == fmt_name
    # The JSON fixture's one plain line opens a Python traceback: set aside to judge formats.
    aside = ", 1 stack-trace line set aside" if name == "jsonl" else ""
    assert re.fullmatch(rf"{fmt_name}: 100.0% of \d+ sampled lines{aside}",
                        parsed.detection.describe())
    ranked = rank_formats(fixture(name))
    # A CRI line is also a valid RFC 3339 syslog line (host 'stdout'): cri's typed stream and
    # P/F fields make it the more specific, and detection names it.
    runner_up = next(g for g in ranked[1:] if not (name == "cri" and g.format.name == "syslog_iso"))
    assert runner_up.match_rate < 0.5, f"{runner_up.describe()} also fits {name}"


# loghub system -> the format auto-detection must pick (macOS and OpenSSH logs are BSD syslog).
LOGHUB_FORMAT = {
    "Android": "android", "Apache": "apache", "BGL": "bgl", "HDFS": "hdfs", "HPC": "hpc",
    "Hadoop": "hadoop", "HealthApp": "healthapp", "Linux": "linux", "Mac": "linux",
    "OpenSSH": "linux", "OpenStack": "openstack", "Proxifier": "proxifier", "Spark": "spark",
    "Thunderbird": "thunderbird", "Windows": "windows", "Zookeeper": "zookeeper",
}


@pytest.mark.parametrize("system", sorted(LOGHUB_FORMAT))
def test_loghub_slice_is_detected_and_its_message_is_loghubs_content(system):
    """The first 30 lines of each loghub 2k sample (plus lines a format had to learn: macOS
    'sender[pid] (address):', multi-word senders), against loghub's hand-checked Content."""
    from tinylogbert import pipeline

    lines = pipeline.read(FIXTURES / "loghub" / f"{system}.log")
    parsed = pipeline.parse(lines, "auto")
    assert parsed.format.name == LOGHUB_FORMAT[system]
    reference = pd.read_csv(FIXTURES / "loghub" / f"{system}_structured.csv", dtype=str,
                            keep_default_na=False)
    assert len(reference) == len(parsed) >= 30
    assert parsed.table["parse_ok"].to_numpy(zero_copy_only=False).all()
    ours = [m.strip() for m in parsed.table["message"].to_pylist()]
    assert ours == [c.strip() for c in reference["Content"]]
    # loghub's Component, where it names one (OpenSSH's is the host; ZooKeeper's takes in part
    # of the node name, which the zookeeper format keeps apart).
    if "Component" in reference and system not in ("OpenSSH", "Zookeeper"):
        assert parsed.table["component"].to_pylist() == reference["Component"].tolist()


def test_macos_sender_address_is_a_field_not_the_message():
    lines = read_log_file(FIXTURES / "loghub" / "Mac.log")
    parsed = parse_log(lines, "mac")
    assert parsed.format.name == "linux"
    rows = {m: i for i, m in enumerate(lines.lines.to_pylist())}
    i = next(i for line, i in rows.items() if "sandboxd[129] ([" in line)
    assert parsed.table["component"][i].as_py() == "sandboxd"
    assert parsed.field("PID")[i].as_py() == "129" and parsed.field("Address")[i].as_py()
    j = next(i for line, i in rows.items() if "Microsoft Word[" in line)
    assert parsed.table["component"][j].as_py() == "Microsoft Word"


def test_detection_on_the_2k_slices_reports_the_sample():
    lines = read_log_lines(fixture("thunderbird").lines.to_pylist() * 20)  # 2,400 lines
    parsed = parse_log(lines)
    assert parsed.detection.describe() == "thunderbird: 100.0% of 2,000 sampled lines"


def test_aliases_and_case_resolve_to_the_same_format():
    assert get_format("Spirit") is get_format("liberty") is get_format("THUNDERBIRD")
    assert get_format("json").name == "jsonl"


def test_unknown_format_is_a_clear_error():
    with pytest.raises(FormatError, match="unknown format 'nope'"):
        get_format("nope")


# ---- user formats -----------------------------------------------------------------------------
CUSTOM_LINES = [
    "2024-01-02 10:00:00 ERROR: disk /dev/sda1 is full",
    "2024-01-02 10:00:05 INFO: cleanup started by cron",
    "2024-01-02 10:00:09 WARN: cleanup took 4 s",
]


def test_custom_template_string():
    parsed = parse_log(read_log_lines(CUSTOM_LINES), "<Date> <Time> <Level>: <Content>")
    assert parsed.format.name == "custom"
    assert parsed.table["level"].to_pylist() == ["ERROR", "INFO", "WARN"]
    assert parsed.table["message"][0].as_py() == "disk /dev/sda1 is full"
    assert parsed.table["timestamp"][0].as_py() == "2024-01-02 10:00:00"
    assert parsed.n_unparsed == 0


def test_template_text_is_literal_unless_it_has_backslashes():
    lines = read_log_lines(["[WARN] (db) pool low", "[INFO] (api) ok"])
    parsed = parse_log(lines, "[<Level>] (<Component>) <Content>")
    assert parsed.table["component"].to_pylist() == ["db", "api"]
    # loghub writes its templates as regexes: \[ is a bracket, (...)? is optional.
    apache = parse_log(fixture("apache"), r"\[<Time>\] \[<Level>\] <Content>")
    assert apache.n_unparsed == 0
    loghub_linux = r"<Month> <Day> <Time> <Host> <Component>(\[<PID>\])?: <Content>"
    linux = parse_log(fixture("linux"), loghub_linux)
    assert linux.table["component"][0].as_py() == "sshd(pam_unix)"
    assert linux.field("PID")[0].as_py() == "19939"


def test_custom_regex_with_named_groups():
    parsed = parse_log(
        read_log_lines(CUSTOM_LINES),
        r"^(?P<Date>\S+) (?P<Time>\S+) (?P<Level>[A-Z]+): (?P<Content>.*)$",
    )
    assert parsed.format.name == "custom-regex"
    assert parsed.table["level"].to_pylist() == ["ERROR", "INFO", "WARN"]


def test_typed_fields_make_a_template_specific():
    fmt = format_from_template("<Date> <Level> <Content>", fields={"Date": r"\d{4}-\d{2}-\d{2}"})
    parsed = parse_log(read_log_lines(["2024-01-02 INFO ok", "yesterday INFO ok"]), fmt)
    assert parsed.table["parse_ok"].to_pylist() == [True, False]


@pytest.mark.parametrize("spec, message", [
    ("<Date> <Time> <Level>", "needs a <Content> field"),
    ("<Content> <Content>", "appears twice"),
    ("(?P<Content>[unclosed", "invalid regex"),
    ("json:colour=red", "bad JSON format option"),
])
def test_bad_user_formats_are_one_line_errors(spec, message):
    with pytest.raises(FormatError, match=re.escape(message)):
        get_format(spec)


def test_a_user_format_can_join_the_registry():
    fmt = format_from_template(
        "<Date>T<Time> <Level> <Content>", name="test-isoish",
        fields={"Date": r"\d{4}-\d{2}-\d{2}", "Time": r"\d{2}:\d{2}:\d{2}", "Level": "[A-Z]+"},
    )
    register(fmt)
    try:
        lines = read_log_lines(["2024-01-02T10:00:00 INFO started", "2024-01-02T10:00:01 INFO ok"])
        assert parse_log(lines).format.name == "test-isoish"
        with pytest.raises(FormatError, match="already used"):
            register(LogFormat(name="other", regex=fmt.regex, aliases=("test-isoish",)))
    finally:
        from tinylogbert.io import log_formats

        log_formats._REGISTRY.pop("test-isoish")


# ---- inline labels ------------------------------------------------------------------------------
def test_inline_labels_are_kept_out_of_the_model_input():
    parsed = parse_log(fixture("bgl"))
    raw = fixture("bgl").lines.to_pylist()
    labels = parsed.table["label"].to_pylist()
    assert labels == [line.split(" ", 1)[0] for line in raw]
    assert set(labels) - {"-"} == BGL_ALERTS
    words = " ".join(parsed.words.to_pylist()).split()
    messages = " ".join(parsed.table["message"].to_pylist()).split()
    for alert in BGL_ALERTS:
        assert alert.lower() not in words and alert not in messages
    assert parsed.line_is_anomaly_label().sum() == 14


@pytest.mark.parametrize("name", ["bgl", "thunderbird", "spirit"])
def test_lines_differing_only_in_label_read_the_same(name):
    line = fixture(name).lines[0].as_py()
    body = line.split(" ", 1)[1]
    parsed = parse_log(read_log_lines([f"- {body}", f"KERNDTLB {body}", f"R_HDA_NR {body}"]), name)
    assert parsed.table["label"].to_pylist() == ["-", "KERNDTLB", "R_HDA_NR"]
    assert len(set(parsed.words.to_pylist())) == 1
    assert len(set(parsed.table["message"].to_pylist())) == 1
    assert parsed.line_is_anomaly_label().tolist() == [0, 1, 1]


def test_a_labelled_line_that_does_not_parse_still_loses_its_label():
    good = fixture("bgl").lines[0].as_py()
    parsed = parse_log(read_log_lines([good, "KERNDTLB truncated line", "-"]), "bgl")
    assert parsed.table["parse_ok"].to_pylist() == [True, False, False]
    assert parsed.table["label"].to_pylist() == ["-", "KERNDTLB", "-"]
    assert parsed.table["message"].to_pylist()[1:] == ["truncated line", ""]
    assert "kerndtlb" not in parsed.words[1].as_py()


def test_any_format_behind_a_loghub_label_is_detected():
    lines = fixture("linux").lines.to_pylist()
    labelled = [("PAMFAIL " if "failure" in line else "- ") + line for line in lines]
    parsed = parse_log(read_log_lines(labelled))
    assert parsed.format.name == "linux+label"
    assert parsed.table["component"][0].as_py() == "sshd(pam_unix)"
    assert parsed.line_is_anomaly_label().sum() == 2
    assert not any("pamfail" in w for w in parsed.words.to_pylist())


def test_labelled_lines_of_no_known_format_still_lose_their_labels():
    lines = ["- node 4 booted", "- node 5 booted", "DISK_FAIL node 6 lost /dev/sdb", "- node 7 up"]
    parsed = parse_log(read_log_lines(lines))
    assert parsed.format.name == "generic+label"
    assert parsed.table["message"][2].as_py() == "node 6 lost /dev/sdb"


def test_an_upper_case_first_word_is_not_taken_for_a_label():
    lines = ["INFO service started", "WARN disk at 91%", "INFO request served", "ERROR timeout"]
    parsed = parse_log(read_log_lines(lines))
    assert parsed.format.name == "generic"
    assert parsed.table["message"][0].as_py() == "INFO service started"
    assert not parsed.has_labels


# ---- JSON lines ----------------------------------------------------------------------------------
def test_json_lines_take_message_time_level_from_common_keys():
    parsed = parse_log(fixture("jsonl"))
    rows = parsed.table.to_pylist()
    assert rows[3]["message"] == "payment gateway timeout after 30000 ms"  # 'msg'
    assert rows[3]["level"] == "ERROR" and rows[3]["timestamp"] == "1709294402.5"  # 'severity'
    assert rows[4]["message"] == "cache miss" and rows[4]["level"] == "debug"  # 'event', log.level
    assert rows[5]["message"] == "user=bob action=login request_id=r-81f5"  # no message key
    assert rows[6]["parse_ok"] is False and rows[6]["level"] is None
    assert parsed.field("request_id").to_pylist()[:3] == ["r-81f2", "r-81f3", "r-81f3"]
    assert parsed.words[0].as_py() == "api http get in ms"


def test_logfmt_keeps_every_key_and_sessions_follow_the_trace_id():
    from tinylogbert.sessions.grouping import build_sessions

    parsed = parse_log(fixture("logfmt"))
    assert parsed.format.name == "logfmt"
    assert set(parsed.table["level"].to_pylist()) == {"info", "debug", "warn", "error"}
    assert parsed.field("duration_ms") is not None and parsed.field("service")[1].as_py() == "billing"
    index = build_sessions(parsed)
    assert index.strategy == "id field <trace_id>" and len(index) == 80
    bad = parse_log(read_log_lines(['level=info msg="ok" a=1', 'not "logfmt at all', "x=1 y=2"]))
    assert bad.table["parse_ok"].to_pylist() == [True, False, True]
    assert bad.table["message"][1].as_py() == 'not "logfmt at all'  # kept whole


def test_cri_joins_partial_records_and_reads_json_messages():
    parsed = parse_log(fixture("cri"))
    rows = parsed.table.to_pylist()
    tags = parsed.field("Tag").to_pylist()
    first_f = tags.index("P") + 3  # three P records, then their F
    assert tags[first_f - 3:first_f + 1] == ["P", "P", "P", "F"]
    assert rows[first_f]["component"] == "worker" and rows[first_f]["message"].endswith("x" * 60)
    assert parsed.field("trace_id")[first_f].as_py() == "t0000"
    # Its P records carry the message's keys, so they join its trace's session.
    assert parsed.field("trace_id").to_pylist()[first_f - 3:first_f] == ["t0000"] * 3
    from tinylogbert.sessions.grouping import build_sessions
    assert set(build_sessions(parsed).line_session.to_pylist()[first_f - 3:first_f + 1]) == {"t0000"}
    assert len(parsed) == 400 and parsed.table["parse_ok"].to_numpy(zero_copy_only=False).all()
    java = [r for r in rows if "IllegalStateException" in r["message"]]
    assert java and all(r["level"] is None for r in java)  # not JSON: no level invented
    # A P record whose F is of the other stream stays waiting; the other stream is not joined.
    lines = read_log_lines(["2024-01-01T00:00:00Z stderr P ab", "2024-01-01T00:00:00Z stdout F x",
                            "2024-01-01T00:00:01Z stderr F cd", "garbage"])
    mixed = parse_log(lines, "cri")
    assert mixed.table["message"].to_pylist() == ["ab", "x", "abcd", "garbage"]
    assert mixed.table["parse_ok"].to_pylist() == [True, True, True, False]


def test_stack_trace_lines_stay_rows_and_join_their_event_and_its_session():
    from tinylogbert.sessions.grouping import build_sessions

    parsed = parse_log(fixture("cri"))
    heads = parsed.event_of
    rows = np.flatnonzero(heads != np.arange(len(parsed)))
    messages = parsed.table["message"].to_pylist()
    assert len(rows) and all(messages[i].startswith("\tat ") for i in rows)
    assert all("Exception in thread" in messages[heads[i]] for i in rows)
    sessions = build_sessions(parsed).line_session.to_pylist()
    assert all(sessions[i] == sessions[heads[i]] != "" for i in rows)
    assert len(parsed) == 400  # every input line is still a row
    lines = ['{"msg": "start", "trace_id": "a"}', '{"msg": "fail", "trace_id": "b"}',
             "Traceback (most recent call last):", '  File "x.py", line 3, in f',
             "    raise ValueError('boom')", "ValueError: boom", '{"msg": "next", "trace_id": "a"}',
             "plain text line"]
    mixed = parse_log(read_log_lines(lines), "jsonl")
    assert mixed.event_of.tolist() == [0, 1, 1, 1, 1, 1, 6, 7]
    assert mixed.table["parse_ok"].to_pylist() == [True, True] + [False] * 4 + [True, False]
    assert build_sessions(mixed).line_session.to_pylist()[:7] == ["a"] + ["b"] * 5 + ["a"]


def _hadoop_with_traces() -> list[str]:
    """Loghub's Hadoop lines with a 12-line Java stack trace after every third: four fifths of
    the lines are a trace's, as in a failing service's log."""
    heads = read_log_file(LOGHUB_2K / "Hadoop_2k.log.gz").lines.to_pylist()[:80]
    trace = ["java.io.IOException: Connection reset by peer",
             *(f"\tat org.apache.hadoop.ipc.Client$Connection.receive{k}(Client.java:{510 + k})"
               for k in range(9)),
             "Caused by: java.net.SocketException: Connection reset", "\t... 17 more"]
    out = []
    for i, line in enumerate(heads):
        out.append(line)
        if i % 3 == 0:
            out.extend(trace)
    return out


def test_a_log_mostly_of_stack_traces_is_detected_by_its_event_lines(run_cli, tmp_path):
    lines = _hadoop_with_traces()
    parsed = parse_log(read_log_lines(lines))
    assert parsed.format.name == "hadoop"  # not generic: its traces are set aside to judge
    guess = parsed.detection
    assert guess.n_set_aside > guess.n_sampled / 2 and guess.match_rate == 1.0
    assert re.search(r", [\d,]+ stack-trace lines? set aside$", guess.describe())
    continuing = parsed.continuing
    assert continuing.sum() == 27 * 12 and len(parsed) == len(lines)
    heads = parsed.event_of[continuing]
    assert parsed.table["parse_ok"].to_numpy()[heads].all()
    # A log whose lines are all indented is still judged on all its lines.
    indented = parse_log(read_log_lines(["  " + line for line in lines[:40]]))
    assert indented.detection.n_set_aside == 0
    log = tmp_path / "traces.log"
    log.write_text("\n".join(lines) + "\n")
    code, out, _ = run_cli("formats", "--detect", str(log))
    assert code == 0 and out.startswith("hadoop: 100.0%") and "continue the event above them" in out
    assert "\tat org.apache" not in out and "unparsed line" not in out


def test_a_stack_trace_cut_by_a_window_end_stays_in_its_events_window():
    from tinylogbert.sessions.grouping import SessionConfig, build_sessions

    lines = [f'{{"msg": "step {i}"}}' for i in range(4)] + [
        '{"msg": "failed"}', "java.lang.IllegalStateException: boom",
        "\tat a.B.c(B.java:1)", "\tat a.B.d(B.java:2)", '{"msg": "after"}']
    parsed = parse_log(read_log_lines(lines), "jsonl")
    assert parsed.event_of.tolist() == [0, 1, 2, 3, 4, 4, 4, 4, 8]
    index = build_sessions(parsed, SessionConfig(by="window", window_size=5))
    sessions = index.line_session.to_pylist()
    assert sessions[4:8] == ["L1-5"] * 4 and sessions[8] == "L6-9"  # the trace follows line 5
    assert sorted(index.members.tolist()) == list(range(9))  # every line in one session


@pytest.mark.parametrize("line, level", [
    ("<0>1 2024-01-01T00:00:00Z h app - - - boom", "emerg"),
    ("<11>1 2024-01-01T00:00:00Z h app 12 ID1 [a@1 k=\"v\"] disk", "err"),
    ("<190>1 2024-01-01T00:00:00Z h app - - - ok", "info"),
    ("<15>Jan  1 00:00:00 h app[1]: ok", "debug"),
])
def test_syslog_pri_is_the_level(line, level):
    parsed = parse_log(read_log_lines([line]))
    assert parsed.format.name in ("rfc5424", "rfc3164")
    assert parsed.table["level"][0].as_py() == level


def test_journald_json_maps_message_priority_unit_and_time():
    parsed = parse_log(fixture("journald"))
    assert parsed.format.name == "jsonl"
    row = parsed.table.to_pylist()[0]
    assert row["message"] == "cache hit key=user:4576" and row["component"] == "api.service"
    assert row["level"] == "warning" and "err" in parsed.table["level"].to_pylist()
    assert parse_times(parsed)[0] == pytest.approx(1709294400.0)


def test_docker_json_file_still_reads_log_stream_time():
    line = '{"log":"GET / 200\\n","stream":"stdout","time":"2024-01-01T00:00:00.1Z"}'
    row = parse_log(read_log_lines([line])).table.to_pylist()[0]
    assert row["message"] == "GET / 200" and row["timestamp"] == "2024-01-01T00:00:00.1Z"


def test_json_keys_can_be_named():
    lines = read_log_lines(['{"when": "2024-03-01T12:00:00Z", "text": "a", "what": "disk full"}'])
    parsed = parse_log(lines, "json:message=what,time=when")
    row = parsed.table.to_pylist()[0]
    assert row["message"] == "disk full" and row["timestamp"] == "2024-03-01T12:00:00Z"


# ---- the formats command -------------------------------------------------------------------------
@pytest.fixture
def run_cli(monkeypatch, capsys):
    monkeypatch.setattr(cli, "EXTRA_COMMAND_MODULES", ("tinylogbert.cli.formats",))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_formats_lists_the_registry_with_examples(run_cli):
    code, out, _ = run_cli("formats")
    assert code == 0
    for fmt in available_formats():
        assert re.search(rf"^{re.escape(fmt.name)}\b", out, re.MULTILINE)
    assert "also: spirit, liberty" in out and "also: mac, openssh" in out
    assert out.count("  example  ") >= len(available_formats()) - 1  # generic has none


def test_formats_detect_prints_the_verdict_and_top_three(run_cli):
    code, out, _ = run_cli("formats", "--detect", FIXTURES / "bgl.log")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "bgl: 100.0% of 160 sampled lines"
    assert lines[1] == "top 3 candidates:"
    assert re.match(r"\s+1\. bgl\s+100\.0%", lines[2]) and lines[4].lstrip().startswith("3.")
    assert "14 alert lines" in out


def test_formats_detect_tries_a_users_format(run_cli):
    code, out, _ = run_cli("formats", "--detect", FIXTURES / "spark.log",
                           "--format", "<Date> <Time> <Level> <Component>: <Content>")
    assert code == 0 and out.startswith("custom: 100.0% of 9 sampled lines")
    code, out, _ = run_cli("formats", "--detect", FIXTURES / "logfmt.log")
    assert "sessions by <trace_id>: 100.0% of the first 5,000 lines carry it" in out
    code, out, _ = run_cli("formats", "--detect", FIXTURES / "jsonl.log", "--format", "hdfs")
    assert code == 0 and out.startswith("hdfs: 0.0% of 7 sampled lines, 1 stack-trace line set aside")
    assert "unparsed line 1:" in out


@pytest.mark.parametrize("argv, message", [
    (("formats", "--detect", "no/such.log"), "no such file"),
    (("formats", "--detect", FIXTURES / "bgl.log", "--format", "<Level>"), "needs a <Content>"),
])
def test_formats_errors_are_one_line(run_cli, argv, message):
    code, _, err = run_cli(*argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# ---- end to end: a labelled log of one's own, from the command line -----------------------------
def test_train_score_evaluate_by_line_on_inline_labels(run_cli, tmp_path):
    model, lines_csv = tmp_path / "model", tmp_path / "lines.csv"
    code, out, err = run_cli(
        "train", FIXTURES / "bgl.log", "--out", model, "--epochs", "1", "--head-epochs", "1",
        "--steps-per-epoch", "4", "--batch-size", "8", "--hidden", "32", "--layers", "1",
        "--heads", "2", "--vocab-size", "120", "--threads", "1", "--quiet",
    )
    assert code == 0, err
    assert "format bgl" in out

    from tinylogbert.scoring.detector import TinyLogBERTDetector

    detector = TinyLogBERTDetector.load(model)
    vocabulary = set(detector.tokenizer_.tokenizer.get_vocab())
    for alert in BGL_ALERTS:  # the labels never reached the tokenizer or the line vocabulary
        assert alert.lower() not in vocabulary
        assert not any(alert.lower() in line for line in detector.line_vocab_)

    code, out, err = run_cli("score", FIXTURES / "bgl.log", "--model", model, "--out", lines_csv)
    assert code == 0, err
    scored = pd.read_csv(lines_csv)
    assert scored["line_no"].tolist() == list(range(1, 161))  # every line accounted for
    raw_labels = [line.split(" ", 1)[0] for line in fixture("bgl").lines.to_pylist()]
    assert scored["label"].tolist() == [0 if lab == "-" else 1 for lab in raw_labels]

    code, out, err = run_cli("evaluate", "--scores", lines_csv, "--level", "line", "--json",
                             "--model", model)
    assert code == 0, err
    import json

    ev = json.loads(out)
    assert ev["level"] == "line" and ev["n"] == 160 and ev["n_anomalies"] == 14
    assert 0.0 <= ev["roc_auc"] <= 1.0

    # The same labels from a line_no,label CSV give the same evaluation.
    labels_csv = tmp_path / "labels.csv"
    with open(labels_csv, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["line_no", "label"])
        writer.writerows((i, "Normal" if lab == "-" else "Anomaly")
                         for i, lab in enumerate(raw_labels, start=1))
    code, out2, err = run_cli("evaluate", "--scores", lines_csv, "--level", "line",
                              "--labels", labels_csv, "--json", "--model", model)
    assert code == 0, err
    assert json.loads(out2)["roc_auc"] == pytest.approx(ev["roc_auc"])


def test_modern_dev_log_is_logfmt_with_trace_sessions_and_labels(tmp_path):
    from benchmarks.modern_log import modern_dev_log
    from tinylogbert.sessions.grouping import build_sessions

    train, test, labels = modern_dev_log(tmp_path, n_train=60, n_test=80)
    assert train.read_text() == modern_dev_log(tmp_path / "again", 60, 80)[0].read_text()
    parsed = parse_log(read_log_file(test))
    index = build_sessions(parsed)
    assert parsed.format.name == "logfmt" and index.strategy == "id field <trace_id>"
    truth = pd.read_csv(labels)
    assert len(index) == len(truth) == 80 and set(truth["session_id"]) == set(index.ids)
    assert 0 < truth["label"].sum() < 80
    assert parse_log(read_log_file(train)).table["parse_ok"].to_numpy(zero_copy_only=False).all()

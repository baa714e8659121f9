"""Log formats as data: a name, a regex with named groups, and how to find sessions.

Why data and not code: a user's own format is then one string away (``<Date> <Time> <Level>:
<Content>``, the loghub convention), and auto-detection is a loop over the registry. The registry
formats are loghub's published templates with *typed* fields (digits for dates and pids, upper-case
levels...) rather than loghub's lazy ``.*?``, so that a format only matches its own logs and
detection can tell them apart. Group names that matter downstream (case-insensitive):

- ``content`` – the message the model reads (required);
- ``level``, ``component`` – shown and used for the model's words (component only);
- ``label`` – an inline label (loghub BGL/Thunderbird style: ``-`` is normal). It is kept *out* of
  the message so it can never leak into training or scoring;
- time fields (``date``, ``time``, ``timestamp``, ``month``, ``day``, ``year``...) – joined, in
  order, into the ``timestamp`` column (``time_fields`` picks which); ``time_format`` (strptime, or
  ``epoch``) lets time windows read it;
- ``session`` – an explicit session id field;
- ``pri`` – a syslog ``<PRI>``: the level is its severity (``PRI % 8``: emerg ... debug).
Any other group (``pid``, ``node``...) is parsed and kept aside: it can name sessions
(``--session-id '<Node>'``) but never reaches the model.

JSON-lines logs are not a regex: a format with ``json_keys`` parses each line as a JSON object and
takes the message, time, level and component from the first key present of each list; a format
whose ``record_syntax`` is ``logfmt`` reads ``key=value`` pairs the same way. Numeric levels are
named: 0-7 as syslog severities (journald's ``PRIORITY``), 10-60 as pino/bunyan levels.

Formats with ``raw_messages`` (generic, Kubernetes CRI) carry a program's output lines as they
were written, so a stack trace arrives as lines of its own; the parser marks those as
continuations of the event before them (see ``log_parser``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from dataclasses import fields as dataclass_fields

from tinylogbert.errors import FormatError
from tinylogbert.io.safe_regex import compile_linear

TIME_FIELDS = ("timestamp", "datetime", "date", "time", "year", "month", "day")
KNOWN_FIELDS = {"content", "level", "component", "label", "session", "pri", *TIME_FIELDS}
RECORD_SYNTAXES = ("json", "logfmt")
# Syslog severities by number (RFC 5424 section 6.2.1), as LEVEL_RANKS names them.
SYSLOG_SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
# pino / bunyan numeric levels.
NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warn", 50: "error", 60: "fatal"}
# A session spec of this shape names a parsed field instead of being a regex: ``<Node>``.
FIELD_REFERENCE = re.compile(r"^<([A-Za-z_][A-Za-z0-9_.@-]*)>$")


@dataclass(frozen=True)
class JsonKeys:
    """Where a JSON-lines record keeps its parts: the first key present wins (``a.b`` = nested)."""

    # journald (``journalctl -o json``) last: MESSAGE, __REALTIME_TIMESTAMP (µs), PRIORITY (0-7),
    # _SYSTEMD_UNIT / SYSLOG_IDENTIFIER.
    message: tuple[str, ...] = ("message", "msg", "log", "@message", "event", "text", "MESSAGE")
    time: tuple[str, ...] = ("timestamp", "@timestamp", "time", "ts", "datetime", "date",
                             "__REALTIME_TIMESTAMP")
    level: tuple[str, ...] = ("level", "severity", "lvl", "levelname", "log.level", "loglevel",
                              "PRIORITY")
    component: tuple[str, ...] = ("logger", "logger_name", "component", "module", "service",
                                  "_SYSTEMD_UNIT", "SYSLOG_IDENTIFIER")

    def __post_init__(self) -> None:  # lists when read back from a checkpoint's JSON
        for f in dataclass_fields(self):
            value = getattr(self, f.name)
            object.__setattr__(self, f.name, (value,) if isinstance(value, str) else tuple(value))


@dataclass(frozen=True)
class LogFormat:
    """One log format: a line regex (or JSON keys) plus its session and time defaults."""

    name: str
    regex: str
    description: str = ""
    example: str = ""
    # Regex whose matches in the message are session ids (HDFS: block ids); a named group ``id``
    # keeps only that part; ``<Field>`` names a parsed field. None: use windows.
    session_pattern: str | None = None
    # strptime format of the joined timestamp, for time windows ('epoch': seconds since 1970);
    # None: let pandas guess.
    time_format: str | None = None
    # Inline label value meaning "normal" (loghub: '-').
    normal_label: str = "-"
    # Default window for logs without session ids: lines per window.
    window_size: int = 20
    # Default time window in seconds ('--sessions time').
    time_window: float = 60.0
    # Groups joined into the timestamp column; empty: every time-named group, in order.
    time_fields: tuple[str, ...] = ()
    # The loghub-style template the regex was built from (shown to users; may be empty).
    template: str = ""
    # Other names that resolve to this format (e.g. 'spirit', 'liberty').
    aliases: tuple[str, ...] = ()
    # Set for JSON-lines formats: the regex is then only a quick "looks like an object" filter.
    json_keys: JsonKeys | None = None
    # With json_keys: how a line is a record, 'json' (an object) or 'logfmt' (key=value pairs).
    record_syntax: str = "json"
    # The message is a program's raw output line (stack traces arrive line by line).
    raw_messages: bool = False
    # Kubernetes CRI: 'P' records are joined with the following 'F' record of their stream.
    joins_partials: bool = False
    groups: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name in ("time_fields", "aliases"):
            object.__setattr__(self, name, tuple(getattr(self, name) or ()))
        if isinstance(self.json_keys, dict):
            object.__setattr__(self, "json_keys", JsonKeys(**self.json_keys))
        compiled = compile_linear(self.regex, f"regex of format {self.name!r}")
        names = tuple(n.lower() for n in compiled.groupindex)
        if "content" not in names:
            raise FormatError(
                f"format {self.name!r}: needs a <Content> field (a named group 'content')"
            )
        if self.session_pattern is not None and not FIELD_REFERENCE.match(self.session_pattern):
            compile_linear(self.session_pattern, f"session pattern of format {self.name!r}")
        if self.record_syntax not in RECORD_SYNTAXES:
            raise FormatError(f"format {self.name!r}: record_syntax must be one of "
                              f"{RECORD_SYNTAXES}")
        if self.window_size <= 0 or self.time_window <= 0:
            raise FormatError(f"format {self.name!r}: window sizes must be positive")
        # In the order they appear (RE2 lists them by name): time fields join in this order.
        order = compiled.groupindex
        object.__setattr__(self, "groups", tuple(sorted(order, key=order.__getitem__)))
        unknown = [f for f in self.time_fields if f.lower() not in {g.lower() for g in self.groups}]
        if unknown and not self.is_jsonl:
            raise FormatError(f"format {self.name!r}: time field(s) {unknown} are not groups")

    @property
    def is_jsonl(self) -> bool:
        return self.json_keys is not None

    @property
    def has_label(self) -> bool:
        return any(g.lower() == "label" for g in self.groups)

    @property
    def label_leads(self) -> bool:
        """True when the label is the line's first field (loghub's convention), so even a line
        that does not parse can have it stripped off."""
        return bool(re.match(r"\^?\(\?P<label>", self.regex, re.IGNORECASE))

    @property
    def specificity(self) -> tuple[int, int]:
        """Tie-breaker for detection: typed fields (digits, upper-case levels...), then fields.

        A field is typed when its pattern rejects an ordinary word: ``\\S+`` and ``.*`` are not.
        """
        patterns = group_patterns(self.regex)
        typed = sum(not _accepts_all(p, _UNTYPED_PROBES) for p in patterns.values())
        return typed, len(patterns)

    @property
    def timestamp_groups(self) -> tuple[str, ...]:
        if self.time_fields:
            wanted = [f.lower() for f in self.time_fields]
            by_lower = {g.lower(): g for g in self.groups}
            return tuple(by_lower[w] for w in wanted if w in by_lower)
        return tuple(g for g in self.groups if g.lower() in TIME_FIELDS)

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def with_inline_label(self) -> LogFormat:
        """This format behind a loghub-style label field (``-`` or an alert category)."""
        if self.has_label or self.is_jsonl or not self.regex.startswith("^"):
            raise FormatError(f"format {self.name!r} cannot take an inline label prefix")
        return replace(
            self,
            name=f"{self.name}{LABEL_SUFFIX}",
            regex=rf"^(?P<Label>{LABEL_VALUE})\s+" + self.regex[1:],
            description=f"{self.description} Each line starts with a label (- = normal).",
            example=f"- {self.example}" if self.example else "",
            template=f"<Label> {self.template}" if self.template else "",
            aliases=(),
        )


# Words any untyped field accepts: a field pattern that accepts all of them is a wildcard.
_UNTYPED_PROBES = ("INFO", "abc", "x1-y2/z")


def _accepts_all(pattern: str, probes: tuple[str, ...]) -> bool:
    try:
        rx = compile_linear(pattern, "field regex")
    except FormatError:  # a group that is not a regex on its own (unbalanced): call it typed
        return False
    return all(rx.fullmatch(probe) for probe in probes)


def group_patterns(regex: str) -> dict[str, str]:
    """The sub-pattern of each named group of ``regex`` (escapes and [...] classes respected)."""
    out: dict[str, str] = {}
    for match in re.finditer(r"\(\?P<(\w+)>", regex):
        depth, i, in_class = 1, match.end(), False
        while i < len(regex) and depth:
            char = regex[i]
            if char == "\\":
                i += 1
            elif in_class:
                in_class = char != "]"
            elif char == "[":
                in_class = True
                if regex[i + 1 : i + 2] == "]" or regex[i + 1 : i + 3] == "^]":
                    i += 1 if regex[i + 1] == "]" else 2
            elif char in "()":
                depth += 1 if char == "(" else -1
            i += 1
        out[match.group(1)] = regex[match.end() : i - 1]
    return out


LABEL_SUFFIX = "+label"
# What an inline label looks like when a format does not say: '-' or an upper-case category.
LABEL_VALUE = r"-|[A-Z][A-Z0-9_]*"

_FIELD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
_UNNAMED_GROUP = re.compile(r"(?<!\\)\((?!\?)")


def _literal(text: str, as_regex: bool, before_last_content: bool) -> str:
    """Compile the text between two fields: any run of spaces matches any run of whitespace."""
    pieces = [p for p in re.split(r"(\s+)", text) if p]
    out = []
    for i, piece in enumerate(pieces):
        if piece.isspace():
            trailing = before_last_content and i == len(pieces) - 1
            out.append(r"(?:\s+|$)" if trailing else r"\s+")
        elif as_regex:
            # loghub templates are regexes; their groups must not capture (Arrow wants names).
            out.append(_UNNAMED_GROUP.sub("(?:", piece))
        else:
            out.append(re.escape(piece))
    return "".join(out)


def format_from_template(
    template: str,
    name: str = "custom",
    fields: dict[str, str] | None = None,
    regex_literals: bool | None = None,
    **kwargs,
) -> LogFormat:
    """Compile a loghub-style template such as ``<Date> <Time> <Level>: <Content>``.

    ``fields`` gives a regex per field (``{"Pid": r"\\d+"}``); other fields match lazily, the last
    one greedily, as in loghub's parsers, so fields that contain spaces (an Apache date) still
    parse.
    Text between fields is literal, unless the template contains a backslash: then, as in loghub's
    benchmark settings (``\\[<Time>\\] \\[<Level>\\] <Content>``), it is a regex.
    """
    matches = list(_FIELD.finditer(template))
    if not matches:
        raise FormatError(
            f"format {template!r} has no <Field>; write e.g. '<Date> <Time> <Level>: <Content>'"
        )
    typed = {k.lower(): v for k, v in (fields or {}).items()}
    as_regex = "\\" in template if regex_literals is None else regex_literals
    parts: list[str] = []
    seen: set[str] = set()
    pos = 0
    for i, match in enumerate(matches):
        group = match.group(1)
        last = i == len(matches) - 1
        parts.append(
            _literal(template[pos : match.start()], as_regex, last and group.lower() == "content")
        )
        if group.lower() in seen:
            raise FormatError(f"format {template!r}: field <{group}> appears twice")
        seen.add(group.lower())
        pattern = typed.get(group.lower()) or (".*" if last else ".*?")
        parts.append(f"(?P<{group}>{pattern})")
        pos = match.end()
    parts.append(_literal(template[pos:], as_regex, False))
    return LogFormat(name=name, regex="^" + "".join(parts) + "$", template=template, **kwargs)


def json_format_from_spec(spec: str) -> LogFormat:
    """``json`` or ``json:message=event,time=ts,level=severity,component=logger`` (keys to use)."""
    _, _, options = spec.partition(":")
    keys: dict[str, tuple[str, ...]] = {}
    for item in filter(None, (o.strip() for o in options.split(","))):
        role, sep, key = (s.strip() for s in item.partition("="))
        if not sep or role not in {f.name for f in dataclass_fields(JsonKeys)} or not key:
            raise FormatError(
                f"bad JSON format option {item!r}: use e.g. 'json:message=event,time=ts' "
                "(roles: message, time, level, component)"
            )
        keys[role] = (key,)
    return replace(JSONL, name="json-custom" if keys else JSONL.name, json_keys=JsonKeys(**keys),
                   aliases=())


HDFS_BLOCK = r"blk_-?\d+"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# Field types shared by several formats.
LEVEL = r"[A-Z]+"
PID = r"\d+"
ISO_DATE = r"\d{4}-\d{2}-\d{2}"
HMS = r"\d{2}:\d{2}:\d{2}"
MONTH = r"[A-Z][a-z]{2}"
SYSLOG_COMPONENT = r"[^\s:\[\]]+"  # 'sshd', 'crond(pam_unix)', '/usr/sbin/gmetad'
# Up to three words: 'syslogd 1.4.1', 'Microsoft Word[14463]', 'BezelServices 255.10[94]'.
SYSLOG_COMPONENTS = rf"{SYSLOG_COMPONENT}(?: {SYSLOG_COMPONENT}){{0,2}}"
JAVA_COMPONENT = r"[^\s:]+"

GENERIC = LogFormat(
    name="generic",
    regex=r"^(?P<Content>.*)$",
    description="Any text: the whole line is the message (the fallback).",
    template="<Content>",
    raw_messages=True,
)

JSONL = LogFormat(
    name="jsonl",
    regex=r"^(?P<Content>\s*\{.*\}\s*)$",
    aliases=("json",),
    description="JSON lines: one object per line; message from message/msg/log/@message/event, "
    "time from timestamp/@timestamp/time/ts, level from level/severity/lvl. Also Docker "
    "json-file ({log, stream, time}) and journalctl -o json (MESSAGE, PRIORITY, _SYSTEMD_UNIT, "
    "__REALTIME_TIMESTAMP); sessions by trace/request id when most lines carry one.",
    example='{"timestamp": "2024-03-01T12:00:00Z", "level": "ERROR", "logger": "db", '
    '"message": "connection refused"}',
    time_format=None,
    json_keys=JsonKeys(),
)

# A logfmt line: nothing but key=value pairs (at least two; values bare or double-quoted).
LOGFMT_KEY = r"[A-Za-z_@][\w.\-/@]*"
LOGFMT_VALUE = r'(?:"(?:[^"\\]|\\.)*"|[^\s"]*)'
LOGFMT_LINE = rf"\s*{LOGFMT_KEY}={LOGFMT_VALUE}(?:\s+{LOGFMT_KEY}={LOGFMT_VALUE})+\s*"

LOGFMT = LogFormat(
    name="logfmt",
    regex=rf"^(?P<Content>{LOGFMT_LINE})$",
    description="logfmt (Go logrus/zap/slog, Heroku, Loki): key=value pairs; message from msg/"
    "message, time from time/ts, level from level/lvl; every key kept as a field; sessions by "
    "trace/request id when most lines carry one.",
    example='time=2024-03-01T12:00:00.120Z level=error msg="db timeout" service=api '
    "request_id=r-81f2",
    json_keys=JsonKeys(),
    record_syntax="logfmt",
)

_REGISTRY: dict[str, LogFormat] = {}


def register(fmt: LogFormat) -> LogFormat:
    """Add a format to the registry (used by auto-detection and ``--format NAME``)."""
    taken = {n.lower(): f.name for f in _REGISTRY.values() if f.name != fmt.name for n in f.names()}
    for name in fmt.names():
        if name.lower() in taken:
            raise FormatError(f"format name {name!r} is already used by {taken[name.lower()]!r}")
    _REGISTRY[fmt.name] = fmt
    return fmt


def available_formats() -> list[LogFormat]:
    return list(_REGISTRY.values())


def _builtin(template: str, name: str, fields: dict[str, str], **kwargs) -> LogFormat:
    return register(format_from_template(template, name=name, fields=fields, regex_literals=True,
                                         **kwargs))


_builtin(
    "<Date> <Time> <Pid> <Level> <Component>: <Content>", "hdfs",
    {"Date": r"\d{6}", "Time": r"\d{6}", "Pid": PID, "Level": LEVEL, "Component": JAVA_COMPONENT},
    description="HDFS_v1 (loghub); sessions are block ids.",
    example="081109 203530 147 INFO dfs.DataNode$DataXceiver: Receiving block "
    "blk_4394112519745907149 src: /10.250.18.114:43996 dest: /10.250.18.114:50010",
    session_pattern=HDFS_BLOCK,
    time_format="%y%m%d %H%M%S",
)
register(
    LogFormat(
        name="hdfs_seed",
        regex=r"^(?P<Date>\d{4}-\d{2}-\d{2}) (?P<Time>\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)\s+"
        r"(?P<Level>[A-Z]+)\s+(?P<Component>[^\s:]+):\s?(?P<Content>.*)$",
        description="ISO date, level, component (HDFS client style); sessions are block ids "
        "when the lines name them.",
        example="2023-10-10 08:02:30.123 INFO DFSClient: Successfully read block BP-xxx",
        session_pattern=HDFS_BLOCK,
        time_format="%Y-%m-%d %H:%M:%S.%f",
    )
)
_builtin(
    "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>",
    "bgl",
    {"Label": r"\S+", "Timestamp": r"\d{9,11}", "Date": r"\d{4}\.\d{2}\.\d{2}", "Node": r"\S+",
     "Time": r"\d{4}-\d{2}-\d{2}-\d{2}\.\d{2}\.\d{2}(?:\.\d+)?", "NodeRepeat": r"\S+",
     "Type": r"[A-Z_]+", "Component": r"[A-Z_]+", "Level": r"[A-Z]+"},
    description="BlueGene/L RAS log (loghub, labelled: first field '-' or an alert category).",
    example="- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 "
    "R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
    time_fields=("Time",),
    time_format="%Y-%m-%d-%H.%M.%S.%f",
    time_window=300.0,
)
_builtin(
    r"<Label> <Timestamp> <Date> <Node> <Month> <Day> <Time> <Location> "
    r"(<Component>(\[<PID>\])?: )?<Content>",
    "thunderbird",
    {"Label": r"\S+", "Timestamp": r"\d{9,11}", "Date": r"\d{4}\.\d{2}\.\d{2}", "Node": r"\S+",
     "Month": MONTH, "Day": r"\d{1,2}", "Time": HMS, "Location": r"\S+",
     "Component": SYSLOG_COMPONENTS, "PID": PID},
    aliases=("spirit", "liberty"),
    description="Thunderbird, Spirit and Liberty supercomputer syslogs (loghub/CFDR, labelled: "
    "first field '-' or an alert category).",
    example="- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: "
    "session closed for user root",
    time_fields=("Date", "Time"),
    time_format="%Y.%m.%d %H:%M:%S",
)
_builtin(
    r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>", "hadoop",
    {"Date": ISO_DATE, "Time": r"\d{2}:\d{2}:\d{2},\d{3}", "Level": LEVEL, "Process": r"[^\]]*",
     "Component": JAVA_COMPONENT},
    description="Hadoop MapReduce / YARN (log4j with [thread]).",
    example="2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.mapreduce.v2.app.MRAppMaster: "
    "Created MRAppMaster for application appattempt_1445144423722_0020_000001",
    time_format="%Y-%m-%d %H:%M:%S,%f",
)
_builtin(
    "<Date> <Time> <Level> <Component>: <Content>", "spark",
    {"Date": r"\d{2}/\d{2}/\d{2}", "Time": HMS, "Level": LEVEL, "Component": JAVA_COMPONENT},
    description="Apache Spark (log4j, yy/MM/dd dates).",
    example="17/06/09 20:10:40 INFO executor.CoarseGrainedExecutorBackend: Registered signal "
    "handlers for [TERM, HUP, INT]",
    time_format="%y/%m/%d %H:%M:%S",
)
_builtin(
    r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>", "zookeeper",
    {"Date": ISO_DATE, "Time": r"\d{2}:\d{2}:\d{2},\d{3}", "Level": LEVEL, "Node": r".+",
     "Component": r"[\w$.]+", "Id": r"\d+"},
    description="Apache ZooKeeper.",
    example="2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:"
    "FastLeaderElection@774] - Notification time out: 3200",
    time_format="%Y-%m-%d %H:%M:%S,%f",
)
_builtin(
    r"(<Logrecord> )?<Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>", "openstack",
    {"Logrecord": r"\S+", "Date": ISO_DATE, "Time": r"\d{2}:\d{2}:\d{2}\.\d+", "Pid": PID,
     "Level": LEVEL, "Component": r"[\w.]+", "ADDR": r"[^\]]*"},
    description="OpenStack (oslo.log; loghub's file-name prefix optional); sessions are instance "
    "ids when most lines name one.",
    example="nova-compute.log.1.2017-05-16_13:55:31 2017-05-16 00:00:04.500 2931 INFO "
    "nova.compute.manager [req-3ea4052c-895d-4b64-9e2d-04d64c4d94ab - - - - -] [instance: "
    "b9000564-fe1a-409b-b8cc-1e88b294cd1d] VM Started (Lifecycle Event)",
    session_pattern=rf"\[instance: (?P<id>{UUID})\]",
    time_format="%Y-%m-%d %H:%M:%S.%f",
)
_builtin(
    r"<Month> <Day> <Time> <Host> (<Component>(\[<PID>\])?( \(<Address>\))?: )?<Content>",
    "linux",
    {"Month": MONTH, "Day": r"\d{1,2}", "Time": HMS, "Host": r"\S+",
     "Component": SYSLOG_COMPONENTS, "PID": PID, "Address": r"[^\s()]+"},
    aliases=("mac", "openssh"),
    description="Linux syslog (BSD style, no year): /var/log/messages, auth.log, OpenSSH, macOS "
    "system.log (whose 'sender[pid] (address):' is read too).",
    example="Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 "
    "euid=0 tty=NODEVssh ruser= rhost=218.188.2.4",
    time_format="%b %d %H:%M:%S",
)
_builtin(
    r"<Timestamp> <Host> (<Component>(\[<PID>\])?: )?<Content>", "syslog_iso",
    {"Timestamp": r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?",
     "Host": r"\S+", "Component": SYSLOG_COMPONENT, "PID": PID},
    description="Syslog with an RFC 3339 time (rsyslog default, journalctl -o short-iso).",
    example="2024-03-01T12:00:01.123456+00:00 web-1 nginx[812]: upstream timed out",
    time_format="ISO8601",
)
_builtin(
    r"\[<Time>\] \[(<Component>:)?<Level>\] <Content>", "apache",
    {"Time": r"[A-Z][a-z]{2} [A-Z][a-z]{2} \d{1,2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4}",
     "Component": r"[\w-]+", "Level": r"[a-z]+\d?"},
    description="Apache httpd error log (2.2 and 2.4 styles).",
    example="[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok "
    "/etc/httpd/conf/workers2.properties",
    time_format="%a %b %d %H:%M:%S %Y",
    time_window=300.0,
)
_builtin(
    "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>", "android",
    {"Date": r"\d{2}-\d{2}", "Time": r"\d{2}:\d{2}:\d{2}\.\d{3}", "Pid": PID, "Tid": PID,
     "Level": r"[VDIWEFA]", "Component": r"[^:]*?"},
    description="Android logcat (threadtime).",
    example="03-17 16:13:38.811  1702  2395 D WindowManager: printFreezingDisplayLogsopening app "
    "wtoken = AppWindowToken{9f4ef63 token=Token{a64f992 ActivityRecord{de9231d u0 "
    "com.tencent.qt.qtl/.activity.info.NewsDetailXmlActivity t761}}}",
    time_format="%m-%d %H:%M:%S.%f",
)
_builtin(
    r"<Time>\|<Component>\|<Pid>\|<Content>", "healthapp",
    {"Time": r"\d{8}-\d{1,2}:\d{1,2}:\d{1,2}:\d{1,3}", "Component": r"[^|]+", "Pid": PID},
    description="HealthApp (Android health app, pipe-separated).",
    example="20171223-22:15:29:606|Step_LSC|30002312|onStandStepChanged 3579",
    time_format="%Y%m%d-%H:%M:%S:%f",
)
_builtin(
    "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>", "hpc",
    {"LogId": r"\d+", "Node": r"\S+", "Component": r"\S+", "State": r"\S+",
     "Time": r"\d{9,11}", "Flag": r"-?\d+"},
    description="HPC cluster event log (loghub, Los Alamos): record id, node, component, state, "
    "epoch time, flag.",
    example="134681 node-246 unix.hw state_change.unavailable 1077804742 1 Component State Change: "
    "Component \\042alt0\\042 is in the unavailable state (HWID=1973)",
    time_format="epoch",
)
_builtin(
    r"\[<Time>\] <Component> - <Content>", "proxifier",
    {"Time": r"\d{2}\.\d{2} \d{2}:\d{2}:\d{2}", "Component": r"[^\[\]]+?"},
    description="Proxifier (Windows proxy client) log: [MM.dd HH:mm:ss] program - message; the "
    "program is the component.",
    example="[10.30 16:49:06] chrome.exe - proxy.cse.cuhk.edu.hk:5070 open through proxy "
    "proxy.cse.cuhk.edu.hk:5070 HTTPS",
    time_format="%m.%d %H:%M:%S",
)
_builtin(
    "<Date> <Time>, <Level> <Component> <Content>", "windows",
    {"Date": ISO_DATE, "Time": HMS, "Level": r"[A-Z][a-z]+", "Component": r"\S+"},
    description="Windows CBS / component servicing log (CBS.log): date, time, level, component.",
    example="2016-09-28 04:30:30, Info                  CBS    Loaded Servicing Stack "
    "v6.1.7601.23505 with Core: C:\\Windows\\winsxs\\cbscore.dll",
    time_format="%Y-%m-%d %H:%M:%S",
)
register(
    LogFormat(
        name="cri",
        regex=r"^(?P<Timestamp>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))"
        r" (?P<Stream>stdout|stderr) (?P<Tag>[PF])(?: (?P<Content>.*))?$",
        aliases=("kubernetes", "containerd"),
        description="Kubernetes CRI container log (/var/log/pods, containerd, CRI-O): time, "
        "stream, P/F tag; P (partial) records are joined with the following F record of the "
        "same stream, and a JSON or logfmt message is read one level further (its level, "
        "logger, message and keys).",
        example="2024-03-01T12:00:00.123456789Z stderr F panic: runtime error: index out of range",
        time_format="ISO8601",
        raw_messages=True,
        joins_partials=True,
    )
)
register(
    LogFormat(
        name="rfc5424",
        regex=r"^<(?P<Pri>\d{1,3})>1 (?P<Timestamp>\S+) (?P<Host>\S+) (?P<Component>\S+) "
        r"(?P<ProcId>\S+) (?P<MsgId>\S+) (?P<SD>-|(?:\[(?:[^\]\\]|\\.)*\])+)"
        r"(?: (?P<Content>.*))?$",
        aliases=("syslog5424",),
        description="RFC 5424 syslog: <PRI>1 time host app procid msgid [structured data] msg; "
        "the level is the PRI's severity (emerg ... debug).",
        example="<34>1 2024-03-01T12:00:00.003Z host1 su 123 ID47 - 'su root' failed for lonvick",
        time_format="ISO8601",
    )
)
_builtin(
    r"[<]<Pri>[>]<Month> <Day> <Time> <Host> (<Component>(\[<PID>\])?: )?<Content>", "rfc3164",
    {"Pri": r"\d{1,3}", "Month": MONTH, "Day": r"\d{1,2}", "Time": HMS, "Host": r"\S+",
     "Component": SYSLOG_COMPONENTS, "PID": PID},
    aliases=("syslog3164",),
    description="BSD syslog as sent over the wire (RFC 3164, with its <PRI>); the level is the "
    "PRI's severity.",
    example="<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8",
    time_format="%b %d %H:%M:%S",
)
register(JSONL)
register(LOGFMT)
register(GENERIC)


def _resolve_name(name: str) -> LogFormat | None:
    lowered = name.lower()
    for fmt in _REGISTRY.values():
        if lowered in (n.lower() for n in fmt.names()):
            return fmt
    if lowered.endswith(LABEL_SUFFIX):
        base = _resolve_name(name[: -len(LABEL_SUFFIX)])
        if base is not None and not base.has_label and not base.is_jsonl:
            return base.with_inline_label()
    return None


def get_format(spec: str | LogFormat) -> LogFormat:
    """Resolve ``--format``: a registry name, ``json[:role=key,...]``, a ``<Field>`` template, or a
    regex with named groups.

    ``auto`` is resolved by :func:`tinylogbert.io.log_parser.detect_format`, not here.
    """
    if isinstance(spec, LogFormat):
        return spec
    spec = spec.strip()
    found = _resolve_name(spec)
    if found is not None:
        return found
    if re.match(r"^jsonl?:", spec, re.IGNORECASE):
        return json_format_from_spec(spec)
    if "(?P<" in spec:
        return LogFormat(name="custom-regex", regex=spec)
    if _FIELD.search(spec):
        return format_from_template(spec, name="custom")
    names = ", ".join(sorted(_REGISTRY))
    raise FormatError(
        f"unknown format {spec!r}: use 'auto', one of ({names}), a template like "
        "'<Date> <Time> <Level>: <Content>', or a regex with named groups"
    )

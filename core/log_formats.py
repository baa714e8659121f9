"""Log formats as data: a name, a regex with named groups, and how to find sessions.

Why data and not code: a user's own format is then one string away (``<Date> <Time> <Level>:
<Content>``, the loghub convention), and auto-detection is a loop over the registry. Group names
that matter downstream (case-insensitive):

- ``content`` – the message the model reads (required);
- ``level``, ``component`` – shown and used for the model's words (component only);
- ``label`` – an inline label (loghub BGL/Thunderbird style: ``-`` is normal). It is kept *out* of
  the message so it can never leak into training or scoring;
- time fields (``date``, ``time``, ``timestamp``, ``month``, ``day``, ``year``...) – joined, in
  order, into the ``timestamp`` column; ``time_format`` (strptime) lets time windows parse it;
- ``session`` – an explicit session id field.
Any other group (``pid``, ``node``...) is parsed and ignored.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .errors import FormatError

TIME_FIELDS = ("timestamp", "datetime", "date", "time", "year", "month", "day")
KNOWN_FIELDS = {"content", "level", "component", "label", "session", *TIME_FIELDS}


@dataclass(frozen=True)
class LogFormat:
    """One line-oriented log format."""

    name: str
    regex: str
    description: str = ""
    example: str = ""
    # Regex whose matches in the message are session ids (HDFS: block ids). None: use windows.
    session_pattern: str | None = None
    # strptime format of the joined timestamp, for time windows; None: let pandas guess.
    time_format: str | None = None
    # Inline label value meaning "normal" (loghub: '-').
    normal_label: str = "-"
    # Default window for logs without session ids: lines per window and step.
    window_size: int = 20
    groups: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.regex)
        except re.error as exc:
            raise FormatError(f"format {self.name!r}: invalid regex ({exc})") from None
        names = tuple(n.lower() for n in compiled.groupindex)
        if "content" not in names:
            raise FormatError(
                f"format {self.name!r}: needs a <Content> field (a named group 'content')"
            )
        if self.session_pattern is not None:
            try:
                re.compile(self.session_pattern)
            except re.error as exc:
                raise FormatError(f"format {self.name!r}: invalid session pattern ({exc})") from None
        object.__setattr__(self, "groups", tuple(compiled.groupindex))

    @property
    def has_label(self) -> bool:
        return any(g.lower() == "label" for g in self.groups)

    def with_session_pattern(self, pattern: str | None) -> "LogFormat":
        return replace(self, session_pattern=pattern)


_FIELD = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")


def format_from_template(template: str, name: str = "custom", **kwargs) -> LogFormat:
    """Compile a loghub-style template such as ``<Date> <Time> <Level>: <Content>``.

    Like loghub's parsers, every field but the last matches lazily and spaces match any run of
    whitespace, so fields that contain spaces (an Apache date) still parse.
    """
    if not _FIELD.search(template):
        raise FormatError(
            f"format {template!r} has no <Field>; write e.g. '<Date> <Time> <Level>: <Content>'"
        )
    parts: list[str] = []
    seen: set[str] = set()
    pos = 0
    matches = list(_FIELD.finditer(template))
    for i, match in enumerate(matches):
        literal = template[pos : match.start()]
        parts.append(r"\s+".join(re.escape(piece) for piece in literal.split(" ")))
        group = match.group(1)
        if group.lower() in seen:
            raise FormatError(f"format {template!r}: field <{group}> appears twice")
        seen.add(group.lower())
        last = i == len(matches) - 1
        parts.append(f"(?P<{group}>{'.*' if last else '.*?'})")
        pos = match.end()
    tail = template[pos:]
    parts.append(r"\s+".join(re.escape(piece) for piece in tail.split(" ")))
    return LogFormat(name=name, regex="^" + "".join(parts) + "$", **kwargs)


HDFS_BLOCK = r"blk_-?\d+"

GENERIC = LogFormat(
    name="generic",
    regex=r"^(?P<Content>.*)$",
    description="Any text: the whole line is the message (the fallback).",
)

_REGISTRY: dict[str, LogFormat] = {}


def register(fmt: LogFormat) -> LogFormat:
    """Add a format to the registry (used by auto-detection and ``--format NAME``)."""
    _REGISTRY[fmt.name] = fmt
    return fmt


def available_formats() -> list[LogFormat]:
    return list(_REGISTRY.values())


register(
    LogFormat(
        regex=r"^(?P<Date>\d{6})\s+(?P<Time>\d{6})\s+(?P<Pid>\d+)\s+(?P<Level>[A-Z]+)\s+"
        r"(?P<Component>[^\s:]+):\s+(?P<Content>.*)$",
        name="hdfs",
        description="HDFS_v1 (loghub): 081109 203530 147 INFO dfs.DataNode$DataXceiver: ...",
        example="081109 203530 147 INFO dfs.DataNode$DataXceiver: Receiving block "
        "blk_4394112519745907149 src: /10.250.18.114:43996 dest: /10.250.18.114:50010",
        session_pattern=HDFS_BLOCK,
        time_format="%y%m%d %H%M%S",
    )
)
register(
    LogFormat(
        name="hdfs_seed",
        regex=r"^(?P<Date>\d{4}-\d{2}-\d{2}) (?P<Time>\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)\s+"
        r"(?P<Level>[A-Z]+)\s+(?P<Component>[^\s:]+):\s?(?P<Content>.*)$",
        description="ISO date, level, component: 2023-10-10 08:02:30.123 INFO DFSClient: ...",
        example="2023-10-10 08:02:30.123 INFO DFSClient: Successfully read block BP-xxx",
        session_pattern=HDFS_BLOCK,
        time_format="%Y-%m-%d %H:%M:%S.%f",
    )
)
register(GENERIC)


def get_format(spec: str | LogFormat) -> LogFormat:
    """Resolve ``--format``: a registry name, a ``<Field>`` template, or a regex with named groups.

    ``auto`` is resolved by :func:`core.log_parser.detect_format`, not here.
    """
    if isinstance(spec, LogFormat):
        return spec
    spec = spec.strip()
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if spec.lower() in _REGISTRY:
        return _REGISTRY[spec.lower()]
    if "(?P<" in spec:
        return LogFormat(name="custom-regex", regex=spec)
    if "<" in spec and ">" in spec:
        return format_from_template(spec, name="custom")
    names = ", ".join(sorted(_REGISTRY))
    raise FormatError(
        f"unknown format {spec!r}: use 'auto', one of ({names}), a template like "
        "'<Date> <Time> <Level>: <Content>', or a regex with named groups"
    )

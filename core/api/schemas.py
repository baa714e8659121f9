"""Request and response models: what a client may send (bounded by the server's limits) and what
it gets back (for the OpenAPI documentation; the JSON itself is rendered in the worker thread).

No ``from __future__ import annotations``: FastAPI and pydantic read these annotations at run time.
"""
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from tinylogbert.api.negotiation import WARNINGS_HEADER
from tinylogbert.api.settings import ApiSettings
from tinylogbert.sessions.grouping import SessionConfig

# CSV responses carry the warnings (``tinylogbert.scoring.fit_check``) in this header, ' | '-joined.
# Overlapping windows multiply the work: each line is scored once per window that holds it.
MAX_WINDOW_OVERLAP = 16



class SessionOptions(BaseModel):
    """How lines become sessions (``tinylogbert.sessions.grouping.SessionConfig``); zeros mean
    the format's default."""

    model_config = ConfigDict(extra="forbid")

    by: Literal["auto", "id", "window", "time"] = Field(
        "auto", description="auto: an id in the line if the format has one, else windows of lines"
    )
    id_pattern: str | None = Field(None, max_length=500, description="regex whose matches are session ids")
    window_size: int = Field(0, ge=0, le=100_000, description="lines per window")
    window_step: int = Field(0, ge=0, le=100_000, description="lines between window starts (0: window_size)")
    time_window: float = Field(0.0, ge=0, le=1e9, allow_inf_nan=False,
                               description="seconds per window (0: the format's default)")
    time_step: float = Field(0.0, ge=0, le=1e9, allow_inf_nan=False,
                             description="seconds between window starts (0: time_window)")

    @model_validator(mode="after")
    def _bounded_overlap(self) -> "SessionOptions":
        if self.window_step:
            if not self.window_size:
                raise ValueError("window_step needs window_size")
            if self.window_step > self.window_size:
                raise ValueError("window_step must not exceed window_size (lines would be skipped)")
            if -(-self.window_size // self.window_step) > MAX_WINDOW_OVERLAP:
                raise ValueError(f"windows may overlap at most {MAX_WINDOW_OVERLAP} times")
        if self.time_step and not self.time_window:
            raise ValueError("time_step needs time_window")
        if self.time_step and self.time_window / self.time_step > MAX_WINDOW_OVERLAP:
            raise ValueError(f"time windows may overlap at most {MAX_WINDOW_OVERLAP} times")
        return self

    def config(self) -> SessionConfig:
        return SessionConfig(**self.model_dump())


FORMAT_HELP = ("'auto' (detect), a format name, a template like "
               "'<Date> <Time> <Level>: <Content>', or a regex with named groups")


class ScoreOptions(BaseModel):
    """Options shared by ``/v1/score`` (JSON fields) and ``/v1/score/file`` (form fields)."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field("auto", min_length=1, max_length=2000, description=FORMAT_HELP)
    threshold: float | None = Field(
        None, allow_inf_nan=False, description="session threshold; default: the model's"
    )
    sessions: SessionOptions | None = Field(None, description="default: the model's session rule")
    top_lines: int = Field(
        3, ge=0, le=10, description="explained lines per anomalous session (0: no explanations)"
    )


EXAMPLE_LINES = [
    ("081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 "
     "for block blk_38865049064139660 terminating"),
    ("081109 203807 222 INFO dfs.DataNode$PacketResponder: Received block "
     "blk_-6952295868487656571 of size 67108864 from /10.251.73.220"),
]


def score_request_model(settings: ApiSettings) -> type[ScoreOptions]:
    """The ``/v1/score`` body, with this server's limits in its schema (so ``/docs`` shows them)."""
    line = Annotated[str, StringConstraints(max_length=settings.max_line_length)]

    class ScoreRequest(ScoreOptions):
        lines: list[line] = Field(
            min_length=1, max_length=settings.max_lines,
            description="log lines, one per item, in order (line_no = index + 1)",
        )
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"lines": EXAMPLE_LINES, "format": "auto"}]},
        )

    return ScoreRequest


def feedback_request_model(settings: ApiSettings) -> type[BaseModel]:
    """The ``/v1/feedback`` body: the log's lines (as ``/v1/score`` takes them) and the ids of
    the sessions in it to mark as normal."""
    line = Annotated[str, StringConstraints(max_length=settings.max_line_length)]
    session_id = Annotated[str, StringConstraints(min_length=1, max_length=1000)]

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        lines: list[line] = Field(
            min_length=1, max_length=settings.max_lines,
            description="the log lines the sessions are in, as sent to /v1/score")
        normal: list[session_id] = Field(
            min_length=1, max_length=1000,
            description="ids of the sessions to mark as normal (false alarms)")
        match: Literal["sequence", "set"] = Field(
            "sequence", description="sessions like a marked one: the same sequence of "
                                    "normalised lines, or the same set of them")
        format: str = Field("auto", min_length=1, max_length=2000, description=FORMAT_HELP)
        sessions: SessionOptions | None = Field(None, description="default: the model's rule")

    return FeedbackRequest


class FeedbackEntryBody(BaseModel):
    id: str
    created: str
    session_id: str
    source: str
    match: str
    lines: list[str] = Field(description="the normalised lines the entry matches")


class FeedbackResponse(BaseModel):
    marked: dict[str, str] = Field(description="per session id given: its feedback entry's id")
    entries: list[FeedbackEntryBody] = Field(description="every entry the model now has")



class LineResult(BaseModel):
    line_no: int
    session_id: str = Field(description="the line's session(s), ';'-joined when several")
    score: float | None = Field(description="surprisal of the line in its session (nats)")
    is_anomaly: bool = Field(description="score >= the model's line threshold")
    severity: str = Field(description="grade of the line's session: normal, elevated, high or "
                                      "critical")
    session_score: float | None
    session_is_anomaly: bool
    parse_ok: bool = Field(description="false when the line did not fit the format (still scored)")
    suppressed_by: str = Field(description="the feedback entry that suppressed the line's "
                                           "highest-scoring session; '' when none")


class TopLine(BaseModel):
    line_no: int
    message: str
    score: float = Field(description="the line's score in the session (ranks the top lines)")
    surprisal: float = Field(description="-log p(line | the lines before it), in nats")
    probability: float = Field(description="p(line | the lines before it)")
    expected: str = Field(description="the line the model found most likely there")
    expected_probability: float
    unexpected_words: list[str]


class SessionResult(BaseModel):
    session_id: str
    n_lines: int
    first_line_no: int
    score: float | None
    is_anomaly: bool
    severity: str = Field(description="the session's grade (kept under its first name)")
    grade: str = Field(description="argmax of the grade probabilities: normal, elevated, high "
                                   "(flagged) or critical (flagged, far above the threshold)")
    p_normal: float
    p_elevated: float
    p_high: float
    p_critical: float
    top_line_no: int = Field(description="the session's top line (highest line score)")
    suppressed_by: str = Field(description="the feedback entry (POST /v1/feedback) that keeps "
                                           "this session from being flagged; '' when none")
    top_lines: list[TopLine] | None = Field(
        description="highest line score first; null unless the session is among the "
                    "explained_sessions highest-scoring anomalous ones"
    )


SESSION_COLUMNS = [name for name in SessionResult.model_fields if name != "top_lines"]
LINE_COLUMNS = list(LineResult.model_fields)


class ScoreSummary(BaseModel):
    lines: int
    sessions: int
    anomalous_sessions: int
    anomalous_lines: int
    unparsed_lines: int
    suppressed_sessions: int = Field(description="sessions that feedback keeps unflagged")


class ScoreResponse(BaseModel):
    source: str
    threshold: float = Field(description="the session threshold used")
    line_threshold: float
    format: str = Field(description="the name of the format used (e.g. 'linux'), as --format "
                                    "and the request's format take it")
    format_detail: str = Field(description="how the format was chosen, e.g. "
                                           "'linux: 100.0% of 3 sampled lines'")
    sessions_by: str = Field(description="how lines were grouped into sessions. Session ids "
                                         "are scoped to one request: windows and lines without "
                                         "an id are named by the request's line numbers (from 1)")
    summary: ScoreSummary
    explained_sessions: int = Field(description="how many sessions carry top_lines")
    warnings: list[str] = Field(
        description="read these before the scores: e.g. the model does not fit this log (another "
                    "format, most lines unknown to it) or invalid UTF-8 was replaced; empty when "
                    f"all is well. CSV responses carry them in the {WARNINGS_HEADER} header")
    sessions: list[SessionResult]
    lines: list[LineResult] = Field(description="one per input line, in order")


class HealthResponse(BaseModel):
    status: Literal["ok"]
    model_loaded: bool
    version: str
    scoring: int = Field(description="requests being scored now")
    waiting: int = Field(description="requests waiting for a scoring slot")


class ModelResponse(BaseModel):
    version: str
    threshold: float | None
    line_threshold: float | None
    format: str
    vocab_size: int
    line_classes: int
    parameters: int
    model: dict[str, Any]
    runtime: Literal["torch", "onnx", "onnx-int8"] = Field(
        description="what scores: torch, the ONNX graph, or its int8-quantized copy (--int8)")
    training_summary: dict[str, Any]
    limits: dict[str, int] = Field(description="this server's request limits")
    max_concurrency: int = Field(description="requests scored at the same time")
    torch_threads: int = Field(description="torch threads used by scoring")



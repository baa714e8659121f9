"""The one path every front end takes: read -> resolve the format -> parse -> sessions -> score.

Why one object: the CLI, the API, the dashboard and the benchmarks each redid these steps, with
small differences that changed results (the dashboard did not prefer the trained format; the API
defaulted time windows to 60 s where every other front end meant "the format's default"). Here
each step has one rule, and a front end adds only its own I/O:

- **format**: ``'auto'`` takes the trained model's own format when it parses every sampled line,
  else the best-ranked one (``log_parser.parse_log(prefer=...)``); a named format or template is
  used as given; a log that a named format parses not at all is an error;
- **sessions**: ``None`` means the model's own session rule (what it was trained with), and in a
  ``SessionConfig`` zeros mean the format's default;
- **warnings**: what reading had to repair and whether the model fits the log
  (``fit_check.score_warnings``), for the front end to show next to the scores;
- **score**: ``TinyLogBERTDetector.score`` on the parsed log (embeddings only when asked).

The steps are also callable one by one, because the CLI parses while the model still loads
(``parse`` needs only the trained format, which ``checkpoint.trained_format`` reads without torch).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tinylogbert.io.log_formats import LogFormat
from tinylogbert.io.log_parser import ParsedLog
from tinylogbert.io.log_reader import LogLines
from tinylogbert.io.sources import Source, parse, read
from tinylogbert.sessions.grouping import SessionConfig

if TYPE_CHECKING:
    from tinylogbert.scoring.detector import TinyLogBERTDetector
    from tinylogbert.scoring.results import ScoreResult

@dataclass(frozen=True)
class ScoreOptions:
    """What a user may choose; the defaults are the model's own choices."""

    log_format: str | LogFormat = "auto"  # 'auto', a format name, a template or a regex
    sessions: SessionConfig | None = None  # None: the model's own session rule
    threshold: float | None = None  # None: the model's threshold
    embeddings: bool = False  # the [CLS] pass (dashboard projections), twice the work


@dataclass
class PipelineResult:
    """A scored log and what a front end must show with it."""

    result: ScoreResult
    parsed: ParsedLog
    lines: LogLines
    warnings: list[str] = field(default_factory=list)


def score_parsed(
    detector: TinyLogBERTDetector, parsed: ParsedLog, lines: LogLines | None = None,
    options: ScoreOptions = ScoreOptions(),
    on_progress: Callable[[float], None] | None = None,
) -> PipelineResult:
    """Sessions and scores for an already parsed log, with the warnings to show."""
    from tinylogbert.scoring.fit_check import drift_warnings, score_warnings

    warnings = score_warnings(detector, parsed, lines)
    result = detector.score(parsed, threshold=options.threshold, sessions=options.sessions,
                            on_progress=on_progress, embeddings=options.embeddings)
    if not any(w.startswith("the model does not fit") for w in warnings):
        warnings += drift_warnings(detector, parsed, result)
    return PipelineResult(result=result, parsed=parsed, lines=lines, warnings=warnings)


def run(
    detector: TinyLogBERTDetector, source: Source, options: ScoreOptions = ScoreOptions(),
    name: str = "<input>", max_bytes: int | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> PipelineResult:
    """Read, parse and score ``source`` with ``detector``: the whole pipeline."""
    lines = read(source, name, max_bytes)
    parsed = parse(lines, options.log_format, getattr(detector, "format_", None))
    return score_parsed(detector, parsed, lines, options, on_progress)

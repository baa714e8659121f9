"""Turn uploaded bytes into a ``Workspace``: read, parse (reporting what did not parse), score.

Kept free of Streamlit: progress goes through a callback, errors are ``TinyLogBERTError``s that
the page shows as one line.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from tinylogbert import pipeline
from tinylogbert.io.log_parser import FormatGuess, detect_format
from tinylogbert.io.log_reader import LogLines, read_log_bytes
from tinylogbert.reports.templates_table import ModelLines, distinct_lines
from tinylogbert.scoring.detector import TinyLogBERTDetector
from tinylogbert.scoring.fit_check import input_warnings

# Uploads are capped at 200 MB by Streamlit; once decompressed a log may be this large, no more
# (a small .gz bomb must not exhaust the dashboard's memory).
MAX_LOG_BYTES = 2**30

from .score_settings import ScoreSettings
from .workspace import UNPARSED_EXAMPLES, ParseReport, Workspace


@dataclass(frozen=True)
class LogUpload:
    """An uploaded log, read into lines once and identified by its content."""

    name: str
    lines: LogLines
    digest: str
    n_bytes: int
    path: str | None = None  # where the file is on this machine, when it is (the sample)

    @classmethod
    def from_bytes(cls, data: bytes, name: str, path: str | None = None) -> LogUpload:
        # LogInputError for empty / binary / corrupt input, LogTooLargeError over MAX_LOG_BYTES
        lines = read_log_bytes(data, source=name, max_bytes=MAX_LOG_BYTES)
        return cls(name, lines, hashlib.blake2b(data, digest_size=16).hexdigest(), len(data),
                   path)

    def detect(self) -> FormatGuess:
        return detect_format(self.lines)


def input_key(upload: LogUpload, settings: ScoreSettings, model_path: str, stamp: float) -> str:
    """Equal keys mean scoring again would give the same result."""
    return repr((upload.digest, settings, str(model_path), stamp))


def score_upload(
    detector: TinyLogBERTDetector,
    upload: LogUpload,
    settings: ScoreSettings,
    model_path: str,
    key: str,
    on_stage: Callable[[str], None] = lambda stage: None,
    on_progress: Callable[[float], None] | None = None,
) -> Workspace:
    """Parse and score ``upload``; lines that do not parse are kept, counted and scored."""
    on_stage("parsing")
    # The same format rule as the CLI and the API: the trained format first under 'auto'.
    parsed = pipeline.parse(upload.lines, settings.log_format, getattr(detector, "format_", None))
    on_stage("scoring")
    options = pipeline.ScoreOptions(settings.log_format, settings.sessions, embeddings=True)
    scored = pipeline.score_parsed(detector, parsed, upload.lines, options, on_progress)
    result = scored.result
    # The pipeline's own warnings (fit, drift), less the input repairs the page shows apart.
    misfit = tuple(w for w in scored.warnings if w not in input_warnings(upload.lines))
    report = ParseReport(
        n_lines=len(parsed),
        n_unparsed=parsed.n_unparsed,
        examples=parsed.unparsed_examples(UNPARSED_EXAMPLES),
        format_description=result.format_description,
        session_strategy=result.session_strategy,
        replaced_bytes=upload.lines.replaced_bytes,
        invalid_lines=upload.lines.invalid_lines,
        fit_warnings=misfit,
    )
    return Workspace(
        source=upload.name,
        scored=result,
        report=report,
        settings=settings,
        model_path=str(model_path),
        input_digest=upload.digest,
        input_key=key,
        model_threshold=float(result.threshold),
        source_path=upload.path,
        time_format=parsed.format.time_format,
        raw_lines=upload.lines.lines,
        model_lines=ModelLines.from_detector(detector, distinct_lines(result)[0]),
    )

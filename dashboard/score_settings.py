"""The Upload page's scoring settings: log format and session strategy, as one comparable value.

Equal settings mean an equal result, so they are part of the key that decides whether to score
again. They convert to and from the form's fields and to the equivalent ``tinylogbert score``
options, which the Download page shows.
"""
from __future__ import annotations

from dataclasses import dataclass

from tinylogbert.errors import FormatError
from tinylogbert.io.log_formats import get_format
from tinylogbert.sessions.grouping import SessionConfig

CUSTOM_FORMAT = "custom"
MODEL_SESSIONS = "model default"


@dataclass(frozen=True)
class ScoreSettings:
    """What the user chose on the Upload page; equal settings mean an equal result."""

    log_format: str = "auto"  # 'auto', a registered name, a <Field> template or a regex
    sessions: SessionConfig | None = None  # None: the model's own session settings

    @classmethod
    def from_fields(cls, fields: dict) -> ScoreSettings:
        """From the Upload form's fields (see ``to_fields``); ``FormatError`` if inconsistent."""
        log_format = fields.get("format_choice", "auto")
        if log_format == CUSTOM_FORMAT:
            log_format = (fields.get("format_custom") or "").strip()
            if not log_format:
                raise FormatError("type a custom format (template or regex), or pick a format")
            get_format(log_format)  # fail now, with the format's own message
        by = fields.get("sessions_by", MODEL_SESSIONS)
        if by == MODEL_SESSIONS:
            return cls(log_format=log_format)
        default = SessionConfig()
        sessions = SessionConfig(
            by=by, id_pattern=(fields.get("session_id") or "").strip() or None,
            window_size=int(fields.get("window_size") or default.window_size),
            window_step=int(fields.get("window_step") or default.window_step),
            time_window=float(fields.get("time_window") or default.time_window),
            time_step=float(fields.get("time_step") or default.time_step),
        )
        return cls(log_format=log_format, sessions=sessions)

    def to_fields(self, format_names: list[str]) -> dict:
        """The form fields that show these settings (the inverse of ``from_fields``)."""
        custom = self.log_format not in format_names
        s = self.sessions or SessionConfig()
        return {
            "format_choice": CUSTOM_FORMAT if custom else self.log_format,
            "format_custom": self.log_format if custom else "",
            "sessions_by": MODEL_SESSIONS if self.sessions is None else s.by,
            "session_id": s.id_pattern or "",
            "window_size": s.window_size,
            "window_step": s.window_step,
            "time_window": s.time_window,
            "time_step": s.time_step,
        }

    def cli_options(self) -> list[str]:
        """The ``tinylogbert score`` options that reproduce these settings."""
        options = [] if self.log_format == "auto" else ["--format", self.log_format]
        s = self.sessions
        if s is None:
            return options
        options += ["--sessions", s.by]
        if s.id_pattern:
            options += ["--session-id", s.id_pattern]
        if s.by == "window" and s.window_size:
            options += ["--window", str(s.window_size)]
            if s.window_step:
                options += ["--step", str(s.window_step)]
        if s.by == "time" and s.time_window:
            options += ["--time-window", f"{s.time_window:g}"]
            if s.time_step:
                options += ["--time-step", f"{s.time_step:g}"]
        return options

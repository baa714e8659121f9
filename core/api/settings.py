"""Settings of the REST API: limits, concurrency and the optional API key.

One table (the dataclass fields and their metadata) drives the defaults, the ``TINYLOGBERT_*``
environment variables and the ``tinylogbert serve`` flags, so the three can never disagree. The
limits are what keeps one request from exhausting a small machine; error messages name them by
their setting and environment variable so a client knows what to change or ask for.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from tinylogbert.errors import TinyLogBERTError
from tinylogbert.model.checkpoint import DEFAULT_MODEL_DIR  # the CLI's ``--model`` default too

API_KEY_ENV = "TINYLOGBERT_API_KEY"
MiB = 2**20


def _doc(env: str, help: str) -> dict[str, str]:
    return {"env": env, "help": help}


@dataclass(frozen=True)
class ApiSettings:
    """What one server process is allowed to do. Integers must be positive (threads: >= 0)."""

    model_dir: Path = field(
        default=DEFAULT_MODEL_DIR, metadata=_doc("TINYLOGBERT_MODEL", "checkpoint folder")
    )
    max_body_bytes: int = field(
        default=32 * MiB,
        metadata=_doc("TINYLOGBERT_MAX_BODY_BYTES", "largest request body, in bytes"),
    )
    max_log_bytes: int = field(default=256 * MiB, metadata=_doc(
        "TINYLOGBERT_MAX_LOG_BYTES",
        "largest uploaded log once decompressed, in bytes (guards against gzip bombs)",
    ))
    max_lines: int = field(
        default=200_000, metadata=_doc("TINYLOGBERT_MAX_LINES", "most lines in one request")
    )
    max_line_length: int = field(
        default=16_384,
        metadata=_doc("TINYLOGBERT_MAX_LINE_LENGTH", "longest line, in characters"),
    )
    max_concurrency: int = field(default=2, metadata=_doc(
        "TINYLOGBERT_MAX_CONCURRENCY", "requests scored at the same time; others wait their turn",
    ))
    max_explained_sessions: int = field(default=50, metadata=_doc(
        "TINYLOGBERT_MAX_EXPLAINED_SESSIONS",
        "per response, the highest-scoring anomalous sessions that get their top lines explained",
    ))
    torch_threads: int = field(default=0, metadata=_doc(
        "TINYLOGBERT_TORCH_THREADS",
        "torch threads (0: the CPU cores shared out among the max_concurrency scoring slots)",
    ))
    int8: bool = field(default=False, metadata=_doc(
        "TINYLOGBERT_INT8",
        "score with the ONNX graph's weights quantized to int8 at start (a cold request about "
        "1.5x faster; scores within ~0.2 of the float graph's, and not bit-identical across "
        "batches)",
    ))
    # Never a flag: command lines are visible to every user of the machine (ps, shell history).
    api_key: str | None = field(default=None, repr=False, metadata={"env": API_KEY_ENV})

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise TinyLogBERTError(f"setting {f.name} ({f.metadata['env']}) must be true or "
                                       f"false, got {value!r}")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)
                                    or value < (0 if f.name == "torch_threads" else 1)):
                raise TinyLogBERTError(
                    f"setting {f.name} ({f.metadata['env']}) must be a "
                    f"{'non-negative' if f.name == 'torch_threads' else 'positive'} integer, "
                    f"got {value!r}"
                )
        object.__setattr__(self, "model_dir", Path(self.model_dir))
        if self.api_key is not None and not self.api_key.strip():
            object.__setattr__(self, "api_key", None)  # an empty variable means "no key"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        """Defaults, overridden by any ``TINYLOGBERT_*`` variable that is set."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in fields(cls):
            raw = environ.get(f.metadata["env"])
            if raw is None:
                continue
            values[f.name] = _convert(f.name, f.type, raw, f.metadata["env"])
        return cls(**values)

    def with_overrides(self, **overrides) -> ApiSettings:
        """A copy with the given values; ``None`` means "not given" (keeps the current value)."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def scoring_threads(self) -> int:
        """Torch threads per scoring slot. Splitting the cores between slots rather than giving
        each slot all of them avoids oversubscription, which on 2 cores made 1,000-line requests
        several times slower in the load test."""
        if self.torch_threads:
            return self.torch_threads
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cores or 1) // self.max_concurrency)

    def limits(self) -> dict[str, int]:
        """The request limits, as published by ``GET /v1/model`` and named in 413/422 errors."""
        return {name: getattr(self, name) for name in LIMIT_SETTINGS}


LIMIT_SETTINGS = ("max_body_bytes", "max_log_bytes", "max_lines", "max_line_length")


def env_name(setting: str) -> str:
    """The environment variable that sets ``setting`` (for error messages and help texts)."""
    return next(f.metadata["env"] for f in fields(ApiSettings) if f.name == setting)


def cli_settings() -> list[tuple[str, str, str, str]]:
    """(name, env var, help, type name) of every setting that ``tinylogbert serve`` exposes as a
    flag."""
    return [
        (f.name, f.metadata["env"], f.metadata["help"], f.type)
        for f in fields(ApiSettings)
        if f.name not in ("model_dir", "api_key")
    ]


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def _convert(name: str, type_name: str, raw: str, env: str):
    if type_name == "int":
        try:
            return int(raw)
        except ValueError:
            raise TinyLogBERTError(f"{env} must be an integer, got {raw!r}") from None
    if type_name == "bool":
        word = raw.strip().lower()
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise TinyLogBERTError(f"{env} must be one of {', '.join(TRUE_WORDS + FALSE_WORDS[:-1])}, "
                               f"got {raw!r}")
    return raw

"""User-given regexes run with RE2 semantics: linear time, so no pattern can stall a worker.

Why: Python's ``re`` backtracks. ``^(?P<Content>(a+)+)$`` on 50 lines of ``aaaa…a!`` takes 2^n
steps while holding the GIL, which froze the whole API (``/v1/health`` and SIGTERM included).
Arrow's kernels already use RE2; this module is the Python-side engine (``google-re2``) for what
those kernels do not take (unnamed groups, every match of a line), and the one check that rejects,
with a reason, a pattern RE2 cannot run (look-arounds, backreferences): a ``FormatError``, which
the CLI prints as ``error: ...`` and the API answers with 422.
"""
from __future__ import annotations

import functools
import re

import re2
from tinylogbert.errors import FormatError

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 would print each rejected pattern to stderr

LINEAR_ONLY = ("patterns run with RE2 semantics (linear time): look-arounds such as (?=...) or "
               "(?<!...), backreferences such as \\1 and possessive or atomic groups are not "
               "supported")


@functools.lru_cache(maxsize=512)
def compile_linear(pattern: str, what: str = "regex") -> re2._Regexp:
    """``pattern`` compiled by RE2 (``re``-like API: match, search, finditer, groupindex).

    Raises ``FormatError`` naming ``what`` and why: invalid syntax, or valid for Python's
    engine but not runnable in linear time."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        reason = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    try:
        re.compile(pattern)  # compiling never backtracks; only tells the two cases apart
    except re.error as exc:
        raise FormatError(f"invalid {what} ({exc})") from None
    except RecursionError:
        raise FormatError(f"invalid {what} (nested too deeply)") from None
    raise FormatError(f"the {what} cannot run in linear time ({reason}); {LINEAR_ONLY}") from None

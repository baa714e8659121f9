"""Feedback on false alarms: sessions a user marked as normal, stored with the model.

A checkpoint folder may hold ``feedback.json`` (covered by ``checkpoint.sha256.json`` like every
other file). Each entry says what it matches, in words the model does not own, so it survives
retraining and a new line vocabulary:

- ``match: "sequence"`` (the default): a session whose sequence of normalised lines (the words
  the model reads, in order: the session's distinct-sequence key) equals ``lines``;
- ``match: "set"``: a session whose *set* of normalised lines equals ``lines``.

Windows (sessions by line count or by time) are positions, not things: one line prepended to a
log moves every window's content by one line, and no window holds the marked lines any more. So
for windowed sessions a ``sequence`` entry also matches a window that shares with it a contiguous
run, in order, of at least ``SHIFT_SHARE`` (3/4) of the longer of the two: the marked window
shifted by up to a quarter of its length. Id sessions (HDFS ``blk_``) match exactly, as before;
``set`` entries match exactly everywhere (a shift that moves a kind of line into or out of a
window changes its set).

Every scoring path ends in ``TinyLogBERTDetector._result``, which calls ``apply`` once: a
session an entry matches gets that entry's id in ``suppressed_by`` (empty otherwise) and is not
flagged, whatever its score (``is_anomaly`` false, ``severity``/``grade`` ``normal``; ``score``
and the ``p_*`` columns stay the model's own). Lines follow: ``session_is_anomaly`` is true only
for a line in a flagged session that is not suppressed. ``ScoreResult.with_threshold`` keeps it so.

Example ``feedback.json``::

    {"format": 1, "entries": [{"id": "fb-0001", "created": "2024-05-01T10:00:00Z",
      "session_id": "blk_-1608999687919862906", "source": "HDFS_heldout.log.gz",
      "match": "sequence", "lines": ["Receiving block blk_<*> src <*> dest <*>", ...]}]}
"""
from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from tinylogbert.errors import CheckpointError, TinyLogBERTError
from tinylogbert.model.checkpoint import FEEDBACK_FILE
from tinylogbert.scoring.results import judge_suppressed, put_column

if TYPE_CHECKING:
    from tinylogbert.scoring.results import ScoreResult
    from tinylogbert.sessions.grouping import SessionIndex

FEEDBACK_FORMAT = 1
MATCHES = ("sequence", "set")
# A windowed session matches a sequence entry when they share a contiguous run of at least this
# share of the longer one's lines (a window of 20: a shift of up to 5 lines).
SHIFT_SHARE = 0.75
# ``SessionIndex.strategy`` of windows (by count or by time), as grouping, streaming and watch
# name them; id sessions start with "id ".
WINDOW_STRATEGIES = ("windows of ", "time windows of ")
_WRITE_LOCK = threading.Lock()  # one writer per process (the API's worker threads)
# Across processes (the CLI, the dashboard and a running API on one folder): a lock file beside
# the system's temp files, keyed by the folder, so the checkpoint folder holds only its files.
LOCK_TIMEOUT_S = 30.0


class FeedbackError(TinyLogBERTError):
    """Feedback that cannot be recorded or removed (an unknown session or entry id)."""


@dataclass(frozen=True)
class FeedbackEntry:
    id: str
    created: str  # UTC, ISO 8601
    session_id: str  # the session that was marked
    source: str  # the log it came from
    match: str  # 'sequence' or 'set'
    lines: tuple[str, ...]  # the session's normalised lines (in order for 'sequence')

    def key(self) -> tuple:
        return (self.match, self.lines if self.match == "sequence" else frozenset(self.lines))

    def to_dict(self) -> dict:
        return {**asdict(self), "lines": list(self.lines)}


@dataclass(frozen=True)
class Feedback:
    """The entries of one model folder (immutable: a change makes a new object)."""

    entries: tuple[FeedbackEntry, ...] = ()

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> FeedbackEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def to_json(self) -> str:
        return json.dumps({"format": FEEDBACK_FORMAT,
                           "entries": [e.to_dict() for e in self.entries]}, indent=2) + "\n"

    # ---- matching -------------------------------------------------------------------------
    def match(self, words: pa.Array | pa.ChunkedArray, index: SessionIndex,
              windowed: bool | None = None) -> np.ndarray:
        """Per session of ``index`` (over lines whose normalised texts are ``words``): the id of
        the first entry matching it, or ''. Exact matches first; then, for windows (``windowed``,
        by default from ``index.strategy``), sequence entries shifted (``shift_matches``)."""
        out = np.full(len(index), "", dtype=object)
        if not self.entries or not len(index):
            return out
        sequence = {}
        by_set = {}
        for entry in self.entries:
            table = sequence if entry.match == "sequence" else by_set
            table.setdefault(entry.key()[1], entry.id)
        if isinstance(words, pa.ChunkedArray):
            words = words.combine_chunks()
        encoded = words.dictionary_encode() if not pa.types.is_dictionary(words.type) else words
        texts = [t or "" for t in encoded.dictionary.to_pylist()]
        # One code per text (a null and '' are both ''), so equal lines have equal codes.
        code_of: dict[str, int] = {}
        canonical = np.array([code_of.setdefault(t, i) for i, t in enumerate(texts)] or [0],
                             dtype=np.int64)
        codes = canonical[encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
                          [index.members]]
        lengths = {len(k) for k in sequence}
        offsets = index.offsets
        for s in range(len(index)):
            a, b = int(offsets[s]), int(offsets[s + 1])
            found = ""
            if sequence and (b - a) in lengths:
                found = sequence.get(tuple(texts[c] for c in codes[a:b]), "")
            if not found and by_set:
                found = by_set.get(frozenset(texts[c] for c in set(codes[a:b].tolist())), "")
            out[s] = found
        if windowed is None:
            windowed = is_windowed(index)
        if windowed and sequence and (out == "").any():
            for entry in self.entries:
                if entry.match != "sequence" or not entry.lines:
                    continue
                marked = np.array([code_of.get(t, -1) for t in entry.lines], dtype=np.int64)
                hit = shift_matches(marked, codes, np.asarray(offsets)) & (out == "")
                out[hit] = entry.id
        return out

    # ---- changes ----------------------------------------------------------------------------
    def with_sessions(
        self, words: pa.Array | pa.ChunkedArray, index: SessionIndex, session_ids: list[str],
        source: str, match: str = "sequence",
    ) -> tuple[Feedback, list[FeedbackEntry]]:
        """New entries for ``session_ids`` (sessions of ``index``); a session that an entry
        with the same key already covers reuses it (a window: also a sequence entry it matches
        shifted). Returns (feedback, entry per session id)."""
        if match not in MATCHES:
            raise FeedbackError(f"match must be one of {', '.join(MATCHES)}, not {match!r}")
        ids = index.ids.astype(str)
        position = {sid: i for i, sid in reversed(list(enumerate(ids)))}
        unknown = [sid for sid in session_ids if sid not in position]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else "")
            raise FeedbackError(f"no session {shown} in {source} ({len(ids):,} sessions)")
        covered = np.full(len(ids), "", dtype=object)
        if match == "sequence" and is_windowed(index):
            covered = Feedback(tuple(e for e in self.entries if e.match == "sequence")).match(
                words, index)
        word_list = words.to_pylist()
        entries = list(self.entries)
        by_key = {e.key(): e for e in entries}
        number = max((_number(e.id) for e in entries), default=0)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        chosen = []
        for sid in session_ids:
            i = position[sid]
            lines = [word_list[m] or "" for m in index.members[index.offsets[i]:index.offsets[i + 1]]]
            if match == "set":
                lines = sorted(set(lines))
            entry = FeedbackEntry("", now, sid, source, match, tuple(lines))
            existing = by_key.get(entry.key()) or (self.get(covered[i]) if covered[i] else None)
            if existing is None:
                number += 1
                existing = FeedbackEntry(f"fb-{number:04d}", now, sid, source, match, tuple(lines))
                entries.append(existing)
                by_key[existing.key()] = existing
            chosen.append(existing)
        return Feedback(tuple(entries)), chosen

    def without(self, entry_id: str) -> Feedback:
        if self.get(entry_id) is None:
            known = ", ".join(e.id for e in self.entries) or "none"
            raise FeedbackError(f"no feedback entry {entry_id!r} (entries: {known})")
        return Feedback(tuple(e for e in self.entries if e.id != entry_id))


def is_windowed(index: SessionIndex) -> bool:
    """Whether ``index``'s sessions are windows (by line count or time), whose ids are
    positions: feedback then matches them by content, shifted (``shift_matches``)."""
    return index.strategy.startswith(WINDOW_STRATEGIES)


def shift_matches(marked: np.ndarray, codes: np.ndarray, offsets: np.ndarray,
                  share: float = SHIFT_SHARE) -> np.ndarray:
    """Per session (``codes[offsets[s]:offsets[s + 1]]``, line codes): whether it shares with
    ``marked`` (the entry's line codes, -1 for a line this log lacks) a contiguous run, in
    order, of at least ``ceil(share * max(len(marked), len(session)))`` lines.

    Why it is fast: such a run, of at least ``t = ceil(share * m)`` of the ``m`` marked lines,
    starts at most ``m - t`` lines in and so holds the mark's core ``marked[m - t:t]``. The core's
    occurrences are found with a few vectorised comparisons over all sessions at once; each is
    then extended along its diagonal (as many steps as the run may start before or end after
    the core), which finds every qualifying run."""
    n_sessions = len(offsets) - 1
    hit = np.zeros(n_sessions, dtype=bool)
    m = len(marked)
    t = math.ceil(share * m - 1e-9)
    q = m - t  # the most lines a run may start after the mark's start (and end before its end)
    core = marked[q:t]
    c = len(core)
    if m == 0 or c == 0 or (core < 0).any() or len(codes) < c:
        return hit
    session = np.repeat(np.arange(n_sessions), np.diff(offsets))
    at = np.flatnonzero(codes[: len(codes) - c + 1] == core[0])
    for k in range(1, c):
        at = at[codes[at + k] == core[k]]
    if not len(at):
        return hit
    s = session[at]
    start, end = offsets[s], offsets[s + 1]
    at, s, start, end = (v[at + c <= end] for v in (at, s, start, end))
    run = np.full(len(at), c, dtype=np.int64)
    before = np.ones(len(at), dtype=bool)
    after = np.ones(len(at), dtype=bool)
    for k in range(1, q + 1):  # extend to the left, then to the right, along the diagonal
        before &= at - k >= start
        before[before] = codes[at[before] - k] == marked[q - k]
        after &= at + c - 1 + k < end
        after[after] = codes[at[after] + c - 1 + k] == marked[t - 1 + k]
        run += before.astype(np.int64) + after
    need = np.ceil(share * np.maximum(m, end - start) - 1e-9).astype(np.int64)
    hit[s[run >= need]] = True
    return hit


def _number(entry_id: str) -> int:
    digits = entry_id.removeprefix("fb-")
    return int(digits) if digits.isdigit() else 0


# ---- the file -------------------------------------------------------------------------------------
def parse_feedback(text: str, where: str = FEEDBACK_FILE) -> Feedback:
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("entries"), list):
            raise TypeError("expected an object with a list 'entries'")
        entries = []
        for raw in data["entries"]:
            entry = FeedbackEntry(
                id=str(raw["id"]), created=str(raw.get("created", "")),
                session_id=str(raw.get("session_id", "")), source=str(raw.get("source", "")),
                match=str(raw.get("match", "sequence")),
                lines=tuple(str(t) for t in raw["lines"]),
            )
            if entry.match not in MATCHES:
                raise ValueError(f"entry {entry.id}: unknown match {entry.match!r}")
            entries.append(entry)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{where}: not valid feedback ({' '.join(str(exc).split())})") from None
    return Feedback(tuple(entries))


def read_feedback(folder: str | Path) -> Feedback:
    """The folder's feedback (empty without ``feedback.json``). Not verified here: ``load`` and
    ``record`` check the manifest first."""
    path = Path(folder) / FEEDBACK_FILE
    if not path.exists():
        return Feedback()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc})") from None
    return parse_feedback(text, str(path))


def write_feedback(folder: str | Path, feedback: Feedback) -> Path:
    """Write ``feedback.json`` and its line in the manifest. The folder is verified first, so
    updating the manifest never blesses a file changed behind its back."""
    from tinylogbert.io.atomic_output import atomic_file
    from tinylogbert.model.checkpoint import (
        MANIFEST_FILE,
        check_folder,
        fsync_file,
        manifest_update,
        manifest_with,
    )

    folder = check_folder(folder)
    path = folder / FEEDBACK_FILE
    if not (folder / MANIFEST_FILE).exists():  # an older folder: no manifest to keep in step
        with atomic_file(path, durable=True) as partial:
            partial.write_text(feedback.to_json(), encoding="utf-8")
        return path
    # feedback.json and its manifest line change together (``manifest_update``): temporary
    # files, fsynced, renamed feedback first and the manifest last.
    with manifest_update(folder) as manifest, atomic_file(path, durable=True) as partial:
        partial.write_text(feedback.to_json(), encoding="utf-8")
        manifest.write_text(manifest_with(folder, FEEDBACK_FILE, partial))
        fsync_file(manifest)
    return path


def record(folder: str | Path, change) -> Feedback:
    """Read, change (``change(feedback) -> feedback``) and write a folder's feedback, under a
    process-wide lock."""
    from tinylogbert.model.checkpoint import check_folder

    with _WRITE_LOCK, _folder_lock(folder):
        folder = check_folder(folder)
        updated = change(read_feedback(folder))
        write_feedback(folder, updated)
        return updated


@contextmanager
def _folder_lock(folder: str | Path) -> Iterator[None]:
    """One writer per model folder across processes (``filelock``: an OS lock, released if the
    holder dies), so two marks made at once never lose one of them."""
    import hashlib
    import tempfile

    from filelock import FileLock, Timeout

    key = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
    lock = FileLock(Path(tempfile.gettempdir()) / f"tinylogbert-feedback-{key}.lock")
    try:
        with lock.acquire(timeout=LOCK_TIMEOUT_S):
            yield
    except Timeout:
        raise FeedbackError(f"{folder}: another process has been writing its feedback for "
                            f"{LOCK_TIMEOUT_S:.0f} s; try again") from None


class FeedbackWatch:
    """A folder's feedback as a long-running scorer (the API) should see it: re-read when
    ``feedback.json`` changes on disk, so marks written by another process (the CLI, the
    dashboard) apply from the next request on, without a restart. A changed file is verified
    against the manifest first, like every checkpoint file at load."""

    def __init__(self, folder: str | Path, feedback: Feedback | None) -> None:
        self.folder = Path(folder)
        self.feedback = feedback or Feedback()
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = (self.folder / FEEDBACK_FILE).stat()
        except FileNotFoundError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Feedback:
        """The feedback now on disk (one ``stat`` when nothing changed)."""
        stamp = self._stat()
        if stamp != self._stamp:
            from tinylogbert.model.checkpoint import check_folder

            with _folder_lock(self.folder):  # not half-way through another process's write
                self.feedback = read_feedback(check_folder(self.folder))
                self._stamp = self._stat()
        return self.feedback


# ---- applying it ---------------------------------------------------------------------------------
def apply(result: ScoreResult, feedback: Feedback | None,
          windowed: bool | None = None) -> ScoreResult:
    """``result`` with a ``suppressed_by`` column (see the module docstring) and its flags,
    grades and line verdicts judged with it. ``windowed``: whether its sessions are windows
    (default: from their strategy; Ray scores windows it grouped itself as id sessions)."""
    ids = (feedback or Feedback()).match(result.line_words, result.sessions, windowed)
    table = put_column(result.session_table, "suppressed_by",
                       pa.array(ids.astype(str), type=pa.string()))
    # Per line: the entry that suppressed its highest-scoring session ('' when none did).
    index, lines = result.sessions, result.line_table
    member_session = index.member_session()
    line_ids = np.full(lines.num_rows, "", dtype=object)
    if len(index.members) and (ids != "").any():
        scores = table["score"].to_numpy()[member_session]
        order = np.lexsort((-scores, index.members))
        first = order[np.r_[0, np.flatnonzero(np.diff(index.members[order])) + 1]]
        line_ids[index.members[first]] = ids[member_session[first]]
    lines = put_column(lines, "suppressed_by", pa.array(line_ids.astype(str), type=pa.string()))
    return judge_suppressed(result.replaced(session_table=table, line_table=lines))


# ---- marking sessions of a log --------------------------------------------------------------------
def log_sessions(folder: str | Path, log, log_format="auto", sessions=None, name: str = "<input>"):
    """``(parsed, index)`` of ``log`` as scoring with the model in ``folder`` sees them: its
    trained format first under 'auto' and its own session rule unless ``sessions`` is given.
    Reads ``detector.json`` only (no torch, no weights)."""
    from tinylogbert.io.sources import parse, read
    from tinylogbert.model.checkpoint import (
        DETECTOR_FILE,
        read_json,
        trained_format,
        trained_sessions,
    )
    from tinylogbert.sessions.grouping import build_sessions

    lines = read(log, name)
    parsed = parse(lines, log_format, trained_format(folder))
    if sessions is None:
        sessions = trained_sessions(folder)
    if sessions is None:
        read_json(Path(folder) / DETECTOR_FILE)  # an unreadable file says why
        raise CheckpointError(f"{folder}: detector.json has no valid sessions")
    return parsed, build_sessions(parsed, sessions)


def mark_normal(
    folder: str | Path, log, session_ids: list[str], *, source: str | None = None,
    log_format="auto", sessions=None, match: str = "sequence",
) -> tuple[Feedback, list[FeedbackEntry]]:
    """Record ``session_ids`` of ``log`` as normal in the model folder ``folder``; returns the
    folder's feedback and the entry of each session id (an existing one when it matched already)."""
    if not session_ids:
        raise FeedbackError("give at least one session id to mark as normal")
    name = source or (Path(log).name if isinstance(log, (str, Path)) and "\n" not in str(log)
                      else "<input>")
    parsed, index = log_sessions(folder, log, log_format, sessions, name)
    chosen: list[FeedbackEntry] = []

    def change(feedback: Feedback) -> Feedback:
        updated, entries = feedback.with_sessions(parsed.words, index, list(session_ids), name,
                                                  match)
        chosen.extend(entries)
        return updated

    return record(folder, change), chosen


def remove_entry(folder: str | Path, entry_id: str) -> Feedback:
    return record(folder, lambda feedback: feedback.without(entry_id))

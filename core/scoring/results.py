"""What scoring returns: every line and every session with a score, plus embeddings and reasons.

``ScoreResult`` keeps Arrow tables (fast to write, zero-copy to pandas) and the arrays needed to
explain any session later, so the dashboard can re-threshold and explain without rescoring.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from tinylogbert.errors import LabelError
from tinylogbert.sessions.grouping import SessionIndex

LINE_CSV_COLUMNS = [
    "line_no", "session_id", "timestamp", "level", "component", "message", "score",
    "is_anomaly", "parse_ok",
]
SESSION_CSV_COLUMNS = ["session_id", "n_lines", "first_line_no", "score", "is_anomaly", "top_line_no"]


@dataclass(frozen=True)
class LineReason:
    line_no: int
    message: str
    score: float  # the line's score there (mean of rarity and surprisal, nats): the ranking key
    surprisal: float  # -log p(line | the lines before it), in nats
    probability: float  # p(line | the lines before it)
    expected: str  # the line the model found most likely at that position
    expected_probability: float
    unexpected_words: list[str]  # words of this line absent from the expected line


@dataclass(frozen=True)
class SessionExplanation:
    session_id: str
    score: float
    is_anomaly: bool
    components: dict[str, float]  # the standardised signals the score adds up
    lines: list[LineReason]  # highest line score first
    end_surprisal: float = 0.0  # -log p(the session ends where it does)
    end_expected: str = ""  # what the model expected instead of the end

    def summary(self) -> str:
        if not self.lines:
            return "no lines"
        top = self.lines[0]
        return summary_text(top.line_no, top.surprisal, top.expected, self.end_surprisal,
                            self.end_expected)


def summary_text(line_no: int, surprisal: float, expected: str, end_surprisal: float,
                 end_expected: str) -> str:
    """``SessionExplanation.summary`` from its parts: one sentence on why a session scored as it
    did (also the ``explanation`` column of SESSIONS.csv, built without an explanation each)."""
    if end_surprisal > surprisal and end_expected != "(end of session)":
        return (f"the session stops unexpectedly (p={np.exp(-end_surprisal):.2g}); "
                f"expected next: '{end_expected}'")
    return (f"line {line_no} weighs most (rare, and p={np.exp(-surprisal):.2g} where it "
            f"stands); expected '{expected}'")


def put_column(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """``table`` with column ``name`` set to ``values``: replaced in place, or appended."""
    at = table.schema.get_field_index(name)
    return table.set_column(at, name, values) if at >= 0 else table.append_column(name, values)


@dataclass
class ScoreResult:
    line_table: pa.Table  # LINE_CSV_COLUMNS + session_score, session_is_anomaly, severity
    session_table: pa.Table  # SESSION_CSV_COLUMNS + component columns
    session_embeddings: np.ndarray  # [n_sessions, hidden] float32 ([CLS] vectors)
    threshold: float
    line_threshold: float
    score_scale: float
    format_description: str
    session_strategy: str
    n_unparsed: int
    sessions: SessionIndex = field(repr=False)
    position_surprisal: np.ndarray = field(repr=False)  # per entry of sessions.members
    position_score: np.ndarray = field(repr=False)  # the line's score there (orders the lines)
    position_expected: np.ndarray = field(repr=False)  # expected line text per member entry
    position_expected_prob: np.ndarray = field(repr=False)
    line_words: pa.Array = field(repr=False)
    end_surprisal: np.ndarray = field(repr=False)  # per session: -log p(the session ends here)
    end_expected: np.ndarray = field(repr=False)  # per session: what was expected instead
    session_labels: np.ndarray | None = None  # 0/1, -1 unknown
    line_labels: np.ndarray | None = None
    format_name: str = ""  # the format's name alone ("linux"); format_description says how

    # ---- tables -----------------------------------------------------------------------------
    @cached_property
    def lines(self) -> pd.DataFrame:
        return self.line_table.to_pandas()

    @cached_property
    def session_frame(self) -> pd.DataFrame:
        return self.session_table.to_pandas()

    @property
    def n_lines(self) -> int:
        return self.line_table.num_rows

    @property
    def n_sessions(self) -> int:
        return self.session_table.num_rows

    @property
    def session_scores(self) -> np.ndarray:
        return self.session_table["score"].to_numpy()

    @property
    def line_scores(self) -> np.ndarray:
        return self.line_table["score"].to_numpy()

    @property
    def n_anomalous_sessions(self) -> int:
        return int(pc.sum(self.session_table["is_anomaly"]).as_py() or 0)

    @property
    def n_suppressed_sessions(self) -> int:
        """Sessions that feedback keeps from being flagged (``suppressed_by`` set)."""
        if "suppressed_by" not in self.session_table.column_names:
            return 0
        return int(pc.sum(pc.not_equal(self.session_table["suppressed_by"], "")).as_py() or 0)

    def replaced(self, **changes) -> ScoreResult:
        """``dataclasses.replace`` that also drops the cached pandas frames of the old tables."""
        out = replace(self, **changes)
        out.__dict__.pop("lines", None)
        out.__dict__.pop("session_frame", None)
        return out

    def with_threshold(self, threshold: float) -> ScoreResult:
        """The same scores judged at another session threshold (no rescoring)."""
        from tinylogbert.scoring.anomaly_score import grade_columns

        def judged(table: pa.Table, score: str, flag: str) -> pa.Table:
            values = table[score].to_numpy()
            table = put_column(table, flag, pa.array(values >= threshold))
            grades = grade_columns(values, threshold, self.score_scale)
            table = put_column(table, "severity", pa.array(grades["grade"], type=pa.string()))
            if "grade" in table.column_names:  # the grades follow the threshold too
                for name, column in grades.items():
                    table = put_column(table, name, pa.array(column))
            return table

        sessions = judged(self.session_table, "score", "is_anomaly")
        lines = judged(self.line_table, "session_score", "session_is_anomaly")
        out = self.replaced(line_table=lines, session_table=sessions, threshold=float(threshold))
        return judge_suppressed(out)  # what feedback suppressed stays suppressed

    def with_session_labels(self, labels: pd.Series) -> ScoreResult:
        from tinylogbert.scoring.evaluate import align_labels

        aligned = align_labels(self.sessions.ids, labels)
        table = self.session_table
        if "label" in table.column_names:
            table = table.drop_columns(["label"])
        table = table.append_column("label", pa.array(aligned, type=pa.int8()))
        return self.replaced(session_table=table, session_labels=aligned)

    def with_line_labels(self, labels: pd.Series) -> ScoreResult:
        """Line labels from a ``line_no,label`` CSV."""
        from tinylogbert.scoring.evaluate import align_labels

        line_no = self.line_table["line_no"].to_numpy()
        aligned = align_labels(line_no, labels, what="lines")
        table = self.line_table
        if "label" in table.column_names:
            table = table.drop_columns(["label"])
        table = table.append_column("label", pa.array(aligned, type=pa.int8()))
        return self.replaced(line_table=table, line_labels=aligned)

    # ---- explanations -----------------------------------------------------------------------
    def session_index(self, session_id: str) -> int:
        matches = np.flatnonzero(self.sessions.ids == session_id)
        if not len(matches):
            raise LabelError(f"no session {session_id!r} in this result")
        return int(matches[0])

    def explain(self, session: str | int, k: int = 5) -> SessionExplanation:
        """Why a session scored as it did: the lines that weigh most (highest line score, the
        first being ``top_line_no``), each with its surprisal in context and what the model
        expected there, and how surprising the session's end was."""
        i = self.session_index(session) if isinstance(session, str) else int(session)
        start, end = int(self.sessions.offsets[i]), int(self.sessions.offsets[i + 1])
        members = self.sessions.members[start:end]
        surprisal = self.position_surprisal[start:end]
        # Ranked as ``top_line_no`` is, by the line score; each reports its own surprisal.
        order = np.argsort(-self.position_score[start:end], kind="stable")[:k]
        messages = self.line_table["message"]
        reasons = []
        for j in order:
            line = int(members[j])
            expected = str(self.position_expected[start + j])
            words = (self.line_words[line].as_py() or "").split()
            expected_words = set(expected.split())
            reasons.append(
                LineReason(
                    line_no=int(self.line_table["line_no"][line].as_py()),
                    message=messages[line].as_py() or "",
                    score=float(self.position_score[start + j]),
                    surprisal=float(surprisal[j]),
                    probability=float(np.exp(-surprisal[j])),
                    expected=expected,
                    expected_probability=float(self.position_expected_prob[start + j]),
                    unexpected_words=[w for w in dict.fromkeys(words) if w not in expected_words],
                )
            )
        row = self.session_table.slice(i, 1).to_pylist()[0]
        components = {k: float(v) for k, v in row.items() if k.startswith("z_")}
        return SessionExplanation(
            session_id=str(self.sessions.ids[i]),
            score=float(row["score"]),
            is_anomaly=bool(row["is_anomaly"]),
            components=components,
            lines=reasons,
            end_surprisal=float(self.end_surprisal[i]),
            end_expected=str(self.end_expected[i]),
        )

    def session_lines(self, session: str | int) -> pd.DataFrame:
        """All lines of one session, in order, with their scores."""
        i = self.session_index(session) if isinstance(session, str) else int(session)
        members = self.sessions.lines_of(i)
        frame = self.line_table.take(pa.array(members)).to_pandas()
        start, end = int(self.sessions.offsets[i]), int(self.sessions.offsets[i + 1])
        frame["surprisal_in_session"] = self.position_surprisal[start:end]
        frame["expected"] = self.position_expected[start:end]
        return frame

    def line_embeddings(self) -> np.ndarray:
        """Per line: the [CLS] embedding of its (first) session: a line-level view for plots."""
        first_session = np.zeros(self.n_lines, dtype=np.int64)
        member_session = self.sessions.member_session()
        first_session[self.sessions.members[::-1]] = member_session[::-1]
        return self.session_embeddings[first_session]

    # ---- output -----------------------------------------------------------------------------
    def write_lines_csv(self, path: str | Path) -> None:
        """One row per input line, in order: the CLI's LINES.csv."""
        pacsv.write_csv(self.line_table, str(path))

    def session_overview(self) -> pa.Table:
        """Per session, what a reader needs beside the scores: ``first_time`` and ``last_time``
        (the timestamps of its first and last line, as in the log) and ``explanation``
        (``explain(i).summary()``, built for every session at once)."""
        n = self.n_sessions
        offsets = np.asarray(self.sessions.offsets)
        if n == 0 or not len(self.sessions.members):
            empty = pa.array([""] * n, type=pa.string())
            return pa.table({"first_time": empty, "last_time": empty, "explanation": empty})
        members = np.asarray(self.sessions.members)
        seg = self.sessions.member_session()
        lengths = np.diff(offsets)
        starts = np.minimum(offsets[:-1], len(members) - 1)
        # first / last line of each session (by line), and the position that weighs most, ranked
        # as explain() ranks it: highest line score, the first one on ties
        first_line = np.minimum.reduceat(members, starts)
        last_line = np.maximum.reduceat(members, starts)
        order = np.lexsort((np.arange(len(members)), -self.position_score, seg))
        top = order[starts]
        stamps = self.line_table["timestamp"]
        line_no = self.line_table["line_no"].to_numpy()
        texts = [
            summary_text(int(line_no[members[j]]), float(self.position_surprisal[j]),
                         str(self.position_expected[j]), float(self.end_surprisal[i]),
                         str(self.end_expected[i])) if lengths[i] else "no lines"
            for i, j in enumerate(top.tolist())
        ]
        take = pa.array(np.where(lengths > 0, first_line, 0))
        take_last = pa.array(np.where(lengths > 0, last_line, 0))
        return pa.table({
            "first_time": stamps.take(take).cast(pa.string()),
            "last_time": stamps.take(take_last).cast(pa.string()),
            "explanation": pa.array(texts, type=pa.string()),
        })

    def session_csv_table(self) -> pa.Table:
        """The sessions as the CLI writes them: the head's estimate (a diagnostic that the
        CLI does not compute) stays out, so every front end writes the same file; the
        overview's columns (first/last time, the explanation) come last."""
        drop = [c for c in ("z_head",) if c in self.session_table.column_names]
        table = self.session_table.drop_columns(drop)
        overview = self.session_overview()
        for name in overview.column_names:
            table = put_column(table, name, overview[name])
        return table

    def write_sessions_csv(self, path: str | Path) -> None:
        pacsv.write_csv(self.session_csv_table(), str(path))

    def lines_csv_bytes(self) -> bytes:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(self.line_table, sink)
        return sink.getvalue().to_pybytes()

    def sessions_csv_bytes(self) -> bytes:
        sink = pa.BufferOutputStream()
        pacsv.write_csv(self.session_csv_table(), sink)
        return sink.getvalue().to_pybytes()

    def summary(self) -> dict:
        return {
            "lines": self.n_lines,
            "sessions": self.n_sessions,
            "anomalous_sessions": self.n_anomalous_sessions,
            "anomalous_lines": int(pc.sum(self.line_table["is_anomaly"]).as_py() or 0),
            "suppressed_sessions": self.n_suppressed_sessions,
            "unparsed_lines": self.n_unparsed,
            "threshold": self.threshold,
            "line_threshold": self.line_threshold,
            "format": self.format_description,
            "sessions_by": self.session_strategy,
        }


def judge_suppressed(result: ScoreResult) -> ScoreResult:
    """Make flags, grades and the lines' verdicts agree with ``suppressed_by`` (after ``_result``
    or ``with_threshold`` judged the scores alone)."""
    from tinylogbert.scoring.anomaly_score import severity

    table = result.session_table
    if "suppressed_by" not in table.column_names:
        return result
    suppressed = np.asarray(table["suppressed_by"].to_pylist(), dtype=object) != ""
    if not suppressed.any():
        return result

    flags = table["is_anomaly"].to_numpy(zero_copy_only=False) & ~suppressed
    table = put_column(table, "is_anomaly", pa.array(flags))
    for name in ("severity", "grade"):
        if name in table.column_names:
            values = np.asarray(table[name].to_pylist(), dtype=object)
            values[suppressed] = "normal"
            table = put_column(table, name, pa.array(values.astype(str), type=pa.string()))
    # Lines: flagged when a flagged session holds them; graded by their highest-scoring session
    # that is not suppressed ('normal' when every session holding them is).
    index = result.sessions
    lines = result.line_table
    member_session = index.member_session()
    line_flag = np.zeros(lines.num_rows, dtype=bool)
    np.logical_or.at(line_flag, index.members, flags[member_session])
    kept = ~suppressed[member_session]
    best = np.full(lines.num_rows, -np.inf)
    scores = table["score"].to_numpy()
    np.maximum.at(best, index.members[kept], scores[member_session][kept])
    levels = np.full(lines.num_rows, "normal", dtype=object)
    graded = np.isfinite(best)
    if graded.any():
        levels[graded] = severity(best[graded], result.threshold, result.score_scale)
    lines = put_column(lines, "session_is_anomaly", pa.array(line_flag))
    lines = put_column(lines, "severity", pa.array(levels.astype(str), type=pa.string()))
    return result.replaced(session_table=table, line_table=lines)

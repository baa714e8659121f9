"""Result tables: every line and every session of a scored log as Arrow columns, plus what the
explanations need (per-position surprisal and the line the model expected).

The estimator computes the scores; this module only lays them out, so a new column is added in
one place for every front end (the CSVs, the API's JSON and the dashboard read these tables).
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
from tinylogbert.io.log_parser import ParsedLog
from tinylogbert.model.sequence_scores import SequenceScores
from tinylogbert.model.session_corpus import SessionCorpus
from tinylogbert.scoring.anomaly_score import grade_columns, severity
from tinylogbert.scoring.results import ScoreResult
from tinylogbert.sessions.grouping import SessionIndex


def build_result(
    parsed: ParsedLog, index: SessionIndex, corpus: SessionCorpus, raw: SequenceScores, *,
    session_score: np.ndarray, line_score: np.ndarray, member_score: np.ndarray,
    standardised: dict[str, np.ndarray], threshold: float, line_threshold: float, scale: float,
    line_vocab: list[str], hidden_size: int,
) -> ScoreResult:
    """``ScoreResult`` of one scored log: ``member_score`` is per session member (a line where a
    session holds it), ``standardised`` the session signals as the calibration scales them."""
    member_session = index.member_session()
    # Top line of a session: its highest-scoring member.
    order = np.lexsort((-member_score, member_session))
    top_member = index.members[order[index.offsets[:-1]]] if len(order) else np.array([])
    line_no = parsed.table["line_no"].to_numpy()
    # Per line: the highest score among its sessions, for the session_is_anomaly column.
    line_session_score = np.full(len(parsed), -np.inf)
    np.maximum.at(line_session_score, index.members, session_score[member_session])
    t = parsed.table
    line_table = pa.table(
        {
            "line_no": t["line_no"],
            "session_id": index.line_session,
            "timestamp": t["timestamp"],
            "level": t["level"],
            "component": t["component"],
            "message": t["message"],
            "score": pa.array(line_score),
            "is_anomaly": pa.array(line_score >= line_threshold),
            "parse_ok": t["parse_ok"],
            "session_score": pa.array(line_session_score),
            "session_is_anomaly": pa.array(line_session_score >= threshold),
            "severity": pa.array(
                severity(line_session_score, threshold, scale).astype(str), type=pa.string()
            ),
        }
    )
    if parsed.has_labels:
        line_table = line_table.append_column(
            "label", pa.array(parsed.line_is_anomaly_label(), type=pa.int8())
        )
    session_columns = {
        "session_id": pa.array(index.ids.astype(str)),
        "n_lines": pa.array(index.lengths()),
        "first_line_no": pa.array(line_no[index.members[index.offsets[:-1]]]),
        "score": pa.array(session_score),
        "is_anomaly": pa.array(session_score >= threshold),
        "top_line_no": pa.array(line_no[top_member]),
    }
    grades = grade_columns(session_score, threshold, scale)
    session_columns["severity"] = pa.array(grades["grade"], type=pa.string())  # first name
    for name, values in grades.items():
        session_columns[name] = pa.array(values)
    for name, values in standardised.items():
        session_columns[f"z_{name}"] = pa.array(values.round(4))
    line_labels = parsed.line_is_anomaly_label() if parsed.has_labels else None
    session_labels = None
    if line_labels is not None:  # a session is anomalous when any labelled line is
        known = line_labels[index.members] >= 0
        session_labels = np.full(len(index), -1, dtype=np.int8)
        ms = member_session[known]
        np.maximum.at(session_labels, ms, line_labels[index.members][known])
        session_columns["label"] = pa.array(session_labels, type=pa.int8())
    expected_text = np.array(["(a line not seen in training)", "(end of session)"]
                             + line_vocab, dtype=object)
    last_chunk = np.array([q[-1] for q in corpus.session_seqs], dtype=np.int64)
    detection = parsed.detection.describe() if parsed.detection else parsed.format.name
    return ScoreResult(
        line_table=line_table,
        session_table=pa.table(session_columns),
        session_embeddings=np.stack([raw.embedding[q[0]] for q in corpus.session_seqs])
        if len(corpus.session_seqs) else np.zeros((0, hidden_size)),
        threshold=threshold,
        line_threshold=line_threshold,
        score_scale=scale,
        format_description=detection,
        format_name=parsed.format.name,
        session_strategy=index.strategy,
        n_unparsed=parsed.n_unparsed,
        sessions=index,
        position_surprisal=raw.surprisal[corpus.member_flat],
        position_score=member_score,
        position_expected=expected_text[raw.expected_class[corpus.member_flat]],
        position_expected_prob=raw.expected_prob[corpus.member_flat],
        end_surprisal=raw.end_surprisal[last_chunk] if len(last_chunk) else np.zeros(0),
        end_expected=expected_text[raw.end_expected_class[last_chunk]]
        if len(last_chunk) else np.zeros(0, dtype=object),
        line_words=parsed.words,
        session_labels=session_labels,
        line_labels=line_labels,
    )


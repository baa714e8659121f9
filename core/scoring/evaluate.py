"""Metrics and curve data, computed with scikit-learn, for sessions or lines.

The threshold under test is the model's label-free one unless told otherwise; ``best_f1`` is
reported separately and named as what it is: chosen with the test labels.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from tinylogbert.errors import LabelError, LogInputError
from tinylogbert.io.log_reader import GZIP_MAGIC, gunzip_bounded

# A label file, once decompressed: far more than any label set needs.
MAX_LABEL_BYTES = 256 * 2**20

ANOMALY_WORDS = {"anomaly", "abnormal", "1", "true", "yes", "attack", "malicious"}
NORMAL_WORDS = {"normal", "0", "false", "no", "-", "benign"}


@dataclass
class Evaluation:
    roc_auc: float | None
    pr_auc: float | None
    precision: float
    recall: float
    f1: float
    threshold: float
    n: int
    n_anomalies: int
    n_flagged: int
    best_f1: float | None = None  # chosen on the test labels: an upper bound, not a result
    best_f1_threshold: float | None = None
    level: str = "session"
    n_unlabeled: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Curves:
    """Plot-ready curve points."""

    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    roc_thresholds: np.ndarray = field(repr=False)
    precision: np.ndarray = field(repr=False)
    recall: np.ndarray = field(repr=False)
    pr_thresholds: np.ndarray = field(repr=False)


def lowest_flagged_score(scores: pd.DataFrame) -> float:
    """The model's threshold as a scores CSV shows it: where flagging starts, i.e. the lowest
    score with ``is_anomaly`` set (``inf`` when nothing is flagged)."""
    if "is_anomaly" not in scores.columns or not scores["is_anomaly"].any():
        return float(np.inf)
    return float(scores.loc[scores["is_anomaly"].astype(bool), "score"].min())


def evaluate_scores(
    scores: np.ndarray, labels: np.ndarray, threshold: float, level: str = "session"
) -> Evaluation:
    """Metrics at ``threshold``; entries with label -1 (unknown) are left out and counted."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    known = labels >= 0
    s, y = scores[known], labels[known].astype(int)
    if len(y) == 0:
        raise LabelError("no scored item has a label: do the label ids match the sessions?")
    pred = s >= threshold
    p, r, f, _ = precision_recall_fscore_support(
        y, pred, average="binary", zero_division=0.0
    )
    both = 0 < y.sum() < len(y)
    best_f1 = best_thr = None
    if both:
        prec, rec, thr = precision_recall_curve(y, s)
        f1s = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
        i = int(np.argmax(f1s))
        best_f1, best_thr = float(f1s[i]), float(thr[i])
    return Evaluation(
        roc_auc=float(roc_auc_score(y, s)) if both else None,
        pr_auc=float(average_precision_score(y, s)) if both else None,
        precision=float(p),
        recall=float(r),
        f1=float(f),
        threshold=float(threshold),
        n=len(y),
        n_anomalies=int(y.sum()),
        n_flagged=int(pred.sum()),
        best_f1=best_f1,
        best_f1_threshold=best_thr,
        level=level,
        n_unlabeled=int((~known).sum()),
    )


def curves(scores: np.ndarray, labels: np.ndarray) -> Curves:
    known = np.asarray(labels) >= 0
    s, y = np.asarray(scores)[known], np.asarray(labels)[known].astype(int)
    if not 0 < y.sum() < len(y):
        raise LabelError("curves need both normal and anomalous labelled items")
    fpr, tpr, rt = roc_curve(y, s)
    prec, rec, pt = precision_recall_curve(y, s)
    return Curves(fpr, tpr, rt, prec, rec, pt)


def histogram(scores: np.ndarray, bins: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of a score distribution, for plotting without the raw scores."""
    finite = np.asarray(scores, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return np.histogram(finite, bins=bins)


def _label_value(raw: str) -> int:
    v = raw.strip().lower()
    if v in ANOMALY_WORDS:
        return 1
    if v in NORMAL_WORDS:
        return 0
    raise LabelError(f"unknown label value {raw!r}: use Normal/Anomaly (or 0/1)")


# Column names ``evaluate`` accepts, by level (lower case): an id column and a label column.
ID_COLUMNS = {"session": ("session_id", "blockid", "block_id", "session"),
              "line": ("line_no", "line")}
LABEL_COLUMN = "label"
# Labels covering less than this share of the scored items get a warning: the figures describe
# those items only.
MIN_LABEL_COVERAGE = 0.5


def check_label_columns(header: list[str], level: str, source: str) -> None:
    """Refuse a label file whose columns do not name the ids of ``level`` and a label: the first
    column of any CSV would otherwise be taken for ids, giving a silent, meaningless figure."""
    names = [h.strip().lower() for h in header]
    if len(names) < 2:
        return  # labels_from_rows says "needs two columns"
    if LABEL_COLUMN in names and any(n in ID_COLUMNS[level] for n in names):
        return
    want = ("line_no,label" if level == "line" else "session_id,Label (or BlockId,Label)")
    other = "session" if level == "line" else "line"
    hint = (f"; it looks like {other}-level labels: use --level {other}"
            if LABEL_COLUMN in names and any(n in ID_COLUMNS[other] for n in names) else "")
    raise LabelError(f"{source}: columns {','.join(h.strip() for h in header)} do not fit "
                     f"--level {level}: the label file needs {want}{hint}")


def coverage_warnings(labels: np.ndarray, what: str = "sessions") -> list[str]:
    """A warning when few of the scored items have a label (``labels``: -1 where none)."""
    n, covered = len(labels), int((np.asarray(labels) >= 0).sum())
    if not n or covered / n >= MIN_LABEL_COVERAGE:
        return []
    return [(f"the labels cover only {covered:,} of the {n:,} {what} ({covered / n:.0%}); "
            "the figures describe those only")]


def read_labels(path: str | Path, level: str | None = None) -> pd.Series:
    """A label CSV -> Series of 0/1 indexed by id (str).

    Accepts the HDFS layout (``BlockId,Label``), ``session_id,label`` and ``line_no,label``;
    the id column is the first one, the label column is named ``label`` (any case) or the second.
    With ``level`` ('session' or 'line'), the columns must be named so (``check_label_columns``).
    """
    path = Path(path)
    if not path.exists():
        raise LabelError(f"{path}: no such label file")
    try:
        data = path.read_bytes()
        if data[:2] == GZIP_MAGIC:  # bounded, and a truncated .gz is a LabelError, not a crash
            data = gunzip_bounded(data, str(path), MAX_LABEL_BYTES)
        rows = list(csv.reader(io.StringIO(data.decode("utf-8", errors="replace"))))
    except LogInputError as exc:
        raise LabelError(str(exc)) from None
    except (OSError, csv.Error) as exc:
        raise LabelError(f"{path}: cannot read labels ({exc})") from None
    if level is not None and rows:
        check_label_columns(rows[0], level, str(path))
    return labels_from_rows(rows, str(path), level)


def labels_from_rows(rows: list[list[str]], source: str = "labels",
                     level: str | None = None) -> pd.Series:
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise LabelError(f"{source}: needs a header and at least one row")
    header = [h.strip().lower() for h in rows[0]]
    if len(header) < 2:
        raise LabelError(
            f"{source}: needs two columns, an id and a label (e.g. BlockId,Label); got {rows[0]}"
        )
    label_col = header.index("label") if "label" in header else 1
    id_col = 0 if label_col != 0 else 1
    named = [i for i, h in enumerate(header) if level and h in ID_COLUMNS[level]]
    if named:
        id_col = named[0]
    ids, values = [], []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) <= max(id_col, label_col):
            raise LabelError(f"{source}: line {n} has too few columns")
        ids.append(row[id_col].strip())
        try:
            values.append(_label_value(row[label_col]))
        except LabelError as exc:
            raise LabelError(f"{source}: line {n}: {exc}") from None
    series = pd.Series(values, index=pd.Index(ids, dtype=object), dtype=np.int8)
    return series[~series.index.duplicated(keep="last")]


def align_labels(ids: np.ndarray, labels: pd.Series, what: str = "sessions") -> np.ndarray:
    """0/1 per id, -1 where the label file says nothing; error if nothing matches at all."""
    aligned = labels.reindex(pd.Index([str(i) for i in ids], dtype=object))
    if aligned.notna().sum() == 0:
        example = next(iter(labels.index), "?")
        raise LabelError(
            f"none of the {len(ids):,} {what} has a label (label ids look like {example!r}, "
            f"{what} like {str(ids[0]) if len(ids) else '?'!r})"
        )
    return aligned.fillna(-1).to_numpy().astype(np.int8)

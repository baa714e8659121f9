"""The threshold ``tinylogbert evaluate`` evaluates at: the one the scores were judged with.

Why not "where flagging starts" (the lowest flagged score in the CSV), as before: for the shipped
model on the later HDFS blocks that printed 6.7686 while ``score`` and the dashboard said the
threshold was 6.638 — the same flags, but three front ends showing two numbers for one model. The
threshold used is the model's own (``--model``, the same default as ``score``) or the user's
(``--threshold``); a scores CSV whose ``is_anomaly`` column was judged at another threshold is
refused with the way out, instead of being evaluated at a number that did not make its flags.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tinylogbert.errors import CheckpointError, LabelError
from tinylogbert.model.checkpoint import DETECTOR_FILE, read_json
from tinylogbert.reports.display import format_threshold


def model_thresholds(folder: str | Path) -> tuple[float, float]:
    """(session threshold, line threshold) of a checkpoint, from ``detector.json`` alone: no
    torch and no weights, so ``evaluate`` stays instant."""
    path = Path(folder) / DETECTOR_FILE
    meta = read_json(path)
    try:
        return float(meta["threshold"]), float(meta["line_threshold"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: no usable threshold ({exc})") from None


def check_flags(scores: pd.DataFrame, threshold: float, source: str, model: str) -> None:
    """Refuse a scores CSV whose ``is_anomaly`` column was not judged at ``threshold`` (rows that
    feedback suppressed, ``suppressed_by`` set, are unflagged whatever their score)."""
    if "is_anomaly" not in scores.columns or "score" not in scores.columns:
        return
    flags = scores["is_anomaly"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    expected = scores["score"].to_numpy(dtype=np.float64) >= threshold
    if "suppressed_by" in scores.columns:
        marked = scores["suppressed_by"].fillna("").astype(str).str.strip() != ""
        expected &= ~marked.to_numpy()
    wrong = int((flags != expected).sum())
    if wrong:
        start = (f"its flags start at score {format_threshold(scores['score'][flags].min())}"
                 if flags.any() else "it flags nothing")
        raise LabelError(
            f"{source}: {wrong:,} rows are not flagged as the threshold "
            f"{format_threshold(threshold)} of {model} would flag them ({start}); give --model "
            "with the model that scored it, or --threshold with the threshold given to score")


def evaluation_threshold(scores: pd.DataFrame, level: str, model: str | Path,
                         given: float | None, source: str) -> float:
    """``given`` when the user chose one; else the model's session (or, ``level='line'``, line)
    threshold, once the CSV's flags are checked against it."""
    if given is not None:
        return float(given)
    session, line = model_thresholds(model)
    threshold = line if level == "line" else session
    check_flags(scores, threshold, source, f"model {model}")
    return threshold

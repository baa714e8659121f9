"""One row per method and score variant; rendered as a markdown table and written as JSON.

Every method is judged by the same code (``tinylogbert.scoring.evaluate.evaluate_scores``) on the same test
sessions. "F1" is at a threshold chosen without labels (the rule is recorded per row); "best F1"
is at the threshold that maximises F1 *on the test labels* and is marked as such: an upper bound
for the score's ranking, not a result anyone could deploy.
"""
from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
from tinylogbert.scoring.evaluate import evaluate_scores


@dataclass
class MethodResult:
    method: str  # e.g. "TinyLogBERT", "PCA residual", "LogLead IsolationForest"
    variant: str  # a score variant ("score", "z_head"...), or "" for a single score
    family: str  # "tinylogbert" | "checkpoint" | "baseline" | "loglead"
    features: str  # what the method reads: "lines", "words", "drain3", "drain"
    roc_auc: float | None
    pr_auc: float | None
    best_f1: float | None  # threshold chosen on the test labels: an upper bound
    n_sessions: int
    n_anomalies: int
    threshold_rule: str | None = None  # how the label-free threshold was chosen (None: no F1)
    threshold: float | None = None
    f1: float | None = None
    precision: float | None = None
    recall: float | None = None
    n_flagged: int | None = None
    train_seconds: float | None = None
    score_seconds: float | None = None
    score_lines: int | None = None  # lines read to score the test part
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.method} [{self.variant}]" if self.variant else self.method

    @property
    def lines_per_second(self) -> float | None:
        if not self.score_seconds or not self.score_lines:
            return None
        return self.score_lines / self.score_seconds

    def to_dict(self) -> dict:
        data = asdict(self)
        data["lines_per_second"] = self.lines_per_second
        return _finite(data)


def measure(
    method: str,
    variant: str,
    family: str,
    features: str,
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float | None = None,
    threshold_rule: str | None = None,
    **timing,
) -> MethodResult:
    """Metrics of one score vector; F1 only when a label-free ``threshold`` is given."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():  # a method that lost a session is a bug, not a score
        raise ValueError(f"{method} [{variant}]: {int(np.isnan(scores).sum())} scores are NaN")
    # Some detectors (LOF) reach +-inf; scikit-learn's metrics refuse infinities, order is kept.
    scores = np.clip(scores, -np.finfo(np.float64).max, np.finfo(np.float64).max)
    ev = evaluate_scores(scores, labels, np.inf if threshold is None else threshold)
    at_threshold = {}
    if threshold is not None:
        at_threshold = {
            "threshold_rule": threshold_rule, "threshold": float(threshold), "f1": ev.f1,
            "precision": ev.precision, "recall": ev.recall, "n_flagged": ev.n_flagged,
        }
    return MethodResult(
        method=method, variant=variant, family=family, features=features,
        roc_auc=ev.roc_auc, pr_auc=ev.pr_auc, best_f1=ev.best_f1, n_sessions=ev.n,
        n_anomalies=ev.n_anomalies, **at_threshold, **timing,
    )


@dataclass(frozen=True)
class Skipped:
    method: str
    reason: str


def _fmt(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _fmt_seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


TABLE_HEADER = (
    "| Method | Reads | ROC-AUC | PR-AUC | F1 @ label-free threshold | Best F1 (test labels) † "
    "| Train s | Score s | Lines/s |\n"
    "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def markdown_table(results: list[MethodResult]) -> str:
    rows = [TABLE_HEADER]
    for r in results:
        rows.append(
            f"| {r.name} | {r.features} | {_fmt(r.roc_auc)} | {_fmt(r.pr_auc)} | {_fmt(r.f1)} "
            f"| {_fmt(r.best_f1)} | {_fmt_seconds(r.train_seconds)} "
            f"| {_fmt_seconds(r.score_seconds)} | {_fmt_rate(r.lines_per_second)} |"
        )
    return "\n".join(rows)


def markdown_report(
    title: str, command: str, data_summary: dict, results: list[MethodResult],
    skipped: list[Skipped], notes: list[str],
) -> str:
    """The README-ready block: command, data, table, footnotes, skipped methods."""
    lines = [
        f"## {title}",
        "",
        f"Reproduce: `{command}`",
        "",
        (f"Data: {data_summary.get('split', '')}; "
         f"{data_summary.get('test_anomalies', 0):,} anomalous of "
         f"{data_summary.get('test_sessions', 0):,} test sessions. Training never sees a label."),
        "",
    ]
    groups = [("tinylogbert", "TinyLogBERT (trained in this run)"),
              ("checkpoint", "Shipped checkpoint, on held-out blocks it has never seen"),
              ("baseline", "Baselines (scikit-learn, Drain3)"),
              ("loglead", "LogLead unsupervised detectors (its own API)")]
    for family, heading in groups:
        rows = [r for r in results if r.family == family]
        if rows:
            lines += [f"### {heading}", "", markdown_table(rows), ""]
    lines.append("† Best F1 uses the threshold that maximises F1 on the test labels: an upper "
                 "bound on what the score's ranking allows, not a deployable result.")
    lines += [f"- {n}" for n in notes]
    if skipped:
        lines += ["", "Skipped in this run:"]
        lines += [f"- {s.method}: {s.reason}" for s in skipped]
    return "\n".join(lines) + "\n"


def package_versions(names: tuple[str, ...]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def write_json(path: Path, payload: dict) -> None:
    from tinylogbert.io.atomic_output import write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(_finite(payload), indent=2, sort_keys=False) + "\n")  # atomic


def _finite(value):
    """JSON has no NaN/inf: write them as null; numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value

"""How consistent are the labels of a training log and a later log? (``python -m benchmarks.label_audit``)

Why this exists: a label-free detector learns what is *usual* in its training log. If an event
that the training labels always call an anomaly is labelled normal later on (or the reverse), no
detector can be right on both, and the held-out figures measure the labels as much as the
model. This script measures that, with two numbers a reader can check:

- per event (core's normalised words of a line): in how many training / later sessions it
  occurs, and what share of those sessions are labelled anomalous, on each side;
- a *supervised* ceiling: scikit-learn classifiers trained on the training log **with its
  labels** (event-count vectors per session), judged on the later log. A model that is told the
  training labels is not beaten by one that is not, so where these miss, the labels shifted;
- with ``--scores SESSIONS.csv`` (``tinylogbert score ... --sessions-out`` on the later log): a
  model's figures on all later sessions and on those whose label agrees with the training labels
  of the events they contain, i.e. without the sessions of *label-shifted* events (events that
  the two logs label differently: anomalous shares at least ``SHIFT`` apart) labelled against
  the training majority. That says how much of the gap to a goal the shifted labels explain.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tinylogbert.io.log_parser import parse_log
from tinylogbert.io.log_reader import read_log_file
from tinylogbert.scoring.evaluate import align_labels, read_labels
from tinylogbert.sessions.grouping import SessionConfig, build_sessions

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"
SHIFT = 0.5  # anomalous share of an event's sessions, training vs later, at least this apart
MIN_SESSIONS = 3  # on each side, for an event's share to mean anything


@dataclass
class LabelledSessions:
    ids: np.ndarray  # session ids
    events: list[dict[str, int]]  # per session: event -> count
    labels: np.ndarray  # 0/1 per session


def load_sessions(log: Path, labels: Path) -> LabelledSessions:
    parsed = parse_log(read_log_file(log), "auto")
    index = build_sessions(parsed, SessionConfig())
    words = parsed.words.to_numpy(zero_copy_only=False)
    events: list[dict[str, int]] = [{} for _ in range(len(index))]
    for session, word in zip(index.member_session(), words[index.members]):
        events[session][word] = events[session].get(word, 0) + 1
    y = align_labels(index.ids.astype(str), read_labels(labels))
    return LabelledSessions(index.ids.astype(str), events, y)


def event_table(train: LabelledSessions, later: LabelledSessions) -> pd.DataFrame:
    """One row per event: sessions containing it and their anomalous share, on each side."""
    rows = {}
    for side, data in (("train", train), ("later", later)):
        for events, label in zip(data.events, data.labels):
            for event in events:
                row = rows.setdefault(event, {"train_sessions": 0, "train_anomalous": 0,
                                              "later_sessions": 0, "later_anomalous": 0})
                row[f"{side}_sessions"] += 1
                row[f"{side}_anomalous"] += int(label)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "event"
    return table.sort_values(["train_sessions", "later_sessions"])


def shifted_events(table: pd.DataFrame) -> pd.DataFrame:
    """Events whose sessions the two logs label differently (see ``SHIFT``), with the training
    majority label."""
    enough = (table["train_sessions"] >= MIN_SESSIONS) & (table["later_sessions"] >= MIN_SESSIONS)
    train_share = table["train_anomalous"] / table["train_sessions"]
    later_share = table["later_anomalous"] / table["later_sessions"]
    shifted = table[enough & ((train_share - later_share).abs() >= SHIFT)].copy()
    shifted["train_majority"] = (train_share[shifted.index] >= 0.5).astype(int)
    return shifted


def agreeing_sessions(later: LabelledSessions, shifted: pd.DataFrame) -> np.ndarray:
    """bool per later session: no shifted event in it is labelled against the training majority."""
    majority = shifted["train_majority"].to_dict()
    return np.array([
        all(label == majority[e] for e in events if e in majority)
        for events, label in zip(later.events, later.labels)
    ])


def score_figures(scores_csv: Path, later: LabelledSessions, keep: np.ndarray) -> pd.DataFrame:
    """The scores' ROC-AUC, PR-AUC and F1 (at the model's own threshold: the lowest flagged
    score) on all later sessions and on the agreeing ones."""
    from tinylogbert.errors import LabelError
    from tinylogbert.scoring.evaluate import evaluate_scores, lowest_flagged_score

    frame = pd.read_csv(scores_csv, dtype={"session_id": str})
    if not {"session_id", "score"} <= set(frame.columns):
        raise LabelError(f"{scores_csv}: expected a SESSIONS CSV (session_id, score, is_anomaly)")
    scores = frame.set_index("session_id")["score"].reindex(later.ids).to_numpy(dtype=float)
    if np.isnan(scores).any():
        raise LabelError(f"{scores_csv}: {int(np.isnan(scores).sum())} later sessions not scored")
    threshold = lowest_flagged_score(frame)
    rows = []
    for name, mask in (("all later sessions", np.ones(len(keep), dtype=bool)),
                       ("labels agreeing with training", keep)):
        ev = evaluate_scores(scores[mask], later.labels[mask], threshold)
        rows.append({"sessions": name, "n": ev.n, "anomalous": ev.n_anomalies,
                     "roc_auc": ev.roc_auc, "pr_auc": ev.pr_auc, "f1": ev.f1})
    return pd.DataFrame(rows)


def supervised_ceiling(train: LabelledSessions, later: LabelledSessions, seed: int = 0) -> pd.DataFrame:
    """Classifiers fitted on the training labels, judged on the later log's labels."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
    from sklearn.tree import DecisionTreeClassifier

    vectors = DictVectorizer()
    x_train, x_later = vectors.fit_transform(train.events), vectors.transform(later.events)
    models = {
        "logistic regression": LogisticRegression(max_iter=5000, C=10.0),
        "decision tree": DecisionTreeClassifier(random_state=seed),
        "random forest (500 trees)": RandomForestClassifier(500, random_state=seed),
    }
    rows = []
    for name, model in models.items():
        model.fit(x_train, train.labels)
        p = model.predict_proba(x_later)[:, 1]
        rows.append({"classifier": name, "roc_auc": roc_auc_score(later.labels, p),
                     "pr_auc": average_precision_score(later.labels, p),
                     "f1_at_0.5": f1_score(later.labels, p >= 0.5)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.label_audit", description=__doc__.split("\n")[0])
    parser.add_argument("--train-log", type=Path, default=SAMPLE / "HDFS_sample.log.gz")
    parser.add_argument("--train-labels", type=Path, default=SAMPLE / "HDFS_sample_labels.csv")
    parser.add_argument("--later-log", type=Path, default=SAMPLE / "HDFS_heldout.log.gz")
    parser.add_argument("--later-labels", type=Path, default=SAMPLE / "HDFS_heldout_labels.csv")
    parser.add_argument("--scores", type=Path,
                        help="a model's SESSIONS.csv on the later log, judged with and without "
                             "the sessions labelled against the training labels")
    args = parser.parse_args(argv)
    train = load_sessions(args.train_log, args.train_labels)
    later = load_sessions(args.later_log, args.later_labels)
    with pd.option_context("display.width", 200, "display.max_colwidth", 90,
                           "display.float_format", "{:.4f}".format):
        print(f"training log: {len(train.labels):,} sessions ({train.labels.sum()} anomalous); "
              f"later log: {len(later.labels):,} sessions ({later.labels.sum()} anomalous)\n")
        events = event_table(train, later)
        print("Sessions containing each event, and how many of them are labelled anomalous:")
        print(events.to_string(), "\n")
        print("Supervised ceiling (trained WITH the training labels, judged on the later log):")
        print(supervised_ceiling(train, later).to_string(index=False))
        shifted = shifted_events(events)
        keep = agreeing_sessions(later, shifted)
        print(f"\nLabel-shifted events (anomalous shares >= {SHIFT} apart): {len(shifted)}; "
              f"later sessions labelled against the training majority: {int((~keep).sum())}")
        if len(shifted):
            print(shifted.to_string())
        if args.scores:
            print(f"\n{args.scores}:")
            print(score_figures(args.scores, later, keep).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

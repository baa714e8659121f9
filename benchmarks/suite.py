"""The development suite: every development log, every peer, several seeds, one table.

    python -m benchmarks.suite                      # or: tinylogbert bench --suite
    python -m benchmarks.suite --seeds 0 --quick    # a smoke test of the harness

Each log is cut in time: the detector trains on the earlier part *without labels* and scores the
later part (a clean log trains and scores itself: the question there is how much it flags). A
design is chosen on all of these at once, never on one, so none of them is held out: these are
development figures. Thresholds come from training scores only (the detector's ``auto`` rule, and
the same rule for every peer); ``best F1`` is chosen on the labels and only an upper bound.

| log | split | sessions | judged on |
|---|---|---|---|
| ``hdfs`` | ``HDFS_sample`` trains, the later ``HDFS_heldout`` blocks are scored | block ids | block labels |
| ``bgl`` | ``BGL_2k`` (loghub), first 1,000 lines train, last 1,000 scored | the format's windows | inline alert labels, per window and per line |
| ``thunderbird`` | ``Thunderbird_2k``, no alerts, trains and scores itself | windows | share flagged (sessions, lines) |
| ``modern`` | synthetic logfmt of four services (``modern_log.py``): 800 traces train, 400 later ones scored, 5% with a fault | trace ids | trace labels |
| ``zookeeper`` … ``hadoop`` | loghub's 2k samples of seven more systems, first 1,500 lines train, last 500 scored | windows | share flagged; faults caught |
| ``android`` … ``windows`` | the same for loghub's six other systems (Android, HealthApp, Mac, OpenStack, Proxifier, Windows) | windows (OpenStack: by its rule) | share flagged; faults caught |

Peers, fitted on the same training lines and sessions: a plain template-frequency table (mean
``-log p(line)``), word frequency (mean word surprisal), the level alone (max level rank), an
IsolationForest on template counts, and TinyLogBERT's own signals alone (``z_rarity``: its
count table with the severity prior; ``z_context``: the network's next-line surprisal).
Writes ``benchmarks/results/suite.json`` and ``suite.md`` (``--out-dir``).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tinylogbert.cli.main import run_reporting_errors
from tinylogbert.io.atomic_output import write_text
from tinylogbert.scoring.anomaly_score import (
    AUTO_MAX_LINE_SHARE,
    AUTO_MAX_SESSION_SHARE,
    label_free_threshold,
)
from tinylogbert.scoring.evaluate import align_labels, read_labels

from .report import package_versions

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data"
LOGHUB = SAMPLE / "loghub_2k"
AXES = ("base", "evolution", "faults")
HEAD_ABLATION = "TinyLogBERT + anomaly head (weight 1)"
VERSIONED = ("tinylogbert", "numpy", "scikit-learn", "torch", "transformers", "pyarrow")


@dataclass(frozen=True)
class DevLog:
    name: str
    train: Path
    test: Path | None  # None: scores its own training log
    labels: Path | None = None  # session labels CSV (else inline labels, if any)
    train_lines: slice | None = None  # a slice of ``train`` (with ``test`` None: the rest scores)
    test_lines: slice | None = None
    generated: bool = False  # written by ``modern_log.modern_dev_log`` when the suite runs


DEV_LOGS = (
    DevLog("hdfs", SAMPLE / "HDFS_sample.log.gz", SAMPLE / "HDFS_heldout.log.gz",
           SAMPLE / "HDFS_heldout_labels.csv"),
    DevLog("bgl", LOGHUB / "BGL_2k.log.gz", LOGHUB / "BGL_2k.log.gz",
           train_lines=slice(0, 1000), test_lines=slice(1000, None)),
    DevLog("thunderbird", LOGHUB / "Thunderbird_2k.log.gz", None),
    # A new user's first run on a small log of a new system: the first 1,500 lines train with
    # defaults, the last 500 are scored (no labels: what is flagged, and which faults are caught).
    *(DevLog(name.lower(), LOGHUB / f"{name}_2k.log.gz", LOGHUB / f"{name}_2k.log.gz",
             train_lines=slice(0, 1500), test_lines=slice(1500, None))
      for name in ("Zookeeper", "OpenSSH", "Linux", "Spark", "Apache", "HPC", "Hadoop",
                   # loghub's six other systems, added after the seven above had shaped the
                   # design: the same first run, on systems the design had not yet met
                   "Android", "HealthApp", "Mac", "OpenStack", "Proxifier", "Windows")),
    # Today's kind of log: logfmt lines of four services, sessions by trace id, stack traces
    # joined to their event; synthetic (``benchmarks/modern_log.py``, seed fixed), faults in 5%
    # of the scored traces, labelled per trace.
    DevLog("modern", Path("modern_train.log"), Path("modern_test.log"),
           Path("modern_test_labels.csv"), generated=True),
)


@dataclass
class Part:
    """What every method is given of one side of a split: words, levels and sessions."""

    words: list[str]
    levels: list[str | None]
    members: np.ndarray
    offsets: np.ndarray

    @classmethod
    def of(cls, result) -> Part:
        lines = result.line_table
        return cls(result.line_words.to_pylist(), lines["level"].to_pylist(),
                   result.sessions.members, result.sessions.offsets)

    def per_session(self, line_values: np.ndarray, how: str) -> np.ndarray:
        values = line_values[self.members]
        starts = self.offsets[:-1]
        if how == "max":
            return np.maximum.reduceat(values, starts) if len(starts) else values
        return np.add.reduceat(values, starts) / np.maximum(np.diff(self.offsets), 1)


def _read(path: Path, lines: slice | None) -> list[str]:
    from tinylogbert.io.log_reader import read_log_file

    text = read_log_file(path).lines.to_pylist()
    return text[lines] if lines else text


# ---- peers: each returns (line scores, session scores) for train and for test --------------------
def template_frequency(train: Part, test: Part) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    counts = Counter(train.words)
    denominator = len(train.words) + len(counts) + 1.0

    def line(part: Part) -> np.ndarray:
        return -np.log(np.array([counts.get(w, 0) + 1.0 for w in part.words]) / denominator)
    return {k: (line(p), p.per_session(line(p), "mean")) for k, p in (("train", train), ("test", test))}


def word_frequency(train: Part, test: Part) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    counts = Counter(w for text in train.words for w in text.split())
    denominator = sum(counts.values()) + len(counts) + 1.0

    def line(part: Part) -> np.ndarray:
        return np.array([np.mean([-np.log((counts.get(w, 0) + 1.0) / denominator)
                                  for w in text.split()]) if text else 0.0 for text in part.words])
    return {k: (line(p), p.per_session(line(p), "mean")) for k, p in (("train", train), ("test", test))}


def level_only(train: Part, test: Part) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from tinylogbert.scoring.severity import LEVEL_RANKS

    def line(part: Part) -> np.ndarray:
        return np.array([LEVEL_RANKS.get(str(v).strip().lower(), 0.0) for v in part.levels])
    return {k: (line(p), p.per_session(line(p), "max")) for k, p in (("train", train), ("test", test))}


def isolation_forest(train: Part, test: Part, seed: int) -> dict[str, tuple[None, np.ndarray]]:
    from scipy import sparse
    from sklearn.ensemble import IsolationForest

    vocab = {w: i + 1 for i, w in enumerate(sorted(set(train.words)))}

    def counts(part: Part) -> sparse.csr_matrix:
        cls = np.array([vocab.get(w, 0) for w in part.words])
        rows = np.repeat(np.arange(len(part.offsets) - 1), np.diff(part.offsets))
        m = sparse.csr_matrix((np.ones(len(part.members)), (rows, cls[part.members])),
                              shape=(len(part.offsets) - 1, len(vocab) + 1))
        return m.log1p()
    model = IsolationForest(random_state=seed).fit(counts(train))
    return {k: (None, -model.score_samples(counts(p))) for k, p in (("train", train), ("test", test))}


# ---- judging ------------------------------------------------------------------------------------
def judge(train_scores: np.ndarray, test_scores: np.ndarray, labels: np.ndarray | None,
          threshold: float | None = None, max_share: float = AUTO_MAX_SESSION_SHARE) -> dict:
    """ROC-AUC, PR-AUC and F1 at the label-free threshold (training scores only), flagged share;
    ``best_f1`` is chosen on the labels (an upper bound)."""
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_recall_curve,
        roc_auc_score,
    )

    if threshold is None:
        threshold = label_free_threshold(np.asarray(train_scores, float), None, "auto", max_share,
                                         second_mode=max_share == AUTO_MAX_SESSION_SHARE)
    flagged = np.asarray(test_scores) >= threshold
    out = {"flagged_share": float(flagged.mean()) if len(flagged) else 0.0,
           "n": len(flagged)}
    if labels is not None:
        keep = labels >= 0
        y, s = labels[keep], np.asarray(test_scores)[keep]
        if 0 < y.sum() < len(y):
            p, r, _ = precision_recall_curve(y, s)
            out.update(roc_auc=float(roc_auc_score(y, s)), pr_auc=float(average_precision_score(y, s)),
                       f1=float(f1_score(y, flagged[keep])),
                       best_f1=float(np.max(2 * p * r / np.maximum(p + r, 1e-12))),
                       n_anomalies=int(y.sum()))
    return out


def peer_scores(train: Part, test: Part, seed: int, loglead_parts=None) -> dict:
    """Every peer's (line, session) scores for train and test, fitted on ``train``."""
    peers = {"Template frequency": template_frequency(train, test),
             "Word frequency": word_frequency(train, test),
             "Level only": level_only(train, test),
             "IsolationForest (template counts)": isolation_forest(train, test, seed)}
    if loglead_parts is not None:
        from .loglead_detectors import loglead_unavailable

        if loglead_unavailable() is None:
            peers.update(loglead_isolation_forests(*loglead_parts, seed))
    return peers


def loglead_isolation_forests(train, test, seed: int) -> dict:
    """LogLead's IsolationForest on word counts and on Drain events, through its own API
    (enhancers -> sequences -> ``AnomalyDetector`` with its default ``CountVectorizer``), on
    the sessions TinyLogBERT uses. ``train``/``test``: (messages, session ids per line)."""
    import warnings

    import polars as pl
    from loglead import AnomalyDetector
    from loglead.enhancers import EventLogEnhancer, SequenceEnhancer

    from .loglead_detectors import _fresh_drain

    def sequences(messages: list[str], ids: list[str]):
        df = pl.DataFrame({"m_message": [m or "" for m in messages], "seq_id": ids})
        enhancer = EventLogEnhancer(df)
        enhancer.mask()
        enhancer.words("e_message_normalized")
        df = enhancer.parse_drain()
        order = pl.DataFrame({"seq_id": list(dict.fromkeys(ids))})
        seq = SequenceEnhancer(df=df, df_seq=order)
        seq.tokens("e_words")
        out = seq.events("e_event_drain_id")
        return order.join(out, on="seq_id", how="left", maintain_order="left")

    _fresh_drain()  # Drain learns the train part first, then (online) the test part
    tr, te = sequences(*train), sequences(*test)
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, column in (("words", "e_words"), ("Drain events", "e_event_drain_id")):
            sad = AnomalyDetector(item_list_col=column, print_scores=False, auc_roc=True)
            sad.train_df, sad.test_df = tr, te
            sad.prepare_train_test_data()
            np.random.seed(seed)
            sad.train_IsolationForest(filter_anos=False)
            scores = {}
            for part, frame, x in (("train", tr, sad.X_train), ("test", te, sad.X_test)):
                sad.test_df, sad.X_test, sad.X_test_no_anos = frame, x, x
                scores[part] = (None, sad.predict()["pred_ano_proba"].to_numpy().astype(float))
            out[f"LogLead IsolationForest ({name})"] = scores
    return out


def _loglead_input(result) -> tuple[list[str], list[str]]:
    """(message, session id) per session member: what LogLead's sequences are built from."""
    members = result.sessions.members
    ids = result.session_frame.session_id.to_numpy()
    per_member = np.repeat(ids, np.diff(result.sessions.offsets))
    messages = result.line_table["message"].to_pylist()
    return [messages[i] or "" for i in members], [str(x) for x in per_member]


def _labels_of(log: DevLog, result) -> np.ndarray | None:
    if log.labels is not None:
        return align_labels(result.session_frame.session_id.to_numpy(), read_labels(log.labels))
    return result.session_labels


def run_axes(det, log: DevLog, seed: int, axes: tuple[str, ...], train, test, train_text,
             test_text, labels, peers: bool, say, headed=None) -> list[dict]:
    """The evolution axis (the scored part reworded, ``evolution.py``) and the fault axis
    (fault bursts injected, ``faults.py``), for TinyLogBERT and, with ``peers``, every peer.
    ``headed``: (the detector recalibrated with the anomaly head's weight 1, its training
    result), measured beside it. The generators' seed is fixed (0): every model seed meets the
    same variants."""
    from tinylogbert import pipeline
    from tinylogbert.io.log_reader import read_log_lines

    from .evolution import VARIANTS, variant_lines
    from .faults import inject, plan_bursts

    parsed = pipeline.parse(read_log_lines(test_text, "test"), "auto", det.format_)
    tr_part = Part.of(train)
    lead_train = _loglead_input(train) if peers else None
    rows: list[dict] = []

    def methods(text: list[str]):
        """(name -> (train session scores, test session scores, threshold)), the result."""
        result = det.score(read_log_lines(text, "variant"), embeddings=False)
        det.open_world = False
        try:
            closed = det.score(read_log_lines(text, "variant"), embeddings=False)
        finally:
            det.open_world = True
        st = train.session_frame
        out = {"TinyLogBERT": (st.score.to_numpy(), result.session_frame.score.to_numpy(),
                               det.threshold_),
               "TinyLogBERT without line matching": (
                   st.score.to_numpy(), closed.session_frame.score.to_numpy(), det.threshold_),
               "TinyLogBERT count-only (z_rarity, exact lines)": (
                   st.z_rarity.to_numpy(), closed.session_frame.z_rarity.to_numpy(), None),
               "TinyLogBERT z_context alone": (
                   st.z_context.to_numpy(), result.session_frame.z_context.to_numpy(), None)}
        if headed is not None:
            with_head, with_head_train = headed
            scored = with_head.score(read_log_lines(text, "variant"), embeddings=False)
            out[HEAD_ABLATION] = (with_head_train.session_frame.score.to_numpy(),
                                  scored.session_frame.score.to_numpy(), with_head.threshold_)
        if peers:
            lead = (lead_train, _loglead_input(result))
            for name, sc in peer_scores(tr_part, Part.of(result), seed, lead).items():
                if name != "Level only":
                    out[name] = (sc["train"][1], sc["test"][1], None)
        return out, result

    def threshold_of(train_scores, threshold):
        if threshold is not None:
            return threshold
        return label_free_threshold(np.asarray(train_scores, float), None, "auto",
                                    AUTO_MAX_SESSION_SHARE)

    base = {"log": log.name, "seed": seed, "level": "session"}
    if "evolution" in axes:
        for variant in VARIANTS:
            text, info = variant_lines(test_text, parsed, variant, seed=0)
            scored, result = methods(text)
            y = _labels_of(log, result)
            for name, (tr_s, te_s, thr) in scored.items():
                rows.append({**base, "axis": "evolution", "variant": variant, "method": name,
                             "seed": seed if name.startswith("TinyLogBERT") else None,
                             "line_share_changed": info["line_share_changed"],
                             "types_reworded": info["types_reworded"],
                             **judge(tr_s, te_s, y, threshold_of(tr_s, thr)),
                             **normal_flagged(te_s, y, threshold_of(tr_s, thr))})
            say(f"    evolution {variant}: {info['types_reworded']} of {info['types']} types, "
                f"{info['line_share_changed']:.0%} of lines; TinyLogBERT flags "
                f"{result.n_anomalous_sessions} of {result.n_sessions}")
    if "faults" in axes:
        y0 = labels if labels is not None else np.zeros(test.n_sessions, dtype=int)
        normal_ids = set(test.session_frame.session_id.to_numpy()[y0 == 0])
        sid = test.line_table["session_id"].to_pylist()
        ok = test.line_table["parse_ok"].to_numpy(zero_copy_only=False)
        normal_lines = np.array([i for i, s in enumerate(sid) if ok[i] and s in normal_ids])
        bursts = plan_bursts(parsed, normal_lines, seed=0)
        text, where = inject(test_text, parsed, bursts)
        scored, result = methods(text)
        frame = result.session_frame
        line_sid = result.line_table["session_id"].to_pylist()
        position = {s: k for k, s in enumerate(frame.session_id.to_numpy())}
        burst_sessions = [sorted({position[x] for i in w for x in str(line_sid[i]).split(";")
                                  if x in position}) for w in where]
        hit = np.zeros(len(frame), dtype=bool)
        hit[[k for b in burst_sessions for k in b]] = True
        y = _labels_of(log, result)
        clean = ~hit & ((y == 0) if y is not None else True)
        grades = frame["grade"].to_numpy()
        for name, (tr_s, te_s, thr) in scored.items():
            flagged = np.asarray(te_s) >= threshold_of(tr_s, thr)
            caught = [bool(flagged[b].any()) for b in burst_sessions if b]
            row = {**base, "axis": "faults", "variant": "bursts", "method": name,
                   "seed": seed if name.startswith("TinyLogBERT") else None,
                   "bursts": len(caught), "caught": int(sum(caught)),
                   "caught_share": float(np.mean(caught)) if caught else None,
                   "clean_flagged_share": float(flagged[clean].mean()) if clean.any() else None}
            if name == "TinyLogBERT":
                from tinylogbert.scoring.anomaly_score import GRADES

                row["burst_grades"] = [max(grades[b], key=GRADES.index) if b else None
                                       for b in burst_sessions]
            rows.append(row)
        say(f"    faults: TinyLogBERT caught {rows[-len(scored)]['caught']} of "
            f"{rows[-len(scored)]['bursts']} bursts")
    return rows


def normal_flagged(scores, labels, threshold) -> dict:
    """The share of sessions labelled normal (all sessions, without labels) that are flagged."""
    flagged = np.asarray(scores) >= threshold
    normal = (labels == 0) if labels is not None else np.ones(len(flagged), dtype=bool)
    return {"normal_flagged_share": float(flagged[normal].mean()) if normal.any() else None}


def run_log(log: DevLog, seeds: list[int], quick: bool, say,
            axes: tuple[str, ...] = ("base",)) -> list[dict]:
    from tinylogbert import TinyLogBERTDetector
    from tinylogbert.io.log_reader import read_log_lines
    from tinylogbert.model.training import TrainConfig

    if log.generated:

        from .modern_log import modern_dev_log

        train, test, labels = modern_dev_log(Path(tempfile.mkdtemp(prefix="tinylogbert-suite-")))
        log = replace(log, train=train, test=test, labels=labels)
    train_text = _read(log.train, log.train_lines)
    test_text = train_text if log.test is None else _read(log.test, log.test_lines)
    rows: list[dict] = []
    peers_done = False
    for seed in seeds:
        training = TrainConfig(seed=seed)
        if quick:
            from tinylogbert.model.tinylogbert_model import ModelConfig
            training = TrainConfig(seed=seed, epochs=1, head_epochs=1, steps_per_epoch=3)
            det = TinyLogBERTDetector(model_config=ModelConfig(hidden_size=32, num_hidden_layers=1,
                                                        num_attention_heads=2,
                                                        intermediate_size=64, head_hidden=8),
                                      training=training, vocab_size=200)
        else:
            det = TinyLogBERTDetector(training=training)
        started = time.perf_counter()
        det.fit(read_log_lines(train_text, str(log.train)))
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        # With embeddings: the suite also measures how the embedding explorer's vectors separate
        # the labelled anomalies (the score is the same with or without them).
        test = det.score(read_log_lines(test_text, str(log.test or log.train)))
        score_s = time.perf_counter() - started
        # With embeddings: the anomaly head's estimate (z_head) is measured too (ablation).
        train = det.score(read_log_lines(train_text, str(log.train)))
        if log.labels is not None:
            labels = align_labels(test.session_frame.session_id.to_numpy(), read_labels(log.labels))
        else:
            labels = test.session_labels
        line_labels = test.line_labels
        # The anomaly head's ablation: the same model recalibrated with the head's weight 1
        # (thresholds, line alarm and all from its training scores, as fit does).
        with tempfile.TemporaryDirectory() as folder:  # a copy of the trained model
            with_head = TinyLogBERTDetector.load(det.save(Path(folder) / "model", onnx=False))
        with_head.recalibrate(read_log_lines(train_text, str(log.train)), head_weight=1.0)
        headed = (with_head, with_head.score(read_log_lines(train_text, str(log.train)),
                                             embeddings=False))
        if "base" not in axes:
            rows += run_axes(det, log, seed, axes, train, test, train_text, test_text, labels,
                             peers=not peers_done, say=say, headed=headed)
            peers_done = True
            continue
        say(f"  {log.name} seed {seed}: trained in {train_s:.0f}s, "
            f"{test.n_anomalous_sessions} of {test.n_sessions} sessions flagged")
        st, ss = train.session_frame, test.session_frame
        base = {"log": log.name, "seed": seed, "train_seconds": round(train_s, 1),
                "score_seconds": round(score_s, 1), "lines": test.n_lines}
        rows.append({**base, "method": "TinyLogBERT", "level": "session",
                     **judge(st.score.to_numpy(), ss.score.to_numpy(), labels, det.threshold_),
                     "grades": grade_shares(ss["grade"].to_numpy(), labels),
                     "embedding_knn": neighbour_share(test.session_embeddings, labels)})
        rows.append({**base, "method": "TinyLogBERT", "level": "line",
                     **judge(train.line_scores, test.line_scores, line_labels, det.line_threshold_)})
        for signal in ("z_rarity", "z_context", "z_head"):
            rows.append({**base, "method": f"TinyLogBERT {signal} alone", "level": "session",
                         **judge(st[signal].to_numpy(), ss[signal].to_numpy(), labels)})
        # The ablation of the anomaly head, against the shipped weight 0.
        head_test = headed[0].score(read_log_lines(test_text, str(log.test or log.train)),
                                    embeddings=False).session_frame
        rows.append({**base, "method": HEAD_ABLATION, "level": "session",
                     **judge(headed[1].session_frame.score.to_numpy(),
                             head_test.score.to_numpy(), labels, headed[0].threshold_)})
        if "evolution" in axes or "faults" in axes:
            rows += run_axes(det, log, seed, axes, train, test, train_text, test_text, labels,
                             peers=not peers_done, say=say, headed=headed)
        if peers_done:
            continue
        peers_done = True  # the peers are deterministic (IsolationForest: seeded by the first)
        tr_part, te_part = Part.of(train), Part.of(test)
        lead = (_loglead_input(train), _loglead_input(test))
        for name, scores in peer_scores(tr_part, te_part, seed, lead).items():
            peer = {"log": log.name, "seed": None, "method": name, "lines": test.n_lines}
            rows.append({**peer, "level": "session",
                         **judge(scores["train"][1], scores["test"][1], labels)})
            if scores["train"][0] is not None:
                rows.append({**peer, "level": "line",
                             **judge(scores["train"][0], scores["test"][0], line_labels,
                                     max_share=AUTO_MAX_LINE_SHARE)})
    return rows


def neighbour_share(vectors: np.ndarray, labels: np.ndarray | None, k: int = 10) -> dict | None:
    """How well an embedding separates the labelled anomalies: the mean share of each anomaly's
    ``k`` nearest sessions (cosine, the anomaly itself left out) that are anomalies too, next to
    the share a random neighbour would give (the anomaly rate)."""
    if labels is None or not (labels == 1).any() or len(vectors) <= k:
        return None
    from sklearn.neighbors import NearestNeighbors

    known = labels >= 0
    x, y = np.asarray(vectors, dtype=np.float64)[known], labels[known]
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x[y == 1])
    return {"k": k, "anomaly_neighbour_share": float(y[idx[:, 1:]].mean()),
            "random_neighbour_share": float(y.mean())}


def grade_shares(grades: np.ndarray, labels: np.ndarray | None) -> dict[str, dict]:
    """Per grade: how many sessions, and how many of the labelled anomalies, it holds."""
    from tinylogbert.scoring.anomaly_score import GRADES

    out = {}
    for grade in GRADES:
        mine = grades == grade
        item = {"sessions": int(mine.sum())}
        if labels is not None and (labels == 1).any():
            item["anomalies"] = int((mine & (labels == 1)).sum())
            item["share_of_anomalies"] = float(item["anomalies"] / (labels == 1).sum())
            item["anomalous_share"] = float(item["anomalies"] / max(mine.sum(), 1))
        out[grade] = item
    return out


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and SD over seeds per (log, method, level)."""
    keys = ("roc_auc", "pr_auc", "f1", "best_f1", "flagged_share", "normal_flagged_share",
            "caught_share", "clean_flagged_share", "line_share_changed")
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        key = (r["log"], r.get("axis", "base"), r.get("variant"), r["method"], r["level"])
        groups.setdefault(key, []).append(r)
    out = []
    for (log, axis, variant, method, level), rs in groups.items():
        item = {"log": log, "axis": axis, "variant": variant, "method": method, "level": level,
                "runs": len(rs), "n": rs[0].get("n"), "n_anomalies": rs[0].get("n_anomalies")}
        if axis == "faults":
            item["caught"] = sum(r["caught"] for r in rs)
            item["bursts"] = sum(r["bursts"] for r in rs)
            if "burst_grades" in rs[0]:
                item["burst_grades"] = dict(Counter(g for r in rs for g in r["burst_grades"]))
        for k in keys:
            vals = [r[k] for r in rs if r.get(k) is not None]
            if vals:
                item[k] = float(np.mean(vals))
                item[k + "_sd"] = float(np.std(vals))
        knn = [r["embedding_knn"] for r in rs if r.get("embedding_knn")]
        if knn:
            shares = [e["anomaly_neighbour_share"] for e in knn]
            item["embedding_knn"] = {"k": knn[0]["k"], "anomaly_neighbour_share": float(np.mean(shares)),
                                     "anomaly_neighbour_share_sd": float(np.std(shares)),
                                     "random_neighbour_share": knn[0]["random_neighbour_share"]}
        if "grades" in rs[0]:  # summed over seeds
            item["grades"] = {g: {k: sum(r["grades"][g].get(k, 0) for r in rs)
                                  for k in ("sessions", "anomalies")}
                              for g in rs[0]["grades"]}
        out.append(item)
    return out


def markdown(summary: list[dict], command: str, seeds: list[int]) -> str:
    def cell(item: dict, key: str) -> str:
        if key not in item:
            return "–"
        sd = item.get(key + "_sd", 0.0)
        return f"{item[key]:.3f}" + (f" ± {sd:.3f}" if item["runs"] > 1 else "")

    axes = [item for item in summary if item.get("axis", "base") != "base"]
    summary = [item for item in summary if item.get("axis", "base") == "base"]
    lines = [f"Development suite (`{command}`), TinyLogBERT over seeds {seeds} (mean ± SD). "
             "F1 and flagged share at the label-free threshold (training scores only); best F1 "
             "is chosen on the labels: an upper bound. Every log here was used to choose the "
             "design: development figures, not held-out ones.", "",
             "| log | level | method | ROC-AUC | PR-AUC | F1 | best F1 (upper bound) | flagged |",
             "|---|---|---|---|---|---|---|---|"]
    for item in summary:
        lines.append(f"| {item['log']} | {item['level']} | {item['method']} | "
                     f"{cell(item, 'roc_auc')} | {cell(item, 'pr_auc')} | {cell(item, 'f1')} | "
                     f"{cell(item, 'best_f1')} | {cell(item, 'flagged_share')} |")
    graded = [item for item in summary if "grades" in item]
    if graded:
        from tinylogbert.scoring.anomaly_score import GRADES

        lines += ["", "Severity grades of TinyLogBERT's sessions, summed over the seeds: sessions "
                  "(labelled anomalies among them).", "",
                  "| log | " + " | ".join(GRADES) + " |", "|---|" + "---|" * len(GRADES)]
        for item in graded:
            cells = []
            for g in GRADES:
                c = item["grades"][g]
                cells.append(f"{c['sessions']:,}" + (f" ({c['anomalies']:,})"
                                                     if item.get("n_anomalies") else ""))
            lines.append(f"| {item['log']} | " + " | ".join(cells) + " |")
    knn = [item for item in summary if "embedding_knn" in item]
    if knn:
        lines += ["", "How the session embeddings (the embedding explorer's vectors) separate the "
                  "labelled anomalies: the share of each anomaly's 10 nearest sessions (cosine) "
                  "that are anomalies, against the share for a random neighbour.", "",
                  "| log | anomalous neighbours | random neighbour |", "|---|---|---|"]
        for item in knn:
            e = item["embedding_knn"]
            lines.append(f"| {item['log']} | {e['anomaly_neighbour_share']:.3f} ± "
                         f"{e['anomaly_neighbour_share_sd']:.3f} | {e['random_neighbour_share']:.3f} |")
    return "\n".join(lines + axes_markdown(axes, cell)) + "\n"


def axes_markdown(items: list[dict], cell) -> list[str]:
    """The evolution and fault tables."""
    lines: list[str] = []
    evolution = [i for i in items if i["axis"] == "evolution"]
    if evolution:
        lines += ["", "Evolution axis: the scored part reworded as a newer release would write it "
                  "(`benchmarks/evolution.py`: the most frequent message type alone, then 5%, 15%, "
                  "30% of the types drawn by frequency; generator settings fixed before any result "
                  "was seen). Sessions; `normal flagged` is the share of sessions labelled normal "
                  "(every session, without labels) over the label-free threshold.", "",
                  "| log | variant | lines changed | method | ROC-AUC | PR-AUC | F1 | normal flagged |",
                  "|---|---|---|---|---|---|---|---|"]
        for i in evolution:
            lines.append(f"| {i['log']} | {i['variant']} | {i.get('line_share_changed', 0):.0%} | "
                         f"{i['method']} | {cell(i, 'roc_auc')} | {cell(i, 'pr_auc')} | "
                         f"{cell(i, 'f1')} | {cell(i, 'normal_flagged_share')} |")
    faults = [i for i in items if i["axis"] == "faults"]
    if faults:
        lines += ["", "Fault axis: bursts of 3 fault lines (`benchmarks/faults.py`: out of memory, "
                  "disk full, bind failure, disk I/O error, segfault, connection refused; half at "
                  "an error level, half at the copied line's level) injected into the scored part; "
                  "caught = bursts whose session is flagged, summed over the seeds; clean flagged = "
                  "sessions without a burst (and labelled normal) over the threshold.", "",
                  "| log | method | bursts caught | clean flagged | grades of the burst sessions |",
                  "|---|---|---|---|---|"]
        for i in faults:
            grades = ", ".join(f"{g} {n}" for g, n in sorted(i.get("burst_grades", {}).items()))
            lines.append(f"| {i['log']} | {i['method']} | {i['caught']} of {i['bursts']} | "
                         f"{cell(i, 'clean_flagged_share')} | {grades or '–'} |")
    return lines


def run_suite(logs: list[str], seeds: list[int], quick: bool, out_dir: Path, command: str,
              merge: bool = False, axes: tuple[str, ...] = ("base",)) -> dict:
    """Run ``logs``; with ``merge``, keep the other logs' runs of an earlier ``suite.json`` in
    ``out_dir`` (same seeds), so one log can be measured again without the others."""
    started = time.perf_counter()
    rows: list[dict] = []
    kept: list[dict] = []
    earlier = out_dir / "suite.json"
    if merge and earlier.is_file():
        previous = json.loads(earlier.read_text())
        if previous.get("seeds") != seeds or previous.get("quick") != quick:
            from tinylogbert.errors import TinyLogBERTError
            raise TinyLogBERTError(f"{earlier}: measured with seeds {previous.get('seeds')}, "
                                   f"quick={previous.get('quick')}; merge needs the same")
        kept = [r for r in previous["runs"] if r["log"] not in logs]
        command += "  (merged with the earlier runs of " + ", ".join(
            sorted({r["log"] for r in kept})) + f": {previous['command']})"
    for log in DEV_LOGS:
        if log.name in logs:
            print(f"{log.name}:", file=sys.stderr, flush=True)
            rows += run_log(log, seeds, quick, lambda m: print(m, file=sys.stderr, flush=True),
                            axes)
    order = [d.name for d in DEV_LOGS]
    rows = sorted(kept + rows, key=lambda r: order.index(r["log"]))
    summary = summarise(rows)
    payload = {"benchmark": "suite", "command": command, "seeds": seeds, "quick": quick,
               "versions": package_versions(VERSIONED), "summary": summary, "runs": rows,
               "seconds_total": round(time.perf_counter() - started, 1),
               "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    text = markdown(summary, command, seeds)
    if quick:
        text += "\nQUICK RUN: a tiny smoke-test model; do not quote.\n"
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / "suite.json", json.dumps(payload, indent=1, default=float))  # atomic
    write_text(out_dir / "suite.md", text)
    print(text)
    return payload


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--logs", default=",".join(d.name for d in DEV_LOGS),
                        help="comma-separated development logs (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="tiny model: tests the harness")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--axes", default="base,evolution,faults",
                        help="comma-separated: base (the log as written), evolution (reworded "
                             "variants), faults (injected fault bursts); default all")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other logs' runs of the suite.json already in --out-dir")


def run_from_args(args: argparse.Namespace, prog: str) -> int:
    logs = [t.strip() for t in args.logs.split(",") if t.strip()]
    unknown = sorted(set(logs) - {d.name for d in DEV_LOGS})
    if unknown:
        from tinylogbert.errors import TinyLogBERTError
        raise TinyLogBERTError(f"unknown development log(s) {unknown}; "
                               f"choose from {[d.name for d in DEV_LOGS]}")
    axes = tuple(t.strip() for t in getattr(args, "axes", "base").split(",") if t.strip())
    if not axes or set(axes) - set(AXES):
        from tinylogbert.errors import TinyLogBERTError
        raise TinyLogBERTError(f"--axes: choose from {list(AXES)}")
    command = (f"{prog} --logs {','.join(logs)} --seeds {' '.join(map(str, args.seeds))} "
               f"--axes {','.join(axes)}")
    run_suite(logs, args.seeds, args.quick, args.out_dir,
              command + (" --quick" if args.quick else "") + (" --merge" if args.merge else ""),
              merge=getattr(args, "merge", False), axes=axes)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite",
                                     description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run_reporting_errors(run_from_args, parser.parse_args(argv), "python -m benchmarks.suite")


if __name__ == "__main__":
    sys.exit(main())

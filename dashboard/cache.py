"""The dashboard's expensive steps, each behind a Streamlit cache so a rerun never repeats them.

The model is a shared resource (loaded once per checkpoint version for all sessions); projections
are cached data keyed by the workspace token, so moving the threshold or switching pages reuses
them. Scores live in ``st.session_state`` (see ``state.py``), not here: they belong to one user.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
from tinylogbert.errors import LogInputError
from tinylogbert.scoring.detector import TinyLogBERTDetector

from .projection import SessionSample, project, sample_sessions
from .scoring import LogUpload
from .workspace import Workspace, parse_label_bytes

REPO_ROOT = Path(__file__).resolve().parent.parent
# The demo log: the 2,516 HDFS blocks that come *after* the shipped model's training sample, so
# a newcomer sees how it scores blocks it never trained on (not its own training data).
SAMPLE_LOG = REPO_ROOT / "sample_data" / "HDFS_heldout.log.gz"
SAMPLE_LABELS = REPO_ROOT / "sample_data" / "HDFS_heldout_labels.csv"


@st.cache_resource(show_spinner="Loading the model…", max_entries=4)
def load_detector(path: str, stamp: float) -> TinyLogBERTDetector:
    """``stamp`` (the checkpoint's mtime) makes a rewritten checkpoint load afresh."""
    del stamp
    return TinyLogBERTDetector.load(path, runtime="auto")  # as the CLI and the API


@st.cache_resource(show_spinner="Reading the HDFS sample (later blocks)…")
def load_sample() -> tuple[LogUpload, bytes]:
    """The bundled HDFS sample and its label CSV (read once, shared read-only)."""
    try:
        log, labels = SAMPLE_LOG.read_bytes(), SAMPLE_LABELS.read_bytes()
    except OSError as exc:
        raise LogInputError(f"the bundled HDFS sample cannot be read ({exc})") from None
    parse_label_bytes(labels, SAMPLE_LABELS.name)  # fail early if the bundled file is broken
    return LogUpload.from_bytes(log, SAMPLE_LOG.name, str(SAMPLE_LOG)), labels


@st.cache_data(show_spinner=False, max_entries=16)
def session_map(
    token: str, labels_key: str, method: str, neighbourhood: float, max_points: int,
    _workspace: Workspace,
) -> tuple[SessionSample, np.ndarray]:
    """Sample and project one workspace's session embeddings (cached per token and settings)."""
    del token, labels_key  # cache keys only
    scored = _workspace.base
    sample = sample_sessions(scored.session_scores, _workspace.session_labels, max_points)
    coords = project(scored.session_embeddings[sample.indices], method, neighbourhood)
    return sample, coords

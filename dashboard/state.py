"""State shared by every page (``st.session_state``) and the sidebar widgets that drive it.

One threshold for the whole app. The sidebar shows it twice: as a slider over the share of
sessions it flags (each step changes the verdict on a comparable number of sessions, wherever the
scores bunch up) and as the exact score, typed in. Either one moves the other through callbacks
(which run before the script, so every page of that rerun sees the new value). A newly scored log
starts at the model's label-free threshold.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
from tinylogbert.reports.display import format_threshold, plural
from tinylogbert.scoring.results import ScoreResult

from .models import SHIPPED_MODEL, default_model_path, remove_trained_folder
from .threshold import flagged_percent, threshold_for_share
from .workspace import Workspace

WORKSPACE = "workspace"
THRESHOLD = "threshold"
SHARE = "threshold_share"  # the slider: % of sessions flagged
VALUE = "threshold_value"  # the number input: the threshold itself
WIDGETS_STALE = "threshold_widgets_stale"
TRAINED_MODEL = "trained_model_path"
SAVED_MODEL = "saved_model_path"  # where the user saved the trained model (outlives the session)

UPLOAD_PAGE = "views/upload.py"
SHARE_STEP = 0.1  # percent of sessions per arrow key press
# The slider spans 0 % to this share (more when the model's own threshold flags more): the
# browser's PageUp/PageDown move a tenth of the range, 2.5 % here instead of 10 % (five presses
# went 0 % -> 65 %); any threshold, flagging any share, can still be typed in below it.
SHARE_RANGE = 25.0


def share_max(workspace: Workspace) -> float:
    """The slider's top: ``SHARE_RANGE``, or the model threshold's share rounded up to 5 %."""
    model_share = flagged_percent(workspace.scored.session_scores, workspace.model_threshold)
    return float(min(100.0, max(SHARE_RANGE, 5.0 * np.ceil(model_share / 5.0))))


# ---- workspace & threshold ------------------------------------------------------------------
def current_workspace() -> Workspace | None:
    return st.session_state.get(WORKSPACE)


def install_workspace(workspace: Workspace) -> None:
    """Make ``workspace`` current and start it at the model's threshold."""
    st.session_state[WORKSPACE] = workspace
    st.session_state[THRESHOLD] = workspace.model_threshold
    st.session_state[WIDGETS_STALE] = True


def current_threshold() -> float:
    workspace = current_workspace()
    default = workspace.model_threshold if workspace else 0.0
    return float(st.session_state.get(THRESHOLD, default))


def current_result() -> ScoreResult | None:
    workspace = current_workspace()
    return workspace.at(current_threshold()) if workspace else None


def require_workspace() -> Workspace | None:
    """The current workspace, or a friendly pointer to the Upload page when there is none."""
    workspace = current_workspace()
    if workspace is None:
        st.info("No log is scored yet: upload one (or use the HDFS sample) first.",
                icon=":material/description:")
        st.page_link(UPLOAD_PAGE, label="Go to Upload", icon=":material/upload:")
    return workspace


# ---- model choice ---------------------------------------------------------------------------
def active_model_path() -> Path:
    """A model trained in this session if the user switched to it, else the default."""
    trained = st.session_state.get(TRAINED_MODEL)
    return Path(trained) if trained else default_model_path()


def use_trained_model(path: Path | None) -> None:
    """Switch to a model trained in this session (``None``: back to the default model). The
    previous one is no longer used by this session: its temporary folder is deleted."""
    previous = st.session_state.get(TRAINED_MODEL)
    if previous != (str(path) if path else None):
        st.session_state.pop(SAVED_MODEL, None)
    if path is None:
        st.session_state.pop(TRAINED_MODEL, None)
    else:
        st.session_state[TRAINED_MODEL] = str(path)
    if previous and previous != str(path):
        remove_trained_folder(previous)


def command_model_path(path: str | Path) -> str | Path:
    """The model a suggested command should name: the saved copy of a dashboard-trained model
    when there is one (the temporary folder is gone once Streamlit stops)."""
    saved = st.session_state.get(SAVED_MODEL)
    trained = st.session_state.get(TRAINED_MODEL)
    return saved if saved and trained and str(path) == trained else path


def describe_model(path: Path) -> str:
    if st.session_state.get(TRAINED_MODEL):
        return f"trained in this session ({path})"
    if path.resolve() == SHIPPED_MODEL.resolve():
        return "the shipped checkpoint (checkpoint/)"
    return f"{path} (from $TINYLOGBERT_MODEL)"


# ---- threshold widgets ----------------------------------------------------------------------
def _set_threshold(scores: np.ndarray, threshold: float, keep_value: bool = False) -> None:
    """Make ``threshold`` current and show it in both widgets (from a callback: before they
    are drawn)."""
    st.session_state[THRESHOLD] = float(threshold)
    st.session_state[SHARE] = _shown_share(scores, threshold)
    if not keep_value:
        st.session_state[VALUE] = float(threshold)


def _shown_share(scores: np.ndarray, threshold: float) -> float:
    """The share the slider shows: the one flagged, at most the slider's top."""
    workspace = current_workspace()
    top = share_max(workspace) if workspace else 100.0
    return min(flagged_percent(scores, threshold), top)


def _on_share(scores: np.ndarray) -> None:
    current = flagged_percent(scores, current_threshold())
    _set_threshold(scores, threshold_for_share(scores, float(st.session_state[SHARE]), current))


def _on_value(scores: np.ndarray) -> None:
    _set_threshold(scores, float(st.session_state[VALUE]), keep_value=True)


def _reset(workspace: Workspace) -> None:
    st.session_state[THRESHOLD] = workspace.model_threshold
    st.session_state[WIDGETS_STALE] = True


def render_threshold_sidebar() -> None:
    """The shared threshold controls; drawn by ``app.py`` on every page."""
    workspace = current_workspace()
    with st.sidebar:
        st.subheader("Threshold")
        if workspace is None:
            st.caption("Score a log first; the threshold then applies to every page.")
            return
        scores = workspace.scored.session_scores
        threshold = current_threshold()
        if st.session_state.pop(WIDGETS_STALE, False) or SHARE not in st.session_state:
            st.session_state[SHARE] = _shown_share(scores, threshold)
            st.session_state[VALUE] = threshold
        top = share_max(workspace)
        st.slider(
            "Share of sessions flagged", min_value=0.0, max_value=top, step=SHARE_STEP,
            format="%.1f%%", key=SHARE, on_change=_on_share, args=(scores,),
            help="Flags the highest-scoring sessions up to this share of the log: each step "
                 f"({SHARE_STEP:g} %; PageUp/PageDown {top / 10:g} %) moves the verdict on about "
                 "the same number of sessions. Tied sessions are flagged together, so the "
                 f"slider settles on the nearest share they allow. It ends at {top:g} %: type a "
                 "threshold below to flag more.",
        )
        st.number_input(
            "Threshold (session score)", step=0.01, format="%.4f", key=VALUE,
            on_change=_on_value, args=(scores,),
            help="The exact threshold: sessions scoring at or above it are anomalies. Starts at "
                 "the model's label-free threshold.",
        )
        flagged = workspace.at(threshold).n_anomalous_sessions  # feedback's marks included
        st.markdown(
            f"**{flagged:,}** of {plural(len(scores), 'session')} flagged "
            f"({flagged / max(len(scores), 1):.2%}) at **{format_threshold(threshold)}**"
        )
        st.caption(f"Model's label-free threshold: {format_threshold(workspace.model_threshold)}")
        st.button("Reset to the model's threshold", on_click=_reset, args=(workspace,),
                  disabled=threshold == workspace.model_threshold, key="reset_threshold")


def render_source_sidebar() -> None:
    """What is loaded: file and model, so every page says what it shows."""
    workspace = current_workspace()
    with st.sidebar:
        st.divider()
        if workspace is not None:
            st.caption(f"Log: **{workspace.source}** · {plural(workspace.report.n_lines, 'line')} "
                       f"· {plural(workspace.scored.n_sessions, 'session')}")
        st.caption(f"Model: {describe_model(active_model_path())}")

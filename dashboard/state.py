"""State shared by every page (``st.session_state``) and the sidebar widgets that drive it.

One threshold for the whole app: the sidebar shows it as a score slider and as "flag the top N %";
either one moves the other through callbacks (which run before the script, so every page of that
rerun sees the new value). A newly scored log resets it to the model's label-free threshold.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
from tinylogbert.scoring.results import ScoreResult

from .models import SHIPPED_MODEL, default_model_path, remove_trained_folder
from .threshold import flagged_percent, threshold_for_top_percent
from .workspace import Workspace

WORKSPACE = "workspace"
THRESHOLD = "threshold"
SLIDER = "threshold_slider"
TOP_PERCENT = "threshold_top_percent"
WIDGETS_STALE = "threshold_widgets_stale"
TRAINED_MODEL = "trained_model_path"

UPLOAD_PAGE = "views/upload.py"
SLIDER_STEPS = 1000


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
    if path is None:
        st.session_state.pop(TRAINED_MODEL, None)
    else:
        st.session_state[TRAINED_MODEL] = str(path)
    if previous and previous != str(path):
        remove_trained_folder(previous)


def describe_model(path: Path) -> str:
    if st.session_state.get(TRAINED_MODEL):
        return f"trained in this session ({path})"
    if path.resolve() == SHIPPED_MODEL.resolve():
        return "the shipped checkpoint (checkpoint/)"
    return f"{path} (from $TINYLOGBERT_MODEL)"


# ---- threshold widgets ----------------------------------------------------------------------
def _slider_range(scores: np.ndarray, model_threshold: float) -> tuple[float, float]:
    finite = scores[np.isfinite(scores)]
    low = min(float(finite.min()) if len(finite) else 0.0, model_threshold)
    high = max(float(finite.max()) if len(finite) else 1.0, model_threshold)
    margin = max(high - low, 1e-3) * 0.01  # room above the top score: "flag nothing" is reachable
    return low, high + margin


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return float(min(max(value, bounds[0]), bounds[1]))


def _on_slider(scores: np.ndarray) -> None:
    threshold = float(st.session_state[SLIDER])
    st.session_state[THRESHOLD] = threshold
    st.session_state[TOP_PERCENT] = round(flagged_percent(scores, threshold), 2)


def _on_top_percent(scores: np.ndarray, bounds: tuple[float, float]) -> None:
    threshold = threshold_for_top_percent(scores, float(st.session_state[TOP_PERCENT]))
    st.session_state[THRESHOLD] = threshold
    st.session_state[SLIDER] = _clamp(threshold, bounds)


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
        bounds = _slider_range(scores, workspace.model_threshold)
        threshold = current_threshold()
        if st.session_state.pop(WIDGETS_STALE, False) or SLIDER not in st.session_state:
            st.session_state[SLIDER] = _clamp(threshold, bounds)
            st.session_state[TOP_PERCENT] = round(flagged_percent(scores, threshold), 2)
        st.slider(
            "Session score threshold", min_value=bounds[0], max_value=bounds[1],
            step=(bounds[1] - bounds[0]) / SLIDER_STEPS, format="%.3f", key=SLIDER,
            on_change=_on_slider, args=(scores,),
            help="Sessions scoring at or above it are anomalies. Starts at the model's "
                 "label-free threshold.",
        )
        st.number_input(
            "…or flag the top N % of sessions", min_value=0.0, max_value=100.0, step=0.5,
            format="%.2f", key=TOP_PERCENT, on_change=_on_top_percent, args=(scores, bounds),
            help="Sets the threshold at the score of the session ranked at N %; tied sessions "
                 "are flagged together.",
        )
        flagged = workspace.at(threshold).n_anomalous_sessions  # feedback's marks included
        st.markdown(
            f"**{flagged:,}** of {len(scores):,} sessions flagged "
            f"({flagged / max(len(scores), 1):.2%}) at **{threshold:.4f}**"
        )
        st.caption(f"Model's label-free threshold: {workspace.model_threshold:.4f}")
        st.button("Reset to the model's threshold", on_click=_reset, args=(workspace,),
                  disabled=threshold == workspace.model_threshold, key="reset_threshold")


def render_source_sidebar() -> None:
    """What is loaded: file and model, so every page says what it shows."""
    workspace = current_workspace()
    with st.sidebar:
        st.divider()
        if workspace is not None:
            st.caption(f"Log: **{workspace.source}** · {workspace.report.n_lines:,} lines · "
                       f"{workspace.scored.n_sessions:,} sessions")
        st.caption(f"Model: {describe_model(active_model_path())}")

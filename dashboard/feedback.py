"""The anomalies page's "Mark as normal": feedback recorded in the model folder (``feedback.json``,
as ``tinylogbert feedback --normal`` does) and applied to the current workspace at once, without
scoring again; the model cache reloads the model (its stamp moved), so later scores apply it too.
"""
from __future__ import annotations

from tinylogbert.scoring.feedback import FeedbackEntry, apply, record

from .models import model_stamp
from .workspace import Workspace


def mark_session_normal(workspace: Workspace, session_id: str) -> FeedbackEntry:
    """Record ``session_id`` of ``workspace`` as normal in its model's folder; returns the entry
    (an existing one when a session like it was marked before)."""
    result = workspace.scored
    chosen: list[FeedbackEntry] = []

    def change(feedback):
        updated, entries = feedback.with_sessions(result.line_words, result.sessions,
                                                  [session_id], workspace.source)
        chosen.extend(entries)
        return updated

    feedback = record(workspace.model_path, change)
    workspace.scored = apply(workspace.scored, feedback)
    if workspace.labelled is not None:
        workspace.labelled = apply(workspace.labelled, feedback)
    workspace._view = None
    # The same key the upload page computes for this input with the model as it is now, so it
    # does not score the log again for a change already applied here.
    workspace.input_key = repr((workspace.input_digest, workspace.settings,
                                str(workspace.model_path), model_stamp(workspace.model_path)))
    return chosen[0]

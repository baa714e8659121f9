"""Download: the scored CSVs at the current threshold, byte for byte what the CLI writes."""
from __future__ import annotations

import shlex
from pathlib import Path

import streamlit as st
from tinylogbert.reports.display import format_threshold, plural

from dashboard import state
from dashboard.explain_view import blank_missing_text
from dashboard.models import REPO_ROOT

PREVIEW_ROWS = 20


def from_repo_root(path: str | Path) -> str:
    """``path`` as a command run from the repository root reaches it: relative to the root
    when it lies inside, else absolute."""
    resolved = Path(path).expanduser().resolve()
    try:
        return str(resolved.relative_to(REPO_ROOT.resolve()))
    except ValueError:
        return str(resolved)


def score_command(workspace, threshold: float, stem: str) -> str:
    """The ``tinylogbert score`` command that writes the same two files. An uploaded file has no
    path on this machine (the browser sent its bytes), so its path is left for the user to set."""
    log = from_repo_root(workspace.source_path) if workspace.source_path else "$LOG"
    command = [
        "tinylogbert", "score", log, "--model",
        from_repo_root(state.command_model_path(workspace.model_path)),
        "--threshold", repr(threshold), *workspace.settings.cli_options(),
        "--out", f"{stem}.lines.csv", "--sessions-out", f"{stem}.sessions.csv",
    ]
    text = shlex.join(command).replace("'$LOG'", '"$LOG"')
    if workspace.source_path:
        return text
    return (f"LOG={shlex.quote('path/to/' + workspace.source)}  # where the file is on your "
            f"machine\n{text}")


st.title("Download")
workspace = state.require_workspace()
if workspace is not None:
    threshold = state.current_threshold()
    export = workspace.export_at(threshold)
    stem = workspace.source.removesuffix(".gz").rsplit(".", 1)[0] or "log"
    st.write(
        f"Scores of **{workspace.source}** at threshold **{format_threshold(threshold)}** "
        f"({plural(export.n_anomalous_sessions, 'anomalous session')}). The files are generated "
        "when you click."
    )
    left, right = st.columns(2)
    left.download_button(
        f"Download lines CSV ({plural(export.n_lines, 'row')})", data=export.lines_csv_bytes,
        file_name=f"{stem}.lines.csv", mime="text/csv", on_click="ignore", type="primary",
        key="download_lines", icon=":material/download:",
    )
    right.download_button(
        f"Download sessions CSV ({plural(export.n_sessions, 'row')})",
        data=export.sessions_csv_bytes, file_name=f"{stem}.sessions.csv", mime="text/csv",
        on_click="ignore", key="download_sessions", icon=":material/download:",
    )
    st.markdown(f"The same files from the command line, run from the repository root "
                f"(`{REPO_ROOT}`):")
    st.code(score_command(workspace, threshold, stem), language="bash", wrap_lines=True)
    if (st.session_state.get(state.TRAINED_MODEL) == str(workspace.model_path)
            and not st.session_state.get(state.SAVED_MODEL)):
        st.warning("This model was trained in the dashboard and lives in a temporary folder, "
                   "deleted when the dashboard stops: save it (Upload page, *Save the model*) "
                   "and the command above names the saved folder.", icon=":material/save:")
    st.caption(
        "One row per input line (in order, unparsed lines included) and one per session. "
        "is_anomaly in the lines file uses the model's line threshold; session_is_anomaly and the "
        "sessions file use the threshold above. Labels you uploaded are not mixed in."
        + ("" if workspace.source_path else " The browser sent the file's bytes, not its path: "
           "set LOG to where it is on your machine.")
    )
    st.markdown("**Preview** (first lines)")
    st.dataframe(blank_missing_text(export.line_table.slice(0, PREVIEW_ROWS).to_pandas()),
                 hide_index=True,
                 key="download_preview")

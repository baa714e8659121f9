"""Download: the scored CSVs at the current threshold, byte for byte what the CLI writes."""
from __future__ import annotations

import shlex

import streamlit as st

from dashboard import state

PREVIEW_ROWS = 20

st.title("Download")
workspace = state.require_workspace()
if workspace is not None:
    threshold = state.current_threshold()
    export = workspace.export_at(threshold)
    stem = workspace.source.removesuffix(".gz").rsplit(".", 1)[0] or "log"
    st.write(
        f"Scores of **{workspace.source}** at threshold **{threshold:.4f}** "
        f"({export.n_anomalous_sessions:,} anomalous sessions). The files are generated when you "
        "click."
    )
    left, right = st.columns(2)
    left.download_button(
        f"Download lines CSV ({export.n_lines:,} rows)", data=export.lines_csv_bytes,
        file_name=f"{stem}.lines.csv", mime="text/csv", on_click="ignore", type="primary",
        key="download_lines", icon=":material/download:",
    )
    right.download_button(
        f"Download sessions CSV ({export.n_sessions:,} rows)", data=export.sessions_csv_bytes,
        file_name=f"{stem}.sessions.csv", mime="text/csv", on_click="ignore",
        key="download_sessions", icon=":material/download:",
    )
    command = [
        "tinylogbert", "score", workspace.source, "--model", workspace.model_path,
        "--threshold", repr(threshold), *workspace.settings.cli_options(),
        "--out", f"{stem}.lines.csv", "--sessions-out", f"{stem}.sessions.csv",
    ]
    st.markdown("The same files from the command line:")
    st.code(shlex.join(command), language="bash", wrap_lines=True)
    st.caption(
        "One row per input line (in order, unparsed lines included) and one per session. "
        "is_anomaly in the lines file uses the model's line threshold; session_is_anomaly and the "
        "sessions file use the threshold above. Labels you uploaded are not mixed in."
    )
    st.markdown("**Preview** (first lines)")
    st.dataframe(export.line_table.slice(0, PREVIEW_ROWS).to_pandas(), hide_index=True,
                 key="download_preview")

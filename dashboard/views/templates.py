"""Templates: every distinct normalised line, how common it is here and in training, how rare the
model finds it, where it appears and how often its sessions are flagged; pick one to list its
sessions and explain one."""
from __future__ import annotations

import streamlit as st
from tinylogbert.reports.display import format_threshold, plural
from tinylogbert.reports.templates_table import filter_templates, template_table

from dashboard import state
from dashboard.explain_view import explore_sessions, pick_clicked_row

SEARCH = "templates_search"
ABSENT = "templates_absent"
TABLE = "templates_table"
PICKED = "templates_picked"  # the template whose sessions are listed
SESSIONS = "templates_sessions"
PICK = "templates_session"
MAX_LISTED_SESSIONS = 2000
SESSION_COLUMNS = ["session_id", "score", "grade", "is_anomaly", "n_lines", "first_line_no",
                   "top_line_no"]


st.title("Templates")
workspace = state.require_workspace()
if workspace is not None and workspace.model_lines is None:
    st.info("This log was scored without the model's line statistics; score it again on the "
            "Upload page.", icon=":material/info:")
elif workspace is not None:
    threshold = state.current_threshold()
    result = workspace.at(threshold)
    model = workspace.model_lines
    index = workspace.templates
    table = template_table(index, result, model, workspace.raw_lines,
                           include_absent=st.session_state.get(ABSENT, False))
    present = table[table["count"] > 0]
    cols = st.columns(4)
    cols[0].metric("Distinct lines here", f"{len(present):,}",
                   help="After masking ids, numbers and paths: what the model reads.")
    cols[1].metric("Not known by name", f"{int(present['new'].sum()):,}",
                   help=f"Outside the model's line vocabulary: never in its training log, or "
                        f"fewer than {model.min_count} times there (pooled with new lines).")
    cols[2].metric("Model's vocabulary", f"{len(model.vocabulary):,}",
                   help="Distinct lines the model learned by name.")
    cols[3].metric("Vocabulary lines absent here",
                   f"{sum(1 for t in model.vocabulary if index.position(t) < 0):,}")
    left, right = st.columns([2, 1], vertical_alignment="bottom")
    search = left.text_input("Search", key=SEARCH, placeholder="words of the line or the "
                             "example, e.g. exception")
    right.toggle("Add the vocabulary lines absent here", key=ABSENT,
                 help="Lines the model learned in training that this log never has (count 0).")
    shown = filter_templates(table, search).reset_index(drop=True)
    trained = ("lines of the training sessions the model itself flagged left out, as its "
               "rarity counts them" if model.robust else "as its rarity counts them")
    st.caption(
        f"{plural(len(shown), 'template')}"
        + (f" matching '{search.strip()}'" if search.strip() else "")
        + f", most frequent first; click a column to sort, a row to list its sessions. "
        f"train_count: occurrences in the training log ({trained}); empty for lines the model "
        "keeps no count of. rarity: -log p(line), in nats. flagged_share: of the sessions "
        f"holding the line, the share flagged at {format_threshold(threshold)}.")
    templates = shown["template"].tolist()
    st.dataframe(
        shown, hide_index=True, key=TABLE,
        on_select=lambda: pick_clicked_row(TABLE, PICKED, templates),
        selection_mode="single-row", height=min(38 + 35 * len(shown), 420),
        column_config={
            "template": st.column_config.TextColumn("template", width="large"),
            "train_count": st.column_config.NumberColumn("train_count"),
            "rarity": st.column_config.NumberColumn(format="%.2f"),
            "flagged_share": st.column_config.ProgressColumn(
                "flagged_share", min_value=0.0, max_value=1.0, format="%.2f"),
            "example": st.column_config.TextColumn("example", width="large"),
        },
    )
    picked = st.session_state.get(PICKED)
    if picked not in set(table["template"]):
        st.caption("Select a row to list the sessions that hold that line.")
    else:
        members = index.sessions_with(picked)
        row = table.set_index("template").loc[picked]
        st.subheader(plural(len(members), "session") + " with this line")
        st.code(picked or "(a line with no words)", language=None, wrap_lines=True)
        if not len(members):
            st.info("This log has no line of it (the model learned it from its training log).",
                    icon=":material/info:")
        else:
            frame = result.session_frame.iloc[members]
            chosen = (frame.sort_values("score", ascending=False, kind="stable")
                      [[c for c in SESSION_COLUMNS if c in frame.columns]]
                      .head(MAX_LISTED_SESSIONS).reset_index(drop=True))
            st.caption(f"{int(row['flagged_sessions']):,} flagged; highest score first"
                       + (f" (first {MAX_LISTED_SESSIONS:,})" if len(members) >
                          MAX_LISTED_SESSIONS else "") + ". Click a row to explain it.")
            explore_sessions(result, chosen, table_key=SESSIONS, pick_key=PICK,
                             lines_key="templates_session_lines", max_height=320)

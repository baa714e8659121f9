"""Timeline: flagged sessions and lines per period, the volume beside them, and where lines the
model never learned first appear; pick a period to list its sessions and explain one."""
from __future__ import annotations

import pandas as pd
import streamlit as st
from tinylogbert.reports.display import format_threshold, plural
from tinylogbert.reports.timeline import bucket_counts

from dashboard import state
from dashboard.charts import selected_bucket, timeline_figure
from dashboard.explain_view import explore_sessions

PLACE = "timeline_place"
BUCKET = "timeline_bucket"
CHART = "timeline_chart"
APPLIED = "_timeline_chart_bucket"  # the chart selection last applied to the period picker
SESSIONS = "timeline_sessions"
PICK = "timeline_session"
PLACES = {"top": "its top line (where its score comes from)", "start": "its first line"}
SESSION_COLUMNS = ["session_id", "score", "grade", "is_anomaly", "n_lines", "first_line_no",
                   "top_line_no", "top_line"]


def default_bucket(counts: pd.DataFrame) -> int:
    """The period with the most flagged sessions, else the busiest one."""
    column = "flagged_sessions" if counts["flagged_sessions"].any() else "lines"
    return int(counts[column].to_numpy().argmax())


st.title("Timeline")
workspace = state.require_workspace()
if workspace is not None:
    threshold = state.current_threshold()
    result = workspace.at(threshold)
    buckets = workspace.buckets
    new = workspace.new_templates
    place = st.radio("Count each session in the period of", list(PLACES), key=PLACE,
                     format_func=PLACES.get, horizontal=True,
                     help="A session spans time; it is counted once, in the period of its top "
                          "line (the line that weighs most in its score) or of its first line.")
    counts = bucket_counts(buckets, result, new, place)
    labels = counts["label"].tolist()
    if buckets.mode == "time":
        unit = buckets.unit if buckets.unit[0].isdigit() else f"one {buckets.unit}"
        st.caption(
            f"{plural(buckets.n, 'period')} of {unit} (chosen from the log's span), "
            f"{labels[0]} to {labels[-1]}; empty periods are kept."
            + (f" {plural(buckets.n_untimed, 'line')} without a readable time count with the "
               "line before them." if buckets.n_untimed else "")
            + (f" The log's timestamps have no year: its last line is taken as "
               f"{workspace.assumed_year} ("
               + ("the file's modification year" if workspace.source_path else "this year")
               + "), a year earlier before each place the months go backwards."
               if workspace.assumed_year else ""))
        new_x = pd.to_datetime(workspace.line_seconds[new["line_no"].to_numpy() - 1]
                               if len(new) else [], unit="s")
    else:
        st.caption(f"The log has no readable timestamps on most lines: {plural(buckets.n, 'run')} "
                   f"of {buckets.unit}, in file order.")
        new_x = new["line_no"].to_numpy()
    cols = st.columns([1, 1.6, 1.2, 1.2])  # room for a period's date and time
    cols[0].metric("Sessions flagged", f"{result.n_anomalous_sessions:,}",
                   help=f"of {plural(result.n_sessions, 'session')}, at threshold "
                        f"{format_threshold(threshold)}")
    busy = counts.loc[default_bucket(counts)]
    cols[1].metric("Most flagged period", busy["label"] if busy["flagged_sessions"] else "none",
                   help=f"{plural(int(busy['flagged_sessions']), 'flagged session')}")
    cols[2].metric("Lines over the line threshold", f"{int(counts['anomalous_lines'].sum()):,}",
                   help=f"line threshold {format_threshold(result.line_threshold)} (the model's)")
    cols[3].metric("Lines not known by name", f"{len(new):,}",
                   help="Distinct lines outside the model's line vocabulary: never in its "
                        "training log, or too rare there to learn by name (the model pools "
                        "them with new ones). Each is marked where it first appears.")
    event = st.plotly_chart(
        timeline_figure(counts, buckets.mode, buckets.width, new, new_x, threshold), key=CHART,
        on_select="rerun", selection_mode=("points", "box"),
    )
    clicked = selected_bucket(event.selection if event else None)
    if clicked is not None and clicked != st.session_state.get(APPLIED):
        st.session_state[BUCKET] = clicked  # the picker below follows a new click on the chart
    st.session_state[APPLIED] = clicked
    if st.session_state.get(BUCKET) not in range(buckets.n):
        st.session_state[BUCKET] = default_bucket(counts)

    if len(new):
        with st.expander(f"{plural(len(new), 'line')} not known by name, where each first "
                         "appears", icon=":material/fiber_new:"):
            st.dataframe(new.assign(period=[labels[b] for b in new["bucket"]])
                         [["line_no", "timestamp", "period", "count", "template"]],
                         hide_index=True, key="timeline_new_lines")

    bucket = st.selectbox(
        "Period", list(range(buckets.n)), key=BUCKET,
        format_func=lambda b: (f"{labels[b]} · {counts.at[b, 'flagged_sessions']:,} of "
                               f"{plural(int(counts.at[b, 'sessions']), 'session')} flagged · "
                               f"{plural(int(counts.at[b, 'lines']), 'line')}"),
        help="Or click a bar in the chart.",
    )
    members = buckets.sessions_in(bucket, place)
    frame = result.session_frame.assign(top_line=workspace.top_line_messages)
    chosen = (frame.iloc[members].sort_values("score", ascending=False, kind="stable")
              [[c for c in SESSION_COLUMNS if c in frame.columns]].reset_index(drop=True))
    if chosen.empty:
        st.info(f"No session is counted in {labels[bucket]}: its lines belong to sessions "
                "counted in other periods.", icon=":material/schedule:")
    else:
        n_flagged = int(chosen["is_anomaly"].sum())
        st.markdown(f"**{plural(len(chosen), 'session')} in {labels[bucket]}**, "
                    f"{n_flagged:,} flagged, highest score first. Click a row to explain it.")
        explore_sessions(result, chosen, table_key=SESSIONS, pick_key=PICK,
                         lines_key="timeline_session_lines", max_height=320,
                         column_config={"top_line": st.column_config.TextColumn("top line")})

"""The Streamlit dashboard, page by page, with Streamlit's AppTest (no browser, tiny model).

Each test drives the app the way a user does (upload, slider, page switch) and checks what the
pages show against values computed independently from the scored result.
"""
from __future__ import annotations

import gzip
import itertools
import json
import shlex
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, SMALL_LABELS, SMALL_LOG
from sklearn.metrics import roc_auc_score
from streamlit.testing.v1 import AppTest

APP = ROOT / "dashboard" / "app.py"
PAGES = ["views/distribution.py", "views/roc_pr.py", "views/embeddings.py",
         "views/anomalies.py", "views/timeline.py", "views/templates.py", "views/download.py"]
TIMEOUT = 120


@pytest.fixture
def app(tiny_checkpoint, monkeypatch) -> AppTest:
    monkeypatch.setenv("TINYLOGBERT_MODEL", str(tiny_checkpoint))
    return AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()


def upload(at: AppTest, log: bytes | None = None, labels: bytes | None = None,
           name: str = "hdfs_small.log.gz") -> AppTest:
    at.file_uploader(key="log_file").upload(name, SMALL_LOG.read_bytes() if log is None else log,
                                            "application/octet-stream")
    if labels is not None:
        at.file_uploader(key="labels_file").upload("labels.csv", labels, "text/csv")
    return at.run()


def no_traceback(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def workspace(at: AppTest):
    return at.session_state["workspace"]


def set_threshold(at: AppTest, threshold: float) -> AppTest:
    """Type an exact threshold into the sidebar's number input."""
    return at.number_input(key="threshold_value").set_value(float(threshold)).run()


# ---- no file, no labels ---------------------------------------------------------------------
def test_every_page_loads_without_a_log_and_points_to_upload(app):
    no_traceback(app)
    assert any("Drop a log file" in i.value for i in app.info)
    assert any("Score a log first" in c.value for c in app.sidebar.caption)
    for page in PAGES:
        app.switch_page(page).run()
        no_traceback(app)
        assert not errors(app), page
        assert any("No log is scored yet" in i.value for i in app.info), page


def test_upload_scores_the_log_and_summarises_it(app):
    at = upload(app, labels=SMALL_LABELS.read_bytes())
    no_traceback(at)
    assert not errors(at)
    ws = workspace(at)
    assert metric(at, "Lines") == "7,481"
    assert metric(at, "Sessions") == f"{ws.scored.n_sessions:,}" == "300"
    flagged = int((ws.scored.session_scores >= ws.model_threshold).sum())
    assert metric(at, "Anomalous sessions") == f"{flagged:,}"
    assert metric(at, "Lines that did not parse") == "0"
    assert any("16 anomalous" in s.value for s in at.success)
    assert "hdfs" in at.expander[0].label  # the detected format is shown
    # The threshold starts at the model's label-free threshold, and the slider at its share.
    assert at.number_input(key="threshold_value").value == pytest.approx(ws.model_threshold)
    assert at.slider(key="threshold_share").value == pytest.approx(100 * flagged / 300)


def test_moving_the_slider_rejudges_every_page_without_rescoring(app, monkeypatch):
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    calls = []
    original = TinyLogBERTDetector.score
    monkeypatch.setattr(TinyLogBERTDetector, "score",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    at = upload(app, labels=SMALL_LABELS.read_bytes())
    scores = workspace(at).scored.session_scores
    # The first score down from the top that flags more than the model does (the slider spans
    # 0-25%: where it lands, within its range).
    flagged_now = workspace(at).scored.n_anomalous_sessions
    threshold = float(next(t for t in np.unique(scores)[::-1] if (scores >= t).sum() > flagged_now))
    assert (scores >= threshold).mean() <= 0.25
    set_threshold(at, threshold)
    expected = int((scores >= threshold).sum())
    assert expected > workspace(at).scored.n_anomalous_sessions  # the threshold really moved
    assert at.session_state["threshold"] == pytest.approx(threshold)
    assert at.slider(key="threshold_share").value == pytest.approx(100 * expected / len(scores))
    assert metric(at, "Anomalous sessions") == f"{expected:,}"

    at.switch_page("views/distribution.py").run()
    assert metric(at, "Sessions flagged") == f"{expected:,}"
    caption = " ".join(c.value for c in at.caption)
    assert "times the weight of its severity level" in caption
    at.switch_page("views/roc_pr.py").run()
    labels = workspace(at).session_labels
    recall = ((scores >= threshold) & (labels == 1)).sum() / (labels == 1).sum()
    assert metric(at, "At this threshold: recall") == f"{recall:.3f}"
    at.switch_page("views/embeddings.py").run()
    at.radio(key="colour_by").set_value("predicted anomaly").run()
    assert f"flagged ({expected:,})" in at.get("plotly_chart")[0].proto.spec
    at.switch_page("views/anomalies.py").run()
    assert len(at.dataframe[0].value) == expected
    at.switch_page("views/timeline.py").run()
    assert metric(at, "Sessions flagged") == f"{expected:,}"
    at.switch_page("views/download.py").run()
    assert f"({expected:,} anomalous sessions)" in at.markdown[0].value
    no_traceback(at)
    assert len(calls) == 1


def test_the_slider_moves_by_share_of_sessions_flagged(app):
    from tinylogbert.reports.display import format_threshold

    at = upload(app)
    scores = workspace(at).scored.session_scores
    share = at.slider(key="threshold_share")
    at = share.set_value(10.0).run()
    threshold = at.session_state["threshold"]
    assert (scores >= threshold).sum() >= 30  # 10 % of 300, ties flagged together
    higher = np.unique(scores[scores > threshold])
    assert not len(higher) or (scores >= higher[0]).sum() <= 30  # and no more than that
    assert at.number_input(key="threshold_value").value == pytest.approx(threshold)
    assert at.slider(key="threshold_share").value == pytest.approx(
        100 * (scores >= threshold).mean())  # the slider settles on the share it flags
    assert f"at **{format_threshold(threshold)}**" in at.sidebar.markdown[0].value
    # Equal steps flag comparable numbers of sessions, where equal steps of score do not.
    flagged = []
    for percent in (2.0, 4.0, 6.0, 8.0):
        at = at.slider(key="threshold_share").set_value(percent).run()
        flagged.append(int((scores >= at.session_state["threshold"]).sum()))
    assert all(0 < b - a <= 12 for a, b in itertools.pairwise(flagged)), flagged
    # Moving down below a tied group drops the group (never stuck on it).
    tied = np.unique(scores, return_counts=True)
    value = tied[0][np.argmax(tied[1])]  # the score most sessions share
    at = set_threshold(at, value)
    above = at.slider(key="threshold_share").value
    at = at.slider(key="threshold_share").set_value(above - 0.1).run()
    assert at.session_state["threshold"] > value
    assert at.slider(key="threshold_share").value < above
    at.button(key="reset_threshold").click().run()
    assert at.session_state["threshold"] == pytest.approx(workspace(at).model_threshold)
    assert at.number_input(key="threshold_value").value == pytest.approx(
        workspace(at).model_threshold)


# ---- pages ----------------------------------------------------------------------------------
def test_distribution_page_metrics_follow_labels(app):
    from tinylogbert.scoring.evaluate import evaluate_scores

    at = upload(app)
    at.switch_page("views/distribution.py").run()
    assert any("No labels" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 2  # session and line histograms
    assert not any(m.label == "F1" for m in at.metric)

    at.switch_page("views/upload.py").run()
    at.file_uploader(key="labels_file").upload("labels.csv", SMALL_LABELS.read_bytes(),
                                               "text/csv").run()
    at.switch_page("views/distribution.py").run()
    ws = workspace(at)
    ev = evaluate_scores(ws.base.session_scores, ws.session_labels, ws.model_threshold)
    assert metric(at, "Precision") == f"{ev.precision:.3f}"
    assert metric(at, "F1") == f"{ev.f1:.3f}"
    no_traceback(at)


def test_roc_page_without_labels_is_a_message_not_an_error(app):
    at = upload(app)
    at.switch_page("views/roc_pr.py").run()
    no_traceback(at)
    assert not errors(at)
    assert any("need labels" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 0


def test_roc_page_reports_the_auc_of_the_labels(app):
    at = upload(app, labels=SMALL_LABELS.read_bytes())
    at.switch_page("views/roc_pr.py").run()
    ws = workspace(at)
    labels = pd.read_csv(SMALL_LABELS).set_index("BlockId")["Label"].eq("Anomaly").astype(int)
    truth = labels.reindex(ws.scored.sessions.ids.astype(str)).to_numpy()
    assert metric(at, "ROC-AUC") == f"{roc_auc_score(truth, ws.scored.session_scores):.3f}"
    assert len(at.get("plotly_chart")) == 2


def test_embedding_page_projects_sessions_and_colours_by_label(app):
    at = upload(app, labels=SMALL_LABELS.read_bytes())
    at.switch_page("views/embeddings.py").run()
    no_traceback(at)
    assert not errors(at)
    assert at.radio(key="colour_by").value == "label"
    assert len(at.get("plotly_chart")) == 1
    assert any("All 300 sessions" in c.value for c in at.caption)
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert spec["layout"]["yaxis"]["scaleanchor"] == "x"  # one unit as long across as up
    assert spec["layout"]["xaxis"]["constrain"] == spec["layout"]["yaxis"]["constrain"] == "domain"
    assert spec["layout"]["height"] >= 600
    at.radio(key="projection_method").set_value("UMAP").run()
    no_traceback(at)
    assert not errors(at)
    assert len(at.get("plotly_chart")) == 1


def test_anomalies_page_explains_the_top_session(app):
    at = upload(app, labels=SMALL_LABELS.read_bytes())
    at.switch_page("views/anomalies.py").run()
    ws = workspace(at)
    frame = ws.scored.session_frame
    top = frame.sort_values("score", ascending=False, kind="stable")["session_id"].iloc[0]
    assert at.selectbox(key="anomaly_pick").value == top
    assert "<mark>" in at.get("html")[0].value
    lines_table = at.dataframe[-1].value  # all lines of the picked session
    assert len(lines_table) == int(frame.loc[frame["session_id"] == top, "n_lines"].iloc[0])
    second = at.dataframe(key="anomaly_table").value["session_id"].iloc[1]
    at.selectbox(key="anomaly_pick").set_value(second).run()
    no_traceback(at)
    assert at.selectbox(key="anomaly_pick").value == second


def test_anomalies_page_with_nothing_flagged(app):
    at = upload(app)
    top = float(workspace(at).scored.session_scores.max())
    set_threshold(at, top + 1e-3)
    at.switch_page("views/anomalies.py").run()
    no_traceback(at)
    assert any("No session scores at or above" in i.value for i in at.info)


def test_download_is_what_the_cli_writes_at_the_current_threshold(app, tiny_checkpoint, tmp_path):
    from tinylogbert.cli.main import main

    at = upload(app, labels=SMALL_LABELS.read_bytes())
    distinct = np.unique(workspace(at).scored.session_scores)
    k = int(len(distinct) * 0.8)
    # Midway between two scores: the CSV stores scores rounded to 6 decimals, and a threshold on
    # a rounded score can judge its session differently than core's unrounded comparison.
    threshold = float(distinct[k] + distinct[k + 1]) / 2
    set_threshold(at, threshold)
    at.switch_page("views/download.py").run()
    no_traceback(at)
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Download lines CSV (7,481 rows)", "Download sessions CSV (300 rows)"]
    export = workspace(at).export_at(at.session_state["threshold"])
    out, sessions_out = tmp_path / "lines.csv", tmp_path / "sessions.csv"
    assert main(["score", str(SMALL_LOG), "--model", str(tiny_checkpoint), "--threshold",
                 repr(at.session_state["threshold"]), "--out", str(out),
                 "--sessions-out", str(sessions_out)]) == 0
    assert export.lines_csv_bytes() == out.read_bytes()
    assert export.sessions_csv_bytes() == sessions_out.read_bytes()
    assert len(pd.read_csv(out)) == 7481


def _line_vocab(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "line_vocab.json").read_text())


def test_timeline_page_counts_periods_and_explains_their_sessions(app, tiny_checkpoint):
    at = upload(app, labels=SMALL_LABELS.read_bytes())
    at.switch_page("views/timeline.py").run()
    no_traceback(at)
    assert not errors(at)
    ws = workspace(at)
    assert any(c.value.startswith("87 periods of 10 minutes") for c in at.caption)
    # Independently: each session in the 10-minute period of its top line.
    periods = pd.to_datetime(ws.scored.lines["timestamp"], format="%y%m%d %H%M%S").dt.floor(
        "10min")
    frame = ws.scored.session_frame
    period = periods.iloc[frame["top_line_no"] - 1].to_numpy()

    def flagged_by_period(threshold: float) -> pd.Series:
        return pd.Series(frame["score"].to_numpy() >= threshold, index=period).groupby(
            level=0).sum()

    flagged = flagged_by_period(ws.model_threshold)
    busiest = flagged.idxmax()
    assert metric(at, "Sessions flagged") == f"{ws.scored.n_anomalous_sessions:,}"
    assert metric(at, "Most flagged period") == busiest.strftime("%Y-%m-%d %H:%M")
    expected = frame.loc[period == busiest].sort_values("score", ascending=False, kind="stable")
    assert at.dataframe(key="timeline_sessions").value["session_id"].tolist() == expected[
        "session_id"].tolist()
    top = expected["session_id"].iloc[0]
    assert at.selectbox(key="timeline_session").value == top
    assert len(at.dataframe[-1].value) == expected["n_lines"].iloc[0]
    assert any(m.value.startswith("**Why:**") for m in at.markdown)
    # Lines the model never learned, each marked where it first appears.
    words = pd.Series(ws.scored.line_words.to_pylist())
    new = words[~words.isin(_line_vocab(tiny_checkpoint)["lines"])].drop_duplicates()
    assert metric(at, "Lines not known by name") == f"{len(new):,}"
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    marks = next(t for t in spec["data"] if t["name"].startswith("new lines"))
    assert marks["name"] == f"new lines ({len(new)})"
    assert [int(c[1]) for c in marks["customdata"]] == (new.index + 1).tolist()

    # The threshold follows the sidebar; another period lists its own sessions.
    lower = float(np.quantile(ws.scored.session_scores, 0.5))
    at = set_threshold(at, lower)
    flagged = flagged_by_period(lower)
    first = periods.min()
    bucket = int((busiest - first) / pd.Timedelta("10min"))
    option = at.selectbox(key="timeline_bucket").options[bucket]
    assert f" · {flagged[busiest]:,} of {(period == busiest).sum():,} sessions flagged" in option
    quiet = flagged.index[-1]
    at = at.selectbox(key="timeline_bucket").set_value(
        int((quiet - first) / pd.Timedelta("10min"))).run()
    listed = at.dataframe(key="timeline_sessions").value
    assert len(listed) == (period == quiet).sum()
    assert listed["is_anomaly"].sum() == flagged[quiet]
    at.radio(key="timeline_place").set_value("start").run()
    no_traceback(at)
    assert not errors(at)


def test_timeline_of_a_log_without_timestamps_is_in_runs_of_lines(app):
    lines = gzip.decompress(SMALL_LOG.read_bytes()).decode().splitlines()[:2000]
    untimed = "\n".join(line.split(" ", 2)[2] for line in lines) + "\n"  # date, time dropped
    at = upload(app, log=untimed.encode(), name="untimed.log")
    at.switch_page("views/timeline.py").run()
    no_traceback(at)
    assert not errors(at)
    assert any("no readable timestamps" in c.value and "100 runs of 20 lines" in c.value
               for c in at.caption)
    assert len(at.selectbox(key="timeline_bucket").options) == 100


def test_templates_page_lists_every_line_and_the_sessions_holding_one(app, tiny_checkpoint):
    at = upload(app)
    at.switch_page("views/templates.py").run()
    no_traceback(at)
    assert not errors(at)
    ws = workspace(at)
    words = pd.Series(ws.scored.line_words.to_pylist())
    vocab = _line_vocab(tiny_checkpoint)
    table = at.dataframe(key="templates_table").value.set_index("template")
    assert table["count"].to_dict() == words.value_counts().to_dict()
    assert metric(at, "Distinct lines here") == f"{words.nunique():,}"
    new = int((~words.drop_duplicates().isin(vocab["lines"])).sum())
    assert metric(at, "Not known by name") == f"{new:,}" and new > 0
    for i, line in enumerate(vocab["lines"]):
        assert table.loc[line, "train_count"] == vocab["class_counts"][2 + i]
    assert metric(at, "Vocabulary lines absent here") == "0"

    at.text_input(key="templates_search").set_value("  Verification ").run()
    shown = at.dataframe(key="templates_table").value
    assert len(shown) == 1 and "verification" in shown["template"].iloc[0]
    text = shown["template"].iloc[0]
    at.session_state["templates_picked"] = text  # what a click on the row sets
    at.run()
    sessions_of = ws.scored.lines["session_id"].str.split(";")
    holding = set(sessions_of[words == text].explode())
    listed = at.dataframe(key="templates_sessions").value
    assert set(listed["session_id"]) == holding
    assert listed["score"].is_monotonic_decreasing
    assert at.main.subheader[0].value == f"{len(holding):,} sessions with this line"
    assert at.selectbox(key="templates_session").value == listed["session_id"].iloc[0]
    assert len(at.dataframe[-1].value) == listed["n_lines"].iloc[0]
    # The flagged share follows the threshold.
    scores = ws.scored.session_frame.set_index("session_id")["score"]
    for threshold in np.quantile(ws.scored.session_scores, [0.3, 0.9]):
        at = set_threshold(at, float(threshold))
        row = at.dataframe(key="templates_table").value.iloc[0]
        expected = int((scores[list(holding)] >= threshold).sum())
        assert row["flagged_sessions"] == expected
        assert row["flagged_share"] == pytest.approx(expected / len(holding))
    # A line of one session only: counted in the singular.
    once = table.index[table["sessions"] == 1][0]
    at.text_input(key="templates_search").set_value("").run()
    at.session_state["templates_picked"] = once
    at.run()
    assert at.main.subheader[0].value == "1 session with this line"


def test_one_threshold_in_cli_score_evaluate_and_the_dashboard(app, tiny_checkpoint, tmp_path,
                                                               capsys):
    from tinylogbert.cli.main import main
    from tinylogbert.reports.display import format_threshold

    shown = format_threshold(json.loads((tiny_checkpoint / "detector.json").read_text())[
        "threshold"])
    lines, sessions = tmp_path / "lines.csv", tmp_path / "sessions.csv"
    assert main(["score", str(SMALL_LOG), "--model", str(tiny_checkpoint), "--out", str(lines),
                 "--sessions-out", str(sessions)]) == 0
    said = capsys.readouterr().out.strip()
    assert f"sessions above threshold {shown};" in said or said.endswith(
        f"sessions above threshold {shown}")
    assert main(["evaluate", "--scores", str(sessions), "--labels", str(SMALL_LABELS),
                 "--model", str(tiny_checkpoint)]) == 0
    assert f" flagged at threshold {shown}\n" in capsys.readouterr().out
    at = upload(app, labels=SMALL_LABELS.read_bytes())
    assert at.sidebar.markdown[0].value.endswith(f"at **{shown}**")
    assert f"Model's label-free threshold: {shown}" in [c.value for c in at.sidebar.caption]
    at.switch_page("views/roc_pr.py").run()
    assert any(f"marks threshold {shown} " in c.value for c in at.caption)
    at.switch_page("views/download.py").run()
    assert f"at threshold **{shown}**" in at.markdown[0].value


# ---- upload memory and bad input ------------------------------------------------------------
def test_the_upload_page_remembers_the_file_across_pages(app):
    at = upload(app)
    at.switch_page("views/anomalies.py").run()
    at.switch_page("views/upload.py").run()
    no_traceback(at)
    assert at.file_uploader(key="log_file").value is None  # the widget itself forgot it
    assert any(c.value.startswith("Current file: **hdfs_small.log.gz** · 7,481 lines")
               for c in at.caption)
    assert [e.label.split(" ·")[0] for e in at.expander] == ["Format and sessions",
                                                             "Train a new model on this file"]
    assert metric(at, "Lines") == "7,481"
    at.selectbox(key="format_choice").set_value("generic")
    at.button(key="FormSubmitter:score_settings_form-Apply and score").click().run()
    no_traceback(at)
    assert "generic" in workspace(at).report.format_description  # rescored, same file
    assert workspace(at).source == "hdfs_small.log.gz"


def test_a_failed_upload_is_set_apart_from_the_previous_log(app):
    at = upload(app)
    at = upload(at, log=b"", name="empty.log")
    no_traceback(at)
    assert len(errors(at)) == 1 and "empty" in errors(at)[0]
    assert [s.value for s in at.main.subheader] == ["Still loaded: hdfs_small.log.gz"]
    assert metric(at, "Lines") == "7,481"  # the previous summary, under that heading
    assert not any(c.value.startswith("Current file") for c in at.caption)


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x00\x01\x02\x03binary\x00" * 100, "binary"),
    (b"\x1f\x8b not really gzip", "gzip"),
], ids=["empty", "binary", "broken-gzip"])
def test_unusable_files_get_a_clear_message(app, content, message):
    at = upload(app, log=content, name="bad.log")
    no_traceback(at)
    assert len(errors(at)) == 1 and message in errors(at)[0]
    assert "workspace" not in at.session_state


def test_a_bad_label_file_is_reported_and_scores_are_kept(app):
    at = upload(app, labels=b"BlockId,Label\nblk_1,Maybe\n")
    no_traceback(at)
    assert any("Labels not used" in e and "Maybe" in e for e in errors(at))
    assert metric(at, "Lines") == "7,481"
    at = upload(app, labels=b"BlockId,Label\nblk_nothing,Anomaly\n")
    assert any("none of the" in e for e in errors(at))


def test_lines_that_do_not_parse_are_counted_and_listed(app):
    lines = gzip.decompress(SMALL_LOG.read_bytes()).decode().splitlines()[:400]
    junk = ["### not a log line", "", "another odd line"]
    text = "\n".join(lines[:100] + junk + lines[100:]) + "\n"
    at = upload(app, log=text.encode(), name="mixed.log")
    no_traceback(at)
    assert metric(at, "Lines") == f"{len(lines) + len(junk):,}"
    assert metric(at, "Lines that did not parse") == "3"
    assert any("3 of 403 lines did not match" in w.value for w in at.warning)
    examples = at.dataframe[0].value
    assert examples["line_no"].tolist() == [101, 102, 103]


def test_format_override_rescores_and_a_bad_format_is_a_message(app):
    at = upload(app)
    at.selectbox(key="format_choice").set_value("generic")
    at.button(key="FormSubmitter:score_settings_form-Apply and score").click().run()
    no_traceback(at)
    assert "generic" in workspace(at).report.format_description
    at.selectbox(key="format_choice").set_value("custom")
    at.text_input(key="format_custom").set_value("<Date> <Time> no content field")
    at.button(key="FormSubmitter:score_settings_form-Apply and score").click().run()
    no_traceback(at)
    assert any("Content" in e for e in errors(at))
    assert "generic" in workspace(at).report.format_description  # the last good result stays


def test_window_sessions_option(app):
    at = upload(app)
    at.selectbox(key="sessions_by").set_value("window")
    at.number_input(key="window_size").set_value(50)
    at.button(key="FormSubmitter:score_settings_form-Apply and score").click().run()
    no_traceback(at)
    assert workspace(at).scored.n_sessions == int(np.ceil(7481 / 50))
    assert "windows of 50" in workspace(at).report.session_strategy


def test_the_hdfs_sample_button(app, tmp_path, monkeypatch):
    from tinylogbert.cli.main import main

    at = app.button(key="use_sample").click().run()
    no_traceback(at)
    ws = workspace(at)
    # The later blocks, not the shipped model's own training sample.
    assert ws.source == "HDFS_heldout.log.gz"
    assert metric(at, "Lines") == f"{ws.report.n_lines:,}" and ws.report.n_lines == 45_066
    assert ws.labels is not None and ws.labels.n_anomalous == 58
    assert any("(the bundled sample)" in c.value for c in at.caption)
    # The Download page's command runs as shown from the repository root.
    at.switch_page("views/download.py").run()
    args = shlex.split(at.code[0].value)
    assert args[:3] == ["tinylogbert", "score", "sample_data/HDFS_heldout.log.gz"]
    for flag in ("--out", "--sessions-out"):
        args[args.index(flag) + 1] = str(tmp_path / args[args.index(flag) + 1])
    monkeypatch.chdir(ROOT)
    assert main(args[1:]) == 0
    # The same sessions and scores (to the last digits, which depend on how scoring batched
    # the distinct sequences: the dashboard's model has scored other logs in this process).
    written = pd.read_csv(tmp_path / "HDFS_heldout.sessions.csv", dtype={"session_id": str})
    assert written["session_id"].tolist() == ws.scored.sessions.ids.astype(str).tolist()
    assert np.allclose(written["score"], ws.scored.session_scores, atol=1e-4)


def test_the_download_command_of_an_upload_asks_for_its_path(app):
    at = upload(app)
    at.switch_page("views/download.py").run()
    command = at.code[0].value
    first, second = command.splitlines()
    assert first.startswith("LOG=path/to/hdfs_small.log.gz")
    assert second.startswith('tinylogbert score "$LOG" --model ')
    assert any("set LOG to where it is on your machine" in c.value for c in at.caption)


def test_an_internal_error_is_one_line_not_a_traceback(app, monkeypatch):
    import dashboard.scoring

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(dashboard.scoring, "score_upload", broken)
    at = upload(app)
    no_traceback(at)
    assert errors(at) == [
        "Internal error (RuntimeError: boom). The details are in the server log; please report it."
    ]


# ---- model ----------------------------------------------------------------------------------
def test_without_a_model_the_app_offers_to_train_one(tmp_path, monkeypatch):
    import tempfile

    from tinylogbert.model.tinylogbert_model import ModelConfig
    from tinylogbert.model.training import TrainConfig

    import dashboard.models

    tiny = dashboard.models.TrainingPreset(
        "tiny", ModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64),
        TrainConfig(epochs=1, head_epochs=1, steps_per_epoch=4, batch_size=16), vocab_size=200,
    )
    monkeypatch.setattr(dashboard.models, "TRAINING_PRESETS", {tiny.label: tiny})
    monkeypatch.setenv("TINYLOGBERT_MODEL", str(tmp_path / "no-model-here"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the trained model is saved
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert any("No trained model" in w.value for w in at.warning)
    at = upload(at)
    assert "workspace" not in at.session_state  # nothing to score with yet
    assert any("tinylogbert train LOG --out DIR" in c.value and "--epochs 1" in c.value
               for c in at.caption)  # the same training from the command line
    at.button(key="train").click().run()
    no_traceback(at)
    assert not errors(at)
    trained = Path(at.session_state["trained_model_path"])
    assert trained.is_relative_to(tmp_path) and (trained / "detector.json").is_file()
    assert workspace(at).model_path == str(trained)
    assert metric(at, "Lines") == "7,481"
    # Keep it: a bad folder is a one-line error; a good one gets a verified copy that the
    # Download page's command then names, and the .zip carries the integrity manifest.
    at.text_input(key="save_model_folder").input(str(tmp_path / "no" / "such" / "dir")).run()
    at.button(key="save_model").click().run()
    no_traceback(at)
    assert any("no such folder to save into" in e.value for e in at.error)
    saved = tmp_path / "kept"
    at.text_input(key="save_model_folder").input(str(saved)).run()
    at.button(key="save_model").click().run()
    assert not errors(at)
    assert (saved / "checkpoint.sha256.json").is_file() and (saved / "detector.json").is_file()
    assert at.session_state["saved_model_path"] == str(saved.resolve())
    from tinylogbert.model.checkpoint import archive_bytes, check_folder
    import io, zipfile
    names = zipfile.ZipFile(io.BytesIO(archive_bytes(trained))).namelist()
    assert "model/checkpoint.sha256.json" in names and "model/detector.json" in names
    check_folder(saved)
    at.switch_page("views/download.py").run()
    no_traceback(at)
    assert f"--model {saved.resolve()}" in at.code[0].value
    assert str(trained) not in at.code[0].value
    at.switch_page("views/upload.py").run()
    at.button(key="use_default_model").click().run()
    assert "trained_model_path" not in at.session_state
    assert "saved_model_path" not in at.session_state
    assert (saved / "detector.json").is_file()  # the saved copy outlives the temporary folder


# ---- helpers behind the pages ---------------------------------------------------------------
def test_top_percent_threshold_flags_ties_together():
    from dashboard.threshold import flagged_percent, threshold_for_share, threshold_for_top_percent

    scores = np.array([1.0, 2.0, 2.0, 3.0])
    assert threshold_for_top_percent(scores, 25) == 3.0
    assert threshold_for_top_percent(scores, 50) == 2.0
    assert flagged_percent(scores, 2.0) == 75.0  # the tie comes along
    assert threshold_for_top_percent(scores, 100) == 1.0
    assert flagged_percent(scores, threshold_for_top_percent(scores, 0)) == 0.0
    # A slider moved down from 75 % to 50 % leaves the tied pair out instead of staying at 75 %.
    assert flagged_percent(scores, threshold_for_share(scores, 50, current=75)) == 25.0
    assert flagged_percent(scores, threshold_for_share(scores, 50, current=25)) == 75.0
    assert flagged_percent(scores, threshold_for_share(scores, 10, current=25)) == 0.0


def test_plural():
    from tinylogbert.reports.display import format_threshold, plural

    assert plural(1, "session") == "1 session"
    assert plural(0, "session") == "0 sessions"
    assert plural(12345, "line") == "12,345 lines"
    assert plural(2, "entry", "entries") == "2 entries"
    assert format_threshold(6.637875262873983) == "6.6379"
    assert format_threshold(float("inf")) == "inf"


def test_map_sample_keeps_the_top_scores_and_every_labelled_anomaly():
    from dashboard.projection import sample_sessions

    rng = np.random.default_rng(1)
    scores = rng.normal(size=5000)
    labels = np.zeros(5000, dtype=int)
    labels[rng.choice(5000, 700, replace=False)] = 1
    sample = sample_sessions(scores, labels, max_points=1000)
    kept = set(sample.indices.tolist())
    assert set(np.argsort(-scores)[:500].tolist()) <= kept
    assert set(np.flatnonzero(labels == 1).tolist()) <= kept
    assert len(kept) == len(sample.indices) and not sample.is_complete
    assert sample_sessions(scores[:10], None, 1000).is_complete


def test_explanation_marks_whole_words_and_escapes_html():
    from dashboard.explain_view import mark_words

    html = mark_words("Exception <b>in</b> receiveBlock, not in blockReceiver", ["in", "exception"])
    assert html == ("<mark>Exception</mark> &lt;b&gt;<mark>in</mark>&lt;/b&gt; receiveBlock, not "
                    "<mark>in</mark> blockReceiver")


def test_upload_form_settings_round_trip():
    from tinylogbert.errors import FormatError
    from tinylogbert.sessions.grouping import SessionConfig

    from dashboard.score_settings import ScoreSettings

    names = ["auto", "hdfs", "generic"]
    for settings in [ScoreSettings(), ScoreSettings("hdfs"),
                     ScoreSettings("<Date> <Time> <Level>: <Content>",
                                   SessionConfig(by="window", window_size=30, window_step=10))]:
        assert ScoreSettings.from_fields(settings.to_fields(names)) == settings
    assert ScoreSettings("hdfs", SessionConfig(by="window", window_size=30)).cli_options() == [
        "--format", "hdfs", "--sessions", "window", "--window", "30"]
    with pytest.raises(FormatError):
        ScoreSettings.from_fields({"format_choice": "custom", "format_custom": " "})


def test_line_level_labels_mark_their_sessions(tiny_detector):
    from dashboard.score_settings import ScoreSettings
    from dashboard.scoring import LogUpload, score_upload

    upload = LogUpload.from_bytes(SMALL_LOG.read_bytes(), "small.log.gz")
    ws = score_upload(tiny_detector, upload, ScoreSettings(), "tiny", "key")
    anomalous_line = int(ws.scored.sessions.lines_of(0)[0]) + 1  # first line of session 0
    csv = "line_no,label\n" + "".join(f"{n},{int(n == anomalous_line)}\n" for n in range(1, 7482))
    labels = ws.attach_labels(csv.encode(), "lines.csv")
    assert (labels.level, labels.n_labelled, labels.n_anomalous) == ("line", 7481, 1)
    its_sessions = set(ws.scored.lines["session_id"].iloc[anomalous_line - 1].split(";"))
    assert set(ws.scored.sessions.ids[ws.session_labels == 1]) == its_sessions


def test_syslog_times_without_a_year_get_one_with_roll_over():
    import pandas as pd
    from tinylogbert.reports.timeline import lacks_year, line_times

    stamps = pd.Series(["Dec 31 23:59:00", "Jan 01 00:01:00", None, "Jun 14 12:00:00"])
    seconds = line_times(stamps, "%b %d %H:%M:%S", year=2026)
    times = pd.to_datetime(seconds[[0, 1, 3]], unit="s")
    assert [t.year for t in times] == [2025, 2026, 2026]  # December comes before January
    assert str(times[1]) == "2026-01-01 00:01:00" and pd.isna(seconds[2])
    assert lacks_year("%b %d %H:%M:%S") and not lacks_year("%a %b %d %H:%M:%S %Y")
    assert pd.to_datetime(line_times(stamps, "%b %d %H:%M:%S")[0], unit="s").year == 1900


# ---- issue 23 item 8: slider steps, training estimate and schedule, empty levels -------------
def test_the_share_slider_steps_finely_and_still_shows_larger_shares(app):
    """PageUp/PageDown move a tenth of the slider's range (the browser's rule): over 0-100 %
    five presses went 0 % -> 65 %. The range ends at 25 % (or the model's share, rounded up),
    so a page is 2.5 %; a typed threshold flagging more leaves the slider at its top and the
    sidebar says the real share."""
    from dashboard.state import SHARE_RANGE, SHARE_STEP

    at = upload(app)
    slider = at.slider(key="threshold_share")
    assert slider.min == 0.0 and slider.step == SHARE_STEP == 0.1
    assert slider.max == SHARE_RANGE and slider.max / 10 <= 2.5
    scores = workspace(at).scored.session_scores
    low = float(np.quantile(scores, 0.1))  # flags about 90 %
    at = set_threshold(at, low)
    no_traceback(at)
    flagged = int((scores >= low).sum())
    assert at.slider(key="threshold_share").value == SHARE_RANGE
    assert f"**{flagged:,}** of 300 sessions flagged" in at.sidebar.markdown[0].value
    at = at.slider(key="threshold_share").set_value(SHARE_RANGE - 0.1).run()  # back down
    assert int((scores >= at.session_state["threshold"]).sum()) <= 0.249 * 300


def test_training_estimate_uses_the_measured_rate_and_never_grows():
    from tinylogbert.model.training import TrainConfig, TrainProgress

    from dashboard.training_eta import TrainingEta

    now = [0.0]
    eta = TrainingEta(TrainConfig(epochs=2, head_epochs=2), clock=lambda: now[0])
    shown = []
    # mlm: 10 steps, slow at first then 1 s/step; head: 20 steps at 0.1 s/step, its own clock.
    for step in range(1, 11):
        now[0] += 3.0 if step <= 2 else 1.0
        shown.append(eta.update(TrainProgress("mlm", step, 10, 1.0, now[0])))
    assert shown[-1] > 0  # the head phase is still to come
    start = now[0]
    for step in range(1, 21):
        now[0] += 0.1
        shown.append(eta.update(TrainProgress("head", step, 20, 1.0, now[0] - start)))
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(shown)), shown
    assert shown[-1] == 0.0
    # halfway through mlm the estimate counts the rest of mlm and the head at the step rate
    # step 5: 9 s for 5 steps, 1.8 s/step for the 5 mlm and 20 head steps left
    assert shown[4] == pytest.approx((5 + 20) * 1.8)


def test_dashboard_presets_train_with_the_clis_schedule():
    """The same log takes the same steps in the dashboard as with ``tinylogbert train``."""
    from tinylogbert.cli.main import build_parser

    from dashboard.models import TRAINING_PRESETS

    args = build_parser(with_bench=False).parse_args(["train", "x.log", "--out", "m"])
    for preset in TRAINING_PRESETS.values():
        t = preset.training
        assert (t.epochs, t.head_epochs, t.steps_per_epoch or 0, t.batch_size,
                t.learning_rate, t.clean_epochs) == (
            args.epochs, args.head_epochs, args.steps_per_epoch, args.batch_size, args.lr,
            args.clean_epochs), preset.label
        command = build_parser(with_bench=False).parse_args(
            preset.cli_command().replace("LOG", "x.log").replace("DIR", "m").split()[1:])
        assert (command.hidden, command.layers, command.vocab_size) == (
            preset.model.hidden_size, preset.model.num_hidden_layers, preset.vocab_size)


def test_lines_without_a_level_show_an_empty_cell_not_none(app):
    """Traditional syslog lines carry no level: the tables show an empty cell, not "None"."""
    log = (ROOT / "tests" / "data" / "formats" / "linux.log").read_bytes()
    at = upload(app, log=log, name="linux.log")
    no_traceback(at)
    at.switch_page("views/download.py").run()
    no_traceback(at)
    assert len(at.dataframe) == 1, [e.value for e in at.error + at.warning]
    preview = at.dataframe[0].value  # the preview of LINES.csv
    assert list(preview["level"].unique()) == [""], preview["level"].unique()
    at.switch_page("views/anomalies.py").run()
    for table in at.dataframe:
        frame = table.value
        if "level" in frame.columns:
            assert not frame["level"].isna().any() and "None" not in set(frame["level"])


def test_the_current_model_can_be_adapted_to_the_upload(app, tiny_checkpoint, tmp_path,
                                                        monkeypatch):
    """'Adapt the current model': a new model, adapted from the one in use, scores the upload;
    the caption gives the same from the command line."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    at = upload(app.run())
    at.radio(key="training_how").set_value("Adapt the current model").run()
    assert any(f"tinylogbert adapt --model {tiny_checkpoint} LOG" in c.value for c in at.caption)
    at.button(key="train").click().run()
    no_traceback(at)
    assert not errors(at)
    adapted = Path(at.session_state["trained_model_path"])
    assert adapted.is_relative_to(tmp_path) and (adapted / "detector.json").is_file()
    summary = json.loads((adapted / "detector.json").read_text())["training_summary"]
    assert summary["adapted_from"]["epochs"] == 1
    assert workspace(at).model_path == str(adapted)

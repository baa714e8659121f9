"""Upload: pick a log (or the HDFS sample) and optional labels, check the format, score, train."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st
from tinylogbert.errors import CheckpointError, LabelError, TinyLogBERTError
from tinylogbert.io.log_formats import available_formats
from tinylogbert.model.checkpoint import archive_bytes, save_copy
from tinylogbert.model.training import TrainConfig
from tinylogbert.reports.display import format_threshold, plural

from dashboard import state
from dashboard.cache import SAMPLE_LABELS, load_detector, load_sample
from dashboard.models import (
    TRAINING_PRESETS,
    TrainingLimits,
    adapt_model,
    model_exists,
    model_stamp,
    train_model,
)
from dashboard.score_settings import CUSTOM_FORMAT, MODEL_SESSIONS, ScoreSettings
from dashboard.scoring import LogUpload, input_key, score_upload
from dashboard.training_eta import TrainingEta
from dashboard.workspace import Workspace

INPUT_SOURCE = "input_source"  # "file" or SAMPLE: whichever the user chose last
SAMPLE = "sample"
LOG_FILE, LABELS_FILE = "log_file", "labels_file"
SETTINGS = "score_settings"  # the applied ScoreSettings (a plain key: survives page changes)
SETTINGS_ERROR = "score_settings_error"
READ_CACHE = "_log_upload"  # (file_id, LogUpload | error message) of the uploader's file
# The last file read successfully: the uploader widget forgets its file when the user visits
# another page (Streamlit drops the state of widgets a run does not draw); this key does not.
REMEMBERED = "_remembered_upload"
FAILED = "_failed_scoring"  # (input key, message): a failure is not retried on every rerun
LABELS_INPUT = "labels_input"  # (name, bytes) of the labels to use, SAMPLE, or None
LABELS_APPLIED = "_labels_applied"  # (what was applied, error message or None)
FORM_FIELDS = ("format_choice", "format_custom", "sessions_by", "session_id", "window_size",
               "window_step", "time_window", "time_step")
SAVE_FOLDER = "save_model_folder"
SAVE_RESULT = "_save_model_result"  # ("ok" | "error", message) of the last save
PROGRESS_INTERVAL_S = 0.3


def upload_limit_mb() -> int:
    return int(st.get_option("server.maxUploadSize"))


def applied_settings() -> ScoreSettings:
    return st.session_state.get(SETTINGS) or ScoreSettings()


def _labels_in_uploader() -> tuple[str, bytes] | None:
    labels_file = st.session_state.get(LABELS_FILE)
    return (labels_file.name, labels_file.getvalue()) if labels_file else None


def _log_chosen() -> None:
    if st.session_state.get(LOG_FILE) is None:  # the user removed the file: forget it
        st.session_state.pop(INPUT_SOURCE, None)
        st.session_state.pop(REMEMBERED, None)
        st.session_state.pop(READ_CACHE, None)
    else:
        st.session_state[INPUT_SOURCE] = "file"
    st.session_state[LABELS_INPUT] = _labels_in_uploader()


def _labels_chosen() -> None:
    st.session_state[LABELS_INPUT] = _labels_in_uploader()


def _sample_chosen() -> None:
    st.session_state[INPUT_SOURCE] = SAMPLE
    st.session_state[LABELS_INPUT] = _labels_in_uploader() or SAMPLE


def labels_input() -> tuple[str, bytes] | None:
    """(name, bytes) of the labels to attach, or None."""
    chosen = st.session_state.get(LABELS_INPUT)
    return (SAMPLE_LABELS.name, load_sample()[1]) if chosen == SAMPLE else chosen


def chosen_log() -> tuple[LogUpload | None, str | None]:
    """The log the user chose last (a file or the sample) and, when the uploader's file cannot
    be read, why. The uploader forgets its file when the user visits another page; the last
    file read is remembered (``REMEMBERED``), so its settings and training stay on offer."""
    if st.session_state.get(INPUT_SOURCE) == SAMPLE:
        return load_sample()[0], None
    log_file = st.session_state.get(LOG_FILE)
    if log_file is None:
        remembered = st.session_state.get(REMEMBERED)
        return (remembered, None) if st.session_state.get(INPUT_SOURCE) == "file" else (None, None)
    cached = st.session_state.get(READ_CACHE)
    if cached is None or cached[0] != log_file.file_id:
        try:
            if log_file.size > upload_limit_mb() * 2**20:
                raise TinyLogBERTError(
                    f"{log_file.name}: {log_file.size / 2**20:.0f} MB is over the "
                    f"{upload_limit_mb()} MB upload limit"
                )
            cached = (log_file.file_id, LogUpload.from_bytes(log_file.getvalue(), log_file.name))
        except TinyLogBERTError as exc:
            cached = (log_file.file_id, str(exc))
        st.session_state[READ_CACHE] = cached
    if isinstance(cached[1], str):
        return None, cached[1]
    st.session_state[REMEMBERED] = cached[1]
    return cached[1], None


def score(upload: LogUpload, settings: ScoreSettings, model_path: Path, key: str) -> None:
    """Score with visible progress, install the result and rerun so the sidebar follows."""
    with st.status(f"Scoring {upload.name} ({plural(len(upload.lines), 'line')})…",
                   expanded=True) as box:
        bar = st.progress(0.0, text="loading the model")
        started = time.perf_counter()
        try:
            detector = load_detector(str(model_path), model_stamp(model_path))
            workspace = score_upload(
                detector, upload, settings, str(model_path), key,
                on_stage=lambda stage: bar.progress(0.0, text=stage),
                on_progress=lambda f: bar.progress(min(max(f, 0.0), 1.0), text=f"scoring {f:.0%}"),
            )
        except TinyLogBERTError as exc:
            box.update(label=f"Could not score {upload.name}", state="error")
            st.session_state[FAILED] = (key, str(exc))
            st.error(str(exc), icon=":material/error:")
            return
        workspace.score_seconds = time.perf_counter() - started
        box.update(label=f"Scored in {workspace.score_seconds:.1f} s", state="complete")
    st.session_state.pop(FAILED, None)
    state.install_workspace(workspace)
    st.rerun()


def apply_labels(workspace: Workspace, labels: tuple[str, bytes] | None) -> None:
    """Attach (or drop) labels when they or the workspace changed; a bad file is reported."""
    source, data = labels or (None, None)
    wanted = (workspace.token, source, hash(data) if data is not None else None)
    applied = st.session_state.get(LABELS_APPLIED)
    if applied is None or applied[0] != wanted:
        error = None
        if data is None:
            workspace.clear_labels()
        else:
            try:
                workspace.attach_labels(data, source)
            except LabelError as exc:
                workspace.clear_labels()
                error = str(exc)
        applied = (wanted, error)
        st.session_state[LABELS_APPLIED] = applied
    if applied[1]:
        st.error(f"Labels not used: {applied[1]}", icon=":material/label:")


def summary(workspace: Workspace) -> None:
    result = state.current_result()
    report = workspace.report
    cols = st.columns(4)
    cols[0].metric("Lines", f"{report.n_lines:,}")
    cols[1].metric("Sessions", f"{result.n_sessions:,}")
    cols[2].metric("Anomalous sessions", f"{result.n_anomalous_sessions:,}",
                   help=f"At the current threshold {format_threshold(state.current_threshold())}")
    cols[3].metric("Lines that did not parse", f"{report.n_unparsed:,}")
    st.caption(
        f"**{workspace.source}** · format {report.format_description} · sessions by "
        f"{report.session_strategy} · scored in {workspace.score_seconds:.1f} s"
    )
    if report.n_unparsed:
        st.warning(
            f"{report.n_unparsed:,} of {plural(report.n_lines, 'line')} did not match the "
            "format; they are kept (the whole line is the message) and scored. The first few:",
            icon=":material/extension:",
        )
        st.dataframe(pd.DataFrame(report.examples, columns=["line_no", "line"]), hide_index=True,
                     key="unparsed_examples")
    if report.replaced_bytes:
        lines = (f"{report.invalid_lines:,} of {plural(report.n_lines, 'line')}"
                 if report.invalid_lines else "Some lines")
        st.warning(f"The file is not valid UTF-8: {lines} held undecodable bytes, replaced by "
                   "� and scored.")
    for message in report.fit_warnings:
        st.warning(f"{message[0].upper()}{message[1:]}. Or train one right here: "
                   "*Train a new model on this file*, below.", icon=":material/model_training:")
    labels = workspace.labels
    if labels is not None:
        st.success(
            f"Labels from {labels.source}: {labels.n_labelled:,} of "
            f"{plural(labels.n_total, labels.level)} labelled, {labels.n_anomalous:,} anomalous.",
            icon=":material/label:",
        )
    elif workspace.has_labels:
        st.success("The log carries inline labels; they are used for evaluation.",
                   icon=":material/label:")
    links = st.columns(5)
    links[0].page_link("views/distribution.py", label="Score distribution",
                       icon=":material/bar_chart:")
    links[1].page_link("views/anomalies.py", label="Anomalies", icon=":material/warning:")
    links[2].page_link("views/timeline.py", label="Timeline", icon=":material/timeline:")
    links[3].page_link("views/templates.py", label="Templates", icon=":material/list_alt:")
    links[4].page_link("views/download.py", label="Download the CSV", icon=":material/download:")


def current_file_note(upload: LogUpload) -> None:
    """Which file the settings and training below apply to (the uploader may look empty)."""
    where = " (the bundled sample)" if upload.path else ""
    forgotten = (" The uploader above no longer shows it after a visit to another page; drop "
                 "another file to replace it." if st.session_state.get(LOG_FILE) is None
                 and not upload.path else "")
    st.caption(f"Current file: **{upload.name}**{where} · {plural(len(upload.lines), 'line')} · "
               f"{upload.n_bytes / 1e6:,.1f} MB.{forgotten}")  # MB as the uploader counts


def previous_result_heading(workspace: Workspace) -> None:
    """Set apart a summary that is not of the file the error above is about."""
    st.divider()
    st.subheader(f"Still loaded: {workspace.source}", anchor=False)
    st.caption("The scores of the log before, which every other page still shows; they are not "
               "of the file the error above is about.")


def store_settings() -> None:
    """Form callback: keep the submitted settings in a key that outlives the form's widgets."""
    try:
        fields = {name: st.session_state.get(name) for name in FORM_FIELDS}
        st.session_state[SETTINGS] = ScoreSettings.from_fields(fields)
        st.session_state.pop(SETTINGS_ERROR, None)
    except TinyLogBERTError as exc:
        st.session_state[SETTINGS_ERROR] = str(exc)


def settings_form(upload: LogUpload, expanded: bool) -> None:
    """Format override and session strategy, applied (and scored) on submit."""
    guess = upload.detect()
    names = ["auto"] + [f.name for f in available_formats()]
    fields = applied_settings().to_fields(names)
    options = names + [CUSTOM_FORMAT]
    sessions = [MODEL_SESSIONS, "auto", "id", "window", "time"]
    with st.expander(f"Format and sessions · detected format: {guess.describe()}",
                     expanded=expanded, icon=":material/tune:"):
        with st.form("score_settings_form", border=False):
            left, right = st.columns(2)
            left.selectbox(
                "Format", options, index=options.index(fields["format_choice"]),
                key="format_choice",
                format_func=lambda n: f"auto (detected: {guess.format.name})" if n == "auto" else n,
                help="Override the detected format if lines do not parse (logfmt, cri for "
                     "Kubernetes container logs, rfc5424/rfc3164 syslog, jsonl for JSON, Docker "
                     "and journald...).",
            )
            left.text_input(
                "Custom format (when Format is 'custom')", value=fields["format_custom"],
                key="format_custom",
                placeholder="<Date> <Time> <Level>: <Content>   or a regex with (?P<Content>...)",
            )
            right.selectbox(
                "Sessions", sessions, index=sessions.index(fields["sessions_by"]),
                key="sessions_by",
                help="How lines become the sequences the model reads: an id in the line (an HDFS "
                     "block), windows of lines, or time windows. 'model default': as trained.",
            )
            right.text_input("Session id regex (id)", value=fields["session_id"], key="session_id",
                             placeholder="e.g. blk_-?\\d+ (default: the format's)")
            a, b = right.columns(2)
            a.number_input("Window lines (window)", min_value=0, value=fields["window_size"],
                           step=5, key="window_size", help="0: the format's default")
            b.number_input("Step lines (window)", min_value=0, value=fields["window_step"],
                           step=5, key="window_step", help="0: no overlap")
            a.number_input("Window seconds (time)", min_value=0.0, value=fields["time_window"],
                           step=10.0, key="time_window", help="0: the format's default")
            b.number_input("Step seconds (time)", min_value=0.0, value=fields["time_step"],
                           step=10.0, key="time_step", help="0: no overlap")
            st.form_submit_button("Apply and score", type="primary", on_click=store_settings)
        if st.session_state.get(SETTINGS_ERROR):
            st.error(st.session_state[SETTINGS_ERROR], icon=":material/error:")


TRAIN_NEW = "Train a new model"
ADAPT = "Adapt the current model"
ADAPT_SCHEDULE = TrainConfig(epochs=1, head_epochs=2)  # what ``adapt`` runs, for the estimate


def training_section(upload: LogUpload | None, missing: bool, misfit: bool = False) -> None:
    """Open when there is no model, or when the model does not fit the log
    (``tinylogbert.scoring.fit_check``)."""
    title = "Train a new model on this file" if upload else "Train a new model"
    with st.expander(title, expanded=missing or misfit, icon=":material/model_training:"):
        if upload is None:
            st.write("Upload a log first; a new model learns what is normal in it (no labels).")
            return
        st.write(
            f"Learns what is normal in **{upload.name}** ({plural(len(upload.lines), 'line')}, "
            "no labels needed) with the format and session settings above, then scores it. Stay "
            "on this page while it trains."
        )
        limits = TrainingLimits.from_env()
        st.caption(f"Up to {plural(limits.max_lines, 'line')} and "
                   f"{plural(limits.max_epochs, 'epoch')} "
                   "(TINYLOGBERT_DASHBOARD_MAX_TRAIN_LINES, TINYLOGBERT_DASHBOARD_MAX_EPOCHS); "
                   "the model is kept in a temporary folder, deleted when no longer used.")
        base = state.active_model_path()
        how = st.radio("How", [TRAIN_NEW, ADAPT], key="training_how", horizontal=True,
                       disabled=not model_exists(base),
                       help="Adapt follows a newer release of the same software: it keeps what "
                            "the current model knew and learns the new log's messages in one "
                            "epoch, in a fraction of a full training's time")
        if how == ADAPT and model_exists(base):
            st.caption(f"Adapts the current model ({state.describe_model(base)}) to "
                       f"**{upload.name}**. The same from the command line: "
                       f"`tinylogbert adapt --model {state.command_model_path(base)} LOG "
                       "--out NEW_MODEL_DIR`")
            preset = None
        else:
            preset = TRAINING_PRESETS[st.selectbox("Model size", list(TRAINING_PRESETS),
                                                   key="training_preset")]
            st.caption(f"{preset.describe()}. The same from the command line: "
                       f"`{preset.cli_command()}`")
        if not st.button("Adapt" if preset is None else "Train",
                         type="primary" if missing or misfit else "secondary", key="train"):
            return
        settings = applied_settings()
        bar = st.progress(0.0, text="preparing the training data")
        loss_chart = st.empty()
        history: list[dict] = []
        last_drawn = [0.0]
        eta = TrainingEta(preset.training if preset else ADAPT_SCHEDULE)

        def progress(p) -> None:
            history.append({"step": p.step, "loss": p.loss})
            left = eta.update(p)
            now = time.perf_counter()
            if now - last_drawn[0] < PROGRESS_INTERVAL_S and p.step < p.total_steps:
                return
            last_drawn[0] = now
            bar.progress(p.fraction, text=f"{p.phase} step {p.step:,}/{p.total_steps:,} · "
                                          f"loss {p.loss:.3f} · about {left:.0f} s left")
            loss_chart.line_chart(pd.DataFrame(history).set_index("step"), height=220)

        try:
            folder = (adapt_model(upload.lines, base, progress) if preset is None else
                      train_model(upload.lines, preset, settings.log_format, settings.sessions,
                                  progress))
        except TinyLogBERTError as exc:
            bar.empty()
            st.error(str(exc), icon=":material/error:")
            return
        bar.progress(1.0, text="trained; scoring with the new model")
        state.use_trained_model(folder)
        st.rerun()


def _save_model(model_path: Path) -> None:
    """Copy the temporary checkpoint to the folder the user named (from the button's callback)."""
    try:
        saved = save_copy(model_path, st.session_state.get(SAVE_FOLDER, ""))
    except CheckpointError as exc:
        st.session_state[SAVE_RESULT] = ("error", str(exc))
        return
    st.session_state[state.SAVED_MODEL] = str(saved.resolve())
    st.session_state[SAVE_RESULT] = ("ok", f"Saved to {saved.resolve()}: score with "
                                           f"tinylogbert score LOG --model {saved.resolve()}")


def save_model_controls(model_path: Path) -> None:
    """Keep a dashboard-trained model: its folder is temporary, deleted when Streamlit stops."""
    with st.expander("Save the model", icon=":material/save:"):
        st.caption("The trained model lives in a temporary folder, deleted when the dashboard "
                   "stops. Save it to a folder of your own (new or empty), or download it as a "
                   ".zip with its integrity manifest (checkpoint.sha256.json, checked on load).")
        st.text_input("Folder on this machine", key=SAVE_FOLDER,
                      placeholder="e.g. models/my-log")
        st.button("Save the model", on_click=_save_model, args=(model_path,), key="save_model")
        kind, message = st.session_state.get(SAVE_RESULT, (None, ""))
        if kind == "error":
            st.error(message, icon=":material/error:")
        elif kind == "ok":
            st.success(message, icon=":material/check:")
        try:
            data = archive_bytes(model_path)
        except CheckpointError as exc:
            st.error(str(exc), icon=":material/error:")
        else:
            st.download_button("Download the model (.zip)", data=data, file_name="model.zip",
                               mime="application/zip", on_click="ignore",
                               key="download_model", icon=":material/download:")


def model_notice(model_path: Path, missing: bool) -> None:
    if st.session_state.get(state.TRAINED_MODEL):
        st.info(f"Scoring with a model trained in this session ({model_path}).",
                icon=":material/science:")
        save_model_controls(model_path)
        st.button("Switch back to the default model", on_click=state.use_trained_model,
                  args=(None,), key="use_default_model")
    elif missing:
        st.warning(
            f"No trained model at {model_path}. Train one on your log below, or point the "
            "TINYLOGBERT_MODEL environment variable at a checkpoint folder.",
            icon=":material/model_training:",
        )


st.title("Upload a log")
st.caption(
    f"A .log, .txt or .gz file (plain text, one event per line), up to {upload_limit_mb()} MB "
    "(server.maxUploadSize in .streamlit/config.toml). Nothing leaves this machine."
)
upload_col, sample_col = st.columns([3, 1], vertical_alignment="center")
upload_col.file_uploader("Log file", type=["log", "txt", "gz"], key=LOG_FILE, on_change=_log_chosen)
sample_col.button(
    "Use the HDFS sample", icon=":material/dataset:", key="use_sample",
    help="sample_data/HDFS_heldout.log.gz (45,066 lines, 2,516 blocks, 58 labelled anomalous) "
         "with its labels: the blocks that come after the shipped model's training sample "
         "(HDFS_sample.log.gz), which it never trained on",
    on_click=_sample_chosen,
)
st.file_uploader(
    "Labels CSV (optional)", type=["csv", "txt", "gz"], key=LABELS_FILE,
    help="BlockId,Label (HDFS), session_id,label or line_no,label; Normal/Anomaly or 0/1.",
    on_change=_labels_chosen,
)

model_path = state.active_model_path()
missing = not model_exists(model_path)
model_notice(model_path, missing)
upload, read_error = chosen_log()
if read_error:
    st.error(read_error, icon=":material/error:")
failed_here = read_error is not None
if upload is not None:
    current_file_note(upload)
if upload is not None and not missing:
    settings = applied_settings()
    key = input_key(upload, settings, str(model_path), model_stamp(model_path))
    failed = st.session_state.get(FAILED)
    current = state.current_workspace()
    if failed and failed[0] == key:
        st.error(failed[1], icon=":material/error:")
        failed_here = True
    elif current is None or current.input_key != key:
        score(upload, settings, model_path, key)
        failed_here = True  # only reached when scoring failed (success reruns)

workspace = state.current_workspace()
if workspace is None and upload is None and st.session_state.get(LOG_FILE) is None:
    st.info("Drop a log file above, or use the HDFS sample.", icon=":material/description:")
if workspace is not None:
    if failed_here:
        previous_result_heading(workspace)
    if upload is None or workspace.input_digest == upload.digest:
        apply_labels(workspace, labels_input())
    summary(workspace)
if upload is not None:
    unparsed = workspace is not None and workspace.report.n_unparsed > 0
    settings_form(upload, expanded=failed_here or unparsed)
misfit = workspace is not None and bool(workspace.report.fit_warnings)
training_section(upload, missing, misfit)

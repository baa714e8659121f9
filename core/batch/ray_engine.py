"""Batch scoring on Ray Data: many files, sessions that span files, the local engine's scores.

The pipeline, one Ray Data stage per arrow::

    files --map: read, parse, group each file (tinylogbert.batch.batch_inputs)--> (line, session) memberships
          --groupby(bucket).map_groups(SessionScorer actors)------> one row per scored session
          --groupby(file).map_groups: re-read the file, attach scores--> one row per input line

Nothing here parses or scores on its own: files go through ``tinylogbert.batch.batch_inputs`` (which uses the
local engine's parser and session builder) and sessions through ``TinyLogBERTDetector.score``.
What the Ray engine adds is where the work runs and which lines meet in one call:

- **Complete sessions per call.** A session's score depends on all its lines, so every line of a
  session must reach the same scorer call. Sessions are hashed into buckets and each bucket is one
  ``map_groups`` call: a whole bucket holds whole sessions, however many files they came from.
- **Many sessions per call.** Grouping by session id itself would call the model once per
  session (HDFS: ~20 lines, ~4 ms a call: 50x slower) and lose the local engine's biggest
  speed-up, scoring each *distinct* sequence once. Buckets of up to ~1,000,000 lines (under
  1 GB of memory per call) keep both; smaller ones repeat the model's work on sequences that
  other buckets also hold (see ``benchmarks/ray_scale.py``), though each actor's detector still
  remembers the sequences it has scored.
- **Only what the model reads is shuffled.** Memberships carry the normalised words (and each
  line's timestamp, for the sessions' ``first_time``/``last_time``), not the raw lines; the last
  stage re-reads each file instead and writes every line of it, in order, with
  the scores of its sessions. A line in several sessions gets the highest, as in the local
  engine.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from tinylogbert.batch.batch_inputs import (
    BatchSettings,
    expand_inputs,
    filesystem_for,
    is_uri,
    merge_times,
    prepare_file,
    sample_parsed,
    settings_for,
)
from tinylogbert.errors import LogInputError, TinyLogBERTError
from tinylogbert.io.log_parser import ParsedLog
from tinylogbert.scoring.fit_check import (
    drift_warnings_for,
    fit_warnings,
    measure_drift,
    new_line_counts,
)
from tinylogbert.scoring.feedback import apply as apply_feedback
from tinylogbert.scoring.results import put_column
from tinylogbert.sessions.grouping import SessionConfig

# Every message handed to the detector *is* a session key, so grouping "by id" with a pattern that
# matches the whole message rebuilds exactly the sessions this engine grouped.
WHOLE_KEY = ".+"
MEMBERSHIP_SCHEMA = pa.schema(
    [
        ("session_key", pa.large_string()),
        ("file_index", pa.int32()),
        ("line_no", pa.int64()),
        ("time", pa.float64()),  # ``merge_times``: where a session spanning files takes the line
        ("edge", pa.int8()),  # 1: the file's first time, -1: its last, else 0 (``stream_order``)
        ("words", pa.large_string()),
        ("timestamp", pa.large_string()),  # as in the log: SESSIONS' first_time, last_time
        ("level", pa.large_string()),  # the severity prior reads it with the words
        ("label", pa.large_string()),
    ]
)
MEMBER_COLUMNS = ("member_file_index", "member_line_no", "member_score", "member_is_anomaly")
OUTPUTS = ("lines", "sessions", "lines_csv", "sessions_csv", "summary.json")


@dataclass(frozen=True)
class RayScoreConfig:
    """How to run: the model, how to read the logs, and how much of the cluster to use."""

    model: str
    log_format: str = "auto"
    sessions: SessionConfig | None = None  # None: the checkpoint's own setting
    threshold: float | None = None  # None: the checkpoint's session threshold
    csv: bool = False  # also write CSV beside the Parquet
    address: str | None = None  # None: start a local Ray; 'auto' or 'ray://host:10001': join one
    num_cpus: int | None = None  # CPUs of a local Ray instance (None: all)
    scorers: int = 0  # scoring actors; 0: as many as the cluster's CPUs allow
    threads_per_scorer: int = 1  # torch threads per actor (the default count divides CPUs by it)
    lines_per_call: int = 1_000_000  # most lines per scorer call (a bucket of whole sessions)
    progress: bool = False  # Ray Data progress bars on stderr
    # Ray Data's shuffle for the two groupbys. Sorting runs as tasks in the workers Ray already
    # has; hash shuffles start aggregator actors per shuffle, which cost more than they save on
    # a few machines (see benchmarks/ray_scale.py). 'hash_shuffle' may pay off on a big cluster.
    shuffle: str = "sort_shuffle_pull_based"

    def __post_init__(self) -> None:
        if self.scorers < 0:
            raise TinyLogBERTError("scorers must be 0 (as many as the CPUs allow) or more")
        for name in ("threads_per_scorer", "lines_per_call"):
            if getattr(self, name) < 1:
                raise TinyLogBERTError(f"{name.replace('_', ' ')} must be at least 1")


@dataclass
class RayScoreSummary:
    """What ``score_files`` did; the same counts as ``ScoreResult.summary()``, plus the files."""

    lines: int
    sessions: int
    anomalous_sessions: int
    anomalous_lines: int
    unparsed_lines: int
    threshold: float
    line_threshold: float
    format: str
    sessions_by: str
    files: int
    empty_files: int
    buckets: int  # scorer calls: groups of whole sessions
    seconds: float
    lines_per_s: float
    outputs: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # as the local engine's (fit_check)
    engine: str = "ray"

    def to_dict(self) -> dict:
        return asdict(self)


# ---- stage 1: files -> memberships ---------------------------------------------------------------
def file_memberships(batch: pa.Table, files: Sequence[str], settings: BatchSettings) -> pa.Table:
    """One row per (line, session) of each file in ``batch``: what the scorer needs, no more.

    ``time`` is only read when sessions can span files (ids found in the lines, several files);
    otherwise it is NaN and no timestamp is parsed.
    """
    tables = [MEMBERSHIP_SCHEMA.empty_table()]
    spanning = settings.sessions.by == "id" and len(files) > 1
    for file_index in batch["file_index"].to_pylist():
        prepared = prepare_file(files[file_index], settings)
        if prepared is None:  # an empty file has nothing to score
            continue
        members = pa.array(prepared.index.members)
        table = prepared.parsed.table
        times = merge_times(prepared.parsed) if spanning else np.full(len(table), np.nan)
        # Times never decrease: a file's first (last) time is on its first (last) lines.
        edge = (times == times[0]).astype(np.int8) - (times == times[-1])
        tables.append(
            pa.table(
                {
                    "session_key": pa.array(prepared.member_keys, type=pa.large_string()),
                    "file_index": pa.array(
                        np.full(len(members), file_index, dtype=np.int32)
                    ),
                    "line_no": table["line_no"].take(members),
                    "time": pa.array(times[prepared.index.members]),
                    "edge": pa.array(edge[prepared.index.members]),
                    "words": prepared.parsed.words.take(members),
                    "timestamp": table["timestamp"].take(members),
                    "level": table["level"].take(members),
                    "label": table["label"].take(members),
                }
            ).cast(MEMBERSHIP_SCHEMA)
        )
    return pa.concat_tables(tables)


def assign_buckets(batch: pa.Table, n_buckets: int) -> pa.Table:
    """Add ``bucket``: a hash of the session key that is the same in every process."""
    keys = batch["session_key"].to_numpy(zero_copy_only=False)
    hashed = pd.util.hash_array(keys) % np.uint64(n_buckets)
    return batch.append_column("bucket", pa.array(hashed.astype(np.int32)))


# ---- stage 2: complete sessions -> scores ---------------------------------------------------------
def stream_order(rows: pa.Table) -> np.ndarray:
    """The row order in which the detector reads ``rows``: each session's lines as one stream.

    Rows start in file order (file index, then line number), which is all a session within one
    file needs. A session whose lines come from several files is what several nodes wrote at
    once, so its lines merge by time. The sort key is (``time``, rotation ``edge``, line
    number, file index):

    - ``time`` is the file's running maximum of its timestamps (``merge_times``), so the merge
      never reorders one file, and a line without a timestamp stays right after the line above
      it in its file.
    - Lines that share a timestamp (HDFS stamps whole seconds: most of a block's lines do) are
      in an order no timestamp tells. They interleave by line number, as files written side by
      side at similar rates hold them (a log dealt line by line into files comes back exactly);
      by file index first instead, a block's lines of one second would come file after file, an
      order the model never saw (on a dealt HDFS log: 708 sessions flagged instead of 373;
      README, "Batch scoring on Ray"). One exception, rotation: where one file's last second
      (``edge`` -1) meets another file's first (``edge`` 1), the ending file's lines come first.
    - A session with a line that has no time at all (a file without timestamps) keeps file
      order: there is nothing to merge by.

    Each session keeps the row positions it had in file order and only its lines move among
    them, so sessions still appear in the order of their first line in file order, and a session
    read from one file gets exactly the order (and the bytes) it always got.
    """
    n = rows.num_rows
    file_order = np.lexsort((rows["line_no"].to_numpy(), rows["file_index"].to_numpy()))
    if n == 0:
        return file_order

    def column(name: str) -> np.ndarray:
        return rows[name].to_numpy(zero_copy_only=False)[file_order]

    code = pd.factorize(column("session_key"))[0]
    file_index, line_no, time = column("file_index"), column("line_no"), column("time")
    n_sessions = int(code.max()) + 1
    # Codes number sessions by first appearance: a row is its session's first where its code
    # exceeds every code before it.
    first = np.flatnonzero(np.r_[True, code[1:] > np.maximum.accumulate(code)[:-1]])
    other_file = file_index != file_index[first][code]
    spans = np.bincount(code, weights=other_file, minlength=n_sessions) > 0
    untimed = np.bincount(code, weights=np.isnan(time), minlength=n_sessions) > 0
    merged = (spans & ~untimed)[code]
    if not merged.any():
        return file_order
    slots = np.lexsort((np.arange(n), code))  # each session's positions, in file order
    time = np.where(merged, time, 0.0)
    # Rotation: in a (session, time) group holding both a file's end and another's start, the
    # edge orders them; everywhere else it is ignored.
    by_group = np.lexsort((time, code))
    starts = np.r_[True, (np.diff(code[by_group]) != 0) | (np.diff(time[by_group]) != 0)]
    group = np.empty(n, dtype=np.int64)
    group[by_group] = np.cumsum(starts) - 1
    edge = np.where(merged, column("edge"), 0)
    n_groups = int(group.max()) + 1
    rotation = ((np.bincount(group, weights=edge > 0, minlength=n_groups) > 0)
                & (np.bincount(group, weights=edge < 0, minlength=n_groups) > 0))
    members = np.lexsort((  # merged sessions: (time, edge, line, file); others: (file, line)
        np.where(merged, file_index, line_no),
        np.where(merged, line_no, file_index),
        np.where(rotation[group], edge, 0),
        time,
        code,
    ))
    order = np.empty(n, dtype=np.int64)
    order[slots] = members
    return file_order[order]


def score_complete_sessions(
    detector, rows: pa.Table, settings: BatchSettings, files: Sequence[str],
    threshold: float | None = None,
) -> pa.Table:
    """Score memberships that hold *every* line of their sessions; one row per session.

    Each row becomes one line of a log whose message is its session key, in ``stream_order``, so
    the detector groups exactly these sessions (a line in two sessions appears once in each), each
    in the order one stream of the files would have it. Session scores therefore equal the local
    engine's on that stream. The session columns are the CLI's SESSIONS.csv
    (``ScoreResult.session_csv_table``: ``first_time``, ``last_time`` and ``explanation`` last,
    its line numbers those of ``top_file``), plus ``first_file``/``top_file``; the lines of each
    session come back as list columns (``MEMBER_COLUMNS``) for the last stage.
    """
    rows = rows.take(pa.array(stream_order(rows)))
    n = rows.num_rows
    text = pa.nulls(n, pa.large_string())
    keyed = ParsedLog(
        table=pa.table(
            {
                "line_no": pa.array(np.arange(1, n + 1, dtype=np.int64)),  # row numbers
                "timestamp": rows["timestamp"].combine_chunks(),
                "level": rows["level"].combine_chunks(),
                "component": text,
                "message": rows["session_key"].combine_chunks(),
                "label": rows["label"].combine_chunks(),
                "parse_ok": pa.array(np.ones(n, dtype=bool)),
            }
        ),
        words=rows["words"].combine_chunks(),
        format=settings.format,
    )
    result = detector.score(
        keyed, threshold=threshold, sessions=SessionConfig(by="id", id_pattern=WHOLE_KEY),
        embeddings=False,  # as the local CLI: same scores, no embeddings, half the time
    )
    feedback = getattr(detector, "feedback_", None)
    if feedback and settings.sessions.by != "id":
        # Windows grouped here reach the detector as id sessions: feedback matches them as the
        # windows they are (shifted by up to a quarter window, ``feedback.py``).
        result = apply_feedback(result, feedback, windowed=True)
    index = result.sessions
    file_index = rows["file_index"].to_numpy()
    line_no = rows["line_no"].to_numpy()
    path = np.asarray(files, dtype=object)
    sessions = result.session_table
    if settings.format.has_label and "label" not in sessions.column_names:
        unknown = pa.array(np.full(len(index), -1), type=pa.int8())
        sessions = sessions.append_column("label", unknown)
    # The CLI's SESSIONS.csv table, from its own function, once the keyed log's row numbers are
    # the files' line numbers again (the explanation names the line that weighs most).
    sessions = result.replaced(
        session_table=sessions,
        line_table=put_column(result.line_table, "line_no", pa.array(line_no)),
    ).session_csv_table()
    first = sessions["first_line_no"].to_numpy() - 1
    top = sessions["top_line_no"].to_numpy() - 1
    sessions = put_column(sessions, "first_line_no", pa.array(line_no[first]))
    sessions = put_column(sessions, "top_line_no", pa.array(line_no[top]))
    sessions = _insert_before(sessions, "first_line_no", "first_file",
                              pa.array(path[file_index[first]], type=pa.large_string()))
    sessions = _insert_before(sessions, "top_line_no", "top_file",
                              pa.array(path[file_index[top]], type=pa.large_string()))
    offsets = pa.array(index.offsets.astype(np.int32))
    members = index.members
    lines = result.line_table
    member_values = {
        "member_file_index": pa.array(file_index[members]),
        "member_line_no": pa.array(line_no[members]),
        "member_score": pa.array(lines["score"].to_numpy()[members]),
        "member_is_anomaly": pa.array(
            lines["is_anomaly"].to_numpy(zero_copy_only=False)[members]
        ),
    }
    for name, values in member_values.items():
        sessions = sessions.append_column(name, pa.ListArray.from_arrays(offsets, values))
    return sessions.replace_schema_metadata(None)


class SessionScorer:
    """A Ray actor: loads the checkpoint once, then scores bucket after bucket of sessions.

    The checkpoint travels as bytes (its files are small), so the nodes of a cluster need not
    share a disk with the driver; it is still loaded, and its hash checked, by
    ``TinyLogBERTDetector.load``.
    """

    def __init__(
        self, checkpoint: dict[str, bytes], settings: BatchSettings, files: Sequence[str],
        threshold: float | None, threads: int,
    ) -> None:
        import torch
        from tinylogbert.scoring.detector import TinyLogBERTDetector

        torch.set_num_threads(threads)
        # Kept for the actor's lifetime: ONNX Runtime reads model.onnx when it first scores.
        self._folder = tempfile.TemporaryDirectory(prefix="tinylogbert-actor-")
        folder = self._folder.name
        for name, data in checkpoint.items():
            Path(folder, name).write_bytes(data)
        self.detector = TinyLogBERTDetector.load(folder, runtime="auto")  # as the CLI
        self.detector.num_threads = threads
        self.settings = settings
        self.files = files
        self.threshold = threshold

    def __call__(self, rows: pa.Table) -> pa.Table:
        return score_complete_sessions(
            self.detector, rows.drop_columns(["bucket"]), self.settings, self.files,
            self.threshold,
        )


def _insert_before(table: pa.Table, before: str, name: str, values: pa.Array) -> pa.Table:
    return table.add_column(table.schema.get_field_index(before), name, values)


# ---- stage 3: scores -> every line of every file ----------------------------------------------------
def explode_members(batch: pa.Table) -> pa.Table:
    """Session rows -> one row per (line, session) with the line's and the session's scores."""
    parent = pc.list_parent_indices(batch["member_line_no"])
    return pa.table(
        {
            "file_index": pc.list_flatten(batch["member_file_index"]),
            "line_no": pc.list_flatten(batch["member_line_no"]),
            "score": pc.list_flatten(batch["member_score"]),
            "is_anomaly": pc.list_flatten(batch["member_is_anomaly"]),
            "session_score": batch["score"].take(parent),
            "session_is_anomaly": batch["is_anomaly"].take(parent),
            "severity": batch["severity"].take(parent),
        }
    )


def file_lines(
    scores: pa.Table, files: Sequence[str], settings: BatchSettings
) -> pa.Table:
    """Every line of one file, in order, with the scores of its sessions (the local columns).

    A line in several sessions takes its highest line score and the verdict of its highest-scoring
    session, exactly what the local engine reports.
    """
    index = scores["file_index"][0].as_py()
    prepared = prepare_file(files[index], settings)
    n = len(prepared.parsed)
    line = scores["line_no"].to_numpy() - 1
    scored_lines = np.bincount(line, minlength=n) > 0
    if not scored_lines.all():  # every line is in a session: anything else is a bug
        raise RuntimeError(f"{files[index]}: {int((~scored_lines).sum())} lines got no score")
    line_score = np.full(n, -np.inf)
    np.maximum.at(line_score, line, scores["score"].to_numpy())
    is_anomaly = np.zeros(n, dtype=bool)
    np.logical_or.at(is_anomaly, line, scores["is_anomaly"].to_numpy(zero_copy_only=False))
    # Per line: the membership of its highest-scoring session.
    order = np.lexsort((-scores["session_score"].to_numpy(), line))
    best = order[np.r_[0, np.flatnonzero(np.diff(line[order])) + 1]]
    t = prepared.parsed.table
    out = pa.table(
        {
            "file": pa.array(np.full(n, files[index], dtype=object), type=pa.large_string()),
            "line_no": t["line_no"],
            "session_id": prepared.line_keys,
            "timestamp": t["timestamp"],
            "level": t["level"],
            "component": t["component"],
            "message": t["message"],
            "score": pa.array(line_score),
            "is_anomaly": pa.array(is_anomaly),
            "parse_ok": t["parse_ok"],
            "session_score": scores["session_score"].take(pa.array(best)),
            "session_is_anomaly": scores["session_is_anomaly"].take(pa.array(best)),
            "severity": scores["severity"].take(pa.array(best)),
        }
    )
    if settings.format.has_label:
        labels = prepared.parsed.line_is_anomaly_label()
        out = out.append_column("label", pa.array(labels, type=pa.int8()))
    return out


# ---- driver ----------------------------------------------------------------------------------------
def read_checkpoint(folder: str | Path) -> dict[str, bytes]:
    """The checkpoint's files as bytes, for actors on machines that cannot see ``folder``: the
    required ones, and the manifest, ``model.onnx`` and ``feedback.json`` where the folder has
    them, so an actor checks what the driver checked, scores with the same runtime and applies
    the same feedback."""
    from tinylogbert.model.checkpoint import (
        MANIFEST_FILE,
        OPTIONAL_FILES,
        REQUIRED_FILES,
        check_folder,
    )

    folder = check_folder(folder)
    names = [*REQUIRED_FILES, *(n for n in (*OPTIONAL_FILES, MANIFEST_FILE) if (folder / n).exists())]
    return {name: (folder / name).read_bytes() for name in names}


def _check_out_dir(out_dir: str) -> str:
    """An absolute path or URI for the writers; refuse to mix results with an earlier run's."""
    fs, path = filesystem_for(out_dir)
    clashes = [name for name in OUTPUTS
               if fs.get_file_info(f"{path}/{name}").type != pafs.FileType.NotFound]
    if clashes:
        raise TinyLogBERTError(
            f"{out_dir} already holds results ({', '.join(clashes)}); give a new or empty folder"
        )
    fs.create_dir(path, recursive=True)
    return out_dir if is_uri(out_dir) else path


@contextmanager
def _package_for_workers(needed: bool) -> Iterator[str | None]:
    """This package, copied under its import name for Ray's ``py_modules`` (which imports a folder
    by its own name: the source folder is ``core/``, the package ``tinylogbert``)."""
    if not needed:
        yield None
        return
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="tinylogbert-ray-") as staging:
        target = Path(staging) / "tinylogbert"
        shutil.copytree(Path(__file__).resolve().parents[1], target,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        yield str(target)


@contextmanager
def ray_session(config: RayScoreConfig) -> Iterator[None]:
    """Use the running Ray if there is one; else start a local one or join ``config.address``.

    Joining a cluster ships this package to its workers, so they run the driver's code.
    """
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict = {"include_dashboard": False, "log_to_driver": False,
                    "logging_level": logging.WARNING}
    if not config.address:
        kwargs["num_cpus"] = config.num_cpus
    try:
        with _package_for_workers(bool(config.address)) as package:
            if package:
                kwargs["runtime_env"] = {"py_modules": [package]}
            ray.init(address=config.address, **kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise TinyLogBERTError(
            f"cannot start or reach Ray at {config.address or 'this machine'}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


@contextmanager
def data_context(config: RayScoreConfig) -> Iterator[None]:
    """Ray Data settings for this run, restored afterwards (the context is per process)."""
    import ray.data
    from ray.data.context import ShuffleStrategy

    context = ray.data.DataContext.get_current()
    settings = {
        "enable_progress_bars": config.progress,
        "verbose_stats_logs": False,
        "raise_original_map_exception": True,  # a bad file's own error, not Ray's wrapper
        "shuffle_strategy": ShuffleStrategy(config.shuffle),
    }
    saved = {name: getattr(context, name) for name in settings}
    for name, value in settings.items():
        setattr(context, name, value)
    # Ray Data warns about what this engine handles by design (a busy actor pool, no progress
    # bars); errors still show.
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    data_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        data_logger.setLevel(saved_level)


def user_error(exc: BaseException) -> TinyLogBERTError | None:
    """The ``TinyLogBERTError`` a Ray task raised, if that is what failed, as one line.

    Ray re-raises a task's exception on the driver wrapped in a ``RayTaskError`` whose ``cause``
    is the original (with ``raise_original_map_exception``), its message extended by Ray's advice.
    """
    from ray.exceptions import RayError

    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, TinyLogBERTError) and not isinstance(current, RayError):
            lines = str(current).splitlines()
            return type(current)(lines[0] if lines else "")
        stack.extend([current.__context__, current.__cause__, getattr(current, "cause", None)])
    return None


def score_files(inputs: Sequence[str], out_dir: str, config: RayScoreConfig) -> RayScoreSummary:
    """Score every line and session of ``inputs`` on Ray; write Parquet (and CSV) to ``out_dir``.

    Writes ``lines/`` (one row per input line: ``file``, ``line_no`` and the local engine's line
    columns), ``sessions/`` (one row per session: the CLI's SESSIONS.csv columns, with
    ``first_file``/``top_file``), with ``csv=True`` also ``lines_csv/`` and ``sessions_csv/``,
    and ``summary.json``.
    """
    started = time.perf_counter()
    from tinylogbert.scoring.detector import TinyLogBERTDetector

    files = expand_inputs(inputs)
    out = _check_out_dir(out_dir)
    detector = TinyLogBERTDetector.load(config.model)  # fail here, not in every actor
    sample = sample_parsed(files, config.log_format, detector.format_)
    settings = settings_for(sample, config.sessions or detector.sessions)
    # Fit is judged on the same sample as the format: the first file's head.
    warnings = [f"{w} (judged on the first {len(sample):,} lines of {sample.source})"
                for w in fit_warnings(detector, sample)]
    checkpoint = read_checkpoint(config.model)
    with _staged(out) as stage:
        with ray_session(config), data_context(config):
            try:
                outputs, n_buckets = _run(files, stage, settings, checkpoint, config)
            except Exception as exc:
                found = user_error(exc)
                if found is None:
                    raise
                raise found from None
        seconds = time.perf_counter() - started
        tally = _tally(stage, files)
        summary = _summarise(detector, config, settings, files, sample, warnings, tally, n_buckets,
                             {name: out + where[len(stage):] for name, where in outputs.items()},
                             out, seconds)
        fs, path = filesystem_for(stage)
        with fs.open_output_stream(f"{path}/summary.json") as stream:  # moved in last
            stream.write(json.dumps(summary.to_dict(), indent=2).encode())
    return summary


@contextmanager
def _staged(out: str) -> Iterator[str]:
    """Where the writers write: for a local ``out``, a temporary folder inside it whose results
    are moved into ``out`` once all are written (``summary.json`` last, the sign of a complete
    run), and which a failed run removes (a killed one: the next run); a URI, written in place
    (object stores have no atomic rename)."""
    if is_uri(out):
        yield out
        return
    from tinylogbert.io.atomic_output import temp_folder, write_errors

    stage = temp_folder(Path(out) / "results")
    try:
        with write_errors(out):
            yield str(stage)
            names = sorted(p.name for p in stage.iterdir())
            for name in sorted(names, key=lambda n: n == "summary.json"):  # summary last
                (stage / name).rename(Path(out) / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _summarise(detector, config: RayScoreConfig, settings: BatchSettings, files: list[str],
               sample: ParsedLog, warnings: list[str], tally: dict[str, int], n_buckets: int,
               outputs: dict[str, str], out: str, seconds: float) -> RayScoreSummary:
    """The run's summary (``summary.json``), with drift judged when the fit raised nothing."""
    if not warnings:  # drift: new lines judged on the sample, the flagged share on every file
        drift = measure_drift(detector, new_line_counts(detector, sample.words), len(sample),
                              tally["sessions"], tally["anomalous_sessions"])
        warnings = warnings + [
            f"{w} (new lines judged on the first {len(sample):,} lines of {sample.source})"
            for w in drift_warnings_for(detector, drift, files[0])]
    return RayScoreSummary(
        **tally,
        threshold=detector.threshold_ if config.threshold is None else config.threshold,
        line_threshold=detector.line_threshold_,
        format=settings.format_description,
        sessions_by=settings.session_strategy,
        files=len(files),
        buckets=n_buckets,
        seconds=round(seconds, 2),
        lines_per_s=round(tally["lines"] / max(seconds, 1e-9), 1),
        outputs={**outputs, "summary": f"{out}/summary.json"},
        warnings=warnings,
    )


def _run(
    files: list[str], out: str, settings: BatchSettings, checkpoint: dict[str, bytes],
    config: RayScoreConfig,
) -> tuple[dict[str, str], int]:
    """The Ray Data pipeline; returns the output folders and the number of scorer buckets."""
    import ray
    import ray.data

    threads = config.threads_per_scorer
    scorers = config.scorers or max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
    sources = ray.data.from_items(
        [{"file_index": i} for i in range(len(files))], override_num_blocks=len(files)
    )
    # Materialised: the shuffle below needs all of it anyway, and its size sets the buckets.
    memberships = sources.map_batches(
        file_memberships, batch_size=1, batch_format="pyarrow",
        fn_kwargs={"files": files, "settings": settings},
    ).materialize()
    n_rows = memberships.count()
    if n_rows == 0:
        raise LogInputError("every input file is empty")
    n_buckets = max(scorers, math.ceil(n_rows / config.lines_per_call))
    scored = (
        memberships.map_batches(assign_buckets, batch_format="pyarrow",
                                fn_kwargs={"n_buckets": n_buckets})
        .groupby("bucket", num_partitions=n_buckets)
        .map_groups(
            SessionScorer, batch_format="pyarrow",
            # The actors claim no CPU: on a small machine, actors holding every CPU would leave
            # none to the shuffle that feeds them (a deadlock), and a pool that grows one actor
            # at a time starts the second model too late. Their number sets the parallelism, and
            # SPREAD places them over the cluster's nodes.
            compute=ray.data.ActorPoolStrategy(size=scorers), num_cpus=0,
            scheduling_strategy="SPREAD",
            fn_constructor_kwargs={
                "checkpoint": checkpoint, "settings": settings, "files": files,
                "threshold": config.threshold, "threads": threads,
            },
        )
        .materialize()  # read twice: the sessions output, and the lines' scores
    )
    outputs = {"lines": f"{out}/lines", "sessions": f"{out}/sessions"}
    scored.drop_columns(list(MEMBER_COLUMNS)).write_parquet(outputs["sessions"])
    (
        scored.select_columns([*MEMBER_COLUMNS, "score", "is_anomaly", "severity"])
        .map_batches(explode_members, batch_format="pyarrow")
        .groupby("file_index", num_partitions=min(len(files), 200))
        .map_groups(file_lines, batch_format="pyarrow",
                    fn_kwargs={"files": files, "settings": settings})
        .write_parquet(outputs["lines"])
    )
    if config.csv:
        for name in ("lines", "sessions"):
            outputs[f"{name}_csv"] = f"{out}/{name}_csv"
            ray.data.read_parquet(outputs[name]).write_csv(outputs[f"{name}_csv"])
    return outputs, n_buckets


def _tally(out: str, files: Sequence[str]) -> dict[str, int]:
    """The summary's counts, read back from the Parquet just written (a few columns only)."""
    import pyarrow.dataset as ds

    fs, path = filesystem_for(out)
    lines = ds.dataset(f"{path}/lines", format="parquet", filesystem=fs).to_table(
        columns=["file", "is_anomaly", "parse_ok"]
    )
    sessions = ds.dataset(f"{path}/sessions", format="parquet", filesystem=fs).to_table(
        columns=["is_anomaly"]
    )
    def count(values: pa.ChunkedArray) -> int:
        return int(pc.sum(values).as_py() or 0)

    return {
        "lines": lines.num_rows,
        "sessions": sessions.num_rows,
        "anomalous_sessions": count(sessions["is_anomaly"]),
        "anomalous_lines": count(lines["is_anomaly"]),
        "unparsed_lines": lines.num_rows - count(lines["parse_ok"]),
        "empty_files": len(files) - len(pc.unique(lines["file"])),
    }

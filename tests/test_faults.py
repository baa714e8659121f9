"""Fault injection: a full disk, a kill, a read-only or vanished folder, a log that changes while
it is read, a checkpoint missing a file. Each case checks the outcome the user sees: one clear
line and exit 2, nothing half-written at the target (the earlier file, or none), the temporary
files gone after the next run, and that next run succeeding.

Kills land at chosen points: either when a file the run writes appears (polled), or exactly at a
step of the real code (``KILL_AT``: a child process that runs the CLI with one function wrapped to
SIGKILL itself when called), so no case depends on timing luck.
"""
from __future__ import annotations

import contextlib
import gzip
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SMALL_LOG

TINY_TRAIN = ("--epochs", "1", "--head-epochs", "1", "--steps-per-epoch", "2", "--hidden", "32",
              "--layers", "1", "--heads", "2", "--intermediate", "64", "--vocab-size", "200",
              "--quiet")
# The child: wrap MODULE.ATTR so that a call naming NAME (a path's last part; '' any call)
# first does ACTION (kill: SIGKILL itself; rmdir: remove that path's folder), then run the CLI.
# MODULE '' runs the CLI as it is. NO_ONNX=1 skips exporting model.onnx when saving (seconds of
# CPU that these tests of the folder's swap do not need).
KILL_AT = r"""
import importlib, os, shutil, signal, sys
module, attr, name, action = sys.argv[1:5]
if os.environ.get("NO_ONNX"):
    import tinylogbert.model.onnx_runtime as onnx_runtime
    onnx_runtime.exporter_available = lambda: False
if module:
    owner = importlib.import_module(module)
    real = getattr(owner, attr)
    def wrapped(*args, **kwargs):
        hit = [a for a in args if not name or os.path.basename(str(a)) == name]
        if hit:
            if action == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            shutil.rmtree(os.path.dirname(str(hit[0])), ignore_errors=True)
        return real(*args, **kwargs)
    setattr(owner, attr, wrapped)
from tinylogbert.cli.main import entry
sys.argv = ["tinylogbert", *sys.argv[5:]]
entry()
"""
# The child: between the line count (pass 0) and the parse (pass 1) of ``score --stream``, the
# log is cut in half, or moved aside and a copy written in its place (a rotation).
CHANGE_BETWEEN_PASSES = r"""
import os, sys
import tinylogbert.batch.streaming as streaming
log, change = sys.argv[1:3]
real = streaming._spill
def changed(*args, **kwargs):
    text = open(log).read()
    if change == "truncated":
        os.truncate(log, len(text) // 2)
    else:
        os.rename(log, log + ".1")
        open(log, "w").write(text)
    return real(*args, **kwargs)
streaming._spill = changed
from tinylogbert.cli.main import entry
sys.argv = ["tinylogbert", *sys.argv[3:]]
entry()
"""
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}  # no .pyc writes under a file-size limit


def cli(*args: str, limit_bytes: int = 0, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m tinylogbert.cli.main ARGS``; ``limit_bytes``: RLIMIT_FSIZE for the child."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "tinylogbert.cli.main", *args],
                          capture_output=True, text=True, timeout=timeout, env=ENV,
                          preexec_fn=limit if limit_bytes else None)


def cli_killed_at(point: tuple[str, str, str] | None, *args: str, action: str = "kill",
                  onnx: bool = True) -> subprocess.CompletedProcess:
    module, attr, name = point or ("", "", "")
    env = ENV if onnx else {**ENV, "NO_ONNX": "1"}
    return subprocess.run([sys.executable, "-c", KILL_AT, module, attr, name, action, *args],
                          capture_output=True, text=True, timeout=120, env=env)


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and "internal error" not in err and err.count("\n") == 0, err
    assert err.startswith("error: ")
    for word in words:
        assert word in err, err


def leftovers(folder: Path) -> list[str]:
    """Temporary files and folders of the atomic writers (and the streaming spill)."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


@pytest.fixture(scope="module")
def head_log(tmp_path_factory) -> Path:
    """The first 3,000 lines of the small HDFS log, as plain text (scores in about a second)."""
    path = tmp_path_factory.mktemp("log") / "head.log"
    with gzip.open(SMALL_LOG, "rt") as handle:
        path.write_text("".join(line for _, line in zip(range(3000), handle)))
    return path


@pytest.fixture(scope="module")
def reference(tiny_checkpoint, head_log, tmp_path_factory) -> tuple[bytes, bytes]:
    """LINES.csv and SESSIONS.csv of ``head_log`` from an undisturbed run."""
    out = tmp_path_factory.mktemp("reference")
    proc = cli("score", str(head_log), "--model", str(tiny_checkpoint), "--out",
               str(out / "l.csv"), "--sessions-out", str(out / "s.csv"), "--stream", "off")
    assert proc.returncode == 0, proc.stderr
    return (out / "l.csv").read_bytes(), (out / "s.csv").read_bytes()


def score_args(log: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["score", str(log), "--model", str(model), "--out", str(out / "l.csv"),
            "--sessions-out", str(out / "s.csv"), *extra]


# ---- a full disk --------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", ["off", "on"])
def test_score_past_the_file_size_limit_is_one_line_and_keeps_the_earlier_file(
        stream, tiny_checkpoint, head_log, reference, tmp_path):
    (tmp_path / "l.csv").write_text("earlier result\n")
    proc = cli(*score_args(head_log, tiny_checkpoint, tmp_path, "--stream", stream),
               limit_bytes=64 * 1024)
    one_line_error(proc, "file size limit reached", str(tmp_path))
    assert (tmp_path / "l.csv").read_text() == "earlier result\n"
    assert not (tmp_path / "s.csv").exists()
    assert leftovers(tmp_path) == []  # the failure path removed its temporary files
    if stream == "on":  # the next run succeeds, with the bytes an undisturbed run writes
        proc = cli(*score_args(head_log, tiny_checkpoint, tmp_path, "--stream", stream))
        assert proc.returncode == 0, proc.stderr
        assert ((tmp_path / "l.csv").read_bytes(), (tmp_path / "s.csv").read_bytes()) == reference


@contextlib.contextmanager
def small_file_system(folder: Path, size: str, *options: str):
    """A tmpfs of ``size`` at ``folder`` (root and mount permitted), else the test is skipped."""
    folder.mkdir()
    opts = ",".join([f"size={size}", *options])
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or 'not root'})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_score_on_a_full_disk_says_so_and_leaves_nothing(tiny_checkpoint, head_log, tmp_path):
    with small_file_system(tmp_path / "small", "256k") as small:
        proc = cli(*score_args(head_log, tiny_checkpoint, small, "--stream", "off"))
        one_line_error(proc, "no space left on device while writing", str(small / "l.csv"))
        assert sorted(os.listdir(small)) == []


def test_train_past_the_file_size_limit_leaves_no_folder(head_log, tmp_path):
    proc = cli("train", str(head_log), "--out", str(tmp_path / "model"), *TINY_TRAIN,
               limit_bytes=32 * 1024)
    one_line_error(proc, "file size limit reached", str(tmp_path / "model"))
    assert os.listdir(tmp_path) == []  # no model folder, no temporary one


# ---- killed runs --------------------------------------------------------------------------------
def kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None, f"the run ended before the kill point: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the kill point never came"
        time.sleep(0.005)
    proc.kill()
    proc.wait()


def spill_started(folder: Path):
    return lambda: any(p.name.startswith(".tinylogbert-stream.tmp-") for p in folder.iterdir())


def lines_begun(folder: Path):
    def ready() -> bool:
        return any(p.name.startswith(".l.csv.tmp-") and p.stat().st_size > 0
                   for p in folder.iterdir())
    return ready


@pytest.mark.parametrize("point", ["while parsing", "while writing"])
def test_stream_score_killed_leaves_the_earlier_files_and_the_next_run_cleans_up(
        point, tiny_checkpoint, head_log, reference, tmp_path):
    for name in ("l.csv", "s.csv"):
        (tmp_path / name).write_text(f"earlier {name}\n")
    args = score_args(head_log, tiny_checkpoint, tmp_path, "--stream", "on", "--chunk-lines",
                      "200")
    proc = subprocess.Popen([sys.executable, "-m", "tinylogbert.cli.main", *args], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kill_when(proc, spill_started(tmp_path) if point == "while parsing" else lines_begun(tmp_path))
    assert leftovers(tmp_path)  # the killed run's temporaries, and nothing else changed
    for name in ("l.csv", "s.csv"):
        assert (tmp_path / name).read_text() == f"earlier {name}\n"
    proc = cli(*args)
    assert proc.returncode == 0, proc.stderr
    assert leftovers(tmp_path) == []
    assert ((tmp_path / "l.csv").read_bytes(), (tmp_path / "s.csv").read_bytes()) == reference


def test_score_killed_at_the_rename_leaves_both_earlier_files(tiny_checkpoint, head_log, tmp_path):
    for name in ("l.csv", "s.csv"):
        (tmp_path / name).write_text(f"earlier {name}\n")
    proc = cli_killed_at(("os", "replace", "s.csv"),  # the first of the two renames
                         *score_args(head_log, tiny_checkpoint, tmp_path, "--stream", "off"))
    assert proc.returncode == -signal.SIGKILL
    assert len(leftovers(tmp_path)) == 2  # both files complete under their temporary names
    for name in ("l.csv", "s.csv"):
        assert (tmp_path / name).read_text() == f"earlier {name}\n"


def test_train_killed_leaves_the_earlier_checkpoint_then_trains(tiny_checkpoint, head_log,
                                                               tmp_path):
    from tinylogbert.model.checkpoint import check_folder

    model = shutil.copytree(tiny_checkpoint, tmp_path / "model")
    before = sorted((p.name, p.read_bytes()) for p in model.iterdir())
    args = ("train", str(head_log), "--out", str(model), *TINY_TRAIN)
    # Killed with the new checkpoint complete in its temporary folder, just before the swap.
    proc = cli_killed_at(("tinylogbert.io.atomic_output", "_swap_in", ""), *args, onnx=False)
    assert proc.returncode == -signal.SIGKILL
    assert [name.startswith(".model.tmp-") for name in leftovers(tmp_path)] == [True]
    assert sorted((p.name, p.read_bytes()) for p in model.iterdir()) == before
    check_folder(model)
    proc = cli_killed_at(None, *args, onnx=False)  # the next run
    assert proc.returncode == 0, proc.stderr
    assert leftovers(tmp_path) == []
    check_folder(model)
    assert (model / "model.safetensors").read_bytes() != dict(before)["model.safetensors"]


@pytest.mark.parametrize("name, kept", [("feedback.json", "earlier"),
                                        ("checkpoint.sha256.json", "new")])
def test_feedback_killed_at_either_rename_leaves_a_checkpoint_that_verifies(
        name, kept, tiny_checkpoint, head_log, tmp_path):
    """Killed before feedback.json is renamed: the earlier feedback. Killed after it, before the
    manifest: the new feedback, whose complete manifest the next check renames into place."""
    from tinylogbert.model.checkpoint import check_folder
    from tinylogbert.scoring.feedback import read_feedback

    model = shutil.copytree(tiny_checkpoint, tmp_path / "model")
    sessions = [line.split("blk_")[1].split()[0] for line in head_log.read_text().splitlines()[:1]]
    mark = ("feedback", "--model", str(model), "--log", str(head_log), "--normal",
            f"blk_{sessions[0]}")
    proc = cli_killed_at(("os", "replace", name), *mark)
    assert proc.returncode == -signal.SIGKILL
    check_folder(model)  # verifies: never the new feedback under the earlier manifest
    assert len(read_feedback(model)) == (0 if kept == "earlier" else 1)
    proc = cli(*mark)
    assert proc.returncode == 0, proc.stderr
    assert leftovers(model) == []
    check_folder(model)
    assert len(read_feedback(model)) >= 1


# ---- a read-only or vanished folder -------------------------------------------------------------
def test_a_read_only_output_folder_is_one_line(tiny_checkpoint, head_log, tmp_path):
    with small_file_system(tmp_path / "ro", "64k", "ro") as folder:
        proc = cli(*score_args(head_log, tiny_checkpoint, folder, "--stream", "off"))
        one_line_error(proc, str(folder / "l.csv"))


def test_an_output_folder_removed_mid_run_is_one_line(tiny_checkpoint, head_log, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # The folder is removed just as the finished LINES.csv is renamed into it.
    proc = cli_killed_at(("os", "replace", "s.csv"),
                         *score_args(head_log, tiny_checkpoint, out, "--stream", "off"),
                         action="rmdir")
    one_line_error(proc, "the output folder no longer exists while writing", str(out / "s.csv"))


# ---- a log that changes while it is read ---------------------------------------------------------
@pytest.mark.parametrize("change", ["truncated", "rotated"])
def test_a_log_changed_between_the_streaming_passes_is_refused(
        change, tiny_checkpoint, head_log, tmp_path):
    log = tmp_path / "app.log"
    shutil.copy(head_log, log)
    proc = subprocess.run([sys.executable, "-c", CHANGE_BETWEEN_PASSES, str(log), change,
                           *score_args(log, tiny_checkpoint, tmp_path, "--stream", "on")],
                          capture_output=True, text=True, timeout=120, env=ENV)
    one_line_error(proc, str(log), "while it was read")
    assert not (tmp_path / "l.csv").exists() and leftovers(tmp_path) == []


# ---- a checkpoint missing a file ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tokenizer.json", "model.safetensors"])
def test_a_checkpoint_missing_a_file_names_it(name, tiny_checkpoint, head_log, tmp_path):
    model = shutil.copytree(tiny_checkpoint, tmp_path / "model")
    (model / name).unlink()
    proc = cli(*score_args(head_log, model, tmp_path, "--stream", "off"))
    one_line_error(proc, str(model), name)
    assert not (tmp_path / "l.csv").exists()


# ---- the API ------------------------------------------------------------------------------------
def test_the_api_answers_a_write_failure_with_507(tiny_checkpoint, head_log, tmp_path):
    from fastapi.testclient import TestClient
    from tinylogbert.api.anomaly_routes import create_app
    from tinylogbert.api.settings import ApiSettings

    with small_file_system(tmp_path / "disk", "2m") as disk:
        model = shutil.copytree(tiny_checkpoint, disk / "model")
        lines = head_log.read_text().splitlines()[:300]
        remount = subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True)
        assert remount.returncode == 0, remount.stderr
        with TestClient(create_app(model, ApiSettings(torch_threads=1))) as c:
            sid = "blk_" + lines[0].split("blk_")[1].split()[0]
            response = c.post("/v1/feedback", json={"lines": lines, "normal": [sid]})
        assert response.status_code == 507, response.text
        assert response.json()["error"] == "write_error"
        assert "read-only file system while writing" in response.json()["message"]

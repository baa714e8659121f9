"""The Ray engine on a real two-node Ray cluster, started here on loopback.

``ray start --head`` plus a second ``ray start --address`` on the same machine make a cluster of
two raylets (one CPU each); ``tinylogbert score --engine ray --address 127.0.0.1:PORT`` joins it
as any driver would, shipping the package and the model to the workers. Ray >= 2.59 starts
clusters with token authentication, so every process here gets the same token through
``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` (a file in this test's folder: never the
user's ``~/.ray/auth_token``). The cluster is stopped by its processes' ids, not ``ray stop``,
which would stop every Ray on the machine.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import deal_small_log
from tinylogbert.io.log_reader import read_log_text

START_TIMEOUT_S = 60
NODES = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_under(folder: str) -> list[int]:
    """Ids of the processes whose command line names ``folder``, and of their children."""
    parents: dict[int, int] = {}
    named: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        pid = int(entry.name)
        parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if folder in cmdline:
            named.add(pid)
    found, grew = set(named), True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return sorted(found - {os.getpid()})


def stop_processes(folder: str) -> None:
    """SIGTERM this cluster's processes, then SIGKILL what is left after 10 s."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        pids = processes_under(folder)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if Path(f"/proc/{p}").exists()
                    and "Z" not in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1][:3]]
            time.sleep(0.2)
        if not pids:
            return


def ray_start(args: list[str], env: dict[str, str], deadline: float) -> None:
    """Run one ``ray start``; skip (not fail) when this machine cannot start a cluster."""
    try:
        proc = subprocess.run(
            ["ray", "start", *args], env=env, capture_output=True, text=True, check=False,
            timeout=max(1.0, deadline - time.monotonic()),
        )
    except subprocess.TimeoutExpired:
        pytest.skip(f"ray start {args[0]} did not finish within {START_TIMEOUT_S} s")
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        pytest.skip(f"ray start {args[0]} failed: {last}")


@pytest.fixture
def ray_cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A two-node cluster on 127.0.0.1: its address, and the environment that may join it."""
    if shutil.which("ray") is None:
        pytest.skip("no `ray` command on PATH (pip install -e '.[ray]')")
    pytest.importorskip("ray")
    # Short: Ray's socket paths under it must stay within the 107 bytes a Unix socket allows.
    folder = tempfile.mkdtemp(prefix="tlb-ray-", dir="/tmp")
    token = Path(folder, "auth_token")
    token.write_text(secrets.token_hex(32))
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token),
           "RAY_USAGE_STATS_ENABLED": "0"}
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--object-store-memory=100000000",
              "--disable-usage-stats"]
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        ray_start(["--head", f"--port={port}", f"--temp-dir={folder}",
                   "--include-dashboard=false", *common], env, deadline)
        ray_start([f"--address={address}", *common], env, deadline)
        wait_for_nodes(address, env, deadline)
        yield address, env
    finally:
        stop_processes(folder)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_nodes(address: str, env: dict[str, str], deadline: float) -> None:
    """Until both raylets have registered with the head (``ray start`` returns before)."""
    probe = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False, "
             "logging_level='error'); print(sum(n['Alive'] for n in ray.nodes()))")
    alive = "0"
    while time.monotonic() < deadline:
        proc = subprocess.run([sys.executable, "-c", probe, address], env=env, capture_output=True,
                              text=True, check=False,
                              timeout=max(1.0, deadline - time.monotonic()))
        alive = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else "?"
        if alive == str(NODES):
            return
        time.sleep(1)
    pytest.skip(f"the cluster did not show {NODES} live nodes within {START_TIMEOUT_S} s "
                f"(last count: {alive})")


@pytest.mark.ray
@pytest.mark.timeout(180)
def test_cli_scores_dealt_log_on_a_two_node_cluster(ray_cluster, tiny_detector, tiny_checkpoint,
                                                    tmp_path):
    """Four node logs, one cluster of two: the local engine's session scores, every line back."""
    address, env = ray_cluster
    logs = tmp_path / "logs"
    lines = deal_small_log(logs)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "tinylogbert.cli.main", "score", str(logs), "--engine", "ray",
         "--address", address, "--model", str(tiny_checkpoint), "--out", str(out),
         "--scorers", "2"],
        env=env, capture_output=True, text=True, check=False, timeout=150,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"scored {len(lines):,} lines of 4 files" in proc.stdout
    assert "Traceback" not in proc.stderr

    from tinylogbert.scoring.detector import TinyLogBERTDetector

    # The local engine with the model loaded as the CLI and the actors load it (runtime 'auto').
    local = TinyLogBERTDetector.load(tiny_checkpoint, runtime="auto").score(
        read_log_text("\n".join(lines) + "\n"), embeddings=False)
    expected = local.session_frame.set_index("session_id")
    sessions = pq.read_table(out / "sessions").to_pandas().set_index("session_id")
    assert sorted(sessions.index) == sorted(expected.index)
    sessions = sessions.loc[expected.index]
    np.testing.assert_allclose(sessions["score"], expected["score"], atol=1e-5, rtol=0)
    assert sessions["is_anomaly"].tolist() == expected["is_anomaly"].tolist()
    assert pq.read_table(out / "lines", columns=["line_no"]).num_rows == len(lines)
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files"], summary["sessions"]) == (4, local.n_sessions)

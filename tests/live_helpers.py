"""Helpers of the live-service tests: free ports, real external programs, slices of HDFS."""
from __future__ import annotations

import gzip
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "sample_data" / "HDFS_heldout.log.gz"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def heldout_lines(n: int, skip: int = 0) -> list[str]:
    """``n`` lines of the held-out HDFS log after the first ``skip`` (later blocks)."""
    out = []
    with gzip.open(HELDOUT, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= skip + n:
                break
            if i >= skip:
                out.append(line.rstrip("\n"))
    return out


def need_program(name: str) -> str:
    """The path of a real program the test runs, or a skip that says how to get it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install "
                    f"{'prometheus' if name == 'promtool' else 'prometheus-alertmanager'}; "
                    ".ci/run installs it)")
    return path


def promtool_check(text: bytes) -> subprocess.CompletedProcess:
    return subprocess.run([need_program("promtool"), "check", "metrics"], input=text,
                          capture_output=True, timeout=30)


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise AssertionError(f"{url} did not answer in {timeout:g}s") from None
            time.sleep(0.1)


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


class Alertmanager:
    """A real Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1, temp config and
    storage, no clustering."""

    CONFIG = 'route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n  - name: "null"\n'

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.binary = need_program("prometheus-alertmanager")
        self.folder = folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Alertmanager":
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "alertmanager.yml"
        config.write_text(self.CONFIG)
        self.log = open(self.folder / "alertmanager.log", "a")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [self.binary, f"--config.file={config}", f"--storage.path={self.folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
            stdout=self.log, stderr=self.log)
        wait_http(f"{self.url}/-/ready", 30, self.proc)
        return self

    def alerts(self) -> list[dict]:
        import json

        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=30)
            self.log.close()

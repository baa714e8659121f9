"""Load test of the REST API: concurrent clients posting real HDFS lines to a local server.

Starts ``python -m tinylogbert.cli.serve`` on 127.0.0.1 (loopback only, a free port), then ``--clients``
async clients each post ``--lines``-line chunks of ``sample_data/HDFS_sample.log.gz`` to
``POST /v1/score`` until ``--requests`` requests are done or ``--max-seconds`` have passed. Meanwhile
a probe calls ``/v1/health`` every 0.2 s, which shows whether health stays responsive under load.
Prints requests/s, lines/s, p50/p95/p99 latency and the error count (any non-200 or failed
request)::

    python -m benchmarks.load_test --model checkpoint --clients 32 --lines 1000 \\
        --requests 320 --max-seconds 120 [--cold]

By default requests cycle through 64 chunks of the log, so after the first round the server's
sequence cache answers most of each request. ``--cold`` makes every request distinct: its block
ids renamed (new blocks) and each line dropped or doubled with probability 0.1 (new session
sequences: the cache, keyed by the masked lines, cannot answer them), the warm-up included.
"""
from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOG = ROOT / "sample_data" / "HDFS_sample.log.gz"
HOST = "127.0.0.1"  # loopback only: this script never talks to another machine
MAX_CHUNKS = 64  # distinct request bodies kept in memory; requests cycle through them
HEALTH_EVERY_S = 0.2


@dataclass(frozen=True)
class LoadTestConfig:
    model: Path
    clients: int = 32
    lines: int = 1000
    requests: int = 320
    max_seconds: float = 120.0
    log: Path = DEFAULT_LOG
    server_args: tuple[str, ...] = ()  # extra ``serve`` flags, e.g. ("--max-concurrency", "2")
    startup_seconds: float = 120.0
    cold: bool = False  # every request distinct (see the module docstring)


@dataclass
class LoadTestReport:
    clients: int
    lines_per_request: int
    requests: int  # completed (successful or not)
    errors: int
    seconds: float
    requests_per_s: float
    lines_per_s: float  # successfully scored lines
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    health_checks: int
    health_p99_ms: float
    server: dict = field(default_factory=dict)  # model size and scoring settings, from /v1/model
    error_examples: list[str] = field(default_factory=list)
    cold: bool = False

    def describe(self) -> str:
        server = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"  # runtime: a name
                           for k, v in self.server.items())
        return (
            f"{self.requests:,} {'distinct (cold) ' if self.cold else ''}requests of "
            f"{self.lines_per_request:,} lines from "
            f"{self.clients} clients in {self.seconds:.1f}s: {self.requests_per_s:.1f} requests/s, "
            f"{self.lines_per_s:,.0f} lines/s, latency p50 {self.p50_ms:.0f} ms / "
            f"p95 {self.p95_ms:.0f} ms / p99 {self.p99_ms:.0f} ms / max {self.max_ms:.0f} ms, "
            f"{self.errors} errors; "
            f"health p99 {self.health_p99_ms:.0f} ms over {self.health_checks} checks under load "
            f"(server: {server})"
        )


def request_bodies(log: Path, lines_per_request: int, cold_requests: int = 0) -> list[bytes]:
    """JSON bodies of consecutive ``lines_per_request``-line chunks (encoded once, up front, so
    the clients spend the shared CPU on sending, not on encoding). ``cold_requests``: that many
    distinct bodies instead (renamed blocks, lines dropped or doubled; seeded per request)."""
    with gzip.open(log, "rb") as f:
        lines = f.read().splitlines()
    chunks = [lines[i:i + lines_per_request]
              for i in range(0, len(lines) - lines_per_request + 1, lines_per_request)]
    if not chunks:
        raise SystemExit(f"error: {log} has fewer than {lines_per_request} lines")
    if not cold_requests:
        return [_body(c) for c in chunks[:MAX_CHUNKS]]
    from benchmarks.throughput import perturbed, renamed

    width = len(str(cold_requests))
    bodies = []
    for i in range(cold_requests):
        start = (i * lines_per_request) % len(lines)
        window = (lines + lines)[start:start + 2 * lines_per_request]  # drops need spare lines
        kept = perturbed(window, random.Random(i))[:lines_per_request]  # exactly the size asked
        text = renamed(b"\n".join(kept), f"{i:0{width}d}")
        bodies.append(_body(text.split(b"\n")))
    return bodies


def _body(lines: list[bytes]) -> bytes:
    return json.dumps({"lines": [line.decode("utf-8", errors="replace") for line in lines]}
                      ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(config: LoadTestConfig, port: int, log_file) -> subprocess.Popen:
    command = [sys.executable, "-m", "tinylogbert.cli.serve", "--model", str(config.model),
               "--host", HOST, "--port", str(port), "--log-level", "warning",
               "--max-lines", str(max(config.lines, 1)), *config.server_args]
    env = {k: v for k, v in os.environ.items() if k != "TINYLOGBERT_API_KEY"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT)


async def wait_until_up(base: str, server: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base) as client:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with code {server.returncode}")
            try:
                if (await client.get("/v1/health", timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer within {seconds:.0f}s")
            await asyncio.sleep(0.2)


async def run_load(base: str, config: LoadTestConfig, bodies: list[bytes]) -> LoadTestReport:
    latencies: list[float] = []
    health: list[float] = []
    errors: list[str] = []
    issued = 0
    limits = httpx.Limits(max_connections=config.clients + 1)
    timeout = httpx.Timeout(config.max_seconds)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        model = (await client.get("/v1/model")).json()
        server = {k: model[k]
                  for k in ("parameters", "runtime", "max_concurrency", "torch_threads")}
        for body in bodies[:2]:  # warm-up, not measured
            await client.post("/v1/score", content=body, headers=headers)
        bodies = bodies[2:] if config.cold else bodies  # cold: no body is scored twice
        started = time.perf_counter()
        deadline = started + config.max_seconds
        done = asyncio.Event()

        async def one_client() -> None:
            nonlocal issued
            while issued < config.requests and time.perf_counter() < deadline:
                body = bodies[issued % len(bodies)]
                issued += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/score", content=body, headers=headers)
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - t0)

        async def health_probe() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                try:
                    await client.get("/v1/health", timeout=10)
                    health.append(time.perf_counter() - t0)
                except httpx.HTTPError as exc:
                    errors.append(f"health: {type(exc).__name__}: {exc}")
                await asyncio.sleep(HEALTH_EVERY_S)

        probe = asyncio.create_task(health_probe())
        await asyncio.gather(*(one_client() for _ in range(config.clients)))
        seconds = time.perf_counter() - started
        done.set()
        await probe
    ms = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    health_ms = np.asarray(health) * 1000 if health else np.zeros(1)
    ok = len(latencies) - sum(1 for e in errors if not e.startswith("health"))
    return LoadTestReport(
        clients=config.clients, lines_per_request=config.lines, requests=len(latencies),
        errors=len(errors), seconds=round(seconds, 2),
        requests_per_s=round(len(latencies) / seconds, 2),
        lines_per_s=round(ok * config.lines / seconds, 1),
        p50_ms=round(float(np.percentile(ms, 50)), 1), p95_ms=round(float(np.percentile(ms, 95)), 1),
        p99_ms=round(float(np.percentile(ms, 99)), 1),
        max_ms=round(float(ms.max()), 1), health_checks=len(health),
        health_p99_ms=round(float(np.percentile(health_ms, 99)), 1), server=server,
        error_examples=list(dict.fromkeys(errors))[:5], cold=config.cold,
    )


def run(config: LoadTestConfig) -> LoadTestReport:
    """Start the server, load it, stop it; the server's own output is shown if it fails."""
    bodies = request_bodies(config.log, config.lines, config.requests + 2 if config.cold else 0)
    port = free_port()
    base = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile() as server_log:
        server = start_server(config, port, server_log)
        try:
            asyncio.run(wait_until_up(base, server, config.startup_seconds))
            return asyncio.run(run_load(base, config, bodies))
        except RuntimeError as exc:
            server_log.seek(0)
            tail = server_log.read().decode(errors="replace")[-2000:]
            raise SystemExit(f"error: {exc}\n{tail}") from None
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load_test", description=__doc__.split("\n")[0])
    p.add_argument("--model", default=str(ROOT / "checkpoint"), help="checkpoint folder")
    p.add_argument("--clients", type=int, default=32, help="concurrent clients")
    p.add_argument("--lines", type=int, default=1000, help="lines per request")
    p.add_argument("--requests", type=int, default=320, help="stop after this many requests")
    p.add_argument("--max-seconds", type=float, default=120.0, help="stop sending after this long")
    p.add_argument("--log", default=str(DEFAULT_LOG), help="gzip log whose lines are posted")
    p.add_argument("--max-concurrency", type=int, help="the server's scoring slots")
    p.add_argument("--threads", type=int, help="the server's torch threads")
    p.add_argument("--cold", action="store_true",
                   help="every request distinct: renamed blocks, new session sequences")
    p.add_argument("--int8", action="store_true",
                   help="the server scores with the int8-quantized graph (serve --int8)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = p.parse_args(argv)
    if min(args.clients, args.lines, args.requests) < 1 or args.max_seconds <= 0:
        p.error("--clients, --lines, --requests and --max-seconds must be positive")
    server_args = []
    if args.max_concurrency:
        server_args += ["--max-concurrency", str(args.max_concurrency)]
    if args.threads is not None:
        server_args += ["--torch-threads", str(args.threads)]
    if args.int8:
        server_args += ["--int8"]
    config = LoadTestConfig(
        model=Path(args.model), clients=args.clients, lines=args.lines, requests=args.requests,
        max_seconds=args.max_seconds, log=Path(args.log), server_args=tuple(server_args),
        cold=args.cold,
    )
    report = run(config)
    print(json.dumps(asdict(report)) if args.json else report.describe())
    for example in report.error_examples:
        print(f"  error: {example}", file=sys.stderr)
    return 1 if report.errors else 0


if __name__ == "__main__":
    sys.exit(main())

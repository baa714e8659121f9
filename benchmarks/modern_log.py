"""A modern-service development log: logfmt lines with trace ids from several services, with
faults injected into some traces, so the model is judged on a log of today's kind too.

Deterministic for a seed. Train is fault-free; test holds the same traffic with faults in about
``fault_rate`` of its traces. Labels are per trace (``session_id,label``, 1 = a fault), which is
what sessions are by default (``trace_id`` is on every line; stack-trace lines follow their event).
"""
from __future__ import annotations

import csv
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

SERVICES = ("gateway", "orders", "billing", "inventory")
# A request's normal path: (service, level, message template).
NORMAL_PATH = (
    ("gateway", "info", "GET /v1/orders/{order} accepted"),
    ("orders", "debug", "loaded order {order} from cache"),
    ("inventory", "info", "reserved {qty} items for order {order}"),
    ("billing", "info", "charged order {order} amount={amount}"),
    ("gateway", "info", "GET /v1/orders/{order} 200 in {ms}ms"),
)
FAULTS = (
    ("billing", "error", "payment provider timeout after 30000 ms for order {order}"),
    ("inventory", "error", "deadlock detected while reserving order {order}; rolled back"),
    ("orders", "error", "java.lang.NullPointerException: order {order} has no customer"),
    ("gateway", "warn", "circuit breaker open for billing; order {order} queued"),
)
STACK = ("\tat com.acme.orders.OrderService.load(OrderService.java:118)",
         "\tat com.acme.orders.Handler.handle(Handler.java:57)")


def _trace(rng: random.Random, t: datetime, n: int, faulty: bool) -> tuple[list[str], datetime]:
    order, trace = rng.randint(10_000, 99_999), f"{rng.getrandbits(64):016x}"
    values = {"order": order, "qty": rng.randint(1, 5), "amount": rng.randint(5, 500),
              "ms": rng.randint(8, 90)}
    path = list(NORMAL_PATH)
    if faulty:
        path.insert(rng.randint(1, len(path) - 1), rng.choice(FAULTS))
    out = []
    for service, level, text in path:
        t += timedelta(milliseconds=rng.randint(1, 40))
        message = text.format(**values)
        out.append(f"time={t.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z level={level} "
                   f'service={service} msg="{message}" trace_id={trace} span_id={n:06x}')
        if "NullPointerException" in message:
            out.extend(STACK)
    return out, t


def write_modern_log(path: str | Path, n_traces: int, seed: int, fault_rate: float = 0.0,
                     labels_path: str | Path | None = None) -> int:
    """Write ``n_traces`` interleaved-in-time traces; return how many are faulty."""
    rng = random.Random(seed)
    t = datetime(2024, 3, 1, 12, 0, tzinfo=timezone.utc)
    lines, labels = [], []
    for n in range(n_traces):
        faulty = rng.random() < fault_rate
        trace_lines, t = _trace(rng, t, n, faulty)
        lines.extend(trace_lines)
        labels.append((trace_lines[0].rsplit("trace_id=", 1)[1].split()[0], int(faulty)))
    Path(path).write_text("\n".join(lines) + "\n")
    if labels_path is not None:
        with open(labels_path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["session_id", "label"])
            writer.writerows(labels)
    return sum(label for _, label in labels)


def modern_dev_log(workdir: str | Path, n_train: int = 800, n_test: int = 400,
                   seed: int = 24) -> tuple[Path, Path, Path]:
    """(train log, test log, per-trace labels CSV) in ``workdir``: a few thousand logfmt lines."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    train, test, labels = (workdir / "modern_train.log", workdir / "modern_test.log",
                           workdir / "modern_test_labels.csv")
    write_modern_log(train, n_train, seed)
    write_modern_log(test, n_test, seed + 1, fault_rate=0.05, labels_path=labels)
    return train, test, labels

"""Fault injection: bursts of real-world fault messages placed in the scored part of a log.

Why: "few normal sessions flagged" only means something next to "faults caught". A detector
whose threshold lies above every fault it will meet is deaf, not quiet. Each burst is a few lines
of one fault, written in the log's own format (a scored line is copied and its message replaced,
so the timestamp, host, component and session id stay those of a real line), right after that
line: an HDFS burst names the line's block, so it lands in that block's session; a windowed log's
burst lands in the window that holds it.

The messages and settings were fixed before any result was looked at, and are the same for every
log (none is tuned to a system). Half the bursts carry an error level, half keep the level of the
line they copy (INFO, mostly): a fault that a service logs at INFO must be caught by what it says.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (message, level: None keeps the copied line's level)
FAULTS: tuple[tuple[str, str | None], ...] = (
    ("Out of memory: Killed process 4242 (java) total-vm:8388608kB, anon-rss:8123456kB", "FATAL"),
    ("write failed: No space left on device (errno 28) while flushing /var/data/part-00017", None),
    ("Cannot bind to address 0.0.0.0:8080: Address already in use; shutting down", "ERROR"),
    ("end_request: I/O error, dev sda, sector 1953525160 op 0x0:(READ)", None),
    ("Exiting on fatal signal 11 (Segmentation fault), core dumped to /var/crash/core.4242", "FATAL"),
    ("Connection refused to 10.0.0.17:5432 after 5 retries; giving up", None),
)
BURST_LINES = 3
FAULT_LABEL = "FAULT"  # the inline label of an injected line, for formats that carry one


@dataclass(frozen=True)
class Burst:
    after: int  # index of the scored line the burst follows (and copies)
    fault: int  # index into FAULTS


def plan_bursts(parsed, normal_lines: np.ndarray, seed: int = 0) -> list[Burst]:
    """One burst per fault, after distinct lines drawn from ``normal_lines`` (lines of normal
    sessions that parsed), spread over the log."""
    rng = np.random.default_rng(seed + 7)
    candidates = np.asarray(normal_lines, dtype=np.int64)
    picked = rng.choice(candidates, size=min(len(FAULTS), len(candidates)), replace=False)
    return [Burst(int(a), k) for k, a in enumerate(sorted(picked))]


def inject(lines: list[str], parsed, bursts: list[Burst]) -> tuple[list[str], list[list[int]]]:
    """The lines with the bursts inserted; and per burst the 0-based indices of its lines."""
    table = parsed.table
    messages = table["message"].to_pylist()
    levels = table["level"].to_pylist()
    labels = table["label"].to_pylist() if "label" in table.column_names else [None] * len(lines)
    session_ids = _session_tokens(parsed)
    after = {b.after: b for b in bursts}
    out: list[str] = []
    where: list[list[int]] = []
    for i, raw in enumerate(lines):
        out.append(raw)
        burst = after.get(i)
        if burst is None or messages[i] is None:
            continue
        text, level = FAULTS[burst.fault]
        message = text + (f" [{session_ids[i]}]" if session_ids[i] else "")
        at = raw.rfind(messages[i])
        line = raw[:at] + message if at >= 0 else raw + " " + message
        if level and levels[i] and levels[i] in line[:at]:
            line = line.replace(levels[i], level, 1)
        if labels[i] is not None and line.startswith(str(labels[i])):
            line = FAULT_LABEL + line[len(str(labels[i])):]
        where.append(list(range(len(out), len(out) + BURST_LINES)))
        out.extend([line] * BURST_LINES)
    return out, where


def _session_tokens(parsed) -> list[str | None]:
    """The session id a line names (HDFS's block id), so its fault lands in the same session."""
    pattern = parsed.format.session_pattern
    if not pattern:
        return [None] * len(parsed)
    import pyarrow.compute as pc

    # The whole match, not only its id: a rule may name the id inside some context (OpenStack:
    # ``\[instance: (?P<id>...)\]``), and the fault line must carry what the rule looks for.
    found = pc.extract_regex(parsed.table["message"].fill_null(""), f"(?P<found>{pattern})")
    return [r["found"] if r else None for r in found.to_pylist()]

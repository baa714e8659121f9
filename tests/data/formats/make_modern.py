"""Writes the modern-format fixtures (logfmt, cri, rfc5424, rfc3164, journald), deterministically.

Run from this folder: ``python make_modern.py``. Several hundred lines each, with errors among
them; the CRI log splits long messages over P records and writes a Java stack trace line by line.
"""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

RNG = random.Random(24)
T0 = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
SERVICES = ("api", "billing", "auth")
OK = ("GET /v1/orders/{n} 200", "POST /v1/orders 201", "cache hit key=user:{n}", "served in {n}ms")
BAD = ("db timeout after 30000 ms", "connection refused to payments:443", "panic: nil map write")


def events(n: int):
    for i in range(n):
        t = T0 + timedelta(milliseconds=137 * i)
        error = i % 23 == 7
        text = (RNG.choice(BAD) if error else RNG.choice(OK)).format(n=RNG.randint(1, 9999))
        yield i, t, ("error" if error else RNG.choice(("info", "info", "debug", "warn"))), text


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def write_logfmt(path: str) -> None:
    with open(path, "w") as out:
        for i, t, level, text in events(400):
            out.write(f'time={iso(t)} level={level} service={SERVICES[i % 3]} msg="{text}" '
                      f"trace_id=t{i // 5:04d} duration_ms={RNG.randint(1, 900)}\n")


def write_cri(path: str) -> None:
    with open(path, "w") as out:
        for i, t, level, text in events(300):
            stamp = t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"
            if i % 10 == 3:  # a long message split over three P records and a final F
                body = json.dumps({"level": level, "logger": "worker", "msg": text + " " + "x" * 60,
                                   "trace_id": f"t{i // 5:04d}"})
                parts = [body[:20], body[20:45], body[45:70], body[70:]]
                for part in parts[:-1]:
                    out.write(f"{stamp} stdout P {part}\n")
                out.write(f"{stamp} stdout F {parts[-1]}\n")
            elif level == "error" and i % 2:
                out.write(f"{stamp} stderr F Exception in thread \"main\" "
                          "java.lang.IllegalStateException: " + text + "\n")
                for frame in ("com.acme.Worker.run(Worker.java:42)",
                              "java.base/java.lang.Thread.run(Thread.java:833)"):
                    out.write(f"{stamp} stderr F \tat {frame}\n")
            else:
                out.write(f"{stamp} stdout F " + json.dumps(
                    {"level": level, "logger": SERVICES[i % 3], "msg": text,
                     "trace_id": f"t{i // 5:04d}"}) + "\n")


def write_syslog(path5424: str, path3164: str) -> None:
    severity = {"error": 3, "warn": 4, "info": 6, "debug": 7}
    with open(path5424, "w") as a, open(path3164, "w") as b:
        for i, t, level, text in events(300):
            pri = 8 + severity[level]  # facility 1 (user)
            sd = f'[req@32473 id="r{i}"]' if i % 4 == 0 else "-"
            a.write(f"<{pri}>1 {iso(t)} web-{i % 3} {SERVICES[i % 3]} {1000 + i % 7} - {sd} "
                    f"{text}\n")
            b.write(f"<{pri}>{t.strftime('%b %d %H:%M:%S').replace(' 0', '  ')} web-{i % 3} "
                    f"{SERVICES[i % 3]}[{1000 + i % 7}]: {text}\n")


def write_journald(path: str) -> None:
    priority = {"error": "3", "warn": "4", "info": "6", "debug": "7"}
    with open(path, "w") as out:
        for i, t, level, text in events(300):
            out.write(json.dumps({
                "__REALTIME_TIMESTAMP": str(int(t.timestamp() * 1e6)), "PRIORITY": priority[level],
                "_SYSTEMD_UNIT": f"{SERVICES[i % 3]}.service", "SYSLOG_IDENTIFIER": SERVICES[i % 3],
                "MESSAGE": text, "_HOSTNAME": "node-1", "_PID": str(1000 + i % 7)}) + "\n")


if __name__ == "__main__":
    write_logfmt("logfmt.log")
    write_cri("cri.log")
    write_syslog("rfc5424.log", "rfc3164.log")
    write_journald("journald.log")

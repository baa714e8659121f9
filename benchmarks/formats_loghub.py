"""How the format registry reads loghub's 16 systems: detection and message == loghub's Content.

    python -m benchmarks.formats_loghub --data /work/shared/data/loghub_2k

For every ``<System>/<System>_2k.log`` under ``--data`` it auto-detects the format through the one
path every front end takes (``pipeline.read`` + ``pipeline.parse``), and compares each line's
``message`` with the ``Content`` column of loghub's hand-checked ``<System>_2k.log_structured.csv``
(whitespace stripped at both ends: loghub's parsers strip it). Prints a table and writes it to
``benchmarks/results/formats_loghub.md`` (``--out`` for another file).
"""
from __future__ import annotations

import argparse
import csv
import time
from dataclasses import dataclass
from pathlib import Path

from tinylogbert import pipeline

RESULTS = Path(__file__).resolve().parent / "results" / "formats_loghub.md"
# The format auto-detection should pick for each loghub system.
EXPECTED_FORMAT = {
    "Android": "android", "Apache": "apache", "BGL": "bgl", "HDFS": "hdfs", "HPC": "hpc",
    "Hadoop": "hadoop", "HealthApp": "healthapp", "Linux": "linux", "Mac": "linux",
    "OpenSSH": "linux", "OpenStack": "openstack", "Proxifier": "proxifier", "Spark": "spark",
    "Thunderbird": "thunderbird", "Windows": "windows", "Zookeeper": "zookeeper",
}
GOAL = 0.99


@dataclass
class SystemResult:
    system: str
    detected: str
    expected: str
    lines: int
    parsed: float  # share of lines with parse_ok
    content_match: float  # share of lines whose message == loghub's Content
    mismatches: list[tuple[int, str, str]]  # (line_no, ours, loghub's), a few

    @property
    def passes(self) -> bool:
        return self.detected == self.expected and self.content_match >= GOAL


def loghub_content(path: Path) -> dict[int, str]:
    """LineId -> Content of a loghub structured CSV."""
    with path.open(newline="", encoding="utf-8") as handle:
        return {int(row["LineId"]): row["Content"] for row in csv.DictReader(handle)}


def measure(folder: Path, examples: int = 3) -> SystemResult:
    system = folder.name
    lines = pipeline.read(folder / f"{system}_2k.log")
    parsed = pipeline.parse(lines, "auto")
    reference = loghub_content(folder / f"{system}_2k.log_structured.csv")
    table = parsed.table
    line_no = table["line_no"].to_pylist()
    message = table["message"].to_pylist()
    ok = table["parse_ok"].to_pylist()
    same, bad = 0, []
    for n, ours in zip(line_no, message):
        theirs = reference.get(n)
        if theirs is not None and (ours or "").strip() == theirs.strip():
            same += 1
        elif len(bad) < examples:
            bad.append((n, ours or "", theirs if theirs is not None else "(no row)"))
    total = len(line_no)
    return SystemResult(
        system=system, detected=parsed.format.name, expected=EXPECTED_FORMAT.get(system, "?"),
        lines=total, parsed=sum(ok) / total, content_match=same / total, mismatches=bad,
    )


def markdown(results: list[SystemResult], command: str) -> str:
    rows = [
        "# Log formats on loghub's 2k samples",
        "",
        (f"`{command}`: each log auto-detected (`pipeline.parse(lines, 'auto')`); *message == "
         "Content* is the share of lines whose parsed message equals the `Content` column of "
         "loghub's hand-checked `*_2k.log_structured.csv` (whitespace stripped). Goal: the "
         f"expected format and >= {GOAL:.0%} for every system."),
        "",
        "| system | detected format | lines | parsed | message == Content |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        detected = r.detected if r.detected == r.expected else f"{r.detected} (expected {r.expected})"
        rows.append(f"| {r.system} | {detected} | {r.lines:,} | {r.parsed:.1%} | "
                    f"{r.content_match:.1%} |")
    passing = sum(r.passes for r in results)
    rows += ["", f"{passing} of {len(results)} systems meet the goal.", ""]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path,
                    help="loghub_2k folder: one <System>/ folder per system")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"markdown file (default {RESULTS})")
    ap.add_argument("--examples", type=int, default=3, help="mismatching lines to print per system")
    args = ap.parse_args(argv)
    folders = sorted(p for p in args.data.iterdir()
                     if p.is_dir() and (p / f"{p.name}_2k.log").is_file())
    if not folders:
        ap.error(f"{args.data}: no <System>/<System>_2k.log inside")
    results = []
    started = time.perf_counter()
    for folder in folders:
        r = measure(folder, args.examples)
        results.append(r)
        flag = "ok " if r.passes else "BAD"
        print(f"{flag} {r.system:<12} {r.detected:<14} parsed {r.parsed:6.1%}  "
              f"message == Content {r.content_match:6.1%}")
        for n, ours, theirs in r.mismatches if not r.passes or r.content_match < 1 else []:
            print(f"      line {n}: ours   {ours[:110]!r}")
            print(f"      {' ' * len(str(n))}       loghub {theirs[:110]!r}")
    print(f"{sum(r.passes for r in results)} of {len(results)} systems meet the goal "
          f"({time.perf_counter() - started:.1f}s)")
    command = "python -m benchmarks.formats_loghub --data loghub_2k"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(results, command), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

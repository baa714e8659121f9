"""``adapt`` on the suite's small development logs: does following a release help them?

Each log's model is trained as the suite trains it (seed 0, defaults, its training part); its
scored part is reworded by ``evolution.variant_lines`` (the most frequent message type, then 30%
of the types); the model adapts on the first half of those lines and scores the second half. Three
arms on the same lines: the model as trained, the model adapted (``adapt`` as shipped: the
thresholds and spreads it started from are kept), and adapted with ``recalibrate=True`` (the new
log calibrates it, as ``adapt`` did before this benchmark was run). Printed per log and variant:
the share of sessions flagged (of those labelled normal where there are labels) and, with labels,
the share of anomalous sessions caught. Small logs: 250 lines scored, 13-50 sessions; every log here is a development
log.

    python -m benchmarks.adapt_logs [--logs bgl,thunderbird,...]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
SMALL_LOGS = ("bgl", "thunderbird", "zookeeper", "openssh", "linux", "spark", "apache", "hpc",
              "hadoop", "android", "healthapp", "mac", "openstack", "proxifier", "windows")
VARIANTS = ("top1", "30%")


def _shares(detector, lines: list[str]) -> tuple[float, float | None, int]:
    """(normal sessions flagged, anomalous sessions caught or None, sessions)."""
    from benchmarks.suite import normal_flagged
    from tinylogbert.io.log_reader import read_log_lines

    result = detector.score(read_log_lines(lines, "scored"), embeddings=False)
    scores, labels = result.session_scores, result.session_labels
    if labels is not None and (labels < 0).any():
        labels = None  # partly labelled: judged as unlabelled (every session)
    share = normal_flagged(scores, labels, detector.threshold_)["normal_flagged_share"]
    anomalous = labels == 1 if labels is not None else None
    caught = (float((scores[anomalous] >= detector.threshold_).mean())
              if anomalous is not None and anomalous.any() else None)
    return share, caught, len(scores)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.evolution import variant_lines
    from benchmarks.suite import DEV_LOGS, _read
    from tinylogbert import TinyLogBERTDetector
    from tinylogbert.io.log_reader import read_log_lines
    from tinylogbert.model.training import TrainConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", default=",".join(SMALL_LOGS))
    ap.add_argument("--out-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    wanted = args.logs.split(",")
    unknown = sorted(set(wanted) - set(SMALL_LOGS))
    if unknown:
        ap.error(f"unknown logs {', '.join(unknown)}; choose from {', '.join(SMALL_LOGS)}")
    rows = []
    table = ["| log | variant | sessions | as trained | adapted | adapted, recalibrated |",
             "|---|---|---|---|---|---|"]
    for log in (d for d in DEV_LOGS if d.name in wanted):
        train = _read(log.train, log.train_lines)
        test = train if log.test is None else _read(log.test, log.test_lines)
        base = TinyLogBERTDetector(training=TrainConfig(seed=0)).fit(read_log_lines(train, "train"))
        for variant in VARIANTS:
            reworded, _ = variant_lines(test, base.parse(test), variant, seed=0)
            half = len(reworded) // 2
            part = read_log_lines(reworded[:half], "adapt")
            arms = {"as trained": base, "adapted": base.adapt(part),
                    "adapted, recalibrated": base.adapt(part, recalibrate=True)}
            row = {"log": log.name, "variant": variant}
            cells = []
            for name, detector in arms.items():
                flagged, caught, n = _shares(detector, reworded[half:])
                row[name] = {"flagged": flagged, "caught": caught}
                row["sessions"] = n
                cells.append(f"{flagged:.0%}"
                             + ("" if caught is None else f" (caught {caught:.0%})"))
            rows.append(row)
            line = f"| {log.name} | {variant} | {row['sessions']} | " + " | ".join(cells) + " |"
            table.append(line)
            print(line, flush=True)
    folder = Path(args.out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adapt_logs.json").write_text(json.dumps(rows, indent=2) + "\n")
    (folder / "adapt_logs.md").write_text(
        "# adapt on the small development logs (seed 0)\n\n"
        f"Command: `python -m benchmarks.adapt_logs`\n\nFlagged: share of the second half's "
        "sessions over the threshold (of those labelled normal, where there are labels); "
        "caught: of the anomalous ones.\n\n" + "\n".join(table) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

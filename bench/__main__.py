"""Run the benchmarks: `python -m bench [--quick] [ingest|live|memory|lake|soak ...]`.

Prints one table and writes bench/results/latest.json. The default run takes
under about ten minutes; `--quick` a few; `soak --minutes 30` is separate.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec

from bench import ingest, lake, live
from bench.common import RESULTS, Figure
from bench.workload import load

BENCHES = ("ingest", "live", "memory", "lake", "soak")
DEFAULT = ("ingest", "live", "memory", "lake")


def main() -> int:
    """Run the chosen benchmarks, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("benches", nargs="*", metavar="BENCH", help=", ".join(BENCHES))
    parser.add_argument("--quick", action="store_true", help="smaller workloads, one round")
    parser.add_argument("--rounds", type=int, default=None, help="ingest rounds (default 3)")
    parser.add_argument("--minutes", type=float, default=30.0, help="soak length")
    args = parser.parse_args()
    chosen = args.benches or list(DEFAULT)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHES)}")
    quick = args.quick
    rounds = args.rounds or (1 if quick else 3)
    messages = 100_000 if quick else 300_000
    seconds = 15.0 if quick else 30.0

    figures: list[Figure] = []
    started = time.monotonic()
    if "ingest" in chosen or "lake" in chosen:
        figures += _guarded("ingest", lambda: ingest.run(messages, 2000, rounds))
        if "lake" in chosen and ingest.LAST_LAKE_BYTES:
            figures += lake.size_figures(load(messages, 2000), ingest.LAST_LAKE_BYTES)
    if "live" in chosen:
        figures += _guarded("live", lambda: live.live_figures(2000, 1000, seconds, tick=0.5))
    if "memory" in chosen:
        figures += _guarded("memory", lambda: live.memory_figures(5000, 1000, seconds))
    if "lake" in chosen:
        events = 1_000_000 if quick else 10_000_000
        figures += _guarded("sql", lambda: lake.sql_figures(events, 1 if quick else 2))
    if "soak" in chosen:
        figures += _guarded("soak", lambda: live.soak_figures(5000, 1000, args.minutes))

    print(table(figures))
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "seconds": round(time.monotonic() - started),
        "machine": {
            "cpus": len(__import__("os").sched_getaffinity(0)),
            "python": platform.python_version(),
        },
        "figures": figures,
    }
    (RESULTS / "latest.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    return 0 if all(f.met is not False for f in figures) else 1


def _guarded(bench: str, run: Callable[[], list[Figure]]) -> list[Figure]:
    """Run one benchmark; a failure becomes a failed figure, so the others still report."""
    try:
        figures = run()
    except Exception as exc:
        figures = [Figure(bench, "error", f"{type(exc).__name__}: {exc}", met=False)]
    print(table(figures), "\n", file=sys.stderr, flush=True)
    return figures


def table(figures: list[Figure]) -> str:
    """Return the figures as an aligned text table."""
    rows = [("bench", "figure", "value", "unit", "target", "met")]
    for f in figures:
        met = "" if f.met is None else ("yes" if f.met else "NO")
        rows.append((f.bench, f.name, str(f.value), f.unit, f.target, met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in lines)


if __name__ == "__main__":
    sys.exit(main())

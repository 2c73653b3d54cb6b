"""Run every benchmark and print one report: ``python benchmarks/run.py`` or
``python -m benchmarks.run``.

``--only envs|policy|suite|breakdown`` (repeatable) runs a subset; ``--wait-quiet L`` first
waits (up to ``--max-wait`` seconds) until the 1-minute load average is below L, since the
machine may be shared; ``--json FILE`` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import breakdown, envs, policy, suite
from benchmarks._common import load_average, machine

PARTS = ("envs", "policy", "suite", "breakdown")


def wait_quiet(limit: float, max_wait: float) -> None:
    """Sleep until the 1-minute load average is below ``limit`` or ``max_wait`` seconds passed."""
    deadline = time.monotonic() + max_wait
    while load_average() >= limit and time.monotonic() < deadline:
        print(f"load average {load_average():.2f} >= {limit}: waiting", file=sys.stderr)
        time.sleep(30)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python benchmarks/run.py", description=__doc__)
    parser.add_argument("--only", action="append", choices=PARTS, default=None)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--wait-quiet", type=float, default=None, metavar="LOAD")
    parser.add_argument("--max-wait", type=float, default=1800.0, metavar="SECONDS")
    parser.add_argument("--json", metavar="FILE", help="also write every row as JSON")
    ns = parser.parse_args(argv)
    parts = ns.only or list(PARTS)
    if ns.wait_quiet is not None:
        wait_quiet(ns.wait_quiet, ns.max_wait)
    report: dict[str, object] = {"machine": machine()}
    print(report["machine"], flush=True)
    if "envs" in parts:
        rows = envs.run(repeats=ns.repeats)
        report["envs"] = rows
        print("\n## Batched envs: frames/s (rollout with random actions)\n")
        print(envs.format_rows(rows), flush=True)
    if "policy" in parts:
        rows = policy.run(repeats=max(ns.repeats, 5))
        report["policy"] = rows
        print("\n## Partial-tolerant policy on lazy stacks (ms per call)\n")
        print(policy.format_rows(rows), flush=True)
    if "suite" in parts:
        rows = suite.run()
        report["suite"] = rows
        print("\n## Conformance suite wall time\n")
        print(suite.format_rows(rows), flush=True)
    if "breakdown" in parts:
        rows = breakdown.run()
        report["breakdown"] = rows
        print("\n## Where the time goes (best of several rounds)\n")
        print(breakdown.format_rows(rows), flush=True)
    if ns.json:
        with open(ns.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, default=str)


if __name__ == "__main__":
    main()

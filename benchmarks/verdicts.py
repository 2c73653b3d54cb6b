"""How fast a failing subject gets its verdict: ``python -m benchmarks.verdicts``.

Runs ``python -m conformance check --profile quick --skip-doctor --hypothesis-seed SEED`` (every
area, as a user runs it on a new implementation) on each mutant of the kill matrix
(``tests/mutants``: deliberately broken subjects) and on the reference, which passes; each
command in a fresh interpreter, one after the other.  The reference runs first, last and after
every ``--every`` mutants, so a mutant's ratio (its wall time over the median of the reference's
runs) compares runs made minutes apart on the same machine.  A mutant's row also says whether
its verdict failed and whether every property its ``KILLS`` names is among the failed ones.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._common import load_average, machine, table

ROOT = Path(__file__).resolve().parents[1]
SEED = 20261205


def command(subject: str, report: str, seed: int = SEED) -> list[str]:
    return [sys.executable, "-m", "conformance", "check", "--subject", subject, "--profile",
            "quick", "--skip-doctor", "--hypothesis-seed", str(seed), "--report", report]


def timed_check(subject: str, seed: int = SEED) -> dict[str, Any]:
    """One check of ``subject``: wall seconds, exit code, and the properties that failed."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path,
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    env.pop("CI", None)  # the profile is named; CI=true would only change the default one
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        load = load_average()
        start = time.perf_counter()
        proc = subprocess.run(command(subject, report, seed), cwd=ROOT, env=env,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        failed: list[str] = []
        if os.path.exists(report):
            data = json.loads(Path(report).read_text())
            for cells in data["subjects"].values():
                failed += [pid for pid, cell in cells["properties"].items()
                           if cell["outcome"] == "failed"]
    return {"subject": subject, "seconds": seconds, "exit": proc.returncode,
            "failed": sorted(failed), "load": load}


def run(only: str = "", every: int = 10, seed: int = SEED) -> dict[str, Any]:
    """Time the reference and every mutant (whose name holds ``only``)."""
    from tests.kill_matrix import discover

    kills = {name: ids for name, ids in discover().items() if only in name}
    references, rows = [timed_check("reference", seed)], []
    for k, (name, ids) in enumerate(kills.items(), 1):
        row = timed_check(name, seed)
        row["kills"] = ids
        rows.append(row)
        print(f"[{k}/{len(kills)}] {name}: {row['seconds']:.1f} s, exit {row['exit']}",
              file=sys.stderr, flush=True)
        if k % every == 0 and k < len(kills):
            references.append(timed_check("reference", seed))
    references.append(timed_check("reference", seed))
    base = statistics.median(r["seconds"] for r in references)
    for row in rows:
        row["ratio"] = row["seconds"] / base
    return {"references": references, "mutants": rows, "reference_median": base}


def format_result(result: dict[str, Any]) -> str:
    rows = sorted(result["mutants"], key=lambda r: -r["ratio"])
    out = [(r["subject"].removeprefix("tests.mutants."), f"{r['seconds']:.1f}",
            f"{r['ratio']:.2f}x", r["exit"],
            "yes" if set(r["kills"]) <= set(r["failed"]) else
            f"no: {sorted(set(r['kills']) - set(r['failed']))}", len(r["failed"]),
            f"{r['load']:.2f}") for r in rows]
    refs = ", ".join(f"{r['seconds']:.1f} s (exit {r['exit']})" for r in result["references"])
    ratios = [r["ratio"] for r in rows]
    summary = (f"reference passing quick: {refs}; median {result['reference_median']:.1f} s\n"
               f"failing verdict / reference: median {statistics.median(ratios):.2f}x, worst "
               f"{max(ratios):.2f}x ({rows[0]['subject'].removeprefix('tests.mutants.')}), "
               f"{sum(r <= 2 for r in ratios)} of {len(ratios)} within 2x") if rows else ""
    return table(("mutant", "wall (s)", "/ reference", "exit", "its KILLS failed",
                  "failed properties", "load"), out) + "\n\n" + summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.verdicts", description=__doc__)
    parser.add_argument("--only", default="", help="mutants whose name holds this text")
    parser.add_argument("--every", type=int, default=10,
                        help="run the reference again after this many mutants")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    ns = parser.parse_args(argv)
    print(machine(), flush=True)
    result = run(ns.only, ns.every, ns.seed)
    if ns.json:
        Path(ns.json).write_text(json.dumps(result, indent=1))
    print(format_result(result))


if __name__ == "__main__":
    main()

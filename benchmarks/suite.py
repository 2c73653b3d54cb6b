"""Wall time of the conformance suite: ``python -m benchmarks.suite``.

Runs ``python -m conformance check --profile P`` (doctor included, as users run it) per subject
(reference, torchrl), for both subjects together, and for both with ``-n 2`` (pytest-xdist), for
P in quick and ci; each command in a fresh interpreter, one after the other.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks._common import machine, settle, table

PROFILES = ("quick", "ci")
RUNS = (("reference", ("reference",), None), ("torchrl", ("torchrl",), None),
        ("both", ("reference", "torchrl"), None), ("both, -n 2", ("reference", "torchrl"), "2"))


def command(profile: str, subjects: tuple[str, ...], workers: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "conformance", "check", "--profile", profile]
    for name in subjects:
        cmd += ["--subject", name]
    return cmd + (["-n", workers] if workers else [])


def run(profiles: tuple[str, ...] = PROFILES) -> list[dict[str, Any]]:
    rows = []
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    for profile in profiles:
        for label, subjects, workers in RUNS:
            cmd = command(profile, subjects, workers)
            load = settle(max_wait=60.0)
            start = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            lines = proc.stdout.splitlines()
            total = next((line for line in lines[::-1] if line.startswith("conformance:")), "")
            seed = next((line for line in lines if "hypothesis seed" in line), "")
            failures = [f"{line[:300]} / {nxt.strip()[:300]}" for line, nxt in
                        zip(lines, [*lines[1:], ""], strict=True) if line.startswith("FAILED ")]
            rows.append({"profile": profile, "run": label, "seconds": seconds,
                         "exit": proc.returncode, "total": total, "load": load,
                         "command": " ".join(cmd[1:]), "seed": seed, "failures": failures})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    serial = {r["profile"]: r["seconds"] for r in rows if r["run"] == "both"}
    out = []
    for r in rows:
        speedup = "-"
        if r["run"].endswith("-n 2") and r["profile"] in serial:
            speedup = f"{serial[r['profile']] / r['seconds']:.2f}x"
        out.append((r["profile"], r["run"], f"{r['seconds']:.1f}", speedup, r["exit"],
                    r["total"].removeprefix("conformance: "), f"{r['load']:.2f}"))
    return table(("profile", "subjects", "wall (s)", "-n 2 speed-up", "exit", "outcome",
                  "load avg"), out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__)
    parser.add_argument("--profile", action="append", choices=PROFILES, default=None)
    ns = parser.parse_args(argv)
    print(machine())
    rows = run(tuple(ns.profile or PROFILES))
    print(format_rows(rows))
    for r in rows:  # a failing run says what failed, and the seed that reruns it
        if r["exit"] != 0:
            print(f"\n{r['profile']} {r['run']} exited {r['exit']}: {r['seed']}")
            print("\n".join(f"  {line}" for line in r["failures"]))


if __name__ == "__main__":
    main()

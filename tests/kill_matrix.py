"""The kill matrix: every mutant in tests/mutants against the properties, in one run.

``python -m tests.kill_matrix`` runs it and prints the markdown matrix of docs/kill-matrix.md;
tests/test_kill_matrix.py asserts it.  Each mutant module declares ``KILLS = {factory: [IDs]}``:
the properties that mutant must fail.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def discover() -> dict[str, list[str]]:
    """``{"tests.mutants.module:factory": [IDs it must fail]}`` over every mutant module."""
    import tests.mutants as pkg

    kills: dict[str, list[str]] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"tests.mutants.{info.name}")
        for factory, ids in getattr(module, "KILLS", {}).items():
            kills[f"tests.mutants.{info.name}:{factory}"] = list(ids)
    return kills


def run(
    kills: dict[str, list[str]], report: Path, profile: str = "ci"
) -> list[subprocess.CompletedProcess[str]]:
    """Run the mutants in one ``python -m conformance check`` restricted to the areas they target
    and to the (property, mutant) cells their KILLS name, and write its report to ``report``.

    One process for every mutant: each process pays the imports of torch, tensordict and torchrl
    and pytest's collection (one per mutant module, two at a time, took twice the CPU and longer
    on two cores).  Failing examples are not shrunk (--conformance-no-shrink) and their
    tracebacks are native (--tb=native): a kill needs a failure, not a minimal or pretty one
    (pytest's default style parses the source of every frame: ~1 s per failure, formatted
    twice).
    """
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("CI", None)
    areas = sorted({pid.split("-")[0] for ids in kills.values() for pid in ids})
    # only the (property, mutant) cells the KILLS name: a mutant's other properties cost time
    # (PAR-013 waits out a conformant env's hang deadline) and prove nothing here
    wanted = " or ".join(f"{pid}-{subject_name(name)}" for name, ids in kills.items()
                         for pid in ids)
    cmd = [sys.executable, "-m", "conformance", "check", "--profile", profile, "--skip-doctor",
           "--report", str(report), "--", "--conformance-no-shrink", "--tb=native", "-k", wanted]
    cmd[4:4] = [arg for name in kills for arg in ("--subject", name)]
    cmd[4:4] = [arg for area in areas for arg in ("--area", area)]
    return [subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3000)]


def subject_name(target: str) -> str:
    """The subject name a mutant factory gives itself (its report key)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)().name  # type: ignore[no-any-return]


def markdown(kills: dict[str, list[str]], report: dict[str, Any]) -> str:
    """Mutant x property: 'killed' where it must and did fail, 'KILLED?' where it failed
    without being listed, 'SURVIVED' where it must fail but did not."""
    ids = sorted({pid for v in kills.values() for pid in v})
    lines = ["| mutant | " + " | ".join(ids) + " |", "|---" * (len(ids) + 1) + "|"]
    for target, wanted in kills.items():
        name = subject_name(target)
        props = report["subjects"].get(name, {}).get("properties", {})
        cells = []
        for pid in ids:
            outcome = props.get(pid, {}).get("outcome", "-")
            if pid in wanted:
                cells.append("killed" if outcome == "failed" else f"SURVIVED ({outcome})")
            else:
                cells.append("x" if outcome == "failed" else "")
        lines.append(f"| `{target.split(':')[1]}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compact(kills: dict[str, list[str]], report: dict[str, Any]) -> str:
    """One row per mutant: what it breaks and the properties that kill it (the table of
    docs/kill-matrix.md)."""
    lines = ["| mutant | what it breaks | killed by |", "| --- | --- | --- |"]
    for target, wanted in kills.items():
        module, _, attr = target.partition(":")
        doc = (getattr(importlib.import_module(module), attr).__doc__ or "").strip()
        name = subject_name(target)
        props = report["subjects"].get(name, {}).get("properties", {})
        killed = [pid for pid in wanted if props.get(pid, {}).get("outcome") == "failed"]
        survived = [pid for pid in wanted if pid not in killed]
        cell = ", ".join(killed) + (f" (SURVIVED: {', '.join(survived)})" if survived else "")
        lines.append(f"| `{attr}` | {doc.splitlines()[0] if doc else ''} | {cell} |")
    return "\n".join(lines)


def main() -> int:
    kills = discover()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "kills.json"
        procs = run(kills, path)
        if not path.exists():
            for proc in procs:
                print(proc.stdout[-3000:])
            return 2
        report = json.loads(path.read_text())
    print(compact(kills, report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

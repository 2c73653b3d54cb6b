"""Run every shipped finding's reproducer, print its verdict: ``python -m tests.verify_findings``.

Each reproducer must fail, with output matching its finding's signature, while the defect holds
(status ``holds``). A finding whose ``when`` excludes the installed releases is run all the same
and reported with ``applies=False`` (``fixed`` is then expected). Minutes: the AsyncEnvPool
multiprocessing reproducers start worker processes. Arguments narrow the run to files (by stem) or
finding names (``python -m tests.verify_findings torchrl-async lazy-stack-empty-slice-raises``);
``--cache`` reuses the verdicts cached for these releases. Exits 1 when a finding that applies
does not hold.
"""

from __future__ import annotations

import sys

from conformance import findings


def main(argv: list[str]) -> int:
    cache = "--cache" in argv
    wanted = {a for a in argv if a != "--cache"}
    bad = 0
    for path in findings.shipped():
        for finding in findings.load(path):
            if wanted and path.stem not in wanted and finding.name not in wanted:
                continue
            verdict = findings.verify(finding, cache=cache)
            applies = finding.applies()
            print(f"{path.name:20} {finding.name:55} {verdict.status:8} {verdict.seconds:6.1f} s"
                  f"  applies={applies}" + (f"  {verdict.detail}" if verdict.detail else ""),
                  flush=True)
            if applies and verdict.status != "holds":
                bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

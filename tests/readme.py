"""Regenerate the README's generated sections: ``python -m tests.readme [--kill-matrix]``.

Sections sit between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``: ``catalogue`` (the
property table), ``findings`` (the built-in subjects' shipped deviations) and, with
``--kill-matrix`` (runs every mutant: minutes), ``kill-matrix``.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

from conformance import catalogue
from conformance.deviations import load
from conformance.subject import BUILTIN

README = Path(__file__).resolve().parents[1] / "README.md"


def findings() -> str:
    """One row per shipped deviation of a built-in subject."""
    from conformance.subject import resolve

    lines = ["| ID | subject | finding | fixed in |", "| --- | --- | --- | --- |"]
    for name in BUILTIN:
        for path in resolve(name).deviations:
            for dev in load(path):
                reason = " ".join(dev.reason.split()).replace("|", "\\|")
                lines.append(f"| {dev.id} | {dev.subject} | {reason} | {dev.fixed_in or '—'} |")
    return "\n".join(lines)


def replace(text: str, name: str, body: str) -> str:
    """``text`` with section ``name`` replaced by ``body``."""
    pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"README.md has no <!-- {name}:start --> ... <!-- {name}:end --> section")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main(argv: list[str]) -> int:
    text = README.read_text()
    text = replace(text, "catalogue", catalogue.markdown_table())
    text = replace(text, "findings", findings())
    if "--kill-matrix" in argv:
        from tests import kill_matrix

        kills = kill_matrix.discover()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "kills.json"
            kill_matrix.run(kills, path)
            report = json.loads(path.read_text())
        text = replace(text, "kill-matrix", kill_matrix.compact(kills, report))
    README.write_text(text)
    print("README.md regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Regenerate the README's generated sections: ``python -m tests.readme [--kill-matrix]
[--matrix REPORT_DIR]``.

Sections sit between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``: ``catalogue`` (the
property table), ``findings`` (the built-in subjects' shipped deviations), ``matrix`` (the
version matrix: ``python -m conformance matrix --markdown`` over the reports kept in docs/matrix;
``--matrix DIR`` first copies DIR's reports there, e.g. ``reports/matrix`` after ``tox -m matrix``)
and, with ``--kill-matrix`` (runs every mutant: minutes), ``kill-matrix``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from conformance import catalogue
from conformance.deviations import load
from conformance.subject import BUILTIN

README = Path(__file__).resolve().parents[1] / "README.md"
MATRIX = README.parent / "docs" / "matrix"


def findings() -> str:
    """One row per shipped deviation of a built-in subject."""
    from conformance.subject import resolve

    lines = ["| ID | subject | finding | holds on | fixed in |", "| --- | --- | --- | --- | --- |"]
    for name in BUILTIN:
        for path in resolve(name).deviations:
            for dev in load(path):
                reason = " ".join(dev.reason.split()).replace("|", "\\|")
                lines.append(f"| {dev.id} | {dev.subject} | {reason} | "
                             f"{dev.when.replace('<', '&lt;') or 'all'} | {dev.fixed_in or '—'} |")
    return "\n".join(lines)


def matrix_reports() -> list[Path]:
    """The version matrix's reports, oldest torchrl first: the baseline an upgrade is gated on."""
    def release(path: Path) -> tuple[tuple[int, ...], str]:
        got = json.loads(path.read_text()).get("versions", {}).get("torchrl", "0")
        return tuple(int(x) for x in re.findall(r"\d+", got)[:3]), path.name

    return sorted(MATRIX.glob("*.json"), key=release)


def matrix_section() -> str:
    """The command and its markdown table over the reports in docs/matrix."""
    from conformance import matrix

    paths = [str(p.relative_to(README.parent)) for p in matrix_reports()]
    profiles = sorted({json.loads((README.parent / p).read_text()).get("profile", "?")
                       for p in paths})
    cols = matrix.columns([str(README.parent / p) for p in paths])
    return (f"`python -m conformance matrix {' '.join(paths)} --markdown` (profile "
            f"{', '.join(profiles)}):\n\n" + matrix.render(cols, markdown=True))


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
    if "--matrix" in argv:
        source = Path(argv[argv.index("--matrix") + 1])
        MATRIX.mkdir(parents=True, exist_ok=True)
        for old in MATRIX.glob("*.json"):
            old.unlink()
        for report in sorted(source.glob("*.json")):
            shutil.copy(report, MATRIX / report.name)
    text = replace(text, "matrix", matrix_section())
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

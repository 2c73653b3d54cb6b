"""``python -m conformance matrix REPORT.json ...``: many reports, one table, one gate.

Each (report, subject) pair is a column labelled ``subject @ torchrl X / tensordict Y``.  Rows are
property IDs in catalogue order.  The exit code gates upgrades: one report is the baseline (the
releases you are on) and a subject regresses when a property that passed in its baseline column
fails, xpasses or is declared a deviation in its column of another report (the same subject at
other releases; with ``--upgrade``, of a later report only: the earlier ones are shown, not
gated).  Columns of subjects absent from the baseline report are shown, not gated.  Below the
table, each finding's state per report (:func:`findings_table`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conformance import catalogue

_LABEL = {"passed": "passed", "failed": "FAILED", "deviation": "deviation",
          "xpassed": "XPASSED", "skipped": "skipped"}


class MatrixError(ValueError):
    """A report that cannot be read or does not follow the schema; the message names the file."""


@dataclass(frozen=True)
class Column:
    """One subject of one report."""

    label: str
    source: str
    properties: dict[str, dict[str, Any]]
    subject: str = ""
    report: int = 0


def load_report(path: str | Path) -> dict[str, Any]:
    """Read one JSON report and check the fields the matrix needs."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MatrixError(f"{path}: cannot read report ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise MatrixError(f"{path}: not JSON ({exc}); pass files written by "
                          f"`python -m conformance check --report`") from exc
    if not isinstance(data, dict) or not isinstance(data.get("subjects"), dict):
        raise MatrixError(f"{path}: no 'subjects' object; pass files written by "
                          f"`python -m conformance check --report`")
    for name, entry in data["subjects"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("properties"), dict):
            raise MatrixError(f"{path}: subject {name!r} has no 'properties' object")
        for pid, cell in entry["properties"].items():
            if not isinstance(cell, dict) or cell.get("outcome") not in _LABEL:
                raise MatrixError(f"{path}: {name}/{pid} has outcome "
                                  f"{cell.get('outcome') if isinstance(cell, dict) else cell!r}; "
                                  f"expected one of {', '.join(_LABEL)}")
    return data


def columns(paths: list[str]) -> list[Column]:
    """The columns of the matrix, in the order of the reports and their subjects."""
    out = []
    for k, path in enumerate(paths):
        data = load_report(path)
        tag = release_tag(data.get("versions", {}))
        for name, entry in data["subjects"].items():
            out.append(Column(f"{name} @ {tag}", str(path), entry["properties"], name, k))
    return out


def release_tag(vers: dict[str, str]) -> str:
    """``torchrl X / tensordict Y``; a nightly build says so: ``torchrl nightly 2026.10.27``."""
    def one(dist: str) -> str:
        nightly = "nightly " if f"{dist}-nightly" in vers else ""
        return f"{dist} {nightly}{vers.get(dist, '?')}"

    return f"{one('torchrl')} / {one('tensordict')}"


def regressions(cols: list[Column], baseline: int = 0, upgrade: bool = False) -> list[str]:
    """Per subject: properties that passed in its column of report ``baseline`` and failed,
    xpassed or are a declared deviation in its column of another report (``upgrade``: of a
    later report only; the earlier ones are shown, not gated)."""
    base = {c.subject: c for c in cols if c.report == baseline}
    found = []
    for col in cols:
        ref = base.get(col.subject)
        if ref is None or col is ref or (upgrade and col.report < baseline):
            continue
        for pid, cell in ref.properties.items():
            if cell["outcome"] != "passed":
                continue
            other = col.properties.get(pid, {}).get("outcome")
            if other in ("failed", "xpassed", "deviation"):
                found.append(f"{pid}: passed in [{ref.label}] but {other} in [{col.label}] "
                             f"({col.source})")
    return found


def render(cols: list[Column], markdown: bool = False) -> str:
    """The table: property ID x column -> outcome."""
    ids = [p.id for p in catalogue.PROPERTIES if any(p.id in c.properties for c in cols)]

    def cell(col: Column, pid: str) -> str:
        outcome = col.properties.get(pid, {}).get("outcome")
        return _LABEL.get(outcome, "-") if outcome else "-"

    if markdown:
        lines = ["| ID | " + " | ".join(c.label for c in cols) + " |",
                 "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {pid} | " + " | ".join(cell(c, pid) for c in cols) + " |" for pid in ids]
        return "\n".join(lines)
    lines = [f"[{k}] {c.label}  ({c.source})" for k, c in enumerate(cols)]
    lines.append("ID".ljust(10) + "".join(f"[{k}]".ljust(12) for k in range(len(cols))))
    for pid in ids:
        lines.append(pid.ljust(10) + "".join(cell(c, pid).ljust(12) for c in cols))
    return "\n".join(lines)


FINDING_STATES = {"holds": "holds", "fixed": "FIXED", "differs": "differs", "hung": "hung",
                  "none": "declared", "error": "error", "not run": "declared"}


def _excludes(when: str, versions: dict[str, str]) -> bool:
    """Whether a finding's ``when`` excludes a report's releases (a version it cannot read
    excludes nothing)."""
    from packaging.version import InvalidVersion

    from conformance.findings import requirements

    for req in requirements(when):
        try:
            if not req.specifier.contains(versions.get(req.name, ""), prereleases=True):
                return True
        except InvalidVersion:
            continue
    return False


def findings_table(paths: list[str], markdown: bool = False) -> str:
    """Per finding (rows, with the subject options it holds under, if any) and report
    (columns): where it holds, from each report's ``findings`` section: ``holds`` / ``FIXED``
    (its reproducer passed) / ``inactive`` (its ``when`` excludes those releases) / ``not run``
    (no subject of that run uses it); ``-``: a report from before findings were reported."""
    reports = [load_report(p) for p in paths]
    tags = [release_tag(r.get("versions", {})) for r in reports]
    names: list[str] = []
    for r in reports:
        names += [f["name"] for f in r.get("findings", []) if f["name"] not in names]
    if not names:
        return ""

    # the releases each holds on: as the kit's findings files say now, else as the reports said
    from conformance.findings import load, shipped

    when = {f["name"]: f.get("when") or "" for r in reports for f in r.get("findings", [])}
    when.update({f.name: f.when for path in shipped() for f in load(path) if f.name in when})
    # and the subject options it holds under, likewise (a report from before options: none)
    options = {f["name"]: f.get("options") or {} for r in reports for f in r.get("findings", [])}
    options.update({f.name: f.options for path in shipped() for f in load(path)
                    if f.name in options})

    def label(name: str, quote: str = "") -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in options[name].items())
        return f"{quote}{name}{quote}" + (f" (with {opts})" if opts else "")

    def cell(report: dict[str, Any], name: str) -> str:
        if "findings" not in report:
            return "-"
        entry = next((f for f in report["findings"] if f["name"] == name), None)
        if entry is None:
            return "inactive" if _excludes(when[name], report.get("versions", {})) else "not run"
        return FINDING_STATES.get(entry.get("reproducer", ""), entry.get("reproducer", "?"))

    rows = [(n, [cell(r, n) for r in reports]) for n in names]
    if markdown:
        lines = ["| finding | " + " | ".join(tags) + " |", "|---" * (len(tags) + 1) + "|"]
        lines += [f"| {label(n, '`')} | " + " | ".join(c) + " |" for n, c in rows]
        return "\n".join(lines)
    width = max(len(label(n)) for n in names) + 2
    lines = [f"[{k}] {t}  ({p})" for k, (t, p) in enumerate(zip(tags, paths, strict=True))]
    lines.append("finding".ljust(width) + "".join(f"[{k}]".ljust(14) for k in range(len(tags))))
    lines += [label(n).ljust(width) + "".join(c.ljust(14) for c in cs) for n, cs in rows]
    return "\n".join(lines)


def deprecations_table(paths: list[str], limit: int = 12) -> str:
    """Per deprecation the subjects raised (rows: category, origin, message) and report: in how
    many of the report's cells it was raised (``-``: none), as a markdown table; '' when none."""
    reports = [load_report(p) for p in paths]
    counts: dict[tuple[str, str, str], list[int]] = {}
    for k, r in enumerate(reports):
        for entry in r["subjects"].values():
            for cell in entry["properties"].values():
                for w in cell.get("warnings", ()):
                    key = (w["category"], w["origin"], " ".join(w["message"].split())[:120])
                    counts.setdefault(key, [0] * len(reports))[k] += 1
    if not counts:
        return ""
    rows = sorted(counts.items(), key=lambda kv: (-sum(kv[1]), kv[0]))
    tags = [release_tag(r.get("versions", {})) for r in reports]
    lines = ["| deprecation | origin | " + " | ".join(tags) + " |",
             "|---" * (len(tags) + 2) + "|"]
    for (category, origin, message), per in rows[:limit]:
        text = message.replace("|", "\\|")
        lines.append(f"| {category}: {text} | `{origin}` | "
                     + " | ".join(str(n) if n else "-" for n in per) + " |")
    if len(rows) > limit:
        lines.append(f"\n{len(rows) - limit} more in the reports' `warnings`.")
    return "\n".join(lines)


def main(paths: list[str], markdown: bool = False, baseline: int = 0,
         upgrade: bool = False) -> int:
    """Print the merged table and where each finding holds; return 1 on a regression against
    the baseline report (``upgrade``: in the reports after it only)."""
    try:
        cols = columns(paths)
    except MatrixError as exc:
        print(f"error: {exc}")
        return 2
    if not cols:
        print("error: the reports hold no subjects")
        return 2
    if not 0 <= baseline < len(paths):
        print(f"error: --baseline {baseline} is out of range: reports are 0..{len(paths) - 1}")
        return 2
    print(render(cols, markdown))
    held = findings_table(paths, markdown)
    if held:
        print(f"\nwhere each finding holds (its reproducer, run in each column):\n\n{held}")
    found = regressions(cols, baseline, upgrade)
    where = f"baseline report [{baseline}] {paths[baseline]}"
    if upgrade:
        where += " (the reports before it are shown, not gated)"
    if found:
        print(f"\n{len(found)} regression(s) against {where}:")
        for line in found:
            print(f"  {line}")
        return 1
    print(f"\nno regression against {where}")
    return 0

"""The run's outcomes: one cell per property x subject, the JSON report, and its text forms.

The plugin attaches a failed property's :func:`reproducer` to its test report, feeds each test
report to :func:`add` and, at the end, writes :func:`build`'s report (:func:`write`) and prints
:func:`format_table` and :func:`format_failures`; ``python -m conformance check`` prints the
same two from the JSON report.

The JSON report: ``{"subjects": {NAME: {"properties": {ID: CELL}}}, "findings": [FINDING],
"versions": {DIST: VERSION}, "profile": NAME, "hypothesis_seed": INT or "derandomized"}``, a cell
being ``{"outcome": OUTCOME, "message": TEXT}`` (after a failure, the kit's "observed …, expected
…" line; its ``"traceback"`` apart) plus ``"reproducer"`` after a failure that has one,
``"shrunk": "budget"`` when its example was not fully shrunk (the profile's budget ran out) and,
where declared findings were hit, ``"findings": {NAME: HITS}, "explored": N`` (examples
that ran without hitting one) and, where the subject raised deprecations while the property ran,
``"warnings": [{"message", "category", "origin": "file:line", "count"}]``
(:mod:`conformance.deprecations`). A FINDING: ``name, component, subject, ids, reason, upstream,
when, options: {OPTION: VALUE} (the subject options it holds under; {} for all), signature,
source, declared_for: {SUBJECT: [ID]}, hits: {SUBJECT: {ID: N}}, reproducer:
holds|fixed|differs|hung|none|error|not run, reproducer_detail``.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from typing import Any

from conformance import catalogue, deprecations

VERSIONED = ("torch", "tensordict", "torchrl", "mujoco", "dm_control", "hypothesis")
OUTCOMES = ("passed", "failed", "deviation", "xpassed", "skipped")
# When several tests make up one property x subject cell, the worst outcome wins.
_RANK = {"skipped": 0, "passed": 1, "deviation": 2, "xpassed": 3, "failed": 4}
_MESSAGE_LIMIT = 6000

Cells = dict[tuple[str, str], dict[str, str]]  # (subject, property ID) -> cell


def versions() -> dict[str, str]:
    """The installed releases the report names, and the kit's own; a nightly build is named
    twice: ``tensordict`` and ``tensordict-nightly``, both with its dated version."""
    from conformance import releases

    out = {}
    for dist in (*VERSIONED, "multitask-conformance"):
        try:
            out[dist] = releases.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown" if dist == "multitask-conformance" else "not installed"
        if releases.nightly(dist):  # (a dated build: the matrix labels its column "nightly")
            out[dist + releases.NIGHTLY_SUFFIX] = out[dist]
    return out


def explored_text(hits: dict[str, int], explored: int) -> str:
    """How a property fared beyond its findings: which were hit, how often, what was explored."""
    hit = ", ".join(f"{name} x{n}" for name, n in sorted(hits.items()))
    if not explored:
        return (f"only declared findings: {hit}; every example hit one, so nothing was explored "
                f"beyond them")
    return f"only declared findings: {hit}; {explored} example(s) explored beyond them"


def phase_outcome(report: Any, props: dict[str, Any]) -> tuple[str, str] | None:
    """The outcome and message one phase's ``TestReport`` gives its cell (None: it gives none).
    A property that passed after hitting declared findings is a ``deviation``."""
    if report.skipped:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        return "skipped", reason.removeprefix("Skipped: ")
    if report.failed:  # the kit's line first (the traceback goes to the cell's "traceback")
        return "failed", props.get("conformance_message") or report.longreprtext[-_MESSAGE_LIMIT:]
    if report.when == "call":
        hits = props.get("conformance_hits") or {}
        if hits:
            return "deviation", explored_text(hits, props.get("conformance_explored", 0))
        return "passed", ""
    return None


def add(cells: Cells, report: Any) -> None:
    """Fold one phase's ``TestReport`` of a conformance property into ``cells``."""
    props = dict(report.user_properties)
    if "conformance_id" not in props:
        return
    result = phase_outcome(report, props)
    if result is None:
        return
    outcome, message = result
    key = (props["conformance_subject"], props["conformance_id"])
    cell = cells.get(key)
    warned = deprecations.merge((cell or {}).get("warnings", []),
                                props.get("conformance_warnings") or [])
    if cell is None or _RANK[outcome] > _RANK[cell["outcome"]]:
        cell = {"outcome": outcome, "message": message}
        if outcome == "failed":
            cell["traceback"] = report.longreprtext[-_MESSAGE_LIMIT:]
        if "conformance_reproducer" in props:
            cell["reproducer"] = props["conformance_reproducer"]
        if props.get("conformance_shrunk"):
            cell["shrunk"] = props["conformance_shrunk"]
        if props.get("conformance_hits"):
            cell["findings"] = dict(props["conformance_hits"])
            cell["explored"] = props.get("conformance_explored", 0)
        cells[key] = cell
    if warned:
        cell["warnings"] = warned


def reproducer(prop_id: str, example: Any, subjects: dict[str, Any]) -> str:
    """The standalone reproducer of a failed property's last example (a ``record.Example``);
    ``subjects``: name -> (subject, the name that resolved it).  Never raises: a reporting
    problem must not hide the failure itself."""
    from conformance import repro

    prop = catalogue.get(prop_id)
    subject = example.subject
    source = subjects.get(subject.name, (None, subject.name))[1]
    try:
        return repro.build(prop.id, prop.statement, subject, source, example.fn, example.inputs,
                           example.helpers)
    except Exception as exc:
        return f"# reproducer could not be built: {exc!r}"


def findings_section(declared: dict[tuple[str, str], tuple[Any, ...]],
                     subjects: dict[str, Any], verdicts: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per finding the run declared: where it lives (``options``: the subject options
    it holds under, ``{}`` for every configuration), the subjects and properties it was declared
    for, and what its reproducer said (``holds``, ``fixed``, ``differs``, ``hung``,
    ``none``, or ``not run``)."""
    out: dict[str, dict[str, Any]] = {}
    for (subj, pid), group in sorted(declared.items()):
        for f in group:
            entry = out.setdefault(f.name, {
                "name": f.name, "component": f.component, "subject": f.subject,
                "ids": list(f.ids), "reason": f.reason, "upstream": f.upstream, "when": f.when,
                "options": dict(f.options), "signature": f.signature, "source": f.source,
                "declared_for": {}})
            entry["declared_for"].setdefault(subj, []).append(pid)
    for name, entry in out.items():
        verdict = verdicts.get(name)
        entry["reproducer"] = verdict.status if verdict else "not run"
        entry["reproducer_detail"] = verdict.detail if verdict else ""
    return list(out.values())


def _apply_verdicts(subjects: dict[str, Any], findings: list[dict[str, Any]]) -> None:
    """A finding whose reproducer passed is fixed: each property it was declared for that did
    not fail becomes ``xpassed``; each cell lists the hits per finding."""
    for entry in findings:
        for subj, pids in entry["declared_for"].items():
            for pid in pids:
                cell = subjects.get(subj, {}).get("properties", {}).get(pid)
                if cell is None:
                    continue
                hits = cell.get("findings", {}).get(entry["name"], 0)
                entry.setdefault("hits", {}).setdefault(subj, {})[pid] = hits
                if entry["reproducer"] == "fixed" and cell["outcome"] in ("passed", "deviation"):
                    cell["outcome"] = "xpassed"
                    cell["message"] = (
                        f"finding {entry['name']!r} ({entry['source']}) is declared for this "
                        f"property but its reproducer ran without failing: fixed upstream? "
                        f"Remove the finding, or bound it with when = \"...\" to the releases "
                        f"it holds on")


def build(cells: Cells, profile: str, seed: int | str,
          findings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON report (its schema is in this module's docstring)."""
    subjects: dict[str, Any] = {}
    for (subj, pid), cell in sorted(cells.items()):
        entry = subjects.setdefault(subj, {"properties": {}})
        entry["properties"][pid] = dict(cell)
    _apply_verdicts(subjects, findings or [])
    return {
        "subjects": subjects,
        "findings": findings or [],
        "versions": versions(),
        "profile": profile,
        "hypothesis_seed": seed,
    }


def write(path: str, report: dict[str, Any]) -> None:
    """Write the JSON report to ``path`` (its folder created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def format_table(report: dict[str, Any]) -> list[str]:
    """Property ID x subject -> outcome, skip reasons, then the one-line total."""
    subjects = list(report["subjects"])
    ids = [p.id for p in catalogue.PROPERTIES
           if any(p.id in report["subjects"][s]["properties"] for s in subjects)]
    label = {"passed": "passed", "failed": "FAILED", "deviation": "deviation",
             "xpassed": "XPASSED", "skipped": "skipped"}
    width = max([len(s) for s in subjects] + [9]) + 2
    lines = ["ID".ljust(10) + "".join(s.ljust(width) for s in subjects)]
    totals = dict.fromkeys(OUTCOMES, 0)
    reasons: dict[str, set[str]] = {}
    for pid in ids:
        row = pid.ljust(10)
        for s in subjects:
            cell = report["subjects"][s]["properties"].get(pid)
            if cell is None:
                row += "-".ljust(width)
                continue
            totals[cell["outcome"]] += 1
            row += label[cell["outcome"]].ljust(width)
            if cell["outcome"] == "skipped":
                reasons.setdefault(cell["message"], set()).add(f"{pid}@{s}")
        lines.append(row)
    for reason, where in sorted(reasons.items()):
        lines.append(f"skipped ({len(where)}): {reason}")
    lines.append("conformance: " + ", ".join(f"{n} {k}" for k, n in totals.items()))
    return lines


def format_warnings(report: dict[str, Any]) -> list[str]:
    """The short block after the table: the deprecations subjects raised while properties ran."""
    return deprecations.format_block(report)


def format_findings(report: dict[str, Any]) -> list[str]:
    """Per deviation: the findings hit and what was explored beyond them; then each finding
    whose reproducer did not prove it holds."""
    lines = []
    for subj, entry in report["subjects"].items():
        for pid, cell in entry["properties"].items():
            if cell["outcome"] == "deviation":
                lines.append(f"deviation {pid} [{subj}]: {cell['message']}")
    for f in report.get("findings", []):
        if f["reproducer"] in ("differs", "hung", "none", "error"):
            lines.append(f"finding {f['name']} ({f['source']}): reproducer {f['reproducer']}: "
                         f"{f['reproducer_detail'][:300]}")
    return lines


def format_failures(report: dict[str, Any], path: str | None = None) -> list[str]:
    """Per failed or xpassed cell: ID, subject, statement, the kit's message and where the
    reproducer is (``path``: the JSON report written, if any)."""
    lines = []
    for subj, entry in report["subjects"].items():
        for pid, cell in entry["properties"].items():
            if cell["outcome"] not in ("failed", "xpassed"):
                continue
            lines.append(f"{cell['outcome'].upper()} {pid} [{subj}]: "
                         f"{catalogue.get(pid).statement}")
            lines.append(f"  {cell['message'].strip().splitlines()[-1] if cell['message'] else ''}")
            if cell.get("shrunk") == "budget":
                lines.append("  (not fully shrunk: the profile's shrink budget ran out)")
            if cell.get("reproducer"):
                where = (f"in {path}" if path else "in the JSON report (--report FILE.json)")
                lines.append(f"  reproducer: {where}, subjects.{subj}.properties.{pid}"
                             f".reproducer")
    return lines

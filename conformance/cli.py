"""The command line: ``python -m conformance {check,list,findings,matrix,doctor}``.

``check`` runs the property suite through pytest (this kit's plugin), then prints the outcome
table and a one-line total.  Its exit code is 0 only when nothing failed or xpassed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from importlib.metadata import entry_points
from pathlib import Path

from conformance import catalogue, profiles


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line (exit code 2, as the CLI's own checks)."""

    def error(self, message: str):  # type: ignore[no-untyped-def]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m conformance",
        description="Conformance kit for multi-task batched envs, lazy stacks and "
                    "partial-tolerant policies.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="print the property catalogue")
    p_list.add_argument("--json", action="store_true", help="as JSON")
    p_list.add_argument("--markdown", action="store_true",
                        help="as the markdown table in docs/catalogue.md")

    p_check = sub.add_parser("check", help="run the conformance properties against subjects")
    p_check.add_argument("--subject", action="append", default=None, metavar="NAME[OPTIONS]",
                         help="built-in name, entry point or module:attribute, options in "
                              "brackets: 'torchrl[use_buffers=False]' (repeatable; "
                              "default: reference and torchrl)")
    p_check.add_argument("--profile", choices=profiles.NAMES, default=None,
                         help="quick | ci | thorough (default: ci when CI=true, else quick)")
    p_check.add_argument("--area", action="append", default=[], metavar="AREA",
                         help=f"only this area: {' '.join(catalogue.AREAS)} (repeatable)")
    p_check.add_argument("--deviations", action="append", default=[], metavar="FILE",
                         help="TOML file of known deviations (repeatable)")
    p_check.add_argument("--report", metavar="FILE.json", help="write the JSON report")
    p_check.add_argument("--junitxml", metavar="FILE", help="write pytest's JUnit XML")
    p_check.add_argument("-n", dest="numprocesses", metavar="N",
                         help="run properties in N processes (pytest-xdist; 'auto' allowed)")
    p_check.add_argument("--hypothesis-seed", dest="seed", metavar="SEED",
                         help="reproduce a run's examples")
    p_check.add_argument("--prove", choices=profiles.PROVE, default=None,
                         help="run the reproducers of the findings examples hit, or of all "
                              "declared (default: quick hit, ci and thorough all)")
    p_check.add_argument("--skip-doctor", action="store_true",
                         help="do not run the environment checks before the suite")
    p_check.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                         help="extra arguments passed to pytest after '--'")

    p_mat = sub.add_parser("matrix", help="merge JSON reports into one table; gate on regressions")
    p_mat.add_argument("reports", nargs="+", metavar="REPORT.json")
    p_mat.add_argument("--markdown", action="store_true", help="as a markdown table")
    p_mat.add_argument("--baseline", type=int, default=0, metavar="K",
                       help="report K (0-based) holds the releases you are on: each subject is "
                            "gated against its own column there (default 0: the first report)")
    p_mat.add_argument("--upgrade", action="store_true",
                       help="gate only the reports after the baseline (an upgrade); the earlier "
                            "ones are shown, not gated")

    p_find = sub.add_parser("findings", help="print the known findings a subject inherits or "
                                             "declares, as issue text for their upstream project")
    p_find.add_argument("--subject", action="append", default=None, metavar="NAME",
                        help="built-in name, entry point or module:attribute (repeatable; "
                             "default: reference and torchrl)")
    p_find.add_argument("--deviations", action="append", default=[], metavar="FILE",
                        help="a findings file of your own (repeatable)")
    p_find.add_argument("--markdown", action="store_true",
                        help="full issue text (title, versions, reproducer, expected vs "
                             "observed), ready to paste; default: one line per finding")
    p_find.add_argument("--verify", action="store_true",
                        help="run each reproducer (in a subprocess; verdicts cached per "
                             "releases) and say whether it holds; exit 1 when an active "
                             "finding's does not")

    p_doc = sub.add_parser("doctor", help="say what works in this environment and what will not")
    p_doc.add_argument("--json", action="store_true", help="as JSON")
    return parser


def _plugin_args() -> list[str]:
    """``-p conformance.plugin`` unless the installed entry point already loads it."""
    names = {ep.name for ep in entry_points(group="pytest11")}
    return [] if "conformance" in names else ["-p", "conformance.plugin"]


def pytest_args(ns: argparse.Namespace, report_path: str) -> list[str]:
    """The pytest command line that ``check`` runs."""
    args = ["--pyargs", "conformance", "-q", "-rfE", "-p", "no:cacheprovider", "--tb=no",
            "-o", "console_output_style=classic", "--report", report_path, "--conformance-no-table",
            "-W", "ignore::pytest.PytestAssertRewriteWarning", *_plugin_args()]
    for name in ns.subject or []:
        args += ["--subject", name]
    if ns.profile:
        args += ["--conformance-profile", ns.profile]
    for area in ns.area:
        args += ["--conformance-area", area]
    for path in ns.deviations:
        args += ["--deviations", path]
    if ns.junitxml:
        args += ["--junitxml", ns.junitxml]
    if ns.numprocesses:
        args += ["-n", str(ns.numprocesses)]
    if ns.seed is not None:
        args += ["--hypothesis-seed", str(ns.seed)]
    if ns.prove:
        args += ["--conformance-prove", ns.prove]
    return args + list(ns.pytest_args)


def _check(ns: argparse.Namespace) -> int:
    from conformance import arguments

    try:
        arguments.check_command(ns)
    except arguments.ArgumentError as exc:
        print(f"python -m conformance check: error: {exc}", file=sys.stderr)
        return arguments.USAGE
    if ns.numprocesses and "xdist" not in {ep.name for ep in entry_points(group="pytest11")}:
        print("python -m conformance check: error: -n needs pytest-xdist: pip install "
              "'multitask-conformance[test]' or run without -n", file=sys.stderr)
        return arguments.USAGE
    _banner(ns)
    import pytest

    from conformance.plugin import DoctorGate
    from conformance.verdict import Progress

    probes, gate = None, None
    if not ns.skip_doctor:
        from conformance import doctor

        selected = catalogue.select(ns.area)
        dmcontrol = any(p.extra == "dmcontrol" for p in selected)
        parallel = any("parallel_env" in p.needs for p in selected)
        probes = doctor.Probes(dmcontrol=dmcontrol, parallel=parallel)
        if ns.numprocesses:  # (xdist's workers run the properties: judge every probe first)
            blocker = probes.problem(dmcontrol=dmcontrol, parallel=parallel)
        else:  # the core imports now; each probe before the first property that needs it
            blocker = probes.problem()
            gate = DoctorGate(probes)
        if blocker:
            probes.close()
            print(blocker, file=sys.stderr)
            return 3
    report_path = ns.report or os.path.join(tempfile.mkdtemp(prefix="conformance-"),
                                            "report.json")
    try:
        code = pytest.main(pytest_args(ns, report_path),
                           plugins=[Progress(), *([gate] if gate else [])])
    finally:
        if probes is not None:
            probes.close()
    if gate is not None and gate.message:
        print(gate.message, file=sys.stderr)
        return 3
    if code == pytest.ExitCode.USAGE_ERROR:  # (the plugin's: a subject that fails to resolve)
        return arguments.USAGE
    from conformance.report import format_failures, format_findings, format_table, format_warnings

    if not Path(report_path).exists():
        return int(code) or 4
    report = json.loads(Path(report_path).read_text(encoding="utf-8"))
    print()
    for line in format_findings(report) + format_failures(report, report_path):
        print(line)
    if ns.report:
        print(f"report: {ns.report}")
    if bad_cells(report):
        print("(tracebacks and hypothesis's falsifying examples: add -- --tb=short)")
    for line in format_warnings(report) + format_table(report):  # ends with the total
        print(line)
    if bad_cells(report):
        return 1
    if int(code) not in (0, 5):  # usage or internal errors
        return int(code)
    return 0 if report["subjects"] else 5


def bad_cells(report: dict[str, object]) -> list[dict[str, str]]:
    """The report's failed and xpassed cells."""
    return [c for s in report["subjects"].values()  # type: ignore[attr-defined]
            for c in s["properties"].values() if c["outcome"] in ("failed", "xpassed")]


def _banner(ns: argparse.Namespace) -> None:
    """Say what runs, before anything slow: subjects, profile, areas and the seed (chosen here
    where the profile is not derandomized, so that it can be printed first)."""
    import secrets

    from conformance.subject import default_names

    profile = ns.profile or profiles.default_name()
    if ns.seed is None and not profiles.PROFILES[profile].derandomize:
        ns.seed = str(secrets.randbelow(2**32))
    seed = "derandomized" if ns.seed is None else f"{ns.seed} (rerun: --hypothesis-seed {ns.seed})"
    areas = f"; areas {' '.join(ns.area)}" if ns.area else ""
    print(f"conformance check: subjects {', '.join(ns.subject or default_names())}; profile "
          f"{profile}{areas}; hypothesis seed {seed}", flush=True)


def _list(ns: argparse.Namespace) -> int:
    if ns.json:
        print(json.dumps(catalogue.as_dicts(), indent=2))
    elif ns.markdown:
        print(catalogue.markdown_table())
    else:
        for p in catalogue.PROPERTIES:
            extra = f" [+{p.extra}]" if p.extra else ""
            print(f"{p.id:<9} {'+'.join(p.needs)}{extra}\n          {p.statement}")
        print("\n" + "\n".join(catalogue.generated_lines()))
    return 0


def _findings(ns: argparse.Namespace) -> int:
    from conformance import arguments, findings
    from conformance.report import versions
    from conformance.subject import SubjectError, default_names, resolve

    try:
        for name in ns.subject or []:
            arguments.subject_name(name)
        for path in ns.deviations:
            arguments.deviations(path)
    except arguments.ArgumentError as exc:
        print(f"python -m conformance findings: error: {exc}", file=sys.stderr)
        return arguments.USAGE
    try:
        subjects = [resolve(name) for name in ns.subject or default_names()]
        known = [f for path in [*findings.shipped(), *ns.deviations, *(
            p for s in subjects for p in s.deviations)] for f in findings.load(path)]
    except (SubjectError, findings.FindingsError) as exc:
        print(f"python -m conformance findings: error: {exc}", file=sys.stderr)
        return 2
    installed = versions()
    shown: set[str] = set()
    stale: list[str] = []  # active findings whose reproducer did not fail with the signature
    for subj in subjects:
        for f in known:
            if f.name in shown or not f.concerns(subj.name, subj.uses, subj.options):
                continue
            shown.add(f.name)
            verdict = findings.verify(f) if ns.verify else None
            if verdict is not None and f.applies() and verdict.status not in ("holds", "none"):
                stale.append(f"{f.name} ({verdict.status}: {verdict.detail[:200]})")
            if ns.markdown:
                print(findings.issue_text(f, installed, verdict) + "\n")
            else:
                holds = "holds on these releases" if f.applies() else f"inactive ({f.when})"
                said = f"; reproducer {verdict.status}" if verdict else ""
                print(f"{f.name}  [{f.where}; {', '.join(f.ids)}; {holds}{said}]")
    if stale:
        print(f"python -m conformance findings: {len(stale)} finding(s) active on these releases "
              f"whose reproducer does not fail with their signature: {'; '.join(stale)}. Fixed "
              f"upstream: remove the finding or bound it with when = \"...\"; failing otherwise: "
              f"update its signature or reproducer", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m conformance`` and the ``conformance`` script."""
    ns = _parser().parse_args(argv)
    if ns.command == "list":
        return _list(ns)
    if ns.command == "check":
        return _check(ns)
    if ns.command == "findings":
        return _findings(ns)
    if ns.command == "matrix":
        from conformance import matrix

        return matrix.main(ns.reports, markdown=ns.markdown, baseline=ns.baseline,
                           upgrade=ns.upgrade)
    from conformance import doctor

    return doctor.main(as_json=ns.json)

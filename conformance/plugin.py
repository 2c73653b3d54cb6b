"""The pytest plugin (``pytest11`` entry point ``conformance``).

Options, configuration, the ``subject`` parametrization (ids ``ID-subject``), capability skips,
findings and the marks that give each test its outcome.  :mod:`conformance.report` builds the
table and JSON report; :mod:`conformance.hygiene` collects garbage and reaps leftover workers.

Inert in a session that asks nothing of it: unless the session gives a kit option or names the
conformance package (:func:`requested`), it prints no header, sets no environment variable and
stops no process; it touches only tests marked ``conformance``; its seed is the properties' own
(``conformance_seed``), never hypothesis's global one.  It imports no torch, subject or property.
"""

from __future__ import annotations

import os
import secrets
import warnings
from fnmatch import fnmatch
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from conformance import arguments, catalogue, hygiene, profiles, record, verdict, watchdog
from conformance import report as reports

OPT_SUBJECT = "--subject"
OPT_PROFILE = "--conformance-profile"
OPT_DEVIATIONS = "--deviations"
OPT_REPORT = "--report"
OPT_AREA = "--conformance-area"
OPT_NO_SHRINK = "--conformance-no-shrink"
OPT_NO_TABLE = "--conformance-no-table"
OPT_PROVE = "--conformance-prove"
OPTIONS = (OPT_SUBJECT, OPT_PROFILE, OPT_DEVIATIONS, OPT_REPORT, OPT_AREA, OPT_NO_SHRINK,
           OPT_NO_TABLE, OPT_PROVE)
MARKER = "conformance"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "multi-task conformance kit")
    group.addoption(OPT_SUBJECT, action="append", default=None, metavar="NAME[OPTIONS]",
                    help="subject to check: a built-in name (reference, torchrl, torchrl-async-"
                         "threading, torchrl-async-mp), an entry point of group conformance."
                         "subjects, or module:attribute; options in brackets: "
                         "'torchrl[use_buffers=False]'. Repeatable; default: reference, torchrl.")
    group.addoption(OPT_PROFILE, default=None, choices=profiles.NAMES,
                    help="hypothesis profile: quick, ci (derandomized) or thorough. "
                         "Default: ci when CI=true, else quick.")
    group.addoption(OPT_DEVIATIONS, action="append", default=[], metavar="FILE",
                    help="TOML file of known deviations (strict). Repeatable.")
    group.addoption(OPT_REPORT, default=None, metavar="FILE.json",
                    help="write the JSON conformance report here.")
    group.addoption(OPT_AREA, action="append", default=[], metavar="AREA",
                    help="only properties of this area (STK EXC SPEC PAR POL SCN). Repeatable.")
    group.addoption(OPT_NO_SHRINK, action="store_true", default=False,
                    help="report the first failing example without shrinking it (mutation runs: "
                         "a kill needs a failure, not a minimal one).")
    group.addoption(OPT_PROVE, default=None, choices=profiles.PROVE,
                    help="which declared findings' reproducers run (strictness: one that passes "
                         "makes its properties xpassed): 'hit' (those an example hit) or 'all'. "
                         "Default: the profile's (quick: hit; ci, thorough: all).")
    group.addoption(OPT_NO_TABLE, action="store_true", default=False,
                    help="do not print the outcome table (python -m conformance check prints "
                         "it itself).")


class _State:
    """Per-session state, kept on ``config.stash``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.names: list[str] = config.getoption(OPT_SUBJECT) or []
        self.subjects: dict[str, Any] | None = None
        self.profile = profiles.active()
        self.seed: int | str = "derandomized"
        self.findings: list[Any] = []  # the active findings: shipped, subjects', --deviations
        self.declared: dict[tuple[str, str], tuple[Any, ...]] = {}  # (subject, ID) -> findings
        self.verifier: Any = None  # the thread proving the run's findings hold (controller)
        self.cells: reports.Cells = {}
        self.requested = requested(config)  # decided before collection: the header needs it
        self.active = False  # a conformance property was collected
        self.stopped = False  # the doctor stopped the run (DoctorGate): no report

    def resolve(self) -> dict[str, Any]:
        """Resolve the subject names once; their own findings files join the run's."""
        if self.subjects is None:
            from conformance.subject import SubjectError, default_names, resolve

            names = self.names or default_names()
            subjects: dict[str, Any] = {}
            for name in names:
                try:
                    subj = resolve(name)
                except SubjectError as exc:
                    raise pytest.UsageError(str(exc)) from None
                subjects[subj.name] = (subj, name)
                for path in subj.deviations:
                    self.findings.extend(_load(path))
            self.subjects = subjects
        return self.subjects

STATE = pytest.StashKey[_State]()


def _load(path: Any) -> list[Any]:
    """The findings of a file that hold on the installed releases (see ``when``)."""
    from conformance.findings import FindingsError, load

    try:
        return [f for f in load(path) if f.applies()]
    except FindingsError as exc:
        raise pytest.UsageError(f"findings file: {exc}") from None


def requested(config: pytest.Config) -> bool:
    """Whether the session asks for the kit: it gives one of the kit's options, or one of its
    arguments names the conformance package (``--pyargs conformance[.x]``, or a path inside the
    package, or above it with no folder between that pytest does not recurse into)."""
    if any(config.getoption(opt) for opt in OPTIONS):
        return True
    package = Path(__file__).resolve().parent
    for arg in config.args:
        target = arg.split("::", 1)[0]
        if config.option.pyargs and target.split(".")[0] == package.name:
            return True
        path = (config.invocation_params.dir / target).resolve()
        if path == package or package in path.parents:
            return True
        if path in package.parents:
            between = package.relative_to(path).parts[:-1]
            skipped = [*config.getini("norecursedirs"), "site-packages", "dist-packages"]
            if not any(fnmatch(part, pattern) for part in between for pattern in skipped):
                return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(id): a conformance property with this ID")
    if not config.pluginmanager.is_registered(watchdog):  # a wall-clock limit per property
        config.pluginmanager.register(watchdog, "conformance-watchdog")
    name = config.getoption(OPT_PROFILE) or profiles.default_name()
    seed_opt = arguments.plugin(config)  # every kit argument checked first: UsageError
    state = _State(config)
    if seed_opt is not None or not profiles.PROFILES[name].derandomize:
        if seed_opt is None:  # (not from the random module: its state is the other tests')
            seed_opt = secrets.randbelow(2**32)
        # the properties' own seed (applied with hypothesis.seed, not hypothesis's global one);
        # xdist passes options on to its workers, so they draw the same examples
        config.option.conformance_seed = seed_opt
        state.seed = int(seed_opt)
    profiles.activate(name, None if state.seed == "derandomized" else int(state.seed),
                      shrink=not config.getoption(OPT_NO_SHRINK))
    state.profile = profiles.active()
    if state.requested:
        from conformance.findings import shipped

        for path in [*shipped(), *config.getoption(OPT_DEVIATIONS)]:
            state.findings.extend(_load(path))
    config.stash[STATE] = state
    if state.requested:  # dm_control (SCN) renders headless unless the user chose otherwise
        os.environ.setdefault("MUJOCO_GL", "egl")
    if state.names:  # named explicitly: a bad name is a usage error before anything runs
        state.resolve()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    if not state.requested:
        return []
    names = state.names or "(built-ins, resolved when properties are collected)"
    versions = ", ".join(f"{k} {v}" for k, v in reports.versions().items())
    return [
        f"conformance: subjects {names}; profile {state.profile.name}; "
        f"hypothesis seed {state.seed}",
        f"conformance: {versions}",
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "subject" not in metafunc.fixturenames or not metafunc.definition.get_closest_marker(MARKER):
        return
    subjects = metafunc.config.stash[STATE].resolve()
    pid = metafunc.definition.get_closest_marker(MARKER).args[0]
    metafunc.parametrize("subject", [s for s, _ in subjects.values()],
                         ids=[f"{pid}-{name}" for name in subjects])


def _dmcontrol_problem() -> str | None:
    missing = [m for m in ("dm_control", "mujoco") if find_spec(m) is None]
    if missing:
        return (f"needs the dmcontrol extra ({', '.join(missing)} not installed): "
                f"pip install 'multitask-conformance[dmcontrol]'")
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = config.stash[STATE]
    areas = {a.upper() for a in config.getoption(OPT_AREA)}
    keep, drop = [], []
    for item in items:
        marker = item.get_closest_marker(MARKER)
        if marker is None:
            keep.append(item)
            continue
        if not state.active:  # (and dm_control renders headless, as when requested)
            state.active = True
            os.environ.setdefault("MUJOCO_GL", "egl")
            if not state.requested:  # (collected without asking: the shipped findings too)
                from conformance.findings import shipped

                for path in shipped():
                    state.findings.extend(_load(path))
        prop = catalogue.get(marker.args[0])
        if areas and prop.area not in areas:
            drop.append(item)
            continue
        keep.append(item)
        subj = getattr(item, "callspec", None) and item.callspec.params.get("subject")
        if subj is None:
            continue
        item.user_properties += [("conformance_id", prop.id), ("conformance_subject", subj.name)]
        missing = subj.missing(prop.needs)
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"subject {subj.name!r} lacks capability {missing[0]!r}"))
            continue
        if prop.extra == "dmcontrol" and (problem := _dmcontrol_problem()):
            item.add_marker(pytest.mark.skip(reason=problem))
            continue
    if drop:
        config.hook.pytest_deselected(items=drop)
    if state.active:  # (a stable sort: each tier keeps pytest's order)
        keep.sort(key=lambda item: (starts_processes(item), needs_dmcontrol(item)))
    items[:] = keep


def starts_processes(item: pytest.Item) -> bool:
    """Whether ``item``, a kit property on one subject, starts worker processes: it needs a
    process-parallel env, or its subject spawns workers for a capability it needs."""
    marker = item.get_closest_marker(MARKER)
    subj = getattr(item, "callspec", None) and item.callspec.params.get("subject")
    if marker is None or subj is None:
        return False
    needs = set(catalogue.get(marker.args[0]).needs)
    return "parallel_env" in needs or bool(needs & set(getattr(subj, "spawns", ())))


def needs_dmcontrol(item: pytest.Item) -> bool:
    """Whether ``item`` is a kit property that loads dm_control (the seed scenario)."""
    marker = item.get_closest_marker(MARKER)
    return marker is not None and catalogue.get(marker.args[0]).extra == "dmcontrol"


class DoctorGate:
    """``check``'s doctor, as a plugin: the doctor's probes (``conformance.doctor.Probes``) run
    in the background while the properties that need neither worker processes nor dm_control
    run (collection orders those first: their verdicts come first too); before the first
    property that needs one, the gate waits for its probe, and stops the run when it failed --
    no report, and ``check`` prints :attr:`message` and exits 3."""

    def __init__(self, probes: Any) -> None:
        self.probes = probes
        self.message = ""

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        parallel, dmcontrol = starts_processes(item), needs_dmcontrol(item)
        if not (parallel or dmcontrol):
            return
        self.message = self.probes.problem(dmcontrol=dmcontrol, parallel=parallel)
        if self.message:
            item.config.stash[STATE].stopped = True
            pytest.exit("the conformance doctor stopped the run (its message follows)",
                        returncode=3)

    @pytest.hookimpl(tryfirst=True)  # (before the plugin reaps leftover workers)
    def pytest_sessionfinish(self) -> None:
        self.probes.close()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Open the property's call with the findings declared for its subject (failures: hits)."""
    marker = item.get_closest_marker(MARKER)
    if marker is not None:
        subj = getattr(item, "callspec", None) and item.callspec.params.get("subject")
        key = (getattr(subj, "name", ""), marker.args[0])
        record.begin(marker.args[0], item.config.stash[STATE].declared.get(key, ()))


def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Collect garbage after a property that starts workers: see ``hygiene.collect_garbage``."""
    if starts_processes(item):
        marker = item.get_closest_marker(MARKER)
        subj = item.callspec.params.get("subject")  # type: ignore[attr-defined]
        stuck = hygiene.collect_garbage(hygiene.FINALIZER_LIMIT)
        if stuck:
            warnings.warn(pytest.PytestWarning(
                f"{marker.args[0]} [{getattr(subj, 'name', subj)}]: a finalizer of an object it "
                f"left behind ran for more than {hygiene.FINALIZER_LIMIT:g} s and was "
                f"interrupted: {'; '.join(stuck)}"), stacklevel=1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    marker = item.get_closest_marker(MARKER)
    if marker is None or call.when != "call":
        return
    run = record.current(marker.args[0])
    rep.user_properties += run.user_properties()  # hits, explored, deprecations, shrink verdict
    if call.excinfo is None or call.excinfo.errisinstance(pytest.skip.Exception):
        return
    rep.user_properties.append(("conformance_message", verdict.kit_message(call.excinfo.value)))
    example = record.last_example(marker.args[0])
    if example is not None:
        text = reports.reproducer(marker.args[0], example, item.config.stash[STATE].resolve())
        rep.user_properties.append(("conformance_reproducer", text))


def pytest_report_teststatus(report: pytest.TestReport,
                             config: pytest.Config) -> tuple[str, str, Any] | None:
    """A property that passed only because every failure matched a declared finding is a
    ``deviation`` in pytest's own summary too (``1 deviation``, letter ``d``), as in the kit's."""
    if report.when == "call" and report.passed \
            and dict(report.user_properties).get("conformance_hits"):
        return "deviation", "d", ("DEVIATION", {"yellow": True})
    return None


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if _CONFIG:  # (on xdist's controller: the reports its workers send)
        state = _CONFIG["config"].stash[STATE]
        reports.add(state.cells, report)
        hits = dict(report.user_properties).get("conformance_hits")
        if hits and state.verifier is not None:
            state.verifier.prove(list(hits))


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config
    state = session.config.stash[STATE]
    if state.requested:
        _declare(state)


def pytest_collection_finish(session: pytest.Session) -> None:
    _declare(session.config.stash[STATE])


def _declare(state: _State) -> None:
    """Which findings each (subject, property) of the run declares, once; then, outside xdist's
    workers, start proving them (:class:`conformance.findings.Verifier`)."""
    if state.verifier is not None or not (state.requested or state.active):
        return
    from conformance.findings import Verifier, declare

    props = [p for p in catalogue.select(state.config.getoption(OPT_AREA))
             if not (p.extra == "dmcontrol" and _dmcontrol_problem())]
    subjects = {name: subj for name, (subj, _) in state.resolve().items()}
    state.declared = declare(state.findings, subjects, props)
    worker = hasattr(state.config, "workerinput")
    every = list({f.name: f for group in state.declared.values() for f in group}.values())
    prove = state.config.getoption(OPT_PROVE) or state.profile.prove
    state.verifier = Verifier([] if worker else every, eager=prove == "all")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash[STATE]
    if not state.cells or config.getoption(OPT_NO_TABLE):
        return
    report = _report(state)
    terminalreporter.section("conformance")
    for line in (reports.format_table(report) + reports.format_warnings(report)
                 + reports.format_findings(report)
                 + reports.format_failures(report, config.getoption(OPT_REPORT))):
        terminalreporter.write_line(line)


def _report(state: _State) -> dict[str, Any]:
    """The run's report, the findings' verdicts applied (waits for the verifier)."""
    subjects = {name: subj for name, (subj, _) in (state.subjects or {}).items()}
    verdicts = state.verifier.results() if state.verifier is not None else {}
    return reports.build(state.cells, state.profile.name, state.seed,
                         findings=reports.findings_section(state.declared, subjects, verdicts))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config, state = session.config, session.config.stash[STATE]
    if not (state.requested or state.active):
        return
    left = hygiene.stop_leftover_workers()
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if left and reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(f"conformance: {len(left)} worker process(es) still running at the "
                            f"end of the run were terminated: {', '.join(left)}; a subject's env "
                            "left them (close() interrupted, or never called)", yellow=True)
    path = config.getoption(OPT_REPORT)
    if path and not hasattr(config, "workerinput") and not state.stopped:
        reports.write(path, _report(state))

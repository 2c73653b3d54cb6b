"""What a run tells a person while it runs and when a property fails.

- :func:`kit_message`: the kit's one-line ``what: observed …, expected … [call]. Likely fix``
  of a failure (the JSON cell's ``message``; the traceback goes to ``traceback``).
- :class:`Hooks` (registered by the plugin): each failed property's report carries that line,
  and ``conformance_shrunk`` when its shrink budget ran out.
- :class:`Progress` (registered by ``python -m conformance check``): one line per property and
  subject with a count, ``[17/106] PAR-004 reference … ok 0.8 s``, rewritten in place on a
  terminal and plain lines in a log; a failure says so when it happens, with the kit's line.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import catalogue

MARKER = "conformance"


def kit_message(exc: BaseException) -> str:
    """The kit's line of a failure (``observed … expected …``), else its first line, prefixed
    with the exception type; for a group of failures, its first."""
    while getattr(exc, "exceptions", None):
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kit = [line for line in lines if ": observed " in line and ", expected " in line]
    first = kit[0] if kit else (lines[0] if lines else "(no message)")
    return f"{type(exc).__name__}: {first}"[:2000]


class Progress:
    """One line per property x subject as each finishes (see the module docstring)."""

    def __init__(self) -> None:
        self.total: int | None = None
        self.done = 0
        self.worst: dict[str, tuple[str, float, str]] = {}  # nodeid -> (word, seconds, detail)
        self.reporter: Any = None

    @pytest.hookimpl(trylast=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        self.reporter = config.pluginmanager.get_plugin("terminalreporter")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:
            self.total = len(session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.total = len(ids)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_report_teststatus(self, report: Any, config: pytest.Config):  # type: ignore[no-untyped-def]
        """No pytest letters (dots) for the kit's properties: this reporter's lines replace them
        (the word stays for pytest's short summary)."""
        outcome = yield
        result = outcome.get_result()
        if result and "conformance_id" in dict(getattr(report, "user_properties", ())):
            outcome.force_result((result[0], "", result[2]))

    def _count(self) -> str:
        total = self.total if self.total is not None else "?"
        return f"[{self.done + 1}/{total}]"

    def pytest_runtest_logreport(self, report: Any) -> None:
        props = dict(report.user_properties)
        if "conformance_id" not in props or self.reporter is None:
            return
        label = f"{props['conformance_id']} {props['conformance_subject']}"
        word, seconds, detail = self.worst.get(report.nodeid, ("ok", 0.0, ""))
        seconds += report.duration
        if report.when == "setup" and report.passed and self.reporter.isatty:
            self.reporter.rewrite(f"{self._count()} {label} …", erase=True)
        if report.failed:
            word = "FAILED" if report.when == "call" else f"ERROR at {report.when}"
            tail = report.longreprtext.strip().splitlines()[-1:] or [""]
            detail = props.get("conformance_message") or tail[0]
        elif report.skipped and word == "ok":
            word = "xfail" if hasattr(report, "wasxfail") else "skipped"
        elif report.when == "call" and props.get("conformance_hits"):
            word = "deviation"
        self.worst[report.nodeid] = (word, seconds, detail)
        if report.when != "teardown":
            return
        del self.worst[report.nodeid]
        line = f"{self._count()} {label} … {word} {seconds:.1f} s"
        self.done += 1
        if self.reporter.isatty:
            self.reporter.rewrite("", erase=True)
            self.reporter.rewrite(line, red=word.startswith(("FAILED", "ERROR")))
            self.reporter.write("\n")
        else:
            self.reporter.write_line(line)
        if detail:
            self.reporter.write_line(f"    {catalogue.get(props['conformance_id']).statement}")
            self.reporter.write_line(f"    {detail}")

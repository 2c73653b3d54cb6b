"""The call a property is running: what the plugin tells it, and the example it last ran.

The plugin opens a :class:`Call` before each property runs (:func:`begin`); the property's wrapper
(:func:`conformance.properties._core.prop`) reads it for its settings and records each example it
runs; after a failure the plugin reads the last one back (:func:`last_example`) to build the
reproducer: after hypothesis has shrunk a failure, its final replay is the minimal example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One example a property ran: ``fn(subject, **inputs)``.  The reproducer pastes what ``fn``
    calls (:func:`conformance.repro.needs`); ``helpers``: more functions to paste, rarely
    needed."""

    subject: Any
    fn: Callable[..., Any]
    inputs: dict[str, Any]
    helpers: tuple[Any, ...] = ()


@dataclass
class Call:
    """One run of property ``prop_id`` on a subject, with the findings declared for the pair.

    ``hits`` counts the examples whose failure matched each finding (hypothesis went on past
    them); ``explored`` counts the examples that ran without hitting one; ``warnings`` the
    deprecations its examples raised (:mod:`conformance.deprecations`).
    """

    prop_id: str
    findings: tuple[Any, ...] = ()
    settings: Any = None  # the hypothesis settings the property runs under (set by prop())
    example: Example | None = None
    hits: dict[str, int] = field(default_factory=dict)
    explored: int = 0
    hit_cap: int = 2  # hits of declared findings that end the property (set by prop())
    budget: tuple[int, float] = (0, 0.0)  # shrink budget: (examples, seconds) after a failure
    failure: BaseException | None = None  # the last failure seen (not a declared finding)
    failing: Example | None = None  # the example that raised it
    first: tuple[BaseException, Example | None] | None = None  # the first failure, its example
    failed_at: float | None = None  # time.monotonic() of the first failure
    after_failure: int = 0  # examples run since the first failure (shrinking)
    shrunk: str = ""  # "budget": the budget ran out before hypothesis finished shrinking
    # deprecations raised while its examples ran: (category, message, origin) -> count
    warnings: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def user_properties(self) -> list[tuple[str, Any]]:
        """What the call's test report carries to its cell (through xdist too): the findings'
        hits and the examples explored beyond them, the deprecations raised, and whether the
        shrink budget cut its counterexample."""
        out: list[tuple[str, Any]] = [("conformance_shrunk", self.shrunk)] if self.shrunk else []
        if self.findings:
            out += [("conformance_hits", dict(self.hits)), ("conformance_explored",
                                                            self.explored)]
        if self.warnings:
            from conformance.deprecations import as_list

            out.append(("conformance_warnings", as_list(self.warnings)))
        return out

    def known(self, exc: BaseException) -> Any:
        """The declared finding whose signature ``exc``'s failure text matches, else None; a
        match is counted as a hit."""
        if not self.findings:
            return None
        from conformance.findings import failure_text

        text = failure_text(exc)
        for finding in self.findings:
            if finding.matches(text):
                self.hits[finding.name] = self.hits.get(finding.name, 0) + 1
                return finding
        return None


_calls: dict[str, Call] = {}


def begin(prop_id: str, findings: tuple[Any, ...] = ()) -> Call:
    """Open a fresh call of ``prop_id`` with the findings declared for it (forgetting the last
    call's example)."""
    _calls[prop_id] = Call(prop_id, tuple(findings))
    return _calls[prop_id]


def current(prop_id: str) -> Call:
    """The open call of ``prop_id``; a default one where nothing opened it (run outside the
    plugin)."""
    return _calls.get(prop_id) or begin(prop_id)


def last_example(prop_id: str) -> Example | None:
    """The last example the open call of ``prop_id`` ran, if any."""
    call = _calls.get(prop_id)
    return call.example if call else None

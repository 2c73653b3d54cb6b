"""The kit never hangs: a wall-clock limit on each property's call phase.

A property still running after its limit (:func:`conformance.profiles.property_limit`: the
profile's, per kind) is interrupted by a SIGALRM timer that raises :class:`PropertyHung`, a
BaseException (hypothesis lets it through, and a subject's ``except Exception`` cannot swallow
it; it is raised again every 30 s in case a subject swallows even that).  The property
is then reported ``failed`` with "hung after N s in <the call it was in>", the processes it
started are stopped (:func:`conformance.hygiene.stop_pids`) and the run goes on with the next.
Once a subject has hung in :data:`MAX_HANGS` properties its remaining ones are reported
``failed`` without running ("not run: ... hung in ..."), so a hung subject holds a run for at
most ``MAX_HANGS`` limits (per xdist worker) on top of its normal time.

Why our own timer rather than pytest-timeout: the kit's timer, :func:`conformance.hygiene.
call_within`, already owns SIGALRM and suspends an enclosing timer while it runs (so bounded
calls inside a property and this limit compose); pytest-timeout's signal method ends a test
with ``pytest.fail``, which hypothesis takes for a failing example and replays; and the kit
then needs no extra runtime dependency.  Main thread only (pytest's, and xdist workers'); off
it, or where there is no SIGALRM (Windows), properties run without a limit.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from conformance import catalogue, hygiene, profiles

REPEAT = 30.0  # s between further interrupts of a property that swallowed the first (long:
# an interrupt must not land in the cleanup of the first one)
MAX_HANGS = 2  # hung properties after which a subject's remaining properties are not run
_HUNG: dict[str, list[str]] = {}  # subject name -> the IDs of its properties that hung
_KIT = Path(__file__).resolve().parent


class PropertyHung(BaseException):
    """A property ran past its wall-clock limit."""


def _where(frame: Any) -> str:
    """The call a property was in when interrupted: the innermost frame, and the property's own
    line that led there (its source text)."""
    import linecache

    inner = f"{frame.f_code.co_name} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})"
    f = frame
    while f is not None:
        path = Path(f.f_code.co_filename)
        if path.parent.name == "properties" and _KIT in path.parents:
            text = linecache.getline(str(path), f.f_lineno).strip()
            if f is frame:
                return f"`{text}` ({path.name}:{f.f_lineno})"
            return f"{inner}, called from `{text}` ({path.name}:{f.f_lineno})"
        f = f.f_back
    return inner


def _subject_name(item: pytest.Item) -> str:
    subj = getattr(item, "callspec", None) and item.callspec.params.get("subject")
    return str(getattr(subj, "name", ""))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A property of a subject that has hung :data:`MAX_HANGS` times already fails unrun."""
    hung = _HUNG.get(_subject_name(item), [])
    if item.get_closest_marker("conformance") is not None and len(hung) >= MAX_HANGS:
        pytest.fail(f"not run: subject {_subject_name(item)!r} hung in {', '.join(hung)} already "
                    f"(after {MAX_HANGS} hung properties a subject's others are not run); fix "
                    "the hang first", pytrace=False)


def limit_for(item: pytest.Item) -> float | None:
    """The wall-clock limit of a conformance property's item (None: not one of the kit's)."""
    marker = item.get_closest_marker("conformance")
    if marker is None:
        return None
    subj = getattr(item, "callspec", None) and item.callspec.params.get("subject")
    needs = set(catalogue.get(marker.args[0]).needs)
    spawns = "parallel_env" in needs or bool(needs & set(getattr(subj, "spawns", ())))
    return profiles.property_limit(spawns)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    import signal
    import threading
    import time

    limit = limit_for(item)
    if (limit is None or threading.current_thread() is not threading.main_thread()
            or not hasattr(signal, "setitimer")):
        yield
        return
    before = hygiene.child_pids()
    start = time.monotonic()
    source = ("CONFORMANCE_PROPERTY_LIMIT" if os.environ.get("CONFORMANCE_PROPERTY_LIMIT")
              else f"profile {profiles.active().name}")

    def on_alarm(signum: int, frame: Any) -> None:
        raise PropertyHung(f"hung after {time.monotonic() - start:.0f} s (the {limit:g} s limit "
                           f"of {source}) in {_where(frame)}; its "
                           "processes were stopped and the run went on")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit, REPEAT)
    try:
        outcome = yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    excinfo = outcome.excinfo
    if excinfo is not None and issubclass(excinfo[0], PropertyHung):
        _HUNG.setdefault(_subject_name(item), []).append(
            item.get_closest_marker("conformance").args[0])  # type: ignore[union-attr]
        hygiene.stop_leftover_workers()
        hygiene.stop_pids(pid for pid in hygiene.child_pids() - before
                          if not hygiene.is_finding_reproducer(pid))


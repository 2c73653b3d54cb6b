"""The ``prop`` decorator: ties a property test to its catalogue entry, profile and reproducer."""

from __future__ import annotations

import copy
import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance import catalogue, deprecations, profiles, record


class FindingsOnly(BaseException):
    """Raised through hypothesis to stop a property whose examples keep hitting declared
    findings (a BaseException: hypothesis lets it through instead of shrinking it)."""


class ShrinkBudgetSpent(BaseException):
    """Raised through hypothesis once a failing property has spent its shrink budget
    (:func:`conformance.profiles.shrink_budget`): the last failure it saw then stands."""


def failed(call: record.Call, exc: BaseException) -> None:
    """Note a failure (not a declared finding) of the running example: the last one stands
    when the shrink budget runs out."""
    call.failure, call.failing = exc, call.example
    if call.failed_at is None:
        call.failed_at = time.monotonic()
        call.first = (exc, call.example)


def reproduce_raised(call: record.Call, exc: BaseException) -> None:
    """Make the example that raised ``exc`` (what hypothesis raises) the call's example, the one
    its reproducer pastes.  After shrinking, hypothesis's final replay is the last example run;
    but it runs every fixed example and raises the first that failed, and a later fixed example
    may have passed after it."""
    while getattr(exc, "exceptions", None):  # (several fixed examples failed: the first)
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    for failure, example in filter(None, (call.first, (call.failure, call.failing))):
        if failure is exc:
            call.example = example


def tick(call: record.Call) -> None:
    """Count an example run after the first failure; stop hypothesis (:class:`ShrinkBudgetSpent`)
    once the call's shrink budget is spent."""
    if call.failed_at is None:
        return
    call.after_failure += 1
    examples, seconds = call.budget
    if call.after_failure > examples or time.monotonic() - call.failed_at > seconds:
        raise ShrinkBudgetSpent()


def budget_failure(call: record.Call) -> BaseException:
    """The failure that stands once the shrink budget is spent: the last one, its example
    restored for the reproducer, the report told it was not fully shrunk."""
    assert call.failure is not None
    call.example, call.shrunk = call.failing, "budget"
    note = (f"(conformance: the shrink budget of this profile ran out after "
            f"{call.after_failure - 1} more example(s) in {time.monotonic() - call.failed_at:.1f}"
            f" s: this is the last failing example, not a minimal one)")
    if hasattr(call.failure, "add_note"):
        call.failure.add_note(note)
    return call.failure


def _recorder(call: record.Call, body: Callable[..., Any], helpers: tuple[Any, ...] = (),
              generated: bool = True) -> Callable[..., Any]:
    """``body``, recording each example it runs on ``call`` (a copy: the body may mutate). A
    failure that matches a declared finding is a hit: hypothesis goes on as if the example were
    rejected (``generated``), until hits reach ``call.hit_cap`` (:func:`prop`)."""
    from hypothesis import reject

    @functools.wraps(body)
    def recorded(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        subject = kwargs.get("subject", args[0] if args else None)
        inputs = {k: v for k, v in kwargs.items() if k != "subject"}
        try:
            saved = copy.deepcopy(inputs)
        except Exception:  # inputs that cannot be copied are rendered as they are
            saved = inputs
        if generated:
            tick(call)
        call.example = record.Example(subject, body, saved, helpers)
        try:
            with deprecations.recording(call.warnings):
                result = body(*args, **kwargs)
        except Exception as exc:
            if call.known(exc) is None:
                if generated:
                    failed(call, exc)
                raise
            if not generated:
                return None
            if sum(call.hits.values()) >= call.hit_cap:
                raise FindingsOnly() from None
            reject()
        call.explored += 1
        return result

    return recorded


def known_failure(prop_id: str, exc: BaseException) -> bool:
    """Whether ``exc`` matches a finding declared for the running call of ``prop_id`` (counted as
    a hit): a stateful property rejects such a step sequence and goes on, until hits reach the
    call's ``hit_cap`` as for any property (:class:`FindingsOnly` then ends it: rejected
    sequences do not count towards hypothesis's examples, and a subject whose every sequence hit
    a finding ran hundreds of them, past the profile's limit where each builds worker
    processes)."""
    call = record.current(prop_id)
    if call.known(exc) is None:
        return False
    if sum(call.hits.values()) >= call.hit_cap:
        raise FindingsOnly() from None
    return True


def current_settings(prop_id: str) -> Any:
    """The hypothesis settings of the running call of ``prop_id`` (a stateful property passes
    them to ``run_state_machine_as_test``)."""
    return record.current(prop_id).settings


def stateful_failed(prop_id: str, exc: BaseException) -> None:
    """A stateful property's step failed (not a declared finding): see :func:`failed`."""
    failed(record.current(prop_id), exc)


def stateful_example(prop_id: str) -> None:
    """A stateful property starts an example: see :func:`tick` (call it from the machine's
    ``initialize`` rule)."""
    tick(record.current(prop_id))


def prop(prop_id: str, kind: str = "default", helpers: tuple[Any, ...] = (),
         examples: tuple[dict[str, Any], ...] = (), replay: Callable[..., Any] | None = None,
         **strategies: Any) -> Callable[..., Any]:
    """Mark ``body(subject, **drawn)`` as conformance property ``prop_id``.

    ``strategies`` are hypothesis strategies for the body's other arguments and ``examples``
    its fixed examples (run first, in order; each run gets fresh copies, as a body may mutate
    its inputs); ``kind`` is ``default``, ``parallel`` or ``stateful``. The hypothesis test is
    built for each run with the settings the profile gives this property on this subject
    (:func:`conformance.profiles.hypothesis_settings`), and each example is recorded so a
    failure comes with a standalone reproducer: the body's source and what it calls, found by
    :func:`conformance.repro.needs` (``helpers``, rarely needed: more functions to paste).  A
    stateful property records its own examples of ``replay(subject, **inputs)``, the function
    its reproducer calls.  The docstring becomes the catalogue statement; the test keeps the
    function its reproducer pastes as ``conformance_body``.
    """
    from hypothesis import example, given, seed, settings
    from hypothesis.errors import Unsatisfiable

    entry = catalogue.get(prop_id)

    def decorate(body: Callable[..., Any]) -> Callable[..., Any]:
        params = [p for name, p in inspect.signature(body).parameters.items()
                  if name not in strategies]

        @functools.wraps(body)
        def property_test(*args: Any, **kwargs: Any) -> Any:
            __tracebackhide__ = True
            subject = kwargs.get("subject", args[0] if args else None)
            call = record.current(prop_id)
            spawns = bool(set(getattr(subject, "spawns", ())) & set(entry.needs))
            call.settings = profiles.hypothesis_settings(kind, len(examples), spawns=spawns)
            call.budget = profiles.shrink_budget(kind, spawns=spawns)
            # hits end a property at twice its example budget; once where each example starts
            # workers (a declared finding hit again costs a worker start-up and shows nothing new)
            call.hit_cap = call.settings.max_examples * (1 if kind == "parallel" or spawns else 2)
            test = _recorder(call, body, helpers, generated=bool(strategies))
            if strategies:
                test = given(**strategies)(test)
                for fixed in reversed(examples):  # a copy per run: a body may mutate its inputs
                    test = example(**copy.deepcopy(fixed))(test)
                run_seed = profiles.seed()
                if run_seed is not None and not call.settings.derandomize:
                    test = seed(run_seed)(test)
                test = settings(call.settings)(test)
            try:
                return test(*args, **kwargs)
            except ShrinkBudgetSpent:
                raise budget_failure(call) from None
            except (FindingsOnly, Unsatisfiable):
                if not call.hits:  # (no finding was hit: hypothesis's own complaint stands)
                    raise
                return None  # only declared findings: the plugin reports what was explored
            except Exception as exc:
                reproduce_raised(call, exc)
                raise

        del property_test.__wrapped__  # pytest reads the signature below, not the body's
        property_test.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        property_test.__doc__ = entry.statement
        property_test.conformance_body = replay or body  # type: ignore[attr-defined]
        return pytest.mark.conformance(prop_id)(property_test)  # type: ignore[no-any-return]

    return decorate

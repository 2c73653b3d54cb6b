"""The ``prop`` decorator: ties a property test to its catalogue entry, profile and reproducer."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import pytest

from conformance import catalogue, profiles

# The last example each property ran, per process: after hypothesis has shrunk a failure, its
# final replay is the minimal example, which the plugin turns into a reproducer.
LAST_EXAMPLE: dict[str, Any] = {}


def _record(prop_id: str, fn: Callable[..., Any], helpers: tuple[Any, ...]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def recorder(*args: Any, **kwargs: Any) -> Any:
        subject = kwargs.get("subject", args[0] if args else None)
        inputs = {k: v for k, v in kwargs.items() if k != "subject"}
        try:
            saved = copy.deepcopy(inputs)
        except Exception:  # inputs that cannot be copied are rendered as they are
            saved = inputs
        LAST_EXAMPLE[prop_id] = (subject, fn, saved, helpers)
        return fn(*args, **kwargs)

    return recorder


def prop(prop_id: str, kind: str = "default", helpers: tuple[Any, ...] = ()) -> Callable[..., Any]:
    """Mark a test as conformance property ``prop_id``.

    Sets its docstring to the catalogue statement, its hypothesis settings from the active
    profile (``kind`` is ``default``, ``parallel`` or ``stateful``), and records each example so
    a failure comes with a standalone reproducer (``helpers`` are functions pasted into it).
    """
    entry = catalogue.get(prop_id)

    def decorate(test: Callable[..., Any]) -> Callable[..., Any]:
        hyp = getattr(test, "hypothesis", None)
        if hyp is not None:
            hyp.inner_test = _record(prop_id, hyp.inner_test, helpers)
            explicit = len(getattr(test, "hypothesis_explicit_examples", ()))
            test = profiles.hypothesis_settings(kind, explicit)(test)
        else:  # a plain example-based property: record its (empty) example for the reproducer
            test = _record(prop_id, test, helpers)
        test.__doc__ = entry.statement
        test._conformance_kind = kind  # type: ignore[attr-defined]  # (the plugin reads it)
        return pytest.mark.conformance(prop_id)(test)  # type: ignore[no-any-return]

    return decorate

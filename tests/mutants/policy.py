"""Mutants of the partial-tolerant policy (``sequential``): each wraps the reference policy
(``reference.PartialTolerantSequential``) and breaks exactly one thing.

The POL properties build ``sequential(backbone, *heads)`` with the backbone first; mutants that
treat "the backbone" and "the heads" differently rely on that order.  Each mutant provides
``sequential`` and tensordict's ``lazy_stack`` (the POL properties that stack need both).
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import LazyStackedTensorDict, lazy_stack

from conformance.subject import Subject


def _ref(*modules: Any, partial_tolerant: bool = True) -> Any:
    from reference import PartialTolerantSequential

    return PartialTolerantSequential(*modules, partial_tolerant=partial_tolerant)


def _leaves(td: Any) -> list[Any]:
    if isinstance(td, LazyStackedTensorDict):
        return [leaf for sub in td.tensordicts for leaf in _leaves(sub)]
    return [td]


def _subject(name: str, sequential: Any) -> Subject:
    return Subject(name, lazy_stack=lazy_stack, sequential=sequential)


# -- POL-001: routing by the stack's shared keys only ---------------------------------------------


def _intersection_only(*modules: Any, partial_tolerant: bool = True) -> Any:
    def policy(td: Any) -> Any:
        for module in modules:
            if all(k in td.keys(include_nested=True) for k in module.in_keys):
                _ref(module, partial_tolerant=partial_tolerant)(td)
            elif not partial_tolerant:
                _ref(module, partial_tolerant=False)(td)  # raises the reference's KeyError
        return td

    return policy


def intersection_only() -> Subject:
    """Runs a module only when every element of the stack holds its keys: heads never run on a
    heterogeneous stack."""
    return _subject("intersection_only", _intersection_only)


# -- POL-002: nested stacks ignored --------------------------------------------------------------


def _skips_nested(*modules: Any, partial_tolerant: bool = True) -> Any:
    backbone, heads = modules[0], modules[1:]

    def policy(td: Any) -> Any:
        _ref(backbone, partial_tolerant=partial_tolerant)(td)
        if not heads:
            return td
        if isinstance(td, LazyStackedTensorDict):
            tops = [t for t in td.tensordicts if not isinstance(t, LazyStackedTensorDict)]
            if tops:
                _ref(*heads, partial_tolerant=partial_tolerant)(lazy_stack(tops, 0))
        else:
            _ref(*heads, partial_tolerant=partial_tolerant)(td)
        return td

    return policy


def skips_nested() -> Subject:
    """Runs the heads on the stack's own plain elements only, never inside a nested stack."""
    return _subject("skips_nested", _skips_nested)


# -- POL-003: outputs written to the wrong elements ---------------------------------------------


def _permutes_actions(*modules: Any, partial_tolerant: bool = True) -> Any:
    inner = _ref(*modules, partial_tolerant=partial_tolerant)

    def policy(td: Any) -> Any:
        inner(td)
        served = [leaf for leaf in _leaves(td) if "action" in leaf.keys()]
        actions = [leaf.get("action").clone() for leaf in served]
        for leaf, action in zip(served, actions[1:] + actions[:1], strict=True):
            leaf.set("action", action)
        return td

    return policy


def permutes_actions() -> Subject:
    """Writes each element's action into the next served element (a rotation)."""
    return _subject("permutes_actions", _permutes_actions)


# -- POL-004: backbone per element --------------------------------------------------------------


def _backbone_per_element(*modules: Any, partial_tolerant: bool = True) -> Any:
    backbone, heads = modules[0], modules[1:]

    def policy(td: Any) -> Any:
        for leaf in _leaves(td):
            _ref(backbone, partial_tolerant=partial_tolerant)(leaf)
        if heads:
            _ref(*heads, partial_tolerant=partial_tolerant)(td)
        return td

    return policy


def backbone_per_element() -> Subject:
    """Runs the shared backbone once per element instead of once on the whole stack."""
    return _subject("backbone_per_element", _backbone_per_element)


# -- POL-005: strict mode -----------------------------------------------------------------------


def _ignores_strict(*modules: Any, partial_tolerant: bool = True) -> Any:
    return _ref(*modules, partial_tolerant=True)


def ignores_strict() -> Subject:
    """Ignores partial_tolerant=False: a missing key is skipped silently."""
    return _subject("ignores_strict", _ignores_strict)


def _vague_keyerror(*modules: Any, partial_tolerant: bool = True) -> Any:
    inner = _ref(*modules, partial_tolerant=partial_tolerant)

    def policy(td: Any) -> Any:
        try:
            return inner(td)
        except KeyError:
            raise KeyError("a module's input is missing") from None

    return policy


def vague_keyerror() -> Subject:
    """Raises KeyError for a missing key without naming the key."""
    return _subject("vague_keyerror", _vague_keyerror)


# -- POL-006: heads on elements that lack their keys --------------------------------------------


def _zero_fills_missing(*modules: Any, partial_tolerant: bool = True) -> Any:
    inner = _ref(*modules, partial_tolerant=partial_tolerant)

    def policy(td: Any) -> Any:
        inner(td)
        leaves = _leaves(td)
        served = [leaf for leaf in leaves if "action" in leaf.keys()]
        if served:
            like = served[0].get("action")
            for leaf in leaves:
                if "action" not in leaf.keys():
                    leaf.set("action", torch.zeros_like(like))
        return td

    return policy


def zero_fills_missing() -> Subject:
    """Gives every element no head served a zero action."""
    return _subject("zero_fills_missing", _zero_fills_missing)


def _head_on_all(*modules: Any, partial_tolerant: bool = True) -> Any:
    backbone, heads = modules[0], modules[1:]

    def policy(td: Any) -> Any:
        _ref(backbone, partial_tolerant=partial_tolerant)(td)
        leaves = _leaves(td)
        for head in heads:
            filled = []
            for key in head.in_keys:
                holders = [leaf for leaf in leaves if key in leaf.keys(include_nested=True)]
                if not holders:
                    continue
                for leaf in leaves:
                    if key not in leaf.keys(include_nested=True):
                        leaf.set(key, torch.zeros_like(holders[0].get(key)))
                        filled.append((leaf, key))
            _ref(head, partial_tolerant=partial_tolerant)(td)
            for leaf, key in filled:
                del leaf[key]
        return td

    return policy


def head_on_all() -> Subject:
    """Runs every head on every element, zero-filling the head's inputs an element lacks."""
    return _subject("head_on_all", _head_on_all)


# -- POL-007: module order ----------------------------------------------------------------------


def _reversed_order(*modules: Any, partial_tolerant: bool = True) -> Any:
    return _ref(*reversed(modules), partial_tolerant=partial_tolerant)


def reversed_order() -> Subject:
    """Runs the modules last to first."""
    return _subject("reversed_order", _reversed_order)


# -- POL-008: copies ----------------------------------------------------------------------------


def _returns_copy(*modules: Any, partial_tolerant: bool = True) -> Any:
    inner = _ref(*modules, partial_tolerant=partial_tolerant)

    def policy(td: Any) -> Any:
        return inner(td.clone())

    return policy


def returns_copy() -> Subject:
    """Runs on a clone of its input and returns the clone: the originals never get the action."""
    return _subject("returns_copy", _returns_copy)


# -- POL-009: heads per element -----------------------------------------------------------------


def _heads_per_element(*modules: Any, partial_tolerant: bool = True) -> Any:
    backbone, heads = modules[0], modules[1:]

    def policy(td: Any) -> Any:
        _ref(backbone, partial_tolerant=partial_tolerant)(td)
        if heads:
            for leaf in _leaves(td):
                _ref(*heads, partial_tolerant=partial_tolerant)(leaf)
        return td

    return policy


def heads_per_element() -> Subject:
    """Runs the heads element by element (a Python loop) instead of once per group."""
    return _subject("heads_per_element", _heads_per_element)


# The property each mutant was written for comes first; the others fail on (nearly) every input
# with a heterogeneous or nested stack, so they are listed too.
KILLS = {
    "intersection_only": ["POL-001", "POL-002", "POL-003", "POL-008", "POL-009"],
    "skips_nested": ["POL-002", "POL-009"],
    "permutes_actions": ["POL-003"],
    "backbone_per_element": ["POL-004"],
    "ignores_strict": ["POL-005"],
    "vague_keyerror": ["POL-005"],
    "zero_fills_missing": ["POL-006", "POL-003"],
    "head_on_all": ["POL-006", "POL-003", "POL-009"],
    "reversed_order": ["POL-007", "POL-001", "POL-002", "POL-008", "POL-009"],
    "returns_copy": ["POL-008"],
    "heads_per_element": ["POL-009"],
}

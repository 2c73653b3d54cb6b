"""Mutants of the stacking capability."""

from __future__ import annotations

from tensordict import LazyStackedTensorDict

from conformance.subject import Subject


def _copying_stack(tds, dim):
    return LazyStackedTensorDict.lazy_stack([td.clone() for td in tds], dim)


def stack_copies() -> Subject:
    """A lazy stack that clones its inputs: indexing returns copies, not the originals."""
    return Subject("stack_copies", lazy_stack=_copying_stack)


KILLS = {"stack_copies": ["STK-001"]}

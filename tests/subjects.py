"""Small subjects for the kit's own black-box tests (not mutants: these are well-behaved)."""

from __future__ import annotations

from conformance.subject import Subject


def stack_only() -> Subject:
    """tensordict's real lazy stack and nothing else: every other property must skip."""
    from conformance.subjects.torchrl import lazy_stack_function

    return Subject("stack_only", lazy_stack=lazy_stack_function())


def broken_factory() -> Subject:
    """A subject factory that raises while building the subject."""
    raise RuntimeError("this factory is broken on purpose")


NOT_A_SUBJECT = 42

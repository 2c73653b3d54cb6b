"""Small subjects for the kit's own black-box tests (not mutants: these are well-behaved)."""

from __future__ import annotations

from conformance.subject import Subject


def stack_only() -> Subject:
    """A conformant lazy stack (tensordict's, with its three deviations fixed) and nothing else:
    every STK property passes and every other property must skip."""
    from tests.mutants.stacking import ConformantStack

    return Subject("stack_only", lazy_stack=ConformantStack.stack)


def broken_factory() -> Subject:
    """A subject factory that raises while building the subject."""
    raise RuntimeError("this factory is broken on purpose")


NOT_A_SUBJECT = 42

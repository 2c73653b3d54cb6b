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


def counting_spawner() -> Subject:
    """The reference's serial env declared as ``spawns`` (as if each construction started
    workers); it appends a line to the file named by ``COUNT_FILE`` per construction, so a test
    can count the examples a property ran."""
    import os

    from reference import SerialMultiTaskEnv

    def serial_env(makers):  # type: ignore[no-untyped-def]
        with open(os.environ["COUNT_FILE"], "a") as f:
            f.write("built\n")
        return SerialMultiTaskEnv(makers)

    return Subject("counting_spawner", serial_env=serial_env, spawns=("serial_env",))

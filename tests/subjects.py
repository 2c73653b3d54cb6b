"""Small subjects for the kit's own black-box tests (not mutants: these are well-behaved)."""

from __future__ import annotations

from conformance.subject import Subject


def stack_only() -> Subject:
    """A conformant lazy stack (tensordict's, with the deviations the kit finds fixed) and
    nothing else: every STK property passes and every other property must skip."""
    from tests.mutants.stacking import ConformantStack

    return Subject("stack_only", lazy_stack=ConformantStack.stack)


def configurable_stack(*, copies: bool = False) -> Subject:
    """``stack_only`` with one option: ``copies=True`` clones the inputs (as the ``stack_copies``
    mutant does), so STK-001 fails in that configuration only."""
    from tests.mutants.stacking import ConformantStack, _copying_stack

    return Subject("configurable_stack",
                   lazy_stack=_copying_stack if copies else ConformantStack.stack)


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


_TORCHRL_PARTS = ("tensordict.lazy_stack", "tensordict.TensorDictSequential", "torchrl.SerialEnv")


def downstream() -> Subject:
    """A downstream library's subject built from tensordict's lazy stack and
    TensorDictSequential and torchrl's SerialEnv under its own name, declaring that it reuses
    them: it inherits their shipped findings."""
    from conformance.subjects.torchrl import _sequential, _serial_env, lazy_stack_function

    return Subject("downstream", lazy_stack=lazy_stack_function(), sequential=_sequential,
                   serial_env=_serial_env, uses=_TORCHRL_PARTS)


def _negate_reward(maker):  # type: ignore[no-untyped-def]
    from torchrl.envs import RewardScaling, TransformedEnv

    env = maker()  # every reward entry negated: at the root or under a group
    return TransformedEnv(env, RewardScaling(loc=0.0, scale=-1.0, in_keys=list(env.reward_keys)))


def negated_reward() -> Subject:
    """torchrl's SerialEnv with a planted defect: the last task's reward comes back negated. It
    fails properties that torchrl already deviates on (PAR-002, PAR-011) for a new reason, which
    no shipped finding may hide."""
    import functools

    from torchrl.envs import SerialEnv

    def serial_env(makers):  # type: ignore[no-untyped-def]
        makers = list(makers)
        makers[-1] = functools.partial(_negate_reward, makers[-1])
        return SerialEnv(len(makers), makers)

    return Subject("negated_reward", serial_env=serial_env, uses=_TORCHRL_PARTS)


def _loop_forever(*args: object, **kwargs: object) -> None:
    """Never returns (a Python loop: the kit's limit interrupts it between sleeps)."""
    import time

    while True:
        time.sleep(0.2)


def _start_then_loop(makers: object) -> None:
    """Starts a child process (its pid goes to the file named by ``PID_FILE``), then never
    returns: the kit must stop the child when the property hits its limit."""
    import os
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(str(child.pid))
    _loop_forever()


def loops_forever() -> Subject:
    """Every capability loops forever when called (parallel_env after starting a child)."""
    return Subject("loops_forever", lazy_stack=_loop_forever, sequential=_loop_forever,
                   serial_env=_loop_forever, parallel_env=_start_then_loop)


def loops_in_lazy_stack() -> Subject:
    return Subject("loops_in_lazy_stack", lazy_stack=_loop_forever)


def loops_in_sequential() -> Subject:
    """(with a working lazy stack: POL properties need both)"""
    from tensordict import LazyStackedTensorDict

    return Subject("loops_in_sequential", lazy_stack=LazyStackedTensorDict.lazy_stack,
                   sequential=_loop_forever)


def loops_in_serial_env() -> Subject:
    return Subject("loops_in_serial_env", serial_env=_loop_forever)


def loops_in_parallel_env() -> Subject:
    return Subject("loops_in_parallel_env", parallel_env=_start_then_loop)


def warning_stack() -> Subject:
    """The conformant lazy stack of ``stack_only``, which emits a FutureWarning on every call (a
    planted deprecation: the report lists it, and no outcome changes)."""
    import warnings

    from tests.mutants.stacking import ConformantStack

    def lazy_stack(tds, dim=0):  # type: ignore[no-untyped-def]
        warnings.warn("lazy_stack(dim=...) will be keyword-only in 9.0", FutureWarning,
                      stacklevel=1)
        return ConformantStack.stack(tds, dim)

    return Subject("warning_stack", lazy_stack=lazy_stack)

"""The built-in subject ``torchrl``: torchrl SerialEnv / ParallelEnv, tensordict's lazy stack and
``TensorDictSequential``.

Every difference between torchrl / tensordict releases that the kit must bridge lives in this
module (one place), so the suite imports and runs on each release of the version matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any


def lazy_stack_function() -> Callable[..., Any]:
    """tensordict's lazy (heterogeneous) stack across releases.

    ``tensordict.lazy_stack`` (0.6+), else ``LazyStackedTensorDict.lazy_stack``, else
    ``LazyStackedTensorDict.maybe_dense_stack``'s lazy sibling ``torch.stack`` (before 0.4
    ``torch.stack`` of tensordicts was lazy).
    """
    import tensordict

    fn = getattr(tensordict, "lazy_stack", None)
    if fn is not None:
        return fn  # type: ignore[no-any-return]
    from tensordict import LazyStackedTensorDict

    fn = getattr(LazyStackedTensorDict, "lazy_stack", None)
    if fn is not None:
        return fn  # type: ignore[no-any-return]
    import torch

    return torch.stack


def _serial_env(makers: Sequence[Callable[[], Any]]) -> Any:
    from torchrl.envs import SerialEnv

    return SerialEnv(len(makers), list(makers))


def _parallel_env(makers: Sequence[Callable[[], Any]]) -> Any:
    from torchrl.envs import ParallelEnv

    return ParallelEnv(len(makers), list(makers))


def _sequential(*modules: Any, partial_tolerant: bool = True) -> Any:
    from tensordict.nn import TensorDictSequential

    return TensorDictSequential(*modules, partial_tolerant=partial_tolerant)


def deviations_file() -> str:
    """Path of the shipped deviations file for this subject."""
    return str(resources.files("conformance.deviations") / "torchrl.toml")


def subject() -> Any:
    """Build the ``torchrl`` subject."""
    from conformance.subject import Subject

    return Subject(
        name="torchrl",
        lazy_stack=lazy_stack_function(),
        sequential=_sequential,
        serial_env=_serial_env,
        parallel_env=_parallel_env,
        description="torchrl SerialEnv / ParallelEnv(n, makers), tensordict lazy_stack, "
        "TensorDictSequential(partial_tolerant=...)",
        deviations=(deviations_file(),),
        snippet={
            "lazy_stack": "from tensordict import lazy_stack",
            "sequential": "from tensordict.nn import TensorDictSequential\n"
            "def sequential(*modules, partial_tolerant=True):\n"
            "    return TensorDictSequential(*modules, partial_tolerant=partial_tolerant)",
            "serial_env": "from torchrl.envs import SerialEnv\n"
            "def serial_env(makers):\n    return SerialEnv(len(makers), list(makers))",
            "parallel_env": "from torchrl.envs import ParallelEnv\n"
            "def parallel_env(makers):\n    return ParallelEnv(len(makers), list(makers))",
        },
    )

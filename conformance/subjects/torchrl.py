"""The built-in subject ``torchrl``: torchrl SerialEnv / ParallelEnv, tensordict's lazy stack and
``TensorDictSequential``.

Every difference between torchrl / tensordict releases that the kit must bridge lives in this
module (one place), so the suite imports and runs on each release of the version matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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

    # Explicit spawn: torchrl picks spawn only when nothing fixed multiprocessing's default before
    # it was imported; otherwise ParallelEnv silently forks.
    return ParallelEnv(len(makers), list(makers), mp_start_method="spawn")


def _sequential(*modules: Any, partial_tolerant: bool = True) -> Any:
    from tensordict.nn import TensorDictSequential

    return TensorDictSequential(*modules, partial_tolerant=partial_tolerant)


def _async_kwargs(backend: str) -> dict[str, Any]:
    """``AsyncEnvPool`` keyword arguments for ``backend`` on this torchrl release."""
    import inspect

    from torchrl.envs import AsyncEnvPool

    kwargs: dict[str, Any] = {"backend": backend, "stack": "lazy"}
    params = inspect.signature(AsyncEnvPool.__init__).parameters
    if backend == "multiprocessing" and "exchange" in params:
        kwargs["exchange"] = "queue"  # the current default, named to silence its FutureWarning
    return kwargs


def _async_subject(backend: str, name: str) -> Any:
    from conformance.subject import Subject

    try:
        kwargs = _async_kwargs(backend)
    except ImportError as exc:
        raise RuntimeError(f"torchrl {_torchrl_version()} has no AsyncEnvPool ({exc}); this "
                           f"subject needs a torchrl release that ships it") from exc

    def pool(makers: Sequence[Callable[[], Any]]) -> Any:
        from torchrl.envs import AsyncEnvPool

        # torchrl 0.14 waits 60 s for workers that do not exit on shutdown (after a task's
        # error) before terminating them, once per pool: with many failing examples a run took
        # hours.  The kit waits 5 s; the 60 s wait itself is noted in docs/subjects.md.  Set on
        # the pool classes, not the instance: a pool whose constructor raised (a task's maker
        # failed) shuts down from its __del__, during a later garbage collection.
        for cls in (AsyncEnvPool, *AsyncEnvPool.__subclasses__()):
            if isinstance(cls.__dict__.get("_SHUTDOWN_TIMEOUT"), (int, float)):
                cls._SHUTDOWN_TIMEOUT = 5.0
        return AsyncEnvPool(list(makers), **kwargs)

    call = f"    return AsyncEnvPool(list(makers), **{kwargs!r})"
    return Subject(
        name=name,
        serial_env=pool,
        parallel_env=pool,
        description=f"torchrl AsyncEnvPool(makers, backend={backend!r}, stack='lazy'); the pool "
        "stands in for both batched-env capabilities",
        uses=(f"torchrl.AsyncEnvPool.{backend}",),
        snippet={cap: f"from torchrl.envs import AsyncEnvPool\ndef {cap}(makers):\n{call}"
                 for cap in ("serial_env", "parallel_env")},
        # the multiprocessing pool spawns one worker per task on every construction
        spawns=("serial_env", "parallel_env") if backend == "multiprocessing" else (),
    )


def _torchrl_version() -> str:
    from importlib.metadata import version

    return version("torchrl")


def async_threading() -> Any:
    """Built-in subject ``torchrl-async-threading``: AsyncEnvPool on the threading backend."""
    return _async_subject("threading", "torchrl-async-threading")


def async_multiprocessing() -> Any:
    """Built-in subject ``torchrl-async-mp``: AsyncEnvPool on the multiprocessing backend."""
    return _async_subject("multiprocessing", "torchrl-async-mp")


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
        uses=("tensordict.lazy_stack", "tensordict.TensorDictSequential", "torchrl.SerialEnv",
              "torchrl.ParallelEnv"),
        snippet={
            "lazy_stack": "from tensordict import lazy_stack",
            "sequential": "from tensordict.nn import TensorDictSequential\n"
            "def sequential(*modules, partial_tolerant=True):\n"
            "    return TensorDictSequential(*modules, partial_tolerant=partial_tolerant)",
            "serial_env": "from torchrl.envs import SerialEnv\n"
            "def serial_env(makers):\n    return SerialEnv(len(makers), list(makers))",
            "parallel_env": "from torchrl.envs import ParallelEnv\n"
            "def parallel_env(makers):\n"
            "    return ParallelEnv(len(makers), list(makers), mp_start_method='spawn')",
        },
    )

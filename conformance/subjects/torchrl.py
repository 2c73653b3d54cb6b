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


def _serial_env(makers: Sequence[Callable[[], Any]], **kwargs: Any) -> Any:
    from torchrl.envs import SerialEnv

    return SerialEnv(len(makers), list(makers), **kwargs)


def _parallel_env(makers: Sequence[Callable[[], Any]], deadline: float | None = None,
                  **kwargs: Any) -> Any:
    """``ParallelEnv`` over ``makers``; ``deadline`` (the subject's deadline keyword): seconds it
    waits on a worker's answer (and, where the release takes ``shutdown_timeout``, on a worker
    to stop) before raising.  torchrl's own is ``BATCHED_PIPE_TIMEOUT`` (an environment variable
    read at import, 10,000 s by default), copied onto the env when its workers start: they are
    started here, then it is set on this env alone (the variable would also make idle workers
    exit, and applies to every env)."""
    from torchrl.envs import ParallelEnv

    # Explicit spawn: torchrl picks spawn only when nothing fixed multiprocessing's default before
    # it was imported; otherwise ParallelEnv silently forks.
    kwargs = {"mp_start_method": "spawn", **kwargs, **_shutdown_kwargs(deadline)}
    env = ParallelEnv(len(makers), list(makers), **kwargs)
    if deadline is not None:
        env.start()
        env.BATCHED_PIPE_TIMEOUT = float(deadline)
    return env


def _shutdown_kwargs(deadline: Any) -> dict[str, Any]:
    import inspect

    from torchrl.envs import ParallelEnv

    takes = "shutdown_timeout" in inspect.signature(ParallelEnv.__init__).parameters
    return {"shutdown_timeout": deadline} if deadline is not None and takes else {}


START_METHODS = ("spawn", "fork", "forkserver")


def _check_option(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"option {name}={value!r} is not one of "
                         f"{', '.join(map(repr, allowed))}")


def _call(cls: str, head: str, kwargs: dict[str, Any]) -> str:
    """The constructor call a reproducer pastes: ``cls(head, key=value, ...)``."""
    return f"{cls}({', '.join([head, *(f'{k}={v!r}' for k, v in kwargs.items())])})"


def _sequential(*modules: Any, partial_tolerant: bool = True) -> Any:
    from tensordict.nn import TensorDictSequential

    return TensorDictSequential(*modules, partial_tolerant=partial_tolerant)


def _async_kwargs(backend: str, stack: str = "lazy", exchange: str = "queue",
                  envs_per_worker: int = 1) -> dict[str, Any]:
    """``AsyncEnvPool`` keyword arguments for ``backend`` and the subject's options on this
    torchrl release."""
    import inspect

    from torchrl.envs import AsyncEnvPool

    _check_option("stack", stack, ("dense", "maybe_dense", "lazy"))
    kwargs: dict[str, Any] = {"backend": backend, "stack": stack}
    params = inspect.signature(AsyncEnvPool.__init__).parameters
    if backend == "multiprocessing":
        _check_option("exchange", exchange, ("queue", "shm", "auto"))
        if "exchange" in params:
            kwargs["exchange"] = exchange  # named even at its default: silences a FutureWarning
        elif exchange != "queue":
            raise ValueError(f"option exchange={exchange!r} needs a torchrl release whose "
                             f"AsyncEnvPool takes exchange (0.14+)")
        if not isinstance(envs_per_worker, int) or isinstance(envs_per_worker, bool) \
                or envs_per_worker < 1:
            raise ValueError(f"option envs_per_worker={envs_per_worker!r} must be a positive "
                             f"integer")
        if envs_per_worker != 1:
            if "envs_per_worker" not in params:
                raise ValueError("option envs_per_worker needs a torchrl release whose "
                                 "AsyncEnvPool takes it")
            kwargs["envs_per_worker"] = envs_per_worker
    return kwargs


def _async_subject(backend: str, name: str, **options: Any) -> Any:
    from conformance.subject import Subject

    try:
        kwargs = _async_kwargs(backend, **options)
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
        description=f"torchrl {_call('AsyncEnvPool', 'makers', kwargs)}; the pool stands in "
        "for both batched-env capabilities",
        uses=(f"torchrl.AsyncEnvPool.{backend}",),
        snippet={cap: f"from torchrl.envs import AsyncEnvPool\ndef {cap}(makers):\n{call}"
                 for cap in ("serial_env", "parallel_env")},
        # the multiprocessing pool spawns one worker per task on every construction
        spawns=("serial_env", "parallel_env") if backend == "multiprocessing" else (),
    )


def _torchrl_version() -> str:
    from importlib.metadata import version

    return version("torchrl")


def async_threading(*, stack: str = "lazy") -> Any:
    """Built-in subject ``torchrl-async-threading``: AsyncEnvPool on the threading backend.

    Options: ``stack`` ('lazy', 'maybe_dense' or 'dense': how the pool stacks its tasks' data).
    """
    return _async_subject("threading", "torchrl-async-threading", stack=stack)


def async_multiprocessing(*, stack: str = "lazy", exchange: str = "queue",
                          envs_per_worker: int = 1) -> Any:
    """Built-in subject ``torchrl-async-mp``: AsyncEnvPool on the multiprocessing backend.

    Options: ``stack`` (as for the threading pool), ``exchange`` ('queue', 'shm' or 'auto': how
    workers send their data back) and ``envs_per_worker`` (tasks per worker process).
    """
    return _async_subject("multiprocessing", "torchrl-async-mp", stack=stack, exchange=exchange,
                          envs_per_worker=envs_per_worker)


def subject(*, use_buffers: bool | None = None, mp_start_method: str = "spawn",
            share_individual_td: bool | None = None) -> Any:
    """Build the ``torchrl`` subject.

    Options (torchrl's own defaults when None): ``use_buffers`` (ParallelEnv: exchange data
    through shared buffers), ``mp_start_method`` (ParallelEnv: 'spawn', 'fork' or 'forkserver')
    and ``share_individual_td`` (SerialEnv: one tensordict per task, lazily stacked).
    """
    from functools import partial

    from conformance.subject import Subject

    _check_option("mp_start_method", mp_start_method, START_METHODS)
    for key, value in (("use_buffers", use_buffers), ("share_individual_td", share_individual_td)):
        _check_option(key, value, (None, True, False))
    par = {"mp_start_method": mp_start_method}
    shutdown = "'shutdown_timeout': deadline" if _shutdown_kwargs(1.0) else ""
    if use_buffers is not None:
        par["use_buffers"] = use_buffers
    ser = {} if share_individual_td is None else {"share_individual_td": share_individual_td}
    return Subject(
        name="torchrl",
        lazy_stack=lazy_stack_function(),
        sequential=_sequential,
        serial_env=partial(_serial_env, **ser) if ser else _serial_env,
        parallel_env=partial(_parallel_env, **par),
        deadline_keyword="deadline",
        description=f"torchrl {_call('SerialEnv', 'n, makers', ser)} / "
        f"{_call('ParallelEnv', 'n, makers', par)}, tensordict lazy_stack, "
        "TensorDictSequential(partial_tolerant=...)",
        uses=("tensordict.lazy_stack", "tensordict.TensorDictSequential", "torchrl.SerialEnv",
              "torchrl.ParallelEnv", "torchrl.data.MultiCategorical"),
        snippet={
            "lazy_stack": "from tensordict import lazy_stack",
            "sequential": "from tensordict.nn import TensorDictSequential\n"
            "def sequential(*modules, partial_tolerant=True):\n"
            "    return TensorDictSequential(*modules, partial_tolerant=partial_tolerant)",
            "serial_env": "from torchrl.envs import SerialEnv\n"
            "def serial_env(makers):\n"
            f"    return {_call('SerialEnv', 'len(makers), list(makers)', ser)}",
            "parallel_env": "from torchrl.envs import ParallelEnv\n"
            "def parallel_env(makers, deadline=None):\n"
            f"    more = {{}} if deadline is None else {{{shutdown}}}\n"
            f"    env = {_call('ParallelEnv', 'len(makers), list(makers)', par)[:-1]}, **more)\n"
            "    if deadline is not None:  # torchrl copies BATCHED_PIPE_TIMEOUT onto the env "
            "when its workers start\n"
            "        env.start()\n"
            "        env.BATCHED_PIPE_TIMEOUT = float(deadline)\n"
            "    return env",
        },
    )

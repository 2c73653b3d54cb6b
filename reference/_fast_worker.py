"""Speed, worker side: the chunk commands of a random-action rollout (reference/fast_batched.py).

The parent writes the actions of up to ``rows`` steps into a task's :class:`Chunk` (shared
memory) and sends one "chunk" message; the worker runs those steps, and the resets between them,
back to back. Stdlib imports only at module level, as in ``reference._worker``: a worker imports
this module (its entry point is :func:`main`) before it can report any failure.
"""

from __future__ import annotations

from multiprocessing.connection import Connection
from typing import Any

from reference import _worker


class Chunk:
    """A task's buffers for up to ``rows`` steps run back to back: row t holds ``act`` (step t's
    action, written by the parent), ``out`` (step t's output) and, where ``fresh[t]`` is True,
    ``rst``: the reset output the task started step t from. ``done_keys``: the task's done leaves.
    Shared memory, allocated by the parent (:meth:`zeros`); row views looked up once."""

    def __init__(self, tensors: tuple[Any, ...], done_keys: list[Any]) -> None:
        self.tensors = tensors
        self.act, self.out, self.rst, self.fresh = tensors
        self.done_keys = done_keys
        rows = len(self.fresh)
        self.leaves = [{w: [(k, td.get(k)[t]) for k in td.keys(True, True)]
                        for w, td in (("step", self.out), ("reset", self.rst))}
                       for t in range(rows)]
        self.done = [[self.out.get(k)[t] for k in done_keys] for t in range(rows)]

    @classmethod
    def zeros(cls, spec: tuple[Any, ...], rows: int) -> Chunk:
        """Zeroed buffers in shared memory for a task with ``spec`` (``_worker.specs``)."""
        import torch

        obs, action, reward, done = spec
        tensors = (action.zero((rows,)),
                   obs.zero((rows,)).update(reward.zero((rows,))).update(done.zero((rows,))),
                   obs.zero((rows,)).update(done.zero((rows,))),
                   torch.zeros(rows, dtype=torch.bool))
        for t in tensors:
            t.share_memory_()
        return cls(tensors, list(done.keys(True, True)))

    def run(self, env: Any, step: Any, n: int, reset_first: bool) -> None:
        """Step ``n`` times with actions ``act[:n]``; before step t, reset the env if the step
        before ended its episode (before step 0: if ``reset_first``), exactly as the rollout loop
        resets a done task after recording its step. Stops at the first exception."""
        fresh = reset_first
        for t in range(n):
            self.fresh[t] = fresh
            if fresh:
                _worker.copy_in("reset", self.leaves[t]["reset"], env.reset())
            _worker.copy_in("step", self.leaves[t]["step"], step(self.act[t].clone()))
            fresh = any(bool(flag.any()) for flag in self.done[t])


def stepper(env: Any) -> Any:
    """``td -> env.step(td)["next"]``. Speed: for an EnvBase that keeps EnvBase.step, only its
    ``_step`` and ``_step_proc_data`` (our action-only inputs never need its checks and "next"
    bookkeeping): the same output, 5-20% less time per step."""
    from torchrl.envs import EnvBase

    if type(env).step is EnvBase.step and hasattr(env, "_step_proc_data"):
        return lambda td: env._step_proc_data(env._step(td))
    return lambda td: env.step(td).get("next")


class ChunkHandler:
    """``_worker.handle`` with "step" through :func:`stepper`, plus two commands: "chunk_buffers"
    (arg: a Chunk's ``tensors`` and ``done_keys``, shared by the parent) and "chunk" (arg:
    ``(n, reset_first)`` for Chunk.run)."""

    def __init__(self) -> None:
        self.chunk: Chunk | None = None
        self.step: Any = None  # stepper(env), made on the first command (the env is built then)

    def __call__(self, env: Any, command: str, arg: Any, ex: _worker.Exchange) -> Any:
        if self.step is None:
            self.step = stepper(env)
        if command == "step":  # (a clone: the env may keep its input)
            return ex.write("step", self.step(ex.act.clone()))
        if command == "chunk_buffers":
            self.chunk = Chunk(*arg)
            return None
        if command == "chunk" and self.chunk is not None:
            return self.chunk.run(env, self.step, *arg)
        return _worker.handle(env, command, arg, ex)


def main(conn: Connection, maker_bytes: bytes, environ: dict[str, str] | None = None) -> None:
    """``_worker.main`` serving the chunk commands too."""
    _worker.main(conn, maker_bytes, environ, ChunkHandler())

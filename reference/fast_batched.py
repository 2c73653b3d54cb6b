"""Speed, parent side: the public ``ParallelMultiTaskEnv``, the core's process-parallel env
(``reference.batched._ParallelMultiTaskEnv``) with the same results, faster.

* Workers fork from a forkserver that preloaded torch(rl), not spawned (each importing it anew).
* A task's current data after a step is its shared buffer, not a copy.
* Workers step an EnvBase through ``_step`` + ``_step_proc_data`` (:func:`_fast_worker.stepper`).
* ``rollout`` without a policy: the parent draws every step's actions first and each worker runs
  its steps and resets back to back in chunks (:mod:`reference._fast_worker`): one message per
  chunk, not per step. PAR-012 and tests/reference/test_parallel.py prove it equals the loop.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import torch
from tensordict import TensorDict, TensorDictBase, lazy_stack

from reference import _fast_worker, _worker
from reference.batched import Maker, _ParallelMultiTaskEnv, _refuse_exclusive

__all__ = ["PRELOAD", "ParallelMultiTaskEnv"]

# The forkserver imports these once, so workers fork from it ready (milliseconds, not the seconds
# "spawn" takes to import torch(rl)). An error other than ImportError kills it: see _launch.
PRELOAD = ["torch", "tensordict", "torchrl.envs", "reference._worker", "reference._fast_worker"]


class ParallelMultiTaskEnv(_ParallelMultiTaskEnv):
    """The core's process-parallel env (one worker per task, every wait with a deadline, a dead or
    silent worker raises WorkerError) whose ``start_method`` defaults to a forkserver preloading
    :data:`PRELOAD` (its modules read the environment variables of the forkserver's start)."""

    # Most steps a worker runs per message in a random-action rollout (rows of its Chunk).
    CHUNK = 64

    def __init__(self, makers: Iterable[Maker], *, start_method: str = "forkserver",
                 timeout: float = 30.0, start_timeout: float | None = None) -> None:
        if start_method == "forkserver":
            mp.get_context(start_method).set_forkserver_preload(PRELOAD)
        self._chunks: list[_fast_worker.Chunk] | None = None
        super().__init__(makers, start_method=start_method, timeout=timeout,
                         start_timeout=start_timeout)

    def _launch(self, i: int, child: Connection, blob: bytes) -> BaseProcess:
        """Start task i's worker (serving the chunk commands too); if the forkserver died (a
        preloaded module raised), spawn it: the worker then imports that module itself and
        reports the error with its traceback."""
        for ctx in (self._ctx, mp.get_context("spawn")):
            proc = ctx.Process(target=_fast_worker.main, args=(child, blob, dict(os.environ)),
                               daemon=True, name=f"reference-task-{i}")
            try:
                proc.start()
                break
            except (EOFError, ConnectionError):
                if ctx.get_start_method() != "forkserver":
                    raise
        return proc

    def _snapshot(self, i: int, result: TensorDictBase) -> TensorDictBase:
        if self._ex[i].loose["reset"]:  # non-tensor entries live outside the buffer
            return super()._snapshot(i, result)
        # No copy: the buffer holds this data until task i's next reset or step replaces it.
        return self._ex[i].views["reset"]

    def rollout(self, max_steps: int, policy: Callable[[TensorDictBase], Any] | None = None, *,
                return_contiguous: bool = False, break_when_any_done: bool = False,
                auto_reset: bool = True, tensordict: TensorDictBase | None = None,
                ) -> TensorDictBase:
        """The serial env's rollout, with the same result. Without a policy, with ``auto_reset``
        and no early stop, task i's steps depend only on its own actions, so the actions are
        drawn first (the same draws, in the same order, as per step) and every worker runs its
        steps and resets back to back, in chunks: one message per chunk, not per step (tasks
        with batch size [] and tensors only; others take the serial env's loop).
        Returns lazy stack over tasks of ``[max_steps]`` tensordicts (``out[:, t]`` is step t)."""
        chunkable = not self.task_batch and not any(ex.loose["step"] for ex in self._ex)
        if (policy is not None or break_when_any_done or not auto_reset or max_steps < 1
                or not chunkable):  # (chunks: tensors only, and a task resets as a whole)
            return super().rollout(max_steps, policy, return_contiguous=return_contiguous,
                                   break_when_any_done=break_when_any_done,
                                   auto_reset=auto_reset, tensordict=tensordict)
        roots = list(self.reset(tensordict).unbind(0))
        actions = self._draw_actions(max_steps)
        nexts: list[list[TensorDictBase]] = [[] for _ in range(self.num_tasks)]
        resets: list[list[tuple[torch.Tensor, TensorDictBase]]] = [[] for _ in
                                                                   range(self.num_tasks)]
        done_before = [False] * self.num_tasks
        t, n = 0, 1
        while t < max_steps:
            n = min(n, max_steps - t, self.CHUNK)
            chunks = self._chunk_buffers()
            for i, chunk in enumerate(chunks):
                chunk.act[:n].copy_(actions[i][t:t + n])
            start = time.monotonic()
            self._run({i: ("chunk", (n, done_before[i])) for i in range(self.num_tasks)})
            took = time.monotonic() - start
            for i, chunk in enumerate(chunks):
                nexts[i].append(chunk.out[:n].clone())
                rows = chunk.fresh[:n].nonzero().reshape(-1)
                if len(rows):
                    resets[i].append((t + rows, chunk.rst[rows]))  # (indexing copies)
                done_before[i] = any(bool(flag.any()) for flag in chunk.done[n - 1])
            t += n
            if took * 16 < self._timeout:  # chunks grow while well inside one answer's deadline
                n *= 2
        tasks = []
        for i in range(self.num_tasks):
            nxt = torch.cat(nexts[i], 0)
            root = torch.cat([roots[i].unsqueeze(0), nxt[:-1].select(*self._keep[i])], 0)
            for rows, values in resets[i]:
                root[rows] = values
            root.update(actions[i]).set("next", nxt)
            tasks.append(root.refine_names("time"))
            self._current[i] = nxt[-1].select(*self._keep[i]).clone()
        if not return_contiguous:
            return lazy_stack(tasks, 0)
        _refuse_exclusive(tasks)
        return torch.stack(tasks, 0)

    def _draw_actions(self, steps: int) -> list[TensorDictBase]:
        """``steps`` draws of :meth:`rand_action`'s, in its order; task i's as one tensordict
        with batch size ``[steps]``."""
        if self._action_leaves is None:
            draws = [self.full_action_spec.rand().unbind(0) for _ in range(steps)]
            return [torch.stack([d[i] for d in draws], 0) for i in range(self.num_tasks)]
        drawn: dict[Any, list[torch.Tensor]] = {key: [] for key, _ in self._action_leaves}
        for _ in range(steps):
            for key, leaf in self._action_leaves:
                drawn[key].append(leaf.rand())
        stacked = {key: torch.stack(values, 1) for key, values in drawn.items()}
        spec = self.full_action_spec
        return [TensorDict({k: v[i].clone() for k, v in stacked.items()},
                           [steps, *spec.shape[1:]], spec.device)
                for i in range(self.num_tasks)]

    def _chunk_buffers(self) -> list[_fast_worker.Chunk]:
        """Each task's Chunk, allocated in shared memory and sent to its worker on first use."""
        if self._chunks is None:
            chunks = [_fast_worker.Chunk.zeros(tuple(getattr(s, p) for p in _worker.PARTS),
                                               self.CHUNK) for s in self.task_specs]
            self._run({i: ("chunk_buffers", (c.tensors, c.done_keys))
                       for i, c in enumerate(chunks)})
            self._chunks = chunks
        return self._chunks

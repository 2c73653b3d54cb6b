"""Multi-task batched envs: one env per task, run in this process or one worker process each.

torchrl's ``SerialEnv`` / ``ParallelEnv`` API and semantics given a list of makers; data is a lazy
stack along dim 0 whose element i is task i's TensorDict. Deliberate differences from torchrl 0.14:
rollout's ``break_when_any_done`` defaults to False; moving "next" to the root takes every
observation key of each task (SerialEnv: only shared ones) and drops the action; ``reset(td)``
returns a new stack (torchrl updates ``td``); a task env's exception closes the env: WorkerError.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import pickle
import time
import traceback
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar

import torch
from tensordict import LazyStackedTensorDict, TensorDict, TensorDictBase, lazy_stack
from torchrl.data import Composite, TensorSpec

from reference import _worker
from reference.errors import SpecMismatchError, WorkerError

__all__ = ["EnvSpecs", "SerialMultiTaskEnv", "check_shared_specs"]

Maker = Callable[[], Any]
_Env = TypeVar("_Env", bound="_MultiTaskEnv")
_FALSE = torch.tensor(False)  # the default of an absent done leaf, allocated once


@dataclass(frozen=True)
class EnvSpecs:
    """One task's specs: its env's ``full_{observation,action,reward,done}_spec`` (clones)."""

    observation: Composite
    action: Composite
    reward: Composite
    done: Composite

    def leaves(self) -> dict[Any, TensorSpec]:
        """Every leaf key of the four specs mapped to its spec."""
        return {k: part[k] for part in (self.observation, self.action, self.reward, self.done)
                for k in part.keys(True, True)}


def check_shared_specs(specs: Sequence[EnvSpecs]) -> None:
    """Raise SpecMismatchError if the tasks' batch sizes differ, or a leaf key present in every
    task has two shapes, dtypes or spec classes (e.g. Bounded and Unbounded)."""
    for i, s in enumerate(specs[1:], 1):
        if s.observation.shape != specs[0].observation.shape:
            raise SpecMismatchError(
                f"task 0 has batch size {list(specs[0].observation.shape)} and task {i} has "
                f"{list(s.observation.shape)}; the tasks of a batched env need one batch size")
    leaves = [s.leaves() for s in specs]
    for key in [k for k in leaves[0] if all(k in lv for lv in leaves)]:
        first = leaves[0][key]
        for i, lv in enumerate(leaves[1:], 1):
            if (lv[key].shape, lv[key].dtype) != (first.shape, first.dtype):
                raise SpecMismatchError(
                    f"key {key!r} is shared by all tasks but task 0 has shape="
                    f"{tuple(first.shape)} dtype={first.dtype} and task {i} has shape="
                    f"{tuple(lv[key].shape)} dtype={lv[key].dtype}; rename the key per task or "
                    "make the shapes and dtypes agree")
            if type(lv[key]) is not type(first):
                raise SpecMismatchError(
                    f"key {key!r} is shared by all tasks but task 0's spec is "
                    f"{type(first).__name__} and task {i}'s is {type(lv[key]).__name__}; rename "
                    "the key per task or give both tasks one spec class")


def _elements(td: TensorDictBase, n: int) -> list[TensorDictBase]:
    """Per-task elements (``unbind(0)``: a lazy stack's own tensordicts)."""
    if td.batch_size[:1] != torch.Size([n]):
        raise ValueError(f"expected a tensordict with batch_size [{n}, ...] (one element per task)"
                         f", got {list(td.batch_size)}")
    return list(td.unbind(0))


def _refuse_exclusive(tasks: list[TensorDictBase]) -> None:
    """ValueError naming the task-exclusive keys, if the tasks' tensordicts have any."""
    keys = [set(e.keys(True, True)) for e in tasks]
    exclusive = set.union(*keys) - set.intersection(*keys)
    if exclusive:
        raise ValueError("return_contiguous=True needs every key shared by all tasks; "
                         f"task-exclusive keys: {sorted(map(str, exclusive))}")


def _restack(td: TensorDictBase, elements: list[TensorDictBase]) -> TensorDictBase:
    """Return ``td`` when writes into ``elements`` show through it, else a new lazy stack."""
    if isinstance(td, LazyStackedTensorDict) and td.stack_dim == 0:
        return td
    return lazy_stack(elements, 0)


class _MultiTaskEnv:
    """Shared logic. Subclasses provide ``_start`` (returns the specs, sets ``_ex``: one
    ``_worker.Exchange`` per task), ``_run({task: (command, arg)})`` (commands "reset", "step",
    "set_seed"; returns fresh results per task), ``close`` and ``is_closed``."""

    def __init__(self, makers: Iterable[Maker]) -> None:
        self._makers = list(makers)
        if not self._makers:
            raise ValueError("a multi-task env needs at least one maker")
        self.num_tasks = len(self._makers)
        specs = self._start()
        try:
            check_shared_specs(specs)
        except SpecMismatchError:
            self.close()
            raise
        self.task_batch = specs[0].observation.shape  # each task's own batch size: [] or [k]
        self.batch_size = torch.Size([self.num_tasks, *self.task_batch])
        self.task_specs: list[EnvSpecs] = specs
        for part in _worker.PARTS:  # full_observation_spec = stack of the tasks' specs, etc.
            setattr(self, f"full_{part}_spec", torch.stack([getattr(s, part) for s in specs], 0))
        self.observation_spec, self.done_spec = self.full_observation_spec, self.full_done_spec
        self.action_spec = self._single_leaf("action")
        self.reward_spec = self._single_leaf("reward")
        self._current: list[TensorDictBase | None] = [None] * self.num_tasks
        self._action_keys = [list(s.action.keys(True, True)) for s in specs]  # per task, read once
        self._done_keys = [list(s.done.keys(True, True)) for s in specs]
        self._keep = [[*s.observation.keys(True, True), *s.done.keys(True, True)] for s in specs]
        self._action_leaves = (list(self.full_action_spec.items(True, True))
                               if type(self.full_action_spec) is Composite else None)

    def _single_leaf(self, part: str) -> TensorSpec:
        """The stacked leaf spec when every task has the one leaf ``part``, else the full spec."""
        if any(list(getattr(s, part).keys(True, True)) != [part] for s in self.task_specs):
            return getattr(self, f"full_{part}_spec")
        return torch.stack([getattr(s, part)[part] for s in self.task_specs], 0)

    def _fail(self, i: int, what: str, err: BaseException) -> WorkerError:
        tb = traceback.format_exc()
        self.close()
        return WorkerError(f"task {i}: {what} raised {type(err).__name__}: {err}", i, tb)

    def __enter__(self: _Env) -> _Env:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self, tensordict: TensorDictBase | None = None) -> LazyStackedTensorDict:
        """Reset the tasks selected by a bool ``"_reset"`` entry (all when absent); return a new
        lazy stack of each task's reset output, or current observations and done flags (its last
        step's "next"; values in ``tensordict`` are not read)."""
        flag = None if tensordict is None else tensordict.get("_reset", None)
        calls = {}
        for i, rows in enumerate(self._reset_rows(flag)):  # rows: task i's own batch shape
            if rows.all():
                calls[i] = ("reset", None)
            elif rows.any():  # some rows of a batched task
                calls[i] = ("reset", rows)
        for i, out in self._run(calls).items():
            self._current[i] = out
        never = [i for i, cur in enumerate(self._current) if cur is None]
        if never:
            raise RuntimeError(f"task {never[0]} was never reset: include it in \"_reset\"")
        return lazy_stack([cur.clone() for cur in self._current], 0)

    def _reset_rows(self, flag: torch.Tensor | None) -> list[torch.Tensor]:
        """Per task, a bool mask of its batch shape: the rows a ``"_reset"`` flag selects (a
        scalar: all tasks; one flag per task: all its rows; else one per row, any over the rest)."""
        n, width = self.num_tasks, self.task_batch.numel()
        if flag is None:
            return [torch.ones(self.task_batch, dtype=torch.bool)] * n
        if flag.dtype != torch.bool:
            raise TypeError(f'"_reset" must be a bool tensor, got dtype {flag.dtype}')
        per = flag.expand(n) if flag.ndim == 0 else flag
        per = per.reshape(n, -1)
        if per.shape[1] == 1:
            per = per.expand(n, width)
        elif per.shape[1] % width:
            raise ValueError(f'"_reset" of shape {list(flag.shape)} does not fit batch size '
                             f"{list(self.batch_size)}: give one flag per task or per row")
        return list(per.reshape(n, width, -1).any(-1).reshape(n, *self.task_batch))

    def step(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Step every task with its element's action keys and write the result under "next" of
        each element; return the input if it is a lazy stack along dim 0, else a new lazy stack."""
        elements = _elements(tensordict, self.num_tasks)
        calls = {}
        for i, element in enumerate(elements):
            inputs = {}  # action key -> value; no copy: _run copies it into the task's buffer
            for key in self._action_keys[i]:
                inputs[key] = element.get(key, None)
                if inputs[key] is None:
                    raise KeyError(f"step: element {i} has no action entry {key!r}")
            calls[i] = ("step", inputs)
        results = self._run(calls)
        for i, element in enumerate(elements):
            element.set("next", results[i])
            self._current[i] = self._snapshot(i, results[i])
        return _restack(tensordict, elements)

    def _snapshot(self, i: int, result: TensorDictBase) -> TensorDictBase:
        """Task i's current data after a step: a copy of its observations and done flags."""
        return result.select(*self._keep[i]).clone()

    def _step_mdp(self, tensordict: TensorDictBase) -> LazyStackedTensorDict:
        """Next root: each element's "next" observations and done flags, sharing their tensors
        like torchrl's step_mdp (no copy: nothing writes them in place)."""
        elements = enumerate(_elements(tensordict, self.num_tasks))
        return lazy_stack([e.get("next").select(*self._keep[i]) for i, e in elements], 0)

    def _done(self, tensordict: TensorDictBase) -> torch.Tensor:
        """Per task and row (shape ``batch_size``): whether any of its done leaves (done,
        terminated, truncated; at the root or nested, with group dims) is True."""
        n, dims = self.num_tasks, len(self.task_batch)
        rows = torch.zeros(self.batch_size, dtype=torch.bool)
        for i, e in enumerate(_elements(tensordict, n)):
            for k in self._done_keys[i]:
                flag = e.get(k, _FALSE)
                rows[i] |= flag.reshape(*flag.shape[:dims], -1).any(-1) if flag.ndim else flag
        return rows

    def _maybe_reset(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Reset (via a "_reset" mask) exactly the tasks (rows) whose element is done."""
        done = self._done(tensordict)
        if not done.any():
            return tensordict
        return self.reset(tensordict.set("_reset", done.unsqueeze(-1)))

    def rand_action(self, tensordict: TensorDictBase | None = None) -> TensorDictBase:
        """Draw one sample of the stacked action spec (global RNG, like torchrl) and write task i's
        part into element i of ``tensordict`` (or of a new lazy stack)."""
        if self._action_leaves is None:  # a lazily stacked spec (the tasks' action specs differ)
            parts = [part.clone() for part in self.full_action_spec.rand().unbind(0)]
        else:  # Composite.rand's draws, in its (depth-first) order, without building a TensorDict
            drawn = [(key, leaf.rand()) for key, leaf in self._action_leaves]
            spec = self.full_action_spec
            parts = [TensorDict({k: v[i].clone() for k, v in drawn}, spec.shape[1:], spec.device)
                     for i in range(self.num_tasks)]
        if tensordict is None:
            return lazy_stack(parts, 0)
        elements = _elements(tensordict, self.num_tasks)
        for element, part in zip(elements, parts, strict=True):
            element.update(part)
        return _restack(tensordict, elements)

    def set_seed(self, seed: int) -> int:
        """Seed task 0 with ``seed`` and task i with what task i-1's ``env.set_seed`` returned
        (torchrl's chaining); return the seed returned by the last task."""
        for i in range(self.num_tasks):
            seed = self._run({i: ("set_seed", seed)})[i]
        return seed

    def rollout(self, max_steps: int, policy: Callable[[TensorDictBase], Any] | None = None, *,
                return_contiguous: bool = False, break_when_any_done: bool = False,
                auto_reset: bool = True, tensordict: TensorDictBase | None = None,
                ) -> TensorDictBase:
        """torchrl's rollout: [reset(tensordict)], then per step act (policy or random), step,
        record, move "next" to the root, reset the done tasks (or stop if ``break_when_any_done``).
        Returns the steps stacked after the batch dims, as torchrl does (``out[..., t]`` is step
        t; ``out[:, t]`` for tasks of batch size [])."""
        if auto_reset:
            td = self.reset(tensordict)
        elif tensordict is None:
            raise RuntimeError("rollout(auto_reset=False) needs the tensordict to start from")
        else:
            td = self._maybe_reset(tensordict)
        steps = []
        for t in range(max_steps):
            if policy is None:
                td = self.rand_action(td)
            else:
                out = policy(td)
                if out is not None and out is not td:  # like torchrl's td.update(policy(td))
                    elements = _elements(td, self.num_tasks)
                    for e, o in zip(elements, _elements(out, self.num_tasks), strict=True):
                        e.update(o)
                    td = _restack(td, elements)
            td = self.step(td)
            steps.append(td)
            if t == max_steps - 1:
                break
            td = self._step_mdp(td)
            if break_when_any_done and self._done(td).any():
                break
            td = self._maybe_reset(td)
        time = len(self.batch_size)
        if not return_contiguous:  # (naming the stack dim at once: refine_names walks every step)
            return LazyStackedTensorDict.lazy_stack(steps, time, stack_dim_name="time")
        _refuse_exclusive(list(steps[0].unbind(0)))
        out = torch.stack([torch.stack(list(s.unbind(0)), 0) for s in steps], time)
        return out.refine_names(..., "time")


class SerialMultiTaskEnv(_MultiTaskEnv):
    """The tasks' envs built and run in this process, in task order."""

    def __init__(self, makers: Iterable[Maker]) -> None:
        self._envs: list[Any] = []
        self._closed = False
        super().__init__(makers)

    def _start(self) -> list[EnvSpecs]:
        for i, maker in enumerate(self._makers):
            try:
                self._envs.append(maker())
            except Exception as err:
                raise self._fail(i, "the maker", err) from err
        specs = [_worker.specs(env) for env in self._envs]
        self._ex = [_worker.Exchange(s) for s in specs]
        return [EnvSpecs(*s) for s in specs]

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        if self._closed:
            raise RuntimeError("the env is closed")
        results = {}
        for i, (command, arg) in calls.items():
            try:  # the workers' code path, through the same (in-process) exchange buffers
                if command == "step":
                    self._ex[i].write("action", arg)
                result = _worker.handle(self._envs[i], command, arg, self._ex[i])
                results[i] = result if command == "set_seed" else self._ex[i].read(command,
                                                                                    result)
            except Exception as err:
                raise self._fail(i, f"{command!r}", err) from err
        return results

    def close(self) -> None:
        """Close every task env; idempotent."""
        if not self._closed:
            self._closed = True
            for env in self._envs:
                env.close()

    @property
    def is_closed(self) -> bool:
        """Whether close() ran (explicitly or after a task error)."""
        return self._closed


def _shutdown(procs: list[BaseProcess], conns: list[Connection], grace: float) -> None:
    """Ask workers to close, join them until ``grace`` runs out, then terminate, then kill."""
    for conn in conns:
        with contextlib.suppress(OSError):
            conn.send(("close", None))
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        for stop in (proc.terminate, proc.kill):
            if proc.is_alive():
                stop()
                proc.join(1.0)
    for conn in conns:
        conn.close()
    procs.clear()
    conns.clear()


class _ParallelMultiTaskEnv(_MultiTaskEnv):
    """One worker process per task (``start_method``), messaged per command. Every wait on a worker
    has a deadline, ``timeout`` (the first answer: ``start_timeout``, default ``timeout``), and a
    liveness check: a dead or silent worker raises WorkerError. Speed only: fast_batched.py."""

    def __init__(self, makers: Iterable[Maker], *, start_method: str = "spawn",
                 timeout: float = 30.0, start_timeout: float | None = None) -> None:
        self._ctx = mp.get_context(start_method)
        self._timeout = timeout
        self._start_timeout = timeout if start_timeout is None else start_timeout
        self._procs: list[BaseProcess] = []
        self._conns: list[Connection] = []
        self._finalizer = weakref.finalize(self, _shutdown, self._procs, self._conns,
                                           min(timeout, 5.0))
        super().__init__(makers)

    @property
    def worker_pids(self) -> list[int | None]:
        """Process ids of the live workers (empty once closed)."""
        return [p.pid for p in self._procs]

    def _start(self) -> list[EnvSpecs]:
        blobs = []
        for i, maker in enumerate(self._makers):
            try:
                blobs.append(pickle.dumps(maker))
            except Exception as err:
                raise WorkerError(
                    f"task {i}: its maker {maker!r} cannot be pickled ({type(err).__name__}: "
                    f"{err}); worker processes receive makers by pickle: use a module-level "
                    "function or a functools.partial of one (e.g. TaskSpec.maker())", i) from err
        for i, blob in enumerate(blobs):
            parent, child = mp.Pipe()
            self._conns.append(parent)
            self._procs.append(self._launch(i, child, blob))
            child.close()
        got = self._collect(range(self.num_tasks), "building its env", self._start_timeout)
        self._ex = [_worker.Exchange(*got[i]) for i in range(self.num_tasks)]
        return [EnvSpecs(*got[i][0]) for i in range(self.num_tasks)]

    def _launch(self, i: int, child: Connection, blob: bytes) -> BaseProcess:
        """Start task i's worker with our environment variables (a forkserver has its start's)."""
        proc = self._ctx.Process(target=_worker.main, args=(child, blob, dict(os.environ)),
                                 daemon=True, name=f"reference-task-{i}")
        proc.start()
        return proc

    def _collect(self, tasks: Iterable[int], doing: str, timeout: float) -> dict[int, Any]:
        """Receive one answer per task, polling all until a shared deadline; on any failure close
        all workers and raise WorkerError (task, exit code, the worker's traceback)."""
        deadline = time.monotonic() + timeout
        pending, results = list(tasks), {}
        try:
            while pending:
                objects = [o for i in pending for o in (self._conns[i], self._procs[i].sentinel)]
                ready = set(wait(objects, timeout=max(0, min(0.1, deadline - time.monotonic()))))
                for i in [i for i in pending if {self._conns[i], self._procs[i].sentinel} & ready]:
                    results[i] = self._recv(i, doing)  # an answer, or EOF from a dead worker
                    pending.remove(i)
                if pending and time.monotonic() > deadline:
                    i = pending[0]
                    raise WorkerError(f"task {i}: worker (pid {self._procs[i].pid}) sent nothing "
                                      f"for {timeout} s while {doing}", i)
        except WorkerError:
            self.close()
            raise
        return results

    def _recv(self, i: int, doing: str) -> Any:
        """Task i's answer (one is ready); a worker-side error raises WorkerError."""
        proc = self._procs[i]
        try:
            status, payload = self._conns[i].recv()
        except (EOFError, OSError):  # (its only write end closes when the worker dies)
            proc.join(1.0)
            raise WorkerError(f"task {i}: worker (pid {proc.pid}) died while {doing}; exit code "
                              f"{proc.exitcode}", i, None, proc.exitcode) from None
        if status == "error":
            proc.join(1.0)
            raise WorkerError(f"task {i}: worker (pid {proc.pid}) raised while {doing}", i,
                              payload, proc.exitcode)
        return payload

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        if self.is_closed:
            raise RuntimeError("the env is closed")
        for i, (command, arg) in calls.items():
            if command == "step":  # the action goes through shared memory: a tiny message
                try:
                    self._ex[i].write("action", arg)
                except Exception as err:
                    raise self._fail(i, "'step'", err) from err
                arg = None
            try:
                self._conns[i].send((command, arg))
            except OSError as err:
                code = self._procs[i].exitcode
                self.close()
                raise WorkerError(f"task {i}: cannot send {command!r} to its worker ({err}); "
                                  f"exit code {code}", i, exitcode=code) from err
        doing = f"running {', '.join(sorted({c for c, _ in calls.values()}))!r}"
        got = self._collect(calls, doing, self._timeout)
        return {i: self._ex[i].read(c, got[i]) if c in ("reset", "step") else got[i]
                for i, (c, _) in calls.items()}

    def close(self) -> None:
        """Stop every worker (close message, join, terminate, kill); idempotent."""
        self._finalizer()

    @property
    def is_closed(self) -> bool:
        """Whether the workers were stopped (close(), a worker error, or garbage collection)."""
        return not self._finalizer.alive

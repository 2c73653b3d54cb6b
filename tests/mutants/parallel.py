"""Mutants of the batched-env capabilities (PAR): each breaks exactly one behaviour.

They wrap reference.SerialMultiTaskEnv -- also for the ``parallel_env`` capability, which keeps
the kill run fast (no worker process to start) -- and provide only the capabilities they break.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import torch
from tensordict import lazy_stack

from conformance.subject import Subject
from reference import ParallelMultiTaskEnv, SerialMultiTaskEnv, WorkerError, _fast_worker


class _PermutedActions(SerialMultiTaskEnv):
    """Sends task i+1's action to task i's env (the recorded "action" stays right)."""

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        if len(calls) > 1 and all(c == "step" for c, _ in calls.values()):
            order = sorted(calls)
            args = [calls[i][1] for i in order]
            calls = {i: ("step", args[(k + 1) % len(args)]) for k, i in enumerate(order)}
        return super()._run(calls)


class _SameSeeds(SerialMultiTaskEnv):
    """set_seed gives every task the same seed."""

    def set_seed(self, seed: int) -> int:
        out = seed
        for i in range(self.num_tasks):
            out = self._run({i: ("set_seed", seed)})[i]
        return out


class _ResetsAll(SerialMultiTaskEnv):
    """Ignores the "_reset" mask: every reset resets every task."""

    def reset(self, tensordict: Any = None) -> Any:
        if tensordict is not None and "_reset" in tensordict.keys():
            tensordict = tensordict.exclude("_reset")
        return super().reset(tensordict)


class _Densifies(SerialMultiTaskEnv):
    """rollout keeps only the keys every task shares (drops exclusive keys)."""

    def rollout(self, max_steps: int, policy: Any = None, **kwargs: Any) -> Any:
        out = super().rollout(max_steps, policy, **kwargs)
        steps = [out[:, t] for t in range(out.batch_size[1])]
        elements = steps[0].tensordicts
        shared = list(set.intersection(*(set(e.keys(True, True)) for e in elements)))
        dense = [lazy_stack([e.select(*shared) for e in s.tensordicts], 0) for s in steps]
        return lazy_stack(dense, 1)


class _ReusesBuffers(SerialMultiTaskEnv):
    """step writes every result into one buffer and returns that same object each time."""

    _buffer: Any = None

    def step(self, tensordict: Any) -> Any:
        out = super().step(tensordict)
        if self._buffer is None:
            self._buffer = out.clone()
        else:
            for mine, new in zip(self._buffer.tensordicts, out.tensordicts, strict=True):
                mine.update_(new)
        return self._buffer


class _StaleOnError(SerialMultiTaskEnv):
    """A task env that raises is ignored: its previous result is returned again."""

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        last = getattr(self, "_last", {})
        self._last = last
        out = {}
        for i, (command, arg) in calls.items():
            try:
                out[i] = super()._run({i: (command, arg)})[i]
                self._closed = False
            except WorkerError:
                self._closed = False  # the reference closes on failure: pretend nothing happened
                out[i] = last[i].clone()
            last[i] = out[i]
        return out


class _AnonymousErrors(SerialMultiTaskEnv):
    """Failures raise a RuntimeError that does not say which task failed."""

    def __init__(self, makers: Any) -> None:
        try:
            super().__init__(makers)
        except WorkerError:
            raise RuntimeError("a worker failed to build its env") from None

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        try:
            return super()._run(calls)
        except WorkerError:
            raise RuntimeError("a worker failed") from None


class _LeaksChild(SerialMultiTaskEnv):
    """Starts a helper process that close() never stops (it exits by itself after 20 s)."""

    def __init__(self, makers: Any) -> None:
        super().__init__(makers)
        self._helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(20)"])


class _ForgetsWorkers(ParallelMultiTaskEnv):
    """close() marks the env closed but never stops its workers, which a forkserver forked: they
    are grandchildren of the process, so only a scan of every descendant sees them left."""

    def __init__(self, makers: Any, timeout: float = 30.0) -> None:
        super().__init__(makers, start_method="forkserver", timeout=timeout)

    def close(self) -> None:
        self._finalizer.detach()  # (they exit when the env is collected: their pipes close)


class _CloseOnce(SerialMultiTaskEnv):
    """close() raises when the env is closed already."""

    def close(self) -> None:
        if self.is_closed:
            raise RuntimeError("the env is closed already")
        super().close()


class _StaleAfterRollout(SerialMultiTaskEnv):
    """After a rollout, the env's notion of the current observations is the pre-rollout one: a
    partial reset right after a rollout reports stale observations for the unmasked tasks."""

    def rollout(self, max_steps: int, policy: Any = None, **kwargs: Any) -> Any:
        before = list(self._current)
        out = super().rollout(max_steps, policy, **kwargs)
        if all(c is not None for c in before):
            self._current = before
        return out


class _OwnRng(SerialMultiTaskEnv):
    """Without a policy, rollout draws its actions from an RNG stream of its own (as if each
    worker sampled its own actions), leaving the global RNG untouched."""

    def rollout(self, max_steps: int, policy: Any = None, **kwargs: Any) -> Any:
        if policy is None:
            state = torch.Generator().manual_seed(0).get_state()

            def policy(td: Any) -> Any:
                nonlocal state
                with torch.random.fork_rng(devices=[]):
                    torch.set_rng_state(state)
                    out = self.rand_action(td)
                    state = torch.get_rng_state()
                return out

        return super().rollout(max_steps, policy, **kwargs)


class _NoResetRandom(SerialMultiTaskEnv):
    """Without a policy, rollout never resets a done task (it steps on past its episode end)."""

    def rollout(self, max_steps: int, policy: Any = None, **kwargs: Any) -> Any:
        if policy is None:
            self._maybe_reset = lambda td: td  # type: ignore[method-assign]
            try:
                return super().rollout(max_steps, None, **kwargs)
            finally:
                del self._maybe_reset
        return super().rollout(max_steps, policy, **kwargs)


class _WaitsForever(ParallelMultiTaskEnv):
    """Takes a deadline and ignores it: a worker that stops answering blocks it forever."""

    def __init__(self, makers: Any, timeout: float = 30.0) -> None:
        super().__init__(makers, timeout=1e9)


class _NonDaemonWorkers(ParallelMultiTaskEnv):
    """Starts non-daemonic workers and does nothing on KeyboardInterrupt: after an interrupt
    while a worker hangs, the program's exit joins that worker forever."""

    def _launch(self, i: int, child: Any, blob: bytes) -> Any:
        proc = self._ctx.Process(target=_fast_worker.main, args=(child, blob, dict(os.environ)),
                                 daemon=False, name=f"non-daemon-task-{i}")
        proc.start()
        return proc


def permuted_actions() -> Subject:
    """parallel_env hands each task its neighbour's action."""
    return Subject("permuted_actions", serial_env=SerialMultiTaskEnv,
                   parallel_env=_PermutedActions)


def same_seeds() -> Subject:
    """set_seed seeds every task alike."""
    return Subject("same_seeds", serial_env=_SameSeeds)


def resets_all() -> Subject:
    """A partial reset resets every task."""
    return Subject("resets_all", serial_env=_ResetsAll)


def densifies() -> Subject:
    """rollout drops the task-exclusive keys."""
    return Subject("densifies", serial_env=_Densifies)


def reuses_buffers() -> Subject:
    """step returns one reused buffer (every step's output is the same object)."""
    return Subject("reuses_buffers", serial_env=_ReusesBuffers)


def stale_on_error() -> Subject:
    """parallel_env swallows a worker's exception and returns stale data."""
    return Subject("stale_on_error", parallel_env=_StaleOnError)


def anonymous_errors() -> Subject:
    """parallel_env's errors do not name the failing task."""
    return Subject("anonymous_errors", parallel_env=_AnonymousErrors)


def leaks_child() -> Subject:
    """parallel_env leaves a child process running after close()."""
    return Subject("leaks_child", parallel_env=_LeaksChild)


def forgets_workers() -> Subject:
    """parallel_env's close() leaves its forkserver workers running."""
    return Subject("forgets_workers", parallel_env=_ForgetsWorkers, deadline_keyword="timeout")


def close_once() -> Subject:
    """parallel_env's second close() raises."""
    return Subject("close_once", parallel_env=_CloseOnce)


def own_rng() -> Subject:
    """parallel_env's random rollout draws actions from its own RNG, not the global one."""
    return Subject("own_rng", parallel_env=_OwnRng)


def no_reset_random() -> Subject:
    """parallel_env's random rollout does not reset done tasks."""
    return Subject("no_reset_random", parallel_env=_NoResetRandom)


def waits_forever() -> Subject:
    """parallel_env waits on a hung worker forever (it ignores the deadline it is passed)."""
    return Subject("waits_forever", parallel_env=_WaitsForever, deadline_keyword="timeout")


def non_daemon_workers() -> Subject:
    """parallel_env leaves non-daemonic workers running after a KeyboardInterrupt."""
    return Subject("non_daemon_workers", parallel_env=_NonDaemonWorkers,
                   deadline_keyword="timeout")


def stale_after_rollout() -> Subject:
    """serial_env diverges only in a sequence: partial reset after a rollout."""
    return Subject("stale_after_rollout", serial_env=_StaleAfterRollout)


KILLS = {
    "permuted_actions": ["PAR-001", "PAR-003"],
    "same_seeds": ["PAR-005"],
    "resets_all": ["PAR-002", "PAR-004", "PAR-011"],
    "densifies": ["PAR-002", "PAR-006", "PAR-007", "PAR-011"],
    "reuses_buffers": ["PAR-002", "PAR-007", "PAR-011"],
    "stale_on_error": ["PAR-008"],
    "anonymous_errors": ["PAR-008", "PAR-009"],
    "leaks_child": ["PAR-008", "PAR-010"],
    "close_once": ["PAR-010"],
    "forgets_workers": ["PAR-008", "PAR-009", "PAR-010"],
    "stale_after_rollout": ["PAR-011"],
    "own_rng": ["PAR-012"],
    "no_reset_random": ["PAR-012"],
    "waits_forever": ["PAR-013"],
    "non_daemon_workers": ["PAR-014"],
}

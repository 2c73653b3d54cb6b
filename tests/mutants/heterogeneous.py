"""Mutants of the wider world (tasks that differ in their action, reward/done layout, non-tensor
data and batch size): each wraps the reference SerialMultiTaskEnv -- also for the
``parallel_env`` capability, which keeps the kill run fast -- and loses one dimension."""

from __future__ import annotations

from typing import Any

import torch

from conformance.subject import Subject
from reference import SerialMultiTaskEnv, WorkerError


class _CastsActions(SerialMultiTaskEnv):
    """Casts every action entry to float32 before stepping (a discrete action arrives as float)."""

    def step(self, tensordict: Any) -> Any:
        for i, element in enumerate(tensordict.unbind(0)):
            for key in self._action_keys[i]:
                value = element.get(key, None)
                if value is not None:
                    element.set(key, value.to(torch.float32))
        return super().step(tensordict)


class _RootDoneOnly(SerialMultiTaskEnv):
    """Decides resets from the root "done" entry only: a task whose done entries live under a
    group is never reset by a rollout."""

    def _done(self, tensordict: Any) -> Any:
        rows = torch.zeros(self.batch_size, dtype=torch.bool)
        for i, element in enumerate(tensordict.unbind(0)):
            flag = element.get("done", None)
            if flag is not None:
                rows[i] |= flag.reshape(*flag.shape[:len(self.task_batch)], -1).any(-1)
        return rows


class _DropsGroupEntries(SerialMultiTaskEnv):
    """Loses the reward and done entries a task keeps under a group key (multi-agent style): only
    the root ones come back, as a batched env that copies its outputs by the root spec would."""

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        out = super()._run(calls)
        for i, (c, _) in calls.items():
            if c in ("reset", "step"):
                nested = [k for k in out[i].keys(True, True) if isinstance(k, tuple)
                          and k[-1] in ("reward", "done", "terminated", "truncated")]
                out[i] = out[i].exclude(*nested)
        return out


class _DropsStrings(SerialMultiTaskEnv):
    """Loses the tasks' non-tensor entries (strings, metadata) on their way back from the task
    envs, as a process boundary without a channel for them would."""

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        out = super()._run(calls)
        return {i: out[i].exclude(*self._ex[i].loose[c]) if c in ("reset", "step") else out[i]
                for i, (c, _) in calls.items()}


class _FlattensBatch(SerialMultiTaskEnv):
    """Reports the tasks' own batch dims flattened into the task dim ([n * k], not [n, k])."""

    def __init__(self, makers: Any) -> None:
        super().__init__(makers)
        self.batch_size = torch.Size([self.batch_size.numel()])


class _CauselessErrors(SerialMultiTaskEnv):
    """A task env's exception becomes "task i: worker failed": the index stays, the worker's own
    exception (type, message, traceback) is lost."""

    def _fail(self, i: int, what: str, err: BaseException) -> WorkerError:
        self.close()
        return WorkerError(f"task {i}: worker failed", i)

    def _start(self) -> Any:
        try:
            return super()._start()
        except WorkerError as err:
            raise WorkerError(str(err), err.task_index) from None

    def _run(self, calls: dict[int, tuple[str, Any]]) -> dict[int, Any]:
        try:
            return super()._run(calls)
        except WorkerError as err:
            raise WorkerError(str(err), err.task_index) from None


def casts_actions() -> Subject:
    """serial_env casts discrete actions to float before stepping."""
    return Subject("casts_actions", serial_env=_CastsActions)


def root_done_only() -> Subject:
    """serial_env's rollout resets only tasks whose root "done" is set."""
    return Subject("root_done_only", serial_env=_RootDoneOnly)


def drops_group_entries() -> Subject:
    """serial_env drops the reward and done entries tasks keep under a group key."""
    return Subject("drops_group_entries", serial_env=_DropsGroupEntries)


def drops_strings() -> Subject:
    """parallel_env loses non-tensor entries across its process boundary."""
    return Subject("drops_strings", parallel_env=_DropsStrings)


def flattens_batch() -> Subject:
    """serial_env flattens a batched task's inner batch dims into the task dim."""
    return Subject("flattens_batch", serial_env=_FlattensBatch)


def causeless_errors() -> Subject:
    """parallel_env's worker errors name the task but lose the worker's exception."""
    return Subject("causeless_errors", parallel_env=_CauselessErrors)


KILLS = {
    "casts_actions": ["SPEC-010"],
    "root_done_only": ["PAR-015"],
    "drops_group_entries": ["PAR-015"],
    "drops_strings": ["PAR-016"],
    "flattens_batch": ["SPEC-003"],
    "causeless_errors": ["PAR-008", "PAR-009"],
}

"""Mutants of the batched envs' specs (SPEC): each wraps the reference SerialMultiTaskEnv and
breaks one thing about its specs or about how its data matches them."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import lazy_stack
from torchrl.data import StackedComposite, Unbounded

from conformance.subject import Subject
from reference.batched import SerialMultiTaskEnv
from reference.errors import SpecMismatchError

# -- SPEC-001 / 002 / 003 / 004: reported specs and batch size -----------------------------------


class _Task0ObservationSpec(SerialMultiTaskEnv):
    def __init__(self, makers: Any) -> None:
        super().__init__(makers)
        first = self.task_specs[0].observation
        spec = torch.stack([first.clone() for _ in range(self.num_tasks)], 0)
        self.observation_spec = self.full_observation_spec = spec


def obs_spec_of_task0() -> Subject:
    """observation_spec[i] is task 0's observation spec for every i."""
    return Subject("obs_spec_of_task0", serial_env=_Task0ObservationSpec)


class _UnboundedActionSpec(SerialMultiTaskEnv):
    def __init__(self, makers: Any) -> None:
        super().__init__(makers)
        parts = []
        for specs in self.task_specs:
            part = specs.action.clone()
            leaf = part["action"]
            part["action"] = Unbounded(leaf.shape, dtype=leaf.dtype)  # same shape/dtype, no box
            parts.append(part)
        self.full_action_spec = torch.stack(parts, 0)
        self.action_spec = self.full_action_spec["action"]


def action_spec_unbounded() -> Subject:
    """The stacked action spec loses the tasks' [-1, 1] bounds (Unbounded, same shape/dtype)."""
    return Subject("action_spec_unbounded", serial_env=_UnboundedActionSpec)


class _BatchOffByOne(SerialMultiTaskEnv):
    def __init__(self, makers: Any) -> None:
        super().__init__(makers)
        self.batch_size = torch.Size([self.num_tasks + 1])


def batch_size_off_by_one() -> Subject:
    """batch_size is [n + 1] for n tasks (the data is still right)."""
    return Subject("batch_size_off_by_one", serial_env=_BatchOffByOne)


class _SharedKeysFloat64(SerialMultiTaskEnv):
    def __init__(self, makers: Any) -> None:
        super().__init__(makers)
        parts = [s.observation.clone() for s in self.task_specs]
        shared = set.intersection(*(set(p.keys(True, True)) for p in parts))
        for part in parts:
            for key in shared:
                leaf = part[key]
                if leaf.dtype == torch.float32:
                    part[key] = leaf.to(torch.float64)
        self.observation_spec = self.full_observation_spec = torch.stack(parts, 0)


def stacked_spec_wrong_dtype() -> Subject:
    """The stacked observation spec reports float32 keys shared by all tasks as float64."""
    return Subject("stacked_spec_wrong_dtype", serial_env=_SharedKeysFloat64)


# -- SPEC-005: tasks that disagree on a shared key ----------------------------------------------


class _NoConflictCheck(SerialMultiTaskEnv):
    """Skips the shared-key check: stacking the specs then decides what happens."""

    def __init__(self, makers: Any) -> None:
        import reference.batched as batched

        saved = batched.check_shared_specs
        batched.check_shared_specs = lambda specs: None
        try:
            super().__init__(makers)
        finally:
            batched.check_shared_specs = saved


class _CastsToTask0(_NoConflictCheck):
    """Accepts disagreeing tasks, then casts each key all tasks hold to task 0's dtype."""

    def _casts(self) -> list[Any]:
        leaves = [s.observation for s in self.task_specs]
        keys = set.intersection(*(set(o.keys(True, True)) for o in leaves))
        return [k for k in keys if any(o[k].dtype != leaves[0][k].dtype for o in leaves)]

    def _cast(self, td: Any, prefix: tuple[str, ...]) -> Any:
        for key in self._casts():
            dtype = self.task_specs[0].observation[key].dtype
            path = (*prefix, *((key,) if isinstance(key, str) else key))
            for elem in td.tensordicts:
                elem.set(path, elem.get(path).to(dtype))
        return td

    def reset(self, tensordict: Any = None) -> Any:
        return self._cast(super().reset(tensordict), ())

    def step(self, tensordict: Any) -> Any:
        return self._cast(super().step(tensordict), ("next",))


def accepts_conflicts_casting() -> Subject:
    """Accepts tasks that disagree on a shared key's dtype and returns every task's value cast
    to task 0's dtype (the per-task specs stay right)."""
    return Subject("accepts_conflicts_casting", serial_env=_CastsToTask0)


class _BuildsAtReset:
    """Reports the tasks' specs stacked as they are (a StackedComposite, no check) and builds
    the reference env -- which refuses disagreeing tasks -- only at the first reset."""

    def __init__(self, makers: Any) -> None:
        self._makers = list(makers)
        self._env: SerialMultiTaskEnv | None = None
        self._closed = False
        envs = [make() for make in self._makers]
        self.batch_size = torch.Size([len(envs)])
        for part in ("observation", "action", "reward", "done"):
            specs = [getattr(env, f"full_{part}_spec").clone() for env in envs]
            setattr(self, f"full_{part}_spec", StackedComposite(*specs, dim=0))
        for env in envs:
            env.close()
        self.observation_spec = self.full_observation_spec
        self.done_spec = self.full_done_spec
        self.action_spec = self.full_action_spec["action"]
        self.reward_spec = self.full_reward_spec["reward"]

    def _built(self) -> SerialMultiTaskEnv:
        if self._env is None:
            self._env = SerialMultiTaskEnv(self._makers)
        return self._env

    def reset(self, tensordict: Any = None) -> Any:
        return self._built().reset(tensordict)

    def step(self, tensordict: Any) -> Any:
        return self._built().step(tensordict)

    def rollout(self, *args: Any, **kwargs: Any) -> Any:
        return self._built().rollout(*args, **kwargs)

    def rand_action(self, tensordict: Any = None) -> Any:
        return self._built().rand_action(tensordict)

    def set_seed(self, seed: int) -> int:
        return self._built().set_seed(seed)

    def close(self) -> None:
        self._closed = True
        if self._env is not None:
            self._env.close()

    @property
    def is_closed(self) -> bool:
        return self._closed


def refuses_at_reset() -> Subject:
    """Refuses tasks that disagree on a shared key at reset (the error names the key), not at
    construction."""
    return Subject("refuses_at_reset", serial_env=_BuildsAtReset)


def _refuses_unnamed(makers: Any) -> Any:
    try:
        return SerialMultiTaskEnv(makers)
    except SpecMismatchError:
        raise ValueError("the tasks' specs disagree; cannot build a batched env") from None


def refuses_without_key() -> Subject:
    """Refuses tasks that disagree on a shared key with an error that does not name the key."""
    return Subject("refuses_without_key", serial_env=_refuses_unnamed)


# -- SPEC-006 / 007 / 008: data against the specs -----------------------------------------------


class _GridStep(SerialMultiTaskEnv):
    def step(self, tensordict: Any) -> Any:
        for i, elem in enumerate(tensordict.unbind(0)):
            action = elem.get("action")
            if not bool(torch.equal(action * 4, (action * 4).round())):
                raise ValueError(f"task {i}: action {action.tolist()} is not a multiple of 1/4")
        return super().step(tensordict)


def rejects_random_actions() -> Subject:
    """step accepts only multiples of 1/4 though the action spec is the continuous box [-1, 1]
    (a quantizing env pool that reports its tasks' continuous spec)."""
    return Subject("rejects_random_actions", serial_env=_GridStep)


class _ResetCastsFloat32(SerialMultiTaskEnv):
    def reset(self, tensordict: Any = None) -> Any:
        out = super().reset(tensordict)
        elements = []
        for i, elem in enumerate(out.unbind(0)):
            elem = elem.clone()
            for key in self.task_specs[i].observation.keys(True, True):
                elem.set(key, elem.get(key).float())
            elements.append(elem)
        return lazy_stack(elements, 0)


def reset_casts_float32() -> Subject:
    """reset returns every observation cast to float32 (``.float()``), whatever its spec's dtype."""
    return Subject("reset_casts_float32", serial_env=_ResetCastsFloat32)


class _RewardScalar(SerialMultiTaskEnv):
    def step(self, tensordict: Any) -> Any:
        out = super().step(tensordict)
        for elem in out.tensordicts:
            nxt = elem.get("next")
            nxt.set("reward", nxt.get("reward").reshape(()))
        return out


def step_reward_scalar() -> Subject:
    """step's 'next' reward has shape [] per task instead of the spec's [1]."""
    return Subject("step_reward_scalar", serial_env=_RewardScalar)


class _StepDropsExclusive(SerialMultiTaskEnv):
    def step(self, tensordict: Any) -> Any:
        out = super().step(tensordict)
        nexts = [elem.get("next") for elem in out.tensordicts]
        keysets = [set(nxt.keys(True, True)) for nxt in nexts]
        shared = set.intersection(*keysets)
        for nxt, keys in zip(nexts, keysets, strict=True):
            for key in keys - shared:
                del nxt[key]
        return out


def step_drops_exclusive_keys() -> Subject:
    """step's 'next' keeps only the keys every task shares (exclusive keys vanish)."""
    return Subject("step_drops_exclusive_keys", serial_env=_StepDropsExclusive)


# -- SPEC-009: parallel specs -------------------------------------------------------------------


class _RotatedSpecs(SerialMultiTaskEnv):
    def __init__(self, makers: Any) -> None:
        super().__init__(makers)
        order = [(i + 1) % self.num_tasks for i in range(self.num_tasks)]
        for part in ("observation", "action", "reward", "done"):
            stacked = torch.stack([getattr(self.task_specs[j], part).clone() for j in order], 0)
            setattr(self, f"full_{part}_spec", stacked)
        self.observation_spec = self.full_observation_spec
        self.done_spec = self.full_done_spec


def parallel_specs_rotated() -> Subject:
    """A "parallel" env (the serial reference underneath) whose spec at index i is task
    i + 1's: its workers' specs were collected out of order."""
    return Subject("parallel_specs_rotated", parallel_env=_RotatedSpecs)


KILLS = {
    "obs_spec_of_task0": ["SPEC-001"],
    "action_spec_unbounded": ["SPEC-002"],
    "batch_size_off_by_one": ["SPEC-003"],
    "stacked_spec_wrong_dtype": ["SPEC-001", "SPEC-004"],
    "accepts_conflicts_casting": ["SPEC-005"],
    "refuses_at_reset": ["SPEC-005"],
    "refuses_without_key": ["SPEC-005"],
    "rejects_random_actions": ["SPEC-006"],
    "reset_casts_float32": ["SPEC-007"],
    "step_reward_scalar": ["SPEC-004", "SPEC-008"],
    "step_drops_exclusive_keys": ["SPEC-008"],
    "parallel_specs_rotated": ["SPEC-009"],
}

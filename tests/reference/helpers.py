"""Helpers for the reference's unit tests: task sets, scripted policies, child-process scans."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDictBase

from conformance.properties._envs import child_pids  # noqa: F401  (re-exported)
from reference.tasks import KeySpec, TaskEnv, TaskSpec

os.environ.setdefault("MUJOCO_GL", "egl")

# Three tasks sharing "obs" and a nested ("sensors", "joint"), each with exclusive keys.
THREE_TASKS = (
    TaskSpec("a", (KeySpec("obs", (3,)), KeySpec(("sensors", "joint"), (2,), "float64"),
                   KeySpec("a_int", (2,), "int64"), KeySpec("a_zero", (0,))),
             episode_length=7, seed=1),
    TaskSpec("b", (KeySpec("obs", (3,)), KeySpec(("sensors", "joint"), (2,), "float64"),
                   KeySpec("b_flag", (), "bool"), KeySpec("b_grid", (2, 2), "float64")),
             episode_length=11, seed=2),
    TaskSpec("c", (KeySpec("obs", (3,)), KeySpec(("sensors", "joint"), (2,), "float64"),
                   KeySpec("c_empty", (2, 0))),
             episode_length=50, seed=3),
)
EXCLUSIVE = ({"a_int", "a_zero"}, {"b_flag", "b_grid"}, {"c_empty"})


def scripted_policy(actions: torch.Tensor) -> Callable[[TensorDictBase], TensorDictBase]:
    """A policy writing ``actions[t, i]`` into element i at its t-th call (no global RNG)."""
    calls = iter(range(actions.shape[0]))

    def policy(td: TensorDictBase) -> TensorDictBase:
        t = next(calls)
        for i, element in enumerate(td.unbind(0)):
            element.set("action", actions[t, i].clone())
        return td

    return policy


def make_actions(steps: int, tasks: int, seed: int = 0) -> torch.Tensor:
    """Pre-generated actions in [-1, 1], shape [steps, tasks, 2]."""
    return torch.rand(steps, tasks, 2, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def leaf_items(td: TensorDictBase) -> dict[object, torch.Tensor]:
    """Every leaf key of ``td`` mapped to its value."""
    return {k: td.get(k) for k in td.keys(True, True)}


def assert_identical(x: TensorDictBase, y: TensorDictBase, where: str,
                     skip: Sequence[object] = ()) -> None:
    """Same leaf keys, and bitwise-equal values with the same dtype, except ``skip`` keys."""
    __tracebackhide__ = True
    kx, ky = set(x.keys(True, True)) - set(skip), set(y.keys(True, True)) - set(skip)
    assert kx == ky, f"{where}: keys differ: only left {kx - ky}, only right {ky - kx}"
    for k in kx:
        a, b = x.get(k), y.get(k)
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), (
            f"{where}: {k!r} = {a}, but should be {b}")


class SlowTaskEnv(TaskEnv):
    """A TaskEnv whose every step also sleeps ``delay`` seconds."""

    def __init__(self, spec: TaskSpec, delay: float) -> None:
        super().__init__(spec)
        self.delay = delay

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        import time

        time.sleep(self.delay)
        return super()._step(tensordict)

"""Mutants of the seed scenario (SCN): each breaks one thing the tutorial relies on.

They wrap tensordict's lazy stack, the reference policy and the reference *serial* env (a
"parallel" mutant is the serial env with one fault, so no worker process is started) and
provide only the capabilities the targeted properties need.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import torch
from tensordict import LazyStackedTensorDict, lazy_stack

from conformance.assertions import elements
from conformance.subject import Subject
from reference import PartialTolerantSequential
from reference.batched import SerialMultiTaskEnv

# -- SCN-001 / SCN-002: stacking the two resets ---------------------------------------------------


def _stack_drops_exclusive(tds: Any, dim: int = 0) -> Any:
    shared = set.intersection(*(set(td.keys(True, True)) for td in tds))
    return lazy_stack([td.select(*shared) for td in tds], dim)


def stack_drops_exclusive() -> Subject:
    """Stacks copies that keep only the keys every task shares: 'observation_stand' and
    'observation_walk' are gone from the elements."""
    return Subject("scn_stack_drops_exclusive", lazy_stack=_stack_drops_exclusive)


def _stack_copies(tds: Any, dim: int = 0) -> Any:
    return lazy_stack([td.clone() for td in tds], dim)


def stack_copies() -> Subject:
    """Stacks clones of the resets: equal values, but stack[i] is not tdreset_i."""
    return Subject("scn_stack_copies", lazy_stack=_stack_copies)


# -- SCN-003: the tutorial's policy --------------------------------------------------------------


def _skips_last_head(*modules: Any, partial_tolerant: bool = True) -> Any:
    return PartialTolerantSequential(*modules[:-1], partial_tolerant=partial_tolerant)


def policy_skips_walk_head() -> Subject:
    """Drops the last module (the tutorial's walk head): walk elements get no action."""
    return Subject("scn_policy_skips_walk_head", lazy_stack=lazy_stack,
                   sequential=_skips_last_head)


def _zero_fills_stack(*modules: Any, partial_tolerant: bool = True) -> Any:
    policy = PartialTolerantSequential(*modules, partial_tolerant=partial_tolerant)

    def run(td: Any) -> Any:
        if not isinstance(td, LazyStackedTensorDict):
            return policy(td)
        first, *rest = td.tensordicts
        policy(first)
        for element in rest:  # "vectorized": every other element copies zeros of the first
            for key in policy.out_keys:
                element.set(key, torch.zeros_like(first.get(key)))
        return td

    return run


def policy_zero_fills_stack() -> Subject:
    """On a stack, runs the policy on element 0 only and zero-fills the others' outputs."""
    return Subject("scn_policy_zero_fills_stack", lazy_stack=lazy_stack,
                   sequential=_zero_fills_stack)


# -- SCN-004 / SCN-005: the serial batched env ---------------------------------------------------


class _DropsNextOfTask1(SerialMultiTaskEnv):
    def step(self, tensordict: Any) -> Any:
        out = super().step(tensordict)
        for td in {id(tensordict): tensordict, id(out): out}.values():
            elements(td)[1].del_("next")
        return out


def serial_drops_next_of_task1() -> Subject:
    """step writes 'next' into element 0 only; task 1's result is dropped."""
    return Subject("scn_serial_drops_next_of_task1", serial_env=_DropsNextOfTask1)


class _RolloutDensifies(SerialMultiTaskEnv):
    def rollout(self, *args: Any, **kwargs: Any) -> Any:
        out = super().rollout(*args, **kwargs)
        shared = set.intersection(*(set(e.keys(True, True)) for e in out[:, 0].unbind(0)))
        steps = [lazy_stack([e.select(*shared) for e in step.unbind(0)], 0)
                 for step in out.unbind(1)]
        return lazy_stack(steps, 1)


def rollout_densifies() -> Subject:
    """rollout keeps only the keys all tasks share: 'observation_stand' / 'observation_walk'
    are dropped from the trajectories."""
    return Subject("scn_rollout_densifies", serial_env=_RolloutDensifies)


class _StaleExclusive(SerialMultiTaskEnv):
    def _step_mdp(self, tensordict: Any) -> Any:
        nxt = super()._step_mdp(tensordict)
        for i, (element, root) in enumerate(zip(elements(nxt), elements(tensordict),
                                                strict=True)):
            own = [k for k in self.task_specs[i].observation.keys(True, True)
                   if all(k not in s.observation.keys(True, True)
                          for j, s in enumerate(self.task_specs) if j != i)]
            for key in own:  # keep the previous root's value, as torchrl 0.14.1 does
                element.set(key, root.get(key).clone())
        return nxt


def rollout_stale_exclusive() -> Subject:
    """rollout carries each task's exclusive observation from the reset on (never updated from
    'next'); shared keys advance normally."""
    return Subject("scn_rollout_stale_exclusive", serial_env=_StaleExclusive)


# -- SCN-006: serial vs "parallel" ----------------------------------------------------------------


class _SeedsAlike(SerialMultiTaskEnv):
    def set_seed(self, seed: int) -> int:
        for i in range(self.num_tasks):
            out = self._run({i: ("set_seed", seed)})[i]
        return out


def parallel_seeds_alike() -> Subject:
    """The 'parallel' env gives every task the same seed instead of chaining them."""
    return Subject("scn_parallel_seeds_alike", serial_env=SerialMultiTaskEnv,
                   parallel_env=_SeedsAlike)


def _permuted(makers: Any) -> Any:
    return SerialMultiTaskEnv(list(makers)[::-1])


def parallel_permutes_tasks() -> Subject:
    """The 'parallel' env runs the makers in reverse order: element 0 is the walk task."""
    return Subject("scn_parallel_permutes_tasks", serial_env=SerialMultiTaskEnv,
                   parallel_env=_permuted)


class _LeaksWorker(SerialMultiTaskEnv):
    def __init__(self, makers: Any) -> None:
        # A stand-in worker that close() forgets to stop (it exits by itself after 30 s).
        self._worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        super().__init__(makers)


def parallel_leaks_worker() -> Subject:
    """The 'parallel' env leaves a child process alive after close()."""
    return Subject("scn_parallel_leaks_worker", serial_env=SerialMultiTaskEnv,
                   parallel_env=_LeaksWorker)


KILLS = {
    "stack_drops_exclusive": ["SCN-001", "SCN-002"],
    "stack_copies": ["SCN-002"],
    "policy_skips_walk_head": ["SCN-003"],
    "policy_zero_fills_stack": ["SCN-003"],
    "serial_drops_next_of_task1": ["SCN-004", "SCN-005"],
    "rollout_densifies": ["SCN-005"],
    "rollout_stale_exclusive": ["SCN-005"],
    "parallel_seeds_alike": ["SCN-006"],
    "parallel_permutes_tasks": ["SCN-006"],
    "parallel_leaks_worker": ["SCN-006"],
}

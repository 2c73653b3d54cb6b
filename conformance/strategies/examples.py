"""PAR / SPEC: fixed first examples of the process-parallel properties.

A process-parallel property runs few generated examples (one at quick), and hypothesis's first
one is the strategy's simplest draw: one task, or tasks sharing one layout.  A pool that loses
heterogeneous tasks' specs, or leaves the healthy tasks' workers running after one task fails,
passes that draw (torchrl's multiprocessing AsyncEnvPool did, at quick).  These properties
therefore also run a fixed two-task case whose tasks' observation layouts differ, as an
explicit example (``@example``): hypothesis runs it first, in every profile, on top of the
generated examples, so the generated search, its shrinking and a seed's examples stay as they
are (changing the strategies' shrink targets instead would change all three).  Each case lies
in its strategy's domain.
"""

from __future__ import annotations

from typing import Any

import torch

from conformance.strategies.rollouts import FailureCase, RandomRolloutCase
from conformance.strategies.tasks import RolloutCase, TaskSet, action_draws, make_action


def two_layouts(episode_length: int = 12) -> list[Any]:
    """Two tasks whose observation layouts differ, like the tutorial's: both hold "obs" (float32,
    [2]); task 0 also holds "own0" (float32, [3]), a top-level key task 1 lacks (a nested one would
    also exercise tensordict's EXC-001 finding, which these properties are not about).  Action
    shape [1], seeds 0 and 1."""
    from reference.tasks import KeySpec, TaskSpec

    obs = KeySpec("obs", (2,), "float32")
    own = KeySpec("own0", (3,), "float32")
    return [TaskSpec("task0", (obs, own), action_shape=(1,), episode_length=episode_length,
                     seed=0),
            TaskSpec("task1", (obs,), action_shape=(1,), episode_length=episode_length, seed=1)]


def _fixed_actions(tasks: list[Any], steps: int) -> list[list[torch.Tensor]]:
    """What :func:`scripted_actions` gives for its all-zero draw: different per task."""
    return [[make_action(task, [0] * action_draws(task), i) for i, task in enumerate(tasks)]
            for _ in range(steps)]


def failure_example(at: str = "step") -> FailureCase:
    """:func:`failure_cases`' fixed case on :func:`two_layouts`.  ``at="step"``: task 0 raises
    at its first step and task 1 is healthy, so its worker must be stopped too.  ``"init"``:
    task 1's maker raises, so task 0's worker may be started already and must be stopped, and
    the index the error must name is not 0 (an error that always says "task 0" fails)."""
    import dataclasses

    tasks = two_layouts()
    if at == "step":
        tasks[0] = dataclasses.replace(tasks[0], raise_at_step=1)
        return FailureCase(tasks, 0, _fixed_actions(tasks, 1))
    tasks[1] = dataclasses.replace(tasks[1], raise_at_init=True)
    return FailureCase(tasks, 1, [])


def hang_example(at: str = "step") -> FailureCase:
    """:func:`hang_cases`' fixed case: :func:`failure_example`'s, with the failing task's env
    sleeping (``HANG_SECONDS``) instead of raising: task 0 at its first step, or task 1's
    construction."""
    import dataclasses

    from conformance.strategies.rollouts import HANG_SECONDS

    case = failure_example(at)
    task = case.tasks[case.index]
    hung = (dataclasses.replace(task, raise_at_step=0, hang_at_step=(1, HANG_SECONDS))
            if at == "step" else
            dataclasses.replace(task, raise_at_init=False, hang_at_init=HANG_SECONDS))
    tasks = list(case.tasks)
    tasks[case.index] = hung
    return FailureCase(tasks, case.index, case.actions)


def spec_example() -> TaskSet:
    """:func:`spec_task_sets`' fixed case: :func:`two_layouts` (task 0's key is exclusive)."""
    return TaskSet(two_layouts())


def rollout_example(steps: int = 2, episode_length: int = 5) -> RolloutCase:
    """:func:`rollout_cases`' fixed case: :func:`two_layouts` and ``steps`` rows of actions."""
    tasks = two_layouts(episode_length)
    return RolloutCase(tasks, _fixed_actions(tasks, steps))


def random_rollout_example(steps: int = 20) -> RandomRolloutCase:
    """:func:`random_rollout_cases`' fixed case: :func:`two_layouts` with 3-step episodes (each
    task is done after steps 2, 5, 8, ...) and ``steps`` steps."""
    return RandomRolloutCase(two_layouts(episode_length=3), steps, 11)

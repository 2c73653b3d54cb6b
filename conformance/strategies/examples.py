"""PAR / SPEC / POL: fixed first examples of the task and policy properties.

A process-parallel property runs few generated examples (one at quick), and hypothesis's first
one is the strategy's simplest draw: one task, or tasks sharing one layout.  A pool that loses
heterogeneous tasks' specs, or leaves the healthy tasks' workers running after one task fails,
passes that draw (torchrl's multiprocessing AsyncEnvPool did, at quick).  These properties
therefore also run a fixed two-task case whose tasks' observation layouts differ, as an
explicit example (``@example``): hypothesis runs it first, in every profile, on top of the
generated examples, so the generated search, its shrinking and a seed's examples stay as they
are (changing the strategies' shrink targets instead would change all three).  Each case lies
in its strategy's domain.

The in-process SPEC properties generate 8 examples at quick, and a task set's tasks have a batch
size of their own one time in eight, so a batched env that mishandles those dims passes most
runs: SPEC-001 to SPEC-004 and SPEC-006 to SPEC-008 also run :func:`batched_tasks` first, and
SPEC-005 :func:`conflict_example`, batched tasks that disagree on a key's size, then on its
dtype.  The flat-stack POL properties run :func:`policy_example` first: a stack in which some
elements' task has no head, which all 8 generated examples now and then lack.
"""

from __future__ import annotations

from typing import Any

import torch

from conformance.strategies.policy import PolicyCase
from conformance.strategies.rollouts import FailureCase, RandomRolloutCase
from conformance.strategies.tasks import (
    ConflictCase,
    RolloutCase,
    TaskSet,
    action_draws,
    make_action,
)


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


def batched_tasks() -> list[Any]:
    """Three tasks that are batched envs themselves, batch size [2] (the one :func:`task_sets`
    draws besides [], one time in eight): for batched envs that flatten the tasks' own batch
    dims into the task dim ([6]), drop them ([3]) or put them first ([2, 3]), in their batch
    size, specs or data.  All hold "obs" (float32, [2]); task 0 also holds "extra0" (float32,
    [3]) and tasks 1 and 2 "extra1" (int64, []): top-level keys some tasks lack (a nested one
    whose parent only task 0 holds would hit tensordict's ``lazy-stack-nested-keys-partial-parent``
    through torchrl's SerialEnv).  Action shape [1], seeds 0, 1, 2."""
    from reference.tasks import KeySpec, TaskSpec

    obs = KeySpec("obs", (2,), "float32")
    extra0, extra1 = KeySpec("extra0", (3,), "float32"), KeySpec("extra1", (), "int64")
    return [TaskSpec(f"task{i}", (obs, extra0) if i == 0 else (obs, extra1), action_shape=(1,),
                     episode_length=12, seed=i, batch=(2,)) for i in range(3)]


def batched_spec_example() -> TaskSet:
    """:func:`spec_task_sets`' fixed batched case: :func:`batched_tasks`."""
    return TaskSet(batched_tasks())


def batched_run_example(steps: int) -> RolloutCase:
    """:func:`task_runs`' fixed batched case: :func:`batched_tasks` and ``steps`` rows of
    actions."""
    tasks = batched_tasks()
    return RolloutCase(tasks, _fixed_actions(tasks, steps))


def conflict_example(dtype: bool = False) -> ConflictCase:
    """:func:`spec_conflicts`' fixed case: :func:`batched_tasks` plus "clash", float32 [2] in
    task 0 and float32 [3] in tasks 1 and 2 (the sizes differ at one rank, which torchrl's
    SerialEnv supports end to end), and three rows of actions: for batched envs that accept
    such tasks, then pad, cut or mix up their values.  ``dtype``: int64 [2] in tasks 1 and 2
    (the dtypes differ, the shapes agree; generated conflicts differ in dtype half the time):
    for batched envs that compare only shapes and accept such tasks, then cast their values."""
    import dataclasses

    from reference.tasks import KeySpec

    own = KeySpec("clash", (2,), "float32")
    other = KeySpec("clash", (2,), "int64") if dtype else KeySpec("clash", (3,), "float32")
    tasks = [dataclasses.replace(task, observations=(*task.observations, other if i else own))
             for i, task in enumerate(batched_tasks())]
    return ConflictCase(tasks, "clash", _fixed_actions(tasks, 3))


def policy_example() -> PolicyCase:
    """:func:`policy_cases`' fixed case (a flat stack): three tasks, task 0 with a Linear head,
    task 1 with none, task 2 with an MLP head (one hidden layer of 5); five elements of tasks
    [2, 1, 0, 1, 2], batch size [2], stacked along dim 1 (a [2, 5] stack).  For policies that
    write an action (zeros, a default, another head's output) into the elements no head serves,
    run a head on elements that lack its inputs, or mix elements up along a stack dim other
    than 0."""
    return PolicyCase(seed=0, obs_dim=3, hidden=4, action=2, task_dims=(2, 3, 4),
                      heads=((), None, (5,)), tasks=(2, 1, 0, 1, 2), time=0, dim=1, batch=(2,))


def rollout_example(steps: int = 2, episode_length: int = 5) -> RolloutCase:
    """:func:`rollout_cases`' fixed case: :func:`two_layouts` and ``steps`` rows of actions."""
    tasks = two_layouts(episode_length)
    return RolloutCase(tasks, _fixed_actions(tasks, steps))


def random_rollout_example(steps: int = 20) -> RandomRolloutCase:
    """:func:`random_rollout_cases`' fixed case: :func:`two_layouts` with 3-step episodes (each
    task is done after steps 2, 5, 8, ...) and ``steps`` steps."""
    return RandomRolloutCase(two_layouts(episode_length=3), steps, 11)

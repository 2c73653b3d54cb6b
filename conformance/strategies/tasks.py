"""SPEC / PAR strategies: task sets (reference ``TaskSpec`` lists) and their scripted actions."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from hypothesis import strategies as st

from conformance.strategies._common import _numel, dtypes, layouts, shapes


class TaskSet(NamedTuple):
    """Task specs for a batched env: keys shared by all agree in shape and dtype."""

    tasks: list[Any]  # reference.tasks.TaskSpec


def _key_specs(entries: Any) -> tuple[Any, ...]:
    from reference.tasks import KeySpec

    return tuple(KeySpec(k, shape, dtype) for k, shape, dtype in entries)


@st.composite
def task_sets(draw: Any, min_tasks: int = 1, max_tasks: int = 6, exclusive: bool = False,
              max_episode: int = 12) -> TaskSet:
    """1-6 tasks: keys shared by all (one shape and dtype each), keys held by some tasks and
    keys held by one; nested keys, scalars, zero-size dims, all four dtypes; one action shape;
    distinct seeds.  ``exclusive`` forces at least two tasks and one exclusive key."""
    from reference.tasks import TaskSpec

    n = draw(st.integers(max(min_tasks, 2 if exclusive else 1), max_tasks))
    shared = draw(layouts(min_keys=1, max_keys=2))
    used = {e[0] for e in shared.entries}
    pool_names = [f"extra{j}" for j in range(3)]
    pool = {name: (name, draw(shapes(max_dims=2)), draw(dtypes())) for name in pool_names}
    action_shape = draw(shapes(max_dims=1, max_side=3, allow_zero=False))
    if not action_shape:
        action_shape = (1,)
    tasks = []
    for i in range(n):
        entries = list(shared.entries)
        held = draw(st.lists(st.sampled_from(pool_names), unique=True, max_size=2))
        if exclusive and i == 0:
            held = [*held, f"only{i}"]
            pool[f"only{i}"] = (("task0", "own"), draw(shapes(max_dims=1)), draw(dtypes()))
        entries += [pool[h] for h in held if pool[h][0] not in used]
        tasks.append(TaskSpec(
            name=f"task{i}",
            observations=_key_specs(entries),
            action_shape=action_shape,
            episode_length=draw(st.integers(2, max_episode)),
            seed=draw(st.integers(0, 2**16)) * 8 + i,
        ))
    return TaskSet(tasks)


@st.composite
def action_sequences(draw: Any, task_set: TaskSet, steps: int) -> list[list[Any]]:
    """``steps`` rows of per-task actions in [-1, 1] (multiples of 1/4, so values print short)."""
    rows = []
    for _ in range(steps):
        row = []
        for task in task_set.tasks:
            n = _numel(task.action_shape)
            vals = draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n))
            row.append(torch.tensor(vals, dtype=torch.float32).reshape(task.action_shape) / 4)
        rows.append(row)
    return rows


@st.composite
def reset_masks(draw: Any, n: int) -> torch.Tensor:
    """A ``_reset`` mask of shape [n, 1] (any pattern, shrinking toward resetting task 0)."""
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return torch.tensor(bits, dtype=torch.bool).reshape(n, 1)


def _spread(task: Any, i: int, draws: list[int]) -> torch.Tensor:
    """Task i's action from drawn integers: entry j is ((k_j + i + j) mod 9 - 4) / 4, so the
    all-zero (shrunk) draw still gives every task and every entry a different action."""
    vals = [((k + i + j) % 9 - 4) / 4 for j, k in enumerate(draws)]
    return torch.tensor(vals, dtype=torch.float32).reshape(task.action_shape)


@st.composite
def scripted_actions(draw: Any, tasks: list[Any], steps: int) -> list[list[torch.Tensor]]:
    """``steps`` rows of per-task actions in [-1, 1] (multiples of 1/4) that differ between
    tasks even when shrunk, so a subject that mixes tasks' actions up cannot pass by chance."""
    rows = []
    for _ in range(steps):
        row = []
        for i, task in enumerate(tasks):
            n = _numel(task.action_shape)
            row.append(_spread(task, i, draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))))
        rows.append(row)
    return rows


@st.composite
def witnessed_task_sets(draw: Any, min_tasks: int = 2, max_tasks: int = 3,
                        max_episode: int = 5) -> TaskSet:
    """A task set in which every task also holds a float key ``own{i}`` no other task has (a
    "witness": non-empty, float, so a stale, swapped or dropped task-exclusive value shows even
    in the shrunk example)."""
    import dataclasses

    from reference.tasks import KeySpec

    ts = draw(task_sets(min_tasks, max_tasks, max_episode=max_episode))
    tasks = []
    for i, task in enumerate(ts.tasks):
        shape = draw(shapes(max_dims=1, allow_zero=False))
        dtype = draw(st.sampled_from(("float32", "float64")))
        tasks.append(dataclasses.replace(
            task, observations=(*task.observations, KeySpec(f"own{i}", shape, dtype))))
    return TaskSet(tasks)


class RolloutCase(NamedTuple):
    """Tasks and a rollout's scripted actions: ``actions[t][i]`` is task i's action at step t."""

    tasks: list[Any]  # reference.tasks.TaskSpec
    actions: list[list[Any]]


@st.composite
def spec_task_sets(draw: Any, min_tasks: int = 1, max_tasks: int = 4) -> TaskSet:
    """:func:`task_sets` of 1-4 tasks, three times in four with a nested key exclusive to task 0
    (``("task0", "own")``, whose parent no other task has; shrinks toward none)."""
    exclusive = max_tasks >= 2 and draw(st.integers(0, 3)) != 0
    return draw(task_sets(min_tasks=min_tasks, max_tasks=max_tasks, exclusive=exclusive))


@st.composite
def task_runs(draw: Any, steps: int, min_tasks: int = 1, max_tasks: int = 4) -> RolloutCase:
    """A :func:`spec_task_sets` task set with ``steps`` rows of scripted actions."""
    ts = draw(spec_task_sets(min_tasks=min_tasks, max_tasks=max_tasks))
    return RolloutCase(ts.tasks, draw(action_sequences(ts, steps)))


CLASH_KEYS = ("clash", ("sub", "clash"), ("agent", "clash"))


class ConflictCase(NamedTuple):
    """Tasks that all hold ``key`` with at least two different (shape, dtype) among them, and
    ``actions[t][i]`` for three steps (one reset-step, then a two-step rollout)."""

    tasks: list[Any]  # reference.tasks.TaskSpec
    key: Any
    actions: list[list[Any]]


@st.composite
def spec_conflicts(draw: Any, min_tasks: int = 2, max_tasks: int = 4) -> ConflictCase:
    """A :func:`task_sets` task set (2-4 tasks) plus a key held by every task, where some tasks
    disagree with task 0 on its shape (same or different rank), its dtype, or both; the other
    keys follow task_sets' rules (shared keys agree)."""
    import dataclasses

    from reference.tasks import KeySpec

    base = draw(task_sets(min_tasks=min_tasks, max_tasks=max_tasks))
    key = draw(st.sampled_from(CLASH_KEYS))
    kind = draw(st.sampled_from(("shape", "dtype", "both")))
    shape0, dtype0 = draw(shapes()), draw(dtypes())
    shape1 = draw(shapes().filter(lambda s: s != shape0)) if kind != "dtype" else shape0
    dtype1 = draw(dtypes().filter(lambda d: d != dtype0)) if kind != "shape" else dtype0
    n = len(base.tasks)
    other = draw(st.integers(1, n - 1))  # this task surely disagrees with task 0
    tasks = []
    for i, task in enumerate(base.tasks):
        differs = i == other or (i > 0 and draw(st.booleans()))
        shape, dtype = (shape1, dtype1) if differs else (shape0, dtype0)
        tasks.append(dataclasses.replace(
            task, observations=(*task.observations, KeySpec(key, shape, dtype))))
    actions = draw(action_sequences(TaskSet(tasks), 3))
    return ConflictCase(tasks, key, actions)

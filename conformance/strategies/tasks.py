"""SPEC / PAR strategies: task sets (reference ``TaskSpec`` lists) and their scripted actions."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from hypothesis import strategies as st

from conformance.strategies._common import _numel, dtypes, layouts, shapes


class TaskSet(NamedTuple):
    """Task specs for a batched env: keys shared by all agree in shape and dtype."""

    tasks: list[Any]  # reference.tasks.TaskSpec


def _key_specs(entries: Any, bounded: frozenset[Any] = frozenset()) -> tuple[Any, ...]:
    from reference.tasks import KeySpec

    return tuple(KeySpec(k, shape, dtype, bounded=k in bounded and dtype != "bool")
                 for k, shape, dtype in entries)


# The wider world's dimensions (each draw shrinks to the simplest task: a Bounded float
# "action", reward and done at the root, tensors only, batch size [], Unbounded specs).
ACTION_KINDS = ("bounded", "unbounded", "categorical", "onehot", "multicategorical",
                "multionehot", "binary")
GROUP = "agents"  # the group key of multi-agent-style reward / done entries
SIGNALS = ("root", "both", "group")  # reward/done at the root, at the root and the group, group
TEXTS = ((), ("text",), ("text", ("info", "note")))  # string (non-tensor) observation entries
TASK_BATCHES = ((), (2,))  # every task's own batch size (one per task set)
WIDE_ODDS = 4  # a task set turns each wide dimension on one time in WIDE_ODDS (or when forced)


def _sometimes(draw: Any, forced: bool = False) -> bool:
    """A task set's switch for one wide dimension: on one time in :data:`WIDE_ODDS` (shrinks to
    off), so most sets still lack it and a subject that cannot handle one dimension keeps being
    tested on the others (its examples do not all hit that dimension's finding)."""
    return forced or draw(st.integers(0, WIDE_ODDS - 1)) == WIDE_ODDS - 1


@st.composite
def action_layouts(draw: Any) -> tuple[str, tuple[int, ...]]:
    """An action spec kind and its shape (shrinks to ("bounded", (1,)))."""
    kind = draw(st.sampled_from(ACTION_KINDS))
    if kind in ("bounded", "unbounded"):
        return kind, draw(shapes(max_dims=1, max_side=3, allow_zero=False)) or (1,)
    if kind == "categorical":
        return kind, draw(st.sampled_from(((), (1,), (2,))))
    if kind == "onehot":
        return kind, (3,)
    return kind, (draw(st.integers(1, 3)),)


@st.composite
def task_sets(draw: Any, min_tasks: int = 1, max_tasks: int = 6, exclusive: bool = False,
              max_episode: int = 12, force: str = "") -> TaskSet:
    """1-6 tasks: keys shared by all (one shape and dtype each), keys held by some tasks and
    keys held by one; nested keys, scalars, zero-size dims, all four dtypes, Bounded or
    Unbounded specs; an action of any kind at "action" (and a second kind at a second key for
    some tasks); reward and done at the root, under a group key (with a group batch dim or
    not) or both; string entries; one task batch size ([] or [2]); distinct seeds. Each of the
    last four is switched on for a set one time in :data:`WIDE_ODDS` (:func:`_sometimes`).
    ``exclusive`` forces at least two tasks and one exclusive key; ``force`` one dimension:
    "actions" (two tasks at least, task 1 acting with a second kind at a second key), "group"
    (task 0's reward and done only under the group key), "text" (string entries in every task).
    """
    from reference.tasks import TaskSpec

    two = exclusive or force == "actions"
    n = draw(st.integers(max(min_tasks, 2 if two else 1), max(max_tasks, 2 if two else 1)))
    shared = draw(layouts(min_keys=1, max_keys=2))
    used = {e[0] for e in shared.entries}
    pool_names = [f"extra{j}" for j in range(3)]
    pool = {name: (name, draw(shapes(max_dims=2)), draw(dtypes())) for name in pool_names}
    kind, action_shape = draw(action_layouts())
    batch = draw(st.sampled_from(TASK_BATCHES)) if _sometimes(draw) else ()
    grouped, texts = _sometimes(draw, force == "group"), _sometimes(draw, force == "text")
    group_size = draw(st.integers(0, 2))
    named = [e[0] for e in shared.entries]  # (a list: a set's order changes between processes)
    bounded = frozenset(draw(st.lists(st.sampled_from([*named, *pool_names]), unique=True,
                                      max_size=2)))
    second = draw(action_layouts()) if _sometimes(draw, force == "actions") else None
    second_keys = [("ctrl", "action"), "move"] + ([(GROUP, "action")] if not group_size else [])
    second_key = draw(st.sampled_from(second_keys)) if second else None
    tasks = []
    for i in range(n):
        entries = list(shared.entries)
        held = draw(st.lists(st.sampled_from(pool_names), unique=True, max_size=2))
        if exclusive and i == 0:
            held = [*held, f"only{i}"]
            pool[f"only{i}"] = (("task0", "own"), draw(shapes(max_dims=1)), draw(dtypes()))
        entries += [pool[h] for h in held if pool[h][0] not in used]
        signals = ("group" if force == "group" and i == 0 else
                   draw(st.sampled_from(SIGNALS)) if grouped else "root")
        own = second and i > 0 and ((force == "actions" and i == 1) or draw(st.booleans()))
        tasks.append(TaskSpec(
            name=f"task{i}",
            observations=_key_specs(entries, bounded),
            action_shape=second[1] if own else action_shape,
            episode_length=draw(st.integers(2, max_episode)),
            seed=draw(st.integers(0, 2**16)) * 8 + i,
            action_kind=second[0] if own else kind,
            action_key=second_key if own else "action",
            group=GROUP if signals != "root" else "",
            group_size=group_size if signals != "root" else 0,
            root_signals=signals != "group",
            text_keys=(draw(st.sampled_from(TEXTS[1:] if force == "text" else TEXTS))
                       if texts else ()),
            batch=batch,
        ))
    return TaskSet(tasks)


def action_leaf(task: Any) -> tuple[Any, tuple[int, ...]]:
    """A task's action key and the shape of its value (batch and group dims included), as its
    env's action spec has them (reference.tasks.TaskEnv)."""
    key = task.action_key
    in_group = bool(task.group) and (key if isinstance(key, str) else key[0]) == task.group
    group = (task.group_size,) if in_group and task.group_size else ()
    return key, (*task.batch, *group, *task.action_shape)


def action_draws(task: Any) -> int:
    """How many integers :func:`make_action` reads for one action of ``task``."""
    shape = action_leaf(task)[1]
    if task.action_kind == "onehot":
        return _numel(shape[:-1])
    if task.action_kind == "multionehot":
        return _numel(shape[:-1]) * ((shape[-1] + 1) // 2)
    return _numel(shape)


def make_action(task: Any, draws: list[int], shift: int = 0) -> Any:
    """Task ``task``'s action (a TensorDict at its action key, batch size its own) from integers
    in 0..8: entry j of draw k is ``k + shift + j`` mapped into the kind's range (floats: mod 9,
    minus 4, over 4, so values print short); ``shift`` (the task index) makes the all-zero
    (shrunk) draw differ between tasks."""
    from tensordict import TensorDict

    key, shape = action_leaf(task)
    kind = task.action_kind
    vals = [k + shift + j for j, k in enumerate(draws)]
    if kind in ("bounded", "unbounded"):
        value = torch.tensor([(v % 9 - 4) / 4 for v in vals], dtype=torch.float32)
    elif kind in ("categorical", "multicategorical"):
        value = torch.tensor([v % 3 for v in vals], dtype=torch.int64)
    elif kind == "binary":
        value = torch.tensor([v % 2 for v in vals], dtype=torch.int8)
    elif kind == "onehot":
        value = torch.nn.functional.one_hot(torch.tensor([v % 3 for v in vals]), 3).bool()
    else:  # multionehot: segments of 2 (and a last one of 1), one-hot each
        parts = []
        per_row = (shape[-1] + 1) // 2
        for row in range(len(vals) // max(per_row, 1)):
            for m, v in enumerate(vals[row * per_row:(row + 1) * per_row]):
                size = min(2, shape[-1] - 2 * m)
                parts.append(torch.nn.functional.one_hot(torch.tensor(v % size), size).bool())
        value = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.bool)
    return TensorDict({key: value.reshape(shape)}, batch_size=list(task.batch))


@st.composite
def action_sequences(draw: Any, task_set: TaskSet, steps: int) -> list[list[Any]]:
    """``steps`` rows of per-task actions (:func:`make_action`; floats in [-1, 1], multiples of
    1/4)."""
    rows = []
    for _ in range(steps):
        row = []
        for task in task_set.tasks:
            n = action_draws(task)
            row.append(make_action(task, draw(st.lists(st.integers(0, 8), min_size=n,
                                                       max_size=n))))
        rows.append(row)
    return rows


@st.composite
def reset_masks(draw: Any, n: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    """A ``_reset`` mask of shape [n, *batch, 1] (one bit per task, any pattern, shrinking
    toward resetting task 0; a batched task's rows share its bit)."""
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    mask = torch.tensor(bits, dtype=torch.bool).reshape(n, *[1] * len(batch), 1)
    return mask.expand(n, *batch, 1).clone()


@st.composite
def scripted_actions(draw: Any, tasks: list[Any], steps: int) -> list[list[Any]]:
    """``steps`` rows of per-task actions (:func:`make_action` shifted by the task index) that
    differ between tasks even when shrunk, so a subject that mixes tasks' actions up cannot
    pass by chance."""
    rows = []
    for _ in range(steps):
        row = []
        for i, task in enumerate(tasks):
            n = action_draws(task)
            row.append(make_action(task, draw(st.lists(st.integers(0, 8), min_size=n,
                                                       max_size=n)), shift=i))
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
    disagree with task 0 on its shape (same or different rank), its dtype, both, or only its
    spec class (Bounded instead of Unbounded); the other keys follow task_sets' rules (shared
    keys agree)."""
    import dataclasses

    from reference.tasks import KeySpec

    base = draw(task_sets(min_tasks=min_tasks, max_tasks=max_tasks))
    key = draw(st.sampled_from(CLASH_KEYS))
    kind = draw(st.sampled_from(("shape", "dtype", "both", "class")))
    shape0, dtype0 = draw(shapes()), draw(dtypes())
    if kind == "class":  # same shape and dtype, Unbounded in task 0, Bounded in the others
        dtype0 = "float32" if dtype0 == "bool" else dtype0
    shape1 = draw(shapes().filter(lambda s: s != shape0)) if kind in ("shape", "both") else shape0
    dtype1 = draw(dtypes().filter(lambda d: d != dtype0)) if kind in ("dtype", "both") else dtype0
    n = len(base.tasks)
    other = draw(st.integers(1, n - 1))  # this task surely disagrees with task 0
    tasks = []
    for i, task in enumerate(base.tasks):
        differs = i == other or (i > 0 and draw(st.booleans()))
        shape, dtype = (shape1, dtype1) if differs else (shape0, dtype0)
        tasks.append(dataclasses.replace(task, observations=(
            *task.observations, KeySpec(key, shape, dtype, bounded=kind == "class" and differs))))
    actions = draw(action_sequences(TaskSet(tasks), 3))
    return ConflictCase(tasks, key, actions)

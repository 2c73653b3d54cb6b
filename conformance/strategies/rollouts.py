"""PAR strategies: rollouts, partial resets, seeds and worker failures over task sets."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from hypothesis import strategies as st

from conformance.strategies.tasks import (
    RolloutCase,
    reset_masks,
    scripted_actions,
    task_sets,
    witnessed_task_sets,
)


@st.composite
def rollout_cases(draw: Any, min_tasks: int = 1, max_tasks: int = 4, exclusive: bool = False,
                  min_steps: int = 1, max_steps: int = 10, max_episode: int = 5,
                  witness: bool = False, force: str = "") -> RolloutCase:
    """A task set (episodes of 2..``max_episode`` steps, so rollouts cross episode ends) and
    ``min_steps..max_steps`` rows of scripted actions; ``witness``: at least two tasks, each
    with its own float key (:func:`witnessed_task_sets`); ``force``: see :func:`task_sets`."""
    if witness:
        ts = draw(witnessed_task_sets(max(min_tasks, 2), max_tasks, max_episode))
    else:
        ts = draw(task_sets(min_tasks, max_tasks, exclusive=exclusive, max_episode=max_episode,
                            force=force))
    steps = draw(st.integers(min_steps, max_steps))
    return RolloutCase(ts.tasks, draw(scripted_actions(ts.tasks, steps)))


class PartialResetCase(NamedTuple):
    """Steps taken before a partial reset (no task reaches its episode end), the ``_reset`` mask
    ([n, *task batch, 1] bool) and the steps taken after it."""

    tasks: list[Any]
    before: list[list[Any]]
    mask: torch.Tensor
    after: list[list[Any]]


@st.composite
def partial_reset_cases(draw: Any, max_tasks: int = 4) -> PartialResetCase:
    """1-4 tasks, 0..(shortest episode - 1) steps, a mask of any pattern, then 1-8 steps (long
    enough to cross the unmasked tasks' episode ends)."""
    ts = draw(task_sets(1, max_tasks, max_episode=6))
    shortest = min(t.episode_length for t in ts.tasks)
    before = draw(scripted_actions(ts.tasks, draw(st.integers(0, shortest - 1))))
    mask = draw(reset_masks(len(ts.tasks), ts.tasks[0].batch))
    after = draw(scripted_actions(ts.tasks, draw(st.integers(1, 8))))
    return PartialResetCase(ts.tasks, before, mask, after)


class SeedCase(NamedTuple):
    """``copies`` copies of one task (same spec and seed), a seed for ``set_seed`` and the action
    every copy takes at each step (the same for all copies: only seeds can tell them apart)."""

    task: Any
    copies: int
    seed: int
    actions: list[Any]


@st.composite
def seed_cases(draw: Any, max_copies: int = 3) -> SeedCase:
    """One task built 2..``max_copies`` times, a seed and 1-6 steps of actions."""
    task = draw(task_sets(1, 1, max_episode=4)).tasks[0]
    steps = draw(st.integers(1, 6))
    actions = [row[0] for row in draw(scripted_actions([task], steps))]
    return SeedCase(task, draw(st.integers(2, max_copies)), draw(st.integers(0, 2**16)), actions)


class FailureCase(NamedTuple):
    """Tasks of which ``tasks[index]`` fails: at its ``raise_at_step``-th step, or at
    construction (``raise_at_init``); ``actions`` are enough rows to reach the failing step."""

    tasks: list[Any]
    index: int
    actions: list[list[Any]]


@st.composite
def failure_cases(draw: Any, at: str = "step", max_tasks: int = 3) -> FailureCase:
    """1..``max_tasks`` tasks (long episodes, so no reset interferes); task ``index`` raises at
    ``at`` = "step" (its 1st..3rd step) or "init" (while its env is built)."""
    import dataclasses

    ts = draw(task_sets(1, max_tasks, max_episode=12))
    tasks = [dataclasses.replace(t, episode_length=12) for t in ts.tasks]
    index = draw(st.integers(0, len(tasks) - 1))
    if at == "step":
        step = draw(st.integers(1, 3))
        tasks[index] = dataclasses.replace(tasks[index], raise_at_step=step)
        actions = draw(scripted_actions(tasks, step))
    else:
        tasks[index] = dataclasses.replace(tasks[index], raise_at_init=True)
        actions = []
    return FailureCase(tasks, index, actions)


HANG_SECONDS = 600.0  # how long a "hung" task env sleeps: longer than any bound a property states


@st.composite
def hang_cases(draw: Any, at: str | None = None, max_tasks: int = 2) -> FailureCase:
    """Like :func:`failure_cases`, but task ``index`` stops answering instead of raising: its
    env sleeps :data:`HANG_SECONDS` at its 1st..3rd step (``at="step"``) or while it is built
    (``"init"``); ``at=None`` draws which."""
    import dataclasses

    where = at or draw(st.sampled_from(("step", "init")))
    base = draw(failure_cases(where, max_tasks))
    task = base.tasks[base.index]
    hung = (dataclasses.replace(task, raise_at_step=0, hang_at_step=(task.raise_at_step,
                                                                      HANG_SECONDS))
            if where == "step" else
            dataclasses.replace(task, raise_at_init=False, hang_at_init=HANG_SECONDS))
    tasks = list(base.tasks)
    tasks[base.index] = hung
    return FailureCase(tasks, base.index, base.actions)


class RandomRolloutCase(NamedTuple):
    """A random-action rollout: its tasks, its length and the global RNG seed."""

    tasks: list[Any]  # reference.tasks.TaskSpec
    steps: int
    rng_seed: int


@st.composite
def random_rollout_cases(draw: Any, max_tasks: int = 2, max_steps: int = 40,
                         max_episode: int = 5) -> RandomRolloutCase:
    """2..``max_tasks`` witnessed tasks (episodes of 2..``max_episode`` steps) and 1..``max_steps``
    steps: long enough to cross several episode ends, and an implementation's batching of steps
    (chunks, pipelining) at any offset."""
    ts = draw(witnessed_task_sets(2, max_tasks, max_episode))
    return RandomRolloutCase(ts.tasks, draw(st.integers(1, max_steps)),
                             draw(st.integers(0, 2**16)))

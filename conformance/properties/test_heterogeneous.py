"""SPEC / PAR over the wider world: tasks that differ in more than their observation keys.

Real task envs differ in their action (kind, dtype, key), in where their reward and done entries
live (the root, a multi-agent-style group with its own batch dim, or both), in the non-tensor data
they carry (strings, metadata) and in their own batch size.  Every SPEC / PAR property draws such
tasks (``strategies.task_sets``); the properties here each force one dimension, so a batched env
that loses it fails one sentence about it.
"""

from __future__ import annotations

from typing import Any

from conformance.assertions import (
    describe_tensor,
    elements,
    expect,
    expect_td_equal,
    is_non_tensor,
    snapshot,
    tensors_equal,
)
from conformance.properties._core import prop
from conformance.properties._envs import (
    close_env,
    next_root,
    scripted_policy,
    solo_trajectory,
    task_label,
    write_actions,
)
from conformance.strategies import RolloutCase, rollout_cases


@prop("SPEC-010", case=rollout_cases(min_tasks=2, max_tasks=3, min_steps=1, max_steps=2,
                                     force="actions"))
def test_actions_reach_tasks_unchanged(subject, case: RolloutCase) -> None:
    call = "td = serial_env(makers).reset(); then per step env.step(td with task i's action)"
    fix = ("hand each task its own action entry as given: its key, dtype, shape and values "
           "(never cast a discrete action or move it to another key)")
    env = subject.serial_env([t.maker() for t in case.tasks])
    try:
        td = env.reset()
        got = []
        for t, row in enumerate(case.actions):
            try:
                out = snapshot(env.step(write_actions(td, row)))
            except Exception as err:
                kinds = [f"{task.action_kind} at {task.action_key!r}" for task in case.tasks]
                expect(False, f"step {t} raised with the tasks' own actions ({kinds})",
                       f"{type(err).__name__}: {err}"[:400], "each task stepped", call, fix)
            got.append(elements(out))
            td = next_root(out)
    finally:
        close_env(env)
    for i, task in enumerate(case.tasks):
        alone = solo_trajectory(task, [row[i] for row in case.actions])
        for t, row in enumerate(case.actions):
            key = task.action_key
            sent, seen = row[i].get(key), got[t][i].get(key, None)
            expect(tensors_equal(seen, sent), f"step {t}: task {i}'s action entry {key!r} "
                   f"({task.action_kind}) in the step's output", describe_tensor(seen),
                   describe_tensor(sent), call, fix)
            expect_td_equal(got[t][i].get("next"), alone[t].get("next"),
                            f"task {i} ({task_label(task)}): step {t}'s 'next'",
                            call + f" vs TaskEnv(tasks[{i}]) stepped alone", fix=fix)


@prop("PAR-015", case=rollout_cases(min_tasks=2, max_tasks=3, min_steps=3, max_steps=8,
                                    max_episode=3, force="group"))
def test_group_done_resets_task(subject, case: RolloutCase) -> None:
    call = f"serial_env(makers).rollout({len(case.actions)}, policy, break_when_any_done=False)"
    fix = ("reset a task when any of its done entries is set, wherever its spec puts them "
           "(root or nested under a group, with group dims), and only then")
    env = subject.serial_env([t.maker() for t in case.tasks])
    try:
        rollout = snapshot(env.rollout(len(case.actions), scripted_policy(case.actions),
                                       break_when_any_done=False, return_contiguous=False))
    finally:
        close_env(env)
    for i, task in enumerate(case.tasks):
        alone = solo_trajectory(task, [row[i] for row in case.actions])
        for t, step in enumerate(alone):
            expect_td_equal(rollout[i][..., t], step, f"task {i} ({task_label(task)}): step {t}",
                            call, fix=fix)


def non_tensor_entries(td: Any) -> dict[Any, Any]:
    """``{key: python value}`` of every non-tensor entry of a task's tensordict ("next" too)."""
    return {k: td.get(k).tolist() for k in td.keys(include_nested=True)
            if is_non_tensor(td.get(k))}


@prop("PAR-016", kind="parallel",
      case=rollout_cases(min_tasks=2, max_tasks=2, min_steps=1, max_steps=2, max_episode=3,
                         force="text"))
def test_non_tensor_data_crosses_processes(subject, case: RolloutCase) -> None:
    call = "td = parallel_env(makers).reset(); then per step env.step(td with the actions)"
    fix = ("send each task's non-tensor entries (strings, metadata) back from its worker with "
           "its tensors: they have no shared-memory buffer")
    env = subject.parallel_env([t.maker() for t in case.tasks])
    try:
        outs = [snapshot(env.reset())]
        root = outs[0].clone()
        for row in case.actions:
            outs.append(snapshot(env.step(write_actions(root, row))))
            root = next_root(outs[-1])
    finally:
        close_env(env)
    for i, task in enumerate(case.tasks):
        alone = solo_trajectory(task, [row[i] for row in case.actions])
        want = [non_tensor_entries(s.exclude("next", "action")) for s in alone[:1]]
        want += [non_tensor_entries(s.get("next")) for s in alone]
        for t, out in enumerate(outs):
            got = elements(out)[i]
            got = non_tensor_entries(got if t == 0 else got.get("next"))
            what = "reset()" if t == 0 else f"step {t - 1}'s 'next'"
            expect(got == want[t], f"task {i} ({task_label(task)}): the non-tensor entries of "
                   f"{what}", got, want[t], call + f" vs TaskEnv(tasks[{i}]) stepped alone", fix)

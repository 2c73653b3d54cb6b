"""PAR: parallel stepping -- batched envs step each task exactly like that task's env alone.

Actions are scripted (:func:`_envs.scripted_policy`), never drawn from the global RNG, so two
subjects, or a subject and a task env stepped alone, can be compared bitwise.  Everything a subject
returns is copied (``snapshot``) before it is compared.

Worker failures, hangs and shutdown (PAR-008..010, 013, 014) are in :mod:`.test_workers`; the
stateful comparison with the reference (PAR-011) is in :mod:`.test_sequences`.
"""

from __future__ import annotations

from typing import Any

from conformance.assertions import (
    elements,
    expect,
    expect_td_equal,
    is_non_tensor,
    leaf_keys,
    snapshot,
    tensors_equal,
)
from conformance.properties._core import (
    prop,
)
from conformance.properties._envs import (
    close_env,
    done_mask,
    manual_rollout,
    next_root,
    scripted_policy,
    solo_trajectory,
    task_label,
    task_trajectory,
    write_actions,
)
from conformance.strategies import (
    PartialResetCase,
    RandomRolloutCase,
    RolloutCase,
    SeedCase,
    partial_reset_cases,
    random_rollout_cases,
    random_rollout_example,
    rollout_cases,
    seed_cases,
)


def tds_equal(a: Any, b: Any) -> bool:
    """Whether two tensordicts have the same leaf keys and bitwise equal leaves."""
    keys = leaf_keys(a)
    return keys == leaf_keys(b) and all(tensors_equal(a.get(k), b.get(k)) for k in keys)


def stack_leaf_keys(td: Any) -> set[tuple[str, ...]]:
    """The leaf keys a (lazy) tensordict shows, walked one level at a time with ``keys()`` and
    ``get`` (a lazy stack shows the keys all its elements share).  Not ``keys(True, True)``:
    tensordict 0.14 raises KeyError there when one element has a nested key another lacks."""
    out: set[tuple[str, ...]] = set()
    for key in td.keys():
        value = td.get(key)
        if hasattr(value, "batch_size") and hasattr(value, "keys") and not is_non_tensor(value):
            out |= {(key, *sub) for sub in stack_leaf_keys(value)}
        else:
            out.add((key,))
    return out


def rollout_of(env: Any, actions: list[list[Any]]) -> Any:
    """A copy of ``env.rollout`` driven by the scripted actions (no break, lazy output)."""
    return snapshot(env.rollout(len(actions), scripted_policy(actions), return_contiguous=False,
                                break_when_any_done=False))


def expect_same_steps(got: list[Any], expected: list[Any], what: str, call: str,
                      fix: str) -> None:
    """Equal step counts, then each step bitwise equal (leaf keys included)."""
    expect(len(got) == len(expected), f"{what}: number of steps", len(got), len(expected), call,
           fix)
    for t, (g, e) in enumerate(zip(got, expected, strict=True)):
        expect_td_equal(g, e, f"{what}, step {t}", call, fix=fix)


# -- PAR-001..003: trajectories ------------------------------------------------------------------


@prop("PAR-001",
      kind="parallel",
      case=rollout_cases(max_tasks=2, min_steps=5, max_steps=9, max_episode=4, witness=True))
def test_parallel_matches_serial(subject, case: RolloutCase) -> None:
    makers = [t.maker() for t in case.tasks]
    call = f"parallel_env(makers).rollout({len(case.actions)}, policy) vs serial_env(makers)"
    serial = parallel = None
    try:
        serial = subject.serial_env(makers)
        expected = rollout_of(serial, case.actions)
        parallel = subject.parallel_env(makers)
        got = rollout_of(parallel, case.actions)
    finally:
        close_env(serial)
        close_env(parallel)
    for i in range(len(case.tasks)):
        expect_same_steps(task_trajectory(got, i), task_trajectory(expected, i),
                          f"task {i} ({task_label(case.tasks[i])})",
                          call, "step each task's env in its worker exactly as the serial env "
                          "does: same maker, seed, action order and reset points")


def expect_tasks_as_alone(subject: Any, make: str, case: RolloutCase, fix: str) -> None:
    """Roll ``getattr(subject, make)(makers)`` out with the case's scripted actions: each task's
    trajectory must equal that task stepped alone (:func:`solo_trajectory`), step by step."""
    env = getattr(subject, make)([t.maker() for t in case.tasks])
    try:
        got = rollout_of(env, case.actions)
    finally:
        close_env(env)
    for i, task in enumerate(case.tasks):
        alone = solo_trajectory(task, [row[i] for row in case.actions])
        expect_same_steps(task_trajectory(got, i), alone, f"task {i} ({task_label(task)})",
                          f"{make}(makers).rollout({len(case.actions)}, policy)[{i}] vs "
                          f"TaskEnv(tasks[{i}]) stepped alone", fix)


@prop("PAR-002", case=rollout_cases(max_steps=10, witness=True))
def test_serial_task_equals_task_alone(subject, case: RolloutCase) -> None:
    expect_tasks_as_alone(subject, "serial_env", case,
                          "give task i exactly its own maker, actions and resets: no shared RNG, "
                          "no reordering, reset a task only when it is done")


@prop("PAR-003",
      kind="parallel",
      case=rollout_cases(max_tasks=2, min_steps=5, max_steps=9, max_episode=4, witness=True))
def test_parallel_task_equals_task_alone(subject, case: RolloutCase) -> None:
    expect_tasks_as_alone(subject, "parallel_env", case,
                          "route element i's action to worker i and its result back to element "
                          "i; seed each worker's env from its own maker only")


# -- PAR-004: partial reset ----------------------------------------------------------------------


@prop("PAR-004", case=partial_reset_cases())
def test_reset_mask_resets_exactly_masked_tasks(subject, case: PartialResetCase) -> None:
    from reference.tasks import TaskEnv

    n = len(case.tasks)
    mask = case.mask.reshape(len(case.tasks), -1).any(-1).tolist()
    call = (f"env.reset(td) with td['_reset']={mask} after {len(case.before)} steps "
            "(td: the last step's 'next' minus reward, as torchrl's rollout passes it)")
    fix = ("reset only the tasks whose '_reset' entry is True; keep the others' env state and "
           "report their current observations")
    env = subject.serial_env([t.maker() for t in case.tasks])
    alone = [TaskEnv(t) for t in case.tasks]  # the model: each task stepped alone
    try:
        root = env.reset()
        want = [a.reset() for a in alone]
        for row in case.before:  # no task reaches its episode end here
            root = next_root(env.step(write_actions(root.clone(), row)))
            want = [next_root(a.step(w.clone().update(act.clone())))
                    for a, w, act in zip(alone, want, row, strict=True)]
        request = root.clone()
        request.set("_reset", case.mask.clone())
        got = snapshot(env.reset(request))
        want = [alone[i].reset() if mask[i] else want[i] for i in range(n)]
        for i in range(n):
            state = "reset (masked)" if mask[i] else "continued (not masked)"
            expect_td_equal(elements(got)[i], want[i],
                            f"task {i} ({task_label(case.tasks[i])}) {state}: reset output", call,
                            fix=fix)
        root = got
        for t, row in enumerate(case.after):  # the episodes go on, done tasks reset alone
            out = snapshot(env.step(write_actions(root.clone(), row)))
            steps = [a.step(w.clone().update(act.clone()))
                     for a, w, act in zip(alone, want, row, strict=True)]
            for i in range(n):
                label = f"task {i} ({task_label(case.tasks[i])})"
                expect_td_equal(elements(out)[i], steps[i], f"{label}: step {t} after the "
                                "partial reset", call + ", then steps with done tasks reset",
                                fix=fix)
            root = next_root(out)
            want = [next_root(s) for s in steps]
            done = done_mask(root)
            if bool(done.any()):
                root.set("_reset", done)
                root = snapshot(env.reset(root))
                want = [alone[i].reset() if done[i].any() else want[i] for i in range(n)]
    finally:
        close_env(env)
        for a in alone:
            a.close()


# -- PAR-005: seeding ----------------------------------------------------------------------------


@prop("PAR-005", case=seed_cases())
def test_set_seed_distinct_and_reproducible(subject, case: SeedCase) -> None:
    makers = [case.task.maker() for _ in range(case.copies)]
    actions = [[a] * case.copies for a in case.actions]
    call = f"env.set_seed({case.seed}); env.rollout({len(actions)}, policy)"
    env = fresh = None
    try:
        env = subject.serial_env(makers)
        env.set_seed(case.seed)
        first = rollout_of(env, actions)
        runs = [task_trajectory(first, i) for i in range(case.copies)]
        for i in range(case.copies):
            for j in range(i + 1, case.copies):
                same = all(tds_equal(a, b) for a, b in zip(runs[i], runs[j], strict=True))
                expect(not same, f"tasks {i} and {j} (copies of one task, same actions)",
                       "identical trajectories", "different trajectories (distinct seeds)", call,
                       "give task i its own seed (torchrl chains them: task i gets what task "
                       "i-1's env.set_seed returned)")
        rollout_of(env, actions)  # move on, then seed again
        env.set_seed(case.seed)
        again = rollout_of(env, actions)
        fresh = subject.serial_env(makers)
        fresh.set_seed(case.seed)
        other = rollout_of(fresh, actions)
    finally:
        close_env(env)
        close_env(fresh)
    for i in range(case.copies):
        expect_same_steps(task_trajectory(again, i), runs[i], f"task {i}, seeded again",
                          call + " twice on one env", "set_seed must reseed every task's env")
        expect_same_steps(task_trajectory(other, i), runs[i], f"task {i}, fresh env",
                          call + " on two envs built alike", "set_seed must fully determine the "
                          "tasks' randomness")


# -- PAR-006: rollout keys -----------------------------------------------------------------------


@prop("PAR-006", case=rollout_cases(min_tasks=2, max_tasks=4, exclusive=True, max_steps=6))
def test_rollout_keeps_exclusive_keys(subject, case: RolloutCase) -> None:
    n, steps = len(case.tasks), len(case.actions)
    env = subject.serial_env([t.maker() for t in case.tasks])
    try:
        rollout = rollout_of(env, case.actions)
    finally:
        close_env(env)
    call = f"env.rollout({steps}, policy, return_contiguous=False)"
    fix = ("stack the steps lazily (tensordict.lazy_stack) so every task keeps its own keys; do "
           "not densify to the shared keys")
    own = [solo_trajectory(t, [case.actions[0][i]])[0] for i, t in enumerate(case.tasks)]
    shared = set.intersection(*(leaf_keys(td) for td in own))
    batch = list(case.tasks[0].batch)  # the tasks' own batch dims come before time
    expect(list(rollout.batch_size[:2 + len(batch)]) == [n, *batch, steps], "rollout batch size",
           list(rollout.batch_size), [n, *batch, steps], call)
    for i in range(n):
        got, want = stack_leaf_keys(rollout[i]), leaf_keys(own[i])
        expect(got == want, f"leaf keys of rollout[{i}] (missing {sorted(want - got)}, extra "
               f"{sorted(got - want)})", sorted(got), sorted(want), call, fix)
        for key in sorted(leaf_keys(own[i]) - shared):
            value, single = rollout[i].get(key), own[i].get(key)
            if is_non_tensor(single):  # (a string: no dtype; its key is checked above)
                continue
            want = [*batch, steps, *single.shape[len(batch):]]
            expect((list(value.shape), value.dtype) == (want, single.dtype),
                   f"rollout[{i}][{key!r}] (exclusive to task {i})",
                   (list(value.shape), value.dtype), (want, single.dtype), call, fix)
    for t in range(steps):
        got = stack_leaf_keys(rollout[..., t])
        expect(got == shared, f"leaf keys of rollout[:, {t}]", sorted(got), sorted(shared), call,
               "rollout[:, t] is a stack over tasks: it shows exactly the keys all tasks share")


# -- PAR-007: rollout = reset + policy/step ------------------------------------------------------


@prop("PAR-007", case=rollout_cases(max_steps=10, witness=True))
def test_rollout_equals_manual_loop(subject, case: RolloutCase) -> None:
    makers = [t.maker() for t in case.tasks]
    steps = len(case.actions)
    loop = ("reset(); then per step policy(td); step(td); td = next minus reward; "
            "reset(td with '_reset' = done) when a task is done")
    fix = ("rollout must call the policy on the current root, step, record, move 'next' to the "
           "root (every task's own keys included) and reset exactly the done tasks")
    a = b = c = None
    try:
        a = subject.serial_env(makers)
        got = rollout_of(a, case.actions)
        b = subject.serial_env(makers)
        manual = manual_rollout(b, steps, scripted_policy(case.actions))
        c = subject.serial_env(makers)  # the default mode stops after the first done step
        stopped = snapshot(c.rollout(steps, scripted_policy(case.actions),
                                     return_contiguous=False, break_when_any_done=True))
    finally:
        close_env(a)
        close_env(b)
        close_env(c)
    first_done = [t for t, m in enumerate(manual) if bool(done_mask(m.get("next")).any())]
    stop = first_done[0] + 1 if first_done else steps
    for i in range(len(case.tasks)):
        expected = [elements(m)[i] for m in manual]
        label = f"task {i} ({task_label(case.tasks[i])})"
        expect_same_steps(task_trajectory(got, i), expected, label,
                          f"env.rollout({steps}, policy, break_when_any_done=False) vs {loop}",
                          fix)
        expect_same_steps(task_trajectory(stopped, i), expected[:stop], label,
                          f"env.rollout({steps}, policy, break_when_any_done=True) vs {loop}, "
                          "stopping after the first step where a task is done", fix)


# -- PAR-012: rollout without a policy --------------------------------------------------------


# fixed example, first: episode ends inside the rollout
@prop("PAR-012", kind="parallel", case=random_rollout_cases(),
      examples=(dict(case=random_rollout_example()),))
def test_random_rollout_equals_rand_action_loop(subject, case: RandomRolloutCase) -> None:
    import torch

    makers = [t.maker() for t in case.tasks]
    call = (f"torch.manual_seed({case.rng_seed}); parallel_env(makers).rollout({case.steps}, "
            "break_when_any_done=False)")
    loop = (f"torch.manual_seed({case.rng_seed}) and a second env built alike, then reset(); per "
            "step rand_action(td); step(td); td = next minus reward; reset(td with '_reset' = "
            "done) when a task is done")
    fix = ("draw a rollout's actions with rand_action from the global RNG, in step order (not in "
           "the workers), and reset exactly the done tasks between steps")
    first = second = None
    try:
        first = subject.parallel_env(makers)
        torch.manual_seed(case.rng_seed)
        got = snapshot(first.rollout(case.steps, return_contiguous=False,
                                     break_when_any_done=False))
        rng_got = torch.get_rng_state()
        close_env(first)
        second = subject.parallel_env(makers)  # (not set_seed: PAR-005 checks it)
        torch.manual_seed(case.rng_seed)
        manual = manual_rollout(second, case.steps, second.rand_action)
        rng_loop = torch.get_rng_state()
    finally:
        close_env(first)
        close_env(second)
    for i in range(len(case.tasks)):
        expect_same_steps(task_trajectory(got, i), [elements(m)[i] for m in manual],
                          f"task {i} ({task_label(case.tasks[i])})", f"{call} vs {loop}", fix)
    expect(torch.equal(rng_got, rng_loop), "the global RNG state after the rollout",
           "differs from the loop's", "equal", f"{call} vs {loop}", fix)

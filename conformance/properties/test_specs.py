"""SPEC: spec matching -- a batched env's specs and data agree, task by task, with each task's own.

Task i's own specs are those of ``TaskEnv(tasks[i])`` built alone.  A value is *in* a spec when it
is a tensor of exactly the spec's shape and dtype that ``spec.is_in`` accepts (``is_in`` alone
also accepts extra leading dims).  Task sets include, most of the time, a nested key held by task
0 only (``("task0", "own")``): the case torchrl's ``check_env_specs`` refuses to look at.
"""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import strategies as st

from conformance.assertions import expect, expect_tensor_equal, key_tuple, snapshot
from conformance.properties._core import prop
from conformance.properties._envs import (
    close_env,
    next_root,
    scripted_policy,
    shown_exceptions,
    task_label,
    write_actions,
)
from conformance.strategies import (
    ConflictCase,
    RolloutCase,
    TaskSet,
    batched_run_example,
    batched_spec_example,
    conflict_example,
    spec_conflicts,
    spec_example,
    spec_task_sets,
    task_runs,
)

# -- helpers: pasted into reproducers, so they use only torch, tensordict, reference.tasks ------


def task_specs(task: Any) -> dict[str, Any]:
    """Task ``task``'s own specs from its TaskEnv built alone: {"full_observation_spec": ...,
    "observation_spec": ..., ...} for observation, action, reward and done (clones)."""
    from reference.tasks import TaskEnv

    env = TaskEnv(task)
    try:
        return {f"{full}{part}_spec": getattr(env, f"{full}{part}_spec").clone()
                for part in ("observation", "action", "reward", "done") for full in ("full_", "")}
    finally:
        env.close()


def spec_summary(spec: Any) -> Any:
    """A spec as ``{leaf key: "Type(shape) dtype"}`` (a leaf spec as one such string)."""

    def one(s: Any) -> str:
        return f"{type(s).__name__}{tuple(s.shape)} {s.dtype}"

    if not hasattr(spec, "shape"):
        return repr(spec)
    if hasattr(spec, "keys"):
        return {k: one(spec[k]) for k in sorted(spec.keys(True, True), key=str)}
    return one(spec)


def spec_difference(observed: Any, expected: Any) -> str:
    """'' when the two specs are equal, else where they first differ (key, type, shape, dtype)."""
    try:
        if observed == expected:
            return ""
    except Exception as err:  # specs that cannot even be compared differ
        return f"comparing the specs raised {type(err).__name__}: {err}"
    a, b = spec_summary(observed), spec_summary(expected)
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return (f"leaf keys differ: extra {sorted(set(a) - set(b), key=str)}, "
                    f"missing {sorted(set(b) - set(a), key=str)}")
        for k in b:
            if observed[k] != expected[k]:
                return f"leaf {k!r}: {a[k]} vs {b[k]}"
        return f"the composites differ outside their leaves (shapes {observed.shape} vs " \
               f"{expected.shape})"
    if a != b:
        return f"{a} vs {b}"
    return "same type, shape and dtype but not equal (bounds or device)"


def in_spec(spec: Any, value: Any) -> str:
    """'' when ``value`` is a tensor of exactly ``spec``'s shape and dtype that ``spec.is_in``
    accepts (for a non-tensor spec: non-tensor data of the spec's shape), else why not."""
    if value is None:
        return "missing (get returned None)"
    if type(spec).__name__ == "NonTensor":  # strings, metadata: no dtype, a batch size
        size = tuple(getattr(value, "batch_size", ()))
        if isinstance(value, torch.Tensor) or not hasattr(value, "batch_size"):
            return f"not non-tensor data: {value!r}"[:300]
        return "" if size == tuple(spec.shape) else \
            f"non-tensor data of batch size {size}, the spec has shape {tuple(spec.shape)}"
    if not isinstance(value, torch.Tensor):
        return f"not a tensor: {value!r}"[:300]
    got = f"shape {tuple(value.shape)} dtype {value.dtype}"
    if tuple(value.shape) != tuple(spec.shape) or value.dtype != spec.dtype:
        return f"{got}, the spec has shape {tuple(spec.shape)} dtype {spec.dtype}"
    try:
        ok = bool(spec.is_in(value))
    except Exception as err:
        return f"{got}: spec.is_in raised {type(err).__name__}: {err}"
    return "" if ok else f"{got}: outside the spec's space (first {value.flatten()[:6].tolist()})"


def read(td: Any, key: Any) -> Any:
    """``td.get(key)``, or the error it raised as a string (a missing key is not a crash here)."""
    try:
        return td.get(key)
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def names_key(err: BaseException, key: Any) -> bool:
    """Whether ``err``, or an exception shown with it, names every part of ``key``."""
    return any(all(p in str(e) for p in key_tuple(key)) for e in shown_exceptions(err))


# -- properties --------------------------------------------------------------------------------

# fixed first: three tasks with a batch size of their own ([2]), besides the task dim
_BATCHED = (dict(ts=batched_spec_example()),)


@prop("SPEC-001", ts=spec_task_sets(), examples=_BATCHED)
def test_observation_spec_per_task(subject, ts: TaskSet) -> None:
    own = [task_specs(t) for t in ts.tasks]
    env = subject.serial_env([t.maker() for t in ts.tasks])
    try:
        for i, specs in enumerate(own):
            expected = specs["observation_spec"]
            observed = env.observation_spec[i]
            diff = spec_difference(observed, expected)
            expect(diff == "", f"observation_spec[{i}] differs from task {i}'s: {diff}",
                   spec_summary(observed), spec_summary(expected),
                   f"serial_env(makers).observation_spec[{i}] vs "
                   f"TaskEnv(tasks[{i}]).observation_spec",
                   "stack the tasks' own specs (a StackedComposite keeps each task's keys)")
    finally:
        close_env(env)


@prop("SPEC-002", ts=spec_task_sets(), examples=_BATCHED)
def test_action_reward_done_specs_per_task(subject, ts: TaskSet) -> None:
    own = [task_specs(t) for t in ts.tasks]
    env = subject.serial_env([t.maker() for t in ts.tasks])
    try:
        # The shortcuts (action_spec, ...) are a leaf only when a task has one such leaf: they
        # are held to task i's when every task has the same leaf keys for them.
        same = {p: len({tuple(sorted(map(str, o[f"full_{p}_spec"].keys(True, True))))
                        for o in own}) == 1 for p in ("action", "reward", "done")}
        for i, specs in enumerate(own):
            for name in ("full_action_spec", "action_spec", "full_reward_spec", "reward_spec",
                         "full_done_spec", "done_spec"):
                if not name.startswith("full_") and not same[name[:-len("_spec")]]:
                    continue
                expected = specs[name]
                observed = getattr(env, name)[i]
                diff = spec_difference(observed, expected)
                expect(diff == "", f"{name}[{i}] differs from task {i}'s: {diff}",
                       spec_summary(observed), spec_summary(expected),
                       f"serial_env(makers).{name}[{i}] vs TaskEnv(tasks[{i}]).{name}")
    finally:
        close_env(env)


@prop("SPEC-003", ts=spec_task_sets(), examples=_BATCHED)
def test_batch_size_is_number_of_tasks(subject, ts: TaskSet) -> None:
    n = len(ts.tasks)
    env = subject.serial_env([t.maker() for t in ts.tasks])
    try:
        want = (n, *ts.tasks[0].batch)  # the tasks' own batch dims kept, after the task dim
        expect(tuple(env.batch_size) == want, "batch_size", tuple(env.batch_size), want,
               f"serial_env(makers of {n} tasks of batch size {list(want[1:])}).batch_size")
        td = snapshot(env.reset())
        expect(tuple(td.batch_size) == want, "reset().batch_size", tuple(td.batch_size), want,
               f"serial_env(makers of {n} tasks).reset()")
    finally:
        close_env(env)


@prop("SPEC-004", run=task_runs(steps=1), examples=(dict(run=batched_run_example(1)),))
def test_shared_keys_one_shape_and_dtype(subject, run: RolloutCase) -> None:
    n = len(run.tasks)
    own = [task_specs(t) for t in run.tasks]
    shared = {}  # part -> leaf keys every task holds (with one shape and dtype: task_sets' rule)
    for part in ("observation", "action", "reward", "done"):
        keysets = [set(o[f"full_{part}_spec"].keys(True, True)) for o in own]
        shared[part] = sorted(set.intersection(*keysets), key=str)
    env = subject.serial_env([t.maker() for t in run.tasks])
    try:
        for part, keys in shared.items():
            for key in keys:
                want = own[0][f"full_{part}_spec"][key]
                got = getattr(env, f"full_{part}_spec")[key]
                expect(tuple(got.shape) == (n, *want.shape) and got.dtype == want.dtype,
                       f"full_{part}_spec[{key!r}], a key every task of {n} holds",
                       f"shape {tuple(got.shape)} dtype {got.dtype}",
                       f"shape {(n, *want.shape)} dtype {want.dtype}",
                       f"serial_env(makers).full_{part}_spec[{key!r}]",
                       "a shared key is one dense entry: [n_tasks, *shape] with the tasks' dtype")
        td = env.reset()
        reset_out = snapshot(td)
        step_out = snapshot(env.step(write_actions(td, run.actions[0])))
        for call, data, prefix, parts in (
                ("reset()", reset_out, (), ("observation", "done")),
                ("step(td)", step_out, ("next",), ("observation", "reward", "done"))):
            for part in parts:
                for key in shared[part]:
                    want = own[0][f"full_{part}_spec"][key]
                    path = (*prefix, *key_tuple(key))
                    got = read(data, path)
                    ok = (isinstance(got, torch.Tensor) and got.dtype == want.dtype
                          and tuple(got.shape) == (n, *want.shape))
                    if type(want).__name__ == "NonTensor":  # one non-tensor entry per task
                        got = f"{type(got).__name__} {tuple(getattr(got, 'batch_size', ()))}"
                        ok = got == f"NonTensorStack {(n, *want.shape)}"
                    expect(ok, f"{call}.get({path!r}), a key every task of {n} holds",
                           f"shape {tuple(got.shape)} dtype {got.dtype}"
                           if isinstance(got, torch.Tensor) else got,
                           f"shape {(n, *want.shape)} dtype {want.dtype}",
                           f"serial_env(makers).{call}.get({path!r})")
    finally:
        close_env(env)


# fixed first: batched tasks that disagree on a key's size (at one rank), then on its dtype
@prop("SPEC-005", case=spec_conflicts(),
      examples=(dict(case=conflict_example()), dict(case=conflict_example(dtype=True))))
def test_conflicting_key_refused_or_supported(subject, case: ConflictCase) -> None:
    from reference.tasks import TaskEnv

    key, path = case.key, key_tuple(case.key)
    try:
        env = subject.serial_env([t.maker() for t in case.tasks])
    except Exception as err:  # refused at construction: the error must name the key
        expect(names_key(err, key),
               f"construction refused tasks that disagree on {key!r} without naming the key",
               f"{type(err).__name__}: {err}", f"an error whose message names {key!r}",
               "serial_env(makers)", "name the key, the tasks and both shapes/dtypes")
        return
    alone = [TaskEnv(t) for t in case.tasks]
    stage = "observation_spec"
    try:
        # Spec: index i of the stacked spec holds task i's own spec for the key.
        for i, task_env in enumerate(alone):
            got = env.observation_spec[i][key]
            want = task_env.observation_spec[key]
            diff = spec_difference(got, want)
            expect(diff == "", f"accepted, but task {i}'s spec for {key!r} differs: {diff}",
                   spec_summary(got), spec_summary(want),
                   f"serial_env(makers).observation_spec[{i}][{key!r}]")
        # Data: reset, one step, then a 2-step rollout, each read per element.
        stage = "reset()"
        td = env.reset()
        reset_out = snapshot(td)
        stage = "step(td)"
        step_out = snapshot(env.step(write_actions(td, case.actions[0])))
        stage = "rollout(2, policy, return_contiguous=False)"
        roll = snapshot(env.rollout(2, scripted_policy(case.actions[1:]), return_contiguous=False))
        stage = "reading the key per element"
        got = {}  # (call, task, path) -> what the batched env gave
        for i in range(len(alone)):
            got[f"reset()[{i}]", i, path] = reset_out[i].get(path)
            got[f"step(td)[{i}]", i, ("next", *path)] = step_out[i].get(("next", *path))
            for t in range(2):
                for where in (path, ("next", *path)):
                    got[f"rollout(2, policy)[{i}][{t}]", i, where] = roll[i][..., t].get(where)
    except AssertionError:
        raise
    except Exception as err:
        expect(False, f"accepted tasks that disagree on {key!r}, but {stage} raised",
               f"{type(err).__name__}: {err}"[:600], "the key working end to end",
               f"serial_env(makers).{stage}",
               "refuse such tasks at construction with an error naming the key, or support "
               "the key in specs, data, rollout and reading")
    finally:
        close_env(env)
    # Each element against its task stepped alone with the same actions.
    want = {}
    try:
        for i, task_env in enumerate(alone):
            r = task_env.reset()
            want[f"reset()[{i}]", i, path] = r.get(path)
            s = task_env.step(r.update(case.actions[0][i].clone()))
            want[f"step(td)[{i}]", i, ("next", *path)] = s.get(("next", *path))
            r = task_env.reset()
            for t in range(2):
                s = task_env.step(r.update(case.actions[1 + t][i].clone()))
                for where in (path, ("next", *path)):
                    want[f"rollout(2, policy)[{i}][{t}]", i, where] = s.get(where)
                r = next_root(s)
    finally:
        for task_env in alone:
            task_env.close()
    for (call, i, where), value in want.items():
        expect_tensor_equal(got[call, i, where], value,
                            f"accepted, but element {i}'s {where!r} differs from task {i} "
                            "stepped alone", f"serial_env(makers).{call}")


@prop("SPEC-006", ts=spec_task_sets(), seed=st.integers(0, 2**16),
      examples=(dict(ts=batched_spec_example(), seed=0),))
def test_random_actions_accepted(subject, ts: TaskSet, seed: int) -> None:
    n = len(ts.tasks)
    env = subject.serial_env([t.maker() for t in ts.tasks])
    try:
        torch.manual_seed(seed)
        td = env.reset()
        for t in range(2):  # two steps: every task's episode lasts at least two
            sample = env.full_action_spec.rand()
            drawn = snapshot(sample)
            td.update(sample)
            call = (f"torch.manual_seed({seed}); td = serial_env(makers).reset(); then per step "
                    "td.update(env.full_action_spec.rand()); env.step(td)")
            try:
                out = env.step(td)
            except Exception as err:
                expect(False, f"step {t} refused a random action drawn from full_action_spec",
                       f"{type(err).__name__}: {err}"[:400], f"accepted ({drawn})",
                       call, "accept every action the reported action spec contains")
            want = (n, *ts.tasks[0].batch)
            expect(tuple(out.batch_size) == want, f"step {t}: output batch_size",
                   tuple(out.batch_size), want, call)
            for i in range(n):
                expect("next" in out[i].keys(), f"step {t}: element {i} has a 'next' entry",
                       sorted(map(str, out[i].keys())), "'next' among them", call)
            td = td.exclude("next")
    finally:
        close_env(env)


@prop("SPEC-007", ts=spec_task_sets(), examples=_BATCHED)
def test_reset_elements_in_own_specs(subject, ts: TaskSet) -> None:
    own = [task_specs(t) for t in ts.tasks]
    env = subject.serial_env([t.maker() for t in ts.tasks])
    try:
        td = snapshot(env.reset())
        for i, specs in enumerate(own):
            for part in ("observation", "done"):
                spec = specs[f"full_{part}_spec"]
                for key in spec.keys(True, True):
                    why = in_spec(spec[key], read(td[i], key))
                    expect(why == "", f"reset()[{i}][{key!r}] is not in task {i}'s {part} spec "
                           f"({task_label(ts.tasks[i])})", why, spec_summary(spec[key]),
                           f"serial_env(makers).reset()[{i}]")
    finally:
        close_env(env)


@prop("SPEC-008", run=task_runs(steps=2), examples=(dict(run=batched_run_example(2)),))
def test_step_elements_in_own_specs(subject, run: RolloutCase) -> None:
    own = [task_specs(t) for t in run.tasks]
    env = subject.serial_env([t.maker() for t in run.tasks])
    try:
        td = env.reset()
        for t, row in enumerate(run.actions):  # two steps: the second may end an episode
            out = env.step(write_actions(td, row))
            got = snapshot(out)
            for i, specs in enumerate(own):
                for part in ("observation", "reward", "done"):
                    spec = specs[f"full_{part}_spec"]
                    for key in spec.keys(True, True):
                        why = in_spec(spec[key], read(got[i], ("next", *key_tuple(key))))
                        expect(why == "", f"step {t}: step(td)[{i}]['next'][{key!r}] is not in "
                               f"task {i}'s {part} spec ({task_label(run.tasks[i])})", why,
                               spec_summary(spec[key]),
                               f"serial_env(makers).step(td)[{i}]['next']")
            td = out.exclude("next")
    finally:
        close_env(env)


# fixed example, first: two tasks whose layouts differ
@prop("SPEC-009", kind="parallel", ts=spec_task_sets(min_tasks=2, max_tasks=2),
      examples=(dict(ts=spec_example()),))
def test_parallel_specs_match_serial(subject, ts: TaskSet) -> None:
    # A serial env reports task i's own specs at index i (SPEC-001/002), so the parallel env is
    # held to those: the property needs parallel_env only.  Two tasks keep worker starts cheap.
    n = len(ts.tasks)
    own = [task_specs(t) for t in ts.tasks]
    env = subject.parallel_env([t.maker() for t in ts.tasks])
    try:
        want = (n, *ts.tasks[0].batch)
        expect(tuple(env.batch_size) == want, "batch_size", tuple(env.batch_size), want,
               f"parallel_env(makers of {n} tasks).batch_size")
        for i, specs in enumerate(own):
            for name in ("full_observation_spec", "full_action_spec", "full_reward_spec",
                         "full_done_spec"):
                observed = getattr(env, name)[i]
                diff = spec_difference(observed, specs[name])
                expect(diff == "", f"parallel {name}[{i}] differs from task {i}'s: {diff}",
                       spec_summary(observed), spec_summary(specs[name]),
                       f"parallel_env(makers).{name}[{i}] vs TaskEnv(tasks[{i}]).{name}")
    finally:
        close_env(env)

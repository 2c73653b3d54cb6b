"""SCN: the seed tutorial ("Task-specific policy in multi-task environments") end to end.

The inputs are the tutorial's own: dm_control humanoid stand and walk, each a ``TransformedEnv``
with ``CatTensors`` + ``DoubleToFloat`` (``reference.dmc``), the tutorial's policy (a shared
``nn.Linear(67, 64)`` backbone and two ``MLP(67 + 64, 21, depth=2)`` heads) with fixed weights,
and a batched env over ``[stand_maker, walk_maker]``.  These are example-based checks (plain
tests, no generated inputs): every example starts real physics, and the parallel one starts
worker processes.

One fact of the tutorial is used as an oracle throughout: both ``CatTensors`` read the same
observation keys in the same order, so ``observation_<task>`` and ``observation`` are the same
67 floats at every step.
"""

from __future__ import annotations

import torch

from conformance.assertions import (
    elements,
    expect,
    expect_is,
    expect_td_equal,
    expect_tensor_equal,
    leaf_keys,
    snapshot,
    tensors_equal,
)
from conformance.properties._core import prop
from conformance.properties._envs import child_pids, close_env


def tutorial_policy(sequential):
    """The tutorial's policy built with ``sequential``, with fixed weights (seed 0).

    A shared backbone ``observation -> hidden`` and one head per task reading
    ``observation_<task>`` and ``hidden`` and writing ``action`` (21 floats).
    """
    from tensordict.nn import TensorDictModule
    from torch import nn
    from torchrl.modules import MLP

    with torch.random.fork_rng():
        torch.manual_seed(0)
        common = TensorDictModule(nn.Linear(67, 64), in_keys=["observation"],
                                  out_keys=["hidden"])
        stand = TensorDictModule(MLP(67 + 64, 21, depth=2),
                                 in_keys=["observation_stand", "hidden"], out_keys=["action"])
        walk = TensorDictModule(MLP(67 + 64, 21, depth=2),
                                in_keys=["observation_walk", "hidden"], out_keys=["action"])
    return sequential(common, stand, walk, partial_tolerant=True)


def humanoid_envs():
    """The tutorial's stand and walk envs (``reference.dmc`` makers), built once per process.

    Building one costs about 0.2 s; the properties only read their transforms and specs and
    reset them, so every property and subject shares the same two envs.
    """
    cache = humanoid_envs.__dict__.setdefault("cache", [])
    if not cache:
        from reference.dmc import stand_maker, walk_maker

        cache.extend([stand_maker(), walk_maker()])
    return list(cache)


def humanoid_resets():
    """New reset outputs of the stand and walk envs, each reset right after ``set_seed(0)``."""
    resets = []
    for env in humanoid_envs():
        env.set_seed(0)
        resets.append(env.reset())
    return resets


def expect_entry(td, key, shape, dtype, what, call, fix=""):
    """``td`` holds ``key`` as a tensor of this shape and dtype."""
    __tracebackhide__ = True
    keys = leaf_keys(td)
    k = (key,) if isinstance(key, str) else tuple(key)
    expect(k in keys, f"{what}: key {key!r} present", sorted(keys), f"a key set holding {key!r}",
           call, fix)
    value = td.get(key)
    expect((tuple(value.shape), value.dtype) == (tuple(shape), dtype), f"{what}[{key!r}]",
           f"shape={tuple(value.shape)} dtype={value.dtype}",
           f"shape={tuple(shape)} dtype={dtype}", call, fix)


def first_difference(a, b):
    """The first index along dim 0 where ``a`` and ``b`` differ bitwise (None when equal)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return 0
    rows = (a != b).reshape(a.shape[0], -1).any(-1).nonzero()
    return int(rows[0]) if len(rows) else None


@prop("SCN-001")
def test_humanoid_envs_build(subject) -> None:
    from torchrl.envs import CatTensors, DoubleToFloat

    resets = humanoid_resets()
    tasks = (("stand", "walk"), ("walk", "stand"))
    for (task, other), env, reset in zip(tasks, humanoid_envs(), resets, strict=True):
        call = f"{task}_maker()"
        kinds = [type(t) for t in env.transform]
        expect(kinds == [CatTensors, CatTensors, DoubleToFloat], f"{call}.transform",
               [k.__name__ for k in kinds], ["CatTensors", "CatTensors", "DoubleToFloat"], call)
        spec = env.observation_spec
        for key in ("observation", f"observation_{task}"):
            expect(key in spec.keys(), f"{call}.observation_spec has {key!r}",
                   sorted(map(str, spec.keys())), f"a spec holding {key!r}", call)
            expect((tuple(spec[key].shape), spec[key].dtype) == ((67,), torch.float32),
                   f"{call}.observation_spec[{key!r}]",
                   f"shape={tuple(spec[key].shape)} dtype={spec[key].dtype}",
                   "shape=(67,) dtype=torch.float32", call)
        for key in ("observation", f"observation_{task}"):
            expect_entry(reset, key, (67,), torch.float32, f"{call}.reset()", call)
        expect((f"observation_{other}",) not in leaf_keys(reset),
               f"{call}.reset() has the other task's key", sorted(leaf_keys(reset)),
               f"no 'observation_{other}'", call)
        expect_tensor_equal(reset.get(f"observation_{task}"), reset.get("observation"),
                            f"{call}.reset()['observation_{task}'] vs ['observation']", call)
    call = "lazy_stack([stand.reset(), walk.reset()], 0)"
    stack = subject.lazy_stack(resets, 0)
    expect(list(stack.batch_size) == [2], f"{call}.batch_size", list(stack.batch_size), [2],
           call)
    obs = stack.get("observation")
    expect_tensor_equal(obs, torch.stack([r.get("observation") for r in resets]),
                        f"{call}['observation']", call,
                        "the shared 67-dim float32 'observation' must show at the stack level")
    for i, task in enumerate(("stand", "walk")):
        expect_entry(stack[i], f"observation_{task}", (67,), torch.float32, f"{call}[{i}]", call,
                     "every element keeps its own task's exclusive observation")
        expect_tensor_equal(stack[i].get(f"observation_{task}"),
                            resets[i].get(f"observation_{task}"),
                            f"{call}[{i}]['observation_{task}']", call)


@prop("SCN-002")
def test_stack_of_resets_indexes_originals(subject) -> None:
    tdreset1, tdreset2 = humanoid_resets()
    call = "lazy_stack([tdreset1, tdreset2], 0)"
    stack = subject.lazy_stack([tdreset1, tdreset2], 0)
    for index, original in ((0, tdreset1), (1, tdreset2), (-2, tdreset1), (-1, tdreset2)):
        expect_is(stack[index], original, f"stack[{index}]", call,
                  "keep the stacked tensordicts and return them on indexing (no copy)")


@prop("SCN-003")
def test_policy_on_single_and_stacked_resets(subject) -> None:
    policy = tutorial_policy(subject.sequential)
    resets = humanoid_resets()
    singles = []
    with torch.no_grad():
        for task, reset in zip(("stand", "walk"), resets, strict=True):
            call = f"seq({task}_env.reset())"
            td = reset.clone()
            out = policy(td)
            out = td if out is None else out
            expect_entry(out, "action", (21,), torch.float32, call, call,
                         f"the {task} head must run on an env holding 'observation_{task}'")
            singles.append(snapshot(out))
        call = "seq(lazy_stack([stand_reset, walk_reset], 0))"
        stack = subject.lazy_stack([r.clone() for r in resets], 0)
        out = policy(stack)
        out = stack if out is None else out
        for i, single in enumerate(singles):
            element = snapshot(elements(out)[i])
            expect_entry(element, "action", (21,), torch.float32, f"{call}[{i}]", call,
                         "run each head on every element of the stack holding its keys")
            # Tolerance: a vectorized backbone over a stack runs a batched matmul where the single
            # env runs a matrix-vector product; the two kernels may sum in a different order (the
            # statement says "equals", not "bitwise"). rtol 1e-5 / atol 1e-6 is far below any
            # real difference.
            expect_td_equal(element, single, f"{call}[{i}] vs seq(reset {i}) alone", call,
                            fix="an element's result must not depend on the other elements",
                            rtol=1e-5, atol=1e-6)


@prop("SCN-004")
def test_batched_env_is_multi_task(subject) -> None:
    from tensordict.nn import TensorDictSequential

    from reference.dmc import stand_maker, walk_maker

    call = "env = serial_env([stand_maker, walk_maker]); td = seq(env.reset()); env.step(td)"
    policy = tutorial_policy(TensorDictSequential)
    env = subject.serial_env([stand_maker, walk_maker])
    try:
        with torch.no_grad():
            td = env.reset()
            reset = [snapshot(e) for e in elements(td)]
            expect(len(reset) == 2, "number of elements of env.reset()", len(reset), 2, call)
            out = policy(td)
            td = td if out is None else out
            out = env.step(td)
        written = {"the input td": td, "step's return": td if out is None else out}
        for name, result in written.items():
            for i, (own, other) in enumerate((("observation_stand", "observation_walk"),
                                              ("observation_walk", "observation_stand"))):
                element = elements(result)[i]
                what = f"{name}, element {i}"
                expect_entry(element, "action", (21,), torch.float32, what, call)
                expect_entry(element, own, (67,), torch.float32, what, call)
                for key in ("observation", own):
                    expect_entry(element, ("next", key), (67,), torch.float32, what, call,
                                 "step must write each task's result under 'next' of its own "
                                 "element, in place")
                keys = leaf_keys(element)
                expect(("next", "reward") in keys, f"{what}: ('next', 'reward') present",
                       sorted(keys), "a key set holding ('next', 'reward')", call)
                expect((other,) not in keys and ("next", other) not in keys,
                       f"{what}: the other task's key {other!r}", sorted(keys),
                       f"no {other!r} (each task keeps its own keys)", call)
                nxt = element.get(("next", own))
                expect_tensor_equal(nxt, element.get(("next", "observation")),
                                    f"{what}['next', {own!r}] vs ['next', 'observation']", call)
                expect(not tensors_equal(nxt, reset[i].get(own)),
                       f"{what}['next', {own!r}] after one step", "equal to the reset value",
                       "the state after one physics step", call,
                       "step each task's env and write its new observation")
    finally:
        close_env(env)


@prop("SCN-005")
def test_rollout_keeps_exclusive_keys(subject) -> None:
    from tensordict.nn import TensorDictSequential

    from reference.dmc import stand_maker, walk_maker

    call = ("serial_env([stand_maker, walk_maker]).rollout(100, seq, "
            "return_contiguous=False)")
    policy = tutorial_policy(TensorDictSequential)
    env = subject.serial_env([stand_maker, walk_maker])
    try:
        with torch.no_grad():
            rollout = env.rollout(100, policy, return_contiguous=False)
    finally:
        close_env(env)
    expect(list(rollout.batch_size)[:2] == [2, 100], "rollout.batch_size",
           list(rollout.batch_size), [2, 100], call)
    first = rollout[:, 0]
    shared = set.intersection(*(leaf_keys(e) for e in elements(first)))
    expect(leaf_keys(first) == shared, "rollout[:, 0] keys", sorted(leaf_keys(first)),
           sorted(shared), call, "a step across tasks shows exactly the keys all tasks share")
    for i, (own, other) in enumerate((("observation_stand", "observation_walk"),
                                      ("observation_walk", "observation_stand"))):
        traj = rollout[i]
        what = f"rollout[{i}]"
        keys = leaf_keys(traj)
        for key in (own, ("next", own)):
            expect_entry(traj, key, (100, 67), torch.float32, what, call,
                         "keep each task's exclusive keys in its own trajectory")
        expect((other,) not in keys, f"{what}: the other task's key {other!r}", sorted(keys),
               f"no {other!r}", call)
        # The tutorial's two CatTensors read the same keys: observation_<task> == observation.
        for key, same in ((own, "observation"), (("next", own), ("next", "observation"))):
            t = first_difference(traj.get(key), traj.get(same))
            expect(t is None, f"{what}[{key!r}][t] vs {what}[{same!r}][t]",
                   f"different from step t={t}", "equal at every step", call,
                   "an exclusive key must carry the current step's value, not a stale one")
        # Each step starts where the previous one ended (no task is done within 100 steps of
        # the humanoid's 1000-step episodes; steps after a done are left out all the same).
        done = traj.get(("next", "done")).reshape(100, -1).any(-1)[:-1]
        t = first_difference(traj.get(own)[1:][~done], traj.get(("next", own))[:-1][~done])
        expect(t is None, f"{what}[{own!r}][t + 1] vs {what}['next', {own!r}][t]",
               f"different from step t={t}", "equal at every step", call,
               "move each step's 'next' exclusive observation to the next step's root")


@prop("SCN-006", kind="parallel")
def test_serial_and_parallel_agree(subject) -> None:
    import multiprocessing.resource_tracker
    import time

    from tensordict.nn import TensorDictSequential

    from reference.dmc import stand_maker, walk_maker

    # The multiprocessing resource tracker is process-wide, started by the first spawn and meant
    # to outlive any env: start it now so it is not counted as the env's child.
    multiprocessing.resource_tracker.ensure_running()
    before = child_pids()
    policy = tutorial_policy(TensorDictSequential)
    rollouts, envs = {}, {}
    try:
        for name in ("serial_env", "parallel_env"):
            envs[name] = env = getattr(subject, name)([stand_maker, walk_maker])
            env.set_seed(7)
            with torch.no_grad():
                rollouts[name] = snapshot(env.rollout(30, policy, return_contiguous=False))
    finally:
        for env in envs.values():
            close_env(env)
    call = "env.set_seed(7); env.rollout(30, seq, return_contiguous=False)"
    for i in range(2):
        ser, par = rollouts["serial_env"][i], rollouts["parallel_env"][i]
        for t in range(30):
            expect_td_equal(snapshot(par[t]), snapshot(ser[t]),
                            f"task {i}, step {t}: parallel vs serial", call,
                            fix="seed task i's env in the worker exactly as the serial env "
                                "does, and keep task order")
    deadline = time.monotonic() + 3.0  # a closed worker may take a moment to be reaped
    while (left := child_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    expect(not left, "child processes alive after close()", sorted(left), [],
           "parallel_env([stand_maker, walk_maker]).close()",
           "join (then terminate) every worker in close()")

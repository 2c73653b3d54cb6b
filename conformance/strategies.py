"""Hypothesis strategies for the properties: key layouts, tensordicts, (nested) stacks, task sets.

Every strategy shrinks toward small, readable examples: few elements, few keys, short shapes,
float32, zeros.  Values are small integers cast to the key's dtype, so failures print legibly and
bitwise comparisons are meaningful.  Sections are owned by area; keep each one self-contained.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from hypothesis import strategies as st

DTYPES = ("float32", "float64", "int64", "bool")
NAMES = ("obs", "pos", "vel", "img", "goal", "mask")

# -- shared building blocks -------------------------------------------------------------------


def shapes(max_dims: int = 2, max_side: int = 3, allow_zero: bool = True) -> st.SearchStrategy:
    """Tensor shapes: scalars, short vectors, small matrices, zero-size dims (shrinks to ())."""
    side = st.integers(0 if allow_zero else 1, max_side)
    return st.lists(side, max_size=max_dims).map(tuple)


def dtypes() -> st.SearchStrategy[str]:
    """A dtype name among float32 (the shrink target), float64, int64 and bool."""
    return st.sampled_from(DTYPES)


def keys(nested: bool = True) -> st.SearchStrategy:
    """A key: a plain name or a 2-level nested key like ("sub", "pos")."""
    plain = st.sampled_from(NAMES)
    if not nested:
        return plain
    return st.one_of(plain, st.tuples(st.sampled_from(("sub", "agent")), plain))


class Layout(NamedTuple):
    """Leaf keys -> (shape, dtype name); one layout describes one tensordict's entries."""

    entries: tuple[tuple[Any, tuple[int, ...], str], ...]


def _prefix_clash(keyset: list[Any]) -> bool:
    """True when a plain key is also used as a nested key's parent (an impossible layout)."""
    plain = {k for k in keyset if isinstance(k, str)}
    return any(isinstance(k, tuple) and k[0] in plain for k in keyset)


@st.composite
def layouts(draw: Any, min_keys: int = 1, max_keys: int = 4) -> Layout:
    """A valid set of leaf keys with shapes and dtypes."""
    ks = draw(st.lists(keys(), min_size=min_keys, max_size=max_keys, unique=True)
              .filter(lambda ks: not _prefix_clash(ks)))
    return Layout(tuple((k, draw(shapes()), draw(dtypes())) for k in ks))


_TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
                 "bool": torch.bool}


def value(shape: tuple[int, ...], dtype: str, start: int) -> torch.Tensor:
    """A deterministic tensor: start, start+1, ... cast to dtype (bool: odd numbers True)."""
    n = 1
    for s in shape:
        n *= s
    base = torch.arange(start, start + n, dtype=torch.int64).reshape(shape)
    if dtype == "bool":
        return base % 2 == 1
    return base.to(_TORCH_DTYPES[dtype])


def make_td(layout: Layout, batch: tuple[int, ...] = (), start: int = 0) -> Any:
    """A TensorDict following ``layout`` with batch size ``batch`` and values counting up."""
    from tensordict import TensorDict

    td = TensorDict({}, batch_size=batch)
    for k, (key, shape, dtype) in enumerate(layout.entries):
        td.set(key, value(tuple(batch) + tuple(shape), dtype, start + 100 * k))
    return td


# -- STK / EXC: stacks ------------------------------------------------------------------------
#
# Element i of a stack holds values counting up from 1000 * i, so a value read back names the
# element it came from.  Keys an element may or may not hold are named "x0", "x1", ...: plain,
# nested under "sub" (a parent the shared keys may use too) or under "own" (a parent only such
# keys use), so stacks mix exclusive leaves, exclusive parents and shared parents with partial
# leaves.  Everything shrinks toward one element, batch (), dim 0, one float32 key.


class StackCase(NamedTuple):
    """Tensordicts to stack along ``dim`` (maybe negative): all share one batch size; keys may
    differ per element."""

    tds: list[Any]
    dim: int


class SliceCase(NamedTuple):
    """A stack case and the slice ``slice(*bounds)`` taken along its stack dim."""

    tds: list[Any]
    dim: int
    bounds: tuple[Any, Any, Any]


class IndexCase(NamedTuple):
    """A stack case and an index into the stack's batch: ints, and ``[start, stop, step]``
    lists standing for slices."""

    tds: list[Any]
    dim: int
    index: list[Any]


class NewKeyCase(NamedTuple):
    """A stack case and a key no element holds, with a value shaped like the stack's batch."""

    tds: list[Any]
    dim: int
    key: Any
    value: torch.Tensor


class NestedStackCase(NamedTuple):
    """A stack of stacks: ``grid[t]`` is stacked along ``inner_dim`` into the t-th inner stack,
    and the inner stacks along ``outer_dim`` (like a rollout's time x task stack)."""

    grid: list[list[Any]]
    inner_dim: int
    outer_dim: int


def _batch_shapes(max_dims: int = 2) -> st.SearchStrategy:
    """Batch sizes: (), short ones, now and then a zero-size dim (shrinks to ())."""
    side = st.one_of(st.integers(1, 3), st.just(0))
    return st.lists(side, max_size=max_dims).map(tuple)


def _stack_dims(ndim: int) -> st.SearchStrategy[int]:
    """A dim valid for inserting one dim into ``ndim`` dims, negative ones included."""
    return st.integers(-(ndim + 1), ndim)


@st.composite
def _optional_entries(draw: Any, n: int, exclusive: bool) -> list[tuple[Any, list[bool]]]:
    """Keys held by some elements: (entry, holders); with ``exclusive`` the first is held by
    element 0 and not by the last element."""
    count = draw(st.integers(1 if exclusive else 0, 3))
    out = []
    for j in range(count):
        key = draw(st.sampled_from((f"x{j}", ("sub", f"x{j}"), ("own", f"x{j}"))))
        entry = (key, draw(shapes(max_dims=1)), draw(dtypes()))
        holders = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        if exclusive and j == 0:
            holders[0], holders[-1] = True, False
        out.append((entry, holders))
    return out


@st.composite
def _elements(draw: Any, n: int, batch: tuple[int, ...], homogeneous: bool, exclusive: bool,
              start: int = 0) -> list[Any]:
    """``n`` tensordicts of batch size ``batch`` sharing a layout, plus optional keys."""
    shared = draw(layouts(min_keys=1, max_keys=3))
    optional = [] if homogeneous else draw(_optional_entries(n, exclusive))
    tds = []
    for i in range(n):
        entries = list(shared.entries) + [e for e, holders in optional if holders[i]]
        tds.append(make_td(Layout(tuple(entries)), batch, start=start + 1000 * i))
    return tds


@st.composite
def stack_cases(draw: Any, homogeneous: bool = False, min_n: int = 1, max_n: int = 4,
                exclusive: bool = False) -> StackCase:
    """Stacks of 1-4 tensordicts with shared keys (same shape and dtype) and, unless
    ``homogeneous``, keys held by some elements only (plain and nested); ``exclusive`` forces
    at least two elements and one key that element 0 holds and the last one lacks."""
    n = draw(st.integers(max(min_n, 2 if exclusive else 1), max(max_n, 2 if exclusive else 1)))
    batch = draw(_batch_shapes())
    dim = draw(_stack_dims(len(batch)))
    return StackCase(draw(_elements(n, batch, homogeneous, exclusive)), dim)


@st.composite
def slice_cases(draw: Any, exclusive: bool = True) -> SliceCase:
    """A stack case and a slice along its stack dim: bounds may be None, negative or out of
    range, steps 1-3 (shrinks to ``slice(None, None, None)``)."""
    case = draw(stack_cases(exclusive=exclusive))
    n = len(case.tds)
    bound = st.one_of(st.none(), st.integers(-n - 1, n + 1))
    step = st.one_of(st.none(), st.integers(1, 3))
    return SliceCase(case.tds, case.dim, (draw(bound), draw(bound), draw(step)))


@st.composite
def index_cases(draw: Any) -> IndexCase:
    """A homogeneous stack case and an index of ints and slices over the stack's batch dims."""
    case = draw(stack_cases(homogeneous=True))
    ndim = len(case.tds[0].batch_size) + 1
    d = case.dim % ndim
    sizes = list(case.tds[0].batch_size)
    sizes.insert(d, len(case.tds))
    count = draw(st.integers(0, ndim))
    index: list[Any] = []
    for size in sizes[:count]:
        as_int = st.integers(-size, size - 1) if size else st.nothing()
        as_slice = st.tuples(st.one_of(st.none(), st.integers(-size - 1, size + 1)),
                             st.one_of(st.none(), st.integers(-size - 1, size + 1)),
                             st.one_of(st.none(), st.integers(1, 3))).map(list)
        index.append(draw(st.one_of(as_int, as_slice)))
    return IndexCase(case.tds, case.dim, index)


@st.composite
def new_key_cases(draw: Any) -> NewKeyCase:
    """A stack case and a key no element holds: plain, under a parent some elements may hold
    ("sub", "own"), or under a parent none holds ("fresh")."""
    case = draw(stack_cases())
    key = draw(st.sampled_from(("new", ("sub", "new"), ("own", "new"), ("fresh", "new"))))
    batch = list(case.tds[0].batch_size)
    batch.insert(case.dim % (len(batch) + 1), len(case.tds))
    shape = tuple(batch) + draw(shapes(max_dims=1))
    return NewKeyCase(case.tds, case.dim, key, value(shape, draw(dtypes()), 5000))


@st.composite
def nested_stack_cases(draw: Any, exclusive: bool = False) -> NestedStackCase:
    """1-3 inner stacks of 1-3 elements each; every innermost element has its own values and
    maybe keys of its own (``exclusive``: at least one key some element lacks)."""
    outer = draw(st.integers(1, 3))
    inner = draw(st.integers(2 if exclusive else 1, 3))
    batch = draw(_batch_shapes(max_dims=1))
    flat = draw(_elements(outer * inner, batch, False, exclusive))
    grid = [flat[t * inner:(t + 1) * inner] for t in range(outer)]
    return NestedStackCase(grid, draw(_stack_dims(len(batch))), draw(_stack_dims(len(batch) + 1)))


# -- SPEC / PAR: task sets ---------------------------------------------------------------------


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
            n = 1
            for s in task.action_shape:
                n *= s
            vals = draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n))
            row.append(torch.tensor(vals, dtype=torch.float32).reshape(task.action_shape) / 4)
        rows.append(row)
    return rows


@st.composite
def reset_masks(draw: Any, n: int) -> torch.Tensor:
    """A ``_reset`` mask of shape [n, 1] (any pattern, shrinking toward resetting task 0)."""
    bits = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return torch.tensor(bits, dtype=torch.bool).reshape(n, 1)


# -- POL: policies ----------------------------------------------------------------------------


class PolicyCase(NamedTuple):
    """A multi-task policy scenario as plain numbers (modules and tensordicts are built from it).

    Task ``t`` has the shared key "observation" (``obs_dim``) and its own "observation_<t>"
    (``task_dims[t]``); ``heads[t]`` is None (no head) or the hidden-layer sizes of its MLP head
    (``()``: one Linear) reading ("observation_<t>", "hidden") and writing "action" (``action``).
    The backbone maps "observation" to "hidden" (``hidden``).  ``tasks`` gives each element's task;
    ``time`` 0 makes a flat stack along ``dim``, ``time`` T > 0 a nested stack: T stacks of those
    elements (dim 0), stacked along ``dim``.  ``batch`` is every element's batch size; ``seed``
    fixes weights and values.
    """

    seed: int
    obs_dim: int
    hidden: int
    action: int
    task_dims: tuple[int, ...]
    heads: tuple[Any, ...]
    tasks: tuple[int, ...]
    time: int
    dim: int
    batch: tuple[int, ...]


@st.composite
def policy_cases(draw: Any, nested: bool | None = False, min_elements: int = 1,
                 max_elements: int = 64) -> PolicyCase:
    """1-4 tasks (some possibly without a head, at least one with), a backbone and MLP/Linear
    heads; a flat stack of 1-64 elements (``nested=False``), a nested time x task stack
    (``nested=True``: 1-4 steps of 1-6 elements) or either (``None``); leaf batch sizes of up to
    two dims."""
    n_tasks = draw(st.integers(1, 4))
    heads = list(draw(st.lists(
        st.one_of(st.just(()), st.none(), st.lists(st.integers(1, 8), min_size=1, max_size=2)
                  .map(tuple)),
        min_size=n_tasks, max_size=n_tasks)))
    if all(h is None for h in heads):
        heads[0] = ()
    is_nested = draw(st.booleans()) if nested is None else nested
    time = draw(st.integers(1, 4)) if is_nested else 0
    top = min(max_elements, 6) if is_nested else max_elements
    # a multi-task stack holds at least two tasks (when it can); other tasks may be absent
    present = draw(st.lists(st.integers(0, n_tasks - 1), unique=True,
                            min_size=min(2, n_tasks, top), max_size=min(n_tasks, top)))
    extra = draw(st.lists(st.sampled_from(present),
                          min_size=max(0, min_elements - len(present)),
                          max_size=top - len(present)))
    tasks = draw(st.permutations(present + extra))
    batch = draw(shapes(max_dims=2, max_side=3, allow_zero=False))
    # nested: the inner stacks have batch [n, *batch]; the outer stack goes before or after n
    dim = draw(st.integers(0, 1 if is_nested else len(batch)))
    return PolicyCase(
        seed=draw(st.integers(0, 2**16)),
        obs_dim=draw(st.integers(1, 6)),
        hidden=draw(st.integers(1, 8)),
        action=draw(st.integers(1, 4)),
        task_dims=tuple(draw(st.lists(st.integers(1, 5), min_size=n_tasks, max_size=n_tasks))),
        heads=tuple(heads),
        tasks=tuple(tasks),
        time=time,
        dim=dim,
        batch=tuple(batch),
    )


class MissingKeyCase(NamedTuple):
    """One element of ``case`` (task ``case.tasks[0]``) run through the backbone and task
    ``task``'s head with ``missing`` removed from it (or never held: another task's element)."""

    case: PolicyCase
    task: int
    missing: str


@st.composite
def missing_key_cases(draw: Any) -> MissingKeyCase:
    """A single element lacking the shared key, its own task's key, or another task's key."""
    case = draw(policy_cases(max_elements=1))
    task = draw(st.sampled_from([t for t, h in enumerate(case.heads) if h is not None]))
    own = case.tasks[0]
    if own != task:
        missing = f"observation_{task}"
    else:
        missing = draw(st.sampled_from(["observation", f"observation_{task}"]))
    return MissingKeyCase(case, task, missing)


# -- SPEC: spec conflicts ---------------------------------------------------------------------


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


# -- PAR: sequences ----------------------------------------------------------------------------


def _spread(task: Any, i: int, draws: list[int]) -> torch.Tensor:
    """Task i's action from drawn integers: entry j is ((k_j + i + j) mod 9 - 4) / 4, so the
    all-zero (shrunk) draw still gives every task and every entry a different action."""
    vals = [((k + i + j) % 9 - 4) / 4 for j, k in enumerate(draws)]
    return torch.tensor(vals, dtype=torch.float32).reshape(task.action_shape)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


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
def rollout_cases(draw: Any, min_tasks: int = 1, max_tasks: int = 4, exclusive: bool = False,
                  min_steps: int = 1, max_steps: int = 10, max_episode: int = 5,
                  witness: bool = False) -> RolloutCase:
    """A task set (episodes of 2..``max_episode`` steps, so rollouts cross episode ends) and
    ``min_steps..max_steps`` rows of scripted actions; ``witness``: at least two tasks, each
    with its own float key (:func:`witnessed_task_sets`)."""
    if witness:
        ts = draw(witnessed_task_sets(max(min_tasks, 2), max_tasks, max_episode))
    else:
        ts = draw(task_sets(min_tasks, max_tasks, exclusive=exclusive, max_episode=max_episode))
    steps = draw(st.integers(min_steps, max_steps))
    return RolloutCase(ts.tasks, draw(scripted_actions(ts.tasks, steps)))


class PartialResetCase(NamedTuple):
    """Steps taken before a partial reset (no task reaches its episode end), the ``_reset`` mask
    ([n, 1] bool) and the steps taken after it."""

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
    mask = draw(reset_masks(len(ts.tasks)))
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


# -- PAR / SPEC: fixed first examples of the process-parallel properties ----------------------
#
# A process-parallel property runs few generated examples (one at quick), and hypothesis's first
# one is the strategy's simplest draw: one task, or tasks sharing one layout.  A pool that loses
# heterogeneous tasks' specs, or leaves the healthy tasks' workers running after one task fails,
# passes that draw (torchrl's multiprocessing AsyncEnvPool did, at quick).  These properties
# therefore also run a fixed two-task case whose tasks' observation layouts differ, as an
# explicit example (``@example``): hypothesis runs it first, in every profile, on top of the
# generated examples, so the generated search, its shrinking and a seed's examples stay as they
# are (changing the strategies' shrink targets instead would change all three).  Each case lies
# in its strategy's domain.


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
    return [[_spread(task, i, [0] * _numel(task.action_shape)) for i, task in enumerate(tasks)]
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


def spec_example() -> TaskSet:
    """:func:`spec_task_sets`' fixed case: :func:`two_layouts` (task 0's key is exclusive)."""
    return TaskSet(two_layouts())


def rollout_example(steps: int = 2, episode_length: int = 5) -> RolloutCase:
    """:func:`rollout_cases`' fixed case: :func:`two_layouts` and ``steps`` rows of actions."""
    tasks = two_layouts(episode_length)
    return RolloutCase(tasks, _fixed_actions(tasks, steps))


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


def random_rollout_example(steps: int = 20) -> RandomRolloutCase:
    """:func:`random_rollout_cases`' fixed case: :func:`two_layouts` with 3-step episodes (each
    task is done after steps 2, 5, 8, ...) and ``steps`` steps."""
    return RandomRolloutCase(two_layouts(episode_length=3), steps, 11)

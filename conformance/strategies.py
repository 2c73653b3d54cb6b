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


class StackCase(NamedTuple):
    """Tensordicts to stack along ``dim``: all share ``batch``; keys may differ per element."""

    tds: list[Any]
    dim: int


@st.composite
def stack_cases(draw: Any, homogeneous: bool = False, min_n: int = 1, max_n: int = 4,
                exclusive: bool = False) -> StackCase:
    """Stacks of 1-4 tensordicts with shared keys (same shape and dtype) and, unless
    ``homogeneous``, keys held by some elements only; ``exclusive`` forces at least one."""
    n = draw(st.integers(max(min_n, 2 if exclusive else 1), max_n))
    batch = draw(shapes(max_dims=2, max_side=3, allow_zero=False))
    dim = draw(st.integers(0, len(batch)))
    shared = draw(layouts(min_keys=1, max_keys=3))
    tds = []
    used = {e[0] for e in shared.entries}
    for i in range(n):
        entries = list(shared.entries)
        if not homogeneous:
            extra_name = f"only{i}"
            if exclusive and i == 0 or draw(st.booleans()):
                ex = (extra_name, draw(shapes(max_dims=1)), draw(dtypes()))
                entries.append(ex)
                used.add(extra_name)
        tds.append(make_td(Layout(tuple(entries)), batch, start=1000 * i))
    return StackCase(tds, dim)


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

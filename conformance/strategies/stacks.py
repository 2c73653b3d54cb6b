"""STK / EXC strategies: stacks of tensordicts, slices, indices, new keys, stacks of stacks.

Element i of a stack holds values counting up from 1000 * i, so a value read back names the
element it came from.  Keys an element may or may not hold are named "x0", "x1", ...: plain,
nested under "sub" (a parent the shared keys may use too) or under "own" (a parent only such
keys use), so stacks mix exclusive leaves, exclusive parents and shared parents with partial
leaves.  Everything shrinks toward one element, batch (), dim 0, one float32 key.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from hypothesis import strategies as st

from conformance.strategies._common import Layout, dtypes, layouts, make_td, shapes, value


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

"""STK / EXC: fixed "rich" examples of the stack properties.

The stack strategies (:mod:`.stacks`) shrink toward one element, batch (), dim 0 and one key, and
at quick (8 examples) a property rarely draws the case that tells a lazy stack from a broken one:
several elements, batch dims of their own, a stack dim other than 0 (given negative), and
elements that each hold keys the others lack.  A stack that ignores the stack dim, reads its
elements in the wrong order or drops the keys its elements do not share passes most small draws.
These properties therefore also run fixed rich cases as explicit examples (``@example``, as the
process-parallel properties do, :mod:`.examples`): hypothesis runs them first, in every profile,
on top of the generated examples, so the generated search, its shrinking and a seed's examples
stay as they are.  Each case lies in its strategy's domain.

The cases keep their nested keys under a parent every element holds: a nested key whose parent
only some elements hold trips tensordict's declared finding
``lazy-stack-nested-keys-partial-parent``, and an example that hits a declared finding explores
nothing for the subjects that declare it.  Most cases hold top-level keys only (any nested leaf
also trips ``lazy-stack-nested-leaf-membership`` in EXC-008); ``nested=True`` adds a nested
shared key and a nested key under that shared parent, for the properties that need one.
"""

from __future__ import annotations

from typing import Any

from conformance.strategies._common import Layout, make_td, value
from conformance.strategies.stacks import (
    IndexCase,
    NestedStackCase,
    NewKeyCase,
    SliceCase,
    StackCase,
)

# Every element's batch size and the stack dim: dims of three different sizes ([2, 4, 3] for
# four elements), so a stack along the wrong dim, or one that mixes dims up, shows in a shape.
BATCH = (2, 3)
DIM = -2  # dim 1 of the stack: between the elements' two batch dims


def _shared(nested: bool) -> list[tuple[Any, tuple[int, ...], str]]:
    """The keys every element holds: a float vector, an int scalar and a bool vector;
    ``nested``: the scalar under "sub"."""
    return [("obs", (2,), "float32"), (("sub", "pos") if nested else "pos", (), "int64"),
            ("mask", (3,), "bool")]


def _elements(holders: dict[Any, tuple[bool, ...]], batch: tuple[int, ...],
              nested: bool = False) -> list[Any]:
    """Tensordicts of batch size ``batch`` holding the shared keys, and key k where
    ``holders[k][i]`` (element i's values count up from 1000 * i, as in :mod:`.stacks`)."""
    optional = {"x0": ((3,), "float32"), "x1": ((), "int64"), "x2": ((2,), "float64")}
    n = len(next(iter(holders.values()))) if holders else 4
    tds = []
    for i in range(n):
        own = [(k, *optional[k if isinstance(k, str) else k[-1]]) for k, held in holders.items()
               if held[i]]
        tds.append(make_td(Layout(tuple(_shared(nested) + own)), batch, start=1000 * i))
    return tds


def exclusive_elements(nested: bool = False) -> list[Any]:
    """Four elements, each with its own set of keys besides the shared ones: {x0}, {x1},
    {x0, x1}, {x2}: no two alike, element 0 holds "x0" and the last lacks it, and any two
    elements differ in their keys (a slice or a sub-stack has keys its elements do not share).
    ``nested``: "x1" under the shared parent "sub" (a partial leaf of a shared parent)."""
    x1 = ("sub", "x1") if nested else "x1"
    return _elements({"x0": (True, False, True, False), x1: (False, True, True, False),
                      "x2": (False, False, False, True)}, BATCH, nested)


def rich_stack(nested: bool = False) -> StackCase:
    """:func:`stack_cases`' rich case (``exclusive=True``'s domain too): :func:`exclusive_elements`
    of batch size [2, 3] stacked along dim -2 (a [2, 4, 3] stack).  For the stacks that ignore the
    stack dim or mishandle a negative one, read or write the wrong element's slice, copy their
    elements, and lose, pad or report the keys only some elements hold."""
    return StackCase(exclusive_elements(nested), DIM)


def rich_slice(empty: bool = False) -> SliceCase:
    """:func:`slice_cases`' rich case: :func:`rich_stack` sliced ``[-3:5:2]`` along the stack dim
    (a negative start, a stop past the end, a step: elements 1 and 3, whose own keys differ).  For
    slices that lose the selected elements' exclusive keys, reduce them to the keys the slice
    shares, or count along the wrong dim.  ``empty``: sliced ``[-1:1]``, which selects no
    element: for slices that fail or mis-size when nothing is selected (an empty result built
    from keys the stack wrongly lists, say)."""
    return SliceCase(exclusive_elements(), DIM, (-1, 1, None) if empty else (-3, 5, 2))


def rich_index() -> IndexCase:
    """:func:`index_cases`' rich case (homogeneous): four elements holding the shared keys only,
    batch size [2, 3], stacked along dim -2, indexed ``[-1, 1::2, -2:]`` (an int, a stepped slice
    across the stack dim, a slice of the last dim).  For stacks whose values, or whose index with
    the stack dim taken out, disagree with the dense stack's."""
    return IndexCase(_elements({}, BATCH), DIM, [-1, [1, None, 2], [-2, None, None]])


def rich_new_key() -> NewKeyCase:
    """:func:`new_key_cases`' rich case: :func:`rich_stack` and a new int64 key "new" whose value
    ([2, 4, 3, 2]) differs in every element's slice along the stack dim.  For stacks that give
    every element the same slice, the wrong element's slice or a slice along the wrong dim."""
    case = rich_stack()
    return NewKeyCase(case.tds, case.dim, "new", value((2, 4, 3, 2), "int64", 5000))


def rich_grid() -> NestedStackCase:
    """:func:`nested_stack_cases`' rich case (``exclusive=True``'s domain too): three inner stacks
    of two elements, batch size [2], each inner stack along dim -1 and the outer one along dim 1
    (a [2, 3, 2] stack of stacks); the six elements hold {x0}, {x1} | {x1}, {x0} | {x0}, {x2}
    besides the shared keys, so the elements of every inner stack differ in their keys.  For
    stacks of stacks that copy, densify or re-stack the inner stacks, lose their elements'
    exclusive keys, or index along the wrong dims."""
    tds = _elements({"x0": (True, False, False, True, True, False),
                     "x1": (False, True, True, False, False, False),
                     "x2": (False, False, False, False, False, True)}, (2,))
    return NestedStackCase([tds[0:2], tds[2:4], tds[4:6]], -1, 1)

"""Shared building blocks of the strategies: shapes, dtypes, keys, layouts, tensordicts."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from hypothesis import strategies as st

DTYPES = ("float32", "float64", "int64", "bool")
NAMES = ("obs", "pos", "vel", "img", "goal", "mask")


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


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def value(shape: tuple[int, ...], dtype: str, start: int) -> torch.Tensor:
    """A deterministic tensor: start, start+1, ... cast to dtype (bool: odd numbers True)."""
    n = _numel(shape)
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

"""Mutants of the stacking capability (areas STK and EXC).

Each factory returns a subject whose ``lazy_stack`` breaks exactly one behaviour of a conformant
lazy stack, mostly by a subclass that overrides one method.  The base, :class:`ConformantStack`,
is tensordict's ``LazyStackedTensorDict`` with the tensordict deviations this area
finds fixed (see conformance/findings/tensordict.toml), so that a mutant fails what it breaks and
not what tensordict gets wrong.  ``KILLS`` lists, per mutant, the properties it fails in the
derandomized ``ci`` profile.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDictBase
from tensordict._lazy import _LazyStackedTensorDictKeysView

from conformance.subject import Subject


def _key(key: Any) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def _is_key(index: Any) -> bool:
    """Whether an index is a (nested) key rather than a batch index."""
    return isinstance(index, str) or (
        isinstance(index, tuple) and bool(index) and all(isinstance(i, str) for i in index))


def _leaves(td: Any) -> set[tuple[str, ...]]:
    return {_key(k) for k in td.keys(include_nested=True, leaves_only=True)}


def _shared_leaves(tds: list[Any]) -> list[tuple[str, ...]]:
    return sorted(set.intersection(*(_leaves(td) for td in tds)))


def _holds(td: Any, key: Any) -> bool:
    return _key(key) in {_key(k) for k in td.keys(include_nested=True)}


# -- the conformant base -----------------------------------------------------------------------


class _SharedKeysView(_LazyStackedTensorDictKeysView):
    """The keys every element holds, computed from the elements' own key views."""

    def _shared(self) -> list[tuple[str, ...]]:
        sets = [{_key(k) for k in td.keys(self.include_nested, self.leaves_only)}
                for td in self.tensordict.tensordicts]
        return sorted(set.intersection(*sets)) if sets else []

    def __iter__(self) -> Any:
        if self.is_leaf is not _DEFAULT_IS_LEAF:
            yield from super().__iter__()
            return
        yield from (k[0] if len(k) == 1 else k for k in self._shared())

    def __len__(self) -> int:
        return len(self._shared()) if self.is_leaf is _DEFAULT_IS_LEAF else super().__len__()

    def __contains__(self, item: Any) -> bool:
        key = _key(item)
        if len(key) > 1 and not self.include_nested:
            return False  # the top-level view lists no nested key
        if self.is_leaf is not _DEFAULT_IS_LEAF:
            return super().__contains__(item)
        return key in set(self._shared())


_DEFAULT_IS_LEAF = _LazyStackedTensorDictKeysView(None, False, False).is_leaf


class ConformantStack(LazyStackedTensorDict):
    """tensordict's lazy stack with its deviations fixed: a keys view of exactly the shared keys
    (iteration no longer raises on a nested tensordict some elements lack, `in` is right for
    nested leaves, and the top-level view does not find nested keys), an index that selects no
    element keeps the shared keys (as the dense stack does) instead of returning a stack with no
    keys, and densify() keeps only the shared keys instead of padding the others."""

    @classmethod
    def stack(cls, tds: list[Any], dim: int = 0) -> Any:
        if dim < 0:
            dim += tds[0].batch_dims + 1
        return cls(*tds, stack_dim=dim)

    def keys(self, include_nested: bool = False, leaves_only: bool = False, is_leaf: Any = None,
             *, sort: bool = False) -> Any:
        return _SharedKeysView(self, include_nested=include_nested, leaves_only=leaves_only,
                               is_leaf=is_leaf, sort=sort)

    def densify(self, *, layout: torch.layout = torch.strided) -> Any:
        if not self.tensordicts:
            return super().densify(layout=layout)
        shared = _shared_leaves(self.tensordicts)
        reduced = ConformantStack(*[td.select(*shared) for td in self.tensordicts],
                                  stack_dim=self.stack_dim)
        return LazyStackedTensorDict.densify(reduced, layout=layout)

    def _maybe_get_list(self, key: Any) -> Any:
        if not all(key in td.keys() for td in self.tensordicts):
            return None  # not shared: iteration skips it
        return super()._maybe_get_list(key)

    def _get_str(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        return _conformant(super()._get_str(key, *args, **kwargs))

    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        if isinstance(out, LazyStackedTensorDict) and not out.tensordicts:
            # nothing selected along the stack dim: nothing to alias, so a dense empty result
            # with the shared keys is exact
            return self.to_tensordict()[index]
        return _conformant(out)


def _conformant(out: Any) -> Any:
    """Sub-stacks that tensordict builds (nested values, slices) as ConformantStack."""
    if type(out) is LazyStackedTensorDict:
        out.__class__ = ConformantStack
    return out


def conformant() -> Subject:
    """The conformant base of these mutants (passes every STK and EXC property)."""
    return Subject("conformant", lazy_stack=ConformantStack.stack,
                   description=conformant.__doc__)


def _mutant(name: str, cls: type, doc: str | None) -> Subject:
    return Subject(name, lazy_stack=cls.stack, description=doc or "")


# -- copies ------------------------------------------------------------------------------------


def _copying_stack(tds, dim):
    return ConformantStack.stack([td.clone() for td in tds], dim)


def stack_copies() -> Subject:
    """A lazy stack that clones its inputs: indexing returns copies, not the originals."""
    return Subject("stack_copies", lazy_stack=_copying_stack)


class _UnbindCopies(ConformantStack):
    def unbind(self, dim: int) -> tuple[Any, ...]:
        return tuple(td.clone() for td in super().unbind(dim))


def unbind_copies() -> Subject:
    """unbind returns copies of the elements instead of the elements."""
    return _mutant("unbind_copies", _UnbindCopies, unbind_copies.__doc__)


class _IndexShallow(ConformantStack):
    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        if any(out is td for td in self.tensordicts):
            return out.copy()  # a new tensordict holding the same tensors
        return out


def index_shallow() -> Subject:
    """stack[i] returns a new tensordict holding element i's tensors (a shallow copy)."""
    return _mutant("index_shallow", _IndexShallow, index_shallow.__doc__)


# -- exclusive keys ----------------------------------------------------------------------------


def _drops_exclusive(tds, dim):
    shared = _shared_leaves(tds)
    return ConformantStack.stack([td.select(*shared) for td in tds], dim)


def drops_exclusive() -> Subject:
    """Stacks each element reduced to the shared keys (a new tensordict per element)."""
    return Subject("drops_exclusive", lazy_stack=_drops_exclusive,
                   description=drops_exclusive.__doc__)


def _strips_in_place(tds, dim):
    shared = set(_shared_leaves(tds))
    for td in tds:
        for key in sorted(_leaves(td) - shared, reverse=True):
            del td[key]
        for key in sorted({_key(k) for k in td.keys(include_nested=True)}, key=len,
                          reverse=True):
            sub = td.get(key)
            if isinstance(sub, TensorDictBase) and sub.is_empty():
                del td[key]
    return ConformantStack.stack(list(tds), dim)


def strips_exclusive_in_place() -> Subject:
    """Deletes the exclusive keys from the originals, then stacks them (identity kept)."""
    return Subject("strips_exclusive_in_place", lazy_stack=_strips_in_place,
                   description=strips_exclusive_in_place.__doc__)


class _UnionKeys:
    """A keys view listing every key some element holds."""

    def __init__(self, tds: list[Any], include_nested: bool, leaves_only: bool) -> None:
        found = {_key(k) for td in tds for k in td.keys(include_nested=include_nested,
                                                         leaves_only=leaves_only)}
        self._keys = [k[0] if len(k) == 1 else k for k in sorted(found)]

    def __iter__(self) -> Any:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: Any) -> bool:
        return _key(key) in {_key(k) for k in self._keys}


class _KeysUnion(ConformantStack):
    def keys(self, include_nested: bool = False, leaves_only: bool = False, *args: Any,
             **kwargs: Any) -> Any:
        return _UnionKeys(self.tensordicts, include_nested, leaves_only)


def keys_union() -> Subject:
    """keys() lists the union of the elements' keys."""
    return _mutant("keys_union", _KeysUnion, keys_union.__doc__)


class _AnyKeysView(_SharedKeysView):
    def __contains__(self, item: Any) -> bool:
        return any(item in td.keys(self.include_nested, self.leaves_only)
                   for td in self.tensordict.tensordicts)


class _ContainsUnion(ConformantStack):
    def keys(self, include_nested: bool = False, leaves_only: bool = False, is_leaf: Any = None,
             *, sort: bool = False) -> Any:
        return _AnyKeysView(self, include_nested=include_nested, leaves_only=leaves_only,
                            is_leaf=is_leaf, sort=sort)


def contains_union() -> Subject:
    """keys() lists the shared keys, but `in` answers True for a key any element holds."""
    return _mutant("contains_union", _ContainsUnion, contains_union.__doc__)


class _FlatViewFindsNested(_SharedKeysView):
    def __contains__(self, item: Any) -> bool:
        key = _key(item)
        if len(key) > 1 and not self.include_nested:
            return key in set(_shared_leaves(self.tensordict.tensordicts))
        return super().__contains__(item)


class _ContainsNestedInFlatView(ConformantStack):
    def keys(self, include_nested: bool = False, leaves_only: bool = False, is_leaf: Any = None,
             *, sort: bool = False) -> Any:
        return _FlatViewFindsNested(self, include_nested=include_nested,
                                    leaves_only=leaves_only, is_leaf=is_leaf, sort=sort)


def contains_nested_in_flat_view() -> Subject:
    """`in` on keys() (no include_nested) finds a shared nested key that keys() never lists."""
    return _mutant("contains_nested_in_flat_view", _ContainsNestedInFlatView,
                   contains_nested_in_flat_view.__doc__)


class _ZeroFilled(ConformantStack):
    def _padded(self, key: Any) -> Any:
        holders = [td for td in self.tensordicts if _holds(td, key)]
        if not holders or len(holders) == len(self.tensordicts):
            return None
        first = holders[0].get(key)
        if not isinstance(first, torch.Tensor):
            return None
        vals = [td.get(key) if _holds(td, key) else torch.zeros_like(first)
                for td in self.tensordicts]
        return torch.stack(vals, self.stack_dim)

    def get(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        out = self._padded(key)
        return super().get(key, *args, **kwargs) if out is None else out

    def __getitem__(self, index: Any) -> Any:
        out = self._padded(index) if _is_key(index) else None
        return super().__getitem__(index) if out is None else out


def zero_filled() -> Subject:
    """Reading a key some elements lack returns it stacked with zeros for those elements."""
    return _mutant("zero_filled", _ZeroFilled, zero_filled.__doc__)


class _SliceDropsExclusive(ConformantStack):
    def __getitem__(self, index: Any) -> Any:
        out = super().__getitem__(index)
        idx = index if isinstance(index, tuple) else (index,)
        if (len(idx) > self.stack_dim and isinstance(idx[self.stack_dim], slice)
                and isinstance(out, LazyStackedTensorDict) and out.tensordicts):
            shared = _shared_leaves(out.tensordicts)
            return ConformantStack(*[td.select(*shared) for td in out.tensordicts],
                                   stack_dim=out.stack_dim)
        return out


def slice_drops_exclusive() -> Subject:
    """A slice along the stack dim stacks its elements reduced to the shared keys."""
    return _mutant("slice_drops_exclusive", _SliceDropsExclusive, slice_drops_exclusive.__doc__)


class _DensifyMixes(ConformantStack):
    def _mixed(self, dense: Any) -> Any:
        d = self.stack_dim
        return dense.apply(lambda t: t.flip(d))  # element i gets element n-1-i's values

    def contiguous(self, *args: Any, **kwargs: Any) -> Any:
        return self._mixed(super().contiguous(*args, **kwargs))

    def to_tensordict(self, *args: Any, **kwargs: Any) -> Any:
        return self._mixed(super().to_tensordict(*args, **kwargs))


def densify_mixes() -> Subject:
    """contiguous() / to_tensordict() give the elements' values in reverse order."""
    return _mutant("densify_mixes", _DensifyMixes, densify_mixes.__doc__)


class _DensifyPads(ConformantStack):
    def densify(self, *, layout: torch.layout = torch.strided) -> Any:
        dense = super().densify(layout=layout)
        shared = set(_shared_leaves(self.tensordicts))
        union = set.union(*(_leaves(td) for td in self.tensordicts))
        for key in sorted(union - shared):
            first = next(td.get(key) for td in self.tensordicts if key in _leaves(td))
            vals = [td.get(key) if key in _leaves(td) else torch.zeros_like(first)
                    for td in self.tensordicts]
            dense.set(key, torch.stack(vals, self.stack_dim))
        return dense


def densify_pads() -> Subject:
    """densify() keeps the keys some elements lack, padded with zeros for those elements."""
    return _mutant("densify_pads", _DensifyPads, densify_pads.__doc__)


# -- writes and reads --------------------------------------------------------------------------


class _WritesToCopy(ConformantStack):
    def set_(self, key: Any, item: Any, *args: Any, **kwargs: Any) -> Any:
        self.to_tensordict().set_(key, item, *args, **kwargs)
        return self

    def update_(self, input_dict_or_td: Any = None, *args: Any, **kwargs: Any) -> Any:
        self.to_tensordict().update_(input_dict_or_td, *args, **kwargs)
        return self

    def __setitem__(self, index: Any, value: Any) -> None:
        if _is_key(index) and all(_holds(td, index) for td in self.tensordicts):
            self.to_tensordict()[index] = value  # an existing key: lands in a dense copy
            return
        super().__setitem__(index, value)


def writes_to_copy() -> Subject:
    """set_, update_ and stack[key] = value on an existing key write into a dense copy."""
    return _mutant("writes_to_copy", _WritesToCopy, writes_to_copy.__doc__)


class _StaleReads(ConformantStack):
    def get(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        cache = self.__dict__.setdefault("_stale_cache", {})
        if _key(key) not in cache:
            value = super().get(key, *args, **kwargs)
            if not isinstance(value, torch.Tensor):
                return value
            cache[_key(key)] = value
        return cache[_key(key)]


def stale_reads() -> Subject:
    """stack.get(key) memoises the first stacked read and returns it ever after."""
    return _mutant("stale_reads", _StaleReads, stale_reads.__doc__)


class _NewKeyFirstSlice(ConformantStack):
    def _first_slice_everywhere(self, key: Any, item: Any) -> Any:
        if isinstance(item, torch.Tensor) and not any(_holds(td, key)
                                                      for td in self.tensordicts):
            first = item.unbind(self.stack_dim)[0]
            return torch.stack([first] * len(self.tensordicts), self.stack_dim)
        return item

    def set(self, key: Any, item: Any, *args: Any, **kwargs: Any) -> Any:
        return super().set(key, self._first_slice_everywhere(key, item), *args, **kwargs)

    def __setitem__(self, index: Any, value: Any) -> None:
        if _is_key(index):
            value = self._first_slice_everywhere(index, value)
        super().__setitem__(index, value)


def new_key_first_slice() -> Subject:
    """A new key set on the stack gives every element the value's first slice."""
    return _mutant("new_key_first_slice", _NewKeyFirstSlice, new_key_first_slice.__doc__)


class _ReadsReversed(ConformantStack):
    def get(self, key: Any, *args: Any, **kwargs: Any) -> Any:
        value = super().get(key, *args, **kwargs)
        if isinstance(value, torch.Tensor):
            return value.flip(self.stack_dim)
        return value


def reads_reversed() -> Subject:
    """stack.get(key) stacks the elements' values in reverse order."""
    return _mutant("reads_reversed", _ReadsReversed, reads_reversed.__doc__)


# -- batch size and nesting --------------------------------------------------------------------


class _ShapeOfElements(ConformantStack):
    @property
    def shape(self) -> torch.Size:
        return self.tensordicts[0].batch_size  # the stack dim left out


def shape_of_elements() -> Subject:
    """stack.shape reports the elements' batch size (batch_size itself is right)."""
    return _mutant("shape_of_elements", _ShapeOfElements, shape_of_elements.__doc__)


def _stacks_at_front(tds, dim):
    return ConformantStack.stack(list(tds), 0)


def stacks_at_front() -> Subject:
    """Ignores dim: always stacks along dim 0."""
    return Subject("stacks_at_front", lazy_stack=_stacks_at_front,
                   description=stacks_at_front.__doc__)


def _restacks_copies(tds, dim):
    items = [ConformantStack(*[t.clone() for t in td.tensordicts], stack_dim=td.stack_dim)
             if isinstance(td, LazyStackedTensorDict) else td for td in tds]
    return ConformantStack.stack(items, dim)


def nested_restacks_copies() -> Subject:
    """Stacking lazy stacks re-wraps each one as a new stack of copies of its elements."""
    return Subject("nested_restacks_copies", lazy_stack=_restacks_copies,
                   description=nested_restacks_copies.__doc__)


def _densifies_inner(tds, dim):
    items = [td.to_tensordict() if isinstance(td, LazyStackedTensorDict) else td for td in tds]
    return ConformantStack.stack(items, dim)


def nested_densifies() -> Subject:
    """Stacking lazy stacks densifies each one first (a stack of stacks is a stack of dense
    tensordicts holding the shared keys)."""
    return Subject("nested_densifies", lazy_stack=_densifies_inner,
                   description=nested_densifies.__doc__)


KILLS = {
    "stack_copies": ["STK-001", "STK-002", "STK-003", "STK-004", "STK-005", "STK-008",
                     "STK-009", "EXC-007"],
    "unbind_copies": ["STK-002"],
    "index_shallow": ["STK-001", "STK-008", "EXC-007"],
    "drops_exclusive": ["STK-001", "STK-002", "STK-003", "STK-004", "STK-005", "STK-008",
                        "EXC-002", "EXC-003", "EXC-004", "EXC-007"],
    "strips_exclusive_in_place": ["EXC-002", "EXC-003", "EXC-004"],
    "keys_union": ["EXC-001", "EXC-003", "EXC-008"],
    "contains_union": ["EXC-008"],
    "contains_nested_in_flat_view": ["EXC-008"],
    "zero_filled": ["EXC-005"],
    "slice_drops_exclusive": ["STK-008", "EXC-003", "EXC-004"],
    "densify_mixes": ["EXC-006"],
    "densify_pads": ["EXC-006"],
    "writes_to_copy": ["STK-003"],
    "stale_reads": ["STK-004"],
    "new_key_first_slice": ["STK-005"],
    "reads_reversed": ["STK-004", "STK-006"],
    "shape_of_elements": ["STK-007"],
    "stacks_at_front": ["STK-001", "STK-002", "STK-003", "STK-004", "STK-005", "STK-006",
                        "STK-007", "STK-008", "STK-009", "EXC-002", "EXC-003", "EXC-004",
                        "EXC-006", "EXC-007"],
    "nested_restacks_copies": ["STK-008"],
    "nested_densifies": ["STK-008", "EXC-004"],
}

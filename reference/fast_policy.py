"""Speed: the public ``PartialTolerantSequential``, the core's policy
(``reference.policy._PartialTolerantSequential``): as many module calls, the same outputs (up to
floating-point reassociation), less Python work per leaf. tests/reference/test_policy.py holds it
to the core's outputs and call counts.
"""

from __future__ import annotations

from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDict, TensorDictBase

from reference.policy import _PartialTolerantSequential, leaves

__all__ = ["PartialTolerantSequential"]


def _leaves(td: TensorDictBase) -> list[TensorDictBase]:
    """``leaves(td)`` without the paths (speed: only an error message needs one; a plain
    TensorDict is recognised by its type, as isinstance on tensordict's ABCs costs ~0.15 us)."""
    if isinstance(td, LazyStackedTensorDict):
        return [leaf for sub in td.tensordicts
                for leaf in ((sub,) if type(sub) is TensorDict else _leaves(sub))]
    return [td]


class PartialTolerantSequential(_PartialTolerantSequential):
    """The core's policy: modules in order, each run once per group of the leaves that have its
    in_keys and agree in batch size and in_key shapes and dtypes, on their stacked inputs split
    back into the leaves (each result equals the module run on that leaf alone, up to
    floating-point reassociation). Speed: see :meth:`forward`."""

    def __init__(self, *modules: Any, partial_tolerant: bool = True) -> None:
        super().__init__(*modules, partial_tolerant=partial_tolerant)
        self._reads = list(dict.fromkeys(k for m in modules for k in m.in_keys))
        # For each output key, the read keys nested in it or holding it (read back after writes).
        self._related = {k: [r for r in self._reads if r != k and _overlap(r, k)]
                         for m in modules for k in m.out_keys}

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        # Speed: per-leaf Python work (~0.1-1 us a tensordict call) dominates a big stack, so
        # leaves are read once per call: grouped by batch size and key set, entries read without
        # a copy (a TensorDict's ``items().mapping`` is its dict; nothing is written before the
        # reads below). Unread keys only make groups finer: calls merge parts per signature.
        groups: dict[tuple[Any, ...], tuple[list[TensorDictBase], list[Any]]] = {}
        for leaf in _leaves(tensordict):
            items = leaf.items()
            entries = getattr(items, "mapping", None) or dict(items)
            group = groups.get((leaf.batch_size, *entries))
            if group is None:
                group = groups[(leaf.batch_size, *entries)] = ([], [])
            group[0].append(leaf)
            group[1].append(entries)
        # Parts: leaves that also agree in shape and dtype of every key read, so each such key
        # stacks into one tensor. A top-level key is in all of a group's leaves or none; a nested
        # key may be absent (None) from some.
        parts = []
        for members, entries in groups.values():
            columns = {k: [e[k] for e in entries] if isinstance(k, str)
                       else [leaf.get(k, None) for leaf in members]
                       for k in self._reads if not isinstance(k, str) or k in entries[0]}
            current = _stack(columns)
            if current is not None:
                chunks = [(members, current)]
            else:  # (rare) split the group by each leaf's own layout
                rows = list(zip(*[[v if v is None else (v.shape, v.dtype) for v in c]
                                  for c in columns.values()], strict=True))
                chunks = [([members[i] for i in idx], {k: torch.stack([c[i] for i in idx])
                                                       for k, c in columns.items()
                                                       if c[idx[0]] is not None})
                          for idx in ([i for i, r in enumerate(rows) if r == row]
                                      for row in dict.fromkeys(rows))]
            for part, current in chunks:
                # The part's leaves, their lazy stack (writes go through it) and stacked values.
                parts.append((part, LazyStackedTensorDict(*part, stack_dim=0), current))
        for index, module in enumerate(self.module):
            calls: dict[tuple[Any, ...], list[tuple[Any, dict[Any, Any]]]] = {}
            for part, stacked, current in parts:
                missing = [k for k in module.in_keys if k not in current]
                if missing and not self.partial_tolerant:
                    path = next(p for p, leaf in leaves(tensordict) if leaf is part[0])
                    raise KeyError(f"module {index} ({module!r}) needs in_key {missing[0]!r}, "
                                   f"missing from the leaf at index path {path} of the input")
                if not missing:
                    signature = (part[0].batch_size, *[(current[k].shape[1:], current[k].dtype)
                                                       for k in module.in_keys])
                    calls.setdefault(signature, []).append((stacked, current))
            for (leaf_batch, *_), group in calls.items():
                # One call per group of parts (cat copies: a module never sees ``current``).
                batch = TensorDict({k: torch.cat([current[k] for _, current in group])
                                    for k in module.in_keys},
                                   batch_size=[sum(len(s) for s, _ in group), *leaf_batch])
                out = module(batch)
                values = [out.get(k) for k in module.out_keys]
                start = 0
                for stacked, current in group:
                    for k, value in zip(module.out_keys, values, strict=True):
                        current[k] = value[start:start + len(stacked)]
                        stacked.set(k, current[k], inplace=False)  # row i -> its leaf i
                        for r in self._related[k]:
                            current[r] = stacked.get(r, None)
                            if current[r] is None:
                                del current[r]
                    start += len(stacked)
        return tensordict


def _stack(columns: dict[Any, list[Any]]) -> dict[Any, torch.Tensor] | None:
    """Each column's values stacked (a column of None left out), or None if a column's values
    differ in dtype or shape, or only some are None. Speed: torch.stack checks shapes itself (a
    ``torch.Size`` per value costs); dtypes are compared here, as it would promote them."""
    out = {}
    for key, column in columns.items():
        try:
            dtypes = {v.dtype for v in column}
        except AttributeError:  # (a nested key some leaves lack: None)
            dtypes = {getattr(v, "dtype", None) for v in column}
        if len(dtypes) != 1:
            return None
        if None not in dtypes:
            try:
                out[key] = torch.stack(column)
            except RuntimeError:
                return None
    return out


def _overlap(a: Any, b: Any) -> bool:
    """Whether one nested key is a prefix of the other."""
    a, b = (a,) if isinstance(a, str) else a, (b,) if isinstance(b, str) else b
    return a[:len(b)] == b[:len(a)]


"""A partial-tolerant sequence of tensordict modules that batches each module over a lazy stack."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDict, TensorDictBase, lazy_stack
from tensordict.nn import TensorDictModuleBase

__all__ = ["PartialTolerantSequential", "leaves"]

Path = tuple[int, ...]


def leaves(td: TensorDictBase, path: Path = ()) -> list[tuple[Path, TensorDictBase]]:
    """Every non-lazy TensorDict inside ``td`` (nested lazy stacks included) with its index path,
    the positions taken in each stack's list of stacked tensordicts."""
    if isinstance(td, LazyStackedTensorDict):
        return [leaf for j, sub in enumerate(td.tensordicts) for leaf in leaves(sub, (*path, j))]
    return [(path, td)]


class PartialTolerantSequential(TensorDictModuleBase):
    """Run modules in order; each module runs on every leaf of the input that has all its in_keys.

    Leaves whose in_key values agree in shape and dtype (and whose batch sizes agree) form a group:
    their inputs are stacked and the module is called once per group on a batch
    ``[group_size, *leaf_batch]``; the outputs are split and written into the original leaves, so
    the result for each element equals the module run on that element alone, up to floating-point
    reassociation in batched kernels (e.g. matmul). A leaf missing an in_key is skipped, or raises
    KeyError when ``partial_tolerant=False``. Returns the input object.
    """

    def __init__(self, *modules: Any, partial_tolerant: bool = True) -> None:
        super().__init__()
        self.module = torch.nn.ModuleList(modules)
        self.partial_tolerant = partial_tolerant
        in_keys: list[Any] = []
        out_keys: list[Any] = []
        for m in modules:
            in_keys += [k for k in m.in_keys if k not in out_keys and k not in in_keys]
            out_keys += [k for k in m.out_keys if k not in out_keys]
        self.in_keys = in_keys
        self.out_keys = out_keys
        self._reads = list(dict.fromkeys(k for m in modules for k in m.in_keys))
        # For each output key, the read keys nested in it or holding it (read back after writes).
        self._related = {k: [r for r in self._reads if r != k and _overlap(r, k)]
                         for m in modules for k in m.out_keys}

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        # Partition the leaves by layout: batch size, and shape and dtype (or absence) of every
        # key a module reads. A module treats the leaves of one part alike (it reads the same
        # keys from each or skips them all, and writes rows of one output into each), so the
        # per-leaf Python work (~1 us per TensorDict call) is done once, not once per module.
        reads = self._reads
        layouts: dict[tuple[Any, ...], list[tuple[Path, TensorDictBase, list[Any]]]] = {}
        for path, leaf in leaves(tensordict):
            get = dict(leaf.items()).get  # (for a top-level key, the object leaf.get returns)
            values = [get(k) if isinstance(k, str) else leaf.get(k, None) for k in reads]
            layout = (leaf.batch_size, *[None if v is None else (v.shape, v.dtype) for v in values])
            layouts.setdefault(layout, []).append((path, leaf, values))
        # Per part: its first leaf's path, a lazy stack of its leaves (writes go through it) and
        # the current stacked value of each key it holds among ``reads`` and the modules' outputs.
        parts = [(members[0][0], lazy_stack([leaf for _, leaf, _ in members], 0),
                  {k: torch.stack([vs[i] for _, _, vs in members])
                   for i, k in enumerate(reads) if members[0][2][i] is not None})
                 for members in layouts.values()]
        for index, module in enumerate(self.module):
            calls: dict[tuple[Any, ...], list[tuple[Any, dict[Any, Any]]]] = {}
            for path, stacked, current in parts:
                missing = [k for k in module.in_keys if k not in current]
                if missing and not self.partial_tolerant:
                    raise KeyError(f"module {index} ({module!r}) needs in_key {missing[0]!r}, "
                                   f"missing from the leaf at index path {path} of the input")
                if not missing:
                    signature = (stacked.batch_size[1:], *[(current[k].shape[1:], current[k].dtype)
                                                           for k in module.in_keys])
                    calls.setdefault(signature, []).append((stacked, current))
            for (leaf_batch, *_), group in calls.items():
                batch = TensorDict({}, batch_size=[sum(len(s) for s, _ in group), *leaf_batch])
                for k in module.in_keys:  # (cat copies: a module never sees the cache itself)
                    batch.set(k, torch.cat([current[k] for _, current in group]))
                out = module(batch)
                start = 0
                for stacked, current in group:
                    for k in module.out_keys:
                        current[k] = out.get(k)[start:start + len(stacked)]
                        stacked.set(k, current[k])  # row i lands in the part's leaf i
                        for r in self._related[k]:
                            current[r] = stacked.get(r, None)
                            if current[r] is None:
                                del current[r]
                    start += len(stacked)
        return tensordict


def _overlap(a: Any, b: Any) -> bool:
    """Whether one nested key is a prefix of the other."""
    a, b = (a,) if isinstance(a, str) else a, (b,) if isinstance(b, str) else b
    return a[:len(b)] == b[:len(a)]

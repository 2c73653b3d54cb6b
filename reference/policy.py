"""A partial-tolerant sequence of tensordict modules that batches each module over a lazy stack."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDict, TensorDictBase
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

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        all_leaves = leaves(tensordict)
        for index, module in enumerate(self.module):
            groups: dict[tuple[Any, ...], list[TensorDictBase]] = {}
            for path, leaf in all_leaves:
                values = [leaf.get(k, None) for k in module.in_keys]
                missing = [k for k, v in zip(module.in_keys, values, strict=True) if v is None]
                if missing:
                    if self.partial_tolerant:
                        continue
                    raise KeyError(f"module {index} ({module!r}) needs in_key {missing[0]!r}, "
                                   f"missing from the leaf at index path {path} of the input")
                signature = (tuple(leaf.batch_size),
                             *((tuple(v.shape), v.dtype) for v in values))
                groups.setdefault(signature, []).append(leaf)
            for group in groups.values():
                batch = TensorDict({}, batch_size=[len(group), *group[0].batch_size])
                for k in module.in_keys:
                    batch.set(k, torch.stack([leaf.get(k) for leaf in group]))
                out = module(batch)
                for k in module.out_keys:
                    for leaf, value in zip(group, out.get(k).unbind(0), strict=True):
                        leaf.set(k, value)
        return tensordict

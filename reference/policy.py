"""A partial-tolerant sequence of tensordict modules that batches each module over a lazy stack."""

from __future__ import annotations

from typing import Any

import torch
from tensordict import LazyStackedTensorDict, TensorDict, TensorDictBase
from tensordict.nn import TensorDictModuleBase

__all__ = ["leaves"]

Path = tuple[int, ...]


def leaves(td: TensorDictBase, path: Path = ()) -> list[tuple[Path, TensorDictBase]]:
    """Every non-lazy TensorDict inside ``td`` (nested lazy stacks included) with its index path,
    the positions taken in each stack's list of stacked tensordicts."""
    if isinstance(td, LazyStackedTensorDict):
        return [leaf for j, sub in enumerate(td.tensordicts) for leaf in leaves(sub, (*path, j))]
    return [(path, td)]


class _PartialTolerantSequential(TensorDictModuleBase):
    """Run modules in order, each once per group of the input's leaves that have all its in_keys
    and agree in batch size and in_key shapes and dtypes: on their stacked in_keys, row i of its
    out_keys going into the group's leaf i (a leaf missing an in_key is skipped, or raises KeyError
    if ``partial_tolerant=False``). Returns the input; speed only: reference/fast_policy.py."""

    def __init__(self, *modules: Any, partial_tolerant: bool = True) -> None:
        super().__init__()
        self.module = torch.nn.ModuleList(modules)
        self.partial_tolerant = partial_tolerant
        in_keys: list[Any] = []
        out_keys: list[Any] = []
        for m in modules:
            in_keys += [k for k in m.in_keys if k not in out_keys and k not in in_keys]
            out_keys += [k for k in m.out_keys if k not in out_keys]
        self.in_keys, self.out_keys = in_keys, out_keys

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        found = leaves(tensordict)
        for index, module in enumerate(self.module):
            groups: dict[tuple[Any, ...], list[tuple[TensorDictBase, list[Any]]]] = {}
            for path, leaf in found:
                values = [leaf.get(k, None) for k in module.in_keys]
                missing = [k for k, v in zip(module.in_keys, values, strict=True) if v is None]
                if not missing:
                    signature = (leaf.batch_size, *[(v.shape, v.dtype) for v in values])
                    groups.setdefault(signature, []).append((leaf, values))
                elif not self.partial_tolerant:
                    raise KeyError(f"module {index} ({module!r}) needs in_key {missing[0]!r}, "
                                   f"missing from the leaf at index path {path} of the input")
            for (batch_size, *_), group in groups.items():
                inputs = {k: torch.stack([vals[j] for _, vals in group])  # (copies)
                          for j, k in enumerate(module.in_keys)}
                out = module(TensorDict(inputs, batch_size=[len(group), *batch_size]))
                for row, (leaf, _) in enumerate(group):
                    for key in module.out_keys:
                        leaf.set(key, out.get(key)[row])
        return tensordict

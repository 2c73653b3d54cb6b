"""Unit tests of the partial-tolerant policy: the core's (reference.policy) and the public, grouped
one (reference.fast_policy), which must give the same outputs."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict, lazy_stack
from tensordict.nn import TensorDictModule
from torch import nn

from reference.fast_policy import PartialTolerantSequential
from reference.policy import _PartialTolerantSequential, leaves

BOTH = pytest.mark.parametrize("cls", [_PartialTolerantSequential, PartialTolerantSequential],
                               ids=["core", "fast"])


class Head(nn.Module):
    def __init__(self, extra: int) -> None:
        super().__init__()
        self.linear = nn.Linear(4 + extra, 2)

    def forward(self, hidden: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat([hidden, obs], -1))


def make_policy(partial_tolerant: bool = True, cls: type = PartialTolerantSequential,
                ) -> tuple[_PartialTolerantSequential, dict]:
    """The tutorial's shape: a backbone on "obs" and one head per task key; counts calls."""
    torch.manual_seed(0)
    backbone = TensorDictModule(nn.Linear(3, 4), ["obs"], ["hidden"])
    head_a = TensorDictModule(Head(2), ["hidden", "obs_a"], ["action"])
    head_b = TensorDictModule(Head(5), ["hidden", "obs_b"], ["action"])
    calls = {"backbone": 0, "a": 0, "b": 0}
    for name, module in (("backbone", backbone), ("a", head_a), ("b", head_b)):
        module.register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    return cls(backbone, head_a, head_b, partial_tolerant=partial_tolerant), calls


def element(task: int, seed: int) -> TensorDict:
    g = torch.Generator().manual_seed(seed)
    key, size = ("obs_a", 2) if task == 0 else ("obs_b", 5)
    return TensorDict({"obs": torch.randn(3, generator=g), key: torch.randn(size, generator=g)})


class TestPartialTolerantSequential:
    @BOTH
    def test_keys(self, cls: type) -> None:
        """in_keys are the inputs not produced by earlier modules; out_keys all outputs."""
        policy, _ = make_policy(cls=cls)
        assert policy.in_keys == ["obs", "obs_a", "obs_b"]
        assert policy.out_keys == ["hidden", "action"]

    @BOTH
    def test_plain_tensordict(self, cls: type) -> None:
        """A plain TensorDict is one leaf: the matching head runs, the other is skipped."""
        policy, calls = make_policy(cls=cls)
        td = element(1, 0)
        assert policy(td) is td and td["action"].shape == (2,)
        assert calls == {"backbone": 1, "a": 0, "b": 1}

    @BOTH
    def test_nested_lazy_stack(self, cls: type) -> None:
        """On a (task x time) stack of 3 steps x 2 tasks, all 6 elements get an action."""
        policy, calls = make_policy(cls=cls)
        steps = [lazy_stack([element(0, t), element(1, t)], 0) for t in range(3)]
        stack = lazy_stack(steps, 1)
        assert stack.batch_size == (2, 3) and policy(stack) is stack
        assert all(e["action"].shape == (2,) for s in steps for e in s.tensordicts)
        assert calls == {"backbone": 1, "a": 1, "b": 1}
        assert stack["action"].shape == (2, 3, 2)

    @BOTH
    def test_one_call_per_group(self, cls: type) -> None:
        """On 64 elements of 2 tasks, the backbone and each head are called exactly once."""
        policy, calls = make_policy(cls=cls)
        stack = lazy_stack([element(i % 2, i) for i in range(64)], 0)
        policy(stack)
        assert calls == {"backbone": 1, "a": 1, "b": 1}

    @BOTH
    def test_equals_elementwise(self, cls: type) -> None:
        """Element i's outputs equal the policy run on element i alone (to float tolerance)."""
        policy, _ = make_policy(cls=cls)
        stack = lazy_stack([element(i % 2, i) for i in range(8)], 0)
        policy(stack)
        for i in range(8):
            alone = policy(element(i % 2, i))
            torch.testing.assert_close(stack[i]["action"], alone["action"])
            torch.testing.assert_close(stack[i]["hidden"], alone["hidden"])

    @BOTH
    def test_groups_by_shape(self, cls: type) -> None:
        """Leaves whose in_key shapes differ are called separately (no ragged stacking)."""
        module = TensorDictModule(lambda x: x.sum(-1, keepdim=True), ["x"], ["y"])
        stack = lazy_stack([TensorDict({"x": torch.ones(n)}) for n in (2, 3, 2)], 0)
        cls(module)(stack)
        assert [float(e["y"]) for e in stack.tensordicts] == [2.0, 3.0, 2.0]

    def test_leaves_paths(self) -> None:
        """leaves() yields every non-lazy tensordict with its index path through the stacks."""
        stack = lazy_stack([lazy_stack([element(0, 0), element(1, 1)], 0)] * 2, 1)
        assert [p for p, _ in leaves(stack)] == [(0, 0), (0, 1), (1, 0), (1, 1)]

    @BOTH
    def test_not_partial_tolerant(self, cls: type) -> None:
        """partial_tolerant=False: a missing in_key raises KeyError naming key, module, path."""
        policy, _ = make_policy(partial_tolerant=False, cls=cls)
        stack = lazy_stack([element(0, 0), element(1, 1)], 0)
        with pytest.raises(KeyError) as info:
            policy(stack)
        message = str(info.value)
        assert "module 1" in message and "'obs_a'" in message and "index path (1,)" in message
        assert "TensorDictModule" in message

    @BOTH
    def test_one_call_across_key_sets(self, cls: type) -> None:
        """Leaves that differ only in keys no module reads (or in key order) still share one
        call per module."""
        policy, calls = make_policy(cls=cls)
        tds = [element(i % 2, i) for i in range(6)]
        tds[2]["done"] = torch.zeros(1, dtype=torch.bool)
        tds[4] = TensorDict({k: tds[4][k] for k in reversed(list(tds[4].keys()))})
        stack = lazy_stack(tds, 0)
        policy(stack)
        assert calls == {"backbone": 1, "a": 1, "b": 1}
        for i in range(6):
            alone = policy(element(i % 2, i))
            torch.testing.assert_close(stack[i]["action"], alone["action"])

    @BOTH
    def test_nested_key_absent_from_some(self, cls: type) -> None:
        """A nested in_key missing from some leaves of a group: the module skips those only."""
        module = TensorDictModule(lambda x: x * 2, [("n", "x")], ["y"])
        tds = [TensorDict({"n": TensorDict({"x": torch.ones(2) * i} if i != 1 else {})})
               for i in range(3)]
        cls(module)(lazy_stack(tds, 0))
        assert "y" not in tds[1].keys()
        assert [t["y"].tolist() for t in (tds[0], tds[2])] == [[0.0, 0.0], [4.0, 4.0]]

    def test_fast_equals_core(self) -> None:
        """The fast policy's outputs equal the core's (to float tolerance) on a nested stack whose
        leaves differ in keys, one holding the nested key a module reads."""
        def stack() -> object:
            tds = [element(i % 2, i) for i in range(12)]
            tds[3]["done"] = torch.zeros(1, dtype=torch.bool)
            tds[7]["n"] = TensorDict({"x": torch.ones(2)})
            return lazy_stack([lazy_stack(tds[:6], 0), lazy_stack(tds[6:], 0)], 0)

        nested = TensorDictModule(lambda x: x * 3, [("n", "x")], [("n", "y")])
        outs = []
        for cls in (_PartialTolerantSequential, PartialTolerantSequential):
            policy, _ = make_policy(cls=cls)
            td = stack()
            cls(*policy.module, nested)(td)
            outs.append([leaf for _, leaf in leaves(td)])
        assert ("n", "y") in outs[0][7].keys(True, True) and "action" in outs[0][0].keys()
        for i, (core, fast) in enumerate(zip(*outs, strict=True)):
            assert set(core.keys(True, True)) == set(fast.keys(True, True)), i
            for key in core.keys(True, True):
                torch.testing.assert_close(fast.get(key), core.get(key), msg=f"leaf {i} {key}")

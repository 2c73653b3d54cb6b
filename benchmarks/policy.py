"""The partial-tolerant policy on lazy stacks: ``python -m benchmarks.policy``.

The tutorial's policy (``Linear(67, 64)`` backbone on "observation" -> "hidden"; one
``MLP(67 + 64, 21, depth=2)`` head per task on ("observation_<task>", "hidden") -> "action") on a
lazy stack of n elements alternating the stand and walk tasks (each element laid out like a
humanoid reset: 67-dim observations and done flags). Compared: tensordict's
``TensorDictSequential(partial_tolerant=True)`` and ``reference.PartialTolerantSequential`` on the
same modules; every run checks that both give the same "hidden" and "action" per element
(allclose: the reference batches each module, so matmuls may round differently).
Single-threaded torch, no grad (acting).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import machine, rounds, settle, table

SIZES = (2, 8, 64, 256)
TASKS = ("stand", "walk")


def modules() -> list[Any]:
    """The tutorial's three modules (seeded)."""
    import torch
    from tensordict.nn import TensorDictModule
    from torchrl.modules import MLP

    torch.manual_seed(0)
    common = TensorDictModule(torch.nn.Linear(67, 64), in_keys=["observation"],
                              out_keys=["hidden"])
    heads = [TensorDictModule(MLP(67 + 64, 21, depth=2), in_keys=[f"observation_{t}", "hidden"],
                              out_keys=["action"]) for t in TASKS]
    return [common, *heads]


def stack(n: int, seed: int = 0) -> Any:
    """A lazy stack of n reset-like elements, element i of task ``TASKS[i % 2]``."""
    import torch
    from tensordict import TensorDict, lazy_stack

    g = torch.Generator().manual_seed(seed)
    elements = []
    for i in range(n):
        obs = torch.randn(67, generator=g)
        elements.append(TensorDict({
            "observation": obs, f"observation_{TASKS[i % 2]}": obs.clone(),
            "done": torch.zeros(1, dtype=torch.bool),
            "terminated": torch.zeros(1, dtype=torch.bool),
            "truncated": torch.zeros(1, dtype=torch.bool)}, batch_size=[]))
    return lazy_stack(elements, 0)


def check_equal(a: Any, b: Any) -> None:
    """Per element: same keys, "hidden" and "action" allclose."""
    import torch

    for i, (x, y) in enumerate(zip(a.tensordicts, b.tensordicts, strict=True)):
        keys = set(x.keys()), set(y.keys())
        assert keys[0] == keys[1], f"element {i}: keys {keys[0]} vs {keys[1]}"
        for key in ("hidden", "action"):
            torch.testing.assert_close(x.get(key), y.get(key), msg=f"element {i} {key!r}")


def case(policy: Any, n: int, calls: int) -> Callable[[], float]:
    """Seconds per call of ``policy`` on a fresh stack of n elements (copies made untimed).

    The cyclic garbage collector is off during a round, as in :mod:`timeit`: otherwise a
    collection triggered by the untimed ``clone``'s allocations lands in whichever call runs next.
    Both implementations get the same treatment.
    """
    base = stack(n)

    def run() -> float:
        import gc

        import torch

        total = 0.0
        gc.collect()
        gc.disable()
        try:
            for _ in range(calls):
                td = base.clone()
                with torch.no_grad():
                    start = time.perf_counter()
                    policy(td)
                    total += time.perf_counter() - start
        finally:
            gc.enable()
        return total / calls

    return run


def run(sizes: tuple[int, ...] = SIZES, repeats: int = 7,
        settle_for: float = 90.0) -> list[dict[str, Any]]:
    """One row per stack size; ``settle_for``: at most this many seconds of waiting for the
    load to drop before each size's rounds (0 in the kit's tests, which check rows, not speed)."""
    import torch
    from tensordict.nn import TensorDictSequential

    from reference import PartialTolerantSequential

    torch.set_num_threads(1)
    mods = modules()
    ours = PartialTolerantSequential(*mods, partial_tolerant=True)
    theirs = TensorDictSequential(*mods, partial_tolerant=True)
    rows = []
    for n in sizes:
        a, b = stack(n), stack(n)
        with torch.no_grad():
            ours(a)
            theirs(b)
        check_equal(a, b)
        calls = max(4, 512 // n)  # per round: a few calls even at 256 (one call is too noisy)
        load = settle(max_wait=settle_for)
        times = rounds({"tensordict": case(theirs, n, calls), "reference": case(ours, n, calls)},
                       repeats)
        rows.append({"elements": n, "tensordict_ms": times["tensordict"] * 1e3,
                     "reference_ms": times["reference"] * 1e3,
                     "speedup": times["tensordict"] / times["reference"], "equal": True,
                     "load": load})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    return table(("elements", "tensordict (ms)", "reference (ms)", "speed-up", "outputs equal",
                  "load avg"),
                 [(r["elements"], f"{r['tensordict_ms']:.3f}", f"{r['reference_ms']:.3f}",
                   f"{r['speedup']:.1f}x", "yes" if r["equal"] else "NO", f"{r['load']:.2f}")
                  for r in rows])


def cache_pandas_probe() -> None:
    """What-if, not what users run: answer ``importlib.util.find_spec("pandas")`` from a cache.

    tensordict 0.14's ``TensorDict.from_any`` asks it on every call (a walk over ``sys.path``,
    ~28 us here), and ``TensorDictModule`` calls ``from_any`` for each output it writes: once per
    element and module for tensordict's partial-tolerant sequence, once per module and group for
    the reference.  With the probe cached, the table shows where the ratio would stand once
    tensordict caches the answer itself.
    """
    import importlib.util

    probe = importlib.util.find_spec
    pandas = probe("pandas")

    def find_spec(name: str, package: str | None = None) -> Any:
        return pandas if name == "pandas" else probe(name, package)

    importlib.util.find_spec = find_spec  # type: ignore[assignment]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.policy", description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (median)")
    parser.add_argument("--cache-pandas-probe", action="store_true",
                        help="what-if: tensordict's per-call find_spec('pandas') answered from a "
                             "cache (see cache_pandas_probe)")
    ns = parser.parse_args(argv)
    if ns.cache_pandas_probe:
        cache_pandas_probe()
    print(machine() + ("; find_spec('pandas') cached (what-if)" if ns.cache_pandas_probe else ""))
    print(format_rows(run(tuple(ns.sizes), ns.repeats)))


if __name__ == "__main__":
    main()

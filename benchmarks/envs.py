"""Frames per second of multi-task batched envs: ``python -m benchmarks.envs``.

Scenarios: the seed's humanoid stand + walk (``reference.dmc`` makers), and 4 and 8 of the cheap
``reference.tasks`` task envs. Implementations, measured side by side in one process:
a raw dm_control loop over both humanoid tasks (humanoid only), torchrl ``SerialEnv`` and
``ParallelEnv``, the reference's ``SerialMultiTaskEnv`` and ``ParallelMultiTaskEnv``.
Every batched env runs ``rollout(steps)`` with random actions (its own ``rand_action``), no early
stop; a frame is one task's step, so frames/s = steps x tasks / seconds. "reference parallel (per
step)" is the same env given ``policy=env.rand_action`` (the same actions): with a policy its
rollout messages the workers every step, as the tutorial's policy-driven rollout does, where
without one the workers run their steps in chunks.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import machine, rounds, settle, table

IMPLEMENTATIONS = ("raw dm_control", "torchrl SerialEnv", "torchrl ParallelEnv",
                   "reference serial", "reference parallel", "reference parallel (per step)")


def task_specs(n: int) -> list[Any]:
    """n cheap tasks sharing "obs" (and the done/reward keys), each with one exclusive key."""
    from reference.tasks import KeySpec, TaskSpec

    return [TaskSpec(f"t{i}", (KeySpec("obs", (8,)), KeySpec(f"obs_{i}", (4,))),
                     action_shape=(2,), episode_length=50, seed=i) for i in range(n)]


def raw_humanoid(steps: int) -> Callable[[], float]:
    """A plain dm_control loop stepping humanoid stand and walk in turn, numpy random actions."""
    import numpy as np
    from dm_control import suite

    envs = [suite.load("humanoid", task, task_kwargs={"random": i})
            for i, task in enumerate(("stand", "walk"))]
    spec = envs[0].action_spec()
    rng = np.random.default_rng(0)

    def run() -> float:
        for env in envs:
            env.reset()
        start = time.perf_counter()
        for _ in range(steps):
            for env in envs:
                if env.step(rng.uniform(spec.minimum, spec.maximum)).last():
                    env.reset()
        return steps * len(envs) / (time.perf_counter() - start)

    return run


def batched(env: Any, steps: int, per_step: bool = False) -> Callable[[], float]:
    """frames/s of ``env.rollout(steps)`` with random actions (``per_step``: drawn by the policy
    ``env.rand_action``)."""
    policy = env.rand_action if per_step else None

    def run() -> float:
        start = time.perf_counter()
        env.rollout(steps, policy, break_when_any_done=False, return_contiguous=False)
        return steps * env.batch_size[0] / (time.perf_counter() - start)

    return run


def build(name: str, makers: list[Any]) -> Any:
    """One batched env of implementation ``name`` over ``makers``."""
    from torchrl.envs import ParallelEnv, SerialEnv

    from reference import ParallelMultiTaskEnv, SerialMultiTaskEnv

    return {"torchrl SerialEnv": lambda: SerialEnv(len(makers), makers),
            "torchrl ParallelEnv": lambda: ParallelEnv(len(makers), makers),
            "reference serial": lambda: SerialMultiTaskEnv(makers),
            "reference parallel": lambda: ParallelMultiTaskEnv(makers, start_timeout=600.0),
            "reference parallel (per step)": lambda: ParallelMultiTaskEnv(makers,
                                                                          start_timeout=600.0),
            }[name]()


def scenario(label: str, makers: list[Any], steps: int, repeats: int,
             raw: Callable[[], float] | None = None,
             only: tuple[str, ...] = IMPLEMENTATIONS,
             settle_for: float = 90.0) -> list[dict[str, Any]]:
    """Build every env of the scenario, warm each up, then time them round-robin."""
    import torch

    torch.manual_seed(0)
    cases: dict[str, Callable[[], float]] = {}
    envs = []
    try:
        if raw is not None and "raw dm_control" in only:
            cases["raw dm_control"] = raw
        for name in IMPLEMENTATIONS[1:]:
            if name in only:
                env = build(name, makers)
                envs.append(env)
                env.set_seed(0)
                cases[name] = batched(env, steps, per_step=name.endswith("(per step)"))
        for case in cases.values():  # warm-up: first calls, page faults, lazy imports
            case()
        load = settle(max_wait=settle_for)  # let the load of starting the workers decay
        rates = rounds(cases, repeats)
    finally:
        for env in envs:
            env.close()
    base = rates.get("torchrl ParallelEnv")
    return [{"scenario": label, "implementation": name, "frames_per_s": rate,
             "vs_parallelenv": rate / base if base else None,
             "vs_raw": rate / rates["raw dm_control"] if "raw dm_control" in rates else None,
             "load": load} for name, rate in rates.items()]


def run(steps: int = 300, task_steps: int = 200, repeats: int = 5,
        only: tuple[str, ...] = IMPLEMENTATIONS, scenarios: tuple[str, ...] = ("humanoid", 4, 8),
        settle_for: float = 90.0) -> list[dict[str, Any]]:
    """All scenarios; one row per (scenario, implementation); ``settle_for``: at most this many
    seconds of waiting for the load to drop before timing (0 in the kit's tests)."""
    rows: list[dict[str, Any]] = []
    for sc in scenarios:
        if sc == "humanoid":
            from reference.dmc import stand_maker, walk_maker

            rows += scenario("humanoid stand+walk", [stand_maker, walk_maker], steps, repeats,
                             raw_humanoid(steps), only, settle_for)
        else:
            makers = [spec.maker() for spec in task_specs(int(sc))]
            rows += scenario(f"{sc} cheap tasks", makers, task_steps, repeats, None, only,
                             settle_for)
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    def ratio(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}x"

    return table(("scenario", "implementation", "frames/s", "vs torchrl ParallelEnv", "vs raw",
                  "load avg"),
                 [(r["scenario"], r["implementation"], f"{r['frames_per_s']:,.0f}",
                   ratio(r["vs_parallelenv"]), ratio(r["vs_raw"]), f"{r['load']:.2f}")
                  for r in rows])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.envs", description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="humanoid steps per rollout")
    parser.add_argument("--task-steps", type=int, default=200, help="cheap-task steps")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
    parser.add_argument("--only", action="append", choices=IMPLEMENTATIONS, default=None)
    parser.add_argument("--scenario", action="append", choices=("humanoid", "4", "8"),
                        default=None)
    ns = parser.parse_args(argv)
    print(machine())
    rows = run(ns.steps, ns.task_steps, ns.repeats, tuple(ns.only or IMPLEMENTATIONS),
               tuple(ns.scenario or ("humanoid", 4, 8)))
    print(format_rows(rows))


if __name__ == "__main__":
    main()

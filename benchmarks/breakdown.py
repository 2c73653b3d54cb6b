"""Where the time goes: ``python -m benchmarks.breakdown``.

Per-call costs behind the headline tables (the best of several rounds, so the least disturbed by
other processes): one humanoid step raw, through torchrl's ``env.step`` and through the
reference's step path; the parent's and the busiest worker's CPU time per step of a reference
parallel humanoid rollout, in worker chunks and per step; tensordict's ``TensorDict.from_any``
on a tensor (every TensorDictModule output and every ``Composite.rand`` leaf goes through it);
importing torch / tensordict / torchrl in a fresh interpreter (what each spawned worker pays)
and starting a 2-task parallel env.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks._common import machine, settle, table


def best(fn: Callable[[], object], number: int, rounds: int = 7,
         setup: Callable[[], object] = lambda: None) -> float:
    """Best seconds per call over ``rounds`` rounds of ``number`` calls (``setup`` untimed before
    each round)."""
    fn()
    out = float("inf")
    for _ in range(rounds):
        setup()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        out = min(out, (time.perf_counter() - start) / number)
    return out


def humanoid_step() -> list[tuple[str, float]]:
    import torch
    from tensordict import TensorDict

    from reference import _fast_worker
    from reference.dmc import make_humanoid

    torch.set_num_threads(1)
    env = make_humanoid("stand")
    action = torch.zeros(21)
    raw, fast = env.base_env._env, _fast_worker.stepper(env)
    # 200 steps a round, each from a reset (an episode lasts 1000)
    return [("humanoid step, raw dm_control",
             best(lambda: raw.step(action.numpy()), 200, setup=raw.reset)),
            ("humanoid step, torchrl env.step(td)",
             best(lambda: env.step(TensorDict({"action": action.clone()})), 200, setup=env.reset)),
            ("humanoid step, reference step path",
             best(lambda: fast(TensorDict({"action": action.clone()})), 200, setup=env.reset))]


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parallel_rollout(steps: int = 300) -> list[tuple[str, float]]:
    """Wall time, parent CPU and busiest-worker CPU per step of a reference parallel humanoid
    rollout, random actions in worker chunks (no policy) and messaged per step (the policy
    ``env.rand_action``: the same actions)."""
    from reference import ParallelMultiTaskEnv
    from reference.dmc import stand_maker, walk_maker

    rows: list[tuple[str, float]] = []
    with ParallelMultiTaskEnv([stand_maker, walk_maker], start_timeout=600.0) as env:
        for label, policy in (("in chunks", None), ("per step", env.rand_action)):
            env.rollout(20, policy)
            got = {"wall": float("inf"), "parent": float("inf"), "worker": float("inf")}
            for _ in range(5):
                workers = [_cpu(p) for p in env.worker_pids if p]
                cpu, wall = time.process_time(), time.perf_counter()
                env.rollout(steps, policy)
                got["wall"] = min(got["wall"], (time.perf_counter() - wall) / steps)
                got["parent"] = min(got["parent"], (time.process_time() - cpu) / steps)
                used = [_cpu(p) - w for p, w in zip(env.worker_pids, workers, strict=True) if p]
                got["worker"] = min(got["worker"], max(used) / steps)
            rows += [(f"reference parallel humanoid, {label}: wall per step", got["wall"]),
                     ("  parent CPU per step", got["parent"]),
                     ("  busiest worker CPU per step", got["worker"])]
    return rows


def tensordict_calls() -> list[tuple[str, float]]:
    import importlib.util

    import torch
    from tensordict import TensorDict

    x = torch.zeros(3)
    return [("TensorDict.from_any(tensor)", best(lambda: TensorDict.from_any(x), 300)),
            ('  of which importlib.util.find_spec("pandas")',
             best(lambda: importlib.util.find_spec("pandas"), 300))]


def imports() -> list[tuple[str, float]]:
    rows = []
    for what in ("torch", "tensordict", "torchrl.envs", "reference.tasks"):
        cmd = [sys.executable, "-c", f"import {what}"]
        rows.append((f"fresh interpreter: import {what}",
                     best(lambda cmd=cmd: subprocess.run(cmd, check=True), 1, rounds=3)))
    return rows


def startup() -> list[tuple[str, float]]:
    from reference import ParallelMultiTaskEnv
    from reference.dmc import stand_maker, walk_maker
    from reference.tasks import KeySpec, TaskSpec

    cheap = [TaskSpec(f"t{i}", (KeySpec("obs", (3,)),)).maker() for i in range(2)]
    rows = []
    for label, makers in (("2 cheap tasks", cheap), ("humanoid stand+walk",
                                                     [stand_maker, walk_maker])):
        def start(makers: Any = makers) -> None:
            ParallelMultiTaskEnv(makers, start_timeout=600.0).close()
        rows.append((f"ParallelMultiTaskEnv start+close, {label}", best(start, 1, rounds=3)))
    return rows


def run() -> list[dict[str, Any]]:
    rows = []
    for part in (humanoid_step, parallel_rollout, tensordict_calls, imports, startup):
        load = settle()
        rows += [{"what": what, "seconds": s, "load": load} for what, s in part()]
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    def show(s: float) -> str:
        return f"{s * 1e6:,.1f} us" if s < 0.01 else f"{s:.2f} s"

    return table(("what", "best time", "load avg"),
                 [(r["what"], show(r["seconds"]), f"{r['load']:.2f}") for r in rows])


def main() -> None:
    print(machine())
    print(format_rows(run()))


if __name__ == "__main__":
    main()

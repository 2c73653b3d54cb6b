"""Helpers that drive batched envs for the SPEC / PAR / SCN properties.

Each helper needs only torch, tensordict and the env under test, so its source can be pasted into
a reproducer (pass it as ``prop(..., helpers=(...))``).
"""

from __future__ import annotations

import os
from typing import Any


class ScriptedPolicy:
    """A policy that writes ``actions[t][i]`` into element i at its t-th call (no RNG involved).

    Works on any batched output along dim 0 (a lazy stack's own elements, or ``unbind(0)``).
    """

    def __init__(self, actions: list[list[Any]]) -> None:
        self.actions = actions
        self.calls = 0

    def __call__(self, td: Any) -> Any:
        row = self.actions[self.calls]
        self.calls += 1
        tds = getattr(td, "tensordicts", None)
        if tds is not None and getattr(td, "stack_dim", 0) == 0:
            for elem, action in zip(tds, row):
                elem.set("action", action.clone())
            return td
        for i, action in enumerate(row):
            td[i].set("action", action.clone())  # dense outputs: write through the view
        return td


def task_trajectory(rollout: Any, i: int) -> list[Any]:
    """Task i's steps of a ``[task, time]`` rollout, each a copied plain tensordict."""
    traj = rollout[i]
    return [traj[t].clone() for t in range(traj.batch_size[0])]


def child_pids() -> set[int]:
    """PIDs of this process's live children (zombies excluded), read from /proc."""
    me = os.getpid()
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me and fields[0] != "Z":
            out.add(int(entry))
    return out


def close_env(env: Any) -> None:
    """Close an env if it has a close() and is not closed already."""
    if env is not None and not getattr(env, "is_closed", False):
        env.close()

"""The command path shared by both batched envs, and the entry point of a parallel env's worker.

Protocol, over a Pipe: the parent sends ``(command, argument)``, the worker answers ``("ok",
result)`` or ``("error", traceback)`` (nothing to "close"). Stdlib imports only at module level,
so that any failure, torch's import included, goes back as a traceback.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import traceback
from multiprocessing.connection import Connection
from typing import Any

PARTS = ("observation", "action", "reward", "done")


def specs(env: Any) -> tuple[Any, ...]:
    """Clones of the env's full observation, action, reward and done specs."""
    return tuple(getattr(env, f"full_{part}_spec").clone() for part in PARTS)


class Exchange:
    """A task's buffers, zeroed from its specs: ``act`` (action leaves), ``out`` (observation,
    reward and done tensor leaves); written by copy_in, read as copies. Non-tensor leaves (strings,
    metadata) have no buffer: ``write`` returns them and ``read`` puts them back. Speed: shared
    memory in the parallel env, so "step" and "reset" answer only their non-tensor values (a
    pickled TensorDict costs ~0.1-0.2 ms)."""

    def __init__(self, spec: tuple[Any, ...], act: Any = None, out: Any = None) -> None:
        from torchrl.data import NonTensor

        obs, action, reward, done = spec
        loose = {part: [k for k, leaf in s.items(True, True) if isinstance(leaf, NonTensor)]
                 for part, s in (("obs", obs), ("reward", reward), ("done", done))}
        if out is None:
            out = obs.zero().update(reward.zero()).update(done.zero())
            out = out.exclude(*loose["obs"], *loose["reward"], *loose["done"])
        self.act = action.zero() if act is None else act
        self.out = out
        reset = [*obs.keys(True, True), *done.keys(True, True)]  # a reset has no reward
        self.loose = {"action": [], "step": [*loose["obs"], *loose["reward"], *loose["done"]],
                      "reset": [*loose["obs"], *loose["done"]]}
        self.views = {"action": self.act, "step": self.out,
                      "reset": self.out.select(*(k for k in reset if k not in self.loose["step"]))}
        self.leaves = {w: [(k, td.get(k)) for k in td.keys(True, True)]  # looked up once
                       for w, td in self.views.items()}
        self.last: dict[Any, Any] = {}  # the non-tensor leaves of the last output written

    def write(self, what: str, td: Any) -> dict[Any, Any]:
        """Copy the leaves of ``td`` (the "action" input, or a "step" or "reset" output) in;
        return its non-tensor leaves (key: value)."""
        copy_in(what, self.leaves[what], td)
        loose = {}
        for key in self.loose[what]:
            loose[key] = td.get(key, None)
            if loose[key] is None:
                raise ValueError(f"{what} entry {key!r}: got nothing, but its spec says a "
                                 "non-tensor entry")
        if what != "action":
            self.last = loose
        return loose

    def read(self, what: str, loose: dict[Any, Any] | None = None) -> Any:
        """A copy of the ``what`` buffers, with the non-tensor leaves ``write`` returned."""
        out = self.views[what].clone()
        for key, value in (loose or {}).items():
            out.set(key, value)
        return out


def copy_in(what: str, leaves: list[tuple[Any, Any]], td: Any) -> None:
    """Copy each ``(key, buffer)`` leaf's value in ``td`` into its buffer, bitwise; a missing
    value or another shape or dtype raises ValueError naming the key."""
    for key, dst in leaves:
        value = td.get(key, None)
        if value is None or value.shape != dst.shape or value.dtype != dst.dtype:
            got = "nothing" if value is None else f"shape {tuple(value.shape)} {value.dtype}"
            raise ValueError(f"{what} entry {key!r}: got {got}, but its spec says shape "
                             f"{tuple(dst.shape)} {dst.dtype}")
        dst.copy_(value)


def handle(env: Any, command: str, arg: Any, ex: Exchange) -> Any:
    """Run one command on a task env: "reset" and "step" (with ``ex.act``, set by the caller)
    write into ``ex.out`` and return the output's non-tensor leaves; "set_seed" returns the seed
    ``env.set_seed(arg)`` returns."""
    if command == "reset":  # arg: None, or a bool mask of the rows to reset (a batched task)
        if arg is None:
            return ex.write("reset", env.reset())
        # torchrl's partial reset: the input holds the current data, the mask picks the rows
        return ex.write("reset", env.reset(ex.read("reset", ex.last).set("_reset",
                                                                         arg.unsqueeze(-1))))
    if command == "step":  # (a clone: the env may keep its input)
        return ex.write("step", env.step(ex.act.clone()).get("next"))
    if command == "set_seed":
        return env.set_seed(arg)
    raise ValueError(f"unknown command {command!r}")


def main(conn: Connection, maker_bytes: bytes, environ: dict[str, str] | None = None,
         handle: Any = handle) -> None:
    """Build the env from ``maker_bytes``, send its specs and shared buffers, serve commands with
    ``handle``; first replace the environment variables with ``environ`` (the parent's) if given."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    try:
        import torch

        torch.set_num_threads(1)
        env = pickle.loads(maker_bytes)()
        spec = specs(env)
        ex = Exchange(spec)
        ex = Exchange(spec, ex.act.share_memory_(), ex.out.share_memory_())
        conn.send(("ok", (spec, ex.act, ex.out)))  # multiprocessing's pickler: tensors by handle
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        return
    try:
        while True:
            try:
                command, arg = conn.recv()
            except EOFError:  # the parent went away
                return
            if command == "close":
                return
            try:
                answer: tuple[str, Any] = ("ok", handle(env, command, arg, ex))
            except BaseException:
                answer = ("error", traceback.format_exc())
            conn.send(answer)
            if answer[0] == "error":
                return
    finally:
        with contextlib.suppress(Exception):
            env.close()

"""Entry point of a ParallelMultiTaskEnv worker process.

Only stdlib imports at module level: ``import torch`` and building the env happen inside
try/except so that any failure, an import error included, goes back to the parent as a traceback.
Protocol: every message is ``pickle.dumps(...)`` bytes over a Pipe; the parent sends
``(command, argument)``, the worker answers ``("ok", result)`` or ``("error", traceback)``
(nothing to "close").
"""

from __future__ import annotations

import contextlib
import pickle
import traceback
from multiprocessing.connection import Connection
from typing import Any


def _send(conn: Connection, status: str, payload: Any) -> None:
    conn.send_bytes(pickle.dumps((status, payload)))


def specs(env: Any) -> tuple[Any, ...]:
    """Clones of the env's full observation, action, reward and done specs."""
    return tuple(getattr(env, f"full_{part}_spec").clone()
                 for part in ("observation", "action", "reward", "done"))


def handle(env: Any, command: str, arg: Any) -> Any:
    """Run one command on a task env: "reset" → reset output, "step" → the "next" tensordict of
    ``env.step(arg)``, "set_seed" → the seed ``env.set_seed(arg)`` returns."""
    if command == "reset":
        return env.reset()
    if command == "step":
        return env.step(arg).get("next")
    if command == "set_seed":
        return env.set_seed(arg)
    raise ValueError(f"unknown command {command!r}")


def main(conn: Connection, maker_bytes: bytes) -> None:
    """Build the env from ``maker_bytes``, send its specs, then serve commands until "close"."""
    try:
        import torch

        torch.set_num_threads(1)
        env = pickle.loads(maker_bytes)()
        _send(conn, "ok", specs(env))
    except BaseException:
        _send(conn, "error", traceback.format_exc())
        return
    try:
        while True:
            try:
                command, arg = pickle.loads(conn.recv_bytes())
            except EOFError:  # the parent went away
                return
            if command == "close":
                return
            try:
                result = handle(env, command, arg)
            except BaseException:
                _send(conn, "error", traceback.format_exc())
                return
            _send(conn, "ok", result)
    finally:
        with contextlib.suppress(Exception):
            env.close()

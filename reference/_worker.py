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


def main(conn: Connection, maker_bytes: bytes) -> None:
    """Build the env from ``maker_bytes``, send its specs, then serve commands until "close"."""
    try:
        import torch

        torch.set_num_threads(1)
        env = pickle.loads(maker_bytes)()
        specs = tuple(getattr(env, f"full_{part}_spec").clone()
                      for part in ("observation", "action", "reward", "done"))
        _send(conn, "ok", specs)
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
                if command == "reset":
                    result = env.reset()
                elif command == "step":
                    result = env.step(arg).get("next")
                elif command == "set_seed":
                    result = env.set_seed(arg)
                else:
                    raise ValueError(f"unknown command {command!r}")
            except BaseException:
                _send(conn, "error", traceback.format_exc())
                return
            _send(conn, "ok", result)
    finally:
        with contextlib.suppress(Exception):
            env.close()

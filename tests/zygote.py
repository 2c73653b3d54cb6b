"""A process that has imported what every ``python -m conformance`` run imports first (torch,
tensordict, torchrl, pytest, hypothesis, the CLI) and forks one child per command: the kit's
black-box tests run the real CLI in a real process of its own, without paying those imports
(about 3 s of CPU) for each of them.

The standard library's forkserver cannot serve here: it is one per process, and the kit's own
reference env uses it with other preloaded modules.

Protocol (one JSON object per line): the test process writes ``{"module", "argv", "cwd", "env",
"stdout", "stderr"}``; the zygote forks, answers ``{"pid": N}``, then ``{"code": N}`` when the
child ends (negative: killed by that signal, as ``subprocess`` reports it).  The child runs like
``python -m MODULE ARGV`` started in ``cwd`` with ``env``: ``sys.argv``, ``sys.path[0]``, the
environment, standard streams (stdin from /dev/null, stdout and stderr to the files) and
``__main__`` are set as such a process has them, and it exits through the interpreter's own
shutdown (atexit handlers run).

Only what ``python -m conformance`` imports before its own code runs is preloaded: the kit's
package modules that pytest rewrites (the plugin, the properties) and ``reference`` are imported
by the child, as in a fresh process.  ``CONFORMANCE_TESTS_NO_ZYGOTE=1`` runs every command in
a fresh subprocess instead (tests/conftest.py).  Used on Linux only (``fork`` after importing
torch is what Linux's multiprocessing does by default; macOS does not allow it).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

PRELOAD = ("torch", "tensordict", "torchrl.envs", "pytest", "hypothesis", "conformance.cli")


def _serve() -> dict[str, Any] | None:
    """Answer requests until stdin closes; in a forked child, return its request."""
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            return request
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"code": os.waitstatus_to_exitcode(status)}), flush=True)
    return None


def _become(request: dict[str, Any]) -> None:
    """Turn this forked child into ``python -m MODULE ARGV`` and run it."""
    import runpy

    sys.stdin.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    os.close(null)
    sys.stdin = open(0, closefd=False)  # fd 0 lives as long as the process
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.path[0] = os.getcwd()  # what -m puts first
    sys.argv = [request["module"], *request["argv"]]
    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)


def main() -> None:
    for name in PRELOAD:
        __import__(name)
    print(json.dumps({"ready": os.getpid()}), flush=True)
    request = _serve()
    if request is not None:
        _become(request)  # SystemExit from the CLI ends the child as it ends `python -m`


if __name__ == "__main__":
    main()

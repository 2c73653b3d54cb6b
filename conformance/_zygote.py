"""A process that imports torch, tensordict and torchrl once and forks one child per script or
``-m`` module to run: each child starts with those imports done (about 3 s of CPU saved per run)
and is otherwise what ``python SCRIPT`` / ``python -m MODULE ARGS`` would be (``sys.argv``,
``sys.path[0]``, the working directory, standard streams, ``__main__``, the exit code, a
traceback for an uncaught exception, atexit handlers at the end).

The findings verifier runs reproducers this way (``conformance.findings``), and the kit's own
tests run the CLI this way.  Only where ``fork`` is how Linux's multiprocessing starts processes
by default: elsewhere (macOS forbids forking after such imports) callers run a fresh interpreter.

The standard library's forkserver does not fit: it is one per process, and subjects (the
reference among them) use it with preloads of their own.

Protocol, one JSON object per line: the client writes ``{"target", "module", "argv", "cwd",
"env", "stdout", "stderr", "session"}``; the zygote forks and answers ``{"pid": N}``, then
``{"code": N}`` once the child ends (negative: the signal that killed it, as ``subprocess``).
"""

from __future__ import annotations

import gc
import json
import os
import selectors
import subprocess
import sys
import threading
from typing import IO, Any

USABLE = sys.platform.startswith("linux") and hasattr(os, "fork")


def enabled() -> bool:
    """Whether to fork from a zygote here: on Linux, unless CONFORMANCE_NO_ZYGOTE is set (then
    every script runs in a fresh interpreter)."""
    return USABLE and not os.environ.get("CONFORMANCE_NO_ZYGOTE")


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
    """Turn this forked child into the process the request describes and run it."""
    import runpy

    if request.get("session"):
        os.setsid()  # its own session: what it leaves behind is killed with it
    sys.stdin.close()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    for fd, path in ((1, request["stdout"]), (2, request.get("stderr") or request["stdout"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = open(0, closefd=False)  # fd 0 lives as long as the process
    os.chdir(request["cwd"])
    if request.get("env") is not None:
        os.environ.clear()
        os.environ.update(request["env"])
    target = request["target"]
    if request.get("module"):
        sys.path[0] = os.getcwd()  # what -m puts first
        sys.argv = [target, *request.get("argv", [])]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
        return
    sys.path[0] = os.path.dirname(os.path.abspath(target))  # what `python SCRIPT` puts first
    sys.argv = [target, *request.get("argv", [])]
    try:
        runpy.run_path(target, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:  # shown as Python shows it: from the script's frame on
        _uncaught(exc, target)


def _uncaught(exc: BaseException, target: str) -> None:
    import signal
    import traceback

    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != target:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb or exc.__traceback__)
    sys.stderr.flush()
    if isinstance(exc, KeyboardInterrupt):  # as Python ends on one: killed by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    raise SystemExit(1)


def main(argv: list[str]) -> None:
    """``python -m conformance._zygote MODULE,MODULE [TAG]``: import the modules, then serve
    (TAG only marks the command line, e.g. for the kit's child-process checks)."""
    for name in filter(None, argv[0].split(",")):
        try:
            __import__(name)
        except Exception:  # not installed, or broken: the child imports it again itself and
            pass  # meets the same error, as a fresh interpreter would
    print(json.dumps({"ready": os.getpid()}), flush=True)
    try:
        request = _serve()
        if request is not None:
            _become(request)  # a SystemExit from it ends the child as it ends `python ...`
    finally:  # the zygote and each child: skip the collection at exit of what the preloads
        gc.freeze()  # built (about 1 s of CPU with tensordict; see conformance.__main__)


class Zygote:
    """Client: starts the zygote on first use (with ``env``, default this process's) and runs
    requests one at a time; :meth:`close` ends it (its running child, if any, is not waited for
    by the caller: kill it first)."""

    def __init__(self, preload: tuple[str, ...], tag: str = "",
                 env: dict[str, str] | None = None) -> None:
        self.preload, self.tag, self.env = preload, tag, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def _process(self) -> subprocess.Popen[bytes]:
        if self.proc is not None and self.proc.poll() is None:
            return self.proc
        cmd = [sys.executable, "-m", "conformance._zygote", ",".join(self.preload)]
        self.proc = subprocess.Popen([*cmd, *([self.tag] if self.tag else [])], env=self.env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        if "ready" not in self._answer(300):
            raise RuntimeError("the zygote did not start")
        return self.proc

    def _answer(self, timeout: float | None) -> dict[str, Any]:
        assert self.proc is not None
        out: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        with selectors.DefaultSelector() as waiting:  # (select() refuses fds above 1023)
            waiting.register(out, selectors.EVENT_READ)
            if not waiting.select(timeout):
                raise TimeoutError
        line = out.readline()
        if not line:
            raise RuntimeError(f"the zygote ended (exit code {self.proc.wait()})")
        return json.loads(line)  # type: ignore[no-any-return]

    def run(self, target: str, *, argv: tuple[str, ...] | list[str] = (), module: bool = False,
            cwd: str, stdout: str, stderr: str | None = None, env: dict[str, str] | None = None,
            session: bool = False, timeout: float | None = None) -> int | None:
        """Run ``target`` (a script path, or a module with ``module``) in a forked child, its
        output appended to ``stdout`` / ``stderr`` (one file when ``stderr`` is None): its exit
        code, or None when it ran past ``timeout`` (it is killed then).  With ``session`` it
        runs in a session of its own, killed whole once it ends: what it left behind goes too."""
        with self.lock:
            proc = self._process()
            assert proc.stdin is not None
            request = {"target": target, "module": module, "argv": list(argv), "cwd": cwd,
                       "env": env, "stdout": stdout, "stderr": stderr, "session": session}
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            pid = self._answer(60)["pid"]
            try:
                code: int | None = int(self._answer(timeout)["code"])
            except TimeoutError:
                _stop_running(pid, session)
                self._answer(60)
                code = None
            if session:  # (by its session only: once reaped, its pid may be another's)
                _kill_session(pid)
            return code

    def close(self) -> None:
        with self.lock:
            if self.proc is None or self.proc.poll() is not None:
                return
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _kill_session(pid: int) -> None:
    """SIGKILL the session ``pid`` led (what is left of it once the leader ended)."""
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_running(pid: int, session: bool) -> None:
    """Stop child ``pid``, still running (the zygote has not reaped it, so the pid is still its),
    with its descendants (and, with ``session``, its session)."""
    import psutil

    from conformance.hygiene import stop_pids

    if session:
        _kill_session(pid)
    try:
        tree = [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        tree = []
    stop_pids([*tree, pid], grace=1.0)


if __name__ == "__main__":
    main(sys.argv[1:])

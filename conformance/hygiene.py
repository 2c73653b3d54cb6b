"""Process hygiene: bounded calls, bounded garbage collections, child processes and leftovers.

- :func:`call_within` is the kit's one timer: a call that may hang runs under it (a property's
  step into a subject's workers, a close) and so does :func:`collect_garbage` (a finalizer that
  never returns).
- :func:`stop_processes` is the kit's one terminate-then-kill loop: the plugin's reaper
  (:func:`stop_leftover_workers`) and the doctor's spawned probe stop their workers with it.
- :func:`child_pids` / :func:`children_left` scan this process's tree (psutil: Linux and macOS).

``call_within``, ``child_pids`` and ``children_left`` are pasted into standalone reproducers
(``prop(..., helpers=(...))``): each imports what it uses inside its body and calls no other
function of this module but ``child_pids``.  The module imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

FINALIZER_LIMIT = 20.0  # seconds a garbage collection may spend before a finalizer is interrupted


def call_within(seconds: float, fn: Any, *args: Any, every: float = 0.0,
                interrupt: type[BaseException] | None = None,
                stuck: Any = None) -> tuple[str, Any, float]:
    """Call ``fn(*args)`` and say how it ended: ("ok", result, s), ("raised", exception, s) or
    ("hung", None, s) when it had not returned after ``seconds`` (see ``stuck``).

    On the main thread the call runs right here and a SIGALRM timer interrupts it (with a
    BaseException, so a subject's ``except Exception`` cannot swallow it); elsewhere it runs in
    a daemon thread that is abandoned when it hangs.  Either way the caller always gets control
    back shortly after ``seconds``.  ``every``: on the main thread, interrupt again every
    ``every`` seconds after the first (code that swallows the interrupt, such as a finalizer
    run by ``gc.collect``, is interrupted once per stuck step).  ``interrupt``: the exception
    class the timer raises (default: a private one).  A timer set before the call
    (pytest-timeout's) is suspended during it and goes on afterwards with the time it had left.

    ``stuck``: a function of the calling thread's innermost frame, looked at every 0.25 s while
    the call runs, that says (a text) when the call cannot return before ``seconds`` whatever
    happens next; the answer is then ("hung", that text, s) at once instead of at ``seconds``.
    """
    import signal
    import sys
    import threading
    import time

    class Hung(BaseException):
        pass

    error = interrupt or Hung
    start = time.monotonic()
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        armed = [True]

        def on_alarm(signum: int, frame: Any) -> None:
            if armed[0]:
                raise error(f"{getattr(fn, '__qualname__', fn)} still running after {seconds:g} s")

        previous = signal.signal(signal.SIGALRM, on_alarm)
        delay, interval = signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01),
                                           max(every, 0.01) if every else 0.0)
        found: list[str] = []
        done = threading.Event()

        def watch(ident: int) -> None:  # stuck for good: the alarm now, not at ``seconds``
            while not done.wait(0.25):
                frame = sys._current_frames().get(ident)
                where = stuck(frame) if frame is not None else None
                if where:
                    found.append(where)
                    signal.pthread_kill(ident, signal.SIGALRM)
                    return

        watcher = threading.Thread(target=watch, args=(threading.get_ident(),), daemon=True)
        if stuck is not None:
            watcher.start()
        try:
            try:
                result = fn(*args)
            finally:
                armed[0] = False  # from here on, an alarm still pending does nothing
            return "ok", result, time.monotonic() - start
        except error:
            return "hung", (found or [None])[0], time.monotonic() - start
        except Exception as exc:
            return "raised", exc, time.monotonic() - start
        finally:
            armed[0] = False
            done.set()
            if watcher.is_alive():  # its alarm must reach on_alarm, not the handler restored
                watcher.join()
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if delay:  # a timer someone else set: it goes on with the time it had left
                signal.setitimer(signal.ITIMER_REAL,
                                 max(delay - (time.monotonic() - start), 0.001), interval)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["ok"] = fn(*args)
        except Exception as exc:
            box["raised"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while thread.is_alive() and time.monotonic() - start < seconds:
        thread.join(min(0.25, seconds - (time.monotonic() - start)) if stuck else seconds)
        frame = sys._current_frames().get(thread.ident or 0) if stuck else None
        where = stuck(frame) if frame is not None else None
        if where and thread.is_alive():
            return "hung", where, time.monotonic() - start
    elapsed = time.monotonic() - start
    if thread.is_alive():
        return "hung", None, elapsed
    return ("ok", box["ok"], elapsed) if "ok" in box else ("raised", box["raised"], elapsed)


def collect_garbage(limit: float = FINALIZER_LIMIT) -> list[str]:
    """``gc.collect()`` under :func:`call_within`, interrupting a finalizer (``__del__``) still
    running ``limit`` seconds after the collection started, then every ``limit`` seconds: a
    subject's finalizer that never returns (torchrl 0.14's AsyncEnvPool.__del__ spins forever on
    a result queue whose pipe is gone, after a failed construction) must not hang the run.
    Returns what was interrupted.  Off the main thread it collects without a limit (no timer
    there, and a collection left running in an abandoned thread would block every later one).

    The plugin runs it after each property that starts worker processes, so an env a failing
    example left unclosed is finalized then, not at a random later allocation (torchrl's
    AsyncEnvPool.__del__ joins its workers for up to 60 s; run inside pytest's report formatting
    it broke the run with an INTERNALERROR).  Not after the others: a full collection costs
    ~0.2 s with torch loaded, 10 s over a run."""
    import gc
    import signal
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal,
                                                                               "setitimer"):
        gc.collect()
        return []

    class FinalizerTimeout(BaseException):
        pass

    stuck: list[str] = []
    hook = sys.unraisablehook

    def unraisable(info: Any) -> None:  # a finalizer's exception never reaches gc.collect()
        if isinstance(info.exc_value, FinalizerTimeout):
            stuck.append(f"{info.object!r} still running after {limit:g} s")
        else:
            hook(info)

    sys.unraisablehook = unraisable
    try:
        call_within(limit, gc.collect, every=limit, interrupt=FinalizerTimeout)
    finally:
        sys.unraisablehook = hook
    return stuck


def stop_processes(procs: Iterable[Any], grace: float = 2.0, wait: float = 0.0) -> None:
    """Stop ``multiprocessing`` processes: give each ``wait`` seconds to exit by itself, then
    terminate the ones still alive, wait ``grace`` seconds, and kill the ones still alive."""
    procs = list(procs)
    if wait:
        for proc in procs:
            proc.join(wait)
    for stop in ("terminate", "kill"):
        alive = [proc for proc in procs if proc.is_alive()]
        for proc in alive:
            getattr(proc, stop)()
        for proc in alive:
            proc.join(grace)


def stop_pids(pids: Iterable[int], grace: float = 2.0) -> None:
    """Terminate, then after ``grace`` seconds kill, the processes ``pids`` still alive (psutil;
    a pid gone meanwhile is skipped)."""
    import psutil

    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    for stop in ("terminate", "kill"):
        for proc in procs:
            try:
                getattr(proc, stop)()
            except psutil.Error:
                continue
        procs = psutil.wait_procs(procs, timeout=grace)[1]
        if not procs:
            return


def is_finding_reproducer(pid: int) -> bool:
    """Whether process ``pid`` runs a finding's reproducer, or is started by one (the kit's
    verifier runs them beside the properties, from a ``conformance-finding-*`` folder): not a
    subject's process."""
    import psutil

    try:
        chain = [psutil.Process(pid), *psutil.Process(pid).parents()]
    except psutil.Error:
        return False
    for proc in chain:  # (its workers too: their ancestor runs it)
        try:
            if any("conformance-finding-" in part for part in proc.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def stop_leftover_workers(grace: float = 2.0) -> list[str]:
    """Terminate (then kill) the worker processes this process started that are still running:
    at exit multiprocessing joins every non-daemon child, so a subject's leaked worker (torchrl
    0.14's AsyncEnvPool workers ignore shutdown after a task's error) would hang the run's end.
    Returns them, described."""
    import multiprocessing

    import psutil

    def running(pid: int | None) -> bool:  # (one the kit killed and reaped stays "alive" to
        try:                                # multiprocessing, which can no longer wait on it)
            return pid is not None and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    left = [p for p in multiprocessing.active_children() if p.is_alive() and running(p.pid)]
    stop_processes(left, grace)
    return [f"{proc.name} (pid {proc.pid})" for proc in left]


def child_pids() -> set[int]:
    """PIDs of this process's live descendants (zombies excluded), found with psutil.

    multiprocessing's resource tracker and forkserver are left out: they are started once, on
    first use, and serve the whole process, not one env; the workers a forkserver forks are
    grandchildren of this process, and counted. The kit's own findings verifier (a reproducer
    run from a ``conformance-finding-`` folder, beside the properties) is left out with all it
    started.
    """
    import os

    import psutil

    me = psutil.Process(os.getpid())
    shared, skipped = set(), set()
    for child in me.children():  # a forkserver's workers carry its command line: only it is shared
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if any(f"multiprocessing.{name}" in cmdline for name in ("resource_tracker",
                                                                 "forkserver")):
            shared.add(child.pid)
        elif "conformance-finding-" in cmdline:
            skipped |= {child.pid} | {p.pid for p in child.children(recursive=True)}
    alive = set()
    for proc in me.children(recursive=True):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.add(proc.pid)
        except psutil.Error:  # gone meanwhile
            continue
    return alive - shared - skipped


def children_left(before: set[int], grace: float = 5.0,
                  ignore: Callable[[int], bool] | None = None) -> list[str]:
    """Children started since ``before`` (a :func:`child_pids` result) that are still alive after
    waiting up to ``grace`` seconds for them to exit, described as "pid: command line".
    ``ignore``: PIDs it answers True for are neither waited on nor listed."""
    import time

    import psutil

    deadline = time.monotonic() + grace
    while True:
        left = {p for p in child_pids() - before if not (ignore and ignore(p))}
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    described = []
    for pid in sorted(left):
        try:
            cmd = " ".join(psutil.Process(pid).cmdline()).strip()
        except psutil.Error:
            cmd = "?"
        described.append(f"{pid}: {cmd[:120]}")
    return described

"""Unit tests of ``conformance.hygiene``: the one timer (``call_within``, and the bounded garbage
collection built on it), the one terminate-then-kill loop, and the process-tree scan (psutil)
that the PAR / SCN properties use to find the workers an env left behind."""

from __future__ import annotations

import inspect
import multiprocessing
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from conformance import hygiene

POSIX_TIMER = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer")


class _Spinner:
    """An object whose finalizer never returns (like torchrl 0.14's AsyncEnvPool.__del__ on a
    result queue whose pipe is gone), kept in a reference cycle so only a collection frees it."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        while True:
            pass


def _sleep_forever() -> None:
    time.sleep(600)


def _ignore_sigterm_and_sleep() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)


def _spin() -> None:
    while True:
        pass


def _swallow_interrupts(counter: list[int]) -> None:
    """Swallow two interrupts (as gc.collect swallows a finalizer's), then return."""
    while counter[0] < 2:
        try:
            _spin()
        except BaseException:
            counter[0] += 1


def _wait_until(predicate, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@POSIX_TIMER
class TestCallWithin:
    def test_outcomes(self):
        """ok with the result, raised with the exception, hung after the limit."""
        assert hygiene.call_within(5, sum, [1, 2])[:2] == ("ok", 3)
        outcome, exc, _ = hygiene.call_within(5, int, "x")
        assert outcome == "raised" and isinstance(exc, ValueError)
        outcome, value, secs = hygiene.call_within(0.3, _spin)
        assert (outcome, value) == ("hung", None) and 0.3 <= secs < 5

    def test_except_exception_cannot_swallow_the_interrupt(self):
        def stubborn() -> None:
            while True:
                try:
                    _spin()
                except Exception:
                    pass

        assert hygiene.call_within(0.3, stubborn)[0] == "hung"

    def test_every_interrupts_again(self):
        """With ``every`` the timer goes on: code that swallows an interrupt gets the next."""
        counter = [0]
        outcome, _, secs = hygiene.call_within(0.2, _swallow_interrupts, counter, every=0.2)
        assert outcome == "ok" and counter == [2] and secs < 5

    def test_an_earlier_timer_goes_on(self):
        """A timer set before the call (pytest-timeout's) keeps its handler and its time left."""
        fired = []
        previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
        try:
            signal.setitimer(signal.ITIMER_REAL, 1.0, 0.0)
            assert hygiene.call_within(0.2, _spin)[0] == "hung"
            left, _ = signal.getitimer(signal.ITIMER_REAL)
            assert 0.3 < left <= 0.8 and not fired
            _wait_until(lambda: fired, 5.0)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)

    @pytest.mark.parametrize("thread", ["main", "other"])
    def test_stuck_answers_before_the_limit(self, thread):
        """``stuck`` seeing the call inside a sleep it cannot leave: ("hung", its text) long
        before the limit, on the main thread (the sleep is interrupted) and off it; a call it
        never sees stuck runs as without it, and the earlier SIGALRM handler is back."""
        import threading

        def stuck(frame):
            return "in _sleep_forever" if frame.f_code is _sleep_forever.__code__ else None

        def run(fn):
            if thread == "main":
                return hygiene.call_within(60, fn, stuck=stuck)
            box = {}
            other = threading.Thread(target=lambda: box.update(r=hygiene.call_within(
                60, fn, stuck=stuck)))
            other.start()
            other.join(30)
            return box["r"]

        previous = signal.getsignal(signal.SIGALRM)
        outcome, value, secs = run(_sleep_forever)
        assert (outcome, value) == ("hung", "in _sleep_forever") and secs < 30
        assert run(lambda: time.sleep(0.6) or 7)[:2] == ("ok", 7)
        time.sleep(0.5)  # an alarm left armed would fire here (its default ends the process)
        assert signal.getsignal(signal.SIGALRM) is previous
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)

    def test_off_the_main_thread_a_hung_call_is_abandoned(self):
        import threading

        box = {}
        stop = threading.Event()

        def spin_until_stopped() -> None:  # abandoned, a spinning thread would eat a core
            while not stop.is_set():  # for the rest of this worker's tests
                pass

        thread = threading.Thread(target=lambda: box.update(r=hygiene.call_within(
            0.3, spin_until_stopped)))
        thread.start()
        try:
            thread.join(10)
            assert box["r"][0] == "hung"
        finally:
            stop.set()


@POSIX_TIMER
class TestGarbage:
    def test_hanging_finalizer_is_interrupted(self):
        """collect_garbage interrupts a finalizer that does not return and names it."""
        import gc

        gc.collect()
        _Spinner()
        start = time.monotonic()
        stuck = hygiene.collect_garbage(0.5)
        assert time.monotonic() - start < 10
        assert len(stuck) == 1 and "_Spinner.__del__" in stuck[0] and "0.5 s" in stuck[0]
        assert hygiene.collect_garbage(0.5) == []  # finalized once: nothing left

    def test_every_stuck_finalizer_is_interrupted(self):
        import gc

        gc.collect()
        _Spinner(), _Spinner()
        stuck = hygiene.collect_garbage(0.3)
        assert len(stuck) == 2 and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


class TestStopping:
    def test_leftover_workers_are_stopped(self):
        """stop_leftover_workers terminates a running non-daemon worker and names it."""
        proc = multiprocessing.get_context("fork").Process(target=_sleep_forever,
                                                           name="leftover")
        proc.start()
        left = hygiene.stop_leftover_workers(grace=2.0)
        assert left == [f"leftover (pid {proc.pid})"]
        assert not proc.is_alive() and proc.exitcode is not None

    def test_a_worker_ignoring_terminate_is_killed(self):
        proc = multiprocessing.get_context("fork").Process(target=_ignore_sigterm_and_sleep)
        proc.start()
        time.sleep(0.3)  # let it install its handler
        hygiene.stop_processes([proc], grace=0.5)
        assert proc.exitcode == -signal.SIGKILL


class TestChildren:
    def test_descendants_counted_zombies_not(self):
        """A child and its own child are counted; a child that exited unreaped is not."""
        script = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
                  "'import time; time.sleep(60)']); print(p.pid, flush=True); time.sleep(60)")
        before = hygiene.child_pids()
        child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        zombie = subprocess.Popen([sys.executable, "-c", "pass"])
        try:
            grandchild = int(child.stdout.readline())
            _wait_until(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)
            now = hygiene.child_pids() - before
            assert {child.pid, grandchild} <= now and zombie.pid not in now
            left = hygiene.children_left(before, grace=0.1)
            assert f"{grandchild}: {sys.executable} -c import time; time.sleep(60)" in left
        finally:
            psutil.Process(grandchild).kill()
            child.kill()
            child.wait()
            child.stdout.close()
            zombie.wait()
        assert hygiene.children_left(before, grace=5.0) == []

    @pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(),
                        reason="no forkserver")
    def test_shared_servers_left_out_their_workers_counted(self):
        """The resource tracker and the forkserver serve the whole process: not counted; the
        workers a forkserver forks are."""
        ctx = multiprocessing.get_context("forkserver")
        proc = ctx.Process(target=_sleep_forever)
        proc.start()
        try:
            servers = [c.pid for c in psutil.Process().children()
                       if "multiprocessing.forkserver" in " ".join(c.cmdline())]
            assert servers, "no forkserver started"
            pids = hygiene.child_pids()
            assert proc.pid in pids and not set(servers) & pids
        finally:
            hygiene.stop_processes([proc], grace=2.0)
        assert proc.pid not in hygiene.child_pids()


@pytest.mark.parametrize("name", ["call_within", "child_pids", "children_left"])
def test_pasted_source_is_self_contained(name):
    """A reproducer pastes these functions' source (conformance/repro.py): each runs from its
    source alone, with only the functions pasted beside it."""
    namespace: dict = {}
    source = "\n\n".join(textwrap.dedent(inspect.getsource(getattr(hygiene, fn)))
                         for fn in ("call_within", "child_pids", "children_left"))
    exec(compile("from __future__ import annotations\n\n" + source, "<repro>", "exec"), namespace)
    fn = namespace[name]
    if name == "call_within":
        assert fn(5, sum, [1, 2])[:2] == ("ok", 3)
    elif name == "child_pids":
        assert fn() == hygiene.child_pids()
    else:
        assert fn(hygiene.child_pids(), grace=0.0) == []


def test_properties_still_import_them_from_envs():
    from conformance.properties import _envs

    for name in ("call_within", "child_pids", "children_left"):
        assert getattr(_envs, name) is getattr(hygiene, name)

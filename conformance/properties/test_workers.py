"""PAR: worker failures and shutdown -- a process-parallel env surfaces a worker's error, naming
its task, and leaves no child process behind (PAR-008..010); a worker that stops answering
(PAR-013) and an interrupt while the parent waits on one (PAR-014) end alike.  The other PAR
properties are in :mod:`.test_parallel` and :mod:`.test_sequences`.

Worker failures (PAR-008 / PAR-009) are judged by one criterion, :func:`_envs.names_task_index`:
the exception, or one Python shows with it, has an int ``task_index`` / ``worker_index`` /
``env_index`` / ``index`` attribute equal to the failing task's index, or its message says
"task k", "worker k", "env k" or "index k" (also "#k", "[k]", ":k", "=k").  Each call that could
hang runs under :func:`_envs.call_within`, so a hanging subject fails the property after 30 s
instead of hanging the run.  PAR-008 times the failing step() call; PAR-009 times construction
plus the first reset() (a lazily started env builds its workers there), worker start-up
included.  PAR-013 / PAR-014 build their env with a short deadline where the subject names the
keyword that sets one (``Subject.deadline_keyword``; the reference's ``timeout``):
:data:`HANG_DEADLINE` = 2 s, and allow :func:`hang_bound` = that plus :data:`HANG_GRACE` (8 s:
the subject stops its workers and raises) for a hung step, plus :data:`START_ALLOWANCE` (20 s: the
other workers' start-up, importing torch, comes first) for a hung construction.  A subject that
names no such keyword is allowed :data:`HANG_BOUND` = 45 s: room for a default deadline of 30 s
(the reference's) plus its 5 s shutdown grace; a subject whose own deadline is longer names its
keyword (a hung construction took 56 s in all at load 15 on a 2-core machine with the reference's
default). One that waits forever fails after that -- or at once when its env runs the hung task
in the calling thread (:func:`_envs.hang_outlasting` sees the task's sleep on that thread's stack:
the call cannot end within the bound).
"No child process" is checked after the failure and before close() (a failed env
must stop its workers itself), allowing 5 s for exiting children; multiprocessing's resource
tracker and forkserver are not the env's children (:func:`_envs.child_pids`).
"""

from __future__ import annotations

from functools import partial

from conformance.assertions import expect
from conformance.hygiene import stop_pids
from conformance.properties._core import prop
from conformance.properties._envs import (
    call_within,
    carries_cause,
    child_pids,
    children_left,
    close_quietly,
    describe_exception,
    exit_blockers,
    hang_outlasting,
    interrupted_call,
    names_task_index,
    next_root,
    write_actions,
)
from conformance.strategies import (
    FailureCase,
    RolloutCase,
    failure_cases,
    failure_example,
    hang_cases,
    hang_example,
    rollout_cases,
    rollout_example,
)

HANG_BOUND = 45.0  # s: a subject that names no deadline keyword (see the module docstring)
HANG_DEADLINE = 2.0  # s: the deadline PAR-013 passes through the subject's deadline keyword
HANG_GRACE = 8.0  # s past that deadline for the subject to stop its workers and raise
START_ALLOWANCE = 20.0  # s more when the construction hangs: the other workers start first
INTERRUPT_AFTER = 2.0  # s into the hung step when PAR-014 sends SIGINT
INTERRUPT_DEADLINE = 3 * INTERRUPT_AFTER  # s: PAR-014's deadline, well after its interrupt
HANG_CLOSE = 10.0  # s: the clean-up close() after a hang, its workers stopped first


def with_deadline(subject, deadline: float) -> tuple[dict[str, float], str]:
    """The ``parallel_env`` keyword arguments that set ``deadline`` on ``subject``'s env (none
    when it names no deadline keyword) and how a call description shows them."""
    keyword = getattr(subject, "deadline_keyword", None)
    if not keyword:
        return {}, ""
    return {keyword: deadline}, f", {keyword}={deadline:g}"


def hang_bound(kwargs: dict[str, float], construction: bool) -> float:
    """Seconds a hung call may take before PAR-013 / PAR-014 call it hung: the deadline passed
    (``kwargs``) plus :data:`HANG_GRACE` (and :data:`START_ALLOWANCE` for a hung construction),
    or :data:`HANG_BOUND` when the subject names no deadline keyword."""
    if not kwargs:
        return HANG_BOUND
    return max(kwargs.values()) + HANG_GRACE + (START_ALLOWANCE if construction else 0.0)


def expect_no_children_left(before: set[int], what: str, call: str, fix: str) -> None:
    """No child process started since ``before`` (a :func:`child_pids` result) is still alive
    after up to 5 s for exiting ones (:func:`children_left`)."""
    left = children_left(before, grace=5.0)
    expect(not left, what, left, [], call, fix)


def ended(outcome: str, value: object, secs: float | None = None) -> str:
    """How a set-up call ended, for a message: its outcome (and time), with the exception when it
    raised ("raised after 0.0 s: RuntimeError: ..."), so the failure shows its cause (and a
    finding's signature can recognise it)."""
    out = outcome if secs is None else f"{outcome} after {secs:.1f} s"
    if outcome == "raised" and isinstance(value, BaseException):
        out += f": {describe_exception(value)}"
    return out


# fixed example, first: two layouts, task 0 fails
@prop("PAR-008", kind="parallel", case=failure_cases("step", max_tasks=2),
      examples=(dict(case=failure_example("step")),))
def test_worker_step_error_surfaces(subject, case: FailureCase) -> None:
    k = case.index
    at = case.tasks[k].raise_at_step
    call = f"parallel_env(makers): reset(), then step() x{at}; task {k} raises at step {at}"
    before = child_pids()
    env = None
    try:
        makers = [t.maker() for t in case.tasks]
        outcome, value, secs = call_within(60.0, subject.parallel_env, makers)
        expect(outcome == "ok", "building the env", ended(outcome, value, secs), "ok", call)
        env = value
        outcome, root, secs = call_within(60.0, env.reset)
        expect(outcome == "ok", "reset()", ended(outcome, root, secs), "ok", call)
        for t, row in enumerate(case.actions, 1):
            outcome, value, secs = call_within(30.0, env.step, write_actions(root.clone(), row))
            if t < at:
                expect(outcome == "ok", f"step {t} (before the failing one)", ended(outcome, value),
                       "ok", call)
                root = next_root(value)
                continue
            expect(outcome != "hung", f"step {t}", f"still running after {secs:.1f} s",
                   "an exception within 30 s", call,
                   "wait on workers with a deadline and check they are alive")
            expect(outcome == "raised", f"step {t}", "returned normally", "an exception", call,
                   "re-raise a worker's exception in the parent; never return stale data")
            expect(secs <= 30.0, f"step {t}: time until the exception", f"{secs:.1f} s",
                   "<= 30 s", call)
            expect(names_task_index(value, k), f"step {t}: the exception",
                   describe_exception(value), f"a message or attribute naming task {k} (e.g. "
                   f"'task {k}', 'worker {k}', or .task_index == {k})", call,
                   "say which task's worker failed (its index)")
            cause = f"raise_at_step={at}"
            expect(carries_cause(value, "RuntimeError", cause), f"step {t}: the exception",
                   describe_exception(value), f"the worker's own RuntimeError ('... {cause} "
                   "(test hook)'), as the exception, its cause, or quoted in its message", call,
                   "send the worker's exception (type, message, traceback) to the parent and "
                   "raise it there or chain it (raise ... from it)")
        expect_no_children_left(before, "child processes left after the failure", call,
                                "on a worker failure, stop (join, then terminate) every worker")
    finally:
        close_quietly(env)


# fixed example, first: two layouts, task 1 fails
@prop("PAR-009", kind="parallel", case=failure_cases("init", max_tasks=2),
      examples=(dict(case=failure_example("init")),))
def test_worker_init_error_surfaces(subject, case: FailureCase) -> None:
    import time

    k = case.index
    call = f"parallel_env(makers), then reset() (a lazy env starts there); task {k}'s maker raises"
    before = child_pids()
    env = None
    start = time.monotonic()
    try:
        outcome, value, secs = call_within(30.0, subject.parallel_env,
                                           [t.maker() for t in case.tasks])
        if outcome == "ok":
            env = value
            outcome, value, secs = call_within(max(0.1, 30.0 - secs), env.reset)
        elapsed = time.monotonic() - start
        expect(outcome != "hung", "building / first reset", f"still running after "
               f"{elapsed:.1f} s", "an exception within 30 s", call,
               "wait on workers with a deadline and check they are alive")
        expect(outcome == "raised", "building / first reset", "returned normally",
               "an exception", call, "send a worker's construction error back to the parent")
        expect(elapsed <= 30.0, "time until the exception", f"{elapsed:.1f} s", "<= 30 s", call)
        expect(names_task_index(value, k), "the exception", describe_exception(value),
               f"a message or attribute naming task {k} (e.g. 'task {k}', 'worker {k}', or "
               f".task_index == {k})", call, "say which task's maker failed (its index)")
        expect(carries_cause(value, "RuntimeError", "raise_at_init is set"), "the exception",
               describe_exception(value), "the maker's own RuntimeError ('... raise_at_init is "
               "set (test hook)'), as the exception, its cause, or quoted in its message", call,
               "send the worker's exception (type, message, traceback) to the parent and raise "
               "it there or chain it (raise ... from it)")
        expect_no_children_left(before, "child processes left after the failure", call,
                                "stop the workers already started when one fails to build its env")
    finally:
        close_quietly(env)


# fixed example, first: two workers, two layouts
@prop("PAR-010", kind="parallel", case=rollout_cases(max_tasks=2, max_steps=2),
      examples=(dict(case=rollout_example()),))
def test_close_is_idempotent(subject, case: RolloutCase) -> None:
    call = f"parallel_env(makers); reset(); step() x{len(case.actions)}; close(); close()"
    before = child_pids()
    env = None
    try:
        env = subject.parallel_env([t.maker() for t in case.tasks])
        root = env.reset()
        for row in case.actions:
            root = next_root(env.step(write_actions(root.clone(), row)))
        for n in ("first", "second"):
            outcome, value, _ = call_within(30.0, env.close)
            shown = describe_exception(value) if outcome == "raised" else outcome
            expect(outcome == "ok", f"the {n} close()", shown, "ok", call,
                   "make close() a no-op on a closed env")
        expect_no_children_left(before, "child processes left after close()", call,
                                "join every worker in close(); terminate, then kill, the ones that "
                                "do not exit")
    finally:
        close_quietly(env)


# fixed example, first: two layouts, task 0's first step never returns
@prop("PAR-013", kind="parallel", case=hang_cases(max_tasks=2),
      examples=(dict(case=hang_example("step")),))
def test_hung_worker_surfaces(subject, case: FailureCase) -> None:
    import time

    k = case.index
    at = case.tasks[k].hang_at_step[0]
    kwargs, shown = with_deadline(subject, HANG_DEADLINE)
    bound = hang_bound(kwargs, construction=not at)
    call = (f"parallel_env(makers{shown}): reset(), then step() x{at}; task {k}'s step {at} never "
            "returns" if at else f"parallel_env(makers{shown}), then reset(); task {k}'s env "
            "construction never returns")
    fix = (f"honour the deadline passed as {next(iter(kwargs))}=: raise once a worker misses it"
           if kwargs else "wait on workers with a deadline (the reference: 30 s) and check they "
           "are alive; name the keyword that sets it (Subject.deadline_keyword) so this property "
           f"can pass a short one instead of allowing {HANG_BOUND:g} s")
    stuck = hang_outlasting(bound)  # a hung task run in the calling thread fails at once
    before = child_pids()
    env = None
    start = time.monotonic()  # the bound runs from construction, or from the hung step
    try:
        outcome, value, _ = call_within(bound, partial(subject.parallel_env, **kwargs),
                                        [t.maker() for t in case.tasks], stuck=stuck)
        if at:  # a hung step: what comes before it must work (its error is not the hung call's)
            expect(outcome == "ok", "building the env", ended(outcome, value), "ok", call)
        if outcome == "ok":
            env = value
            outcome, value, _ = call_within(max(0.1, bound - (time.monotonic() - start)),
                                            env.reset, stuck=stuck)
            if at:
                expect(outcome == "ok", "reset()", ended(outcome, value), "ok", call)
            for t, row in enumerate(case.actions if outcome == "ok" else [], 1):
                if t == at:
                    start = time.monotonic()
                outcome, value, _ = call_within(bound, env.step,
                                                write_actions(value.clone(), row),
                                                stuck=stuck)
                if t < at:
                    expect(outcome == "ok", f"step {t} (before the hung one)",
                           ended(outcome, value), "ok", call)
                    value = next_root(value)
        elapsed = time.monotonic() - start
        expect(outcome != "hung", "the hung task's call", f"no answer after {elapsed:.1f} s" + (
               f": {value}" if value else ""), f"an exception within {bound:g} s", call,
               "run each task in a worker process, wait on it with a deadline and raise naming "
               "the task" if value else fix)
        expect(outcome == "raised", "the hung task's call", "returned normally", "an exception",
               call, "raise when a worker misses its deadline; never return stale data")
        expect(names_task_index(value, k), "the exception", describe_exception(value),
               f"a message or attribute naming task {k} (e.g. 'task {k}', 'worker {k}', or "
               f".task_index == {k})", call, "say which task's worker stopped answering")
        expect_no_children_left(before, "child processes left after the error", call,
                                "stop (terminate, then kill) a worker that missed its deadline, "
                                "and the others")
    finally:  # a hung worker never answers close(): stop what the env left first
        stop_pids(child_pids() - before)
        close_quietly(env, HANG_CLOSE)


# fixed example, first: two layouts, task 0's first step never returns
@prop("PAR-014", kind="parallel", case=hang_cases("step", max_tasks=2),
      examples=(dict(case=hang_example("step")),))
def test_interrupt_leaves_no_child(subject, case: FailureCase) -> None:
    k = case.index
    at = case.tasks[k].hang_at_step[0]
    kwargs, shown = with_deadline(subject, INTERRUPT_DEADLINE)
    bound = hang_bound(kwargs, construction=False)
    call = (f"parallel_env(makers{shown}): reset(), then step() x{at}; task {k}'s step {at} never "
            f"returns; SIGINT to the parent {INTERRUPT_AFTER:g} s into it; no close()")
    before = child_pids()
    env = None
    try:
        outcome, value, _ = call_within(bound, partial(subject.parallel_env, **kwargs),
                                        [t.maker() for t in case.tasks])
        expect(outcome == "ok", "building the env", ended(outcome, value), "ok", call)
        env = value
        outcome, root, _ = call_within(bound, env.reset)
        expect(outcome == "ok", "reset()", ended(outcome, root), "ok", call)
        for t, row in enumerate(case.actions[:at - 1], 1):
            outcome, value, _ = call_within(bound, env.step, write_actions(root.clone(), row))
            expect(outcome == "ok", f"step {t} (before the hung one)", ended(outcome, value), "ok",
                   call)
            root = next_root(value)
        outcome, value, secs = interrupted_call(INTERRUPT_AFTER, bound, env.step,
                                                write_actions(root.clone(), case.actions[at - 1]))
        expect(outcome != "hung", f"step {at}, interrupted", f"still running {secs:.1f} s after "
               "it started", f"KeyboardInterrupt propagated, or an answer, within "
               f"{bound:g} s", call, "let KeyboardInterrupt out of the wait on workers")
        left = exit_blockers(before)
        expect(not left, "child processes a program ending after the interrupt would wait on "
               "or orphan", left, [], call, "make workers daemonic, or stop them (terminate, "
               "then kill) when KeyboardInterrupt reaches the wait on them")
    finally:  # a hung worker never answers close(): stop what the env left first
        stop_pids(child_pids() - before)
        close_quietly(env, HANG_CLOSE)

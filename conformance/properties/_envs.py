"""Helpers that drive batched envs for the SPEC / PAR / SCN properties.

Each helper needs only the standard library, torch, tensordict, torchrl (``reference.tasks`` for
the solo task envs) and the env under test, and imports what it uses inside its body: a
reproducer pastes the source of every helper its property calls (found by
:func:`conformance.repro.needs`), next to :mod:`conformance.assertions`, which it holds whole.

The process helpers :func:`call_within`, :func:`child_pids` and :func:`children_left` live in
:mod:`conformance.hygiene` (``child_pids`` needs psutil) and are re-exported here.
"""

from __future__ import annotations

from typing import Any

from conformance.assertions import shown_exceptions, snapshot
from conformance.hygiene import call_within, child_pids, children_left  # noqa: F401  (re-exported)


def write_actions(td: Any, row: list[Any]) -> Any:
    """Write ``row[i]`` (task i's action entries, a TensorDict: its action key(s)) cloned into
    element i of the batched ``td``, in place; return td.

    A lazy stack along dim 0 gets each action in its own element (actions may differ in key,
    kind and shape); a dense tensordict gets the stacked actions (``td[i].set`` would not write
    through).
    """
    import torch

    tds = getattr(td, "tensordicts", None)
    if tds is not None and getattr(td, "stack_dim", 0) == 0:
        for elem, action in zip(tds, row, strict=True):
            elem.update(action.clone())
    else:
        td.update(torch.stack([a.clone() for a in row]))
    return td


def scripted_policy(actions: list[list[Any]]) -> Any:
    """A policy writing ``actions[t][i]`` into element i at its t-th call (never the global RNG)."""
    calls = [0]

    def policy(td: Any) -> Any:
        row = actions[calls[0]]
        calls[0] += 1
        return write_actions(td, row)

    return policy


def without_rewards(td: Any) -> Any:
    """``td`` without its reward entries ("reward" at the root or nested, e.g. under a group);
    a lazy stack element by element (its elements' keys may differ)."""
    tds = getattr(td, "tensordicts", None)
    if tds is not None:
        from tensordict import lazy_stack

        return lazy_stack([without_rewards(t) for t in tds], td.stack_dim)
    keys = list(td.keys(True, True))
    return td.exclude(*[k for k in keys if (k if isinstance(k, str) else k[-1]) == "reward"])


def next_root(td: Any) -> Any:
    """The root for the next step of a step output: a copy of its "next" without the reward
    entries (what torchrl's ``step_mdp`` keeps for these envs: observations and done flags)."""
    return without_rewards(td.get("next")).clone()


def is_done(td: Any) -> Any:
    """Per row of a task's tensordict (shape its batch size): whether any of its "done" entries
    (at the root or nested, with group dims) is set."""
    import torch

    dims = len(td.batch_size)
    rows = torch.zeros(td.batch_size, dtype=torch.bool)
    for k in td.keys(True, True):
        if (k if isinstance(k, str) else k[-1]) == "done":
            flag = td.get(k)
            rows = rows | flag.reshape(*flag.shape[:dims], -1).any(-1)
    return rows


def done_mask(root: Any) -> Any:
    """Per task (and row of a batched task), whether a "done" entry is set: a bool tensor of
    the root's batch size plus a trailing 1 (``[n, 1]`` for tasks of batch size [])."""
    import torch

    return torch.stack([is_done(e) for e in root.unbind(0)]).unsqueeze(-1)


def manual_rollout(env: Any, steps: int, act: Any) -> list[Any]:
    """What ``env.rollout(steps, break_when_any_done=False)`` must equal: reset(), then per step
    ``act(td)``, step, record a copy, move "next" to the root (:func:`next_root`) and reset the
    done tasks through a "_reset" mask -- not after the last step. Returns the recorded steps."""
    td = env.reset()
    recorded = []
    for t in range(steps):
        out = env.step(act(td))
        recorded.append(snapshot(out))
        if t == steps - 1:
            break
        td = next_root(out)
        done = done_mask(td)
        if bool(done.any()):
            td.set("_reset", done)
            td = env.reset(td)
    return recorded


def solo_trajectory(task: Any, actions: list[Any]) -> list[Any]:
    """Task ``task`` (a reference TaskSpec) stepped alone: reset, then per action step, record a
    copy, move "next" to the root and reset when done -- what a rollout does for one task."""
    from reference.tasks import TaskEnv

    env = TaskEnv(task)
    try:
        td = env.reset()
        steps = []
        for action in actions:
            td.update(action.clone())
            td = env.step(td)
            steps.append(td.clone())
            td = next_root(td)
            if bool(is_done(td).any()):
                td = env.reset()
        return steps
    finally:
        env.close()


def task_label(task: Any) -> str:
    """A task's name and how it differs from the simplest task, for failure messages: e.g.
    "task1; categorical action at ctrl/action; done only under agents[2]; strings text; batch
    [2]" (no parentheses: findings' signatures match up to the closing one)."""
    parts = [task.name]
    key = task.action_key if isinstance(task.action_key, str) else "/".join(task.action_key)
    if (task.action_kind, key) != ("bounded", "action"):
        parts.append(f"{task.action_kind} action at {key}")
    if task.group:
        where = "also" if task.root_signals else "only"
        size = f"[{task.group_size}]" if task.group_size else ""
        parts.append(f"done {where} under {task.group}{size}")
    if task.text_keys:
        texts = [k if isinstance(k, str) else "/".join(k) for k in task.text_keys]
        parts.append(f"strings {','.join(texts)}")
    if task.batch:
        parts.append(f"batch {list(task.batch)}")
    return "; ".join(parts)


def task_trajectory(rollout: Any, i: int) -> list[Any]:
    """Task i's steps of a ``[task, *task batch, time]`` rollout (time last, as torchrl stacks
    it), each a copied plain tensordict."""
    traj = rollout[i]
    return [traj[..., t].clone() for t in range(traj.batch_size[-1])]


def names_task_index(exc: BaseException, index: int) -> bool:
    """Whether a failure names task ``index`` -- the kit's criterion for PAR-008 / PAR-009.

    True when ``exc`` or an exception shown with it (:func:`shown_exceptions`) has an int
    attribute ``task_index``, ``worker_index``, ``env_index`` or ``index`` equal to ``index``, or
    a message in which "task", "worker", "env", "environment", "sub-env" or "index" is followed
    by the number
    after a space, '#', '[', ':' or '=' (case-insensitive, the number standing alone: "task 1",
    "worker #1", "env[1]", "index=1" name task 1; "task1", "task 10" and "1 task" do not).
    """
    import re

    pattern = re.compile(
        rf"\b(?:task|worker|env|environment|sub-?env|index)(?:\s*[#\[:=]\s*|\s+){index}(?![\d.])",
        re.IGNORECASE)
    for err in shown_exceptions(exc):
        for attr in ("task_index", "worker_index", "env_index", "index"):
            value = getattr(err, attr, None)
            if isinstance(value, int) and not isinstance(value, bool) and value == index:
                return True
        if pattern.search(str(err)):
            return True
    return False


def carries_cause(exc: BaseException, kind: str, text: str) -> bool:
    """Whether the worker's own exception reached the parent: ``exc``, or an exception shown
    with it (its cause, context or a group member), is a ``kind`` whose message holds ``text``,
    or has a message (e.g. a forwarded traceback) naming ``kind`` and holding ``text``."""
    return any(text in str(e) and (type(e).__name__ == kind or kind in str(e))
               for e in shown_exceptions(exc))


def describe_exception(exc: BaseException, limit: int = 400) -> str:
    """One line per shown exception: "Type: message" (each message cut to ``limit`` chars)."""
    return " <- ".join(f"{type(e).__name__}: {str(e)[:limit]}" for e in shown_exceptions(exc))


def close_env(env: Any) -> None:
    """Close an env if it has a close() and is not closed already."""
    if env is not None and not getattr(env, "is_closed", False):
        env.close()


def close_quietly(env: Any, seconds: float = 15.0) -> None:
    """Best-effort cleanup after a property's checks: close ``env`` (bounded by ``seconds``),
    ignoring what close raises -- properties that test close() call it themselves."""
    if env is not None and not getattr(env, "is_closed", False):
        call_within(seconds, env.close)



def hang_outlasting(bound: float) -> Any:
    """For :func:`call_within`'s ``stuck``, on a call bounded by ``bound`` seconds: a function
    that says so when a thread's innermost frame is a task env's "never returns" hook
    (:func:`reference.tasks.hang`) sleeping at least ``bound`` seconds.  The hung task then runs
    in the calling thread, under the env's own call (no worker process), and that call cannot
    end within ``bound``: the sleep began after the call did."""
    from reference.tasks import hang

    def stuck(frame: Any) -> str | None:
        seconds = frame.f_locals.get("seconds") if frame.f_code is hang.__code__ else None
        if not isinstance(seconds, (int, float)) or seconds < bound:
            return None
        return (f"the hung task's sleep ({seconds:g} s) runs in the calling thread, under the "
                "env's own call (no worker process): the call cannot end before the sleep does")

    return stuck


def interrupted_call(after: float, seconds: float, fn: Any, *args: Any) -> tuple[str, Any, float]:
    """:func:`call_within` ``(seconds, fn, *args)`` with SIGINT sent to this process ``after``
    seconds into the call (a timer thread sends it; Python raises KeyboardInterrupt in the main
    thread, as on Ctrl-C).  Returns ("interrupted", the KeyboardInterrupt, s) when it propagated
    out of ``fn``, else call_within's answer.  Main thread only (it sets the SIGINT handler)."""
    import os
    import signal
    import threading
    import time

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(after, os.kill, (os.getpid(), signal.SIGINT))
    start = time.monotonic()
    timer.start()
    try:
        try:
            return call_within(seconds, fn, *args)
        finally:
            timer.cancel()
            timer.join()
    except KeyboardInterrupt as exc:
        return "interrupted", exc, time.monotonic() - start
    finally:
        signal.signal(signal.SIGINT, previous)


def exit_blockers(before: set[int], grace: float = 5.0) -> list[str]:
    """Children started since ``before`` (a :func:`child_pids` result), alive after up to
    ``grace`` seconds, that a Python program ending now would wait on or leave behind: a
    non-daemonic ``multiprocessing`` worker (the exit joins it: forever if it hangs) or any other
    process (orphaned).  Daemonic workers, which the exit terminates, are not counted."""
    import multiprocessing

    kids = {p.pid: p.daemon for p in multiprocessing.active_children()}
    left = children_left(before, grace, ignore=lambda pid: kids.get(pid, False))
    return [d + (" (a non-daemonic worker: the exit joins it)" if int(d.split(":")[0]) in kids
                 else "") for d in left]

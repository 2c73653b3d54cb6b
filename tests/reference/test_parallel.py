"""ParallelMultiTaskEnv: bit-identical to serial; failures surface in the parent, nothing hangs.

Workers fork from a forkserver that imported torch(rl) once (a spawned worker imports them anew:
seconds on 2 cores), so these tests are few and combined.
"""

from __future__ import annotations

import functools
import gc
import importlib
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict, TensorDictBase

from reference.batched import SerialMultiTaskEnv, _MultiTaskEnv, _ParallelMultiTaskEnv
from reference.errors import WorkerError
from reference.fast_batched import PRELOAD, ParallelMultiTaskEnv
from reference.tasks import KeySpec, TaskSpec
from tests.reference.helpers import (
    THREE_TASKS,
    SlowTaskEnv,
    assert_identical,
    child_pids,
    make_actions,
    scripted_policy,
)

BOUND = 30.0  # seconds: every worker failure must surface within this
START = 300.0  # start_timeout: workers import torchrl, slow on a loaded 2-core machine


def assert_no_workers(before: set[int]) -> None:
    __tracebackhide__ = True
    names = [p.name for p in multiprocessing.active_children()]
    assert not [n for n in names if n.startswith("reference-task-")], names
    assert child_pids() <= before, f"children left: {child_pids() - before}"


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_parallel_matches_serial_then_killed_worker(start_method: str) -> None:
    """50-step rollouts on 3 tasks are bit-identical serial vs parallel; a killed worker then
    raises WorkerError (task index, exit code) and close leaves no child process. This process
    has run torch ops on its intra-op threads first."""
    torch.ones(1 << 22).add_(1)
    before = child_pids()
    makers = [t.maker() for t in THREE_TASKS]
    actions = make_actions(50, 3)
    with SerialMultiTaskEnv(makers) as serial:
        last_seed = serial.set_seed(9)
        expected = serial.rollout(50, scripted_policy(actions))
        expected_reset = serial.reset()
    with ParallelMultiTaskEnv(makers, start_method=start_method, start_timeout=START) as env:
        assert env.set_seed(9) == last_seed
        got = env.rollout(50, scripted_policy(actions))
        for i in range(3):
            assert_identical(got[i], expected[i], f"task {i}")
        assert_identical(env.reset(), expected_reset, "reset after rollout")
        for i in range(3):
            assert env.task_specs[i].observation == serial.task_specs[i].observation
        os.kill(env.worker_pids[1], signal.SIGKILL)
        start = time.monotonic()
        with pytest.raises(WorkerError, match="task 1") as info:
            env.step(env.rand_action(env.reset()))
        assert time.monotonic() - start < BOUND
        assert info.value.task_index == 1 and info.value.exitcode == -signal.SIGKILL
        assert env.is_closed
    env.close()
    assert_no_workers(before)


def test_core_parallel_env_matches_serial() -> None:
    """The core's process env alone (batched._ParallelMultiTaskEnv: a message per command, the
    base rollout, no speed path) equals the serial env: a random and a scripted rollout, then a
    partial reset, bitwise, and the global RNG after them."""
    multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)  # (a quick start)
    before = child_pids()
    makers = [t.maker() for t in THREE_TASKS]
    outs = []
    with SerialMultiTaskEnv(makers) as serial, _ParallelMultiTaskEnv(
            makers, start_method="forkserver", start_timeout=START) as core:
        assert type(core).rollout is _MultiTaskEnv.rollout
        for env in (serial, core):
            env.set_seed(5)
            torch.manual_seed(0)
            rand = env.rollout(20)
            scripted = env.rollout(12, scripted_policy(make_actions(12, 3)))
            request = env.reset().set("_reset", torch.tensor([[False], [True], [False]]))
            outs.append((rand, scripted, env.reset(request), torch.get_rng_state()))
    (rand, scripted, again, rng), (rand_core, scripted_core, again_core, rng_core) = outs
    for i in range(3):
        assert_identical(rand_core[i], rand[i], f"random rollout, task {i}")
        assert_identical(scripted_core[i], scripted[i], f"scripted rollout, task {i}")
        assert_identical(again_core[i], again[i], f"partial reset, task {i}")
    assert torch.equal(rng_core, rng)
    assert_no_workers(before)


def test_step_raises_in_worker() -> None:
    """A task raising on its 3rd step: WorkerError in the parent naming it, no child remains."""
    before = child_pids()
    tasks = [THREE_TASKS[0], TaskSpec("bad", THREE_TASKS[1].observations, raise_at_step=3)]
    env = ParallelMultiTaskEnv([t.maker() for t in tasks], start_timeout=START)
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"task 1: worker .* raised while running 'step'") as info:
        env.rollout(10, scripted_policy(make_actions(10, 2)))
    assert time.monotonic() - start < BOUND
    assert info.value.task_index == 1
    assert "raise_at_step=3" in info.value.worker_traceback
    assert env.is_closed
    env.close()
    assert_no_workers(before)


def test_init_raises_in_worker() -> None:
    """A task raising in its constructor fails construction with WorkerError naming it."""
    before = child_pids()
    tasks = [THREE_TASKS[0], TaskSpec("bad", (), raise_at_init=True)]
    with pytest.raises(WorkerError, match=r"task 1: worker .* raised while building") as info:
        ParallelMultiTaskEnv([t.maker() for t in tasks], start_timeout=START)
    assert info.value.task_index == 1 and "raise_at_init" in info.value.worker_traceback
    assert_no_workers(before)


# A module that imports in the parent but raises in any other process (the tutorial's mpmath crash).
FRAGILE_DEP = (
    "import os\n"
    "if os.getpid() != int(os.environ['FRAGILE_PARENT']):\n"
    "    raise AttributeError(\"module 'mpmath' has no attribute 'rational'\")\n"
    "def make():\n"
    "    raise AssertionError('never built')\n")


def test_import_error_only_in_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dependency that imports in the parent but fails in the worker (the tutorial's mpmath
    crash) is reported in the parent with the task index and the worker's traceback."""
    (tmp_path / "fragile_dep.py").write_text(FRAGILE_DEP)
    monkeypatch.setenv("FRAGILE_PARENT", str(os.getpid()))
    monkeypatch.syspath_prepend(str(tmp_path))
    maker = functools.partial(importlib.import_module("fragile_dep").make)
    before = child_pids()
    with pytest.raises(WorkerError) as info:
        ParallelMultiTaskEnv([maker], start_timeout=START)
    assert info.value.task_index == 0
    assert "mpmath" in info.value.worker_traceback and "fragile_dep" in info.value.worker_traceback
    assert_no_workers(before)
    sys.modules.pop("fragile_dep", None)


def test_unpicklable_maker() -> None:
    """A lambda maker is refused before any process starts, naming the task and the fix."""
    before = child_pids()
    with pytest.raises(WorkerError, match=r"task 1: its maker .* cannot be pickled") as info:
        ParallelMultiTaskEnv([THREE_TASKS[0].maker(), lambda: None])
    assert "module-level function or a functools.partial" in str(info.value)
    assert info.value.task_index == 1
    assert_no_workers(before)


def test_garbage_collection_closes_workers() -> None:
    """Dropping the last reference to a parallel env stops its workers."""
    before = child_pids()
    env = ParallelMultiTaskEnv([THREE_TASKS[2].maker()], start_timeout=START)
    pids = env.worker_pids
    assert set(pids) <= child_pids()
    del env
    gc.collect()
    assert_no_workers(before)


def test_silent_worker_times_out() -> None:
    """A worker that never answers raises WorkerError after ``timeout`` and is then stopped."""
    before = child_pids()
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"task 0: worker .* sent nothing for 2.0 s") as info:
        ParallelMultiTaskEnv([functools.partial(time.sleep, 600)], timeout=2.0)
    assert info.value.task_index == 0 and time.monotonic() - start < BOUND
    assert_no_workers(before)


def test_forkserver_preload_error_is_reported(tmp_path: Path) -> None:
    """A preloaded module raising other than ImportError kills the forkserver: the worker is then
    spawned, imports it itself and reports the error (fresh interpreter: a fresh forkserver)."""
    (tmp_path / "fragile_dep.py").write_text(FRAGILE_DEP)
    (tmp_path / "check.py").write_text(
        "import functools, os\n"
        "from reference import WorkerError, fast_batched\n"
        "if __name__ == '__main__':\n"
        "    os.environ['FRAGILE_PARENT'] = str(os.getpid())\n"
        "    import fragile_dep\n"
        "    fast_batched.PRELOAD.insert(0, 'fragile_dep')\n"
        "    try:\n"
        "        fast_batched.ParallelMultiTaskEnv([functools.partial(fragile_dep.make)],\n"
        f"                                          start_timeout={START})\n"
        "    except WorkerError as err:\n"
        "        print('task', err.task_index, 'mpmath' in err.worker_traceback)\n")
    root = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), root])}
    out = subprocess.run([sys.executable, str(tmp_path / "check.py")], env=env, cwd=root,
                         capture_output=True, text=True, timeout=START)
    assert "task 0 True" in out.stdout, out.stdout + out.stderr
    assert "AttributeError: module 'mpmath'" in out.stderr  # the forkserver's own report


def _loop_rollout(env: ParallelMultiTaskEnv, steps: int, **kwargs: object) -> TensorDictBase:
    """The step-by-step rollout of the base class (what the chunked one must equal)."""
    return _MultiTaskEnv.rollout(env, steps, **kwargs)  # type: ignore[arg-type]


def test_random_rollout_in_chunks_equals_step_loop() -> None:
    """Without a policy, a rollout run in worker chunks equals the step-by-step loop bitwise
    (episodes of 7, 11, 50 steps end inside and at chunk edges), leaves the global RNG and the
    env's state as the loop does (a partial reset then a step agree), and refuses or densifies
    like it with return_contiguous=True."""
    makers = [t.maker() for t in THREE_TASKS]
    with ParallelMultiTaskEnv(makers, start_timeout=START) as env:
        after = []
        for rollout in (env.rollout, functools.partial(_loop_rollout, env)):
            env.set_seed(3)
            torch.manual_seed(0)
            out = rollout(150)
            rng = torch.get_rng_state()
            request = env.reset().set("_reset", torch.tensor([[True], [False], [False]]))
            again = env.reset(request)
            stepped = env.step(scripted_policy(make_actions(1, 3))(again.clone()))
            after.append((out, rng, again, stepped))
        (fast, rng, again, stepped), (loop, rng_loop, again_loop, stepped_loop) = after
        assert fast.batch_size == loop.batch_size == torch.Size([3, 150])
        assert fast.names == loop.names == [None, "time"]
        for i in range(3):
            assert_identical(fast[i], loop[i], f"task {i}")
            assert_identical(again[i], again_loop[i], f"partial reset after, task {i}")
            assert_identical(stepped[i], stepped_loop[i], f"step after, task {i}")
        assert torch.equal(rng, rng_loop)
        assert fast[0]["next", "done"].sum() == 150 // 7 and fast[0]["done"].sum() == 0
        with pytest.raises(ValueError, match="task-exclusive keys"):
            env.rollout(3, return_contiguous=True)
    shared = [TaskSpec(n, (KeySpec("o", (2,)),), episode_length=4, seed=k)
              for k, n in enumerate("ab")]
    with ParallelMultiTaskEnv([t.maker() for t in shared], start_timeout=START) as env:
        env.set_seed(1)
        torch.manual_seed(1)
        dense = env.rollout(9, return_contiguous=True)
        env.set_seed(1)
        torch.manual_seed(1)
        dense_loop = _loop_rollout(env, 9, return_contiguous=True)
    assert isinstance(dense, TensorDict) and dense.names == [None, "time"]
    assert_identical(dense, dense_loop, "contiguous")


def test_random_rollout_chunks_stay_inside_the_deadline() -> None:
    """Chunks grow only while they take well under ``timeout``: 60 steps of 50 ms (3 s in all)
    finish with timeout=1 s; a task raising inside a chunk names itself and closes the env."""
    before = child_pids()
    slow = functools.partial(SlowTaskEnv, THREE_TASKS[2], 0.05)
    with ParallelMultiTaskEnv([slow, slow], timeout=1.0, start_timeout=START) as env:
        assert env.rollout(60).batch_size == torch.Size([2, 60])
    bad = TaskSpec("bad", THREE_TASKS[1].observations, raise_at_step=40)
    env = ParallelMultiTaskEnv([THREE_TASKS[0].maker(), bad.maker()], start_timeout=START)
    with pytest.raises(WorkerError, match=r"task 1: worker .* raised while running 'chunk'"):
        env.rollout(100)
    assert env.is_closed
    assert_no_workers(before)

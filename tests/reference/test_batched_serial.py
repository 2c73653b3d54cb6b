"""Unit tests of reference.batched through SerialMultiTaskEnv (in-process, fast)."""

from __future__ import annotations

import pytest
import torch
from tensordict import LazyStackedTensorDict, TensorDict, lazy_stack

from reference.batched import SerialMultiTaskEnv
from reference.errors import SpecMismatchError, WorkerError
from reference.tasks import KeySpec, TaskEnv, TaskSpec
from tests.reference.helpers import (
    EXCLUSIVE,
    THREE_TASKS,
    assert_identical,
    make_actions,
    scripted_policy,
)


@pytest.fixture
def env():
    with SerialMultiTaskEnv([t.maker() for t in THREE_TASKS]) as e:
        yield e


class TestSpecs:
    def test_stacked_specs_match_tasks(self, env: SerialMultiTaskEnv) -> None:
        """Element i of every stacked spec equals task i's spec; batch_size is [n_tasks]."""
        assert env.batch_size == torch.Size([3]) and env.num_tasks == 3
        for i, task in enumerate(THREE_TASKS):
            single = TaskEnv(task)
            assert env.observation_spec[i] == single.observation_spec
            assert env.full_observation_spec[i] == single.full_observation_spec
            assert env.action_spec[i] == single.action_spec
            assert env.full_action_spec[i] == single.full_action_spec
            assert env.reward_spec[i] == single.reward_spec
            assert env.full_done_spec[i] == single.full_done_spec == env.done_spec[i]
            assert env.task_specs[i].observation == single.full_observation_spec

    @pytest.mark.parametrize("bad, said", [
        (KeySpec("obs", (3,), "float64"), "task 0 has shape=(3,) dtype=torch.float32 and task 1 "
                                          "has shape=(3,) dtype=torch.float64"),
        (KeySpec("obs", (4,)), "task 0 has shape=(3,) dtype=torch.float32 and task 1 has "
                               "shape=(4,) dtype=torch.float32"),
    ], ids=["dtype", "shape"])
    def test_shared_key_mismatch(self, bad: KeySpec, said: str) -> None:
        """A key shared by all tasks with two dtypes or shapes fails construction, naming both."""
        tasks = [TaskSpec("a", (KeySpec("obs", (3,)),)), TaskSpec("b", (bad,))]
        with pytest.raises(SpecMismatchError) as info:
            SerialMultiTaskEnv([t.maker() for t in tasks])
        message = str(info.value)
        assert "key 'obs' is shared by all tasks" in message and said in message
        assert "rename the key per task" in message
        assert "make the shapes and dtypes agree" in message

    def test_action_mismatch(self) -> None:
        """Different action shapes are a mismatch on the shared key 'action'."""
        tasks = [TaskSpec("a", ()), TaskSpec("b", (), action_shape=(3,))]
        with pytest.raises(SpecMismatchError, match="key 'action'"):
            SerialMultiTaskEnv([t.maker() for t in tasks])

    def test_exclusive_keys_may_differ(self) -> None:
        """A key present in only some tasks is exclusive: its shape may differ between them."""
        tasks = [TaskSpec("a", (KeySpec("x", (1,)),)), TaskSpec("b", (KeySpec("x", (2,)),)),
                 TaskSpec("c", ())]
        SerialMultiTaskEnv([t.maker() for t in tasks]).close()


class TestResetStep:
    def test_reset_is_lazy_stack_of_tasks(self, env: SerialMultiTaskEnv) -> None:
        """reset gives a lazy stack along dim 0; element i has task i's keys, exclusive included."""
        td = env.reset()
        assert isinstance(td, LazyStackedTensorDict) and td.stack_dim == 0
        for i, task in enumerate(THREE_TASKS):
            assert_identical(td[i], TaskEnv(task).reset(), f"reset[{i}]")
        assert set(td.keys(True, True)) == {"obs", ("sensors", "joint"), "done", "terminated",
                                            "truncated"}

    def test_step_writes_next_into_input(self, env: SerialMultiTaskEnv) -> None:
        """step returns its lazy-stack input with "next" written into each original element."""
        td = env.rand_action(env.reset())
        elements = list(td.tensordicts)
        out = env.step(td)
        assert out is td
        for i, (element, task) in enumerate(zip(elements, THREE_TASKS, strict=True)):
            single = TaskEnv(task)
            expected = single.step(single.reset().set("action", element["action"]))["next"]
            assert_identical(element["next"], expected, f"step[{i}]")

    def test_step_dense_input(self) -> None:
        """A dense tensordict input is unbound; a new lazy stack with "next" is returned."""
        tasks = [TaskSpec("a", (KeySpec("o", (2,)),)), TaskSpec("b", (KeySpec("o", (2,)),))]
        with SerialMultiTaskEnv([t.maker() for t in tasks]) as env:
            td = env.reset().contiguous()
            td.set("action", torch.zeros(2, 2))
            out = env.step(td)
            assert out is not td and out["next", "o"].shape == (2, 2)

    def test_no_aliasing_between_steps(self, env: SerialMultiTaskEnv) -> None:
        """Values stored at one step are not modified by later steps or resets."""
        td = env.step(env.rand_action(env.reset()))
        kept = td.get("next").clone()
        td2 = env.step(env.rand_action(env._step_mdp(td)))
        env.reset()
        assert_identical(td.get("next")[0], kept[0], "after later steps")
        assert not torch.equal(td2["next", "obs"], kept["obs"])

    @pytest.mark.parametrize("shape", [(3, 1), (3,)])
    def test_reset_mask(self, env: SerialMultiTaskEnv, shape: tuple[int, ...]) -> None:
        """A "_reset" mask resets exactly the masked tasks; others keep their current data."""
        env.set_seed(3)
        current = env._step_mdp(env.step(env.rand_action(env.reset())))
        expected, seed = [TaskEnv(t) for t in THREE_TASKS], 3
        for single in expected:
            seed = single.set_seed(seed)
            single.reset()
        request = current.clone().set("_reset", torch.tensor([True, False, True]).reshape(shape))
        out = env.reset(request)
        assert_identical(out[1], current[1], "unmasked task 1")
        for i in (0, 2):
            assert_identical(out[i], expected[i].reset(), f"masked task {i}")

    def test_set_seed_chains(self, env: SerialMultiTaskEnv) -> None:
        """Task 0 gets the seed, task i what task i-1 returned; distinct per task, reproducible."""
        last = env.set_seed(42)
        first = env.reset()
        seeds, seed = [], 42
        for task in THREE_TASKS:
            seeds.append(seed)
            seed = TaskEnv(task).set_seed(seed)
        assert last == seed and len(set(seeds)) == 3
        for i, (task, s) in enumerate(zip(THREE_TASKS, seeds, strict=True)):
            single = TaskEnv(task)
            single.set_seed(s)
            assert_identical(first[i], single.reset(), f"seeded task {i}")
        assert env.set_seed(42) == last
        assert_identical(env.reset(), first, "reseeded reset")

    def test_rand_action_uses_stacked_spec(self, env: SerialMultiTaskEnv) -> None:
        """rand_action draws once from the stacked action spec (global RNG) and writes element i."""
        torch.manual_seed(0)
        td = env.rand_action(env.reset())
        torch.manual_seed(0)
        expected = env.full_action_spec.rand()
        assert torch.equal(td["action"], expected["action"])
        assert env.action_spec.is_in(td["action"])

    def test_step_error_is_worker_error(self) -> None:
        """An env raising in step surfaces as WorkerError naming the task index; env then closed."""
        tasks = [TaskSpec("a", ()), TaskSpec("b", (), raise_at_step=2)]
        env = SerialMultiTaskEnv([t.maker() for t in tasks])
        policy = scripted_policy(make_actions(5, 2))
        with pytest.raises(WorkerError, match="task 1") as info:
            env.rollout(5, policy)
        assert info.value.task_index == 1 and "raise_at_step=2" in info.value.worker_traceback
        assert env.is_closed

    def test_init_error_is_worker_error(self) -> None:
        """A maker raising at construction gives WorkerError naming the task index."""
        tasks = [TaskSpec("a", ()), TaskSpec("b", (), raise_at_init=True)]
        with pytest.raises(WorkerError, match="task 1: the maker raised") as info:
            SerialMultiTaskEnv([t.maker() for t in tasks])
        assert info.value.task_index == 1

    def test_close(self) -> None:
        """close is idempotent and the env is a context manager; a closed env refuses work."""
        with SerialMultiTaskEnv([THREE_TASKS[0].maker()]) as env:
            assert not env.is_closed
        assert env.is_closed
        env.close()
        with pytest.raises(RuntimeError, match="closed"):
            env.reset()


class TestRollout:
    def test_layout(self, env: SerialMultiTaskEnv) -> None:
        """rollout[i] is task i's trajectory with its exclusive keys; rollout[:, t] shared only."""
        out = env.rollout(6, scripted_policy(make_actions(6, 3)))
        assert out.batch_size == torch.Size([3, 6]) and out.names == [None, "time"]
        shared = {"obs", ("sensors", "joint"), "done", "terminated", "truncated", "action",
                  ("next", "obs"), ("next", "sensors", "joint"), ("next", "done"),
                  ("next", "terminated"), ("next", "truncated"), ("next", "reward")}
        for i in range(3):
            keys = set(out[i].keys(True, True))
            assert keys == shared | EXCLUSIVE[i] | {("next", k) for k in EXCLUSIVE[i]}
        assert set(out[:, 2].keys(True, True)) == shared

    def test_matches_manual_loop(self, env: SerialMultiTaskEnv) -> None:
        """Each recorded step equals a single TaskEnv driven with the same actions and resets."""
        steps = 25
        actions = make_actions(steps, 3)
        env.set_seed(5)
        out = env.rollout(steps, scripted_policy(actions))
        seed = 5
        for i, task in enumerate(THREE_TASKS):
            single = TaskEnv(task)
            seed = single.set_seed(seed)
            td = single.reset()
            for t in range(steps):
                td = single.step(td.set("action", actions[t, i].clone()))
                assert_identical(out[i][t], td, f"task {i} step {t}")
                td = single.step_mdp(td)
                if td["done"].any():
                    td = single.reset()

    def test_auto_reset_only_done_tasks(self, env: SerialMultiTaskEnv) -> None:
        """After task 0's episode ends (7 steps) only it restarts; the root then has done False."""
        out = env.rollout(9, scripted_policy(make_actions(9, 3)))
        assert out[0]["next", "done"].squeeze(-1).tolist() == [False] * 6 + [True, False, False]
        assert not out[0]["done"][7].any()
        assert not torch.equal(out[0]["obs"][7], out[0]["next", "obs"][6])
        assert torch.equal(out[1]["obs"][7], out[1]["next", "obs"][6])

    def test_break_when_any_done(self, env: SerialMultiTaskEnv) -> None:
        """break_when_any_done stops after the first step where any task is done."""
        out = env.rollout(20, scripted_policy(make_actions(20, 3)), break_when_any_done=True)
        assert out.batch_size == torch.Size([3, 7])

    def test_auto_reset_false_continues(self, env: SerialMultiTaskEnv) -> None:
        """auto_reset=False continues from the given tensordict, resetting only its done tasks."""
        first = env.rollout(7, scripted_policy(make_actions(7, 3)))  # task 0 ends at step 7
        start = env._step_mdp(first[:, -1])
        out = env.rollout(2, scripted_policy(make_actions(2, 3)), auto_reset=False,
                          tensordict=start)
        assert not out[0]["done"][0].any()
        assert not torch.equal(out[0]["obs"][0], first[0]["next", "obs"][-1])
        for i in (1, 2):
            assert torch.equal(out[i]["obs"][0], first[i]["next", "obs"][-1])

    def test_policy_output_is_merged(self, env: SerialMultiTaskEnv) -> None:
        """A policy returning a new tensordict (only actions) is merged into the data, per task."""
        actions = make_actions(3, 3)
        calls = iter(range(3))

        def policy(td):
            t = next(calls)
            return lazy_stack([TensorDict({"action": actions[t, i]}) for i in range(3)], 0)

        out = env.rollout(3, policy)
        assert torch.equal(out["action"], actions.transpose(0, 1))
        assert set(out[0].keys()) >= {"obs", "a_int", "action", "next"}

    def test_contiguous(self) -> None:
        """return_contiguous=True gives a dense tensordict when all keys are shared, else errors."""
        tasks = [TaskSpec("a", (KeySpec("o", (2,)),)), TaskSpec("b", (KeySpec("o", (2,)),))]
        with SerialMultiTaskEnv([t.maker() for t in tasks]) as env:
            out = env.rollout(4, return_contiguous=True)
            assert isinstance(out, TensorDict) and out["next", "o"].shape == (2, 4, 2)
        with SerialMultiTaskEnv([t.maker() for t in THREE_TASKS]) as env, \
                pytest.raises(ValueError, match="task-exclusive keys"):
            env.rollout(2, return_contiguous=True)

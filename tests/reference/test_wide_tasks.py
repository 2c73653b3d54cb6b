"""The oracle on tasks that differ in more than their observation keys: action kinds and keys,
reward/done under a group, string entries, batched tasks; or a refusal at construction that names
the key (or the batch sizes) and both tasks."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.envs.utils import check_env_specs

from reference.batched import SerialMultiTaskEnv
from reference.errors import SpecMismatchError
from reference.fast_batched import ParallelMultiTaskEnv
from reference.tasks import ACTION_KINDS, KeySpec, TaskEnv, TaskSpec

OBS = (KeySpec("obs", (2,)),)


def task(i: int, **kw) -> TaskSpec:
    return TaskSpec(f"task{i}", kw.pop("observations", OBS), episode_length=3, seed=i, **kw)


@pytest.mark.parametrize("kind", ACTION_KINDS)
def test_every_action_kind_is_a_valid_env(kind):
    shape = {"categorical": (), "onehot": (3,)}.get(kind, (2,))
    spec = task(0, action_kind=kind, action_shape=shape, action_key=("ctrl", "action"),
                group="agents", group_size=2, text_keys=("text",), batch=(2,))
    env = TaskEnv(spec)
    check_env_specs(env)  # torchrl's own check: rollout data match the specs
    assert env.full_action_spec["ctrl", "action"].shape[:1] == (2,)
    out = env.rollout(4, break_when_any_done=False)
    assert out["next", "text"] is not None and out.batch_size == (2, 4)


def test_strings_and_groups_cross_processes_like_serial():
    tasks = [task(0, text_keys=("text", ("info", "note"))),
             task(1, action_kind="categorical", action_shape=(), action_key="move",
                  group="agents", root_signals=False),
             task(2, group="agents", group_size=2, text_keys=("text",))]
    outs = []
    for cls in (SerialMultiTaskEnv, ParallelMultiTaskEnv):
        with cls([t.maker() for t in tasks]) as env:
            torch.manual_seed(0)
            outs.append(env.rollout(7, break_when_any_done=False))
    serial, parallel = outs
    for i in range(3):
        assert set(serial[i].keys(True, True)) == set(parallel[i].keys(True, True))
    for i, key in ((0, ("next", "info", "note")), (2, ("next", "text"))):
        assert serial[i].get(key).tolist() == parallel[i].get(key).tolist()
    # task 1's done lives only under 'agents' (3-step episodes): reset after step 2, its count
    # starts again (a missed reset would leave done True at step 3)
    assert serial[1]["next", "agents", "done"].reshape(-1).tolist()[:4] == [False, False, True,
                                                                            False]


def test_batched_tasks_keep_their_dims_and_reset_rows():
    tasks = [task(0, batch=(3,)), task(1, batch=(3,), text_keys=("text",))]
    for cls in (SerialMultiTaskEnv, ParallelMultiTaskEnv):
        with cls([t.maker() for t in tasks]) as env:
            assert env.batch_size == (2, 3)
            root = env.rollout(2, break_when_any_done=False)[..., -1].get("next").clone()
            mask = torch.tensor([[True, False, True], [False, False, False]]).unsqueeze(-1)
            out = env.reset(root.exclude("reward").set("_reset", mask))
            assert torch.equal(out["obs"][0, 1], root["obs"][0, 1])  # row 1 goes on
            assert not torch.equal(out["obs"][0, 0], root["obs"][0, 0])  # row 0 was reset
            assert torch.equal(out["obs"][1], root["obs"][1])  # task 1 untouched


@pytest.mark.parametrize("second, words", [
    (dict(observations=(KeySpec("obs", (2,), bounded=True),)),
     ["'obs'", "task 0", "task 1", "Unbounded", "Bounded"]),
    (dict(batch=(2,)), ["batch size", "task 0", "task 1", "[2]"]),
])
def test_conflicts_refused_naming_the_key_and_both_tasks(second, words):
    with pytest.raises(SpecMismatchError) as err:
        SerialMultiTaskEnv([task(0).maker(), task(1, **second).maker()])
    for word in words:
        assert word in str(err.value)


def test_partial_reset_input_keeps_the_current_rows():
    env = TaskEnv(task(0, batch=(2,)))
    td = env.reset()
    td["action"] = torch.zeros(2, 2)
    cur = env.step(td)["next"].exclude("reward")
    out = env.reset(cur.clone().set("_reset", torch.tensor([[False], [True]])))
    assert torch.equal(out["obs"][0], cur["obs"][0])
    assert isinstance(out, TensorDict)

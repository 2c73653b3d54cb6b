"""Unit tests of reference.tasks: TaskSpec, KeySpec and TaskEnv."""

from __future__ import annotations

import pickle

import pytest
import torch
from torchrl.envs import check_env_specs

from reference.tasks import KeySpec, TaskEnv, TaskSpec
from tests.reference.helpers import THREE_TASKS, assert_identical

SPEC = TaskSpec("t", (KeySpec("obs", (3,)), KeySpec(("sensors", "joint"), (2, 0)),
                      KeySpec("i", (4,), "int64"), KeySpec("flag", (), "bool"),
                      KeySpec("d", (2, 2), "float64")), episode_length=3, seed=7)


def trajectory(env: TaskEnv, actions: torch.Tensor) -> list:
    out = [env.reset()]
    for a in actions:
        out.append(env.step(out[-1].clone().set("action", a))["next"])
    return out


class TestSpecs:
    def test_repr_rebuilds_the_spec(self) -> None:
        """The repr of a TaskSpec is Python that rebuilds an equal TaskSpec."""
        assert eval(repr(SPEC), {"TaskSpec": TaskSpec, "KeySpec": KeySpec}) == SPEC

    def test_maker_is_picklable(self) -> None:
        """TaskSpec.maker() survives a pickle round trip and builds a TaskEnv."""
        env = pickle.loads(pickle.dumps(SPEC.maker()))()
        assert isinstance(env, TaskEnv) and env.task == SPEC

    def test_bad_dtype_and_reserved_key(self) -> None:
        """KeySpec rejects unknown dtypes and reserved root names."""
        with pytest.raises(ValueError, match="dtype must be one of"):
            KeySpec("x", (1,), "float16")
        with pytest.raises(ValueError, match="reserved"):
            KeySpec("reward", (1,))

    @pytest.mark.parametrize("spec", [SPEC, *THREE_TASKS], ids=lambda s: s.name)
    def test_check_env_specs(self, spec: TaskSpec) -> None:
        """torchrl's check_env_specs accepts every TaskEnv (zero-size, scalar, nested keys)."""
        check_env_specs(TaskEnv(spec))

    def test_spec_layout(self) -> None:
        """Specs: one observation leaf per KeySpec, Bounded float32 action, (1,) reward and done."""
        env = TaskEnv(SPEC)
        obs = env.observation_spec
        assert {k: (tuple(obs[k].shape), obs[k].dtype) for k in obs.keys(True, True)} == {
            "obs": ((3,), torch.float32), ("sensors", "joint"): ((2, 0), torch.float32),
            "i": ((4,), torch.int64), "flag": ((), torch.bool), "d": ((2, 2), torch.float64)}
        assert env.action_spec.shape == (2,) and env.action_spec.dtype == torch.float32
        assert (env.action_spec.space.low == -1).all() and (env.action_spec.space.high == 1).all()
        assert env.reward_spec.shape == (1,) and env.reward_spec.dtype == torch.float32
        assert set(env.full_done_spec.keys()) == {"done", "terminated", "truncated"}
        assert all(env.full_done_spec[k].shape == (1,) and env.full_done_spec[k].dtype
                   == torch.bool for k in ("done", "terminated", "truncated"))


class TestDynamics:
    def test_same_spec_same_trajectory(self) -> None:
        """Two envs with one spec and seed give bit-identical trajectories."""
        actions = torch.rand(8, 2) * 2 - 1
        for x, y in zip(trajectory(TaskEnv(SPEC), actions), trajectory(TaskEnv(SPEC), actions),
                        strict=True):
            assert_identical(x, y, "trajectory")

    def test_action_changes_observations_and_reward(self) -> None:
        """A different or permuted action changes the next observation and the reward."""
        base = torch.tensor([0.3, -0.7])
        outs = [trajectory(TaskEnv(SPEC), a[None])[1] for a in (base, base.flip(0), base * 0.5)]
        for other in outs[1:]:
            assert not torch.equal(outs[0]["obs"], other["obs"])
            assert not torch.equal(outs[0]["reward"], other["reward"])

    def test_tasks_differ(self) -> None:
        """Two tasks with the same keys and seed but different names have different dynamics."""
        other = TaskSpec("u", SPEC.observations, seed=SPEC.seed)
        a = torch.tensor([[0.3, -0.7]])
        assert not torch.equal(trajectory(TaskEnv(SPEC), a)[1]["obs"],
                               trajectory(TaskEnv(other), a)[1]["obs"])

    def test_episode_length(self) -> None:
        """terminated and done become True on the step reaching episode_length; truncated never."""
        traj = trajectory(TaskEnv(SPEC), torch.zeros(4, 2))
        assert [bool(td["done"]) for td in traj] == [False, False, False, True, True]
        assert all(torch.equal(td["done"], td["terminated"]) for td in traj)
        assert not any(bool(td["truncated"]) for td in traj)

    def test_seeding_uses_own_generator(self) -> None:
        """set_seed reseeds the env's generator only: reset draws change, global RNG untouched."""
        env = TaskEnv(SPEC)
        state = torch.random.get_rng_state()
        env.set_seed(1)
        first = env.reset()["obs"]
        env.set_seed(1)
        assert torch.equal(env.reset()["obs"], first)
        env.set_seed(2)
        assert not torch.equal(env.reset()["obs"], first)
        assert torch.equal(torch.random.get_rng_state(), state)

    def test_casts(self) -> None:
        """int64 observations are floor(10 v) (within [-10, 10]); bool ones are v > 0."""
        td = TaskEnv(SPEC).reset()
        assert td["i"].dtype == torch.int64 and td["i"].abs().max() <= 10
        assert td["flag"].dtype == torch.bool and td["sensors", "joint"].shape == (2, 0)

    def test_failure_hooks(self) -> None:
        """raise_at_init raises in the constructor; raise_at_step raises on that call to step."""
        with pytest.raises(RuntimeError, match="raise_at_init"):
            TaskEnv(TaskSpec("x", (), raise_at_init=True))
        env = TaskEnv(TaskSpec("x", (), raise_at_step=2))
        td = env.reset().set("action", torch.zeros(2))
        env.step(td.clone())
        with pytest.raises(RuntimeError, match="raise_at_step=2"):
            env.step(td.clone())

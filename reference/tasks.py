"""Declarative tiny task envs: seeded, deterministic, pure-torch and cheap; a :class:`TaskSpec`
lists a task's observation keys, :class:`TaskEnv` makes it a torchrl ``EnvBase``."""

from __future__ import annotations

import functools
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import Bounded, Categorical, Composite, Unbounded
from torchrl.envs import EnvBase

__all__ = ["DTYPES", "KeySpec", "TaskEnv", "TaskSpec"]

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64,
                                  "int64": torch.int64, "bool": torch.bool}
_RESERVED = ("action", "reward", "done", "terminated", "truncated", "next", "_reset", "_step")
_STATE_DIM = 4  # size of the hidden float64 state vector


@dataclass(frozen=True)
class KeySpec:
    """One observation entry: a (possibly nested) key, its shape and its dtype name."""

    key: str | tuple[str, ...]
    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"KeySpec {self.key!r}: dtype must be one of {sorted(DTYPES)} "
                             f"(got {self.dtype!r})")
        path = (self.key,) if isinstance(self.key, str) else self.key
        if not path or path[0] in _RESERVED:
            raise ValueError(f"KeySpec key {self.key!r} is empty or starts with a reserved name "
                             f"{_RESERVED}")


@dataclass(frozen=True)
class TaskSpec:
    """A tiny task: observation keys, action shape, episode length, seed, fault hooks (tests)."""

    name: str
    observations: tuple[KeySpec, ...]
    action_shape: tuple[int, ...] = (2,)
    episode_length: int = 10
    seed: int = 0
    raise_at_init: bool = False
    raise_at_step: int = 0
    hang_at_init: float = 0.0  # seconds the env's construction sleeps
    hang_at_step: tuple[int, float] = (0, 0.0)  # (k, s): its k-th step sleeps s seconds

    def maker(self) -> Callable[[], TaskEnv]:
        """Return a picklable zero-argument callable that builds this task's env."""
        return functools.partial(TaskEnv, self)


def _key_constant(key: str | tuple[str, ...]) -> float:
    """A per-key constant in [0, 1), identical in every process (crc32, never ``hash``)."""
    text = key if isinstance(key, str) else "/".join(key)
    return zlib.crc32(text.encode()) / 2**32


class TaskEnv(EnvBase):
    """A torchrl env (batch ``[]``, cpu) for one :class:`TaskSpec`. Its hidden float64 state moves
    deterministically with (state, action); observations and reward are functions of the state (and
    action); the only randomness is the reset draw from its own generator, seeded by ``_set_seed``.
    ``terminated`` and ``done`` become True on the step whose count reaches ``episode_length``."""

    def __init__(self, spec: TaskSpec) -> None:
        time.sleep(spec.hang_at_init)
        if spec.raise_at_init:
            raise RuntimeError(f"TaskEnv {spec.name!r}: raise_at_init is set (test hook)")
        super().__init__(device="cpu", batch_size=torch.Size([]))
        self.task = spec
        self._rng = torch.Generator().manual_seed(spec.seed)
        self._state = torch.zeros(_STATE_DIM, dtype=torch.float64)
        self._count = 0  # steps since the last reset
        self._calls = 0  # calls to _step over the env's lifetime (for raise_at_step)
        name_c = _key_constant(spec.name)
        # Column j of the mixing matrix differs from every other column: a permuted action shows.
        k = torch.arange(_STATE_DIM, dtype=torch.float64)[:, None]
        j = torch.arange(math.prod(spec.action_shape), dtype=torch.float64)[None, :]
        self._mix = torch.sin(1.0 + k + 2.7 * j + 6.0 * name_c)
        self._bias = 0.1 * torch.cos(k[:, 0] + 6.0 * name_c)
        obs = Composite(shape=())
        for ks in spec.observations:
            obs[ks.key] = Unbounded(ks.shape, dtype=DTYPES[ks.dtype])
        self.observation_spec = obs
        self.action_spec = Bounded(-1.0, 1.0, shape=spec.action_shape, dtype=torch.float32)
        self.reward_spec = Unbounded((1,), dtype=torch.float32)
        self.full_done_spec = Composite({k: Categorical(2, shape=(1,), dtype=torch.bool)
                                         for k in ("done", "terminated", "truncated")}, shape=())

    def _observe(self) -> TensorDict:
        """Observation entries plus done flags, all computed from the current state."""
        out = TensorDict({}, batch_size=[], device=self.device)
        for ks in self.task.observations:
            c = _key_constant(ks.key)
            idx = torch.arange(math.prod(ks.shape), dtype=torch.int64)
            v = torch.sin(self._state[idx % _STATE_DIM] * (1.0 + c) + 0.37 * idx + 6.0 * c)
            v = v.reshape(ks.shape)
            if ks.dtype == "int64":
                v = torch.floor(10.0 * v).to(torch.int64)
            elif ks.dtype == "bool":
                v = v > 0
            else:
                v = v.to(DTYPES[ks.dtype])
            out.set(ks.key, v)
        done = torch.tensor([self._count >= self.task.episode_length])
        out.set("done", done)
        out.set("terminated", done.clone())
        out.set("truncated", torch.zeros(1, dtype=torch.bool))
        return out

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: object) -> TensorDict:
        self._state = torch.rand(_STATE_DIM, generator=self._rng, dtype=torch.float64) * 2 - 1
        self._count = 0
        return self._observe()

    def _step(self, tensordict: TensorDictBase) -> TensorDict:
        self._calls += 1
        if self._calls == self.task.raise_at_step:
            raise RuntimeError(f"TaskEnv {self.task.name!r}: raise_at_step={self._calls} "
                               "(test hook)")
        time.sleep(self.task.hang_at_step[1] if self._calls == self.task.hang_at_step[0] else 0)
        a = tensordict.get("action").to(torch.float64).reshape(-1)
        self._state = torch.tanh(0.9 * self._state.roll(1) + 0.5 * (self._mix @ a) + self._bias)
        self._count += 1
        out = self._observe()
        reward = self._state[0] - 0.1 * (a * a).sum()
        out.set("reward", reward.reshape(1).to(torch.float32))
        return out

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._rng.manual_seed(seed)

"""Declarative tiny task envs: seeded, deterministic, pure-torch and cheap; a :class:`TaskSpec`
lists a task's observation keys (tensors and strings), its action (kind, key, shape), where its
reward and done entries live (root and/or a group), its own batch size; :class:`TaskEnv` makes it
a torchrl ``EnvBase``. The defaults give the simplest task: one float ``"action"``, reward and
done at the root, batch size ``[]``."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import gc
import math
import multiprocessing
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import (
    Binary,
    Bounded,
    Categorical,
    Composite,
    MultiCategorical,
    MultiOneHot,
    NonTensor,
    OneHot,
    TensorSpec,
    Unbounded,
)
from torchrl.envs import EnvBase

__all__ = ["ACTION_KINDS", "DTYPES", "KeySpec", "TaskEnv", "TaskSpec"]

Key = str | tuple[str, ...]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64,
                                  "int64": torch.int64, "bool": torch.bool}
# Action spec kinds: "bounded" (the default) and "unbounded" are float32; the others discrete.
ACTION_KINDS = ("bounded", "unbounded", "categorical", "onehot", "multicategorical",
                "multionehot", "binary")
_CHOICES = 3  # categories of a categorical / one-hot action
_SIGNALS = ("reward", "done", "terminated", "truncated")
_RESERVED = ("action", *_SIGNALS, "next", "_reset", "_step")
_STATE_DIM = 4  # size of the hidden float64 state vector


def _path(key: Key) -> tuple[str, ...]:
    return (key,) if isinstance(key, str) else tuple(key)


def hang(seconds: float) -> None:
    """A task env's "never returns" test hook (``hang_at_init`` / ``hang_at_step``): sleep.  One
    named function, so a caller can tell from a thread's stack that the thread is inside it."""
    time.sleep(seconds)


@functools.cache
def skip_exit_collection() -> None:
    """In a worker process (not the main one), once: exempt what is alive when the worker exits
    from the interpreter's last garbage collection (``gc.freeze`` at exit).  With tensordict
    imported (it pulls in torch._dynamo and sympy) that collection took about 1 s of CPU, and a
    batched env's close() waits for it in each worker: torchrl's ParallelEnv over two of these
    tasks closed in 2.3 s, 0.35 s without it.  It changes nothing else: the worker ends anyway."""
    if multiprocessing.parent_process() is not None:
        atexit.register(gc.freeze)


def _repr(obj: object) -> str:
    """``Cls(field=value, ...)`` with the fields that differ from their defaults: evaluable, and
    short in a reproducer."""
    shown = [f"{f.name}={getattr(obj, f.name)!r}" for f in dataclasses.fields(obj)  # type: ignore[arg-type]
             if f.default is dataclasses.MISSING or getattr(obj, f.name) != f.default]
    return f"{type(obj).__name__}({', '.join(shown)})"


@dataclass(frozen=True)
class KeySpec:
    """One observation entry: a (possibly nested) key, its shape, its dtype name, and whether its
    spec is ``Bounded`` (float: [-1, 1], int64: [-10, 10]) rather than ``Unbounded``."""

    key: Key
    shape: tuple[int, ...]
    dtype: str = "float32"
    bounded: bool = False

    __repr__ = _repr

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"KeySpec {self.key!r}: dtype must be one of {sorted(DTYPES)} "
                             f"(got {self.dtype!r})")
        if not _path(self.key) or _path(self.key)[0] in _RESERVED:
            raise ValueError(f"KeySpec key {self.key!r} is empty or starts with a reserved name "
                             f"{_RESERVED}")
        if self.bounded and self.dtype == "bool":
            raise ValueError(f"KeySpec {self.key!r}: a bool entry cannot be bounded")


@dataclass(frozen=True)
class TaskSpec:
    """A tiny task. ``action_kind`` (one of :data:`ACTION_KINDS`) at ``action_key`` with
    ``action_shape`` (discrete kinds other than "categorical" need a last dim: its categories /
    bits); ``group``: reward and done entries also (``root_signals``) or only under this key, with
    a group batch dim of ``group_size`` (0: none), like a multi-agent env; ``text_keys``: string
    (non-tensor) observation entries; ``batch``: the task's own batch size ([] or [k]). The
    ``raise_*`` / ``hang_*`` hooks make it fail on purpose (tests)."""

    name: str
    observations: tuple[KeySpec, ...]
    action_shape: tuple[int, ...] = (2,)
    episode_length: int = 10
    seed: int = 0
    action_kind: str = "bounded"
    action_key: Key = "action"
    group: str = ""
    group_size: int = 0
    root_signals: bool = True
    text_keys: tuple[Key, ...] = ()
    batch: tuple[int, ...] = ()
    raise_at_init: bool = False
    raise_at_step: int = 0
    hang_at_init: float = 0.0  # seconds the env's construction sleeps
    hang_at_step: tuple[int, float] = (0, 0.0)  # (k, s): its k-th step sleeps s seconds

    __repr__ = _repr

    def __post_init__(self) -> None:
        if self.action_kind not in ACTION_KINDS:
            raise ValueError(f"TaskSpec {self.name!r}: action_kind must be one of {ACTION_KINDS}"
                             f" (got {self.action_kind!r})")
        if self.action_kind not in ("bounded", "unbounded", "categorical") and (
                not self.action_shape or self.action_shape[-1] < 1):
            raise ValueError(f"TaskSpec {self.name!r}: a {self.action_kind!r} action needs a "
                             f"non-empty last dim (got action_shape={self.action_shape})")
        if self.action_kind == "onehot" and self.action_shape[-1] != _CHOICES:
            raise ValueError(f"TaskSpec {self.name!r}: a one-hot action's last dim is its "
                             f"{_CHOICES} categories (got action_shape={self.action_shape})")
        if not self.group and (self.group_size or not self.root_signals):
            raise ValueError(f"TaskSpec {self.name!r}: group_size / root_signals=False need a "
                             "group key")
        taken = {_path(k.key)[0] for k in self.observations} | {_path(k)[0]
                                                                 for k in self.text_keys}
        if self.group and self.group in taken | set(_RESERVED):
            raise ValueError(f"TaskSpec {self.name!r}: group {self.group!r} is already used")
        if len(self.batch) > 1:
            raise ValueError(f"TaskSpec {self.name!r}: batch must be [] or [k] (got {self.batch})")

    def maker(self) -> Callable[[], TaskEnv]:
        """Return a picklable zero-argument callable that builds this task's env."""
        return functools.partial(TaskEnv, self)


def _key_constant(key: Key) -> float:
    """A per-key constant in [0, 1), identical in every process (crc32, never ``hash``)."""
    return zlib.crc32("/".join(_path(key)).encode()) / 2**32


def _action_spec(kind: str, shape: tuple[int, ...]) -> TensorSpec:
    """The action leaf spec of a kind; ``shape`` includes the batch and group dims."""
    if kind in ("bounded", "unbounded"):
        cls = Bounded if kind == "bounded" else Unbounded
        return cls(-1.0, 1.0, shape=shape) if cls is Bounded else cls(shape)
    if kind == "categorical":
        return Categorical(_CHOICES, shape=shape)
    if kind == "onehot":
        return OneHot(_CHOICES, shape=shape)
    if kind == "binary":
        return Binary(n=shape[-1], shape=shape)
    if kind == "multicategorical":
        return MultiCategorical([_CHOICES] * shape[-1], shape=shape)
    nvec = [2] * (shape[-1] // 2) + [1] * (shape[-1] % 2)  # "multionehot": sums to the last dim
    return MultiOneHot(nvec, shape=shape)


class TaskEnv(EnvBase):
    """A torchrl env (batch ``spec.batch``, cpu) for one :class:`TaskSpec`. Its hidden float64
    state (one row per batch entry) moves deterministically with (state, action); observations,
    strings and reward are functions of the state, step count (and action); the only randomness
    is the reset draw from its own generator, seeded by ``_set_seed``. ``terminated`` and
    ``done`` become True on the step whose count reaches ``episode_length``; a ``"_reset"`` mask
    resets only its rows."""

    def __init__(self, spec: TaskSpec) -> None:
        if spec.hang_at_init:
            hang(spec.hang_at_init)
        if spec.raise_at_init:
            raise RuntimeError(f"TaskEnv {spec.name!r}: raise_at_init is set (test hook)")
        super().__init__(device="cpu", batch_size=torch.Size(spec.batch))
        skip_exit_collection()
        self.task = spec
        self._rng = torch.Generator().manual_seed(spec.seed)
        self._state = torch.zeros(*spec.batch, _STATE_DIM, dtype=torch.float64)
        self._count = torch.zeros(spec.batch, dtype=torch.int64)  # steps since the last reset
        self._calls = 0  # calls to _step over the env's lifetime (for raise_at_step)
        batch, grp = tuple(spec.batch), (spec.group_size,) if spec.group_size else ()
        in_group = bool(spec.group) and _path(spec.action_key)[0] == spec.group
        action_shape = (*batch, *(grp if in_group else ()), *spec.action_shape)
        # Column j of the mixing matrix differs from every other column: a permuted action shows.
        k = torch.arange(_STATE_DIM, dtype=torch.float64)[:, None]
        j = torch.arange(math.prod(action_shape[len(batch):]), dtype=torch.float64)[None, :]
        name_c = _key_constant(spec.name)
        self._mix = torch.sin(1.0 + k + 2.7 * j + 6.0 * name_c)
        self._bias = 0.1 * torch.cos(k[:, 0] + 6.0 * name_c)
        obs = Composite(shape=batch)
        for ks in spec.observations:
            lo = 10 if ks.dtype == "int64" else 1.0
            obs[ks.key] = (Bounded(-lo, lo, shape=(*batch, *ks.shape), dtype=DTYPES[ks.dtype])
                           if ks.bounded else Unbounded((*batch, *ks.shape),
                                                        dtype=DTYPES[ks.dtype]))
        for key in spec.text_keys:
            obs[key] = NonTensor(shape=batch, example_data="")  # (one spec for every task)
        self.observation_spec = obs
        actions = Composite(shape=batch)
        if in_group:
            actions[spec.group] = Composite(shape=(*batch, *grp))
        actions[spec.action_key] = _action_spec(spec.action_kind, action_shape)
        self.full_action_spec = actions
        reward = Composite(shape=batch)
        done = Composite(shape=batch)
        flag = Categorical(2, shape=(*batch, 1), dtype=torch.bool)
        if spec.root_signals:
            reward["reward"] = Unbounded((*batch, 1))
            for d in _SIGNALS[1:]:
                done[d] = flag.clone()
        if spec.group:
            reward[spec.group] = Composite(reward=Unbounded((*batch, *grp, 1)),
                                           shape=(*batch, *grp))
            done[spec.group] = Composite(
                {d: Categorical(2, shape=(*batch, *grp, 1), dtype=torch.bool)
                 for d in _SIGNALS[1:]}, shape=(*batch, *grp))
        self.full_reward_spec = reward
        self.full_done_spec = done

    def _signals(self, done: torch.Tensor, reward: torch.Tensor | None) -> TensorDict:
        """Done flags (and reward) at the root and/or under the group, from per-row values."""
        out = TensorDict({}, batch_size=self.batch_size)
        names = ("done", "terminated", "truncated")
        flags = dict(zip(names, (done, done.clone(), torch.zeros_like(done)), strict=True))
        if reward is not None:
            flags["reward"] = reward
        if self.task.root_signals:
            out.update(flags)
        if self.task.group:
            grp = (self.task.group_size,) if self.task.group_size else ()
            size = (*self.batch_size, *grp)
            if grp:  # one row per agent; agent j's reward is the row's plus j/8 (exact values)
                agent = torch.arange(grp[0], dtype=torch.float32)[:, None] / 8
                flags = {n: v.unsqueeze(-2) + agent if n == "reward"
                         else v.unsqueeze(-2).expand(*size, 1).clone() for n, v in flags.items()}
            out[self.task.group] = TensorDict(flags, batch_size=size)
        return out

    def _observe(self, reward: torch.Tensor | None = None) -> TensorDict:
        """Observation entries plus done flags (and reward), all computed from the current
        state."""
        batch = tuple(self.batch_size)
        out = self._signals((self._count >= self.task.episode_length).unsqueeze(-1), reward)
        for ks in self.task.observations:
            c = _key_constant(ks.key)
            idx = torch.arange(math.prod(ks.shape), dtype=torch.int64)
            v = torch.sin(self._state[..., idx % _STATE_DIM] * (1.0 + c) + 0.37 * idx + 6.0 * c)
            v = v.reshape((*batch, *ks.shape))
            if ks.dtype == "int64":
                v = torch.floor(10.0 * v).to(torch.int64)
            elif ks.dtype == "bool":
                v = v > 0
            else:
                v = v.to(DTYPES[ks.dtype])
            out.set(ks.key, v)
        for key in self.task.text_keys:  # e.g. "task0@3:-0.25": the count and the state
            text = f"{self.task.name}@{int(self._count.max())}:{float(self._state.sum()):.6f}"
            out.set_non_tensor(key, text)
        return out

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: object) -> TensorDict:
        mask = None if tensordict is None else tensordict.get("_reset", None)
        rows = (torch.ones(self.batch_size, dtype=torch.bool) if mask is None
                else mask.reshape(*self.batch_size, -1).any(-1))
        fresh = torch.rand(*self.batch_size, _STATE_DIM, generator=self._rng,
                           dtype=torch.float64) * 2 - 1
        self._state = torch.where(rows.unsqueeze(-1), fresh, self._state)
        self._count = torch.where(rows, 0, self._count)
        return self._observe()

    def _step(self, tensordict: TensorDictBase) -> TensorDict:
        self._calls += 1
        if self._calls == self.task.raise_at_step:
            raise RuntimeError(f"TaskEnv {self.task.name!r}: raise_at_step={self._calls} "
                               "(test hook)")
        if self._calls == self.task.hang_at_step[0]:
            hang(self.task.hang_at_step[1])
        key, leaf = self.task.action_key, self.full_action_spec[self.task.action_key]
        action = tensordict.get(key)
        if action.dtype != leaf.dtype or action.shape != leaf.shape:
            raise TypeError(f"TaskEnv {self.task.name!r}: action {key!r} must be {leaf.dtype} "
                            f"of shape {tuple(leaf.shape)}, got {action.dtype} of shape "
                            f"{tuple(action.shape)}")
        a = action.to(torch.float64).reshape(*self.batch_size, -1)
        mixed = (self._mix @ a if a.ndim == 1  # (row by row: a row's value is the lone task's)
                 else torch.stack([self._mix @ row for row in a.unbind(0)]))
        self._state = torch.tanh(0.9 * self._state.roll(1, -1) + 0.5 * mixed + self._bias)
        self._count = self._count + 1
        reward = self._state[..., 0] - 0.1 * (a * a).sum(-1)
        return self._observe(reward.unsqueeze(-1).to(torch.float32))

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self._rng.manual_seed(seed)

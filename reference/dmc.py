"""The seed tutorial's humanoid stand/walk envs, built exactly as the tutorial builds them.
Importable without dm_control; calling a maker without it raises ImportError naming the extra."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

__all__ = ["TASKS", "humanoid_maker", "make_humanoid", "stand_maker", "walk_maker"]

TASKS = ("stand", "walk")
_HINT = "pip install multitask-conformance[dmcontrol]"


def make_humanoid(task: str) -> Any:
    """Build ``TransformedEnv(DMControlEnv("humanoid", task), Compose(CatTensors(obs_keys,
    f"observation_{task}", del_keys=False), CatTensors(obs_keys, "observation"),
    DoubleToFloat(...)))``: 67-dim float32 observations, 21-dim actions, as in the tutorial."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import dm_control  # noqa: F401
    except ImportError as err:
        raise ImportError(f"the humanoid tasks need dm_control: {_HINT} ({err})") from err
    from torchrl.envs import CatTensors, Compose, DoubleToFloat, TransformedEnv
    from torchrl.envs.libs.dm_control import DMControlEnv

    from reference.tasks import skip_exit_collection

    skip_exit_collection()  # (a worker's exit only: the env is the tutorial's)
    base = DMControlEnv("humanoid", task)
    obs_keys = list(base.observation_spec.keys())
    return TransformedEnv(
        base,
        Compose(
            CatTensors(obs_keys, f"observation_{task}", del_keys=False),
            CatTensors(obs_keys, "observation"),
            DoubleToFloat(in_keys=[f"observation_{task}", "observation"], in_keys_inv=["action"]),
        ),
    )


def humanoid_maker(task: str) -> Callable[[], Any]:
    """A picklable zero-argument maker of the tutorial's humanoid ``task`` env."""
    if task not in TASKS:
        raise ValueError(f"humanoid task must be one of {TASKS}, got {task!r}")
    return functools.partial(make_humanoid, task)


def stand_maker() -> Any:
    """The tutorial's ``env1_maker``: humanoid stand with ``observation_stand``."""
    return make_humanoid("stand")


def walk_maker() -> Any:
    """The tutorial's ``env2_maker``: humanoid walk with ``observation_walk``."""
    return make_humanoid("walk")

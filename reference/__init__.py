"""The oracle: minimal, obviously-correct multi-task envs and a partial-tolerant policy.

Importing this package is light (no torch): public names load lazily from their modules, so a
worker process (``reference._worker``) can report an import failure of torch/torchrl itself.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "KeySpec": "reference.tasks",
    "TaskSpec": "reference.tasks",
    "TaskEnv": "reference.tasks",
    "EnvSpecs": "reference.batched",
    "SerialMultiTaskEnv": "reference.batched",
    "ParallelMultiTaskEnv": "reference.batched",
    "check_shared_specs": "reference.batched",
    "SpecMismatchError": "reference.errors",
    "WorkerError": "reference.errors",
    "PartialTolerantSequential": "reference.policy",
    "humanoid_maker": "reference.dmc",
    "stand_maker": "reference.dmc",
    "walk_maker": "reference.dmc",
    "make_humanoid": "reference.dmc",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]

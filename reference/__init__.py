"""The oracle: minimal, obviously-correct multi-task envs and a partial-tolerant policy.

Importing it is light (no torch): names load lazily from their modules, so a worker process
(``reference._worker``) can report an import failure of torch/torchrl itself. To read: ``tasks``,
``batched``, ``policy``, ``_worker``, ``errors``; ``fast_*`` and ``_fast_worker`` are speed only.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {name: f"reference.{module}" for module, names in {
    "tasks": ("KeySpec", "TaskSpec", "TaskEnv"),
    "batched": ("EnvSpecs", "SerialMultiTaskEnv", "check_shared_specs"),
    "fast_batched": ("ParallelMultiTaskEnv",),
    "errors": ("SpecMismatchError", "WorkerError"),
    "fast_policy": ("PartialTolerantSequential",),
    "dmc": ("humanoid_maker", "stand_maker", "walk_maker", "make_humanoid"),
}.items() for name in names}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'reference' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return [*globals(), *__all__]

"""Errors raised by the reference batched envs (stdlib only: importable without torch)."""

from __future__ import annotations

__all__ = ["SpecMismatchError", "WorkerError"]


class SpecMismatchError(ValueError):
    """A key shared by all tasks has different shapes or dtypes in two tasks."""


class WorkerError(RuntimeError):
    """A task's env failed (in its worker process or in the parent); names the task index, the
    worker's formatted traceback (None if none came back) and its exit code (None if unknown)."""

    def __init__(self, message: str, task_index: int, worker_traceback: str | None = None,
                 exitcode: int | None = None) -> None:
        if worker_traceback:
            message = f"{message}\n--- traceback from task {task_index} ---\n{worker_traceback}"
        super().__init__(message)
        self.task_index = task_index
        self.worker_traceback = worker_traceback
        self.exitcode = exitcode

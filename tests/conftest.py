"""Shared helpers for the kit's own tests: run the CLI or pytest in a subprocess, like a user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


class Run:
    """The result of one subprocess run: exit code, output, and the JSON report if written."""

    def __init__(self, proc: subprocess.CompletedProcess[str], report: Path | None) -> None:
        self.code = proc.returncode
        self.out = proc.stdout + proc.stderr
        self.report: dict[str, Any] | None = None
        self.path = report
        if report is not None and report.exists():
            self.report = json.loads(report.read_text())

    def outcome(self, subject: str, prop_id: str) -> str:
        assert self.report is not None, self.out[-3000:]
        return self.report["subjects"][subject]["properties"][prop_id]["outcome"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("CI", None)  # each test picks its profile explicitly
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("MUJOCO_GL", "egl")
    return env


@pytest.fixture
def run_cli(tmp_path: Path):
    """Run ``python -m conformance ARGS`` from the repo root; ``report=True`` adds --report."""

    def run(*args: str, report: bool = False, timeout: float = 600) -> Run:
        path = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.json"
        extra = ["--report", str(path)] if report else []
        cmd = [sys.executable, "-m", "conformance", *args[:1], *extra, *args[1:]]
        proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=timeout)
        return Run(proc, path if report else None)

    return run


@pytest.fixture
def run_pytest(tmp_path: Path):
    """Run ``python -m pytest ARGS --report FILE`` from the repo root."""

    def run(*args: str, timeout: float = 600) -> Run:
        path = tmp_path / f"pytest-report-{len(list(tmp_path.iterdir()))}.json"
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args,
               "--report", str(path)]
        proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=timeout)
        return Run(proc, path)

    return run

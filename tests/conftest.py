"""Shared helpers for the kit's own tests: run the CLI or pytest in a process of its own, like a
user (forked from a process that has imported torch and the rest once: conformance._zygote)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from conformance import _zygote

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
    # no empty entry: it would put the current directory on sys.path, which a user's has not
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MUJOCO_GL", "egl")
    return env


# Environment variables read while the zygote imports torch, tensordict, torchrl (and mujoco):
# a command whose values differ runs in a fresh subprocess instead.
_IMPORT_TIME = ("PYTHON", "TORCH", "PYTORCH", "OMP_", "MKL_", "MUJOCO", "CUDA", "LD_")


class Zygote:
    """Runs ``python -m MODULE ARGS`` as ``subprocess.run([...], cwd=ROOT, env=env,
    capture_output=True, text=True, timeout=timeout)`` would, forked from a process that has
    imported torch, tensordict, torchrl, pytest, hypothesis and the CLI once
    (conformance._zygote): only what ``python -m conformance`` imports before its own code runs,
    so the plugin and properties modules are imported (and rewritten by pytest) in the child, as
    in a fresh process.  A fresh subprocess instead off Linux, with CONFORMANCE_NO_ZYGOTE=1,
    or where ``env`` changes what those imports read."""

    PRELOAD = ("torch", "tensordict", "torchrl.envs", "pytest", "hypothesis", "conformance.cli")

    def __init__(self) -> None:
        self.zygote: _zygote.Zygote | None = None

    def usable(self, env: dict[str, str]) -> bool:
        if not _zygote.enabled():
            return False
        if self.zygote is None:
            return True
        def picked(e: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in e.items() if k.startswith(_IMPORT_TIME)}
        return picked(env) == picked(self.zygote.env or {})

    def run(self, module: str, args: list[str], env: dict[str, str],
            timeout: float, script: bool = False) -> subprocess.CompletedProcess[str]:
        """``python -m MODULE ARGS``, or ``python MODULE ARGS`` (a script) with ``script``."""
        cmd = [sys.executable, *([] if script else ["-m"]), module, *args]
        if not self.usable(env):
            return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        if self.zygote is None:
            self.zygote = _zygote.Zygote(self.PRELOAD, env=env)
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
            code = self.zygote.run(module, argv=args, module=not script, cwd=str(ROOT),
                                   env=env, stdout=str(out), stderr=str(err), timeout=timeout)
            if code is None:
                raise subprocess.TimeoutExpired(cmd, timeout)
            texts = [p.read_text(errors="replace") if p.exists() else "" for p in (out, err)]
        return subprocess.CompletedProcess(cmd, code, *texts)

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()


@pytest.fixture(scope="session")
def zygote():
    """One zygote per test process (each xdist worker has its own)."""
    z = Zygote()
    yield z
    z.close()


@pytest.fixture
def run_cli(tmp_path: Path, zygote: Zygote):
    """Run ``python -m conformance ARGS`` from the repo root; ``report=True`` adds --report."""

    def run(*args: str, report: bool = False, timeout: float = 600) -> Run:
        path = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.json"
        extra = ["--report", str(path)] if report else []
        proc = zygote.run("conformance", [*args[:1], *extra, *args[1:]], _env(), timeout)
        return Run(proc, path if report else None)

    return run


@pytest.fixture
def run_pytest(tmp_path: Path, zygote: Zygote):
    """Run ``python -m pytest ARGS --report FILE`` from the repo root."""

    def run(*args: str, timeout: float = 600) -> Run:
        path = tmp_path / f"pytest-report-{len(list(tmp_path.iterdir()))}.json"
        proc = zygote.run("pytest", ["-p", "no:cacheprovider", *args, "--report", str(path)],
                          _env(), timeout)
        return Run(proc, path)

    return run

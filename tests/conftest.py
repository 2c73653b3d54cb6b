"""Shared helpers for the kit's own tests: run the CLI or pytest in a process of its own, like a
user (forked from a zygote that has imported torch and the rest once: tests/zygote.py)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

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
    # no empty entry: it would put the current directory on sys.path, which a user's has not
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MUJOCO_GL", "egl")
    return env


# Environment variables read while the zygote imports torch, tensordict, torchrl (and mujoco):
# a command whose values differ runs in a fresh subprocess instead.
_IMPORT_TIME = ("PYTHON", "TORCH", "PYTORCH", "OMP_", "MKL_", "MUJOCO", "CUDA", "LD_")


class Zygote:
    """The client of tests/zygote.py: ``run(module, args, env, timeout)`` is
    ``subprocess.run([python, -m, module, *args], cwd=ROOT, env=env, capture_output=True,
    text=True, timeout=timeout)`` without the interpreter start and the preloaded imports.
    Falls back to ``subprocess.run`` off Linux, with CONFORMANCE_TESTS_NO_ZYGOTE=1, or where
    ``env`` changes what the preloaded imports read."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    def _start(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        self.env = dict(env)
        proc = subprocess.Popen([sys.executable, "-m", "tests.zygote"], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.proc = proc
        if "ready" not in self._answer(proc, 120):
            raise RuntimeError("tests/zygote.py did not start")
        return proc

    @staticmethod
    def _answer(proc: subprocess.Popen[bytes], timeout: float | None) -> dict[str, Any]:
        out: IO[bytes] = proc.stdout  # type: ignore[assignment]
        if not select.select([out], [], [], timeout)[0]:
            raise TimeoutError
        line = out.readline()
        if not line:
            raise RuntimeError(f"tests/zygote.py ended (exit {proc.wait()})")
        return json.loads(line)

    def usable(self, env: dict[str, str]) -> bool:
        if not sys.platform.startswith("linux") or os.environ.get("CONFORMANCE_TESTS_NO_ZYGOTE"):
            return False
        if self.proc is None or self.proc.poll() is not None:
            return True
        def picked(e: dict[str, str]) -> dict[str, str]:
            return {k: v for k, v in e.items() if k.startswith(_IMPORT_TIME)}
        return picked(env) == picked(self.env)

    def run(self, module: str, args: list[str], env: dict[str, str],
            timeout: float) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", module, *args]
        if not self.usable(env):
            return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=timeout)
        proc = self.proc if self.proc is not None and self.proc.poll() is None else \
            self._start(env)
        with tempfile.TemporaryDirectory() as tmp:
            streams = [str(Path(tmp) / "stdout"), str(Path(tmp) / "stderr")]
            request = {"module": module, "argv": args, "cwd": str(ROOT), "env": env,
                       "stdout": streams[0], "stderr": streams[1]}
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            pid = self._answer(proc, 60)["pid"]
            try:
                code = self._answer(proc, timeout)["code"]
            except TimeoutError:
                self._kill(pid)
                self._answer(proc, 60)
                raise subprocess.TimeoutExpired(cmd, timeout) from None
            out, err = (Path(s).read_text(errors="replace") for s in streams)
        return subprocess.CompletedProcess(cmd, code, out, err)

    @staticmethod
    def _kill(pid: int) -> None:
        import psutil

        try:
            me = psutil.Process(pid)
            tree = [*me.children(recursive=True), me]
        except psutil.NoSuchProcess:
            return
        for proc in tree:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


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

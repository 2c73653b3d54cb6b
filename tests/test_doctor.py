"""``python -m conformance doctor`` and the doctor's gate in ``check``, run as a user runs them.

The broken environments are made without installing anything: a temporary directory placed
first on the subprocess's PYTHONPATH holds fakes that break exactly what a real bad install
breaks, and the doctor's real probes (a humanoid suite load in a subprocess, a spawned worker)
run into them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ("core imports", "spawned worker", "start methods", "MUJOCO_GL", "dm_control humanoid")
MUJOCO_FIX = "pip install 'mujoco>=3.17,<4'"

# mujoco 4.0.0 beside dm_control 1.0.50: what `pip install dm_control` resolves to today. The
# fake mujoco reports 4.0.0 (module and distribution metadata); the fake dm_control's suite fails
# the way the real one does on mujoco 4.
FAKE_MUJOCO4 = {
    "mujoco/__init__.py": '__version__ = "4.0.0"\n',
    "mujoco-4.0.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: mujoco\nVersion: 4.0.0\n",
    "dm_control/__init__.py": "",
    "dm_control/suite/__init__.py": (
        "import mujoco\n\n"
        "def load(domain_name, task_name, **kwargs):\n"
        "    raise AttributeError(\"'MjModel' object has no attribute 'flex_vertedge'\")\n"
    ),
}

# The seed's docs build: the parent imports everything, but in a spawned worker `import sympy`
# (pulled in by tensordict) dies on mpmath. This sitecustomize breaks sympy in spawned
# workers only ("--multiprocessing-fork" is on their command line), nowhere else.
FAKE_MPMATH_IN_WORKERS = {
    "sitecustomize.py": (
        "import sys\n\n"
        "class _BrokenSympy:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sympy':\n"
        "            raise AttributeError(\"module 'mpmath' has no attribute 'rational'\")\n"
        "        return None\n\n"
        "if '--multiprocessing-fork' in sys.argv:\n"
        "    sys.meta_path.insert(0, _BrokenSympy())\n"
    ),
}


def _fakes(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "fakes"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _run(*args: str, fakes: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.pop("CI", None)
    paths = [str(fakes)] if fakes else []
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [*paths, str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("MUJOCO_GL", "egl")
    return subprocess.run([sys.executable, "-m", "conformance", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def _has_dmcontrol() -> bool:
    from importlib.util import find_spec

    return find_spec("dm_control") is not None and find_spec("mujoco") is not None


class TestHealthy:
    def test_exits_zero_and_names_every_check(self) -> None:
        """In this environment the doctor exits 0 and names each check and each version."""
        proc = _run("doctor")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out
        for name in CHECKS:
            assert name in out, f"{name!r} missing from:\n{out}"
        for dist in ("python", "torch", "tensordict", "torchrl", "dm_control", "mujoco",
                     "hypothesis"):
            assert f"{dist} " in out, out
        assert "[FAIL]" not in out and "ready:" in out, out

    def test_json_lists_checks_and_versions(self) -> None:
        """`doctor --json` gives the versions, every check and the verdict."""
        import json

        proc = _run("doctor", "--json")
        data = json.loads(proc.stdout)
        assert [c["name"] for c in data["checks"]] == list(CHECKS)
        assert data["ready"] is True and data["versions"]["torch"] != "not installed"


@pytest.mark.skipif(not _has_dmcontrol(), reason="needs the dmcontrol extra: the fake shadows it")
class TestMujoco4:
    def test_doctor_names_incompatibility_and_fix(self, tmp_path: Path) -> None:
        """With mujoco 4.0.0 the humanoid does not load: the doctor says why, the fix, exits 1."""
        proc = _run("doctor", fakes=_fakes(tmp_path, FAKE_MUJOCO4))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "[FAIL] dm_control humanoid" in out, out
        assert "flex_vertedge" in out, out
        assert "mujoco 4.0.0 is incompatible with dm_control" in out, out
        assert MUJOCO_FIX in out, out
        assert "not ready" in out, out

    def test_check_stops_before_running_properties(self, tmp_path: Path) -> None:
        """`check --area SCN` stops with the doctor's message before any property runs."""
        report = tmp_path / "report.json"
        proc = _run("check", "--area", "SCN", "--subject", "reference", "--report", str(report),
                    fakes=_fakes(tmp_path, FAKE_MUJOCO4))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 3, out
        assert "cannot run the selected properties" in out, out
        assert "mujoco 4.0.0 is incompatible" in out and MUJOCO_FIX in out, out
        assert not report.exists(), "properties ran although the doctor blocked"
        assert "passed" not in out and "SCN-001" not in out, out

    def test_check_of_other_areas_is_not_blocked(self, tmp_path: Path) -> None:
        """A broken dm_control does not block areas that do not load it."""
        report = tmp_path / "report.json"
        proc = _run("check", "--area", "STK", "--subject", "reference", "--profile", "quick",
                    "--report", str(report), "--", "-k", "test_index_returns_originals",
                    fakes=_fakes(tmp_path, FAKE_MUJOCO4))
        out = proc.stdout + proc.stderr
        assert proc.returncode != 3 and "cannot run" not in out, out
        assert report.exists(), out  # the properties ran (their outcome is STK's business)


class TestBrokenSpawnedWorker:
    def test_doctor_names_mpmath_and_fix(self, tmp_path: Path) -> None:
        """A worker that dies on mpmath while the parent imports fine: FAIL, the cause, exit 1."""
        proc = _run("doctor", fakes=_fakes(tmp_path, FAKE_MPMATH_IN_WORKERS))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "[ok  ] core imports" in out, out
        assert "[FAIL] spawned worker" in out, out
        assert "module 'mpmath' has no attribute 'rational'" in out, out
        assert "pip install -U sympy" in out and "mpmath<1.4" in out, out

    def test_check_stops_with_the_spawn_message(self, tmp_path: Path) -> None:
        """`check` of an area with parallel properties runs those that start no process while
        the probe runs, then stops with the worker's diagnosis before the first that does, and
        writes no report."""
        report = tmp_path / "report.json"
        proc = _run("check", "--area", "PAR", "--subject", "reference", "--report", str(report),
                    fakes=_fakes(tmp_path, FAKE_MPMATH_IN_WORKERS))
        out = proc.stdout + proc.stderr
        assert proc.returncode == 3, out
        assert "spawned worker" in out and "mpmath" in out, out
        assert "PAR-002 reference … ok" in out, out  # serial-only: ran first
        assert "PAR-001 reference" not in out and "PAR-008 reference" not in out, out
        assert not report.exists(), "a report was written although the doctor stopped the run"

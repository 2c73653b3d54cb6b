"""``python -m conformance doctor``: what works in this environment, what will not, and the fix.

Problems are found by trying, not by version numbers alone:

- the core libraries are imported together (torchrl pins a tensordict range);
- one *spawned* worker imports torch and tensordict and writes into a shared tensor the parent
  sent it -- the path every process-parallel env takes, and where the seed tutorial's docs
  build died (``sympy`` failing on ``mpmath.rational``);
- one dm_control suite task (the seed's humanoid) is loaded and stepped in a subprocess with a
  time limit -- mujoco 4.0.0 breaks dm_control 1.0.50 (``'MjModel' object has no attribute
  'flex_vertedge'``), and a broken native library must not crash the caller.

``check`` starts only the probes its selection needs (:class:`Probes`), judges the core imports
first and each probe before the first property that needs it, and stops with the doctor's
message when the environment cannot run it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from importlib import metadata

PACKAGES = ("torch", "tensordict", "torchrl", "dm_control", "mujoco", "hypothesis")
PROBE_TIMEOUT = 120.0
MUJOCO_GL_VALUES = ("egl", "osmesa", "glfw")
DMCONTROL_FIX = "pip install 'mujoco>=3.17,<4'"
_SKIP_HINT = ("run `python -m conformance doctor` for the full report; `check --skip-doctor` "
              "runs anyway")

_DMC_PROBE = """
import os
os.environ.setdefault("MUJOCO_GL", "egl")
import numpy as np
from dm_control import suite
env = suite.load("humanoid", "stand")
env.reset()
env.step(np.zeros(env.action_spec().shape))
print("ok")
"""


@dataclass
class Check:
    """One doctor line: ``ok`` or not, what was seen, and the fix when not ok."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    blocking: bool = True  # the main job cannot run when a blocking check fails


# -- versions -------------------------------------------------------------------------------


def version(dist: str) -> str:
    """Installed version of ``dist`` (tried as spelled, with dashes, as its nightly build), or
    "not installed"."""
    for name in (dist, dist.replace("_", "-"), dist + "-nightly"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def versions() -> dict[str, str]:
    """Installed versions of python and the packages the kit depends on."""
    return {"python": sys.version.split()[0], **{name: version(name) for name in PACKAGES}}


def _major(ver: str) -> int:
    try:
        return int(ver.split(".")[0])
    except ValueError:
        return -1


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return (errors or lines or [text])[-1]


# -- core imports (in process: `check` imports them next anyway) ---------------------------------


def _torchrl_pin() -> str:
    """torchrl's declared tensordict requirement, e.g. 'tensordict<0.15,>=0.14.3' ('' if none)."""
    try:
        requires = metadata.requires("torchrl") or []
    except metadata.PackageNotFoundError:
        return ""
    return next((r.split(";")[0].strip() for r in requires if r.startswith("tensordict")), "")


def diagnose_core(text: str) -> str:
    """The fix for torch / tensordict / torchrl failing to import together."""
    if "mpmath" in text or "sympy" in text:
        return _mpmath_fix()
    pin = _torchrl_pin()
    if pin:
        return (f"torchrl {version('torchrl')} expects {pin} (installed: tensordict "
                f"{version('tensordict')}): pip install '{pin}'")
    return ("install matching releases, e.g. pip install torch==2.13.0 torchrl==0.14.1 "
            "'tensordict>=0.14.3,<0.15'")


def check_core() -> Check:
    """torch, tensordict, tensordict.nn and torchrl.envs import together in this process."""
    start = time.monotonic()
    try:
        import tensordict
        import tensordict.nn  # noqa: F401
        import torch  # noqa: F401
        import torchrl.envs  # noqa: F401
    except BaseException as exc:  # an import can fail with anything, SystemExit included
        text = traceback.format_exc()
        return Check("core imports", False, f"{type(exc).__name__}: {exc}", diagnose_core(text))
    took = time.monotonic() - start
    return Check("core imports", True,
                 f"torch, tensordict, torchrl import together ({took:.1f} s)")


# -- one spawned worker ------------------------------------------------------------------------


def _spawn_worker(conn: multiprocessing.connection.Connection) -> None:
    """Runs in the spawned probe worker: import torch and tensordict (which pulls in sympy and
    mpmath), receive a shared tensor, write to it."""
    try:
        import tensordict  # noqa: F401
        import torch  # noqa: F401

        shared = conn.recv()  # unpickling a shared tensor: torch's rebuild path in the worker
        shared.add_(1)
        conn.send(("ok", ""))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    import gc

    gc.freeze()  # no collection of the imports' objects at exit (see conformance.__main__)


def _mpmath_fix() -> str:
    return (f"sympy {version('sympy')} and mpmath {version('mpmath')} do not work together "
            "(importing tensordict pulls in sympy, which imports mpmath; the seed's docs "
            "build died there, in a worker, on 'mpmath.rational'): "
            "pip install -U sympy, or pip install 'mpmath<1.4'")


def diagnose_spawn(text: str) -> str:
    """The fix for a spawned worker that failed, from its traceback."""
    if "mpmath" in text or "sympy" in text:
        return _mpmath_fix()
    if "No module named" in text:
        return ("a module the worker needs is not importable in a fresh interpreter (the parent "
                "may import it from a path workers do not see): install it into this "
                "environment, or run from the directory that holds it")
    return ("a dependency fails only in a spawned worker: read the worker traceback above and "
            "reinstall that package")


class _SpawnProbe:
    """Start one spawned worker now; :meth:`result` sends it a shared tensor and waits."""

    def __init__(self, timeout: float = PROBE_TIMEOUT) -> None:
        self.timeout = timeout
        self.start = time.monotonic()
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_spawn_worker, args=(child,), daemon=True,
                                name="conformance-doctor-probe")
        self.error = ""
        try:
            self.proc.start()
        except BaseException:
            self.error = traceback.format_exc()
        child.close()

    def result(self) -> Check:
        name = "spawned worker"
        if self.error:
            return Check(name, False, "cannot start: " + _last_line(self.error),
                         diagnose_spawn(self.error))
        shared_ok = False
        try:
            import torch

            shared = torch.zeros(3).share_memory_()
            try:  # pickled by torch's reduce_tensor, as a parallel env sends its buffers
                self.conn.send(shared)
            except OSError:  # the worker failed first and closed its end: read why below
                pass
            status, text = self._answer()
            shared_ok = bool((shared == 1).all())
        except BaseException:
            status, text = "error", "parent: " + traceback.format_exc()
        finally:
            self.stop()
        took = time.monotonic() - self.start
        if status != "ok":
            return Check(name, False, _last_line(text), diagnose_spawn(text))
        if not shared_ok:
            return Check(name, False, "the worker's write to a shared tensor did not reach the "
                         "parent", "check /dev/shm (size, permissions) and "
                         "torch.multiprocessing's sharing strategy")
        return Check(name, True, "a spawned worker imported torch and tensordict and wrote "
                                 f"into a tensor shared with it ({took:.1f} s)")

    def _answer(self) -> tuple[str, str]:
        deadline = self.start + self.timeout
        while time.monotonic() < deadline:
            if self.conn.poll(0.05):
                try:
                    return self.conn.recv()  # type: ignore[no-any-return]
                except EOFError:
                    break
            if not self.proc.is_alive() and not self.conn.poll(0):
                break
        if self.proc.is_alive():
            return "error", f"the worker sent nothing within {self.timeout:.0f} s"
        return "error", (f"the worker died before answering (exit code {self.proc.exitcode}); "
                         "its traceback is on stderr above")

    def stop(self) -> None:
        """Join the worker (it exits after answering), else terminate, then kill it."""
        from conformance.hygiene import stop_processes

        stop_processes([self.proc], grace=1.0, wait=5.0)
        self.conn.close()


# -- dm_control ----------------------------------------------------------------------------------


def diagnose_dmcontrol(text: str, mujoco_version: str, dm_control_version: str = "") -> str:
    """The fix for a dm_control suite task that failed to load, from its error text."""
    dmc = dm_control_version or version("dm_control")
    if "flex_vertedge" in text or _major(mujoco_version) >= 4:
        return (f"mujoco {mujoco_version} is incompatible with dm_control {dmc} (its suite "
                f"fails on 'flex_vertedge'): {DMCONTROL_FIX}")
    if "No module named" in text:
        return "pip install 'multitask-conformance[dmcontrol]' (dm_control + mujoco<4)"
    if "GL" in text or "display" in text.lower():
        return "export MUJOCO_GL=egl (or osmesa) for headless use"
    return "reinstall dm_control and mujoco: pip install 'multitask-conformance[dmcontrol]'"


class _DmcProbe:
    """Start loading the humanoid in a subprocess now; :meth:`result` waits for it."""

    def __init__(self, timeout: float = PROBE_TIMEOUT) -> None:
        self.vers = {name: version(name) for name in ("dm_control", "mujoco")}
        self.missing = [n for n, v in self.vers.items() if v == "not installed"]
        self.timeout = timeout
        self.proc: subprocess.Popen[str] | None = None
        if not self.missing:
            env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
            self.proc = subprocess.Popen([sys.executable, "-c", _DMC_PROBE], env=env, text=True,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def result(self) -> Check:
        name = "dm_control humanoid"
        where = f"dm_control {self.vers['dm_control']}, mujoco {self.vers['mujoco']}"
        if self.proc is None:
            return Check(name, False, f"{where}: SCN properties skip",
                         "pip install 'multitask-conformance[dmcontrol]'", blocking=False)
        try:
            out, _ = self.proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return Check(name, False, f"loading humanoid stand gave no answer within "
                         f"{self.timeout:.0f} s ({where})", diagnose_dmcontrol(
                             "", self.vers["mujoco"], self.vers["dm_control"]))
        if self.proc.returncode == 0:
            return Check(name, True, f"humanoid stand loads and steps ({where})")
        return Check(name, False, f"{_last_line(out)} ({where})",
                     diagnose_dmcontrol(out, self.vers["mujoco"], self.vers["dm_control"]))


# -- platform ------------------------------------------------------------------------------------


def check_start_methods() -> Check:
    """The multiprocessing start methods on offer (torchrl's ParallelEnv spawns its workers; the
    reference forks them from a forkserver, falling back to spawn)."""
    methods = multiprocessing.get_all_start_methods()
    default = multiprocessing.get_start_method(allow_none=True) or methods[0]
    ok = "spawn" in methods
    return Check("start methods", ok, f"{', '.join(methods)} (default {default}; torchrl "
                 "ParallelEnv uses spawn, the reference forkserver)",
                 "" if ok else "this platform cannot spawn workers: PAR/SCN parallel properties "
                 "will fail", blocking=False)


def check_mujoco_gl() -> Check:
    """MUJOCO_GL: unset means dm_control tries a display (GLFW warnings without one)."""
    value = os.environ.get("MUJOCO_GL")
    if value is None:
        return Check("MUJOCO_GL", False, "unset (the kit sets egl for its own processes)",
                     "export MUJOCO_GL=egl for quiet headless dm_control", blocking=False)
    if value not in MUJOCO_GL_VALUES:
        return Check("MUJOCO_GL", False, f"{value!r} is not one of {', '.join(MUJOCO_GL_VALUES)}",
                     "export MUJOCO_GL=egl", blocking=False)
    if value == "glfw" and not os.environ.get("DISPLAY"):
        return Check("MUJOCO_GL", False, "glfw without a DISPLAY", "export MUJOCO_GL=egl",
                     blocking=False)
    return Check("MUJOCO_GL", True, value)


# -- running the checks --------------------------------------------------------------------------


class Probes:
    """The checks, started together: the humanoid probe (a subprocess) first, then the core
    imports in this process, then the spawned worker; :meth:`checks` waits for the probes asked
    for, each once.  ``check`` judges the core imports at once and each probe only before the
    first property that needs it (:class:`conformance.plugin.DoctorGate`): the probes run in the
    background meanwhile.

    ``dmcontrol`` / ``parallel`` False leave out the humanoid probe / the spawned-worker probe.
    The worker starts only after the core imports: starting a process fixes multiprocessing's
    default start method, and torchrl's import must be the first to choose it (spawn), as it
    is in the ``check`` run that follows.
    """

    def __init__(self, dmcontrol: bool = True, parallel: bool = True) -> None:
        self._dmc = _DmcProbe() if dmcontrol else None
        self.core = check_core()
        # (no worker when the imports fail: it would fail the same way)
        self._spawn = _SpawnProbe() if parallel and self.core.ok else None
        self._results: dict[str, Check] = {}

    def checks(self, dmcontrol: bool = True, parallel: bool = True) -> list[Check]:
        """The doctor's lines in order; those of probes not started are left out."""
        found = [self.core]
        if parallel and self._spawn is not None:
            found.append(self._result("spawn", self._spawn))
        found += [check_start_methods(), check_mujoco_gl()]
        if dmcontrol and self._dmc is not None:
            found.append(self._result("dmc", self._dmc))
        return found

    def _result(self, name: str, probe: _SpawnProbe | _DmcProbe) -> Check:
        if name not in self._results:
            self._results[name] = probe.result()
        return self._results[name]

    def problem(self, dmcontrol: bool = False, parallel: bool = False) -> str:
        """The doctor's message when the checks asked for show the selected properties cannot
        run here (empty when they can); the core imports are always judged."""
        bad = [c for c in self.checks(dmcontrol, parallel) if not c.ok and c.blocking]
        if not bad:
            return ""
        lines = ["conformance doctor: this environment cannot run the selected properties:"]
        for c in bad:
            lines.append(f"  {c.name}: {c.detail}\n    fix: {c.fix}")
        lines.append(f"  ({_SKIP_HINT})")
        return "\n".join(lines)

    def close(self) -> None:
        """Stop the probes nobody waited for (the run needed neither, or stopped first)."""
        if self._spawn is not None and "spawn" not in self._results:
            self._spawn.stop()
        if self._dmc is not None and self._dmc.proc is not None and "dmc" not in self._results:
            self._dmc.proc.kill()
            self._dmc.proc.communicate()
        self._spawn = self._dmc = None


def run_checks(dmcontrol: bool = True, parallel: bool = True) -> list[Check]:
    """The checks, in order, each waited for (see :class:`Probes`)."""
    return Probes(dmcontrol, parallel).checks(dmcontrol, parallel)


def main(as_json: bool = False) -> int:
    """Print one screen; exit 1 when the main job (``check`` on every area) cannot run."""
    vers = versions()
    checks = run_checks()
    code = 1 if any(not c.ok and c.blocking for c in checks) else 0
    if as_json:
        print(json.dumps({"versions": vers, "checks": [asdict(c) for c in checks],
                          "ready": code == 0}, indent=2))
        return code
    print("conformance doctor")
    print("  " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = "ok  " if c.ok else ("FAIL" if c.blocking else "warn")
        print(f"  [{mark}] {c.name.ljust(width)}  {c.detail}")
        if not c.ok and c.fix:
            print(f"         {' ' * width}  fix: {c.fix}")
    if code:
        print("not ready: `python -m conformance check` cannot run here; apply the fixes above")
    else:
        print("ready: `python -m conformance check` can run here")
    return code

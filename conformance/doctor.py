"""``python -m conformance doctor``: what works in this environment, what will not, and the fix.

Problems are found by trying, not by version numbers alone: the core libraries are imported, one
spawned worker imports torch (the seed tutorial's docs build died there on ``mpmath.rational``),
and one dm_control suite task is loaded (mujoco 4.0.0 breaks dm_control 1.0.50 with
``'MjModel' object has no attribute 'flex_vertedge'``).  Each probe runs in a subprocess with a
time limit, so a broken environment cannot hang or crash the caller.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

PACKAGES = ("torch", "tensordict", "torchrl", "dm_control", "mujoco", "hypothesis")
PROBE_TIMEOUT = 120.0

_CORE_PROBE = "import torch, tensordict, torchrl.envs, tensordict.nn"
_SPAWN_PROBE = """
import multiprocessing as mp
def work(q):
    try:
        import torch, tensordict
        torch.zeros(1).share_memory_()
        q.put("ok")
    except BaseException:
        import traceback
        q.put(traceback.format_exc())
if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=work, args=(q,))
    p.start()
    try:
        out = q.get(timeout=90)
    except Exception:
        out = f"worker gave no answer (exit code {p.exitcode})"
    p.join(10)
    if p.is_alive():
        p.kill()
    print(out)
    raise SystemExit(0 if out == "ok" else 1)
"""
_DMC_PROBE = """
import os
os.environ.setdefault("MUJOCO_GL", "egl")
from dm_control import suite
env = suite.load("humanoid", "stand")
env.reset()
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


def versions() -> dict[str, str]:
    """Installed versions of python and the packages the kit depends on."""
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name.replace("_", "-"))
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version(name)
            except metadata.PackageNotFoundError:
                out[name] = "not installed"
    return out


def _run(code: str, timeout: float = PROBE_TIMEOUT) -> tuple[bool, str]:
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "MUJOCO_GL":
                                                    os.environ.get("MUJOCO_GL", "egl")})
    except subprocess.TimeoutExpired:
        return False, f"no answer within {timeout:.0f} s"
    text = (proc.stdout + proc.stderr).strip()
    return proc.returncode == 0, text


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def check_core() -> Check:
    """torch, tensordict and torchrl import together (torchrl pins a tensordict range)."""
    ok, text = _run(_CORE_PROBE)
    if ok:
        return Check("core imports", True, "torch, tensordict, torchrl import")
    return Check("core imports", False, _last_line(text),
                 "install matching releases, e.g. pip install torch==2.13.0 torchrl==0.14.1 "
                 "'tensordict>=0.14.3,<0.15' (torchrl pins its tensordict range)")


def diagnose_spawn(text: str) -> str:
    """The fix for a spawned worker that failed to import torch, from its traceback."""
    if "mpmath" in text:
        return ("the worker's import of torch pulled sympy, which failed on mpmath: install a "
                "matching pair, e.g. pip install 'mpmath<1.4' or upgrade sympy")
    return ("a dependency fails to import only in a spawned worker: read the worker traceback "
            "and reinstall that package")


def check_spawn() -> Check:
    """One spawned worker imports torch and tensordict and shares a tensor."""
    ok, text = _run(_SPAWN_PROBE)
    if ok:
        return Check("spawned worker", True, "a spawned worker imports torch and tensordict")
    return Check("spawned worker", False, _last_line(text), diagnose_spawn(text))


def diagnose_dmcontrol(text: str, mujoco_version: str) -> str:
    """The fix for a dm_control suite task that failed to load, from its error text."""
    if "flex_vertedge" in text or mujoco_version.startswith("4."):
        return (f"mujoco {mujoco_version} is incompatible with this dm_control (its suite "
                f"fails on 'flex_vertedge'): pip install 'mujoco>=3.17,<4'")
    if "No module named" in text:
        return "pip install 'multitask-conformance[dmcontrol]' (dm_control + mujoco<4)"
    if "GL" in text or "EGL" in text or "display" in text.lower():
        return "set MUJOCO_GL=egl (or osmesa) for headless use"
    return "reinstall dm_control and mujoco: pip install 'multitask-conformance[dmcontrol]'"


def check_dmcontrol() -> Check:
    """Load the humanoid stand suite task (the seed's env), the way the SCN area does."""
    vers = versions()
    if vers["dm_control"] == "not installed" or vers["mujoco"] == "not installed":
        return Check("dm_control humanoid", False,
                     f"dm_control {vers['dm_control']}, mujoco {vers['mujoco']}",
                     "pip install 'multitask-conformance[dmcontrol]' (SCN properties skip "
                     "without it)", blocking=False)
    ok, text = _run(_DMC_PROBE)
    if ok:
        return Check("dm_control humanoid", True,
                     f"humanoid stand loads (dm_control {vers['dm_control']}, "
                     f"mujoco {vers['mujoco']})")
    return Check("dm_control humanoid", False, _last_line(text),
                 diagnose_dmcontrol(text, vers["mujoco"]))


def check_start_methods() -> Check:
    """The multiprocessing start methods this platform offers (parallel envs need one)."""
    methods = multiprocessing.get_all_start_methods()
    return Check("start methods", "spawn" in methods, ", ".join(methods),
                 "" if "spawn" in methods else "this platform cannot spawn workers",
                 blocking=False)


def check_mujoco_gl() -> Check:
    """MUJOCO_GL: unset means dm_control tries a display (GLFW warnings without one)."""
    value = os.environ.get("MUJOCO_GL")
    return Check("MUJOCO_GL", value is not None, value or "unset",
                 "" if value else "export MUJOCO_GL=egl for quiet headless dm_control "
                 "(the kit sets it for its own processes)", blocking=False)


def run_checks(dmcontrol: bool = True) -> list[Check]:
    """All checks, in order; ``dmcontrol`` False leaves out the suite-task probe."""
    checks = [check_core(), check_spawn(), check_start_methods(), check_mujoco_gl()]
    if dmcontrol:
        checks.append(check_dmcontrol())
    return checks


def blocking_problem(dmcontrol: bool = False) -> str:
    """The doctor's message when the main job cannot run (empty when it can).

    ``check`` calls this first so a broken environment stops it with one clear message instead
    of forty failed properties with the same traceback.  ``dmcontrol`` makes a broken dm_control
    blocking (when the SCN area is selected).
    """
    checks = [check_core()]
    if checks[0].ok:
        checks.append(check_spawn())
    if dmcontrol:
        dmc = check_dmcontrol()
        dmc.blocking = dmc.blocking and dmc.detail != ""
        if not dmc.ok and "not installed" not in dmc.detail:
            dmc.blocking = True
        checks.append(dmc)
    bad = [c for c in checks if not c.ok and c.blocking]
    if not bad:
        return ""
    lines = ["conformance doctor: this environment cannot run the check:"]
    for c in bad:
        lines.append(f"  {c.name}: {c.detail}\n    fix: {c.fix}")
    return "\n".join(lines)


def main(as_json: bool = False) -> int:
    """Print one screen; exit non-zero when the main job cannot run."""
    vers = versions()
    checks = run_checks()
    if as_json:
        print(json.dumps({"versions": vers, "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        print("conformance doctor")
        print("  " + ", ".join(f"{k} {v}" for k, v in vers.items()))
        for c in checks:
            mark = "ok  " if c.ok else ("FAIL" if c.blocking else "warn")
            print(f"  [{mark}] {c.name}: {c.detail}")
            if not c.ok and c.fix:
                print(f"         fix: {c.fix}")
    return 1 if any(not c.ok and c.blocking for c in checks) else 0

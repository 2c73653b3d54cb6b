"""The kit never hangs: a subject that loops forever in each capability gets ``failed`` verdicts
("hung after N s" and the call it was in), its processes are stopped, and the run ends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conformance import profiles

PROPS = {"STK-001": "lazy_stack", "POL-001": "sequential", "PAR-002": "serial_env",
         "PAR-010": "parallel_env"}


def test_every_profile_has_limits() -> None:
    for prof in profiles.PROFILES.values():
        assert 0 < prof.limit <= prof.spawn_limit


def test_override_sets_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_PROPERTY_LIMIT", "7")
    assert profiles.property_limit() == profiles.property_limit(spawns=True) == 7.0


def test_a_subject_looping_in_each_capability_fails_and_the_run_ends(
        run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One subject per capability loops forever there: the property fails "hung after 4 s" naming
    the call, the child the parallel_env one started is stopped, the run ends; a subject that
    loops everywhere is stopped after two hung properties (the others fail unrun)."""
    import psutil

    pid_file = tmp_path / "pid"
    monkeypatch.setenv("CONFORMANCE_PROPERTY_LIMIT", "4")
    monkeypatch.setenv("PID_FILE", str(pid_file))
    names = [f"tests.subjects:loops_in_{cap}" for cap in PROPS.values()]
    start = time.monotonic()
    run = run_cli("check", *[a for n in [*names, "tests.subjects:loops_forever"]
                             for a in ("--subject", n)],
                  "--profile", "quick", "--skip-doctor", "--area", "STK", "--area", "POL",
                  "--area", "PAR", "--", "-k", "test_index_returns_originals or "
                  "test_action_in_every_served_element or test_serial_task_equals_task_alone "
                  "or test_close_is_idempotent", report=True, timeout=900)
    took = time.monotonic() - start
    assert run.code == 1, run.out[-3000:]
    assert run.report is not None, run.out[-3000:]
    for prop_id, capability in PROPS.items():
        cell = run.report["subjects"][f"loops_in_{capability}"]["properties"][prop_id]
        assert cell["outcome"] == "failed", (capability, cell)
        assert "hung after 4 s" in cell["message"], cell["message"][-800:]
        assert "_loop_forever" in cell["message"] or "_start_then_loop" in cell["message"]
    child = int(pid_file.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    cells = run.report["subjects"]["loops_forever"]["properties"]
    assert all(c["outcome"] == "failed" for c in cells.values()), cells
    hung = [i for i, c in cells.items() if "hung after 4 s" in c["message"]]
    unrun = [i for i, c in cells.items() if "not run: subject 'loops_forever' hung in" in
             c["message"]]
    assert len(hung) == 2 and len(unrun) == 2, cells
    assert took < 600, took  # (startup dominates: 6 hung properties x 4 s, 2 unrun)


def test_stop_pids_terminates_and_skips_gone_ones() -> None:
    import subprocess
    import sys

    from conformance import hygiene

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert not hygiene.is_finding_reproducer(proc.pid)
    hygiene.stop_pids([proc.pid, 2**22 + 12345], grace=2.0)
    assert proc.wait(timeout=5) is not None

"""The kit never hangs: a subject that loops forever in each capability gets ``failed`` verdicts
("hung after N s" and the call it was in), its processes are stopped, and the run ends."""

from __future__ import annotations

import os
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


def test_a_subject_looping_in_every_capability_fails_and_the_run_ends(
        run_cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    pid_file = tmp_path / "pid"
    monkeypatch.setenv("CONFORMANCE_PROPERTY_LIMIT", "4")
    monkeypatch.setenv("PID_FILE", str(pid_file))
    start = time.monotonic()
    run = run_cli("check", "--subject", "tests.subjects:loops_forever", "--profile", "quick",
                  "--skip-doctor", "--area", "STK", "--area", "POL", "--area", "PAR", "--",
                  "-k", "test_index_returns_originals or test_action_in_every_served_element or "
                  "test_serial_task_equals_task_alone or test_close_is_idempotent",
                  report=True, timeout=240)
    took = time.monotonic() - start
    assert run.code == 1, run.out[-3000:]
    assert run.report is not None, run.out[-3000:]
    cells = run.report["subjects"]["loops_forever"]["properties"]
    for prop_id, capability in PROPS.items():
        assert cells[prop_id]["outcome"] == "failed", (capability, cells[prop_id])
        assert "hung after 4 s" in cells[prop_id]["message"], cells[prop_id]["message"][-800:]
        assert "_loop_forever" in cells[prop_id]["message"]
    child = int(pid_file.read_text())
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    assert took < 200, took
    assert os.environ["CONFORMANCE_PROPERTY_LIMIT"] == "4"

"""A verdict a person can read, in seconds: the shrink budget, progress lines, the failure footer,
the JSON message, JUnit names, and a subject package in the current directory (issue 15)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import ROOT, _env

QUICK = ("--profile", "quick", "--skip-doctor")
COPIES = ("--subject", "tests.mutants.stacking:stack_copies")
ONE = ("--area", "STK", "--", "-k", "test_index_returns_originals")


def _budget_run(tmp_path: Path, examples: int, seconds: float, name: str) -> dict:
    """POL-005 on a policy that ignores strict mode, at quick (seed 7), with this shrink budget:
    its cell (a property with no fixed example: its failure comes from a generated one)."""
    report = tmp_path / f"{name}.json"
    code = textwrap.dedent(f"""
        import dataclasses, sys
        import pytest
        from conformance import profiles
        profiles.PROFILES["quick"] = dataclasses.replace(
            profiles.PROFILES["quick"], shrink_examples={examples}, shrink_seconds={seconds})
        sys.exit(pytest.main(["--pyargs", "conformance", "-q", "-p", "no:cacheprovider",
                              "--subject", "tests.mutants.policy:ignores_strict",
                              "--conformance-profile", "quick", "--hypothesis-seed", "7",
                              "--conformance-area", "POL", "-k", "POL-005",
                              "--report", {str(report)!r}]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(report.read_text())["subjects"]["ignores_strict"]["properties"]["POL-005"]


def test_report_marks_a_budget_cut_counterexample(tmp_path):
    """With no shrink budget at all, a failing property still fails with the kit's message and
    a reproducer, and its cell says the counterexample was cut by the budget."""
    cut = _budget_run(tmp_path, 0, 0.0, "cut")
    assert cut["outcome"] == "failed"
    assert cut["message"].startswith("AssertionError: the exception raised: observed")
    assert "Likely fix" in cut["message"]
    assert "def test_strict_missing_key_raises" in cut["reproducer"]
    assert cut.get("shrunk") == "budget"


def test_shrink_budget_keeps_the_verdict():
    """A property failing on lists summing to 100 or more: with a budget that its shrinking
    fits in (a small case), its failure and example are the same as without a budget; with
    none, it stops at once and raises its last failure (not minimal), marked ``budget``."""
    code = textwrap.dedent("""
        import dataclasses
        from hypothesis import strategies as st
        from conformance import profiles, record
        from conformance.properties._core import prop

        profiles.activate("quick", seed=3)

        @prop("STK-001", xs=st.lists(st.integers(0, 1000), min_size=1, max_size=40))
        def body(subject, xs):
            assert sum(xs) < 100, f"sum: observed {sum(xs)}, expected < 100"

        for n in (0, 200, 10**9):
            profiles.PROFILES["quick"] = dataclasses.replace(
                profiles.PROFILES["quick"], shrink_examples=n, shrink_seconds=1e9)
            record.begin("STK-001")
            try:
                body(subject=None)
            except AssertionError:
                call = record.current("STK-001")
                print(n, call.shrunk or "full", sum(call.example.inputs["xs"]),
                      call.example.inputs["xs"])
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    lines = dict(line.split(" ", 1) for line in proc.stdout.split("\n") if line)
    assert lines["0"].startswith("budget "), proc.stdout + proc.stderr[-2000:]
    assert int(lines["0"].split()[1]) >= 100
    assert lines["200"] == lines[str(10**9)] == "full 100 [100]", proc.stdout


def test_check_says_what_runs_and_what_fails(run_cli, tmp_path):
    """``check``: the subjects, profile and seed first; a progress line per property with a
    count (plain lines, no carriage return, off a terminal); per failure its ID, statement, the
    kit's message and where its reproducer is (never "pass --report" when it was passed); the
    JSON message is the kit's line, the traceback apart; JUnit names carry the property ID."""
    junit = tmp_path / "junit.xml"
    run = run_cli("check", *COPIES, *QUICK, "--junitxml", str(junit), *ONE, report=True)
    assert run.code == 1, run.out[-3000:]
    first = run.out.lstrip().splitlines()[0]
    assert first.startswith("conformance check: subjects tests.mutants.stacking:stack_copies; "
                            "profile quick; areas STK; hypothesis seed "), first
    assert "\r" not in run.out
    assert "[1/1] STK-001 stack_copies … FAILED" in run.out, run.out[-3000:]
    assert "FAILED STK-001 [stack_copies]: Indexing a lazy stack" in run.out
    assert f"reproducer: in {run.path}" in run.out
    assert "--report FILE.json" not in run.out
    assert "Failing test case" not in run.out  # (pytest's tracebacks: -- --tb=short)
    cell = run.report["subjects"]["stack_copies"]["properties"]["STK-001"]
    assert cell["message"].startswith("AssertionError: stack[("), cell["message"]
    assert ": observed " in cell["message"], cell["message"]
    assert "Likely fix" in cell["message"] and "traceback" in cell
    names = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert names and all("STK-001" in name for name in names), names


def test_a_hung_task_run_in_the_calling_thread_fails_at_once(run_cli):
    """PAR-013 on a ``parallel_env`` that runs its tasks in the calling thread (no worker, no
    deadline keyword): the hung step cannot end within the 45 s the property allows, and the
    property says so as soon as it sees the hung task's sleep on the calling thread's stack."""
    run = run_cli("check", "--subject", "tests.mutants.parallel:stale_on_error", *QUICK,
                  "--area", "PAR", "--", "-k", "PAR-013", report=True)
    assert run.code == 1, run.out[-3000:]
    cell = run.report["subjects"]["stale_on_error"]["properties"]["PAR-013"]
    assert cell["outcome"] == "failed"
    message = cell["message"]
    assert "the hung task's sleep (600 s) runs in the calling thread" in message, message
    assert "Likely fix: run each task in a worker process" in message, message


def _package(tmp_path: Path, deviations: str) -> Path:
    """A package ``mylib`` in ``tmp_path/work`` (not installed): a copying lazy stack."""
    work = tmp_path / "work"
    (work / "mylib").mkdir(parents=True, exist_ok=True)
    (work / "mylib" / "__init__.py").write_text("")
    (work / "mylib" / "conformance.py").write_text(textwrap.dedent(f"""
        from conformance import Subject

        def _copying(tds, dim=0):
            from tensordict import lazy_stack
            return lazy_stack([td.clone() for td in tds], dim)

        def subject():
            return Subject("mylib", lazy_stack=_copying, deviations=({deviations!r},))
    """))
    (work / "mylib" / "deviations.toml").write_text("")
    return work


def _pytest_script() -> list[str]:
    script = Path(sys.executable).with_name("pytest")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pytest"]


def test_pytest_pyargs_finds_a_package_in_the_current_directory(tmp_path):
    """README's ``pytest --pyargs conformance --subject mylib.conformance:subject`` works in
    the folder of a package that is not installed; the subject's deviations file is read next to
    its module, whatever the current directory; its reproducer runs from anywhere."""
    work = _package(tmp_path, "deviations.toml")
    report = tmp_path / "report.json"
    cmd = [*_pytest_script(), "--pyargs", "conformance", "--subject", "mylib.conformance:subject",
           "--conformance-profile", "quick", "--conformance-area", "STK", "-p",
           "no:cacheprovider", "-k", "test_index_returns_originals", "--report", str(report)]
    proc = subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    cell = json.loads(report.read_text())["subjects"]["mylib"]["properties"]["STK-001"]
    assert cell["outcome"] == "failed"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "repro.py").write_text(cell["reproducer"])
    repro = subprocess.run([sys.executable, "repro.py"], cwd=elsewhere, env=_env(),
                           capture_output=True, text=True, timeout=300)
    assert repro.returncode != 0
    assert "AssertionError" in repro.stderr and "ModuleNotFoundError" not in repro.stderr, \
        repro.stderr[-2000:]
    shutil.rmtree(work / "mylib" / "__pycache__", ignore_errors=True)


def test_missing_subject_deviations_file_says_where_it_looked(tmp_path):
    """A subject's deviations path is read relative to its module; a missing file's message
    names where it looked."""
    work = _package(tmp_path, "missing.toml")
    cmd = [*_pytest_script(), "--pyargs", "conformance", "--subject", "mylib.conformance:subject",
           "--conformance-profile", "quick", "-p", "no:cacheprovider"]
    proc = subprocess.run(cmd, cwd=work, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode not in (0, 1)
    assert str((work / "mylib" / "missing.toml").resolve()) in proc.stdout + proc.stderr, \
        proc.stdout[-2000:] + proc.stderr[-2000:]

"""Arguments before work: every bad CLI or plugin argument ends the run with a one-line message
naming the value, the usage exit code (2) and no traceback, before the doctor runs and before
torch is imported (so in well under 2 s)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance import arguments
from conformance.cli import _plugin_args
from tests.conftest import ROOT, _env

BAD = {
    "seed": (["--hypothesis-seed", "notanumber"], "--hypothesis-seed 'notanumber'"),
    "negative seed": (["--hypothesis-seed", "-3"], "not a non-negative integer"),
    "empty subject": (["--subject", ""], "--subject '': cannot resolve subject ''"),
    "unknown subject": (["--subject", "nosuch"], "no built-in subject or entry point"),
    "subject form": (["--subject", "a b:c"], "expected the form 'module:attribute'"),
    "missing module": (["--subject", "no.such:thing"], "cannot resolve subject 'no.such:thing'"),
    "profile": (["--profile", "fast"], "invalid choice: 'fast'"),
    "area": (["--area", "XYZ"], "unknown area(s) ['XYZ']"),
    "deviations": (["--deviations", "/no/such/file.toml"], "--deviations '/no/such/file.toml': "
                   "no such file"),
    "report": (["--report", "/dev/null/r.json"], "is a file, so the report's folder cannot"),
    "junitxml": (["--junitxml", "/dev/null/j.xml"], "is a file, so the report's folder cannot"),
    "processes": (["-n", "zero"], "-n 'zero'"),
}

# runs the CLI in-process and says whether torch was imported by the time it returned
_PROBE = ("import sys\nfrom conformance import cli\ncode = cli.main(sys.argv[1:])\n"
          "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')\nsys.exit(code)\n")


def _check(args: list[str], **env: str) -> tuple[int, str, str, float]:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", _PROBE, "check", *args], cwd=ROOT,
                          env={**_env(), **env}, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_check_argument_is_a_usage_error_before_any_work(case: str) -> None:
    args, expected = BAD[case]
    code, out, err, secs = _check(args)
    assert code == arguments.USAGE, (out, err)
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert "Traceback" not in err
    if case != "profile":  # (argparse exits before the probe can print)
        assert "NO-TORCH" in out, out
    assert secs < 2.0 or case == "deviations", secs


def test_the_acceptance_three_exit_fast_as_a_user_runs_them() -> None:
    for args in (["--hypothesis-seed", "notanumber"], ["--subject", ""],
                 ["--deviations", "missing.toml"]):
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "conformance", "check", *args], cwd=ROOT,
                              env=_env(), capture_output=True, text=True, timeout=60)
        assert proc.returncode == arguments.USAGE, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert time.monotonic() - start < 2.0


def test_bad_property_limit_is_a_usage_error() -> None:
    code, _, err, _ = _check(["--skip-doctor"], CONFORMANCE_PROPERTY_LIMIT="soon")
    assert code == arguments.USAGE and "CONFORMANCE_PROPERTY_LIMIT='soon'" in err, err


def test_malformed_deviations_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[[finding]\n")
    code, _, err, _ = _check(["--deviations", str(path)])
    assert code == arguments.USAGE and "not valid TOML" in err, err


def test_findings_command_checks_its_arguments() -> None:
    proc = subprocess.run([sys.executable, "-m", "conformance", "findings", "--subject", ""],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == arguments.USAGE and "cannot resolve subject ''" in proc.stderr


@pytest.mark.parametrize("args, expected", [
    (["--hypothesis-seed", "notanumber"], "--hypothesis-seed 'notanumber'"),
    (["--subject", ""], "cannot resolve subject ''"),
    (["--deviations", "/no/such/file.toml"], "no such file"),
    (["--report", "/dev/null/r.json"], "cannot be made there"),
    (["--conformance-area", "XYZ"], "unknown area(s)"),
], ids=["seed", "subject", "deviations", "report", "area"])
def test_bad_plugin_argument_is_a_usage_error(args: list[str], expected: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", *_plugin_args(),
                           "--pyargs", "conformance", "-q", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's own usage-error code
    assert expected in proc.stderr, proc.stderr
    assert "INTERNALERROR" not in proc.stdout + proc.stderr

"""Black-box tests of ``python -m conformance`` and ``pytest --pyargs conformance``: subject
resolution, capability skips, deviations, the JSON report, exit codes, xdist; and the plugin's
inertness in a pytest session that does not ask for the kit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance import catalogue, profiles

pytest_plugins = ["pytester"]

QUICK = ("--profile", "quick", "--skip-doctor")
STACK_ONLY = ("--subject", "tests.subjects:stack_only")
COPIES = ("--subject", "tests.mutants.stacking:stack_copies")


def _findings(tmp_path: Path, *entries: dict[str, str]) -> str:
    """A findings file of ``[[finding]]`` tables (``ids`` given as one ID)."""
    path = tmp_path / "findings.toml"
    path.write_text("".join(
        "[[finding]]\n" + "".join(f"{k} = {json.dumps(v) if k != 'ids' else json.dumps([v])}\n"
                                  for k, v in entry.items()) + "\n" for entry in entries))
    return str(path)


COPIES_FINDING = {"name": "copies", "subject": "stack_copies", "ids": "STK-001",
                  "signature": r"stack\[.+\]: observed 'a different object",
                  "reason": "copies by design"}


class TestList:
    def test_json_lists_every_area(self, run_cli):
        """`list --json` prints valid JSON with properties in each core area."""
        run = run_cli("list", "--json")
        assert run.code == 0, run.out
        data = json.loads(run.out)
        assert {d["area"] for d in data} >= {"STK", "EXC", "SPEC", "PAR", "POL"}
        assert [d["id"] for d in data] == [p.id for p in catalogue.PROPERTIES]

    def test_markdown_is_the_catalogue_page_table(self, run_cli):
        """`list --markdown` prints the table docs/catalogue.md holds."""
        from tests import readme

        run = run_cli("list", "--markdown")
        assert run.out.strip() == catalogue.markdown_table()
        assert run.out.strip() in readme.CATALOGUE_PAGE.read_text(), (
            "docs/catalogue.md is stale: python -m tests.readme")


class TestCheck:
    def test_unknown_subject_lists_available(self, run_cli):
        """A subject that cannot resolve exits non-zero and lists the available subjects."""
        run = run_cli("check", "--subject", "no.such:thing", *QUICK)
        assert run.code != 0
        assert "cannot resolve subject 'no.such:thing'" in run.out
        assert "Available subjects: reference, torchrl" in run.out

    def test_subject_options_unknown_malformed_and_valid(self, run_cli):
        """An unknown option is a usage error listing the accepted ones, a malformed value one
        naming the value; valid options configure the subject, whose name in the report carries
        them, apart from the default configuration, and the reproducer rebuilds it."""
        base = "tests.subjects:configurable_stack"
        run = run_cli("check", "--subject", f"{base}[copy=True]", *QUICK)
        assert run.code != 0
        assert "unknown option(s) 'copy'" in run.out
        assert "accepts (with their defaults): copies=False" in run.out
        run = run_cli("check", "--subject", f"{base}[copies=maybe]", *QUICK)
        assert run.code != 0
        assert "the value 'maybe' of option 'copies' is not a Python literal" in run.out
        run = run_cli("check", "--subject", f"{base}[copies]", *QUICK)
        assert run.code != 0 and "hold something other than keyword=value pairs" in run.out
        run = run_cli("check", "--subject", base, "--subject", f"{base}[copies=true]",
                      "--area", "STK", *QUICK, "--", "-k", "index_returns_originals", report=True)
        assert run.code == 1, run.out[-3000:]
        subjects = run.report["subjects"]
        assert set(subjects) == {"configurable_stack", "configurable_stack[copies=True]"}
        assert subjects["configurable_stack"]["properties"]["STK-001"]["outcome"] == "passed"
        cell = subjects["configurable_stack[copies=True]"]["properties"]["STK-001"]
        assert cell["outcome"] == "failed"
        assert "subject(**{'copies': True})" in cell["reproducer"]

    def test_unknown_area_is_a_usage_error(self, run_cli):
        """An unknown --area exits non-zero naming the valid areas."""
        run = run_cli("check", "--area", "XYZ", *QUICK)
        assert run.code != 0
        assert "unknown area(s) ['XYZ']" in run.out

    def test_passing_subject_exits_zero_with_schema(self, run_cli):
        """A conforming subject exits 0 and its report follows the documented schema."""
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, report=True)
        assert run.code == 0, run.out[-3000:]
        report = run.report
        assert set(report) == {"subjects", "findings", "versions", "profile", "hypothesis_seed"}
        assert report["profile"] == "quick"
        assert isinstance(report["hypothesis_seed"], int)
        assert {"torch", "tensordict", "torchrl"} <= set(report["versions"])
        props = report["subjects"]["stack_only"]["properties"]
        stk = [p.id for p in catalogue.select(["STK"])]
        assert sorted(props) == stk
        for cell in props.values():
            assert cell["outcome"] in ("passed", "failed", "deviation", "xpassed", "skipped")
            assert isinstance(cell["message"], str)
        assert all(c["outcome"] == "passed" for c in props.values())
        assert run.out.strip().splitlines()[-1].startswith("conformance: ")

    def test_missing_capability_skips_with_reason(self, run_cli):
        """Properties needing a capability the subject lacks are skipped, naming it."""
        run = run_cli("check", *STACK_ONLY, "--area", "POL", "--area", "PAR", *QUICK, report=True)
        assert run.code == 0, run.out[-3000:]
        for pid, cell in run.report["subjects"]["stack_only"]["properties"].items():
            assert cell["outcome"] == "skipped", pid
            assert "lacks capability 'sequential'" in cell["message"] or \
                   "lacks capability 'serial_env'" in cell["message"] or \
                   "lacks capability 'parallel_env'" in cell["message"], cell
        assert "skipped (" in run.out

    def test_failure_reports_id_statement_and_reproducer(self, run_cli, tmp_path):
        """A failing property exits 1; the output names ID, statement and subject, and the
        report's reproducer runs standalone and fails the same way."""
        run = run_cli("check", *COPIES, "--area", "STK", *QUICK, report=True)
        assert run.code == 1
        assert "FAILED STK-001 [stack_copies]: " + catalogue.get("STK-001").statement in run.out
        cell = run.report["subjects"]["stack_copies"]["properties"]["STK-001"]
        assert cell["outcome"] == "failed"
        assert "observed" in cell["message"] and "expected" in cell["message"]
        script = tmp_path / "repro.py"
        script.write_text(cell["reproducer"])
        root = Path(__file__).parents[1]  # the mutant subject must be importable, as a user's is
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              cwd=root, env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)
        assert proc.returncode != 0
        assert "AssertionError: stack[" in proc.stderr

    def test_junitxml_is_written(self, run_cli, tmp_path):
        """--junitxml writes pytest's JUnit XML."""
        xml = tmp_path / "junit.xml"
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, "--junitxml", str(xml))
        assert run.code == 0, run.out[-2000:]
        assert "<testsuite" in xml.read_text()


class TestFindings:
    def test_matched_failure_is_a_deviation(self, run_cli, tmp_path):
        """A failure matching a declared finding's signature is a deviation, exits 0 when
        nothing else fails, and the report says how far the property explored beyond it."""
        dev = _findings(tmp_path, COPIES_FINDING)
        run = run_cli("check", *COPIES, "--area", "STK", *QUICK, "--deviations", dev,
                      "--", "-k", "test_index_returns_originals", report=True)
        assert run.code == 0, run.out[-2000:]
        cell = run.report["subjects"]["stack_copies"]["properties"]["STK-001"]
        assert cell["outcome"] == "deviation"
        assert cell["findings"]["copies"] >= 1
        assert "only declared findings: copies" in cell["message"]
        assert "deviation STK-001 [stack_copies]: only declared findings: copies" in run.out
        (finding,) = run.report["findings"]
        assert finding["declared_for"] == {"stack_copies": ["STK-001"]}
        assert finding["reproducer"] == "none"

    def test_failure_outside_the_signature_still_fails(self, run_cli, tmp_path):
        """A finding whose signature does not match the failure hides nothing: it fails."""
        dev = _findings(tmp_path, {**COPIES_FINDING, "signature": "some other defect"})
        run = run_cli("check", *COPIES, "--area", "STK", *QUICK, "--deviations", dev,
                      "--", "-k", "test_index_returns_originals", report=True)
        assert run.code == 1
        assert run.outcome("stack_copies", "STK-001") == "failed"
        assert run.report["subjects"]["stack_copies"]["properties"]["STK-001"]["reproducer"]

    def test_finding_whose_reproducer_passes_xpasses(self, run_cli, tmp_path):
        """Strict without luck: a finding whose reproducer runs without failing makes its
        properties 'xpassed' and the run exits 1, whatever the examples drew."""
        dev = _findings(tmp_path, {"name": "gone", "subject": "stack_only", "ids": "STK-001",
                                   "signature": "never", "reason": "thought broken",
                                   "reproducer": "print('fine')"})
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, "--prove", "all",
                      "--deviations", dev, report=True)
        assert run.code == 1
        assert run.outcome("stack_only", "STK-001") == "xpassed"
        assert "fixed upstream? Remove the finding, or bound it with when" in \
            run.report["subjects"]["stack_only"]["properties"]["STK-001"]["message"]
        assert run.report["findings"][0]["reproducer"] == "fixed"

    def test_quick_proves_only_the_findings_an_example_hit(self, run_cli, tmp_path):
        """At quick a declared finding's reproducer runs once an example hits it: a finding no
        example reached is reported "not run" (ci, thorough and --prove all run every one)."""
        dev = _findings(tmp_path, {**COPIES_FINDING, "reproducer": "raise SystemExit(1)"},
                        {"name": "unreached", "subject": "stack_copies", "ids": "STK-002",
                         "signature": "never matches", "reason": "declared, never hit",
                         "reproducer": "print('fine')"})
        run = run_cli("check", *COPIES, "--area", "STK", *QUICK, "--deviations", dev, "--",
                      "-k", "test_index_returns_originals or test_unbind_returns_originals",
                      report=True)
        proven = {f["name"]: f["reproducer"] for f in run.report["findings"]}
        assert run.outcome("stack_copies", "STK-001") == "deviation", run.out[-2000:]
        assert proven == {"copies": "differs", "unreached": "not run"}, run.report["findings"]

    def test_findings_verify_exits_1_when_a_reproducer_no_longer_fails(self, run_cli, tmp_path):
        """`findings --verify` is a CI gate on a findings file: 0 while every active finding's
        reproducer fails with its signature, 1 naming the one that does not."""
        held = {**COPIES_FINDING, "reproducer": "raise SystemExit(\"stack[0]: observed 'a "
                                                "different object'\")"}
        gone = {"name": "gone", "subject": "stack_copies", "ids": "STK-002",
                "signature": "never", "reason": "thought broken", "reproducer": "print('fine')"}
        args = ("findings", *COPIES, "--verify", "--deviations")
        ok = run_cli(*args, _findings(tmp_path, held))
        assert ok.code == 0, ok.out[-2000:]
        assert ("copies  [subject stack_copies; STK-001; holds on these releases; reproducer "
                "holds]") in ok.out
        (tmp_path / "again").mkdir()
        bad = run_cli(*args, _findings(tmp_path / "again", held, gone))
        assert bad.code == 1, bad.out[-2000:]
        assert "1 finding(s) active on these releases whose reproducer does not fail with " \
               "their signature: gone (fixed" in bad.out

    def test_finding_for_other_releases_is_inactive(self, run_cli, tmp_path):
        """A finding whose ``when`` excludes the installed releases is not declared at all."""
        dev = _findings(tmp_path, {**COPIES_FINDING, "when": "tensordict<0.0.1"})
        run = run_cli("check", *COPIES, "--area", "STK", *QUICK, "--deviations", dev,
                      "--", "-k", "test_index_returns_originals", report=True)
        assert run.code == 1, run.out[-2000:]
        assert run.outcome("stack_copies", "STK-001") == "failed"
        assert run.report["findings"] == []

    def test_malformed_file_is_a_usage_error(self, run_cli, tmp_path):
        """A finding without a signature stops the run naming file, line and the fix."""
        path = tmp_path / "bad.toml"
        path.write_text('[[finding]]\nname = "x"\nids = ["STK-001"]\nsubject = "x"\n'
                        'reason = "r"\n')
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, "--deviations", str(path))
        assert run.code not in (0, 1)
        assert f"{path}:1: finding 'x' has no signature" in run.out


class TestExampleBudget:
    def test_spawning_capability_gets_the_parallel_budget(self, run_cli, tmp_path, monkeypatch):
        """A subject whose serial_env ``spawns`` runs a serial_env property with the profile's
        process-parallel example count (1 in quick), not its in-process count (8)."""
        count = tmp_path / "count"
        monkeypatch.setenv("COUNT_FILE", str(count))
        run = run_cli("check", "--subject", "tests.subjects:counting_spawner", "--area", "SPEC",
                      *QUICK, "--", "-k", "test_batch_size_is_number_of_tasks")
        assert run.code == 0, run.out[-2000:]
        assert count.read_text().count("built") == profiles.PROFILES["quick"].parallel_examples


class TestPytestEntry:
    @pytest.mark.parametrize("xdist", [(), ("-n", "2")], ids=["serial", "xdist"])
    def test_pyargs_runs_the_properties(self, run_pytest, xdist):
        """`pytest --pyargs conformance` runs the same properties, with or without -n 2."""
        run = run_pytest("--pyargs", "conformance", *STACK_ONLY, "--conformance-area", "STK",
                         "--conformance-profile", "quick", *xdist)
        assert run.code == 0, run.out[-3000:]
        props = run.report["subjects"]["stack_only"]["properties"]
        assert sorted(props) == [p.id for p in catalogue.select(["STK"])]
        assert "conformance: subjects ['tests.subjects:stack_only']; profile quick" in run.out

    def test_pytest_summary_says_deviation(self, run_pytest, tmp_path):
        """Under plain pytest a declared deviation is counted as "deviation", the kit's word,
        not as passed or xfailed."""
        run = run_pytest("--pyargs", "conformance", *COPIES, "--conformance-area", "STK",
                         "--conformance-profile", "quick", "--deviations",
                         _findings(tmp_path, COPIES_FINDING), "-k", "test_index_returns_originals")
        assert run.code == 0, run.out[-3000:]
        summary = run.out.strip().splitlines()[-1]
        assert "1 deviation" in summary and "xfail" not in summary and "passed" not in summary, \
            summary

    def test_header_names_versions_profile_and_seed(self, run_pytest):
        """The pytest header prints subjects, library versions, the profile and the seed."""
        run = run_pytest("--pyargs", "conformance", *STACK_ONLY, "--conformance-area", "STK",
                         "--conformance-profile", "ci", "--co")
        assert "profile ci; hypothesis seed derandomized" in run.out
        for lib in ("torch", "tensordict", "torchrl", "mujoco", "dm_control"):
            assert f"{lib} " in run.out


# A session of unrelated hypothesis tests: each records what it saw (one JSON line per record).
UNRELATED_CONFTEST = """
import random

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    random.seed(0)  # before any other plugin's configure: what test_state draws is fixed
"""
UNRELATED_TESTS = """
import json
import os
import random

from hypothesis import given, seed, settings, strategies as st


def _record(name, value):
    with open(os.environ["DRAWN_FILE"], "a") as fh:
        fh.write(json.dumps([name, value]) + "\\n")


def test_state(request):
    plugins = request.config.pluginmanager.get_plugins()
    _record("plugin", any(getattr(p, "__name__", "") == "conformance.plugin" for p in plugins))
    _record("random", random.random())
    _record("MUJOCO_GL", os.environ.get("MUJOCO_GL"))
    default = settings.default
    _record("settings", [default.max_examples, default.derandomize, str(default.deadline),
                         str(default.phases), settings.get_current_profile_name()])


@seed(1234)
@settings(max_examples=5, database=None)
@given(st.integers())
def test_own_seed(x):
    _record("own_seed", x)


@settings(max_examples=5, database=None)
@given(st.integers())
def test_run_seed(x):
    _record("run_seed", x)
"""


class TestInertPlugin:
    """Installed, the plugin changes nothing in a session that gives no conformance option and
    collects no conformance property."""

    def _run(self, pytester, monkeypatch, *args: str) -> tuple[list[str], list[list]]:
        drawn = pytester.path / f"drawn-{len(list(pytester.path.glob('drawn-*')))}.jsonl"
        monkeypatch.setenv("DRAWN_FILE", str(drawn))
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        assert result.ret == 0, result.stdout.str()[-3000:]
        return result.outlines, [json.loads(line) for line in drawn.read_text().splitlines()]

    def test_unrelated_session_is_unchanged(self, pytester, monkeypatch):
        """No header line, no MUJOCO_GL, the same random-module state, hypothesis settings and
        drawn examples (a test's own @seed; the run's --hypothesis-seed) as without the plugin."""
        from conformance.cli import _plugin_args

        for name in ("CI", "MUJOCO_GL", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER",
                     "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            monkeypatch.delenv(name, raising=False)  # CI unset: the quick profile draws a seed
        pytester.makeconftest(UNRELATED_CONFTEST)
        pytester.makepyfile(test_unrelated=UNRELATED_TESTS)
        loaded = _plugin_args()  # [] where the installed entry point loads it
        blocked = [] if loaded else ["-p", "no:conformance"]
        for seed_args in (["--hypothesis-seed", "42"], []):
            out, with_plugin = self._run(pytester, monkeypatch, *loaded, *seed_args)
            _, without = self._run(pytester, monkeypatch, *blocked, *seed_args)
            assert ["plugin", True] in with_plugin and ["plugin", False] in without
            compared = {"random", "MUJOCO_GL", "settings", "own_seed"} | (
                {"run_seed"} if seed_args else set())  # (unseeded, the run draws at random)
            assert [r for r in with_plugin if r[0] in compared] == [
                r for r in without if r[0] in compared]
            assert ["MUJOCO_GL", None] in with_plugin
            assert not [line for line in out if line.startswith("conformance")]
        # asked for (an option given), the same session gets the header
        out, records = self._run(pytester, monkeypatch, *loaded, "--conformance-profile", "quick")
        assert any(line.startswith("conformance: subjects") for line in out)
        assert ["MUJOCO_GL", "egl"] in records

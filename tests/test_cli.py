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


def _deviations(tmp_path: Path, *entries: tuple[str, str, str]) -> str:
    path = tmp_path / "deviations.toml"
    path.write_text("".join(f'[[deviation]]\nid = "{i}"\nsubject = "{s}"\nreason = "{r}"\n\n'
                            for i, s, r in entries))
    return str(path)


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
        assert set(report) == {"subjects", "versions", "profile", "hypothesis_seed"}
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


class TestDeviations:
    def test_listed_failure_is_a_deviation(self, run_cli, tmp_path):
        """A failing property listed as a deviation is reported as such and exits 0."""
        dev = _deviations(tmp_path, ("STK-001", "stack_copies", "copies by design"))
        run = run_cli("check", *COPIES, "--area", "STK", *QUICK, "--deviations", dev,
                      report=True)
        assert run.outcome("stack_copies", "STK-001") == "deviation"
        others = run.report["subjects"]["stack_copies"]["properties"]
        failed = [k for k, v in others.items() if v["outcome"] == "failed"]
        assert run.code == (1 if failed else 0), run.out[-2000:]

    def test_listed_deviation_that_passes_fails_the_run(self, run_cli, tmp_path):
        """Strict: a deviation whose property passes is 'xpassed' and the run exits 1."""
        dev = _deviations(tmp_path, ("STK-001", "stack_only", "thought broken"))
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, "--deviations", dev,
                      report=True)
        assert run.code == 1
        assert run.outcome("stack_only", "STK-001") == "xpassed"
        assert "remove the entry" in \
            run.report["subjects"]["stack_only"]["properties"]["STK-001"]["message"]

    def test_unmatched_entry_warns(self, run_cli, tmp_path):
        """An entry naming a subject or property not in the run warns and does not fail."""
        dev = _deviations(tmp_path, ("STK-002", "nobody", "stale entry"))
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, "--deviations", dev)
        assert run.code == 0, run.out[-2000:]
        assert "deviation STK-002 for subject 'nobody' matches no property" in run.out

    def test_entry_for_other_releases_is_inactive(self, run_cli, tmp_path):
        """An entry whose ``when`` excludes the installed releases neither applies (the property
        passes, no xpass) nor warns as unmatched."""
        path = tmp_path / "deviations.toml"
        path.write_text('[[deviation]]\nid = "STK-001"\nsubject = "stack_only"\n'
                        'reason = "an old release"\nwhen = "tensordict<0.0.1"\n')
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, "--deviations", str(path),
                      report=True)
        assert run.code == 0, run.out[-2000:]
        assert run.outcome("stack_only", "STK-001") == "passed"
        assert "matches no property" not in run.out

    def test_malformed_file_is_a_usage_error(self, run_cli, tmp_path):
        """A malformed deviations file stops the run with a message naming file and line."""
        path = tmp_path / "bad.toml"
        path.write_text('[[deviation]]\nid = "STK-001"\nsubject = "x"\n')
        run = run_cli("check", *STACK_ONLY, "--area", "STK", *QUICK, "--deviations", str(path))
        assert run.code not in (0, 1)
        assert f"{path}:1: deviation entry 1 lacks reason" in run.out


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

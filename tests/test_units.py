"""Unit tests of the kit's pieces that need no subprocess: catalogue, subjects, findings,
reproducer rendering, profiles, and when the plugin acts."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest
import torch
from tensordict import LazyStackedTensorDict, TensorDict

from conformance import catalogue, profiles, repro
from conformance.findings import FindingsError, load
from conformance.subject import Subject, SubjectError, resolve


def _property_markers() -> dict[str, list[str]]:
    import conformance.properties as pkg

    found: dict[str, list[str]] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"conformance.properties.{info.name}")
        for name, obj in vars(module).items():
            for mark in getattr(obj, "pytestmark", []):
                if mark.name == "conformance":
                    found.setdefault(mark.args[0], []).append(f"{info.name}.{name}")
    return found


class TestCatalogue:
    def test_ids_are_unique_and_well_formed(self):
        """Every ID is AREA-NNN with a known area, and no ID repeats."""
        ids = [p.id for p in catalogue.PROPERTIES]
        assert len(ids) == len(set(ids))
        for pid in ids:
            assert re.fullmatch(r"(STK|EXC|SPEC|PAR|POL|SCN)-\d{3}", pid), pid

    def test_statements_are_one_sentence(self):
        """Each statement is one sentence ending with a full stop."""
        for p in catalogue.PROPERTIES:
            assert p.statement.endswith("."), p.id
            assert ". " not in p.statement.rstrip("."), p.id

    def test_every_area_has_properties(self):
        """Each of the six areas has at least one property; the core five have 30+ together."""
        areas = {p.area for p in catalogue.PROPERTIES}
        assert areas == set(catalogue.AREAS)
        core = [p for p in catalogue.PROPERTIES if p.area != "SCN"]
        assert len(core) >= 30

    def test_every_property_has_exactly_one_test(self):
        """Each catalogue ID is implemented by exactly one property test, and no test uses an
        ID outside the catalogue."""
        found = _property_markers()
        missing = [p.id for p in catalogue.PROPERTIES if p.id not in found]
        assert not missing, f"properties without a test: {missing}"
        extra = sorted(set(found) - set(catalogue.BY_ID))
        assert not extra, f"tests with unknown IDs: {extra}"
        dup = {k: v for k, v in found.items() if len(v) > 1}
        assert not dup, f"IDs implemented twice: {dup}"

    def test_unknown_area_is_refused(self):
        """Selecting an unknown area raises ValueError naming the valid areas."""
        with pytest.raises(ValueError, match="STK"):
            catalogue.select(["NOPE"])


class TestSubjectResolution:
    def test_builtins_resolve(self):
        """The built-in names resolve to subjects with all four capabilities."""
        for name in ("reference", "torchrl"):
            subj = resolve(name)
            assert subj.name == name
            assert subj.capabilities == list(catalogue.CAPABILITIES)

    def test_module_attribute_factory(self):
        """'module:attribute' naming a factory resolves to the subject it returns."""
        subj = resolve("tests.subjects:stack_only")
        assert subj.capabilities == ["lazy_stack"]
        assert subj.missing(["lazy_stack", "serial_env"]) == ["serial_env"]

    @pytest.mark.parametrize(("name", "needle"), [
        ("no_such_subject", "no built-in subject or entry point"),
        ("no.such.module:thing", "importing module 'no.such.module' failed"),
        ("tests.subjects:missing", "has no attribute 'missing'"),
        ("tests.subjects:NOT_A_SUBJECT", "not a conformance.Subject"),
        ("tests.subjects:broken_factory", "RuntimeError: this factory is broken on purpose"),
    ])
    def test_bad_names_list_available_subjects(self, name, needle):
        """A name that cannot resolve raises SubjectError naming the problem and the choices."""
        with pytest.raises(SubjectError) as info:
            resolve(name)
        assert needle in str(info.value)
        assert "Available subjects: reference, torchrl" in str(info.value)

    @pytest.mark.parametrize(("name", "needle"), [
        ("torchrl[use_bufers=False]", "unknown option(s) 'use_bufers'; the subject accepts (with "
                                      "their defaults): use_buffers=None, mp_start_method='spawn'"),
        ("torchrl[use_buffers=fals]", "the value 'fals' of option 'use_buffers' is not a Python "
                                      "literal"),
        ("torchrl[mp_start_method='thread']", "option mp_start_method='thread' is not one of "
                                              "'spawn', 'fork', 'forkserver'"),
        ("torchrl-async-threading[stack=__import__('os')]", "is not a Python literal"),
        ("torchrl[use_buffers=False", "unbalanced or misplaced brackets"),
        ("tests.subjects:stack_only[x=1]", "unknown option(s) 'x'; the subject takes no options"),
    ])
    def test_bad_options_are_usage_errors(self, name, needle):
        """An unknown option lists the accepted ones; a value that is no literal is never
        evaluated; a value the factory refuses names the choices."""
        with pytest.raises(SubjectError) as info:
            resolve(name)
        assert needle in str(info.value)

    def test_options_configure_and_name_the_subject(self):
        """Options reach the factory; the name carries those given, ``options`` the defaults
        too; ``true``/``none`` read in any case."""
        from conformance.subject import split_name

        subj = resolve("torchrl[use_buffers=FALSE, share_individual_td=True]")
        assert subj.name == "torchrl[use_buffers=False, share_individual_td=True]"
        assert subj.options == {"use_buffers": False, "mp_start_method": "spawn",
                                "share_individual_td": True}
        assert "use_buffers=False" in subj.snippet["parallel_env"]
        assert "share_individual_td=True" in subj.snippet["serial_env"]
        assert resolve("torchrl").options["use_buffers"] is None
        assert split_name("m:f[a=None, b=(1, 'x,y')]") == ("m:f", {"a": None, "b": (1, "x,y")})

    def test_subject_without_capabilities_is_refused(self):
        """A Subject that provides nothing is a usage error, not a run of skips."""
        from conformance.subject import _coerce

        with pytest.raises(SubjectError, match="provides none of the capabilities"):
            _coerce("empty", Subject("empty"))

    def test_deadline_keyword_must_name_a_parallel_env_keyword(self):
        """A deadline keyword that is not an identifier, or one without a parallel_env, is a
        usage error naming it and the fix."""
        from conformance.subject import _coerce

        for bad in (Subject("s", parallel_env=list, deadline_keyword="time out"),
                    Subject("s", serial_env=list, deadline_keyword="timeout")):
            with pytest.raises(SubjectError, match=r"deadline_keyword .* must name a keyword"):
                _coerce("s", bad)

    def test_hang_properties_bound_by_the_declared_deadline(self):
        """PAR-013 / PAR-014 pass their deadline through the subject's deadline keyword and
        allow that plus a grace (start-up too for a hung construction); without one, 90 s."""
        from conformance.properties.test_workers import (
            HANG_BOUND,
            HANG_DEADLINE,
            HANG_GRACE,
            START_ALLOWANCE,
            hang_bound,
            with_deadline,
        )

        assert with_deadline(Subject("s", parallel_env=list), HANG_DEADLINE) == ({}, "")
        assert hang_bound({}, construction=False) == hang_bound({}, construction=True) == HANG_BOUND
        kwargs, shown = with_deadline(Subject("s", parallel_env=list, deadline_keyword="timeout"),
                                      HANG_DEADLINE)
        assert kwargs == {"timeout": HANG_DEADLINE} and shown == ", timeout=2"
        assert hang_bound(kwargs, construction=False) == HANG_DEADLINE + HANG_GRACE < HANG_BOUND
        assert hang_bound(kwargs, construction=True) == (HANG_DEADLINE + HANG_GRACE
                                                         + START_ALLOWANCE)


class TestFindingsWhen:
    def test_when_selects_the_releases_a_finding_holds_on(self, tmp_path):
        """``when`` holds when every requirement matches the installed version; a package that
        is not installed matches nothing."""
        from importlib.metadata import version

        td = version("tensordict")
        entry = ('[[finding]]\nname = "n"\nids = ["STK-001"]\nsubject = "x"\nreason = "r"\n'
                 'signature = "s"\nwhen = "{}"\n')
        cases = {f"tensordict=={td}": True, f"tensordict=={td}; torch>=1": True,
                 f"tensordict!={td}": False, f"tensordict=={td}; torch<1": False,
                 "no-such-package-xyz>=0": False, "": True}
        path = tmp_path / "f.toml"
        for when, holds in cases.items():
            path.write_text(entry.format(when))
            (f,) = load(path)
            assert f.applies() is holds, when

    def test_when_must_be_specifiers(self, tmp_path):
        """A ``when`` that is not name + specifiers is a FindingsError naming the part."""
        path = tmp_path / "f.toml"
        path.write_text('[[finding]]\nname = "n"\nids = ["STK-001"]\nsubject = "x"\n'
                        'reason = "r"\nsignature = "s"\nwhen = "<0.14"\n')
        with pytest.raises(FindingsError, match=r"'<0\.14' is not a requirement"):
            load(path)


class TestFindingHits:
    def test_stateful_hits_stop_at_the_cap(self):
        """A stateful property's step that hits a declared finding is rejected (known_failure is
        True) until the call's hits reach its hit_cap: that hit ends the property
        (FindingsOnly), as for any other property, instead of running sequences without end."""
        from conformance import record
        from conformance.findings import Finding
        from conformance.properties._core import FindingsOnly, known_failure

        finding = Finding("dense", ("PAR-011",), "keys .* are exclusive", "r", component="c.d")
        call = record.begin("PAR-011", (finding,))
        call.hit_cap = 2
        try:
            assert not known_failure("PAR-011", RuntimeError("another defect"))
            assert known_failure("PAR-011", RuntimeError("keys to stack are exclusive"))
            with pytest.raises(FindingsOnly):
                known_failure("PAR-011", RuntimeError("keys to stack are exclusive"))
            assert call.hits == {"dense": 2}
        finally:
            record.begin("PAR-011")


class TestReproducerRendering:
    def test_tensordict_round_trips(self):
        """to_code of a nested TensorDict evaluates back to equal values."""
        td = TensorDict({"a": torch.arange(3.0), ("n", "b"): torch.tensor([True, False]),
                         "z": torch.zeros(0, 2, dtype=torch.int64)}, batch_size=[])
        back = eval(repro.to_code(td), {"torch": torch, "TensorDict": TensorDict})
        assert (back == td).all()
        assert back["z"].shape == (0, 2)

    def test_lazy_stack_round_trips(self):
        """to_code of a heterogeneous lazy stack keeps each element's exclusive keys."""
        a = TensorDict({"x": torch.ones(2), "only_a": torch.ones(1)}, [])
        b = TensorDict({"x": torch.zeros(2)}, [])
        stack = LazyStackedTensorDict.lazy_stack([a, b], 0)
        back = eval(repro.to_code(stack), {"torch": torch, "TensorDict": TensorDict,
                                          "LazyStackedTensorDict": LazyStackedTensorDict})
        assert "only_a" in back[0].keys() and "only_a" not in back[1].keys()

    def test_unrenderable_input_is_named(self):
        """An input the renderer does not know raises TypeError naming its type."""
        with pytest.raises(TypeError, match="cannot render object"):
            repro.to_code(object())


class TestFixedExamples:
    """The fixed examples of conformance.strategies lie in their strategies' domains, hold no
    nested key whose parent only some elements hold (tensordict's declared finding), and reach
    each run as fresh copies."""

    @staticmethod
    def _leaves(td):
        return {(k,) if isinstance(k, str) else k for k in td.keys(True, True)}

    def _check_stack(self, tds, dim, exclusive, max_n=4, max_dims=2):
        batch = tds[0].batch_size
        assert all(td.batch_size == batch for td in tds)
        assert 1 <= len(tds) <= max_n and len(batch) <= max_dims and max(batch) <= 3
        assert -(len(batch) + 1) <= dim <= len(batch)
        leaves = [self._leaves(td) for td in tds]
        shared = set.intersection(*leaves)
        assert shared and all(k[-1].startswith("x") for k in set.union(*leaves) - shared)
        if exclusive:
            assert leaves[0] - leaves[-1]
        parents = [{k[0] for k in keys if len(k) > 1} for keys in leaves]
        assert all(p == parents[0] for p in parents)  # no parent only some elements hold

    def test_stack_examples_in_their_domains(self):
        """Each stack example: one batch size, sizes, dims, slice bounds and index entries as the
        strategy draws them; exclusive cases have a key element 0 holds and the last lacks."""
        from conformance import strategies as s

        for nested in (False, True):
            case = s.rich_stack(nested)
            self._check_stack(case.tds, case.dim, exclusive=True)
        for empty in (False, True):
            case = s.rich_slice(empty)
            self._check_stack(case.tds, case.dim, exclusive=True)
            n = len(case.tds)
            assert all(b is None or -n - 1 <= b <= n + 1 for b in case.bounds[:2])
            assert case.bounds[2] in (None, 1, 2, 3)
        case = s.rich_index()
        self._check_stack(case.tds, case.dim, exclusive=False)
        assert len({frozenset(self._leaves(td)) for td in case.tds}) == 1  # homogeneous
        sizes = list(case.tds[0].batch_size)
        sizes.insert(case.dim % (len(sizes) + 1), len(case.tds))
        for size, part in zip(sizes, case.index, strict=False):
            if isinstance(part, list):
                assert all(b is None or -size - 1 <= b <= size + 1 for b in part[:2])
            else:
                assert -size <= part < size
        case = s.rich_new_key()
        self._check_stack(case.tds, case.dim, exclusive=False)
        assert not any(case.key in td.keys(True) for td in case.tds)
        assert case.value.shape[:3] == (2, len(case.tds), 3)
        grid = s.rich_grid()
        assert 1 <= len(grid.grid) <= 3 and all(2 <= len(row) <= 3 for row in grid.grid)
        self._check_stack([td for row in grid.grid for td in row], grid.inner_dim,
                          exclusive=True, max_n=9, max_dims=1)
        assert -3 <= grid.outer_dim <= 2

    def test_task_and_policy_examples_in_their_domains(self):
        """The batched tasks share one batch size, keys several tasks hold agree (but the
        conflict's key), all top-level; the conflicts differ in size at one rank, or in dtype
        only; the policy case has a head, several tasks present, a valid stack dim."""
        from conformance.strategies import batched_tasks, conflict_example, policy_example

        tasks = batched_tasks()
        assert {t.batch for t in tasks} == {(2,)} and 2 <= len(tasks) <= 4
        specs = {}
        for t in tasks:
            for k in t.observations:
                assert isinstance(k.key, str)  # no nested key whose parent some tasks lack
                assert specs.setdefault(k.key, (k.shape, k.dtype)) == (k.shape, k.dtype)
        for dtype in (False, True):
            case = conflict_example(dtype)
            clash = [next(k for k in t.observations if k.key == case.key) for t in case.tasks]
            assert len({(k.shape, k.dtype) for k in clash}) == 2  # two of them, not three
            assert len({len(k.shape) for k in clash}) == len({k.dtype for k in clash}) - dtype
            assert len(case.actions) == 3
        pol = policy_example()
        assert any(h is not None for h in pol.heads) and len(set(pol.tasks)) >= 2
        assert pol.time == 0 and 0 <= pol.dim <= len(pol.batch) and max(pol.batch) <= 3
        assert all(1 <= d <= 5 for d in pol.task_dims) and 1 <= pol.obs_dim <= 6

    def test_each_run_gets_fresh_copies(self):
        """A body that mutates its fixed example does not change the next run's."""
        from hypothesis import strategies as st

        from conformance import record
        from conformance.properties._core import prop

        seen = []

        @prop("STK-001", case=st.lists(st.just(0), min_size=1, max_size=1),
              examples=(dict(case=[0]),))
        def body(subject, case):
            seen.append(list(case))
            case.append(1)

        record.begin("STK-001")
        try:
            body(None)
            first = len(seen)
            body(None)
        finally:
            record.begin("STK-001")
        assert seen[0] == seen[first] == [0]


class TestProfiles:
    def test_ci_env_selects_ci(self, monkeypatch):
        """CI=true selects the derandomized ci profile; otherwise quick."""
        monkeypatch.setenv("CI", "true")
        assert profiles.default_name() == "ci"
        monkeypatch.delenv("CI")
        assert profiles.default_name() == "quick"

    def test_parallel_properties_get_fewer_examples(self):
        """Every profile gives process-parallel properties fewer examples than the others."""
        for prof in profiles.PROFILES.values():
            assert prof.parallel_examples < prof.max_examples

    @pytest.mark.parametrize("name", profiles.NAMES)
    def test_fixed_example_fills_a_one_example_budget(self, name, monkeypatch):
        """A process-parallel property with a fixed example runs only it when its budget is one
        example (quick), and adds generated ones otherwise; other kinds always generate."""
        from hypothesis import Phase

        monkeypatch.setitem(profiles._active, "name", name)
        one = profiles.PROFILES[name].parallel_examples == 1
        fixed = profiles.hypothesis_settings("parallel", explicit=1)
        assert (Phase.generate not in fixed.phases) == one
        assert Phase.generate in profiles.hypothesis_settings("parallel").phases
        assert Phase.generate in profiles.hypothesis_settings("default", explicit=1).phases

    def test_unknown_profile_is_refused(self):
        """An unknown profile name raises ValueError listing the three profiles."""
        with pytest.raises(ValueError, match="quick, ci, thorough"):
            profiles.activate("fast")


class _Config:
    """What ``plugin.requested`` reads of a pytest config."""

    def __init__(self, args: list[str], where: Path, pyargs: bool = False,
                 options: dict[str, object] | None = None) -> None:
        from types import SimpleNamespace

        self.args = args
        self.option = SimpleNamespace(pyargs=pyargs)
        self.invocation_params = SimpleNamespace(dir=where)
        self.options = options or {}

    def getoption(self, name: str) -> object:
        return self.options.get(name)

    def getini(self, name: str) -> list[str]:
        assert name == "norecursedirs"
        return ["*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}"]


class TestPluginRequested:
    """The plugin acts (header, MUJOCO_GL, reaping) only in a session that asks for the kit."""

    ROOT = Path(__file__).resolve().parents[1]

    @pytest.mark.parametrize("option", ["--subject", "--conformance-profile", "--deviations",
                                        "--report", "--conformance-area",
                                        "--conformance-no-shrink", "--conformance-no-table"])
    def test_any_option_asks(self, option):
        from conformance.plugin import requested

        assert requested(_Config(["tests"], self.ROOT, options={option: ["x"]}))

    @pytest.mark.parametrize(("args", "pyargs", "asks"), [
        (["tests"], False, False),
        (["tests/test_units.py::TestCatalogue"], False, False),
        (["conformance"], False, True),
        (["conformance/properties/test_policy.py::test_x"], False, True),
        (["."], False, True),  # collects conformance/properties too
        (["conformance"], True, True),
        (["conformance.properties.test_policy"], True, True),
        (["conformancex", "tests"], True, False),
    ])
    def test_arguments_naming_the_package_ask(self, args, pyargs, asks):
        from conformance.plugin import requested

        assert requested(_Config(args, self.ROOT, pyargs=pyargs)) is asks

    @pytest.mark.parametrize(("installed", "asks"), [
        ("src/conformance", True),
        (".venv/lib/python3.11/site-packages/conformance", False),
        ("env/lib/python3.11/site-packages/conformance", False),
        ("build/lib/conformance", False),
    ])
    def test_a_project_above_an_installed_kit_does_not_ask(self, installed, asks, tmp_path,
                                                          monkeypatch):
        """``pytest .`` in a project whose virtualenv holds the kit: pytest does not collect it,
        so the session does not ask for the kit."""
        from conformance import plugin

        monkeypatch.setattr(plugin, "__file__", str(tmp_path / installed / "plugin.py"))
        assert plugin.requested(_Config(["."], tmp_path)) is asks


class TestPluginImports:
    def test_plugin_imports_no_property_torch_or_subject(self):
        """Loading the plugin (every pytest session) imports no property module, torch or
        subject: a fresh interpreter's modules after ``import conformance.plugin``."""
        import subprocess
        import sys

        code = ("import sys, conformance.plugin; print(sorted(m for m in sys.modules if "
                "m.startswith(('conformance.properties', 'conformance.subjects', 'torch', "
                "'tensordict', 'torchrl', 'psutil'))))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout
        assert out.strip() == "[]"

    def test_no_hypothesis_internal_settings_are_written(self):
        """Settings come from profiles.hypothesis_settings, never hypothesis's private field."""
        root = Path(__file__).resolve().parents[1] / "conformance"
        private = "_hypothesis_internal_use" + "_settings"
        assert [p for p in root.rglob("*.py") if private in p.read_text()] == []


def test_verdict_cache_keeps_what_other_runs_stored(tmp_path):
    """Two runs proving findings side by side (the version matrix's columns in .ci/run) each add
    their verdicts to the one cache file: neither overwrites the other's, and the file is whole
    (replaced, never rewritten in place)."""
    from conformance.findings.proving import _store_verdict

    path = tmp_path / "cache" / "verdicts.json"
    _store_verdict(path, "a", {"status": "holds"})
    path.write_text(path.read_text())  # (another run read it here, before "b" was stored...)
    _store_verdict(path, "b", {"status": "fixed"})
    _store_verdict(path, "a", {"status": "holds", "seconds": 1.0})
    assert json.loads(path.read_text()) == {"a": {"status": "holds", "seconds": 1.0},
                                            "b": {"status": "fixed"}}
    assert [p.name for p in path.parent.iterdir()] == ["verdicts.json"]
    path.write_text("{half")  # a file some crash left half-written
    _store_verdict(path, "c", {"status": "holds"})
    assert json.loads(path.read_text()) == {"c": {"status": "holds"}}


def test_reproducer_leaving_a_hung_child_is_judged_when_it_exits(tmp_path):
    """A reproducer that exits while a child it started still runs (a hung worker holding its
    output open) is judged when it exits, not when the child ends; the child is killed."""
    import time

    import psutil

    from conformance.findings import Finding, verify

    pid_file = tmp_path / "child.pid"
    reproducer = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "raise SystemExit('the defect: observed 1, expected 2')\n")
    finding = Finding(name="leaves-child", ids=("STK-001",), signature="observed 1, expected 2",
                      reason="a reproducer whose child outlives it", subject="s",
                      reproducer=reproducer)
    start = time.monotonic()
    verdict = verify(finding, seconds=60.0, cache=False)
    assert verdict.status == "holds", verdict
    assert time.monotonic() - start < 30.0
    child = int(pid_file.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 5.0  # (a killed process takes a moment to go)
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(), f"the reproducer's child {child} still runs"

"""Reproducers by construction: every property's reproducer defines or imports every name it
reads (checked statically, for the whole catalogue, in seconds), and real reproducers of failing
mutants fail the way the property did -- never with a NameError or an ImportError."""

from __future__ import annotations

import builtins
import dis
import importlib
import importlib.util
import inspect
import json
import os
import pkgutil
import re
import types
from pathlib import Path
from typing import Any

import pytest

from conformance import catalogue, repro

ROOT = Path(__file__).resolve().parents[1]


def property_tests() -> dict[str, Any]:
    """{property ID: its test} over the property modules (conformance/properties/test_*.py)."""
    import conformance.properties as pkg

    tests = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"conformance.properties.{info.name}")
        for obj in vars(module).values():
            mark = next((m for m in getattr(obj, "pytestmark", []) if m.name == "conformance"),
                        None)
            if mark is not None:
                tests[mark.args[0]] = obj
    return tests


def property_bodies() -> dict[str, Any]:
    """{property ID: the function its reproducer pastes and calls}."""
    return {pid: test.conformance_body for pid, test in property_tests().items()}


def _codes(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def undefined_names(text: str) -> list[str]:
    """The global names compiled ``text`` reads (``LOAD_GLOBAL``, or ``LOAD_NAME`` outside the
    names that scope stores) that no statement of ``text`` binds and that are not builtins:
    what would raise NameError once that code runs.  Bytecode, not repro's own symtable pass."""
    module = compile(text, "<reproducer>", "exec")
    bound = {ins.argval for code in _codes(module) for ins in dis.get_instructions(code)
             if ins.opname == "STORE_GLOBAL" or (code is module and ins.opname == "STORE_NAME")}
    reads = set()
    for code in _codes(module):
        instructions = list(dis.get_instructions(code))
        own = {ins.argval for ins in instructions if ins.opname == "STORE_NAME"}
        reads |= {ins.argval for ins in instructions if ins.opname == "LOAD_GLOBAL"}
        reads |= {ins.argval for ins in instructions if ins.opname == "LOAD_NAME"} - own
    return sorted(reads - bound - set(dir(builtins)) - repro.MODULE_NAMES)


def _reproducer(prop_id: str, body: Any, subject: Any, source: str) -> str:
    params = [p for p in inspect.signature(body).parameters if p != "subject"]
    return repro.build(prop_id, catalogue.get(prop_id).statement, subject, source, body,
                       dict.fromkeys(params))


def _subjects() -> list[tuple[str, Any]]:
    from conformance.subjects import reference, torchrl

    return [("reference", reference.subject()), ("torchrl", torchrl.subject())]


def test_every_property_has_a_body():
    """The catalogue and the property modules agree: one reproducible body per ID."""
    assert sorted(property_bodies()) == sorted(p.id for p in catalogue.PROPERTIES)


@pytest.mark.parametrize("prop_id", [p.id for p in catalogue.PROPERTIES])
def test_reproducer_defines_every_name_it_reads(prop_id):
    """The reproducer of every property, for both built-in subjects' snippets, compiles; every
    global name read anywhere in it (functions, classes, comprehensions, decorators, defaults)
    is defined in it, imported or a builtin; nothing it needs was left unresolved; and its
    definitions run (so its imports resolve) without running the example."""
    body = property_bodies()[prop_id]
    for name, subject in _subjects():
        text = _reproducer(prop_id, body, subject, name)
        assert not undefined_names(text), f"{prop_id} on {name}: undefined {undefined_names(text)}"
        assert not repro.global_reads(text), f"{prop_id} on {name}: {repro.global_reads(text)}"
        exec(compile(text, f"<{prop_id} reproducer>", "exec"), {"__name__": "reproducer_check"})


def test_checker_catches_a_missing_helper():
    """The check above is not vacuous: a helper left out is a name read and not defined, in a
    nested function and in a default value alike."""
    text = "import torch\n\ndef body(x, n=LIMIT):\n    return [helper(v) for v in x]\n"
    assert undefined_names(text) == ["LIMIT", "helper"]
    assert repro.global_reads(text) == {"LIMIT", "helper"}


def test_needs_pastes_transitively_in_dependency_order():
    """A helper's own helpers are pasted before it, once each, verbatim; what the reproducer
    defines already (the assertions, held whole) is not pasted again."""
    from conformance import assertions
    from conformance.properties import _envs, test_parallel

    defined = {n: getattr(assertions, n)
               for n in ("snapshot", "elements", "expect", "expect_td_equal")}
    found = repro.needs(test_parallel.test_rollout_equals_manual_loop.conformance_body, defined)
    names = [src.split("(")[0].split()[-1] for src in found.helpers]
    assert len(names) == len(set(names))
    assert names.index("next_root") < names.index("manual_rollout")
    assert names.index("done_mask") < names.index("manual_rollout")
    assert {"scripted_policy", "write_actions", "rollout_of", "expect_same_steps"} <= set(names)
    assert "snapshot" not in names and not found.missing
    assert inspect.getsource(_envs.manual_rollout).strip() in found.helpers


THIRD_PARTY = '''\
from __future__ import annotations

import collections as co
import re

from tensordict import lazy_stack

from conformance.assertions import expect as check
from conformance.properties._envs import next_root as advance

LIMIT = 2
PATTERN = r"task (\\d+)"


def tag(fn):
    fn.tagged = True
    return fn


class Tally:
    def __init__(self, items):
        self.counts = co.Counter(items)


@tag
def task_ids(text, n=LIMIT):
    return [int(m) for m in re.findall(PATTERN, text)][:n]


def body(subject, text):
    ids = task_ids(text)
    check(Tally(ids).counts == {1: 1, 2: 1}, "ids", ids, [1, 2], "task_ids(text)")
    assert callable(lazy_stack) and callable(advance)
'''


def test_needs_imports_constants_classes_and_aliases(tmp_path, monkeypatch):
    """A property module outside the kit: its own functions and classes are pasted (decorators
    and defaults included, with what they read), its module-level imports come as it wrote them
    (``import x as y``, ``from x import y``), a kit helper or assertion imported under another
    name is aliased, and the reproducer runs."""
    (tmp_path / "thirdparty_props.py").write_text(THIRD_PARTY)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("thirdparty_props")
    text = repro.build("STK-001", "statement", types.SimpleNamespace(), "x:y", module.body,
                       {"text": "task 1, task 2, task 3"})
    for line in ("import collections as co", "import re", "from tensordict import lazy_stack",
                 "check = expect", "advance = next_root", "LIMIT = 2", "@tag", "class Tally"):
        assert line in text, line
    assert text.index("def tag(") < text.index("@tag\ndef task_ids(")
    assert not undefined_names(text)
    namespace = {"__name__": "__main__"}
    exec(compile(text, "<third-party reproducer>", "exec"), namespace)
    assert namespace["task_ids"].tagged


def test_two_helpers_of_one_name_are_refused():
    """Two kit objects pasted under one name would shadow each other: refused, not guessed."""
    from conformance.properties import _envs

    def body(subject):
        return close_env(subject)  # noqa: F821  (resolved in the fake globals below)

    fake = types.FunctionType(body.__code__, {"close_env": _envs.close_env}, "body")
    fake.__module__ = "conformance.properties.fake"
    with pytest.raises(ValueError, match="two objects named 'close_env'"):
        repro.needs(fake, {"close_env": object()})


# Per area, mutants that fail in seconds, and the properties (some of those each fails) whose
# reproducers are run.  The check runs only those properties, at ci: derandomized, the profile
# whose kills tests/test_kill_matrix.py asserts (at quick a random draw may miss one).
END_TO_END = {
    "STK": {"stacking:unbind_copies": ["STK-002"]},
    # (stacks_at_front fails EXC-003's first fixed example and passes its second: hypothesis
    # runs both and raises the first, so the reproducer must paste that one, not the last run)
    "EXC": {"stacking:keys_union": ["EXC-001", "EXC-003"], "stacking:stacks_at_front": ["EXC-003"]},
    "SPEC": {"specs:accepts_conflicts_casting": ["SPEC-005"],
             "specs:step_reward_scalar": ["SPEC-008"]},
    "PAR": {"parallel:resets_all": ["PAR-002", "PAR-011"],
            "parallel:anonymous_errors": ["PAR-008"]},
    "POL": {"policy:skips_nested": ["POL-002"], "policy:permutes_actions": ["POL-003"]},
    "SCN": {"scenario:stack_copies": ["SCN-002"],
            "scenario:policy_zero_fills_stack": ["SCN-003"]},
}
SETUP_ERRORS = ("NameError", "UnboundLocalError", "ImportError", "ModuleNotFoundError",
                "SyntaxError")


def _last_exception(text: str) -> str:
    """The exception type a traceback (or pytest's failure text) ends with."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    match = re.search(r"([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt))\b(?::.*)?$",
                      lines[-1] if lines else "")
    return match.group(1).rsplit(".", 1)[-1] if match else ""


@pytest.mark.parametrize("area", [  # process-spawning and dm_control areas: the slow tier
    pytest.param(a, marks=pytest.mark.slow) if a in ("PAR", "SCN") else a for a in END_TO_END])
def test_failing_mutant_reproducers_fail_the_same_way(area, tmp_path, zygote):
    """Run an area's mutants (``check --profile quick --area A``, one seed), then every
    reproducer the report holds for a failed property, alone, as ``python SCRIPT`` runs it
    (forked from the tests' zygote, which tests/test_zygote.py holds to that): each exits
    non-zero with the exception the property failed with (AssertionError, or the subject's own,
    as EXC-003's KeyError) -- never a NameError or ImportError of a helper or import it lacks."""
    mutants = END_TO_END[area]
    tests = property_tests()
    only = " or ".join(sorted({tests[pid].__name__ for ids in mutants.values() for pid in ids}))
    if area == "SCN" and importlib.util.find_spec("dm_control") is None:
        pytest.skip("SCN needs dm_control (the dmcontrol extra)")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path,
           "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    env = {k: v for k, v in env.items() if not k.startswith("PYTEST_") and k != "CI"}
    report = tmp_path / "report.json"
    args = ["check", "--profile", "quick", "--area", area, "--hypothesis-seed", "1", "--report",
            str(report), "--skip-doctor"]
    for target in mutants:
        args += ["--subject", f"tests.mutants.{target}"]
    run = zygote.run("conformance", [*args, "--", "-k", only], env, 600)
    assert report.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    subjects = json.loads(report.read_text())["subjects"]
    problems = []
    for target, wanted in mutants.items():
        from tests import kill_matrix

        cells = subjects[kill_matrix.subject_name(f"tests.mutants.{target}")]["properties"]
        for pid in wanted:
            cell = cells.get(pid, {})
            assert cell.get("outcome") == "failed", (target, pid, cell.get("message", "")[-500:])
            expected = _last_exception(cell["message"])
            script = tmp_path / f"repro_{pid}.py"
            script.write_text(cell["reproducer"])
            proc = zygote.run(str(script), [], env, 300, script=True)  # as python SCRIPT
            got = _last_exception(proc.stderr)
            if proc.returncode == 0 or got in SETUP_ERRORS or (expected and got != expected):
                problems.append(f"{target} {pid}: exit {proc.returncode}, raised {got or '?'} "
                                f"(the property raised {expected or '?'}):\n"
                                f"{proc.stderr[-1500:]}")
    assert not problems, "\n\n".join(problems)

"""Reproducers by construction: every property's reproducer defines or imports every name it
reads (checked statically, for the whole catalogue, in seconds), and real reproducers of failing
mutants fail the way the property did -- never with a NameError or an ImportError."""

from __future__ import annotations

import builtins
import dis
import importlib
import inspect
import pkgutil
import types
from typing import Any

import pytest

from conformance import catalogue, repro


def property_bodies() -> dict[str, Any]:
    """{property ID: the function its reproducer pastes and calls} over the property modules."""
    import conformance.properties as pkg

    bodies = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("test_"):
            continue
        module = importlib.import_module(f"conformance.properties.{info.name}")
        for obj in vars(module).values():
            mark = next((m for m in getattr(obj, "pytestmark", []) if m.name == "conformance"),
                        None)
            if mark is not None:
                bodies[mark.args[0]] = obj.conformance_body
    return bodies


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
    """A helper's own helpers are pasted before it, once each; assertions are not pasted (the
    reproducer holds them whole); module-level imports come the way the module writes them."""
    from conformance.properties import _envs, test_parallel

    found = repro.needs(test_parallel.test_rollout_equals_manual_loop.conformance_body,
                        {"snapshot": repro_assertion("snapshot"),
                         "elements": repro_assertion("elements"),
                         "expect": repro_assertion("expect"),
                         "expect_td_equal": repro_assertion("expect_td_equal")})
    names = [src.split("(")[0].split()[-1] for src in found.helpers]
    assert len(names) == len(set(names))
    assert names.index("next_root") < names.index("manual_rollout")
    assert names.index("done_mask") < names.index("manual_rollout")
    assert "snapshot" not in names and not found.missing
    assert inspect.getsource(_envs.manual_rollout).strip() in found.helpers


def repro_assertion(name: str) -> Any:
    from conformance import assertions

    return getattr(assertions, name)


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

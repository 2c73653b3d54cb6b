"""Standalone reproducer snippets for failed properties.

A reproducer pastes: the subject's capabilities (from its ``snippet`` lines, or an import of the
``module:attribute`` that named it), the shrunk example's inputs rendered as Python literals, the
source of :mod:`conformance.assertions`, of the property's body and of everything the body calls
from the kit, and the call.  It needs only torch / tensordict / torchrl, the subject and, for env
properties, ``reference.tasks``.

Nothing is listed by hand: :func:`needs` reads the global names the pasted code reads (with
:mod:`symtable`, so decorators, default values and nested functions count) and resolves each in
the reader's module -- a kit function or class is pasted (and what it reads, in turn), a module
or a third-party object imported as that module imports it, a plain constant written out.  It
cannot see names a helper reaches by other means than a global read: ``getattr(module, name)``,
``globals()[name]``, ``eval``, or an attribute of a kit module (``record.current``, imported as
``from conformance import record``, works only where the kit is installed).  A name it can
neither paste, import nor write out (an instance of a kit class, say) is named in a comment at
the reproducer's top; tests/test_repro.py holds every property's reproducer free of those.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import inspect
import symtable
import sys
import textwrap
import types
from typing import Any

import torch


def to_code(obj: Any) -> str:
    """Python source that rebuilds ``obj`` (tensors, tensordicts, lazy stacks, task specs, ...)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return repr(obj)
    if isinstance(obj, torch.dtype):
        return str(obj)
    if isinstance(obj, torch.Size):
        return f"torch.Size({list(obj)!r})"
    if isinstance(obj, torch.Tensor):
        if obj.numel() == 0:
            return f"torch.zeros({tuple(obj.shape)!r}, dtype={obj.dtype})"
        return f"torch.tensor({obj.tolist()!r}, dtype={obj.dtype})"
    if hasattr(obj, "_fields"):  # a strategy's NamedTuple: attribute access is all a body uses
        fields = ", ".join(f"{f}={to_code(getattr(obj, f))}" for f in obj._fields)
        return f"SimpleNamespace({fields})"
    if isinstance(obj, (list, tuple)):
        inner = ", ".join(to_code(o) for o in obj)
        return f"[{inner}]" if isinstance(obj, list) else f"({inner}{',' if len(obj) == 1 else ''})"
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{to_code(k)}: {to_code(v)}" for k, v in obj.items()) + "}"
    tds = getattr(obj, "tensordicts", None)
    if tds is not None:
        inner = ", ".join(to_code(t) for t in tds)
        return f"LazyStackedTensorDict({inner}, stack_dim={obj.stack_dim})"
    if hasattr(obj, "batch_size") and hasattr(obj, "items"):
        fields = ", ".join(f"{k!r}: {to_code(v)}" for k, v in obj.items())
        return f"TensorDict({{{fields}}}, batch_size={list(obj.batch_size)!r})"
    if dataclasses.is_dataclass(obj):
        return repr(obj)
    raise TypeError(f"cannot render {type(obj).__name__} as code")


def _subject_lines(subject: Any, source_name: str) -> str:
    caps = getattr(subject, "capabilities", [])
    snippets = getattr(subject, "snippet", {}) or {}
    if all(c in snippets for c in caps):
        body = "\n".join(snippets[c] for c in caps)
        ns = ", ".join(f"{c}={c}" for c in caps)
        if getattr(subject, "deadline_keyword", None):
            ns += f", deadline_keyword={subject.deadline_keyword!r}"
        return f"{body}\nsubject = SimpleNamespace({ns})"
    from conformance.subject import split_name

    base, options = split_name(source_name)  # (a subject's options are literals: repr rebuilds)
    module, _, attr = base.partition(":")
    args = f"**{options!r}" if options else ""
    return (f"import importlib\n{_module_root(module)}"
            f"subject = getattr(importlib.import_module({module!r}), {attr!r})\n"
            f"subject = subject({args}) if callable(subject) else subject")


def _module_root(module: str) -> str:
    """A ``sys.path`` line that lets the reproducer import ``module`` from any directory where
    the module is not pip-installed (it lives in a folder of its own); else nothing."""
    import sys
    from pathlib import Path

    file = getattr(sys.modules.get(module), "__file__", None)
    if not file:
        return ""
    path = Path(file).resolve()
    root = path.parents[module.count(".") + (1 if path.name == "__init__.py" else 0)]
    if any(part in ("site-packages", "dist-packages") for part in root.parts):
        return ""
    return (f"import sys\nsys.path.insert(0, {str(root)!r})  # where module {module!r} lives "
            f"(it is imported by name)\n")


def _source(obj: Any, decorators: bool = True) -> str:
    """The source of a function or class, dedented; ``decorators=False`` drops its decorators
    (a property's ``@prop(...)``)."""
    src = textwrap.dedent(inspect.getsource(obj))
    if decorators:
        return src.rstrip("\n")
    lines = src.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.lstrip().startswith(("def ", "class ")))
    return "\n".join(lines[start:])


class _NoAnnotations(ast.NodeTransformer):
    """Drops annotations: under ``from __future__ import annotations`` (every reproducer's first
    line) they are never evaluated, so the names they mention need not be defined."""

    def visit_arg(self, node: ast.arg) -> ast.arg:
        node.annotation = None
        return node

    def visit_FunctionDef(self, node: Any) -> Any:
        node.returns = None
        self.generic_visit(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt:
        if node.value is None:
            return ast.copy_location(ast.Pass(), node)
        return ast.copy_location(ast.Assign(targets=[node.target], value=node.value), node)


def _table(source: str) -> symtable.SymbolTable:
    tree = ast.fix_missing_locations(_NoAnnotations().visit(ast.parse(source)))
    return symtable.symtable(ast.unparse(tree), "<reproducer>", "exec")


def _reads(table: symtable.SymbolTable) -> set[str]:
    out = set()
    for sym in table.get_symbols():
        if sym.is_referenced() and (table.get_type() == "module" or sym.is_global()):
            out.add(sym.get_name())
    for child in table.get_children():
        out |= _reads(child)
    return out


def _declared_global_binds(table: symtable.SymbolTable) -> set[str]:
    out = {s.get_name() for s in table.get_symbols() if s.is_declared_global() and s.is_assigned()}
    for child in table.get_children():
        out |= _declared_global_binds(child)
    return out


MODULE_NAMES = frozenset({"__name__", "__file__", "__doc__", "__spec__", "__loader__",
                          "__package__", "__builtins__", "__annotations__"})


def bound_names(source: str) -> set[str]:
    """The module-level names a piece of code binds: assignments, imports, ``def``, ``class``
    (and ``global`` names its functions assign)."""
    top = _table(source)
    names = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    return names | _declared_global_binds(top)


def global_reads(source: str) -> set[str]:
    """The global names a piece of code reads, anywhere in it: at module level (decorators,
    default values, base classes included) and in every function, class and comprehension
    nested in it -- builtins and names it binds itself left out.  Annotations do not count."""
    return _reads(_table(source)) - bound_names(source) - set(dir(builtins)) - MODULE_NAMES


@functools.cache
def _module_imports(module_name: str) -> dict[str, str]:
    """{bound name: the statement binding it} for a module's own top-level imports (also those
    under ``if``/``try``, but not ``if TYPE_CHECKING:``), relative imports made absolute."""
    module = sys.modules.get(module_name)
    try:
        tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    except (OSError, TypeError):
        return {}
    package = module.__package__ or ""  # type: ignore[union-attr]
    out: dict[str, str] = {}

    def scan(stmts: list[ast.stmt]) -> None:
        for node in stmts:
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        out[a.asname] = f"import {a.name} as {a.asname}"
                    else:
                        out.setdefault(a.name.split(".")[0], f"import {a.name}")
            elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                for a in node.names:
                    name = a.asname or a.name
                    tail = f" as {a.asname}" if a.asname and a.asname != a.name else ""
                    out[name] = f"from {base} import {a.name}{tail}"
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    scan(node.body)
                    scan(node.orelse)
            elif isinstance(node, ast.Try):
                scan(node.body)
                for handler in node.handlers:
                    scan(handler.body)
                scan(node.orelse)
                scan(node.finalbody)

    scan(tree.body)
    return out


def _import_line(name: str, value: Any, home: str) -> str | None:
    """The statement binding ``name`` to ``value``: the one module ``home`` itself runs, else one
    built from the object (``import x``, ``import x as y``, ``from x import y``)."""
    line = _module_imports(home).get(name)
    if line is not None:
        return line
    if isinstance(value, types.ModuleType):
        full = value.__name__
        if full == name:
            return f"import {full}"
        parent, _, leaf = full.rpartition(".")
        if parent and leaf == name:
            return f"from {parent} import {leaf}"
        return f"import {full} as {name}"
    module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", None)
    if module and qualname and "." not in qualname and getattr(
            sys.modules.get(module), qualname, None) is value:
        return f"from {module} import {qualname}" + (f" as {name}" if name != qualname else "")
    return None


def _home(obj: Any) -> tuple[str, dict[str, Any]]:
    """The module a function or class is defined in, and the globals its code reads."""
    fn = inspect.unwrap(obj)
    if inspect.isfunction(fn):
        return fn.__module__, fn.__globals__
    return obj.__module__, vars(sys.modules[obj.__module__])


def _constant_code(value: Any) -> str | None:
    """``value`` as code when it is a plain module constant (None, str, number, tuple, dict,
    ...), else None."""
    if value is None:
        return "None"
    if not isinstance(value, (str, int, float, tuple, frozenset, dict, list)):
        return None
    try:
        return repr(value) if isinstance(value, frozenset) else to_code(value)
    except TypeError:
        return None


@dataclasses.dataclass
class Needs:
    """What pasted code needs at module level, found by :func:`needs`: ``imports`` (name ->
    statement), ``constants`` (name -> ``NAME = value`` line), ``helpers`` (sources of the
    functions and classes it calls, in dependency order) and ``aliases`` (name -> ``NAME =
    original`` line, for a helper imported under another name); ``missing``: names it reads
    that nothing could supply."""

    imports: dict[str, str] = dataclasses.field(default_factory=dict)
    constants: dict[str, str] = dataclasses.field(default_factory=dict)
    helpers: list[str] = dataclasses.field(default_factory=list)
    aliases: dict[str, str] = dataclasses.field(default_factory=dict)
    missing: list[str] = dataclasses.field(default_factory=list)


def _pasteable(value: Any, local: str) -> bool:
    """A function or class of the kit (any ``conformance.*`` module except the pasted-whole
    assertions) or of module ``local`` (the property's own): its source gets pasted."""
    if not (inspect.isfunction(inspect.unwrap(value)) or inspect.isclass(value)):
        return False
    module = getattr(value, "__module__", "") or ""
    if module == "conformance.assertions":
        return False
    return module == local or module == "conformance" or module.startswith("conformance.")


def needs(fn: Any, defined: dict[str, Any], extra: tuple[Any, ...] = ()) -> Needs:
    """What a reproducer pasting ``fn`` (without its decorators) and ``extra`` needs besides.

    Every global name their source reads (:func:`global_reads`) is resolved in the globals of the
    module that defines the reader.  A kit function or class (:func:`_pasteable`; ``fn``'s own
    module counts as the kit) is pasted, after what it needs in turn, each once; a module or
    another object is imported the way the reader's module imports it; a plain constant is
    written out.  ``defined`` maps the names the reproducer defines already to their objects
    (None: whatever it is): those are neither pasted nor imported.  A name meaning two objects
    (two helpers of one name, or a helper named like an assertion) raises :class:`ValueError`.
    """
    local = fn.__module__
    out = Needs()
    bound: dict[str, Any] = {}  # name -> the object pasted, imported or written under it
    done: set[int] = set()

    def bind(name: str, value: Any) -> bool:
        """False when ``name`` is already there (as ``value``); raise if as another object."""
        if name in defined:
            have = defined[name]
        elif name in bound:
            have = bound[name]
        else:
            bound[name] = value
            return True
        if have is not None and have is not value and not (
                _constant_code(have) is not None and have == value):
            raise ValueError(f"two objects named {name!r} in one reproducer: {have!r} and "
                             f"{value!r}; rename one")
        return False

    def visit(obj: Any, source: str) -> None:
        home, namespace = _home(obj)
        for name in sorted(global_reads(source)):
            if name not in namespace:
                if name not in defined and name not in bound:
                    out.missing.append(name)
                continue
            value = namespace[name]
            if not bind(name, value):
                continue
            if _pasteable(value, local) or (inspect.isfunction(value) and value.__module__
                                            == "conformance.assertions"):
                paste(value)
                if value.__name__ != name:  # imported under another name: alias the original
                    out.aliases[name] = f"{name} = {value.__name__}"
                continue
            line = None if isinstance(value, types.ModuleType) else _constant_code(value)
            if line is not None:
                out.constants[name] = f"{name} = {line}"
                continue
            line = _import_line(name, value, home)
            if line is None:
                out.missing.append(name)
            else:
                out.imports[name] = line

    def paste(obj: Any) -> None:
        if id(obj) in done:
            return
        done.add(id(obj))
        bind(obj.__name__, obj)
        if obj.__module__ == "conformance.assertions":
            return  # pasted whole already
        source = _source(obj)
        visit(obj, source)
        out.helpers.append(source)

    visit(fn, _source(fn, decorators=False))
    for obj in extra:
        paste(obj)
    return out


def _import_block(lines: list[str]) -> str:
    plain = sorted({line for line in lines if line.startswith("import ")})
    froms = sorted({line for line in lines if line.startswith("from ")})
    return "\n".join(plain + froms)


def build(prop_id: str, statement: str, subject: Any, source_name: str, fn: Any,
          kwargs: dict[str, Any], helpers: tuple[Any, ...] = ()) -> str:
    """The reproducer snippet for ``fn(subject, **kwargs)`` failing property ``prop_id``.

    What ``fn`` calls is found, not listed (:func:`needs`); ``helpers`` are pasted as well
    (functions of a property module outside the kit that ``fn`` reaches only indirectly)."""
    from types import SimpleNamespace

    from tensordict import LazyStackedTensorDict, TensorDict

    from conformance import assertions

    imports = ["import torch", "from tensordict import LazyStackedTensorDict, TensorDict"]
    assertions_src = inspect.getsource(assertions).split("import torch\n", 1)[1].strip()
    defined: dict[str, Any] = {
        "SimpleNamespace": SimpleNamespace, "torch": torch, "TensorDict": TensorDict,
        "LazyStackedTensorDict": LazyStackedTensorDict, "annotations": None, "subject": None,
        **{name: getattr(assertions, name) for name in bound_names(assertions_src)},
        **dict.fromkeys(kwargs),
    }
    try:
        inputs = "\n".join(f"{name} = {to_code(value)}" for name, value in kwargs.items())
        if "TaskSpec(" in inputs or "KeySpec(" in inputs:
            from reference.tasks import KeySpec, TaskSpec

            imports.append("from reference.tasks import KeySpec, TaskSpec")
            defined.update(KeySpec=KeySpec, TaskSpec=TaskSpec)
    except TypeError as exc:  # an input we cannot render: say so rather than guess
        inputs = f"# inputs could not be rendered ({exc}); see the falsifying example above"
    found = needs(fn, defined, tuple(helpers))
    subject_src = _subject_lines(subject, source_name)
    # a name the subject's lines bind too is imported again after them, so the helpers see theirs
    late = [line for name, line in found.imports.items() if name in bound_names(subject_src)]
    call = f"{fn.__name__}(subject, {', '.join(f'{k}={k}' for k in kwargs)})"
    consts = "\n".join(found.constants[n] for n in sorted(found.constants))
    aliases = "\n".join(found.aliases[n] for n in sorted(found.aliases))
    parts = [
        f"# Reproducer: {prop_id} on subject {getattr(subject, 'name', source_name)!r}",
        f"# {statement}",
        *([f"# NOT DEFINED HERE (the kit could not paste or import them): "
           f"{', '.join(sorted(set(found.missing)))}"] if found.missing else []),
        "from __future__ import annotations\n\nfrom types import SimpleNamespace\n\n"
        + _import_block([*imports, *found.imports.values()]),
        subject_src,
        *([_import_block(late)] if late else []),
        "# -- assertion helpers (conformance/assertions.py) --",
        assertions_src,
        *(["# -- module constants --", consts] if consts else []),
        *(["# -- helpers --", "\n\n\n".join(found.helpers)] if found.helpers else []),
        *([aliases] if aliases else []),
        "# -- the property --",
        _source(fn, decorators=False),
        "# -- the shrunk example --",
        'if __name__ == "__main__":  # spawned workers re-import this script',
        textwrap.indent(f'{inputs}\n{call}\nprint("property holds on this example")', "    "),
    ]
    return "\n\n".join(parts) + "\n"

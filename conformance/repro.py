"""Standalone reproducer snippets for failed properties.

A reproducer pastes: the subject's capabilities (from its ``snippet`` lines, or an import of the
``module:attribute`` that named it), the shrunk example's inputs rendered as Python literals, the
source of :mod:`conformance.assertions` and of the property's body, and the call.  It needs only
torch / tensordict / torchrl, the subject and, for env properties, ``reference.tasks``.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from typing import Any

import torch

_IMPORTS = """\
from __future__ import annotations

from types import SimpleNamespace

import torch
from tensordict import LazyStackedTensorDict, TensorDict
"""


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
        return f"{body}\nsubject = SimpleNamespace({ns})"
    module, _, attr = source_name.partition(":")
    return (f"import importlib\nsubject = getattr(importlib.import_module({module!r}), {attr!r})\n"
            f"subject = subject() if callable(subject) else subject")


def _function_source(fn: Any) -> str:
    src = textwrap.dedent(inspect.getsource(fn))
    lines = src.splitlines()
    start = next(i for i, line in enumerate(lines)
                 if line.lstrip().startswith(("def ", "class ")))  # decorators are dropped
    return "\n".join(lines[start:])


def _names(code: Any) -> set[str]:
    """Global names a code object (and the functions nested in it) reads."""
    out = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            out |= _names(const)
    return out


def _constants(fns: tuple[Any, ...]) -> str:
    """``NAME = value`` lines for the plain module constants the pasted functions read."""
    lines = {}
    for fn in fns:
        code = getattr(fn, "__code__", None)
        if code is None:
            continue
        for name in sorted(_names(code)):
            value = fn.__globals__.get(name)
            if name.startswith("__") or not isinstance(value, (str, int, float, tuple, frozenset)):
                continue
            try:
                text = repr(value) if isinstance(value, frozenset) else to_code(value)
            except TypeError:
                continue
            lines[name] = f"{name} = {text}"
    return "\n".join(lines[n] for n in sorted(lines))


def build(prop_id: str, statement: str, subject: Any, source_name: str, fn: Any,
          kwargs: dict[str, Any], helpers: tuple[Any, ...] = ()) -> str:
    """The reproducer snippet for ``fn(subject, **kwargs)`` failing property ``prop_id``."""
    from conformance import assertions

    imports = _IMPORTS
    try:
        inputs = "\n".join(f"{name} = {to_code(value)}" for name, value in kwargs.items())
        if "TaskSpec(" in inputs or "KeySpec(" in inputs:
            imports += "from reference.tasks import KeySpec, TaskSpec\n"
    except TypeError as exc:  # an input we cannot render: say so rather than guess
        inputs = f"# inputs could not be rendered ({exc}); see the falsifying example above"
    helper_src = "\n\n".join(_function_source(h) for h in helpers)
    assertions_src = inspect.getsource(assertions).split("import torch\n", 1)[1]
    call = f"{fn.__name__}(subject, {', '.join(f'{k}={k}' for k in kwargs)})"
    parts = [
        f"# Reproducer: {prop_id} on subject {getattr(subject, 'name', source_name)!r}",
        f"# {statement}",
        imports,
        _subject_lines(subject, source_name),
        "# -- assertion helpers (conformance/assertions.py) --",
        assertions_src.strip(),
        *(["# -- module constants --", consts] if (consts := _constants((fn, *helpers))) else []),
        *(["# -- helpers --", helper_src] if helper_src else []),
        "# -- the property --",
        _function_source(fn),
        "# -- the shrunk example --",
        'if __name__ == "__main__":  # spawned workers re-import this script',
        textwrap.indent(f'{inputs}\n{call}\nprint("property holds on this example")', "    "),
    ]
    return "\n\n".join(parts) + "\n"

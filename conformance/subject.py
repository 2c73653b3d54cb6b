"""The subject: one implementation under test, and how a name on the command line becomes one.

A subject provides any subset of four capabilities (see :data:`conformance.catalogue.CAPABILITIES`):

- ``lazy_stack(tds, dim)`` -- heterogeneous stacking of tensordicts;
- ``sequential(*modules, partial_tolerant=True)`` -- a policy built from tensordict modules;
- ``serial_env(makers)`` / ``parallel_env(makers)`` -- a batched env over a list of env makers.

A property whose capability is missing is skipped with a reason that names it.  Names resolve as
a built-in name (``reference``, ``torchrl``), an entry point in the group ``conformance.subjects``,
or ``module:attribute`` (imported, never ``exec``-ed).  The attribute may be a :class:`Subject` or
a zero-argument callable returning one.

A factory's keyword parameters are the subject's *options*, given as a suffix of its name:
``torchrl[use_buffers=False, mp_start_method='fork']`` (values are Python literals, read with
:func:`ast.literal_eval`; ``true`` / ``false`` / ``none`` in any case too).  The subject's name in
reports carries the options given, so configurations stay apart (:func:`split_name`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from conformance.catalogue import CAPABILITIES

ENTRY_POINT_GROUP = "conformance.subjects"
BUILTIN: dict[str, str] = {
    "reference": "conformance.subjects.reference:subject",
    "torchrl": "conformance.subjects.torchrl:subject",
    "torchrl-async-threading": "conformance.subjects.torchrl:async_threading",
    "torchrl-async-mp": "conformance.subjects.torchrl:async_multiprocessing",
}


class SubjectError(ValueError):
    """A subject name that cannot be resolved, or an object that is not a valid subject."""


@dataclass(repr=False)
class Subject:
    """An implementation under test: a name and the capabilities it provides (any may be None).

    ``uses`` names the upstream components the subject reuses (e.g. ``"tensordict.lazy_stack"``,
    ``"torchrl.SerialEnv"``; see :data:`conformance.findings.COMPONENTS`): it inherits their known
    findings, shipped with the kit. ``deviations`` names findings files of the subject's own
    defects (TOML ``[[finding]]`` tables, see :mod:`conformance.findings`; a relative path is read
from the folder of the module that defines the subject, or its factory); ``snippet`` maps
    a capability to the Python lines a standalone reproducer uses to obtain it (e.g.
    ``{"lazy_stack": "from tensordict import lazy_stack"}``). ``spawns`` names the capabilities
    that start worker processes on every call (a process-backed ``serial_env``, say): properties
    needing one run the profile's process-parallel example count, like ``parallel_env`` ones.
    ``options`` are the factory's keyword options this subject was built with, its defaults
    included (set by :func:`resolve`; findings with ``options`` concern it only when they agree).
    ``deadline_keyword`` names the keyword argument of ``parallel_env`` that sets, in seconds, how
    long its env waits on a worker's answer before raising (the reference's ``timeout``): the
    hang properties (PAR-013 / PAR-014) build their envs with a short deadline through it and
    allow that plus a few seconds; a subject that declares none is allowed 45 s.
    """

    name: str
    lazy_stack: Callable[..., Any] | None = None
    sequential: Callable[..., Any] | None = None
    serial_env: Callable[[Sequence[Callable[[], Any]]], Any] | None = None
    parallel_env: Callable[[Sequence[Callable[[], Any]]], Any] | None = None
    description: str = ""
    deviations: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    snippet: dict[str, str] = field(default_factory=dict)
    spawns: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    deadline_keyword: str | None = None

    def has(self, capability: str) -> bool:
        """Whether this subject provides ``capability``."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; expected one of {CAPABILITIES}")
        return getattr(self, capability) is not None

    def missing(self, needs: Sequence[str]) -> list[str]:
        """The capabilities in ``needs`` that this subject lacks."""
        return [c for c in needs if not self.has(c)]

    @property
    def capabilities(self) -> list[str]:
        return [c for c in CAPABILITIES if self.has(c)]

    def __repr__(self) -> str:
        return f"Subject({self.name!r}, capabilities={self.capabilities})"


def _entry_point_names() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names that resolve without a ``module:attribute`` spelling: built-ins and entry points."""
    return sorted(set(BUILTIN) | set(_entry_point_names()))


def _usage(name: str, problem: str) -> SubjectError:
    return SubjectError(
        f"cannot resolve subject {name!r}: {problem}. Available subjects: "
        f"{', '.join(available())}; or pass 'module:attribute' naming a "
        f"conformance.Subject (or a callable returning one) importable from this environment."
    )


def look_in_cwd(module_name: str, missing: str | None) -> bool:
    """When ``missing`` (the name a ModuleNotFoundError gives) is the top-level package of
    ``module_name`` and the current directory is not on ``sys.path``, append it (``python -m``
    finds a package there; a ``pytest`` script does not) and return True: look again."""
    if missing != module_name.split(".")[0] or os.getcwd() in sys.path:
        return False
    sys.path.append(os.getcwd())
    return True


def _load_target(name: str, target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise _usage(name, "expected the form 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # a package in the current directory, as python -m finds
        if not look_in_cwd(module_name, exc.name):
            raise _usage(name, f"importing module {module_name!r} failed ({exc})") from exc
        try:
            module = importlib.import_module(module_name)
        except ImportError as again:
            raise _usage(name, f"importing module {module_name!r} failed ({again})") from again
    except ImportError as exc:
        raise _usage(name, f"importing module {module_name!r} failed ({exc})") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _usage(name, f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


def _here(obj: Any, subject: Subject, where: str) -> Subject:
    """``subject`` with its relative ``deviations`` paths made absolute: relative to the folder
    of the module that defines ``obj``, its factory (``where``: the module it was named in)."""
    owner = where if isinstance(obj, Subject) else getattr(obj, "__module__", None) or where
    file = getattr(sys.modules.get(owner), "__file__", None)
    if not file or all(Path(p).is_absolute() for p in subject.deviations):
        return subject
    base = Path(file).resolve().parent
    return dataclasses.replace(subject, deviations=tuple(
        str(p if Path(p).is_absolute() else base / p) for p in subject.deviations))


_SUFFIX = re.compile(r"^(?P<base>[^\[\]]+)\[(?P<options>.*)\]$", re.DOTALL)
_WORDS = {"true": True, "false": False, "none": None}
_OPTION_HELP = ("options are keyword=value pairs in brackets after the name, values Python "
                "literals (quote strings), e.g. 'torchrl[use_buffers=False, "
                "mp_start_method=\"fork\"]'")


def _value(name: str, key: str, node: ast.expr) -> Any:
    if isinstance(node, ast.Name) and node.id.lower() in _WORDS:
        return _WORDS[node.id.lower()]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        raise _usage(name, f"the value {ast.unparse(node)!r} of option {key!r} is not a Python "
                           f"literal (a number, a quoted string, True/False/None, a tuple, "
                           f"list or dict of those); {_OPTION_HELP}") from None


def split_name(name: str) -> tuple[str, dict[str, Any]]:
    """``"torchrl[use_buffers=false]"`` -> ``("torchrl", {"use_buffers": False})``; a name
    without brackets has no options.  Values are parsed as literals, never evaluated.

    Raises:
        SubjectError: the brackets do not hold ``key=value`` pairs of literals.
    """
    match = _SUFFIX.match(name.strip())
    if match is None:
        if "[" in name or "]" in name:
            raise _usage(name, f"unbalanced or misplaced brackets; {_OPTION_HELP}")
        return name, {}
    base, inner = match["base"].strip(), match["options"].strip()
    if not inner:
        return base, {}
    try:
        call = ast.parse(f"_({inner})", mode="eval").body
    except SyntaxError:
        raise _usage(name, f"cannot read the options {inner!r}; {_OPTION_HELP}") from None
    assert isinstance(call, ast.Call)
    if call.args or any(k.arg is None for k in call.keywords):
        raise _usage(name, f"the options {inner!r} hold something other than keyword=value "
                           f"pairs; {_OPTION_HELP}")
    return base, {k.arg: _value(name, k.arg, k.value) for k in call.keywords
                  if k.arg is not None}


def format_name(base: str, options: dict[str, Any]) -> str:
    """The name a configured subject has in reports: ``base[key=value, ...]`` (repr values)."""
    if not options:
        return base
    return f"{base}[{', '.join(f'{k}={v!r}' for k, v in options.items())}]"


def accepted_options(factory: Any) -> dict[str, Any] | None:
    """A factory's keyword options and their defaults; None when it takes ``**kwargs`` (any
    option is passed on)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return {}
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name: p.default for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.default is not p.empty}


def _coerce(name: str, obj: Any, where: str = "",
            options: dict[str, Any] | None = None) -> Subject:
    subject = _coerce_object(name, obj, options)
    return _here(obj, subject, where) if subject.deviations else subject


def _coerce_object(name: str, obj: Any, options: dict[str, Any] | None = None) -> Subject:
    options = options or {}
    defaults: dict[str, Any] = {}
    if options:
        accepted = accepted_options(obj) if callable(obj) and not isinstance(obj, Subject) else {}
        if accepted is not None:
            unknown = [k for k in options if k not in accepted]
            if unknown:
                listed = ("accepts (with their defaults): " + ", ".join(
                    f"{k}={v!r}" for k, v in accepted.items())) if accepted else "takes no options"
                raise _usage(name, f"unknown option(s) {', '.join(map(repr, unknown))}; the "
                                   f"subject {listed}")
            defaults = accepted
    elif callable(obj) and not isinstance(obj, Subject):
        defaults = accepted_options(obj) or {}
    if not isinstance(obj, Subject) and callable(obj):
        try:
            obj = obj(**options)
        except Exception as exc:
            raise _usage(name, f"calling the subject factory raised {type(exc).__name__}: "
                               f"{exc}") from exc
    if not isinstance(obj, Subject):
        raise _usage(
            name, f"it points to {type(obj).__name__!r}, not a conformance.Subject"
        )
    if not obj.capabilities:
        raise _usage(name, "the subject provides none of the capabilities "
                     + ", ".join(CAPABILITIES))
    unknown = [c for c in obj.spawns if c not in CAPABILITIES]
    if unknown:
        raise _usage(name, f"its spawns names unknown capabilities {unknown}; expected some of "
                     + ", ".join(CAPABILITIES))
    keyword = obj.deadline_keyword
    if keyword is not None and (not isinstance(keyword, str) or not keyword.isidentifier()
                                or obj.parallel_env is None):
        raise _usage(name, f"its deadline_keyword {keyword!r} must name a keyword argument of "
                     "its parallel_env (an identifier, e.g. 'timeout'), and parallel_env must be "
                     "set")
    if options:
        obj.name = format_name(obj.name, options)
    obj.options = {**defaults, **obj.options, **options}
    return obj


def resolve(name: str) -> Subject:
    """Turn a subject name, options suffix included, into a :class:`Subject`, or raise
    :class:`SubjectError` listing names (or the accepted options).

    Raises:
        SubjectError: the name is unknown, its module does not import, its attribute is missing,
            the object is not a Subject, or an option is unknown or malformed.
    """
    base, options = split_name(name)
    if base in BUILTIN:
        return _coerce(name, _load_target(name, BUILTIN[base]), BUILTIN[base].split(":")[0],
                       options)
    eps = _entry_point_names()
    if base in eps:
        try:
            target = eps[base].load()
        except Exception as exc:  # an entry point whose import breaks
            raise _usage(name, f"loading entry point {eps[base].value!r} failed ({exc})") from exc
        return _coerce(name, target, eps[base].module, options)
    if ":" in base:
        return _coerce(name, _load_target(name, base), base.split(":")[0], options)
    raise _usage(name, "no built-in subject or entry point has this name")


DEFAULT = ("reference", "torchrl")


def default_names() -> list[str]:
    """The subjects run when none is named: ``CONFORMANCE_SUBJECTS`` (comma list; options in
    brackets may hold commas), else the two core built-ins; the AsyncEnvPool built-ins are
    opt-in (``--subject torchrl-async-mp``)."""
    env = os.environ.get("CONFORMANCE_SUBJECTS", "")
    names = re.split(r",(?![^\[]*\])", env)  # (not the commas between a name's options)
    return [n.strip() for n in names if n.strip()] or list(DEFAULT)

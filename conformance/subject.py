"""The subject: one implementation under test, and how a name on the command line becomes one.

A subject provides any subset of four capabilities (see :data:`conformance.catalogue.CAPABILITIES`):

- ``lazy_stack(tds, dim)`` -- heterogeneous stacking of tensordicts;
- ``sequential(*modules, partial_tolerant=True)`` -- a policy built from tensordict modules;
- ``serial_env(makers)`` / ``parallel_env(makers)`` -- a batched env over a list of env makers.

A property whose capability is missing is skipped with a reason that names it.  Names resolve as
a built-in name (``reference``, ``torchrl``), an entry point in the group ``conformance.subjects``,
or ``module:attribute`` (imported, never ``exec``-ed).  The attribute may be a :class:`Subject` or
a zero-argument callable returning one.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
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


def _load_target(name: str, target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise _usage(name, "expected the form 'module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:  # a package in the current directory, as python -m finds
        if exc.name != module_name.split(".")[0] or os.getcwd() in sys.path:
            raise _usage(name, f"importing module {module_name!r} failed ({exc})") from exc
        sys.path.append(os.getcwd())
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


def _coerce(name: str, obj: Any, where: str = "") -> Subject:
    subject = _coerce_object(name, obj)
    return _here(obj, subject, where) if subject.deviations else subject


def _coerce_object(name: str, obj: Any) -> Subject:
    if not isinstance(obj, Subject) and callable(obj):
        try:
            obj = obj()
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
    return obj


def resolve(name: str) -> Subject:
    """Turn a subject name into a :class:`Subject`, or raise :class:`SubjectError` listing names.

    Raises:
        SubjectError: the name is unknown, its module does not import, its attribute is missing,
            or the object is not a Subject.
    """
    if name in BUILTIN:
        return _coerce(name, _load_target(name, BUILTIN[name]), BUILTIN[name].split(":")[0])
    eps = _entry_point_names()
    if name in eps:
        try:
            return _coerce(name, eps[name].load(), eps[name].module)
        except SubjectError:
            raise
        except Exception as exc:  # an entry point whose import breaks
            raise _usage(name, f"loading entry point {eps[name].value!r} failed ({exc})") from exc
    if ":" in name:
        return _coerce(name, _load_target(name, name), name.split(":")[0])
    raise _usage(name, "no built-in subject or entry point has this name")


DEFAULT = ("reference", "torchrl")


def default_names() -> list[str]:
    """The subjects run when none is named: ``CONFORMANCE_SUBJECTS`` (comma list), else the two
    core built-ins; the AsyncEnvPool built-ins are opt-in (``--subject torchrl-async-mp``)."""
    env = os.environ.get("CONFORMANCE_SUBJECTS", "")
    return [n.strip() for n in env.split(",") if n.strip()] or list(DEFAULT)

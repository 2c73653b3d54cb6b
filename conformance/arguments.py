"""Arguments before work: every CLI and plugin argument is checked before the doctor runs and
before torch is imported, and a bad one ends the run with a one-line message naming the value
and the fix, exit code :data:`USAGE` (argparse's own), and no traceback.

A subject name is checked by form without importing it where possible: a built-in name, an
installed entry point of group ``conformance.subjects``, or ``module:attribute`` whose module
:func:`importlib.util.find_spec` finds (that imports the module's parent packages, never the
module).  Resolving it -- importing the module, calling the factory -- comes later, in the
plugin, still as a usage error.  Standard library only (and the kit's findings loader).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

USAGE = 2  # argparse's exit code for a usage error; `check`, `findings` and `matrix` use it too


class ArgumentError(ValueError):
    """A bad argument: the message names the value and the fix."""


def subject_name(name: str) -> None:
    """Raise ArgumentError unless ``name`` can name a subject (see the module docstring)."""
    import importlib.util

    from conformance.subject import (
        BUILTIN,
        SubjectError,
        _entry_point_names,
        _usage,
        look_in_cwd,
        split_name,
    )

    def bad(problem: str) -> ArgumentError:
        return ArgumentError(f"--subject {name!r}: {_usage(name, problem)}")

    if not name.strip():
        raise bad("the name is empty")
    try:  # options in brackets are checked against the factory when it resolves
        base, _ = split_name(name)
    except SubjectError as exc:
        raise ArgumentError(f"--subject {name!r}: {exc}") from None
    if base in BUILTIN or base in _entry_point_names():
        return
    if ":" not in base:
        raise bad("no built-in subject or entry point has this name")
    module, _, attr = base.partition(":")
    if not all(p.isidentifier() for part in (module, attr) for p in part.split(".")):
        raise bad("expected the form 'module:attribute' (dotted Python names)")
    def find() -> bool:
        return importlib.util.find_spec(module) is not None

    try:
        try:
            found = find()
        except ModuleNotFoundError as exc:  # a package in the current directory, as -m finds
            if not look_in_cwd(module, exc.name):
                raise
            found = find()
        if not found and look_in_cwd(module, module):
            found = find()
    except (ImportError, ValueError) as exc:  # a parent package is missing or broken
        raise bad(f"module {module!r} cannot be found ({exc})") from None
    if not found:
        raise bad(f"no module {module!r} is installed or on PYTHONPATH")


def seed(value: Any) -> int | None:
    """``--hypothesis-seed``: a non-negative integer (None when not given)."""
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if number < 0:
        raise ArgumentError(f"--hypothesis-seed {value!r}: not a non-negative integer; give the "
                            "seed a report's header printed (e.g. --hypothesis-seed 1234)")
    return number


def deviations(path: str) -> None:
    """A findings file: it exists and parses (:func:`conformance.findings.load`)."""
    from conformance.findings import FindingsError, load

    if not Path(path).is_file():
        raise ArgumentError(f"--deviations {path!r}: no such file (relative paths are read from "
                            f"{os.getcwd()}); check the path")
    try:
        load(path)
    except FindingsError as exc:
        raise ArgumentError(f"--deviations {path!r}: {exc}") from None


def output_file(option: str, path: str) -> None:
    """A file the run will write (``--report``, ``--junitxml``): no folder itself, and its
    folder exists or can be made (the run makes it): the nearest existing one above is a
    folder, not a file."""
    target = Path(path)
    if not path or target.is_dir():
        raise ArgumentError(f"{option} {path!r}: is a folder or empty; give a file path")
    above = target.resolve().parent
    while not above.exists():
        above = above.parent
    if not above.is_dir():
        raise ArgumentError(f"{option} {path!r}: {str(above)!r} is a file, so the report's "
                            "folder cannot be made there; give another path")


def area(names: list[str]) -> None:
    from conformance import catalogue

    try:
        catalogue.select(names)
    except ValueError as exc:
        raise ArgumentError(f"--area: {exc}") from None


def limit() -> None:
    """``CONFORMANCE_PROPERTY_LIMIT``, when set: a positive number of seconds."""
    value = os.environ.get("CONFORMANCE_PROPERTY_LIMIT")
    if not value:
        return
    try:
        ok = float(value) > 0
    except ValueError:
        ok = False
    if not ok:
        raise ArgumentError(f"CONFORMANCE_PROPERTY_LIMIT={value!r}: not a positive number of "
                            "seconds; unset it or give e.g. 300")


def check_command(ns: Any) -> None:
    """Every argument of ``python -m conformance check`` (raises ArgumentError)."""
    for name in ns.subject or []:
        subject_name(name)
    seed(ns.seed)
    area(ns.area)
    for path in ns.deviations:
        deviations(path)
    for option, path in (("--report", ns.report), ("--junitxml", ns.junitxml)):
        if path is not None:
            output_file(option, path)
    if ns.numprocesses and ns.numprocesses != "auto" and not (
            ns.numprocesses.isdigit() and int(ns.numprocesses) > 0):
        raise ArgumentError(f"-n {ns.numprocesses!r}: give a positive number of processes or "
                            "'auto'")
    limit()


def plugin(config: Any) -> int | None:
    """The plugin's own arguments (raises ``pytest.UsageError``); returns the run's seed, if
    one was given (``--hypothesis-seed``, or the one xdist passes to its workers)."""
    import pytest

    given = config.getoption("hypothesis_seed", default=None)
    if given is None:
        given = getattr(config.option, "conformance_seed", None)
    try:
        for name in config.getoption("--subject") or []:
            subject_name(name)
        for path in config.getoption("--deviations"):
            deviations(path)
        if config.getoption("--report"):
            output_file("--report", config.getoption("--report"))
        area(config.getoption("--conformance-area"))
        limit()
        return seed(given)
    except ArgumentError as exc:
        raise pytest.UsageError(str(exc)) from None

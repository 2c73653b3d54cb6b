"""Known deviations: which property a subject fails, and why.

A deviations file is TOML with one ``[[deviation]]`` table per entry::

    [[deviation]]
    id = "EXC-006"            # a catalogue ID
    subject = "torchrl"       # the subject name
    reason = "..."            # why: a finding, in one or two sentences
    fixed_in = "tensordict 0.16"   # optional
    reproducer = "..."        # optional: standalone snippet
    when = "tensordict<0.14"  # optional: the releases it holds on (PEP 440 specifiers,
                              # several joined by ";"); elsewhere the entry is inactive

Entries are strict: a listed deviation that passes fails the run (xpassed); an entry that matches
no property of the run warns, unless its ``when`` excludes the installed releases (then it is
inactive: one file serves every release of a version matrix).  A malformed file raises
:class:`DeviationsError` naming the line.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from conformance import catalogue

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_FIELDS = {"id", "subject", "reason", "fixed_in", "reproducer", "when"}
_REQUIRED = ("id", "subject", "reason")


class DeviationsError(ValueError):
    """A deviations file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Deviation:
    """One known deviation of ``subject`` on property ``id``."""

    id: str
    subject: str
    reason: str
    fixed_in: str = ""
    reproducer: str = ""
    when: str = ""
    source: str = ""  # "file:line", for messages

    def applies(self) -> bool:
        """Whether the installed releases satisfy every requirement in ``when`` (a package that
        is not installed satisfies none)."""
        for req in _requirements(self.when):
            try:
                installed = version(req.name)
            except PackageNotFoundError:
                return False
            if not req.specifier.contains(installed, prereleases=True):
                return False
        return True


def _requirements(when: str) -> list[Requirement]:
    """Parse ``"tensordict<0.14; torchrl>=0.12"`` into requirements; ValueError names the part."""
    out = []
    for part in filter(None, (p.strip() for p in when.split(";"))):
        try:
            req = Requirement(part)
        except InvalidRequirement as exc:
            raise ValueError(f"{part!r} is not a requirement such as 'tensordict<0.14' ({exc})"
                             ) from None
        if not req.specifier or req.marker or req.extras or req.url:
            raise ValueError(f"{part!r} must be a package name and version specifiers only, "
                             "such as 'tensordict>=0.10,<0.14'")
        out.append(req)
    return out


def _entry_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1)
            if re.match(r"\s*\[\[\s*deviation\s*\]\]", line)]


def load(path: str | Path) -> list[Deviation]:
    """Read and validate a deviations file.

    Raises:
        DeviationsError: the file is missing, is not valid TOML, or an entry lacks a required
            field, has an unknown field or a non-string value, or names an unknown property ID.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeviationsError(f"{path}: cannot read deviations file ({exc.strerror})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DeviationsError(
            f"{path}: not valid TOML: {exc}. Each entry is a [[deviation]] table with "
            f"id, subject and reason strings."
        ) from exc
    extra = set(data) - {"deviation"}
    if extra:
        raise DeviationsError(
            f"{path}: unexpected top-level key(s) {sorted(extra)}; expected only "
            f"[[deviation]] tables"
        )
    entries = data.get("deviation", [])
    if not isinstance(entries, list):
        raise DeviationsError(f"{path}: 'deviation' must be an array of tables: [[deviation]]")
    lines = _entry_lines(text)
    out: list[Deviation] = []
    for k, entry in enumerate(entries):
        line = lines[k] if k < len(lines) else 1
        where = f"{path}:{line}"
        missing = [f for f in _REQUIRED if f not in entry]
        if missing:
            raise DeviationsError(
                f"{where}: deviation entry {k + 1} lacks {', '.join(missing)}; each entry needs "
                f"id, subject and reason"
            )
        unknown = set(entry) - _FIELDS
        if unknown:
            raise DeviationsError(
                f"{where}: deviation entry {k + 1} has unknown field(s) {sorted(unknown)}; "
                f"allowed: {', '.join(sorted(_FIELDS))}"
            )
        for name, value in entry.items():
            if not isinstance(value, str):
                raise DeviationsError(
                    f"{where}: field {name!r} of deviation entry {k + 1} must be a string, "
                    f"got {value!r} ({type(value).__name__})"
                )
        if entry["id"] not in catalogue.BY_ID:
            raise DeviationsError(
                f"{where}: deviation entry {k + 1} names unknown property ID {entry['id']!r}; "
                f"see `python -m conformance list`"
            )
        if not entry["reason"].strip():
            raise DeviationsError(f"{where}: deviation entry {k + 1} has an empty reason")
        try:
            _requirements(entry.get("when", ""))
        except ValueError as exc:
            raise DeviationsError(f"{where}: field 'when' of deviation entry {k + 1}: {exc}"
                                  ) from None
        out.append(Deviation(source=where, **entry))
    return out

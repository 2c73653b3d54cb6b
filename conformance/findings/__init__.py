"""Findings: known upstream defects, each recognised by the failures it causes.

A finding is one defect, in one upstream *component* (tensordict's lazy stack, torchrl's
SerialEnv, ...) or in one subject, which may show in several properties. A findings file is TOML
with one ``[[finding]]`` table per defect::

    [[finding]]
    name = "lazy-stack-empty-slice"      # unique, short: reports and issue texts use it
    component = "tensordict.lazy_stack"  # where it lives: every subject that uses it inherits it
    # subject = "mylib"                  # ... or the one subject it belongs to (exactly one)
    ids = ["STK-006", "EXC-003"]         # the properties it shows in
    signature = 'items cannot be empty'  # a regex its failures match (see failure_text)
    reason = "..."                       # the defect, in one or two sentences
    reproducer = "..."                   # optional: a standalone script that FAILS while it holds
    when = "tensordict<0.15"             # optional: the releases it holds on (PEP 440, ';'-joined)
    options = { use_buffers = false }    # optional: the subject options it holds under
    upstream = "https://..."             # optional: where it is tracked

While a property runs, a failing example whose failure text matches the signature of a finding
declared for that subject and property is a *hit*: it is counted and hypothesis goes on as if the
example were rejected. Any other failure is a failure. A finding is proven still to hold by its
reproducer (:func:`verify`), not by what hypothesis happened to draw.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement

from conformance import catalogue
from conformance.releases import version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# The upstream components the built-in subjects are made of; a subject declares the ones it reuses
# (``Subject.uses``) and inherits their findings. Other names are allowed (a downstream library's
# own parts): any dotted name.
COMPONENTS = {
    "tensordict.lazy_stack": "tensordict's LazyStackedTensorDict (lazy_stack)",
    "tensordict.TensorDictSequential": "tensordict.nn.TensorDictSequential(partial_tolerant=True)",
    "torchrl.SerialEnv": "torchrl.envs.SerialEnv",
    "torchrl.ParallelEnv": "torchrl.envs.ParallelEnv",
    "torchrl.AsyncEnvPool.threading": "torchrl.envs.AsyncEnvPool(backend='threading')",
    "torchrl.AsyncEnvPool.multiprocessing": "torchrl.envs.AsyncEnvPool(backend='multiprocessing')",
    "torchrl.data.MultiCategorical": "torchrl.data.MultiCategorical (an action spec's rand())",
}
_FIELDS = {"name", "component", "subject", "ids", "signature", "reason", "reproducer", "when",
           "upstream", "options"}
_REQUIRED = ("name", "ids", "signature", "reason")
_COMPONENT = re.compile(r"^[A-Za-z_][\w-]*(\.[A-Za-z_][\w-]*)+$")
_EXAMPLE = """[[finding]]
name = "lazy-stack-empty-slice"
component = "tensordict.lazy_stack"   # or: subject = "NAME"
ids = ["STK-006"]
signature = 'items cannot be empty'   # a regex over the failure text
reason = "..."
"""


class FindingsError(ValueError):
    """A findings file that cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Finding:
    """One known defect: where it lives, the properties it shows in, how to recognise it."""

    name: str
    ids: tuple[str, ...]
    signature: str
    reason: str
    component: str = ""
    subject: str = ""
    reproducer: str = ""
    when: str = ""
    upstream: str = ""
    source: str = ""  # "file:line", for messages
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    def applies(self) -> bool:
        """Whether the installed releases satisfy every requirement in ``when`` (a package that
        is not installed satisfies none)."""
        for req in requirements(self.when):
            try:
                installed = version(req.name)
            except PackageNotFoundError:
                return False
            if not req.specifier.contains(installed, prereleases=True):
                return False
        return True

    def concerns(self, subject: str, uses: tuple[str, ...] | list[str],
                 options: dict[str, Any] | None = None) -> bool:
        """Whether this finding is declared for ``subject`` (by name, its options suffix aside, or
        through a component the subject uses) configured with ``options`` (the subject's
        options, its defaults included): a finding with ``options`` holds only where each of
        them has that value."""
        given = options or {}
        if any(k not in given or given[k] != v or type(given[k]) is not type(v)
               for k, v in self.options.items()):
            return False
        if self.subject:
            return self.subject in (subject, subject.split("[", 1)[0])
        return self.component in uses

    def matches(self, text: str) -> bool:
        """Whether a failure text (:func:`failure_text`) is this finding's."""
        return re.search(self.signature, text) is not None

    @property
    def where(self) -> str:
        where = self.component or f"subject {self.subject}"
        if self.options:
            where += " with " + ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return where


def failure_text(exc: BaseException) -> str:
    """What a signature is matched against: ``Type: message`` for the exception and each one
    Python shows with it (its cause, else its unsuppressed context), one per line: the kit's own
    assertion messages ("what: observed ..., expected ... [call]. Likely fix: ...") included."""
    from conformance.assertions import shown_exceptions

    return "\n".join(f"{type(e).__name__}: {e}" for e in shown_exceptions(exc))


def requirements(when: str) -> list[Requirement]:
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


def _entry_lines(text: str, table: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1)
            if re.match(rf"\s*\[\[\s*{table}\s*\]\]", line)]


def _check(entry: dict[str, Any], where: str, k: int) -> Finding:
    """Validate one ``[[finding]]`` table."""
    label = f"{where}: finding {entry.get('name', k + 1)!r}"
    missing = [f for f in _REQUIRED if f not in entry]
    if "signature" in missing:
        raise FindingsError(
            f"{label} has no signature: without one a known defect would hide every other "
            f"failure of its properties. Add signature = '<regex>' matching the failure text "
            f"this defect causes (the kit prints it: 'Type: message' lines, e.g. 'KeyError: "
            f"key \"sub\" not found' or the kit's 'observed ..., expected ...' message)")
    if missing:
        raise FindingsError(f"{label} lacks {', '.join(missing)}; each finding needs name, ids, "
                            f"signature, reason and one of component / subject, e.g.\n{_EXAMPLE}")
    unknown = set(entry) - _FIELDS
    if unknown:
        raise FindingsError(f"{label} has unknown field(s) {sorted(unknown)}; allowed: "
                            f"{', '.join(sorted(_FIELDS))}")
    options = entry.get("options")
    if "options" in entry and (not isinstance(options, dict) or not options or any(
            isinstance(v, (dict, list)) for v in options.values())):
        raise FindingsError(f"{label}: options must be a non-empty inline table of the subject "
                            f"options the defect holds under, such as options = "
                            f"{{ use_buffers = false }}, got {options!r}")
    for name, value in entry.items():
        if name not in ("ids", "options") and not isinstance(value, str):
            raise FindingsError(f"{label}: field {name!r} must be a string, got {value!r} "
                                f"({type(value).__name__})")
    ids = entry["ids"]
    if isinstance(ids, str):
        ids = [ids]
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise FindingsError(f"{label}: ids must be a non-empty list of property IDs, such as "
                            f'ids = ["PAR-001", "PAR-002"], got {entry["ids"]!r}')
    unknown_ids = [i for i in ids if i not in catalogue.BY_ID]
    if unknown_ids:
        raise FindingsError(f"{label} names unknown property ID(s) {unknown_ids}; see "
                            f"`python -m conformance list`")
    if bool(entry.get("component")) == bool(entry.get("subject")):
        raise FindingsError(
            f"{label} must name exactly one of component (the upstream part the defect lives in, "
            f"inherited by every subject that uses it: {', '.join(COMPONENTS)}) or subject (the "
            f"one subject it belongs to)")
    if entry.get("component") and not _COMPONENT.match(entry["component"]):
        raise FindingsError(f"{label}: component {entry['component']!r} must be a dotted name "
                            f"such as 'torchrl.SerialEnv'")
    try:
        re.compile(entry["signature"])
    except re.error as exc:
        raise FindingsError(f"{label}: signature {entry['signature']!r} is not a regular "
                            f"expression ({exc})") from None
    if not entry["signature"].strip() or re.search(entry["signature"], ""):
        raise FindingsError(f"{label}: signature {entry['signature']!r} matches any text; make "
                            f"it match this defect's failures only")
    if not entry["reason"].strip():
        raise FindingsError(f"{label} has an empty reason")
    try:
        requirements(entry.get("when", ""))
    except ValueError as exc:
        raise FindingsError(f"{label}: field 'when': {exc}") from None
    fields = {**entry, "ids": tuple(ids), "options": dict(entry.get("options", {}))}
    return Finding(source=where, **fields)


def load(path: str | Path) -> list[Finding]:
    """Read and validate a findings file.

    Raises:
        FindingsError: the file is missing or is not TOML, or an entry lacks a field (a
            signature above all), has an unknown one, or names an unknown property ID.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FindingsError(f"{path}: cannot read findings file ({exc.strerror}; looked for "
                            f"{path.resolve()}); check the path (a subject's deviations are read "
                            f"relative to the module that defines it, --deviations relative to "
                            f"the current directory)") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FindingsError(f"{path}: not valid TOML: {exc}. Each entry is a [[finding]] table, "
                            f"e.g.\n{_EXAMPLE}") from exc
    if "deviation" in data:
        line = (_entry_lines(text, "deviation") or [1])[0]
        raise FindingsError(
            f"{path}:{line}: [[deviation]] tables are replaced by [[finding]] tables, which need "
            f"a signature (a regex over the failure text) so that a known defect hides no other "
            f"failure: rename the table, turn 'id' into ids = [...], 'subject' stays (or name "
            f"the component), add name and signature, e.g.\n{_EXAMPLE}")
    extra = set(data) - {"finding"}
    if extra:
        raise FindingsError(f"{path}: unexpected top-level key(s) {sorted(extra)}; expected only "
                            f"[[finding]] tables")
    entries = data.get("finding", [])
    if not isinstance(entries, list):
        raise FindingsError(f"{path}: 'finding' must be an array of tables: [[finding]]")
    lines = _entry_lines(text, "finding")
    out = [_check(entry, f"{path}:{lines[k] if k < len(lines) else 1}", k)
           for k, entry in enumerate(entries)]
    seen: dict[str, str] = {}
    for f in out:
        if f.name in seen:
            raise FindingsError(f"{f.source}: finding name {f.name!r} is used again (first at "
                                f"{seen[f.name]}); names must be unique")
        seen[f.name] = f.source
    return out


def shipped() -> list[Path]:
    """The kit's own findings files (one per upstream project or built-in subject)."""
    return sorted(Path(__file__).parent.glob("*.toml"))


# -- strictness: each finding's reproducer, run alone (conformance/findings/proving.py) ----------

from conformance.findings.proving import (  # noqa: E402 (after Finding, which it uses)
    VERIFY_SECONDS as VERIFY_SECONDS,
)
from conformance.findings.proving import Verdict as Verdict  # noqa: E402
from conformance.findings.proving import Verifier as Verifier  # noqa: E402
from conformance.findings.proving import (  # noqa: E402
    close_reproducer_zygote as close_reproducer_zygote,
)
from conformance.findings.proving import verify as verify  # noqa: E402


def issue_text(finding: Finding, versions: dict[str, str],
               verdict: Verdict | None = None) -> str:
    """``finding`` as issue text for its upstream project (markdown): title, the releases it was
    checked on, the properties it breaks, the standalone reproducer, expected vs observed."""
    title = re.split(r"(?<=[.;:])\s", " ".join(finding.reason.split()), maxsplit=1)[0]
    title = title.rstrip(".;:")
    source = re.sub(r"^.*[/\\](?=conformance[/\\]findings[/\\])", "", finding.source)
    checked = ", ".join(f"{k} {v}" for k, v in versions.items() if v != "not installed")
    lines = [f"## {finding.where}: {title}", "",
             f"*Finding `{finding.name}` of the multi-task conformance kit "
             f"(`{source}`).*", "",
             f"**Checked on:** {checked}" + (f" (holds on `{finding.when}`)" if finding.when
                                             else ""),
             f"**Upstream:** {finding.upstream or 'not yet reported'}", "",
             "**What happens:** " + " ".join(finding.reason.split()), "",
             "**Properties it breaks:**"]
    lines += [f"- {pid}: {catalogue.get(pid).statement}" for pid in finding.ids]
    if finding.reproducer.strip():
        lines += ["", "**Reproducer** (standalone; it fails while the defect holds):", "",
                  "```python", finding.reproducer.strip(), "```"]
    if verdict is not None:
        lines += ["", f"**Expected vs observed:** the reproducer {verdict.status}"
                      + (f" ({verdict.detail})" if verdict.detail else "") + "."]
        if verdict.output:
            lines += ["", "```", verdict.output[-1500:], "```"]
    return "\n".join(lines)


def declare(findings: list[Finding], subjects: dict[str, Any],
            props: list[Any]) -> dict[tuple[str, str], tuple[Finding, ...]]:
    """The findings each (subject name, property ID) pair declares: those naming the property,
    for the subject or a component it ``uses``, where the subject has the property's
    capabilities."""
    out = {}
    for prop in props:
        for name, subj in subjects.items():
            group = tuple(f for f in findings if prop.id in f.ids
                          and f.concerns(name, subj.uses, getattr(subj, "options", {})))
            if group and not subj.missing(prop.needs):
                out[(name, prop.id)] = group
    return out

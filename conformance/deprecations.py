"""Deprecations a subject raises while a property runs: tomorrow's breakage, reported today.

While a property's body runs (:func:`conformance.properties._core.prop` wraps each example in
:func:`recording`), every ``FutureWarning``, ``DeprecationWarning`` or
``PendingDeprecationWarning`` raised (by the subject, or by the upstream code it calls) is counted
per (category, message, origin ``file:line``) on the running call, whatever the warning filters
say; then each distinct warning is emitted again under the filters in force, so pytest's warning
summary, ``-W error`` and ``-W ignore`` see what they saw before: recording changes no outcome.
Warnings of hypothesis or pytest themselves are not the subject's and are left out.

The JSON report's cell holds them as ``"warnings": [{"message", "category", "origin", "count"}]``
(:func:`merge`); :func:`format_block` is the terminal's short summary.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CATEGORIES: tuple[type[Warning], ...] = (FutureWarning, DeprecationWarning,
                                         PendingDeprecationWarning)
_NOT_THE_SUBJECTS = ("hypothesis", "_pytest", "pytest", "pluggy")
_MESSAGE_LIMIT = 300
_PER_CELL = 20  # distinct warnings kept per cell (the count of the rest is folded into the last)

Tally = dict[tuple[str, str, str], int]  # (category, message, origin) -> count


_KIT_ROOT = str(Path(__file__).resolve().parents[1]).replace("\\", "/") + "/"


def origin(filename: str, lineno: int) -> str:
    """``file:line``, the file shortened to its path below site-packages where it lies there,
    or below the kit's checkout (a warning pointing at the property's own ``key in view``), so
    that a report names no machine's paths."""
    filename = filename.replace("\\", "/")
    for marker in ("site-packages/", "dist-packages/"):
        if marker in filename:
            filename = filename.rsplit(marker, 1)[1]
            break
    else:
        if filename.startswith(_KIT_ROOT):
            filename = filename[len(_KIT_ROOT):]
    return f"{filename}:{lineno}"


def _theirs(caught: warnings.WarningMessage) -> bool:
    """Whether a caught warning is a deprecation of the subject's (or the code it calls)."""
    if not issubclass(caught.category, CATEGORIES):
        return False
    if caught.category.__module__.split(".")[0] in _NOT_THE_SUBJECTS:
        return False
    parts = caught.filename.replace("\\", "/").split("/")
    return not any(p in _NOT_THE_SUBJECTS for p in parts[-3:-1])


@contextmanager
def recording(tally: Tally) -> Iterator[None]:
    """Count into ``tally`` the deprecations raised inside the block; then emit each distinct
    warning caught (deprecation or not) once more under the filters in force outside."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:  # type: ignore[assignment]
            for category in CATEGORIES:
                warnings.simplefilter("always", category)
            yield
    except BaseException:
        _settle(tally, caught, failed=True)
        raise
    _settle(tally, caught, failed=False)


def _settle(tally: Tally, caught: list[warnings.WarningMessage], failed: bool) -> None:
    seen = set()
    for w in caught:
        if _theirs(w):
            key = (w.category.__name__, str(w.message)[:_MESSAGE_LIMIT],
                   origin(w.filename, w.lineno))
            tally[key] = tally.get(key, 0) + 1
        again = (w.category, str(w.message), w.filename, w.lineno)
        if again in seen:
            continue
        seen.add(again)
        try:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
        except Warning:
            if not failed:  # -W error: the warning fails the example, as it did unrecorded
                raise


def as_list(tally: Tally) -> list[dict[str, Any]]:
    """The cell's ``warnings`` list, most frequent first."""
    rows = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"message": m, "category": c, "origin": o, "count": n}
            for (c, m, o), n in rows[:_PER_CELL]]


def merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Two cells' ``warnings`` lists as one (counts added): several tests make up one cell."""
    tally: Tally = {}
    for row in [*old, *new]:
        key = (row["category"], row["message"], row["origin"])
        tally[key] = tally.get(key, 0) + int(row["count"])
    return as_list(tally)


def format_block(report: dict[str, Any], limit: int = 8) -> list[str]:
    """The terminal's summary: each distinct deprecation, how often, where it comes from and the
    cells (``ID@subject``) it showed in; empty when none was raised."""
    grouped: dict[tuple[str, str, str], tuple[int, list[str]]] = {}
    for subj, entry in report.get("subjects", {}).items():
        for pid, cell in entry.get("properties", {}).items():
            for row in cell.get("warnings", ()):
                key = (row["category"], row["message"], row["origin"])
                count, cells = grouped.get(key, (0, []))
                grouped[key] = (count + int(row["count"]), [*cells, f"{pid}@{subj}"])
    if not grouped:
        return []
    rows = sorted(grouped.items(), key=lambda kv: (-len(kv[1][1]), -kv[1][0], kv[0]))
    lines = [f"deprecations raised while properties ran ({len(rows)} distinct; the JSON report "
             f"lists them per cell under 'warnings'):"]
    for (category, message, where), (count, cells) in rows[:limit]:
        shown = ", ".join(cells[:4]) + (f" +{len(cells) - 4}" if len(cells) > 4 else "")
        text = " ".join(message.split())
        lines.append(f"  {category} x{count} at {where} [{shown}]: "
                     f"{text[:160]}{'...' if len(text) > 160 else ''}")
    if len(rows) > limit:
        lines.append(f"  ... {len(rows) - limit} more in the JSON report")
    return lines

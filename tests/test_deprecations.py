"""Deprecations a subject raises while properties run reach the JSON report and the terminal,
and change no outcome (conformance.deprecations)."""

from __future__ import annotations

import warnings

import pytest

from conformance import deprecations

QUICK = ("--profile", "quick", "--skip-doctor")


def test_recording_counts_and_emits_again():
    """Each deprecation is counted per (category, message, origin); the filters outside still
    see each distinct warning once, and other categories pass through uncounted."""
    tally: deprecations.Tally = {}
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        with deprecations.recording(tally):
            for _ in range(3):
                warnings.warn("old api", FutureWarning, stacklevel=1)
            warnings.warn("soon gone", DeprecationWarning, stacklevel=1)
            warnings.warn("not a deprecation", UserWarning, stacklevel=1)
    rows = deprecations.as_list(tally)
    assert [(r["category"], r["message"], r["count"]) for r in rows] == [
        ("FutureWarning", "old api", 3), ("DeprecationWarning", "soon gone", 1)]
    assert rows[0]["origin"].endswith("test_deprecations.py:" + rows[0]["origin"].split(":")[-1])
    assert sorted(str(w.message) for w in outside) == ["not a deprecation", "old api",
                                                       "soon gone"]


def test_recording_keeps_error_filter_and_failures():
    """``-W error``: the warning still fails the block; a failure inside is not replaced."""
    tally: deprecations.Tally = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        with pytest.raises(FutureWarning), deprecations.recording(tally):
            warnings.warn("old api", FutureWarning, stacklevel=1)
        with pytest.raises(KeyError), deprecations.recording(tally):
            warnings.warn("old api", FutureWarning, stacklevel=1)
            raise KeyError("x")
    assert sum(tally.values()) == 2


def test_merge_adds_counts():
    row = {"category": "FutureWarning", "message": "m", "origin": "a.py:1", "count": 2}
    assert deprecations.merge([row], [dict(row, count=3)]) == [dict(row, count=5)]


def test_planted_future_warning_is_reported(run_cli):
    """A subject whose lazy_stack emits a FutureWarning: each cell lists it with its
    origin in the subject's module, the outcomes stay passed, the terminal summarises it."""
    run = run_cli("check", "--subject", "tests.subjects:warning_stack", "--area", "STK", *QUICK,
                  "--", "-k", "index_returns_originals or unbind_returns_originals",
                  report=True)
    assert run.code == 0, run.out[-3000:]
    cells = run.report["subjects"]["warning_stack"]["properties"]
    assert len(cells) == 2 and all(c["outcome"] == "passed" for c in cells.values()), cells
    for pid, cell in cells.items():
        (row,) = cell["warnings"]
        assert row["category"] == "FutureWarning", (pid, row)
        assert "keyword-only in 9.0" in row["message"]
        assert "tests/subjects.py:" in row["origin"], row
        assert row["count"] >= 1
    assert "deprecations raised while properties ran" in run.out
    assert "FutureWarning x" in run.out
    assert run.out.strip().splitlines()[-1].startswith("conformance: ")


def test_matrix_lists_deprecations_per_column(tmp_path):
    """The version matrix's deprecations table: one row per deprecation, per report the number
    of its cells that raised it."""
    import json

    from conformance import matrix

    row = {"category": "FutureWarning", "message": "gone in 0.17", "origin": "td/x.py:3",
           "count": 4}
    paths = []
    for name, warned in (("old", []), ("new", [row])):
        path = tmp_path / f"{name}.json"
        cells = {pid: {"outcome": "passed", "message": "", "warnings": warned}
                 for pid in ("STK-001", "STK-002")}
        path.write_text(json.dumps({"subjects": {"torchrl": {"properties": cells}},
                                    "versions": {"torchrl": "0.14.1", "tensordict": name}}))
        paths.append(str(path))
    table = matrix.deprecations_table(paths)
    assert "| FutureWarning: gone in 0.17 | `td/x.py:3` | - | 2 |" in table, table
    assert matrix.deprecations_table(paths[:1]) == ""

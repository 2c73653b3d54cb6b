"""The benchmark scripts still run and still check what they claim to (no timings asserted).

BENCHMARKS.md is only as good as the scripts behind it: these tests run each benchmark on tiny
sizes so that a change to the reference or to an API they use breaks here, not on the day someone
next runs ``tox -e bench``.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from benchmarks import envs, policy


def test_policy_rows_compare_equal_outputs() -> None:
    rows = policy.run(sizes=(2, 8), repeats=1, settle_for=0)
    assert [r["elements"] for r in rows] == [2, 8]
    for r in rows:
        assert r["equal"] is True
        assert r["tensordict_ms"] > 0 and r["reference_ms"] > 0
        assert r["speedup"] == pytest.approx(r["tensordict_ms"] / r["reference_ms"])
    assert "| 8 " in policy.format_rows(rows)


def test_policy_equality_check_catches_a_wrong_action() -> None:
    """check_equal is what lets a speed-up be reported at all: it must reject a wrong output."""
    from reference import PartialTolerantSequential

    mods = policy.modules()
    ours = PartialTolerantSequential(*mods, partial_tolerant=True)
    a, b = policy.stack(4), policy.stack(4)
    with torch.no_grad():
        ours(a)
        ours(b)
    policy.check_equal(a, b)
    b.tensordicts[3].set("action", b.tensordicts[3].get("action") + 1e-2)
    with pytest.raises(AssertionError, match="element 3 'action'"):
        policy.check_equal(a, b)


def test_cache_pandas_probe_asks_once_and_passes_other_names(monkeypatch) -> None:
    asked: list[str] = []

    def probe(name: str, package: str | None = None) -> object:
        asked.append(name)
        return None

    monkeypatch.setattr(importlib.util, "find_spec", probe)  # restored after the test
    policy.cache_pandas_probe()
    for name in ("pandas", "pandas", "numpy", "numpy"):
        importlib.util.find_spec(name)
    assert asked == ["pandas", "numpy", "numpy"]


def test_env_rows_for_the_reference() -> None:
    """One tiny scenario through the reference's envs (torchrl's spawn start is left to bench)."""
    only = ("reference serial", "reference parallel", "reference parallel (per step)")
    rows = envs.run(steps=4, task_steps=4, repeats=1, only=only, scenarios=(4,), settle_for=0)
    assert [r["implementation"] for r in rows] == list(only)
    for r in rows:
        assert r["scenario"] == "4 cheap tasks"
        assert r["frames_per_s"] > 0
        assert r["vs_parallelenv"] is None and r["vs_raw"] is None
    assert "reference parallel (per step)" in envs.format_rows(rows)


def test_verdicts_time_a_failing_mutant_against_the_passing_reference(monkeypatch) -> None:
    """benchmarks.verdicts runs the reference around the mutants and reports each mutant's wall
    time over the references' median, whether its KILLS failed, and the median and worst."""
    from benchmarks import verdicts

    runs = iter([10.0, 30.0, 5.0, 14.0])  # reference, two mutants, reference again
    failed = {"tests.mutants.m:a": ["STK-001"], "tests.mutants.m:b": []}

    def fake_check(subject: str, seed: int = 0) -> dict:
        return {"subject": subject, "seconds": next(runs), "exit": 0 if subject == "reference"
                else 1, "failed": failed.get(subject, []), "load": 0.5}

    monkeypatch.setattr(verdicts, "timed_check", fake_check)
    monkeypatch.setattr("tests.kill_matrix.discover", lambda: {
        "tests.mutants.m:a": ["STK-001"], "tests.mutants.m:b": ["STK-002"],
        "tests.mutants.x:c": []})
    result = verdicts.run(only="mutants.m:")
    assert result["reference_median"] == 12.0
    assert [round(r["ratio"], 2) for r in result["mutants"]] == [2.5, 0.42]
    text = verdicts.format_result(result)
    assert "| m:a " in text and "| yes " in text and "no: ['STK-002']" in text
    assert "median 1.46x, worst 2.50x (m:a), 1 of 2 within 2x" in text
    assert verdicts.command("reference", "r.json", 3)[-4:] == ["--hypothesis-seed", "3",
                                                               "--report", "r.json"]

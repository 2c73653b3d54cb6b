"""Tests of ``python -m conformance matrix``: merging reports and gating on regressions."""

from __future__ import annotations

import json
from pathlib import Path


def _report(tmp_path: Path, name: str, torchrl: str, outcomes: dict[str, str],
            subject: str = "torchrl") -> str:
    path = tmp_path / f"{name}-{torchrl}.json"
    path.write_text(json.dumps({
        "subjects": {subject: {"properties": {
            pid: {"outcome": o, "message": ""} for pid, o in outcomes.items()}}},
        "versions": {"torchrl": torchrl, "tensordict": "x"},
        "profile": "ci", "hypothesis_seed": "derandomized"}))
    return str(path)


class TestMatrix:
    def test_merges_reports_into_one_table(self, run_cli, tmp_path):
        """Each report's subject becomes a labelled column; markdown output is a table."""
        a = _report(tmp_path, "a", "0.14.1", {"STK-001": "passed", "POL-009": "deviation"})
        b = _report(tmp_path, "b", "0.12.0", {"STK-001": "passed", "POL-009": "failed"})
        run = run_cli("matrix", a, b, "--markdown", "--baseline", "0")
        assert "| ID | torchrl @ torchrl 0.14.1 / tensordict x | torchrl @ torchrl 0.12.0" \
               in run.out
        assert "| STK-001 | passed | passed |" in run.out
        assert "| POL-009 | deviation | FAILED |" in run.out
        assert run.code == 0, run.out  # POL-009 did not pass on the baseline: no regression

    def test_configurations_are_columns_apart(self):
        """A configured subject (options in its name) is its own column, gated only against the
        same configuration: failing where the default configuration passed is no regression."""
        import tempfile

        from conformance import matrix

        with tempfile.TemporaryDirectory() as tmp:
            a = _report(Path(tmp), "a", "0.14.1", {"PAR-003": "passed"})
            b = _report(Path(tmp), "b", "0.14.1", {"PAR-003": "failed"},
                        subject="torchrl[use_buffers=False]")
            cols = matrix.columns([a, b])
        assert [c.subject for c in cols] == ["torchrl", "torchrl[use_buffers=False]"]
        assert matrix.regressions(cols, 0) == []

    def test_planted_regression_fails_the_gate(self, run_cli, tmp_path):
        """A property passing on the baseline and failing in another column exits 1."""
        a = _report(tmp_path, "a", "0.14.1", {"STK-001": "passed", "EXC-001": "passed"})
        b = _report(tmp_path, "b", "0.15.0", {"STK-001": "failed", "EXC-001": "passed"})
        run = run_cli("matrix", a, b)
        assert run.code == 1
        assert "STK-001: passed in [torchrl @ torchrl 0.14.1 / tensordict x] but failed in " \
               "[torchrl @ torchrl 0.15.0 / tensordict x]" in run.out

    def test_malformed_report_names_the_file(self, run_cli, tmp_path):
        """A file that is not a conformance report exits 2 naming the file and the fix."""
        bad = tmp_path / "bad.json"
        bad.write_text('{"nope": 1}')
        run = run_cli("matrix", str(bad))
        assert run.code == 2
        assert f"{bad}: no 'subjects' object" in run.out

    def test_each_subject_is_gated_against_itself(self, run_cli, tmp_path):
        """Subjects are compared with themselves in the baseline report, never with each other;
        a property that becomes a declared deviation is a regression too."""
        def two(name: str, torchrl: str, ref: dict[str, str], trl: dict[str, str]) -> str:
            path = tmp_path / f"{name}.json"
            path.write_text(json.dumps({
                "subjects": {s: {"properties": {p: {"outcome": o} for p, o in props.items()}}
                             for s, props in (("reference", ref), ("torchrl", trl))},
                "versions": {"torchrl": torchrl, "tensordict": "x"}}))
            return str(path)

        old = two("old", "0.12.0", {"EXC-003": "passed", "PAR-001": "passed"},
                  {"EXC-003": "deviation", "PAR-001": "deviation"})
        new = two("new", "0.14.1", {"EXC-003": "passed", "PAR-001": "passed"},
                  {"EXC-003": "passed", "PAR-001": "deviation"})
        run = run_cli("matrix", old, new)  # torchrl fails what reference passes: not a regression
        assert run.code == 0, run.out
        assert f"no regression against baseline report [0] {old}" in run.out
        newer = two("newer", "0.15.0", {"EXC-003": "deviation", "PAR-001": "passed"},
                    {"EXC-003": "passed", "PAR-001": "deviation"})
        run = run_cli("matrix", old, new, newer, "--baseline", "1")
        assert run.code == 1, run.out
        assert "2 regression(s)" in run.out  # every other report is gated, older ones too
        assert "EXC-003: passed in [torchrl @ torchrl 0.14.1 / tensordict x] but deviation in " \
               "[torchrl @ torchrl 0.12.0 / tensordict x]" in run.out
        assert "EXC-003: passed in [reference @ torchrl 0.14.1 / tensordict x] but deviation in " \
               "[reference @ torchrl 0.15.0 / tensordict x]" in run.out
        assert run_cli("matrix", old, "--baseline", "1").code == 2

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


def _findings_report(tmp_path: Path, name: str, versions: dict[str, str],
                     findings: list[tuple[str, str]] | None, outcome: str = "passed") -> str:
    path = tmp_path / f"{name}.json"
    data: dict = {"subjects": {"torchrl": {"properties": {"STK-006": {"outcome": outcome,
                                                                      "message": ""}}}},
                  "versions": versions}
    if findings is not None:
        data["findings"] = [{"name": n, "reproducer": r,
                             "when": "tensordict<0.15" if n == "empty-slice" else ""}
                            for n, r in findings]
    path.write_text(json.dumps(data))
    return str(path)


class TestColumns:
    def test_findings_table_says_where_each_holds(self, tmp_path):
        """One row per finding, one column per report: holds / FIXED / inactive (its when excludes
        the releases) / not run, '-' for a report without a findings section; a nightly build is
        labelled so."""
        from conformance import matrix

        old = _findings_report(tmp_path, "old", {"torchrl": "0.12.0", "tensordict": "0.12.4"},
                               None)
        cur = _findings_report(tmp_path, "cur", {"torchrl": "0.14.1", "tensordict": "0.14.3"},
                               [("empty-slice", "holds"), ("loop", "holds"), ("pool", "holds")])
        new = _findings_report(tmp_path, "new", {
            "torchrl": "2026.10.27", "torchrl-nightly": "2026.10.27",
            "tensordict": "2026.10.26", "tensordict-nightly": "2026.10.26"},
            [("loop", "fixed")])
        table = matrix.findings_table([old, cur, new], markdown=True)
        assert "| finding | torchrl 0.12.0 / tensordict 0.12.4 | torchrl 0.14.1 / tensordict " \
               "0.14.3 | torchrl nightly 2026.10.27 / tensordict nightly 2026.10.26 |" in table
        assert "| `empty-slice` | - | holds | inactive |" in table
        assert "| `loop` | - | holds | FIXED |" in table
        assert "| `pool` | - | holds | not run |" in table

    def test_findings_table_shows_options(self, tmp_path):
        """A finding that holds under some subject options only is labelled with them (from the
        report's findings section); one without options keeps its bare name."""
        from conformance import matrix

        cur = _findings_report(tmp_path, "cur", {"torchrl": "0.14.1", "tensordict": "0.14.3"},
                               [("pool", "holds"), ("no-buffers", "holds")])
        data = json.loads(Path(cur).read_text())
        data["findings"][1]["options"] = {"use_buffers": False, "stack": "dense"}
        Path(cur).write_text(json.dumps(data))
        table = matrix.findings_table([cur], markdown=True)
        assert "| `no-buffers` (with use_buffers=False, stack='dense') | holds |" in table
        assert "| `pool` | holds |" in table
        assert "no-buffers (with use_buffers=False, stack='dense')" in matrix.findings_table([cur])

    def test_upgrade_gates_only_later_reports(self, run_cli, tmp_path):
        """--upgrade: a report before the baseline is shown, not gated; a later one is."""
        v = {"tensordict": "x"}
        old = _findings_report(tmp_path, "old", {"torchrl": "0.10.1", **v}, None, "deviation")
        cur = _findings_report(tmp_path, "cur", {"torchrl": "0.14.1", **v}, [], "passed")
        run = run_cli("matrix", old, cur, "--baseline", "1", "--upgrade")
        assert run.code == 0, run.out
        assert "the reports before it are shown, not gated" in run.out
        assert run_cli("matrix", old, cur, "--baseline", "1").code == 1
        new = _findings_report(tmp_path, "new", {"torchrl": "0.15.0", **v}, [], "failed")
        run = run_cli("matrix", old, cur, new, "--baseline", "1", "--upgrade")
        assert run.code == 1 and "1 regression(s)" in run.out, run.out

    def test_nightly_builds_are_found_by_their_package(self, monkeypatch):
        """A nightly installs as tensordict-nightly: the report names its dated version under
        both names, and a finding bounded to tensordict<0.15 reads it as newer."""
        from importlib import metadata

        from conformance import releases, report
        from conformance.findings import Finding

        real = metadata.version

        def version(dist: str) -> str:
            if dist == "tensordict":
                raise metadata.PackageNotFoundError(dist)
            return "2026.10.26" if dist == "tensordict-nightly" else real(dist)

        monkeypatch.setattr(metadata, "version", version)
        assert releases.version("tensordict") == "2026.10.26"
        assert releases.nightly("tensordict") and not releases.nightly("torch")
        vers = report.versions()
        assert vers["tensordict"] == vers["tensordict-nightly"] == "2026.10.26"
        old = Finding("old", ("STK-006",), "x", "r", component="a.b", when="tensordict<0.15")
        assert not old.applies()
        assert Finding("new", ("STK-006",), "x", "r", component="a.b",
                       when="tensordict>=0.15").applies()

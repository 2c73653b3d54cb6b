"""A script forked from the zygote (conformance._zygote) runs as ``python SCRIPT`` does: the
findings verifier's reproducers give the same exit code and the same shown exception either way,
and what a reproducer leaves behind is killed with its session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conformance import _zygote
from conformance.findings import proving as findings

SCRIPTS = {
    "raises": """
        import os, sys
        import torch  # (the zygote serves scripts that import what it preloaded)
        print("argv0", os.path.basename(sys.argv[0]), "path0", sys.path[0] == os.getcwd(),
              "name", __name__, flush=True)
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("boom") from exc
    """,
    "exits": "import torch, sys; print('leaving'); sys.exit(3)",
    "passes": "import torch; print('ok', torch.ones(2).sum().item())",
    "interrupted": "import torch\nraise KeyboardInterrupt",
}


@pytest.fixture(scope="module", autouse=True)
def _one_zygote():
    """The verifier's zygote serves every test here (each test would otherwise start one)."""
    yield
    findings.close_reproducer_zygote()


def _run(tmp_path: Path, name: str, fresh: bool, monkeypatch: pytest.MonkeyPatch):
    folder = tmp_path / ("fresh" if fresh else "forked") / name
    folder.mkdir(parents=True)
    script = folder / "reproducer.py"
    script.write_text(textwrap.dedent(SCRIPTS[name]))
    if fresh:
        monkeypatch.setenv("CONFORMANCE_NO_ZYGOTE", "1")
    else:
        monkeypatch.delenv("CONFORMANCE_NO_ZYGOTE", raising=False)
    code, output, _ = findings._run_alone(script, 120)
    return code, output


@pytest.mark.skipif(not _zygote.USABLE, reason="the zygote forks: Linux only")
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_forked_script_runs_as_a_fresh_interpreter_does(name, tmp_path, monkeypatch) -> None:
    fresh = _run(tmp_path, name, True, monkeypatch)
    forked = _run(tmp_path, name, False, monkeypatch)
    assert forked[0] == fresh[0], (forked, fresh)
    assert findings._raised(forked[1]) == findings._raised(fresh[1]), (forked[1], fresh[1])
    assert "_zygote" not in forked[1] and "runpy" not in forked[1], forked[1]
    expected = {"raises": 1, "exits": 3, "passes": 0, "interrupted": -2}[name]
    assert forked[0] == expected, forked
    if name == "raises":
        assert "argv0 reproducer.py path0 True name __main__" in forked[1]
        assert forked[1].count("Traceback (most recent call last):") == 2, forked[1]
        assert 'reproducer.py", line 7, in <module>' in forked[1], forked[1]


def _leaving_a_child(tmp_path: Path, then: str) -> tuple[Path, Path]:
    """A reproducer (importing torch) that starts a sleeping child, writes "its pid, the child's"
    to the returned file, then runs ``then``."""
    pid_file = tmp_path / "pid"
    script = tmp_path / "reproducer.py"
    script.write_text("import os, subprocess, sys, time, torch\n"
                      "child = subprocess.Popen([sys.executable, '-c', "
                      "'import time; time.sleep(120)'])\n"
                      f"open({str(pid_file)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
                      f"{then}\n")
    return script, pid_file


@pytest.mark.skipif(not _zygote.USABLE, reason="the zygote forks: Linux only")
def test_what_a_forked_reproducer_leaves_is_killed_with_its_session(tmp_path, monkeypatch):
    import psutil

    script, pid_file = _leaving_a_child(tmp_path, "raise RuntimeError('left a child')")
    monkeypatch.delenv("CONFORMANCE_NO_ZYGOTE", raising=False)
    code, output, _ = findings._run_alone(script, 60)
    assert code == 1 and "RuntimeError: left a child" in output, output
    child = int(pid_file.read_text().split()[1])
    gone = psutil.wait_procs([psutil.Process(child)], timeout=10)[0] if psutil.pid_exists(
        child) else [child]
    assert gone, f"the reproducer's child {child} outlived it"


@pytest.mark.skipif(not _zygote.USABLE, reason="the zygote forks: Linux only")
def test_a_broken_zygote_falls_back_to_a_fresh_interpreter(tmp_path, monkeypatch) -> None:
    """A zygote that fails (it died, say) costs no verdict: the reproducer runs fresh."""
    def broken(*args, **kwargs):
        raise RuntimeError("the zygote ended (exit code -9)")

    monkeypatch.delenv("CONFORMANCE_NO_ZYGOTE", raising=False)
    monkeypatch.setattr(_zygote.Zygote, "run", broken)
    monkeypatch.setattr(findings, "_ZYGOTE_BROKEN", [])
    script = tmp_path / "reproducer.py"
    script.write_text("import torch\nraise ValueError('still shown')\n")
    code, output, _ = findings._run_alone(script, 60)
    assert code == 1 and "ValueError: still shown" in output, output
    assert findings._reproducer_zygote("import torch") is None  # fresh from now on


@pytest.mark.skipif(not _zygote.USABLE, reason="the zygote forks: Linux only")
def test_a_forked_reproducer_past_its_bound_is_stopped_with_its_workers(tmp_path, monkeypatch):
    """A forked reproducer that hangs is reported as running past the bound (None), and it and
    the process it started are gone."""
    import psutil

    script, pid_file = _leaving_a_child(tmp_path, "time.sleep(120)")
    monkeypatch.delenv("CONFORMANCE_NO_ZYGOTE", raising=False)
    code, _, took = findings._run_alone(script, 3)
    assert code is None and took < 30, (code, took)
    for pid in map(int, pid_file.read_text().split()):
        if psutil.pid_exists(pid):
            proc = psutil.Process(pid)
            assert psutil.wait_procs([proc], timeout=10)[0] or \
                proc.status() == psutil.STATUS_ZOMBIE, f"{pid} outlived its reproducer"

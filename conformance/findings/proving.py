"""Proving findings: each finding's reproducer, a standalone script, must still fail with output
matching the finding's signature (:func:`verify`); :class:`Verifier` does it beside a run's
properties.  Verdicts are cached per reproducer, signature and installed releases.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from typing import Any

from conformance.findings import Finding
from conformance.releases import version

# -- strictness: a finding's reproducer, run in a subprocess ------------------------------------

# worker-starting reproducers need tens of seconds, the hung-worker ones 20 s more (they wait on
# the hung worker first): room for a loaded 2-core CI machine
VERIFY_SECONDS = 240.0


@dataclass(frozen=True)
class Verdict:
    """What running a finding's reproducer said: ``holds`` (it failed with the signature),
    ``fixed`` (it passed), ``differs`` (it failed otherwise), ``hung`` or ``none`` (no
    reproducer)."""

    status: str
    detail: str = ""
    seconds: float = 0.0
    output: str = ""  # the reproducer's last output (what an issue shows as "observed")


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "multitask-conformance" / "verdicts.json"


def _cache_key(finding: Finding) -> str:
    versions = []
    for dist in ("torch", "tensordict", "torchrl", "mujoco", "dm_control"):
        try:
            versions.append(f"{dist}={version(dist)}")
        except PackageNotFoundError:
            versions.append(f"{dist}=-")
    text = "\n".join([sys.executable, *versions, finding.signature, finding.reproducer])
    return hashlib.sha256(text.encode()).hexdigest()


def _raised(output: str) -> str:
    """What a script's output says was raised: its lines that are not traceback frames or the
    source lines they quote (those are indented), so a signature cannot match the reproducer's
    own source shown in its traceback."""
    return "\n".join(line for line in output.splitlines()
                     if line.strip() and not line.startswith((" ", "\t", "Traceback (")))


def verify(finding: Finding, seconds: float = VERIFY_SECONDS, cache: bool = True) -> Verdict:
    """Run ``finding``'s reproducer in a fresh interpreter (bounded by ``seconds``): it must fail
    with output matching the signature. Verdicts are cached per reproducer, signature, Python and
    installed releases (a rerun on the same releases costs nothing)."""
    if not finding.reproducer.strip():
        return Verdict("none", "no reproducer: strictness rests on hits alone")
    key = _cache_key(finding)
    path = _cache_path()
    store: dict[str, Any] = {}
    if cache:
        try:
            store = json.loads(path.read_text(encoding="utf-8"))
            if key in store:
                return Verdict(**store[key])
        except (OSError, ValueError, TypeError):
            store = {}
    with tempfile.TemporaryDirectory(prefix="conformance-finding-") as tmp:
        script = Path(tmp) / "reproducer.py"
        script.write_text(finding.reproducer, encoding="utf-8")
        returncode, output, took = _run_alone(script, seconds)
    if returncode is None:
        return Verdict("hung", f"the reproducer ran past {seconds:g} s", took, output[-2000:])
    tail = output.strip()[-2000:]
    if returncode == 0:
        verdict = Verdict("fixed", "the reproducer ran to the end without failing", took, tail)
    elif re.search(finding.signature, _raised(output)):
        verdict = Verdict("holds", "", took, tail)
    else:
        verdict = Verdict("differs", f"the reproducer failed without the signature "
                                     f"{finding.signature!r}: {output.strip()[-400:]}", took, tail)
    if cache and verdict.status in ("holds", "fixed"):
        _store_verdict(path, key, {"status": verdict.status, "detail": verdict.detail,
                                   "seconds": took, "output": tail})
    return verdict


# Reproducers import torch, tensordict and torchrl: on Linux they fork from a process that did
# so once (conformance._zygote), which saves about 3 s of CPU each; CONFORMANCE_NO_ZYGOTE=1 runs
# each in a fresh interpreter.
_ZYGOTE: list[Any] = []
_ZYGOTE_BROKEN: list[bool] = []  # once it failed, this process runs fresh interpreters
_IMPORTS_PRELOADED = re.compile(r"^\s*(?:from|import)\s+(?:torch|tensordict|torchrl)\b", re.M)


def _reproducer_zygote(source: str) -> Any:
    """The zygote to fork ``source`` from, or None: where there is none, or the script imports
    none of what the zygote preloads (a fresh interpreter costs it less)."""
    from conformance import _zygote

    if not _zygote.enabled() or _ZYGOTE_BROKEN or not _IMPORTS_PRELOADED.search(source):
        return None
    if not _ZYGOTE:
        import atexit

        # the tag marks it (and the reproducers it forks) as the verifier's, not a subject's
        _ZYGOTE.append(_zygote.Zygote(("torch", "tensordict", "torchrl.envs"),
                                      tag="conformance-finding-zygote"))
        atexit.register(close_reproducer_zygote)
    return _ZYGOTE[0]


def close_reproducer_zygote() -> None:
    """End the process reproducers fork from (the next one starts it again)."""
    while _ZYGOTE:
        _ZYGOTE.pop().close()


def _run_alone(script: Path, seconds: float) -> tuple[int | None, str, float]:
    """Run ``script`` as ``python SCRIPT`` would, in a session of its own, for at most
    ``seconds``: (its exit code, or None when it ran past them; its output; seconds).  Its
    output goes to a file, not a pipe, so a worker it left behind (a hung one, say) cannot keep
    the wait open; once it ends, whatever it started and left is killed with its session
    (POSIX).  Forked from the zygote where there is one, else a fresh interpreter."""
    import signal

    out_path = script.with_name("output.txt")
    start = time.monotonic()
    zygote = _reproducer_zygote(script.read_text(encoding="utf-8"))
    if zygote is not None:
        out_path.write_text("", encoding="utf-8")
        try:
            code = zygote.run(str(script), cwd=str(script.parent), stdout=str(out_path),
                              session=True, timeout=seconds)
        except (OSError, RuntimeError, TimeoutError, ValueError):  # the zygote broke: go on
            close_reproducer_zygote()                             # without it
            _ZYGOTE_BROKEN.append(True)
        else:
            return code, out_path.read_text(encoding="utf-8", errors="replace"), \
                time.monotonic() - start
    with open(out_path, "w", encoding="utf-8") as out:
        proc = subprocess.Popen([sys.executable, str(script)], stdout=out,
                                stderr=subprocess.STDOUT, cwd=script.parent,
                                stdin=subprocess.DEVNULL, start_new_session=hasattr(os, "killpg"))
        try:
            returncode: int | None = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            returncode = None
        finally:
            if hasattr(os, "killpg"):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            else:  # (no sessions: the reproducer alone)
                proc.kill()
            proc.wait()
    took = time.monotonic() - start
    return returncode, out_path.read_text(encoding="utf-8", errors="replace"), took


def _store_verdict(path: Path, key: str, entry: dict[str, Any]) -> None:
    """Add one verdict to the cache file: read it again just before writing (other runs, e.g.
    two columns checked side by side, add theirs meanwhile) and replace it whole, so a reader
    never sees a half-written file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            store = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            store = {}
        store = {**(store if isinstance(store, dict) else {}), key: entry}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".verdicts-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(store, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass


class Verifier:
    """Proves a run's findings in a background thread, one reproducer at a time, while the
    properties run: every finding given (``eager``), or each as :meth:`prove` names it (the
    findings an example hit); :meth:`results` waits for those queued."""

    def __init__(self, findings: list[Finding], eager: bool = True) -> None:
        import queue
        import threading

        self.findings = {f.name: f for f in findings}
        self.verdicts: dict[str, Verdict] = {}
        self._queued: set[str] = set()
        self._queue: queue.Queue[Finding | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="conformance-verifier",
                                       daemon=True)
        if self.findings:
            self.thread.start()
            if eager:
                self.prove(list(self.findings))

    def prove(self, names: list[str]) -> None:
        """Queue the reproducers of these findings (names the run did not declare, or queued
        already, are ignored)."""
        for name in names:
            if name in self.findings and name not in self._queued:
                self._queued.add(name)
                self._queue.put(self.findings[name])

    def _run(self) -> None:
        while (finding := self._queue.get()) is not None:
            try:
                self.verdicts[finding.name] = verify(finding)
            except Exception as exc:  # never let proving a finding break the run
                self.verdicts[finding.name] = Verdict("error", f"{type(exc).__name__}: {exc}")

    def results(self) -> dict[str, Verdict]:
        """The verdicts, once every queued reproducer has run (each is bounded by
        VERIFY_SECONDS); a finding never queued has none ("not run")."""
        if self.thread.is_alive():
            self._queue.put(None)
            self.thread.join()
        close_reproducer_zygote()
        return dict(self.verdicts)

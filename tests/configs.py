"""The configuration matrix: each built-in subject option set at ``quick`` on the current release,
against the subject's default configuration.

``python -m tests.configs [NAME ...]`` runs ``check`` for each configuration (or those named),
writing ``docs/configs/<slug>.json``; ``python -m tests.readme`` then regenerates docs/configs.md
from those reports and the default columns of the version matrix's reports on the newest
release (docs/matrix/torchrl014*.json, same profile and seed).  An option changes how a batched
env is built, so a configuration runs only the areas whose properties build one (SPEC, PAR); the
tutorial's scenario (SCN) is left to the version matrix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS_DIR = ROOT / "docs" / "configs"
DEFAULTS = "docs/matrix/torchrl014*.json"  # the default configurations (version matrix)
SEED = "20261125"  # the version matrix's (tox.ini)
AREAS = ("SPEC", "PAR")

# Every built-in option value other than the default, one configuration each.
CONFIGS: tuple[str, ...] = (
    "torchrl[use_buffers=False]",
    "torchrl[use_buffers=True]",
    "torchrl[mp_start_method='fork']",
    "torchrl[mp_start_method='forkserver']",
    "torchrl[share_individual_td=True]",
    "torchrl[share_individual_td=False]",
    "torchrl-async-threading[stack='dense']",
    "torchrl-async-threading[stack='maybe_dense']",
    "torchrl-async-mp[stack='dense']",
    "torchrl-async-mp[exchange='shm']",
    "torchrl-async-mp[envs_per_worker=2]",
)


def slug(name: str) -> str:
    """A configuration's file name: ``torchrl[use_buffers=False]`` -> ``torchrl.use_buffers=False``
    (brackets and quotes dropped)."""
    out = name.replace("[", ".").replace("]", "").replace("'", "").replace(", ", ".")
    return "".join(c if c.isalnum() or c in "._=-" else "_" for c in out)


def report_path(name: str) -> Path:
    return CONFIGS_DIR / f"{slug(name)}.json"


def command(name: str, report: Path) -> list[str]:
    """The ``check`` that makes one configuration's report."""
    args = [sys.executable, "-m", "conformance", "check", "--subject", name, "--profile",
            "quick", "--hypothesis-seed", SEED, "--skip-doctor", "--report", str(report)]
    for area in AREAS:
        args += ["--area", area]
    return args


def _outcomes(data: dict) -> dict[str, dict[str, str]]:
    return {name: {pid: cell["outcome"] for pid, cell in entry["properties"].items()}
            for name, entry in data["subjects"].items()}


def _cause(message: str) -> str:
    """The first ``E   Type: text`` line of a failure message (its exception), shortened."""
    for line in message.splitlines():
        text = line[1:].strip() if line.startswith("E ") else ""
        if text.split(":", 1)[0].endswith(("Error", "Exception")):
            text = text.replace("|", "\\|").replace("`", "'")
            return text if len(text) <= 110 else text[:107] + "..."
    return ""


def differences() -> list[tuple[str, str, list[str]]]:
    """Per configuration: its report's releases, and each property whose outcome differs from the
    default configuration's (``ID: default -> configured``); ``None`` releases: no report yet."""
    defaults: dict[str, dict[str, str]] = {}
    for path in sorted(ROOT.glob(DEFAULTS)):
        defaults.update(_outcomes(json.loads(path.read_text())))
    rows = []
    for name in CONFIGS:
        path = report_path(name)
        if not path.exists():
            rows.append((name, "", ["no report yet: python -m tests.configs " + repr(name)]))
            continue
        data = json.loads(path.read_text())
        vers = data.get("versions", {})
        tag = f"torchrl {vers.get('torchrl', '?')} / tensordict {vers.get('tensordict', '?')}"
        base = defaults.get(name.split("[", 1)[0], {})
        got = _outcomes(data).get(name, {})
        diff = [f"{pid}: {base.get(pid, '-')} → {out}" for pid, out in got.items()
                if out != base.get(pid)]
        cells = data["subjects"].get(name, {}).get("properties", {})
        causes = {_cause(cells[pid].get("message", "")) for pid, out in got.items()
                  if out == "failed" and out != base.get(pid)} - {""}
        found = {f for pid, out in got.items() if out == "deviation" and out != base.get(pid)
                 for f in cells[pid].get("findings", {})}
        rows.append((name, tag, diff + [f"finding `{f}`" for f in sorted(found)]
                     + [f"failing with `{c}`" for c in sorted(causes)]))
    return rows


def section() -> str:
    """The markdown table of docs/configs.md."""
    lines = ["| configuration | releases | differs from the default configuration |",
             "| --- | --- | --- |"]
    for name, tag, diff in differences():
        what = "<br>".join(diff) if diff else "nothing"
        lines.append(f"| `{name}` | {tag or '—'} | {what} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    names = argv or list(CONFIGS)
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        print(f"error: not a configuration of the matrix: {unknown}; choose from {CONFIGS}")
        return 2
    CONFIGS_DIR.mkdir(parents=True, exist_ok=True)
    worst = 0
    for name in names:
        print(f"{name}: {' '.join(command(name, report_path(name))[1:])}", flush=True)
        code = subprocess.run(command(name, report_path(name)), cwd=ROOT).returncode
        worst = max(worst, 0 if code in (0, 1) else code)  # 1: a configuration fails properties
    return worst


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

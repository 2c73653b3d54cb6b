"""Shared helpers of the benchmark scripts: the machine line, timing, and table printing.

Every benchmark measures the implementations it compares in the same run, interleaved round by
round (the machine may be shared), and reports the median over rounds; ratios are taken from
those medians.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

os.environ.setdefault("MUJOCO_GL", "egl")  # headless dm_control without GLFW warnings

PACKAGES = ("torch", "tensordict", "torchrl", "dm_control", "mujoco", "numpy", "pytest",
            "hypothesis", "pytest-xdist")


def load_average() -> float:
    """The 1-minute load average (what BENCHMARKS.md records beside each table)."""
    return os.getloadavg()[0]


def settle(limit: float = 1.5, max_wait: float = 90.0) -> float:
    """Sleep until the 1-minute load average is below ``limit`` (or ``max_wait`` seconds passed):
    starting worker processes (each imports torch) raises it for a minute. Returns the load."""
    deadline = time.monotonic() + max_wait
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def machine() -> str:
    """One line: date, cores, CPU model, Python and the versions of the packages involved."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            versions.append(f"{name} -")
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f"{now}; {os.cpu_count()} cores ({model}); Python {platform.python_version()}; "
            + ", ".join(versions))


def rounds(cases: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Run each case ``repeats`` times, interleaved (a, b, c, a, b, c, ...); each call returns
    a measured rate or duration. Return the median per case."""
    got: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            got[name].append(case())
    return {name: statistics.median(values) for name, values in got.items()}


def timed(fn: Callable[[], object], number: int = 1) -> float:
    """Seconds per call of ``fn`` over ``number`` calls."""
    start = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - start) / number


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table (also readable in a terminal)."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[j]) for r in cells) for j in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)

"""The kit's hypothesis profiles: the ONLY place the suite's hypothesis settings come from.

``quick`` (pre-commit, seconds), ``ci`` (the gate; derandomized) and ``thorough`` (nightly).
Process-parallel properties get fewer examples (each example starts worker processes).  Deadlines
are off everywhere (env steps and worker starts vary on shared machines) and the example database
is off so a run depends only on its profile and seed.  Settings apply to the kit's properties
only; loading the plugin never changes the global hypothesis profile of other tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

NAMES = ("quick", "ci", "thorough")
PROVE = ("hit", "all")


@dataclass(frozen=True)
class Profile:
    """Example counts for one profile; ``derandomize`` fixes the examples run to run."""

    name: str
    max_examples: int
    parallel_examples: int
    stateful_examples: int
    stateful_steps: int
    derandomize: bool
    explain: bool  # hypothesis's explain phase (a traced re-run of a failure: slow on workers)
    limit: float  # s: wall-clock limit of one in-process property (conformance.watchdog)
    spawn_limit: float  # s: the same for a property that starts worker processes
    shrink_examples: int = 60  # after a first failure, at most this many more examples ...
    shrink_seconds: float = 5.0  # ... and seconds of shrinking (then the last failure stands)
    prove: str = "all"  # which declared findings' reproducers run: "all", or only those "hit"


# Wall-clock limits (conformance.watchdog): far above what a conforming subject needs on a loaded
# 2-core CI machine (an in-process property takes seconds; a process-parallel one runs <= 2
# examples at ci, each allowed up to 45 s for a hung worker (PAR-013) plus 30 s for close), so a
# limit means a hang, not a slow machine.  CONFORMANCE_PROPERTY_LIMIT (seconds) overrides both.
# Stateful machines drive in-process envs, but a bug that needs a particular sequence (a rollout,
# then a partial reset) is found by chance: they get more examples than process-parallel ones.
PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", max_examples=8, parallel_examples=1, stateful_examples=4,
                     stateful_steps=10, derandomize=False, explain=False, limit=120,
                     spawn_limit=300, shrink_examples=40, shrink_seconds=3.0, prove="hit"),
    "ci": Profile("ci", max_examples=25, parallel_examples=2, stateful_examples=15,
                  stateful_steps=20, derandomize=True, explain=False, limit=120, spawn_limit=600,
                  shrink_examples=150, shrink_seconds=15.0),
    "thorough": Profile("thorough", max_examples=200, parallel_examples=8, stateful_examples=50,
                        stateful_steps=50, derandomize=False, explain=True, limit=600,
                        spawn_limit=1800, shrink_examples=2000, shrink_seconds=120.0),
}

_active: dict[str, object] = {"name": None, "seed": None, "shrink": True}


def default_name() -> str:
    """``ci`` when the ``CI`` environment variable is true-ish, else ``quick``."""
    return "ci" if os.environ.get("CI", "").lower() in {"1", "true", "yes"} else "quick"


def activate(name: str | None, seed: int | None = None, shrink: bool = True) -> Profile:
    """Select the profile, the run's seed (None: the profile's own randomness) and whether
    failures are shrunk, for every property run from now on (the plugin calls this)."""
    name = name or default_name()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {', '.join(NAMES)}")
    _active["name"] = name
    _active["seed"] = seed
    _active["shrink"] = shrink
    return PROFILES[name]


def seed() -> int | None:
    """The run's hypothesis seed, or None where the profile decides (derandomized or random)."""
    value = _active["seed"]
    return None if value is None else int(value)  # type: ignore[call-overload]


def active() -> Profile:
    """The active profile (the default one when the plugin has not chosen)."""
    name = _active["name"] or default_name()
    return PROFILES[str(name)]


def property_limit(spawns: bool = False) -> float:
    """The wall-clock limit, in seconds, of one property under the active profile: ``spawns``
    when it starts worker processes; ``CONFORMANCE_PROPERTY_LIMIT`` overrides (a positive
    number, validated by the CLI)."""
    override = os.environ.get("CONFORMANCE_PROPERTY_LIMIT")
    if override:
        return float(override)
    prof = active()
    return prof.spawn_limit if spawns else prof.limit


def shrink_budget(kind: str = "default", *, spawns: bool = False) -> tuple[int, float]:
    """How much a failing property may spend shrinking its counterexample: (examples, seconds)
    after its first failure; the last failing example then stands, unshrunk.  Stateful and
    process-spawning properties get a quarter of it (each example replays a sequence, or
    starts workers)."""
    prof = active()
    if kind in ("stateful", "parallel") or spawns:
        return max(1, prof.shrink_examples // 4), prof.shrink_seconds / 4
    return prof.shrink_examples, prof.shrink_seconds


def hypothesis_settings(kind: str = "default", explicit: int = 0, *,
                        spawns: bool = False):  # type: ignore[no-untyped-def]
    """The ``hypothesis.settings`` of one property run: ``kind`` is default, parallel or
    stateful, with ``explicit`` fixed examples (``@example``).

    - A process-parallel property's single example (quick) is its fixed one where it has one:
      each example starts workers, and the fixed example is the one chosen to expose the bugs
      generated ones miss. Larger budgets add generated examples.
    - ``spawns``: the subject starts worker processes for a capability the property needs: the
      process-parallel example count (its fixed examples, where they fill it, as above), and
      no shrinking (each shrink step starts workers).
    - No shrinking either when the run asks for none (``--conformance-no-shrink``); the explain
      phase only where the profile keeps it.
    """
    from hypothesis import HealthCheck, Phase, settings

    prof = active()
    examples = {"parallel": prof.parallel_examples}.get(kind, prof.max_examples)
    kwargs: dict[str, object] = {}
    if kind == "stateful":
        kwargs["stateful_step_count"] = prof.stateful_steps
        examples = prof.stateful_examples
    if spawns and kind != "parallel":
        examples = min(examples, prof.parallel_examples)
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
    if prof.explain:
        phases.append(Phase.explain)
    if (kind == "parallel" or spawns) and explicit >= examples:
        phases = [Phase.explicit]
    if spawns or not _active["shrink"]:
        phases = [p for p in phases if p in (Phase.explicit, Phase.reuse, Phase.generate)]
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=prof.derandomize and _active["seed"] is None,
        print_blob=True,
        suppress_health_check=list(HealthCheck),
        phases=phases,
        **kwargs,  # type: ignore[arg-type]
    )

"""The catalogue: every conformance property's stable ID, area, needed capabilities and statement.

This module is the single source of truth.  ``python -m conformance list`` prints it, the table
in docs/catalogue.md is generated from it, and each property test takes its docstring from here
(see :func:`conformance.properties._core.prop`).  It imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass

AREAS: dict[str, str] = {
    "STK": "stacking identity",
    "EXC": "exclusive-key handling",
    "SPEC": "spec matching",
    "PAR": "parallel stepping",
    "POL": "partial-tolerant policy",
    "SCN": "the seed scenario (humanoid stand/walk, needs dm_control)",
}

CAPABILITIES: tuple[str, ...] = ("lazy_stack", "sequential", "serial_env", "parallel_env")


@dataclass(frozen=True)
class Property:
    """One conformance property: ``id`` is stable, ``statement`` is one sentence."""

    id: str
    statement: str
    needs: tuple[str, ...]
    extra: str = ""  # "dmcontrol" when the property needs the dmcontrol extra

    @property
    def area(self) -> str:
        return self.id.split("-")[0]


def _p(id: str, needs: str, statement: str, extra: str = "") -> Property:
    return Property(id, statement, tuple(needs.split()), extra)


_ENV = "serial_env"
_PAR = "parallel_env"

PROPERTIES: tuple[Property, ...] = (
    # -- STK: stacking identity -------------------------------------------------------------
    _p("STK-001", "lazy_stack",
       "Indexing a lazy stack at position i along its stack dim returns the i-th original "
       "tensordict by identity."),
    _p("STK-002", "lazy_stack",
       "Unbinding a lazy stack along its stack dim returns the originals by identity, in order."),
    _p("STK-003", "lazy_stack",
       "An in-place write through the stack to a shared key reaches every original."),
    _p("STK-004", "lazy_stack",
       "An in-place write to an original's tensor shows through the stack."),
    _p("STK-005", "lazy_stack",
       "A new key set on the stack lands in every element with that element's slice of the value."),
    _p("STK-006", "lazy_stack",
       "A lazy stack of homogeneous tensordicts holds values bitwise equal to the dense "
       "torch.stack of the same tensordicts."),
    _p("STK-007", "lazy_stack",
       "The stack's batch size is the elements' batch size with the number of elements "
       "inserted at the stack dim."),
    _p("STK-008", "lazy_stack",
       "A stack of stacks (like a rollout's time x task stack) indexes back to each original "
       "by identity."),
    _p("STK-009", "lazy_stack",
       "Stacking copies no data: a shared key read through stack[i] shares storage with the "
       "original's tensor."),
    # -- EXC: exclusive keys ----------------------------------------------------------------
    _p("EXC-001", "lazy_stack",
       "The stack's keys are exactly the intersection of its elements' keys, nested keys "
       "included."),
    _p("EXC-002", "lazy_stack",
       "Every element keeps its exclusive keys, with their values, when reached by indexing "
       "the stack."),
    _p("EXC-003", "lazy_stack",
       "A slice of the stack along its stack dim keeps each selected element's exclusive keys."),
    _p("EXC-004", "lazy_stack",
       "Inside a stack of stacks every innermost element keeps its exclusive keys."),
    _p("EXC-005", "lazy_stack",
       "Reading a key that only some elements hold from the whole stack fails like reading a "
       "missing key and never returns partial or mixed data."),
    _p("EXC-006", "lazy_stack",
       "Densifying a heterogeneous stack (contiguous(), to_tensordict(), densify()) either "
       "raises or keeps exactly the shared keys, with each element's own values."),
    _p("EXC-007", "lazy_stack",
       "A key set on one element through stack[i] appears in that element only."),
    _p("EXC-008", "lazy_stack",
       "A non-shared key is not reported as a member of the stack's keys, and `in` agrees with "
       "keys()."),
    # -- SPEC: spec matching ----------------------------------------------------------------
    _p("SPEC-001", _ENV,
       "A batched env's observation spec at index i equals task i's observation spec."),
    _p("SPEC-002", _ENV,
       "A batched env's action, reward and done specs at index i equal task i's specs."),
    _p("SPEC-003", _ENV,
       "A batched env's batch size is [number of tasks, *the tasks' own batch size] and its "
       "reset output has that batch size."),
    _p("SPEC-004", _ENV,
       "A key shared by all tasks has one shape and one dtype in the batched env's spec and "
       "data."),
    _p("SPEC-005", _ENV,
       "Tasks that disagree on a shared key's shape, dtype or spec class are refused at "
       "construction with an error naming the key, or the key works end to end (spec, data, "
       "rollout, reading)."),
    _p("SPEC-006", _ENV,
       "Random actions drawn from the batched env's action spec are accepted by step."),
    _p("SPEC-007", _ENV,
       "Every element of a reset output is in its own task's observation and done specs."),
    _p("SPEC-008", _ENV,
       "Every element of a step output's 'next' is in its own task's observation, reward and "
       "done specs."),
    _p("SPEC-009", _PAR,
       "A process-parallel batched env reports the same per-task specs as the serial one."),
    _p("SPEC-010", _ENV,
       "Stepping a batched env hands each task its own action entry unchanged (key, kind, "
       "dtype, values): the output keeps it and element i's 'next' equals task i's env "
       "stepped alone with it."),
    # -- PAR: parallel stepping -------------------------------------------------------------
    _p("PAR-001", f"{_ENV} {_PAR}",
       "Parallel and serial batched envs built from the same makers, seeds and actions give "
       "bitwise identical trajectories."),
    _p("PAR-002", _ENV,
       "Each task's trajectory in a serial batched env is bitwise equal to that task's env "
       "stepped alone with the same actions."),
    _p("PAR-003", _PAR,
       "Each task's trajectory in a parallel batched env is bitwise equal to that task's env "
       "stepped alone with the same actions."),
    _p("PAR-004", _ENV,
       "A '_reset' mask resets exactly the masked tasks; the others continue their episodes."),
    _p("PAR-005", _ENV,
       "set_seed gives tasks distinct seeds and the same seed reproduces the same trajectory "
       "bitwise."),
    _p("PAR-006", _ENV,
       "rollout(return_contiguous=False)[i] holds task i's exclusive keys and [:, t] holds "
       "only the shared keys."),
    _p("PAR-007", _ENV,
       "A rollout with a policy equals reset followed by policy-then-step, step for step, "
       "with done tasks reset in place."),
    _p("PAR-008", _PAR,
       "An exception in a worker's step surfaces in the parent within 30 s, naming the task "
       "index and carrying the worker's exception (type and message), and leaves no child "
       "process."),
    _p("PAR-009", _PAR,
       "An exception while a worker builds its env surfaces in the parent within 30 s, "
       "naming the task index and carrying the worker's exception (type and message), and "
       "leaves no child process."),
    _p("PAR-010", _PAR,
       "close() is idempotent and leaves no child process of the env alive."),
    _p("PAR-011", _ENV,
       "Driven through any sequence of reset, partial reset, step and rollout, the subject's "
       "batched env matches the reference env output for output."),
    _p("PAR-012", _PAR,
       "A parallel env's rollout without a policy equals reset followed by rand_action-then-step "
       "on an env built alike from the same global RNG state, done tasks reset in place, and "
       "leaves the global RNG where that loop does."),
    _p("PAR-013", _PAR,
       "A worker whose step or env construction never returns surfaces in the parent as an "
       "exception naming the task index, within 10 s of a 2 s deadline passed through the "
       "subject's deadline keyword (30 s for a construction; 45 s for a subject naming none), "
       "and leaves no child process."),
    _p("PAR-014", _PAR,
       "A KeyboardInterrupt (SIGINT) delivered to the parent while it waits on a hung worker is "
       "propagated or handled (before its deadline, or within 45 s for a subject naming no "
       "deadline keyword) and leaves no child process that the program's exit "
       "would wait on or orphan (only daemonic workers, which the exit terminates)."),
    _p("PAR-015", _ENV,
       "A task whose done entries live only under a group key (multi-agent style, with group "
       "dims) is reset in a rollout when they are set, exactly as when stepped alone."),
    _p("PAR-016", _PAR,
       "Non-tensor entries (strings, metadata) of each task cross a process-parallel env: reset "
       "and step outputs hold each task's own values, as its env stepped alone gives them."),
    # -- POL: partial-tolerant policy -------------------------------------------------------
    _p("POL-001", "sequential lazy_stack",
       "A partial-tolerant policy writes the action into every element of a lazy stack whose "
       "keys satisfy a head."),
    _p("POL-002", "sequential lazy_stack",
       "A partial-tolerant policy writes the action into every innermost element of a nested "
       "(time x task) lazy stack."),
    _p("POL-003", "sequential lazy_stack",
       "The policy's output for element i of a stack equals the policy run on element i alone."),
    _p("POL-004", "sequential lazy_stack",
       "The shared backbone runs once per call on a stack, however many elements it has."),
    _p("POL-005", "sequential",
       "With partial_tolerant=False a missing input key raises KeyError naming the key."),
    _p("POL-006", "sequential lazy_stack",
       "A head never runs on, and writes nothing into, an element that lacks its input keys."),
    _p("POL-007", "sequential",
       "On a single (unstacked) tensordict the policy equals its modules applied in order."),
    _p("POL-008", "sequential lazy_stack",
       "The policy writes into the original elements: after the call, stack[i] is still the "
       "original and holds the action."),
    _p("POL-009", "sequential lazy_stack",
       "Each task head runs once per call on a stack, vectorized over the elements that share "
       "its keys."),
    # -- SCN: the seed scenario -------------------------------------------------------------
    _p("SCN-001", "lazy_stack",
       "The humanoid stand and walk envs build with CatTensors + DoubleToFloat and expose a "
       "67-dim float32 'observation' beside 'observation_stand' / 'observation_walk'.",
       "dmcontrol"),
    _p("SCN-002", "lazy_stack",
       "The lazy stack of the stand and walk resets indexes back to each original by identity.",
       "dmcontrol"),
    _p("SCN-003", "sequential lazy_stack",
       "The tutorial's policy writes a 21-dim action on each single env's reset and on their "
       "stack, and the stacked result equals each single one.", "dmcontrol"),
    _p("SCN-004", _ENV,
       "The batched env over [stand, walk] is multi-task: reset, policy, step writes 'next' "
       "into both elements.", "dmcontrol"),
    _p("SCN-005", _ENV,
       "A 100-step rollout keeps exclusive keys: rollout[:, 0] shows only the shared keys, "
       "rollout[0] has 'observation_stand' and rollout[1] has 'observation_walk', each with "
       "its step's current value.",
       "dmcontrol"),
    _p("SCN-006", f"{_ENV} {_PAR}",
       "Serial and parallel batched envs over [stand, walk] give identical trajectories for "
       "the same seeds, and close() leaves no process.", "dmcontrol"),
)

BY_ID: dict[str, Property] = {p.id: p for p in PROPERTIES}


def get(property_id: str) -> Property:
    """Return the property with this ID, or raise KeyError listing the known IDs."""
    try:
        return BY_ID[property_id]
    except KeyError:
        raise KeyError(
            f"unknown property ID {property_id!r}; known IDs: {', '.join(BY_ID)}"
        ) from None


def select(areas: list[str] | None = None) -> list[Property]:
    """The properties in ``areas`` (all when None), in catalogue order."""
    if not areas:
        return list(PROPERTIES)
    wanted = {a.upper() for a in areas}
    unknown = wanted - set(AREAS)
    if unknown:
        raise ValueError(
            f"unknown area(s) {sorted(unknown)}; expected some of {', '.join(AREAS)}"
        )
    return [p for p in PROPERTIES if p.area in wanted]


def as_dicts() -> list[dict[str, object]]:
    """The catalogue as JSON-ready dicts (``list --json``)."""
    return [
        {"id": p.id, "area": p.area, "needs": list(p.needs), "extra": p.extra,
         "statement": p.statement}
        for p in PROPERTIES
    ]


# What hypothesis draws for the task sets of the SPEC / PAR properties, one dimension a line; each
# draw shrinks to the first option, today's simplest task (a Bounded float "action", reward and
# done at the root, tensors only, batch size []), so a failure shrinks to a readable example.
GENERATED: tuple[tuple[str, str], ...] = (
    ("tasks", "1-6 per set, distinct seeds, episodes of 2-12 steps"),
    ("observations", "keys shared by all tasks, by some, by one; nested keys; scalars and "
                     "zero-size dims; float32, float64, int64, bool; Unbounded or Bounded specs"),
    ("actions", "Bounded, Unbounded, Categorical, OneHot, MultiCategorical, MultiOneHot or Binary "
                "at 'action'; some tasks act with a second kind at a second key ('move', "
                "('ctrl', 'action'), ('agents', 'action'))"),
    ("reward and done", "at the root, under a group key 'agents' (multi-agent style, with or "
                        "without a group batch dim) beside the root ones, or only there"),
    ("non-tensor data", "string entries 'text' and ('info', 'note') in some tasks or all"),
    ("task batch size", "[] or [2] for every task of a set (a task that is itself a batched env)"),
    ("conflicts", "SPEC-005: a key all tasks hold with two shapes (same or other rank), dtypes, "
                  "both, or spec classes (Bounded vs Unbounded)"),
)


def generated_lines() -> list[str]:
    """The generated space, as ``python -m conformance list`` prints it."""
    return ["Generated task sets (SPEC, PAR):"] + [f"  {name}: {what}" for name, what in GENERATED]


def markdown_table() -> str:
    """The property table of docs/catalogue.md (``python -m conformance list --markdown``)."""
    lines = ["| ID | area | needs | statement |", "| --- | --- | --- | --- |"]
    for p in PROPERTIES:
        needs = ", ".join(f"`{n}`" for n in p.needs) + (f" + `{p.extra}` extra" if p.extra else "")
        lines.append(f"| {p.id} | {AREAS[p.area]} | {needs} | {p.statement} |")
    return "\n".join(lines)

"""POL strategies: multi-task policy scenarios as plain numbers."""

from __future__ import annotations

from typing import Any, NamedTuple

from hypothesis import strategies as st

from conformance.strategies._common import shapes


class PolicyCase(NamedTuple):
    """A multi-task policy scenario as plain numbers (modules and tensordicts are built from it).

    Task ``t`` has the shared key "observation" (``obs_dim``) and its own "observation_<t>"
    (``task_dims[t]``); ``heads[t]`` is None (no head) or the hidden-layer sizes of its MLP head
    (``()``: one Linear) reading ("observation_<t>", "hidden") and writing "action" (``action``).
    The backbone maps "observation" to "hidden" (``hidden``).  ``tasks`` gives each element's task;
    ``time`` 0 makes a flat stack along ``dim``, ``time`` T > 0 a nested stack: T stacks of those
    elements (dim 0), stacked along ``dim``.  ``batch`` is every element's batch size; ``seed``
    fixes weights and values.
    """

    seed: int
    obs_dim: int
    hidden: int
    action: int
    task_dims: tuple[int, ...]
    heads: tuple[Any, ...]
    tasks: tuple[int, ...]
    time: int
    dim: int
    batch: tuple[int, ...]


@st.composite
def policy_cases(draw: Any, nested: bool | None = False, min_elements: int = 1,
                 max_elements: int = 64) -> PolicyCase:
    """1-4 tasks (some possibly without a head, at least one with), a backbone and MLP/Linear
    heads; a flat stack of 1-64 elements (``nested=False``), a nested time x task stack
    (``nested=True``: 1-4 steps of 1-6 elements) or either (``None``); leaf batch sizes of up to
    two dims."""
    n_tasks = draw(st.integers(1, 4))
    heads = list(draw(st.lists(
        st.one_of(st.just(()), st.none(), st.lists(st.integers(1, 8), min_size=1, max_size=2)
                  .map(tuple)),
        min_size=n_tasks, max_size=n_tasks)))
    if all(h is None for h in heads):
        heads[0] = ()
    is_nested = draw(st.booleans()) if nested is None else nested
    time = draw(st.integers(1, 4)) if is_nested else 0
    top = min(max_elements, 6) if is_nested else max_elements
    # a multi-task stack holds at least two tasks (when it can); other tasks may be absent
    present = draw(st.lists(st.integers(0, n_tasks - 1), unique=True,
                            min_size=min(2, n_tasks, top), max_size=min(n_tasks, top)))
    extra = draw(st.lists(st.sampled_from(present),
                          min_size=max(0, min_elements - len(present)),
                          max_size=top - len(present)))
    tasks = draw(st.permutations(present + extra))
    batch = draw(shapes(max_dims=2, max_side=3, allow_zero=False))
    # nested: the inner stacks have batch [n, *batch]; the outer stack goes before or after n
    dim = draw(st.integers(0, 1 if is_nested else len(batch)))
    return PolicyCase(
        seed=draw(st.integers(0, 2**16)),
        obs_dim=draw(st.integers(1, 6)),
        hidden=draw(st.integers(1, 8)),
        action=draw(st.integers(1, 4)),
        task_dims=tuple(draw(st.lists(st.integers(1, 5), min_size=n_tasks, max_size=n_tasks))),
        heads=tuple(heads),
        tasks=tuple(tasks),
        time=time,
        dim=dim,
        batch=tuple(batch),
    )


class MissingKeyCase(NamedTuple):
    """One element of ``case`` (task ``case.tasks[0]``) run through the backbone and task
    ``task``'s head with ``missing`` removed from it (or never held: another task's element)."""

    case: PolicyCase
    task: int
    missing: str


@st.composite
def missing_key_cases(draw: Any) -> MissingKeyCase:
    """A single element lacking the shared key, its own task's key, or another task's key."""
    case = draw(policy_cases(max_elements=1))
    task = draw(st.sampled_from([t for t, h in enumerate(case.heads) if h is not None]))
    own = case.tasks[0]
    if own != task:
        missing = f"observation_{task}"
    else:
        missing = draw(st.sampled_from(["observation", f"observation_{task}"]))
    return MissingKeyCase(case, task, missing)

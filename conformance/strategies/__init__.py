"""Hypothesis strategies for the properties: key layouts, tensordicts, (nested) stacks, task sets.

Every strategy shrinks toward small, readable examples: few elements, few keys, short shapes,
float32, zeros.  Values are small integers cast to the key's dtype, so failures print legibly and
bitwise comparisons are meaningful.  One module per area, each self-contained: :mod:`._common`
(shapes, dtypes, keys, layouts, tensordicts), :mod:`.stacks` (STK / EXC), :mod:`.tasks` (task
sets and actions: SPEC / PAR), :mod:`.rollouts` (PAR), :mod:`.policy` (POL), and the fixed
first examples: :mod:`.examples` (PAR, SPEC) and :mod:`.stack_examples` (STK / EXC).
Every name is importable from here.
"""

from __future__ import annotations

from conformance.strategies._common import (
    DTYPES,
    NAMES,
    Layout,
    dtypes,
    keys,
    layouts,
    make_td,
    shapes,
    value,
)
from conformance.strategies.examples import (
    failure_example,
    hang_example,
    random_rollout_example,
    rollout_example,
    spec_example,
    two_layouts,
)
from conformance.strategies.policy import (
    MissingKeyCase,
    PolicyCase,
    missing_key_cases,
    policy_cases,
)
from conformance.strategies.rollouts import (
    FailureCase,
    PartialResetCase,
    RandomRolloutCase,
    SeedCase,
    failure_cases,
    hang_cases,
    partial_reset_cases,
    random_rollout_cases,
    rollout_cases,
    seed_cases,
)
from conformance.strategies.stack_examples import (
    exclusive_elements,
    rich_grid,
    rich_index,
    rich_new_key,
    rich_slice,
    rich_stack,
)
from conformance.strategies.stacks import (
    IndexCase,
    NestedStackCase,
    NewKeyCase,
    SliceCase,
    StackCase,
    index_cases,
    nested_stack_cases,
    new_key_cases,
    slice_cases,
    stack_cases,
)
from conformance.strategies.tasks import (
    CLASH_KEYS,
    ConflictCase,
    RolloutCase,
    TaskSet,
    action_sequences,
    reset_masks,
    scripted_actions,
    spec_conflicts,
    spec_task_sets,
    task_runs,
    task_sets,
    witnessed_task_sets,
)

__all__ = [
    "CLASH_KEYS",
    "DTYPES",
    "NAMES",
    "ConflictCase",
    "FailureCase",
    "IndexCase",
    "Layout",
    "MissingKeyCase",
    "NestedStackCase",
    "NewKeyCase",
    "PartialResetCase",
    "PolicyCase",
    "RandomRolloutCase",
    "RolloutCase",
    "SeedCase",
    "SliceCase",
    "StackCase",
    "TaskSet",
    "action_sequences",
    "dtypes",
    "exclusive_elements",
    "failure_cases",
    "failure_example",
    "hang_cases",
    "hang_example",
    "index_cases",
    "keys",
    "layouts",
    "make_td",
    "missing_key_cases",
    "nested_stack_cases",
    "new_key_cases",
    "partial_reset_cases",
    "policy_cases",
    "random_rollout_cases",
    "random_rollout_example",
    "reset_masks",
    "rich_grid",
    "rich_index",
    "rich_new_key",
    "rich_slice",
    "rich_stack",
    "rollout_cases",
    "rollout_example",
    "scripted_actions",
    "seed_cases",
    "shapes",
    "slice_cases",
    "spec_conflicts",
    "spec_example",
    "spec_task_sets",
    "stack_cases",
    "task_runs",
    "task_sets",
    "two_layouts",
    "value",
    "witnessed_task_sets",
]

"""The built-in subject ``reference``: this kit's oracle (``reference/``).

Stacking is tensordict's own lazy stack (the reference builds on it rather than re-implementing
a TensorDict), so the subject uses the component ``tensordict.lazy_stack`` and inherits its
findings (``conformance/findings/tensordict.toml``); the batched envs and the partial-tolerant
policy are the reference's own and have none, but its task envs' action specs are torchrl's
(``torchrl.data.MultiCategorical``: its ``rand()`` finding, ``conformance/findings/torchrl.toml``).
"""

from __future__ import annotations

from conformance.subject import Subject
from conformance.subjects.torchrl import lazy_stack_function


def subject() -> Subject:
    """Build the ``reference`` subject."""
    from reference import ParallelMultiTaskEnv, PartialTolerantSequential, SerialMultiTaskEnv

    return Subject(
        name="reference",
        lazy_stack=lazy_stack_function(),
        sequential=PartialTolerantSequential,
        serial_env=SerialMultiTaskEnv,
        parallel_env=ParallelMultiTaskEnv,
        description="the kit's oracle: reference.SerialMultiTaskEnv / ParallelMultiTaskEnv, "
        "reference.PartialTolerantSequential, tensordict's lazy stack",
        # their findings are the reference's too (its task envs' action specs are torchrl's)
        uses=("tensordict.lazy_stack", "torchrl.data.MultiCategorical"),
        deadline_keyword="timeout",
        snippet={
            "lazy_stack": "from tensordict import LazyStackedTensorDict\n"
            "lazy_stack = LazyStackedTensorDict.lazy_stack",
            "sequential": "from reference import PartialTolerantSequential as sequential",
            "serial_env": "from reference import SerialMultiTaskEnv as serial_env",
            "parallel_env": "from reference import ParallelMultiTaskEnv as parallel_env",
        },
    )

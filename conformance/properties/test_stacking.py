"""STK: stacking identity -- a lazy stack is a view of its originals, never a copy."""

from __future__ import annotations

from hypothesis import given

from conformance.assertions import expect_is
from conformance.properties._core import prop
from conformance.strategies import StackCase, stack_cases


@prop("STK-001")
@given(case=stack_cases())
def test_index_returns_originals(subject, case: StackCase) -> None:
    stack = subject.lazy_stack(case.tds, case.dim)
    for i, td in enumerate(case.tds):
        index = (slice(None),) * case.dim + (i,)
        expect_is(stack[index], td, f"stack[{index}]", f"lazy_stack(tds, dim={case.dim})",
                  "index into the stored elements instead of copying or re-stacking them")

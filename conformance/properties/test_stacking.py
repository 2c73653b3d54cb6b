"""STK: stacking identity -- a lazy stack is a view of its originals, never a copy."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from conformance.assertions import (
    expect,
    expect_is,
    expect_td_equal,
    expect_tensor_equal,
    leaf_keys,
)
from conformance.properties._core import prop
from conformance.strategies import (
    IndexCase,
    NestedStackCase,
    NewKeyCase,
    StackCase,
    index_cases,
    nested_stack_cases,
    new_key_cases,
    rich_grid,
    rich_index,
    rich_new_key,
    rich_stack,
    stack_cases,
)

_VIEW = "index into the stored elements instead of copying or re-stacking them"
_RICH = (dict(case=rich_stack()),)  # fixed first: four elements, keys of their own, dim -2


@prop("STK-001", case=stack_cases(), examples=_RICH)
def test_index_returns_originals(subject, case: StackCase) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)  # dim may be negative
    stack = subject.lazy_stack(case.tds, case.dim)
    for i, td in enumerate(case.tds):
        index = (slice(None),) * d + (i,)
        expect_is(stack[index], td, f"stack[{index}]", f"lazy_stack(tds, dim={case.dim})",
                  _VIEW)


@prop("STK-002", case=stack_cases(), examples=_RICH)
def test_unbind_returns_originals(subject, case: StackCase) -> None:
    ndim = case.tds[0].batch_dims + 1
    d = case.dim % ndim
    stack = subject.lazy_stack(case.tds, case.dim)
    for unbind_dim in (d, d - ndim):  # the stack dim, counted from the front and from the back
        call = f"lazy_stack(tds, dim={case.dim}).unbind({unbind_dim})"
        out = stack.unbind(unbind_dim)
        expect(len(out) == len(case.tds), "number of unbound tensordicts", len(out),
               len(case.tds), call)
        for i, td in enumerate(case.tds):
            expect_is(out[i], td, f"unbind(...)[{i}]", call,
                      "return the stored elements, in stacking order, from unbind(stack_dim)")


# fixed first: the rich stack written each way (setitem may replace the elements' tensors)
@prop("STK-003", case=stack_cases(), how=st.sampled_from(["set_", "setitem", "update_"]),
      examples=tuple(dict(case=rich_stack(), how=how) for how in ("set_", "setitem", "update_")))
def test_write_through_stack_reaches_originals(subject, case: StackCase, how: str) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    shared = set.intersection(*(leaf_keys(td) for td in case.tds))
    held = [{k: td.get(k) for k in shared} for td in case.tds]  # the originals' own tensors
    # the new value of each element: its old value bumped, so every element's slice differs
    new = {k: [(~h[k] if h[k].dtype == torch.bool else h[k] + 1) for h in held] for k in shared}
    stack = subject.lazy_stack(case.tds, case.dim)
    for k in sorted(shared):
        value = torch.stack(new[k], d)
        if how == "set_":
            stack.set_(k, value)
        elif how == "setitem":
            stack[k] = value
        else:
            stack.update_({k: value})
    call = f"lazy_stack(tds, dim={case.dim}) then a {how} write of every shared key"
    for i, td in enumerate(case.tds):
        for k in sorted(shared):
            expect_tensor_equal(td.get(k), new[k][i], f"tds[{i}].get({k!r}) after the write",
                                call, "split the written value along the stack dim and write "
                                "each slice into its element")
            if how != "setitem":  # set_ / update_ write in place: the original tensor changes
                expect_tensor_equal(held[i][k], new[k][i],
                                    f"tds[{i}]'s tensor at {k!r} (held before the write)", call,
                                    "write in place into the elements' tensors")


@prop("STK-004", case=stack_cases(), how=st.sampled_from(["copy_", "set_"]),
      examples=tuple(dict(case=rich_stack(), how=how) for how in ("copy_", "set_")))
def test_original_writes_show_through(subject, case: StackCase, how: str) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    shared = set.intersection(*(leaf_keys(td) for td in case.tds))
    stack = subject.lazy_stack(case.tds, case.dim)
    stack.get(sorted(shared)[0])  # a read before the write: a stale cache would show below
    new = []
    for td in case.tds:
        bumped = {}
        for k in leaf_keys(td):
            t = td.get(k)
            bumped[k] = ~t if t.dtype == torch.bool else t + 1
            if how == "copy_":
                t.copy_(bumped[k])
            else:
                td.set_(k, bumped[k])
        new.append(bumped)
    call = f"lazy_stack(tds, dim={case.dim}), then tds[i]'s tensors written with {how}"
    for k in sorted(shared):
        expected = torch.stack([b[k] for b in new], d)
        expect_tensor_equal(stack.get(k), expected, f"stack.get({k!r}) after the writes", call,
                            "read the elements' current tensors; never cache stacked values")
    for i in range(len(case.tds)):
        index = (slice(None),) * d + (i,)
        for k in sorted(new[i]):
            expect_tensor_equal(stack[index].get(k), new[i][k],
                                f"stack[{index}].get({k!r}) after the writes", call,
                                "read the elements' current tensors")


@prop("STK-005", case=new_key_cases(), how=st.sampled_from(["set", "setitem"]),
      examples=tuple(dict(case=rich_new_key(), how=how) for how in ("set", "setitem")))
def test_new_key_lands_in_every_element(subject, case: NewKeyCase, how: str) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    expected = case.value.clone()
    stack = subject.lazy_stack(case.tds, case.dim)
    if how == "set":
        stack.set(case.key, case.value)
    else:
        stack[case.key] = case.value
    call = f"lazy_stack(tds, dim={case.dim}).{how}({case.key!r}, value)"
    for i, td in enumerate(case.tds):
        part = expected[(slice(None),) * d + (i,)]
        expect(case.key in td.keys(include_nested=True), f"{case.key!r} in tds[{i}]", False,
               True, call, "set a new key on every element of the stack")
        expect_tensor_equal(td.get(case.key), part, f"tds[{i}].get({case.key!r})", call,
                            "give element i the value's slice i along the stack dim")


@prop("STK-006", case=index_cases(), examples=(dict(case=rich_index()),))
def test_homogeneous_values_equal_dense_stack(subject, case: IndexCase) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    dense = torch.stack([td.clone() for td in case.tds], d)
    stack = subject.lazy_stack(case.tds, case.dim)
    call = f"lazy_stack(tds, dim={case.dim}) vs torch.stack(tds, {d})"
    for k in sorted(leaf_keys(dense)):
        expect_tensor_equal(stack.get(k), dense.get(k), f"stack.get({k!r})", call,
                            "stack the elements' values along the stack dim, in order")
    index = tuple(slice(*c) if isinstance(c, list) else c for c in case.index)
    expect_td_equal(stack[index], dense[index], f"stack[{index}]", call,
                    fix="index each element by the index with the stack dim taken out")
    empty = (slice(None),) * d + (slice(0, 0),)  # selects no element: still every key
    expect_td_equal(stack[empty], dense[empty], f"stack[{empty}]", call,
                    fix="an index that selects no element keeps the keys, with zero-size values")


@prop("STK-007", case=stack_cases(), examples=_RICH)
def test_batch_size(subject, case: StackCase) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    expected = list(case.tds[0].batch_size)
    expected.insert(d, len(case.tds))
    stack = subject.lazy_stack(case.tds, case.dim)
    call = f"lazy_stack(tds, dim={case.dim}) of {len(case.tds)} with batch size " \
           f"{list(case.tds[0].batch_size)}"
    expect(list(stack.batch_size) == expected, "stack.batch_size", list(stack.batch_size),
           expected, call, "insert the number of elements at the (normalised) stack dim")
    expect(list(stack.shape) == expected, "stack.shape", list(stack.shape), expected, call)


@prop("STK-008", case=nested_stack_cases(), examples=(dict(case=rich_grid()),))
def test_nested_stack_indexes_to_originals(subject, case: NestedStackCase) -> None:
    ndim = case.grid[0][0].batch_dims
    d_in = case.inner_dim % (ndim + 1)  # in the inner stacks' dims
    d_out = case.outer_dim % (ndim + 2)  # in the outer stack's dims
    d_in_outer = d_in if d_in < d_out else d_in + 1  # the inner stack dim in the outer's dims
    d_out_after = d_out if d_out < d_in_outer else d_out - 1  # the outer dim once d_in is gone
    inner = [subject.lazy_stack(row, case.inner_dim) for row in case.grid]
    outer = subject.lazy_stack(inner, case.outer_dim)
    call = f"lazy_stack([lazy_stack(row, {case.inner_dim}) for row in grid], {case.outer_dim})"
    for t, row in enumerate(case.grid):
        for i, td in enumerate(row):
            at_t = (slice(None),) * d_out + (t,)
            at_i = (slice(None),) * d_in + (i,)
            expect_is(outer[at_t][at_i], td, f"outer[{at_t}][{at_i}]", call, _VIEW)
            by_i = (slice(None),) * d_in_outer + (i,)
            then_t = (slice(None),) * d_out_after + (t,)
            expect_is(outer[by_i][then_t], td, f"outer[{by_i}][{then_t}]", call, _VIEW)
            both = [slice(None)] * (max(d_out, d_in_outer) + 1)
            both[d_out], both[d_in_outer] = t, i
            expect_is(outer[tuple(both)], td, f"outer[{tuple(both)}]", call, _VIEW)


@prop("STK-009", case=stack_cases(), examples=_RICH)
def test_no_copy(subject, case: StackCase) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    shared = set.intersection(*(leaf_keys(td) for td in case.tds))
    held = [{k: td.get(k) for k in shared} for td in case.tds]
    stack = subject.lazy_stack(case.tds, case.dim)
    call = f"lazy_stack(tds, dim={case.dim})"
    for i in range(len(case.tds)):
        index = (slice(None),) * d + (i,)
        for k in sorted(shared):
            read, orig = stack[index].get(k), held[i][k]
            if orig.numel() == 0:
                continue  # an empty tensor has no storage to share
            same = read.untyped_storage().data_ptr() == orig.untyped_storage().data_ptr()
            expect(same, f"storage of stack[{index}].get({k!r})",
                   f"{read.untyped_storage().data_ptr():#x}",
                   f"the original's {orig.untyped_storage().data_ptr():#x}", call,
                   "keep references to the elements' tensors; never copy on stacking")

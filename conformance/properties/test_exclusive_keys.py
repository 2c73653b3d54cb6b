"""EXC: exclusive keys -- keys only some elements hold stay with those elements, and the stack
reports, reads and densifies only the keys all of them share."""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from conformance.assertions import (
    expect,
    expect_td_equal,
    expect_tensor_equal,
    key_tuple,
    leaf_keys,
    snapshot,
)
from conformance.properties._core import prop
from conformance.strategies import (
    NestedStackCase,
    SliceCase,
    StackCase,
    nested_stack_cases,
    rich_grid,
    rich_slice,
    rich_stack,
    slice_cases,
    stack_cases,
)

_KEEP = "keep the elements themselves in the stack; never reduce them to the shared keys"
_RICH = (dict(case=rich_stack()),)  # fixed first: four elements, keys of their own, dim -2
# ... then with a nested shared key and a nested key under that shared parent only some hold
_NESTED = (*_RICH, dict(case=rich_stack(nested=True)))


def all_keys(td):
    """Every key of ``td``, nested parents and leaves, as tuples."""
    return {key_tuple(k) for k in td.keys(include_nested=True)}


def read_outcome(td, key, form, default):
    """("raised", exception type) or ("returned", value) for reading ``key`` from ``td`` as
    ``td[key]`` (form "[]"), ``td.get(key)`` ("get") or ``td.get(key, default)`` ("get+default")."""
    try:
        if form == "[]":
            return ("returned", td[key])
        if form == "get":
            return ("returned", td.get(key))
        return ("returned", td.get(key, default))
    except Exception as exc:  # the kind of failure is what is compared
        return ("raised", type(exc))


@prop("EXC-001", case=stack_cases(exclusive=True), examples=_NESTED)
def test_keys_are_the_intersection(subject, case: StackCase) -> None:
    stack = subject.lazy_stack(case.tds, case.dim)
    call = f"lazy_stack(tds, dim={case.dim}).keys(...)"
    fix = "report only the keys every element holds (recursively for nested tensordicts)"
    leaves = set.intersection(*(leaf_keys(td) for td in case.tds))
    expect(leaf_keys(stack) == leaves, "keys(include_nested=True, leaves_only=True)",
           sorted(leaf_keys(stack)), sorted(leaves), call, fix)
    every = set.intersection(*(all_keys(td) for td in case.tds))
    expect(all_keys(stack) == every, "keys(include_nested=True)", sorted(all_keys(stack)),
           sorted(every), call, fix)
    top = set.intersection(*(set(td.keys()) for td in case.tds))
    expect(set(stack.keys()) == top, "keys()", sorted(stack.keys()), sorted(top), call, fix)


@prop("EXC-002", case=stack_cases(exclusive=True), examples=_NESTED)
def test_elements_keep_exclusive_keys(subject, case: StackCase) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    before = snapshot(case.tds)
    stack = subject.lazy_stack(case.tds, case.dim)
    for i, expected in enumerate(before):
        index = (slice(None),) * d + (i,)
        expect_td_equal(stack[index], expected, f"stack[{index}]",
                        f"lazy_stack(tds, dim={case.dim})", fix=_KEEP)


# fixed first: the rich stack sliced across elements whose keys differ, then an empty slice
@prop("EXC-003", case=slice_cases(),
      examples=(dict(case=rich_slice()), dict(case=rich_slice(empty=True))))
def test_slice_keeps_exclusive_keys(subject, case: SliceCase) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    before = snapshot(case.tds)
    chosen = range(len(case.tds))[slice(*case.bounds)]
    stack = subject.lazy_stack(case.tds, case.dim)
    index = (slice(None),) * d + (slice(*case.bounds),)
    call = f"lazy_stack(tds, dim={case.dim})[{index}]"
    part = stack[index]
    expect(part.batch_size[d] == len(chosen), f"size of the slice along dim {d}",
           part.batch_size[d], len(chosen), call)
    for j, i in enumerate(chosen):
        at = (slice(None),) * d + (j,)
        expect_td_equal(part[at], before[i], f"slice[{at}] (element {i})", call,
                        fix="a slice along the stack dim must stack the selected elements "
                            "themselves, exclusive keys included")


@prop("EXC-004", case=nested_stack_cases(exclusive=True), examples=(dict(case=rich_grid()),))
def test_nested_stack_keeps_exclusive_keys(subject, case: NestedStackCase) -> None:
    ndim = case.grid[0][0].batch_dims
    d_in = case.inner_dim % (ndim + 1)  # in the inner stacks' dims
    d_out = case.outer_dim % (ndim + 2)  # in the outer stack's dims
    d_in_outer = d_in if d_in < d_out else d_in + 1  # the inner stack dim in the outer's dims
    d_out_after = d_out if d_out < d_in_outer else d_out - 1  # the outer dim once d_in is gone
    before = [snapshot(row) for row in case.grid]
    inner = [subject.lazy_stack(row, case.inner_dim) for row in case.grid]
    outer = subject.lazy_stack(inner, case.outer_dim)
    call = f"lazy_stack([lazy_stack(row, {case.inner_dim}) for row in grid], {case.outer_dim})"
    for t, row in enumerate(before):
        for i, expected in enumerate(row):
            at_t = (slice(None),) * d_out + (t,)
            at_i = (slice(None),) * d_in + (i,)
            expect_td_equal(outer[at_t][at_i], expected, f"outer[{at_t}][{at_i}]", call,
                            fix=_KEEP)
            by_i = (slice(None),) * d_in_outer + (i,)
            then_t = (slice(None),) * d_out_after + (t,)
            expect_td_equal(outer[by_i][then_t], expected, f"outer[{by_i}][{then_t}]", call,
                            fix=_KEEP)
            both = [slice(None)] * (max(d_out, d_in_outer) + 1)
            both[d_out], both[d_in_outer] = t, i
            expect_td_equal(outer[tuple(both)], expected, f"outer[{tuple(both)}]", call,
                            fix=_KEEP)


@prop("EXC-005", case=stack_cases(exclusive=True), examples=_NESTED)
def test_reading_a_non_shared_key_fails_like_a_missing_key(subject, case: StackCase) -> None:
    stack = subject.lazy_stack(case.tds, case.dim)
    partial = set.union(*(all_keys(td) for td in case.tds)) - set.intersection(
        *(all_keys(td) for td in case.tds))
    default = "<default>"
    for key in sorted(partial):
        # the plain tensordict to compare with: an element that lacks the key
        probe = next(td for td in case.tds if key not in all_keys(td))
        k = key[0] if len(key) == 1 else key
        for form in ("[]", "get", "get+default"):
            got = read_outcome(stack, k, form, default)
            want = read_outcome(probe, k, form, default)
            shown = f"{form} of {k!r}"
            call = f"lazy_stack(tds, dim={case.dim}), read {shown} (default {default!r}); " \
                   f"the same read on an element without the key"
            if want[0] == "raised":
                ok = got[0] == "raised" and issubclass(got[1], want[1])
            else:
                ok = got[0] == "returned" and got[1] is want[1]
            if got[0] == "returned" and isinstance(got[1], torch.Tensor):
                got = ("returned", f"a tensor of shape {tuple(got[1].shape)}")
            expect(ok, f"stack: {shown}", got, want, call,
                   "fail as for a missing key; never return partial, padded or mixed data")


@prop("EXC-006", case=stack_cases(exclusive=True), examples=_NESTED)
def test_densify_keeps_shared_keys_and_own_values(subject, case: StackCase) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    before = snapshot(case.tds)
    shared = set.intersection(*(leaf_keys(td) for td in case.tds))
    stack = subject.lazy_stack(case.tds, case.dim)
    fix = "keep exactly the keys every element holds: never pad a key some elements lack"
    for how in ("contiguous", "to_tensordict", "densify"):
        call = f"lazy_stack(tds, dim={case.dim}).{how}()"
        try:
            dense = getattr(stack, how)()
        except Exception:  # refusing to densify a heterogeneous stack is allowed
            continue
        kept = leaf_keys(dense)
        expect(shared <= kept, f"shared keys missing from the result of {how}()",
               sorted(shared - kept), [], call, fix)
        expect(kept <= shared, f"non-shared keys in the result of {how}()", sorted(kept - shared),
               [], call, fix)
        for k in sorted(shared):
            value = dense.get(k)
            for i, td in enumerate(before):
                expect_tensor_equal(value[(slice(None),) * d + (i,)], td.get(k),
                                    f"{how}().get({k!r}) at element {i}", call,
                                    "stack each element's own value, in order")


@prop("EXC-007", case=stack_cases(), nested=st.booleans(), how=st.sampled_from(["set", "setitem"]),
      examples=(dict(case=rich_stack(), nested=False, how="set"),
                dict(case=rich_stack(), nested=True, how="setitem")))
def test_key_set_on_one_element_stays_there(subject, case: StackCase, nested: bool,
                                            how: str) -> None:
    d = case.dim % (case.tds[0].batch_dims + 1)
    n = len(case.tds)
    keys = [("sub", f"set{i}") if nested else f"set{i}" for i in range(n)]
    stack = subject.lazy_stack(case.tds, case.dim)
    for i in range(n):
        value = torch.full(tuple(case.tds[i].batch_size), i)
        if how == "set":
            stack[(slice(None),) * d + (i,)].set(keys[i], value)
        else:
            stack[(slice(None),) * d + (i,)][keys[i]] = value
    call = f"lazy_stack(tds, dim={case.dim})[i].{how}(key_i, value) for each i"
    for j, td in enumerate(case.tds):
        held = [key_tuple(k) for k in keys if key_tuple(k) in leaf_keys(td)]
        expect(held == [key_tuple(keys[j])], f"set-keys held by tds[{j}]", held,
               [key_tuple(keys[j])], call, "write into element i itself, and only there")
        expect_tensor_equal(td.get(keys[j]), torch.full(tuple(td.batch_size), j),
                            f"tds[{j}].get({keys[j]!r})", call)


@prop("EXC-008", case=stack_cases(exclusive=True), examples=_NESTED)
def test_membership_agrees_with_keys(subject, case: StackCase) -> None:
    stack = subject.lazy_stack(case.tds, case.dim)
    call = f"lazy_stack(tds, dim={case.dim})"
    union = set.union(*(all_keys(td) for td in case.tds))
    shared = set.intersection(*(all_keys(td) for td in case.tds))
    absent = {("absent",), ("sub", "absent"), ("absent", "x0")}
    for key in sorted(union | absent):
        k = key[0] if len(key) == 1 else key
        for nested, leaves in ((True, False), (True, True), (False, False)):
            view = stack.keys(include_nested=nested, leaves_only=leaves)
            listed = {key_tuple(x) for x in view}
            form = f"keys(include_nested={nested}, leaves_only={leaves})"
            if not nested and len(key) > 1:
                # the top-level view never lists a nested key: `in` must not find one there
                # (False, or TypeError as a plain TensorDict of tensordict 0.14 raises)
                try:
                    found = k in view
                except TypeError:
                    continue
                expect(not found, f"{k!r} in {form}", found, False, call,
                       "make `in` on a keys view agree with iterating it: a view without "
                       "include_nested lists no nested key")
                continue
            if key not in shared:
                expect(key not in listed, f"{k!r} listed by {form}", True, False, call,
                       "list only the keys every element holds")
            expect((k in view) == (key in listed), f"{k!r} in {form}", k in view,
                   key in listed, call, "make `in` on a keys view agree with iterating it")

"""POL: partial-tolerant policy -- a shared backbone and per-task heads over a lazy stack.

Every scenario is drawn as plain numbers (:class:`conformance.strategies.PolicyCase`); the modules
(weights seeded from the case) and the tensordicts are built inside the property by helpers that
the reproducer pastes, so a failure rebuilds exactly.  The policy is always
``sequential(backbone, *heads)``: the backbone maps "observation" to "hidden", the head of task t
maps ("observation_<t>", "hidden") to "action".
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

from conformance.assertions import (
    expect,
    expect_is,
    expect_td_equal,
    fail,
    leaf_keys,
    snapshot,
)
from conformance.properties._core import prop
from conformance.strategies import (
    MissingKeyCase,
    PolicyCase,
    missing_key_cases,
    policy_cases,
    policy_example,
)

_FIXED = (dict(case=policy_example()),)  # fixed first: a flat stack with a task without a head


def build_policy(case):
    """The backbone and one head per task (None where the task has none), weights from the seed."""
    from tensordict.nn import TensorDictModule
    from torchrl.modules import MLP

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(case.seed)
        backbone = TensorDictModule(torch.nn.Linear(case.obs_dim, case.hidden),
                                    in_keys=["observation"], out_keys=["hidden"])
        heads = []
        for t, (dim, cells) in enumerate(zip(case.task_dims, case.heads, strict=True)):
            if cells is None:
                heads.append(None)
                continue
            mlp = MLP(in_features=dim + case.hidden, out_features=case.action,
                      num_cells=list(cells))
            heads.append(TensorDictModule(mlp, in_keys=[f"observation_{t}", "hidden"],
                                          out_keys=["action"]))
    return backbone, heads


def build_elements(case):
    """The elements: one tensordict per entry of case.tasks (flat), or case.time rows of them."""
    from tensordict import TensorDict

    gen = torch.Generator().manual_seed(case.seed)

    def element(t):
        return TensorDict({
            "observation": torch.randn(*case.batch, case.obs_dim, generator=gen),
            f"observation_{t}": torch.randn(*case.batch, case.task_dims[t], generator=gen),
        }, batch_size=list(case.batch))

    rows = [[element(t) for t in case.tasks] for _ in range(max(case.time, 1))]
    return rows if case.time else rows[0]


def build_stack(lazy_stack, case, elements):
    """The flat stack of the elements along case.dim, or the nested one: rows stacked at dim 0,
    then those stacks stacked along case.dim (time x task, or task x time like a rollout)."""
    if not case.time:
        return lazy_stack(elements, case.dim)
    return lazy_stack([lazy_stack(row, 0) for row in elements], case.dim)


def positions(case):
    """(task, index) for every innermost element of the case's stack, in build_elements order."""
    pre = (slice(None),) * case.dim
    if not case.time:
        return [(t, (*pre, i)) for i, t in enumerate(case.tasks)]
    return [(t, ((*pre, k), i)) for k in range(case.time) for i, t in enumerate(case.tasks)]


def element_at(td, index):
    """The element of ``td`` at an index from positions (a nested index is applied in steps)."""
    if isinstance(index, tuple) and index and isinstance(index[0], tuple):
        for step in index:
            td = td[step]
        return td
    return td[index]


def show(index):
    """An index from positions as it is written in code: (slice(None), 2) -> "[:, 2]"."""
    if isinstance(index, tuple) and index and isinstance(index[0], tuple):
        return "".join(show(step) for step in index)
    steps = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(":" if isinstance(i, slice) else str(i) for i in steps) + "]"


def flat_elements(case, elements):
    """The innermost elements in build_elements order."""
    return [td for row in elements for td in row] if case.time else list(elements)


def rows_of(case):
    """How many rows of data one element holds (the product of its batch size)."""
    n = 1
    for s in case.batch:
        n *= s
    return n


def partial_tolerant(subject, case):
    """The case's modules (:func:`build_policy`) and ``subject.sequential`` of the backbone and
    the heads there are, partial-tolerant: ``(policy, backbone, heads)``."""
    backbone, heads = build_policy(case)
    policy = subject.sequential(backbone, *[h for h in heads if h is not None],
                                partial_tolerant=True)
    return policy, backbone, heads


def expect_action_in_served_elements(subject, case, stack, what, expected, fix):
    """Run ``sequential(backbone, *heads)`` on the case's stack: every element whose task has a
    head must come out holding an "action" of shape ``(*batch, action)``.  ``stack`` (the stack
    as the call shows it), ``what``, ``expected`` and ``fix`` are templates of ``{task}``,
    ``{index}`` (as :func:`show` writes it) and ``{dim}``."""
    policy, _, heads = partial_tolerant(subject, case)
    out = policy(build_stack(subject.lazy_stack, case, build_elements(case)))
    for task, index in positions(case):
        if heads[task] is None:
            continue
        el = element_at(out, index)
        text = {"task": task, "index": show(index), "dim": case.dim}
        call = (f"out = policy({stack.format(**text)}) with policy = sequential(backbone, *heads); "
                f"out{show(index)}")
        expect("action" in el.keys(), what.format(**text), sorted(leaf_keys(el)),
               expected.format(**text), call, fix.format(**text))
        shape = (*case.batch, case.action)
        expect(tuple(el.get("action").shape) == shape, f"shape of 'action' at {show(index)}",
               tuple(el.get("action").shape), shape, call)


@prop("POL-001", case=policy_cases(), examples=_FIXED)
def test_action_in_every_served_element(subject, case: PolicyCase) -> None:
    fix = ("run each head on every element that holds its in_keys (observation_{task}, hidden), "
           "not only when all elements do")
    expect_action_in_served_elements(subject, case, "lazy_stack(tds, dim={dim})",
                                     "'action' in element {index} (task {task})",
                                     "its keys plus 'action' (head of task {task} applies)", fix)


@prop("POL-002", case=policy_cases(nested=True))
def test_action_in_every_innermost_element(subject, case: PolicyCase) -> None:
    expect_action_in_served_elements(
        subject, case, "lazy_stack([lazy_stack(row, 0) for row in rows], dim={dim})",
        "'action' in innermost element out{index} (task {task})", "its keys plus 'action'",
        "descend into nested lazy stacks: a stack's element may itself be a lazy stack whose "
        "elements hold the head's keys")


@prop("POL-003", case=policy_cases(), examples=_FIXED)
def test_stacked_equals_alone(subject, case: PolicyCase) -> None:
    policy, _, _ = partial_tolerant(subject, case)
    tds = build_elements(case)
    alone = [snapshot(policy(td.clone())) for td in tds]
    out = snapshot(policy(build_stack(subject.lazy_stack, case, tds)))
    for (task, index), expected in zip(positions(case), alone, strict=True):
        # Tolerance, not bitwise: a batched matmul over the stacked elements may sum in another
        # order (BLAS blocking) than the same matmul on one element; values, keys, shapes and
        # dtypes must still agree (float32 tolerance, as torch.testing.assert_close).
        expect_td_equal(element_at(out, index), expected,
                        f"out{show(index)} (task {task}) vs. policy(that element alone)",
                        f"policy(lazy_stack(tds, dim={case.dim})) vs. "
                        f"policy(tds[{index[-1]}].clone()), policy = sequential(backbone, *heads)",
                        fix="compute each element's output from that element's inputs only, and "
                            "write it back to the same element", rtol=1.3e-6, atol=1e-5)


@prop("POL-004", case=policy_cases(nested=None), examples=_FIXED)
def test_backbone_runs_once(subject, case: PolicyCase) -> None:
    backbone, heads = build_policy(case)
    calls = []
    backbone.module.register_forward_hook(lambda mod, args, res: calls.append(args[0].shape))
    policy = subject.sequential(backbone, *[h for h in heads if h is not None],
                                partial_tolerant=True)
    policy(build_stack(subject.lazy_stack, case, build_elements(case)))
    n = len(case.tasks) * max(case.time, 1)
    expect(len(calls) == 1, f"backbone calls for one policy call on {n} element(s)",
           f"{len(calls)} call(s) with inputs of shapes {[tuple(s) for s in calls][:8]}",
           "1 call", f"sequential(backbone, *heads)({'nested' if case.time else 'flat'} stack)",
           "run a module whose in_keys every element holds once on the whole stack")


@prop("POL-005", mk=missing_key_cases())
def test_strict_missing_key_raises(subject, mk: MissingKeyCase) -> None:
    backbone, heads = build_policy(mk.case)
    td = build_elements(mk.case)[0]
    if mk.missing in td.keys():
        del td[mk.missing]
    policy = subject.sequential(backbone, heads[mk.task], partial_tolerant=False)
    call = (f"sequential(backbone, head_{mk.task}, partial_tolerant=False)(td) with td's keys "
            f"{sorted(td.keys())}")
    try:
        policy(td)
    except KeyError as exc:
        text = " ".join([str(exc), *getattr(exc, "__notes__", [])])
        named = repr(mk.missing) in text or f'"{mk.missing}"' in text
        expect(named, "the KeyError's message", text, f"a message naming {mk.missing!r}", call,
               "say which key is missing (and from which module / element)")
        return
    except Exception as exc:  # any other error is the finding
        fail("the exception raised", f"{type(exc).__name__}: {exc}",
             f"KeyError naming {mk.missing!r}", call, "raise KeyError for a missing input key")
    fail("the exception raised", "no exception", f"KeyError naming {mk.missing!r}", call,
         "with partial_tolerant=False, raise KeyError instead of skipping the module")


@prop("POL-006", case=policy_cases(nested=None), examples=_FIXED)
def test_head_skips_elements_without_its_keys(subject, case: PolicyCase) -> None:
    backbone, heads = build_policy(case)
    fed = {}  # task -> the rows of observation_<task> its head received
    for t, head in enumerate(heads):
        if head is not None:
            fed[t] = []
            head.module.register_forward_hook(
                lambda mod, args, res, t=t: fed[t].append(args[0].detach().reshape(
                    -1, case.task_dims[t]).clone()))
    policy = subject.sequential(backbone, *[h for h in heads if h is not None],
                                partial_tolerant=True)
    elements = build_elements(case)
    flat = flat_elements(case, elements)
    before = [snapshot(td) for td in flat]
    policy(build_stack(subject.lazy_stack, case, elements))
    n_task = [t for row in [case.tasks] * max(case.time, 1) for t in row]
    call = (f"sequential(backbone, *heads)({'nested' if case.time else 'flat'} stack of tasks "
            f"{list(case.tasks)})")
    for t, got in fed.items():
        got = torch.cat(got) if got else torch.zeros(0, case.task_dims[t])
        own = [old.get(f"observation_{t}").reshape(-1, case.task_dims[t])
               for old, u in zip(before, n_task, strict=True) if u == t]
        own = torch.cat(own) if own else torch.zeros(0, case.task_dims[t])
        known = (got[:, None, :] == own[None, :, :]).all(-1).any(-1)
        fix = (f"feed head {t} only the elements that hold observation_{t} (no padding, no "
               "zero-filled or borrowed inputs)")
        expect(len(got) <= len(own), f"rows of data head {t} ran on", len(got),
               f"at most {len(own)} ({len(own) // rows_of(case)} element(s) of task {t} x "
               f"{rows_of(case)} row(s))", call, fix)
        expect(bool(known.all()), f"inputs head {t} ran on",
               f"{int((~known).sum())} row(s) of 'observation_{t}' that no element of task {t} "
               f"holds, e.g. {got[~known][:1].tolist()}", f"only rows of task {t}'s elements",
               call, fix)
    for k, (td, old) in enumerate(zip(flat, before, strict=True)):
        if heads[n_task[k]] is not None:
            continue
        expect_td_equal(td, old, f"element {k} (task {n_task[k]}, no head) after the call",
                        call, keys=leaf_keys(old),
                        fix="leave the inputs of an element no head applies to untouched")
        expect(leaf_keys(td) <= leaf_keys(old) | {("hidden",)},
               f"keys of element {k} (task {n_task[k]}, no head)", sorted(leaf_keys(td)),
               f"at most {sorted(leaf_keys(old) | {('hidden',)})}", call,
               "write no head output into an element that lacks the head's in_keys")


@prop("POL-007", case=policy_cases(max_elements=1), partial_tolerant=st.booleans())
def test_single_td_equals_modules_in_order(subject, case: PolicyCase,
                                           partial_tolerant: bool) -> None:
    backbone, heads = build_policy(case)
    td = build_elements(case)[0]
    own = heads[case.tasks[0]]
    if partial_tolerant:
        modules = [backbone, *[h for h in heads if h is not None]]
    else:
        modules = [backbone, *([own] if own is not None else [])]
    expected = td.clone()
    for module in modules:
        if all(k in expected.keys(include_nested=True) for k in module.in_keys):
            module(expected)
    out = snapshot(subject.sequential(*modules, partial_tolerant=partial_tolerant)(td))
    expect_td_equal(out, expected, "policy(td) vs. its modules applied to td in order",
                    f"sequential(*{len(modules)} modules, partial_tolerant={partial_tolerant})"
                    f"(td) with td's keys {sorted(td.keys())}",
                    fix="on a plain tensordict, call each module in order on the tensordict "
                        "itself")


@prop("POL-008", case=policy_cases(), examples=_FIXED)
def test_writes_into_originals(subject, case: PolicyCase) -> None:
    policy, _, heads = partial_tolerant(subject, case)
    tds = build_elements(case)
    stack = build_stack(subject.lazy_stack, case, tds)
    policy(stack)
    for (task, index), td in zip(positions(case), tds, strict=True):
        call = (f"sequential(backbone, *heads)(stack) with stack = lazy_stack(tds, "
                f"dim={case.dim}); stack{show(index)}")
        expect_is(element_at(stack, index), td, f"stack{show(index)} after the call", call,
                  "write outputs into the stack's elements; never replace them")
        if heads[task] is not None:
            expect("action" in td.keys(), f"'action' in the original tds[{index[-1]}] "
                   f"(task {task})", sorted(leaf_keys(td)), "its keys plus 'action'", call,
                   "write into the input's elements, not into a copy of the input")


@prop("POL-009", case=policy_cases(nested=None))
def test_each_head_runs_once_vectorized(subject, case: PolicyCase) -> None:
    backbone, heads = build_policy(case)
    calls = {}
    for t, head in enumerate(heads):
        if head is not None:
            calls[t] = []
            head.module.register_forward_hook(
                lambda mod, args, res, t=t: calls[t].append(args[0][..., 0].numel()))
    policy = subject.sequential(backbone, *[h for h in heads if h is not None],
                                partial_tolerant=True)
    policy(build_stack(subject.lazy_stack, case, build_elements(case)))
    n_task = [t for row in [case.tasks] * max(case.time, 1) for t in row]
    call = (f"sequential(backbone, *heads)({'nested' if case.time else 'flat'} stack of tasks "
            f"{list(case.tasks)})")
    for t, seen in calls.items():
        k = n_task.count(t)
        if k == 0:
            continue
        want = [k * rows_of(case)]
        fix = (f"stack the inputs of all elements holding observation_{t} and call head {t} "
               "once on them, instead of once per element" if seen else
               f"run head {t} on the elements holding observation_{t}, nested stacks included")
        expect(seen == want, f"calls of head {t} (rows of data per call)", seen,
               f"{want}: one call over its {k} element(s)", call, fix)

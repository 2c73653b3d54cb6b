"""Assertion helpers for properties: one message shape, observed vs expected and the call.

``"{what}: observed {observed}, expected {expected} [{call}]"`` -- and the likely fix where one is
known.  This module needs only torch and tensordict: its source is pasted into reproducer snippets.
"""

from __future__ import annotations

from typing import Any

import torch


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fail(what: str, observed: Any, expected: Any, call: str, fix: str = "") -> None:
    """Raise AssertionError in the kit's message shape."""
    __tracebackhide__ = True
    msg = f"{what}: observed {_short(observed)}, expected {_short(expected)} [{call}]"
    raise AssertionError(msg + (f". Likely fix: {fix}" if fix else ""))


def expect(ok: bool, what: str, observed: Any, expected: Any, call: str, fix: str = "") -> None:
    """Fail with observed vs expected unless ``ok``."""
    __tracebackhide__ = True
    if not ok:
        fail(what, observed, expected, call, fix)


def expect_is(obj: Any, original: Any, what: str, call: str, fix: str = "") -> None:
    """``obj`` must be ``original`` itself (identity, not equality)."""
    __tracebackhide__ = True
    if obj is not original:
        fail(what, f"a different object ({type(obj).__name__} id={id(obj):#x})",
             f"the original ({type(original).__name__} id={id(original):#x})", call, fix)


def key_tuple(key: Any) -> tuple[str, ...]:
    """A (possibly nested) key as a tuple of strings."""
    return (key,) if isinstance(key, str) else tuple(key)


def is_non_tensor(value: Any) -> bool:
    """Whether ``value`` is tensordict's non-tensor data (strings, metadata: NonTensorData or
    NonTensorStack)."""
    return type(value).__name__ in ("NonTensorData", "NonTensorStack")


def leaf_keys(td: Any) -> set[tuple[str, ...]]:
    """The set of leaf keys of a tensordict, nested keys as tuples; non-tensor entries (which
    ``keys(leaves_only=True)`` leaves out) included."""
    out = {key_tuple(k) for k in td.keys(include_nested=True, leaves_only=True)}
    for k in td.keys(include_nested=True):
        if key_tuple(k) not in out and is_non_tensor(td.get(k)):
            out.add(key_tuple(k))
    return out


def tensors_equal(a: Any, b: Any, rtol: float = 0.0, atol: float = 0.0) -> bool:
    """Bitwise equality: same dtype, same shape, same values (NaNs at the same places match).

    With ``rtol`` / ``atol``, floating values may differ by up to ``atol + rtol * |b|``
    (``torch.allclose``); dtype and shape must still match and other dtypes be equal bitwise.
    """
    if is_non_tensor(a) or is_non_tensor(b):  # the same kind, batch size and python values
        return (type(a) is type(b) and a.batch_size == b.batch_size
                and a.tolist() == b.tolist())
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return False
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point() and (rtol or atol):
        return bool(torch.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True))
    if a.is_floating_point():
        both_nan = torch.isnan(a) & torch.isnan(b)
        return bool(torch.equal(torch.where(both_nan, 0, a), torch.where(both_nan, 0, b)))
    return bool(torch.equal(a, b))


def describe_tensor(t: Any) -> str:
    """A short description of a tensor: dtype, shape and (small) values."""
    if is_non_tensor(t):
        return f"{type(t).__name__}(batch_size={tuple(t.batch_size)}, data={t.tolist()!r})"[:300]
    if not isinstance(t, torch.Tensor):
        return _short(t)
    vals = t.flatten()[:6].tolist()
    return f"tensor(dtype={t.dtype}, shape={tuple(t.shape)}, first={vals})"


def expect_tensor_equal(a: Any, b: Any, what: str, call: str, fix: str = "") -> None:
    """Bitwise tensor equality, or fail with both tensors described."""
    __tracebackhide__ = True
    if not tensors_equal(a, b):
        fail(what, describe_tensor(a), describe_tensor(b), call, fix)


def expect_td_equal(
    observed: Any, expected: Any, what: str, call: str, keys: Any = None, fix: str = "",
    rtol: float = 0.0, atol: float = 0.0,
) -> None:
    """Bitwise equality of two tensordicts' leaves (``keys`` restricts the comparison); with
    ``rtol`` / ``atol``, floating leaves equal within that tolerance (:func:`tensors_equal`)."""
    __tracebackhide__ = True
    obs_keys = leaf_keys(observed)
    exp_keys = leaf_keys(expected)
    wanted = {key_tuple(k) for k in keys} if keys is not None else exp_keys
    missing = sorted(wanted - obs_keys)
    if missing:
        fail(f"{what}: keys missing {missing}", sorted(obs_keys & wanted), sorted(wanted), call,
             fix)
    for key in sorted(wanted):  # values first: an extra entry must not hide a wrong value
        a, b = observed.get(key), expected.get(key)
        if not tensors_equal(a, b, rtol, atol):
            fail(f"{what}: values of {key!r} differ", describe_tensor(a), describe_tensor(b),
                 call, fix)
    if keys is None and obs_keys != exp_keys:
        fail(f"{what}: key sets differ (extra {sorted(obs_keys - exp_keys)})", sorted(obs_keys),
             sorted(exp_keys), call, fix)


def snapshot(obj: Any) -> Any:
    """A deep copy of what a subject returned, so later writes or buffer reuse cannot alias it.

    Lazy stacks are copied element by element (keeping their exclusive keys); tensors are cloned.
    """
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, (list, tuple)):
        return type(obj)(snapshot(o) for o in obj)
    tds = getattr(obj, "tensordicts", None)
    if tds is not None:  # a lazy stack: rebuild it from copies of its elements
        from tensordict import LazyStackedTensorDict

        return LazyStackedTensorDict(*[snapshot(t) for t in tds], stack_dim=obj.stack_dim)
    if hasattr(obj, "clone"):
        return obj.clone()
    return obj


def elements(td: Any) -> list[Any]:
    """The elements of a batched output along dim 0: a lazy stack's own elements, else unbind."""
    tds = getattr(td, "tensordicts", None)
    if tds is not None and getattr(td, "stack_dim", 0) == 0:
        return list(tds)
    return list(td.unbind(0))


def shown_exceptions(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions Python's traceback shows with it: its ``__cause__``, else its
    ``__context__`` unless suppressed (``raise ... from None``), and so on down the chain."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain

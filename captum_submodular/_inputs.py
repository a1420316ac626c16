"""Input validation shared by the attribution class, the metrics and the harness.

Captum's argument forms (inputs, baselines, targets, feature masks, additional forward
arguments) are checked and normalised here, so every entry point accepts the same forms
and refuses the same mistakes with the same message.  Every check runs before the first
model call, except those that need the model's output (the target's range and the
output's shape), which run at the first forward of the clean input
(:func:`resolve_targets`, :func:`resolve_target`).

Errors are ``ValueError`` naming the argument and what was expected (``TypeError`` for
unexpected keyword arguments, as Python does); a model output that contains NaN or inf
raises :class:`NonFiniteOutputError`.

Decisions, made once for every entry point:

- *Tuples, not lists.*  Several input tensors are passed as a ``tuple`` (Captum's form:
  tuple in, tuple out).  A ``list`` of tensors is refused with a hint, as Captum's
  ``_format_tensor_into_tuples`` refuses it, rather than treated as a tuple in some
  places and as one argument in others.  (A ``target`` list of ``N`` per-example
  entries is a different, valid form.)
- *Dtypes.*  Inputs may be floating point, integer or bool.  Baselines are cast to the
  input's dtype and must be representable in it exactly: integer inputs take integral
  baselines in range, bool inputs take 0/1, and a value that overflows a float dtype is
  refused.  NaN or inf inputs, baselines or attributions are refused.
- *Targets.*  Class indices are integers (a float, a float tensor or a bool is refused,
  never truncated).  Negative indices count from the end of the class axis, as in
  Captum and in Python indexing; they are resolved against the model's output at the
  first forward, where an index outside ``-C..C-1`` is refused.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "NonFiniteOutputError",
    "as_tuple",
    "check_inputs",
    "check_attributions",
    "check_positive_int",
    "check_real",
    "check_baselines",
    "check_feature_mask",
    "check_windows",
    "check_target",
    "targets_per_example",
    "resolve_targets",
    "resolve_target",
    "check_class_list",
    "resolve_class_list",
    "rows_target",
    "format_afa",
    "rows_afa",
    "as_output",
    "check_finite_output",
    "broadcasts_to",
]

#: Largest absolute value of an index that torch can hold (int64).
_INDEX_LIMIT = 2**63


class NonFiniteOutputError(RuntimeError):
    """The model (or the embedding) returned NaN or inf; the message says for which input."""


def as_tuple(x: Any) -> Tuple[Any, ...]:
    """``(x,)`` for a single value; a tuple or list as a tuple (for values we produced)."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _refuse_list(value: Any, name: str, what: str = "tensors") -> None:
    if isinstance(value, list):
        raise ValueError(
            f"{name} must be a tensor or a tuple of {what} (Captum's forms); got a list of "
            f"{len(value)} element(s): pass tuple({name}) instead"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a numpy array of shape {value.shape} (convert it with torch.as_tensor)"
    if isinstance(value, (list, tuple, dict, set)):
        return type(value).__name__
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 60 else text[:57] + '...'}"


# --------------------------------------------------------------------------- inputs


def check_inputs(inputs: Any, name: str = "inputs") -> Tuple[Tuple[Tensor, ...], bool, int]:
    """``inputs`` → (tuple of detached tensors, was it a tuple, batch size ``N``).

    Each tensor is ``N×…`` with at least one feature axis and a non-empty example, of a
    floating-point, integer or bool dtype, without NaN or inf.
    """
    _refuse_list(inputs, name)
    is_tuple = isinstance(inputs, tuple)
    tensors = inputs if is_tuple else (inputs,)
    if len(tensors) == 0 or not all(isinstance(t, Tensor) for t in tensors):
        raise ValueError(
            f"{name} must be a tensor of shape N x ... or a tuple of such tensors; got {_describe(inputs)}"
        )
    for t in tensors:
        if t.dim() < 2:
            raise ValueError(
                f"{name} must have a batch axis and at least one feature axis "
                f"(N x F or N x C x H x W ...); got shape {tuple(t.shape)}"
            )
        if not (t.is_floating_point() or t.dtype == torch.bool or _is_integer_dtype(t.dtype)):
            raise ValueError(f"{name} must be floating point, integer or bool; got dtype {t.dtype}")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(
            f"{name}: all tensors of the tuple must have the same batch size; got {[tuple(t.shape) for t in tensors]}"
        )
    if n == 0:
        raise ValueError(f"{name}: empty batch (N = 0); expected at least one example")
    if any(t[0].numel() == 0 for t in tensors):
        raise ValueError(
            f"{name}: examples have no elements (a feature axis of size 0); got shapes "
            f"{[tuple(t.shape) for t in tensors]}"
        )
    for t in tensors:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = "NaN" if bool(torch.isnan(t).any()) else "inf"
            raise ValueError(f"{name} contain {bad}; expected finite values")
    return tuple(t.detach() for t in tensors), is_tuple, n


def _is_integer_dtype(dtype: torch.dtype) -> bool:
    return dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64) or (
        dtype in tuple(getattr(torch, f"uint{b}") for b in (16, 32, 64) if hasattr(torch, f"uint{b}"))
    )


def check_attributions(attributions: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """Attributions shaped like ``inputs`` (or ``N×1×…`` for ``N×C×…`` inputs), finite, as floats."""
    _refuse_list(attributions, "attributions")
    attrs = attributions if isinstance(attributions, tuple) else (attributions,)
    if len(attrs) != len(inputs) or not all(isinstance(a, Tensor) for a in attrs):
        raise ValueError(
            f"attributions must match inputs: expected {len(inputs)} tensor(s), got "
            f"{type(attributions).__name__} with "
            f"{len(attrs) if isinstance(attributions, tuple) else 1} element(s)"
        )
    out = []
    for a, x in zip(attrs, inputs):
        ok = tuple(a.shape) == tuple(x.shape) or (x.dim() >= 3 and tuple(a.shape) == (x.shape[0], 1, *x.shape[2:]))
        if not ok:
            extra = ""
            if x.dim() >= 3:
                extra = f" or {(x.shape[0], 1, *x.shape[2:])}"
            raise ValueError(
                f"attributions must have the same shape as inputs {tuple(x.shape)}{extra}; got {tuple(a.shape)}"
            )
        if a.is_complex():
            raise ValueError(f"attributions must be real; got dtype {a.dtype}")
        a = a.detach()
        if not a.is_floating_point():
            a = a.float()
        if not bool(torch.isfinite(a).all()):
            bad = "NaN" if bool(torch.isnan(a).any()) else "inf"
            raise ValueError(f"attributions contain {bad}; a metric needs finite values to rank the elements")
        out.append(a.to(x.device))
    return tuple(out)


def check_positive_int(value: Any, name: str, none: Optional[str] = None) -> int:
    """An integer ``>= 1`` (a bool or a float is refused); ``none`` names what ``None``
    means where the caller accepts it (e.g. ``"automatic"``), for the message."""
    if not _is_int(value) or value < 1:
        also = f"None ({none}) or " if none else ""
        raise ValueError(f"{name} must be {also}an integer >= 1; got {value!r}")
    return int(value)


def check_real(value: Any, name: str, allow_none: bool = True) -> Optional[float]:
    """A finite real number (or ``None`` when allowed); a bool or a string is refused."""
    if value is None and allow_none:
        return None
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_complex() and value.dtype != torch.bool:
        value = value.item()
    if not isinstance(value, numbers.Real) or isinstance(value, (bool, np.bool_)) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be {'None or ' if allow_none else ''}a finite number; got {value!r}")
    return float(value)


def broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except RuntimeError:
        return False


# --------------------------------------------------------------------------- baselines


def _example_or_batch(t: Tensor, x: Tensor, name: str, expected: str) -> Tensor:
    """``t`` with ``x.dim()`` axes: one example's shape gains the batch axis; otherwise it
    must broadcast to the batch (leading axes of size 1 added)."""
    if t.dim() == x.dim() - 1 and broadcasts_to(t.shape, x.shape[1:]):
        return t.unsqueeze(0)
    if t.dim() <= x.dim() and broadcasts_to(t.shape, x.shape):
        return t.reshape((1,) * (x.dim() - t.dim()) + tuple(t.shape))
    raise ValueError(
        f"{name} must be {expected} broadcastable to one example {tuple(x.shape[1:])} or to "
        f"the batch {tuple(x.shape)}; got shape {tuple(t.shape)}"
    )


def _baseline_value(b: Any, x: Tensor, j: int) -> Tensor:
    """A number → a 0-dim tensor of ``x``'s dtype holding exactly that value."""
    where = "baselines" if j < 0 else f"baselines[{j}]"
    if isinstance(b, (bool, np.bool_)):
        b = int(b)
    if not isinstance(b, numbers.Real):
        raise ValueError(f"{where} must be numbers or tensors; got {_describe(b)}")
    if not math.isfinite(float(b)):
        raise ValueError(f"{where} is {b!r}; baselines must be finite")
    if x.dtype == torch.bool:
        if b not in (0, 1):
            raise ValueError(f"{where} is {b!r}; bool inputs take baselines 0/1 (False/True)")
        return torch.tensor(bool(b), device=x.device)
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        if float(b) != math.floor(float(b)) or not info.min <= b <= info.max:  # type: ignore[operator]
            raise ValueError(
                f"{where} is {b!r}, which {x.dtype} inputs cannot hold exactly; pass an integer "
                f"in [{info.min}, {info.max}] or convert the inputs to a floating-point dtype"
            )
        return torch.tensor(int(b), dtype=x.dtype, device=x.device)  # type: ignore[call-overload]
    value = torch.tensor(float(b), dtype=torch.float64).to(x.dtype)
    if not bool(torch.isfinite(value)):
        raise ValueError(f"{where} is {b!r}, which overflows the inputs' dtype {x.dtype}")
    return value.to(x.device)


def _baseline_tensor(b: Tensor, x: Tensor, j: int) -> Tensor:
    where = "baselines" if j < 0 else f"baselines[{j}]"
    if b.is_complex():
        raise ValueError(f"{where} must be real; got dtype {b.dtype}")
    b = b.detach()
    if b.is_floating_point() and not bool(torch.isfinite(b).all()):
        bad = "NaN" if bool(torch.isnan(b).any()) else "inf"
        raise ValueError(f"{where} contain {bad}; baselines must be finite")
    b = _example_or_batch(b, x, where, "a number or a tensor")
    if b.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"{where} has shape {tuple(b.shape)}: its batch axis must be 1 or N = {x.shape[0]}")
    if x.dtype == torch.bool:
        if b.dtype != torch.bool and not bool(((b == 0) | (b == 1)).all()):
            raise ValueError(f"{where} must hold only 0/1 (False/True) for bool inputs")
        return b.to(device=x.device, dtype=torch.bool)
    if not x.is_floating_point():
        info = torch.iinfo(x.dtype)
        wide = b.double() if b.is_floating_point() else b.long()
        integral = bool((wide == torch.floor(wide)).all()) if b.is_floating_point() else True
        if not integral or bool((wide < info.min).any()) or bool((wide > info.max).any()):
            raise ValueError(
                f"{where} hold values that {x.dtype} inputs cannot hold exactly (non-integral or "
                f"out of [{info.min}, {info.max}]); convert the inputs to a floating-point dtype"
            )
        return b.to(device=x.device, dtype=x.dtype)
    cast = b.to(device=x.device, dtype=x.dtype)
    if not bool(torch.isfinite(cast).all()):
        raise ValueError(f"{where} hold values that overflow the inputs' dtype {x.dtype}")
    return cast


def check_baselines(baselines: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """Captum's baseline forms → one tensor per input, of the input's dtype and device.

    Forms: ``None`` (0), a number, a tensor shaped like one example or broadcastable to
    the batch, or a tuple of those (one per input tensor).  Each returned tensor has the
    input's number of axes, a batch axis of 1 or ``N``, and broadcasts to the input.
    """
    _refuse_list(baselines, "baselines", "numbers or tensors")
    if baselines is None:
        bl: Tuple[Any, ...] = (0,) * len(inputs)
    elif isinstance(baselines, tuple):
        bl = baselines
        if (
            len(bl) != len(inputs)
            and len(inputs) == 1
            and len(bl) == inputs[0].dim() - 1
            and all(_is_int(v) for v in bl)
        ):
            raise ValueError(
                f"`baselines` got {baselines!r}, which looks like Occlusion's positional "
                "`sliding_window_shapes`; SubmodularAttribution.attribute takes `baselines` second, "
                "so pass the window by keyword: `sliding_window_shapes=...`."
            )
        if len(bl) != len(inputs):
            raise ValueError(f"baselines must have one entry per input tensor ({len(inputs)}); got {len(bl)}")
    else:
        if len(inputs) != 1:
            raise ValueError(
                f"baselines must be a tuple with one entry per input tensor ({len(inputs)}); "
                f"got a single {type(baselines).__name__}"
            )
        bl = (baselines,)
    out = []
    for j, (b, x) in enumerate(zip(bl, inputs)):
        k = j if len(inputs) > 1 else -1
        if isinstance(b, Tensor):
            out.append(_baseline_tensor(b, x, k))
        else:
            out.append(_baseline_value(b, x, k).reshape((1,) * x.dim()))
    return tuple(out)


# --------------------------------------------------------------------------- masks


def check_feature_mask(feature_mask: Any, inputs: Tuple[Tensor, ...]) -> Optional[Tuple[Tensor, ...]]:
    """Integer mask(s) broadcastable to the inputs → one per input with the input's axes.

    Forms: a tensor (or a tuple, one per input tensor) broadcastable to one example or to
    the batch (``1×1×H×W``, ``N×1×H×W``, ``H×W`` …); ids are any integers.  Returned
    masks have a batch axis of 1 or ``N`` (not expanded).
    """
    if feature_mask is None:
        return None
    _refuse_list(feature_mask, "feature_mask")
    masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
    if len(masks) != len(inputs):
        raise ValueError(f"feature_mask must have one mask per input tensor ({len(inputs)}); got {len(masks)}")
    out = []
    for j, (m, x) in enumerate(zip(masks, inputs)):
        where = "feature_mask" if len(inputs) == 1 else f"feature_mask[{j}]"
        if not isinstance(m, Tensor):
            raise ValueError(f"{where} must be an integer tensor; got {_describe(m)}")
        if m.is_floating_point() or m.is_complex() or m.dtype == torch.bool:
            raise ValueError(f"{where} must be an integer tensor of region ids; got dtype {m.dtype}")
        if m.dim() > x.dim():
            raise ValueError(f"{where} has shape {tuple(m.shape)}, more axes than the input {tuple(x.shape)}")
        m = m.detach().reshape((1,) * (x.dim() - m.dim()) + tuple(m.shape))
        if m.shape[0] not in (1, x.shape[0]) or not broadcasts_to(m.shape[1:], x.shape[1:]):
            raise ValueError(
                f"{where} has shape {tuple(m.shape)}, which does not broadcast to the input "
                f"{tuple(x.shape)}; expected e.g. 1x1xHxW, Nx1xHxW or HxW for images"
            )
        out.append(m.to(x.device))
    return tuple(out)


def _int_tuple(value: Any, name: str, length: int) -> Tuple[int, ...]:
    if not isinstance(value, tuple) or len(value) != length or not all(_is_int(v) and v >= 1 for v in value):
        raise ValueError(
            f"{name} must be a tuple of {length} integer(s) >= 1, one per axis after the batch axis; got {value!r}"
        )
    return tuple(int(v) for v in value)


def check_windows(
    sliding_window_shapes: Any, strides: Any, inputs: Tuple[Tensor, ...]
) -> Tuple[Tuple[Tuple[int, ...], ...], Tuple[Optional[Tuple[int, ...]], ...]]:
    """Occlusion's ``sliding_window_shapes`` / ``strides`` → one window (and stride) per input.

    A window is a tuple with one entry per axis after the batch axis (``(3, 4, 4)`` for
    ``N×3×H×W``), or a tuple of such tuples for tuple inputs.  Strides: ``None``, an int,
    or tuples of the same forms.
    """
    many = len(inputs) > 1
    if many:
        if not isinstance(sliding_window_shapes, tuple) or len(sliding_window_shapes) != len(inputs):
            raise ValueError(
                f"sliding_window_shapes must be a tuple of {len(inputs)} windows, one per input "
                f"tensor; got {sliding_window_shapes!r}"
            )
        windows = sliding_window_shapes
    else:
        windows = (sliding_window_shapes,)
    win = tuple(_int_tuple(w, "sliding_window_shapes", x.dim() - 1) for w, x in zip(windows, inputs))
    if strides is None:
        return win, (None,) * len(inputs)
    if (
        many
        and isinstance(strides, tuple)
        and len(strides) == len(inputs)
        and all(isinstance(s, tuple) or _is_int(s) for s in strides)
        and any(isinstance(s, tuple) for s in strides)
    ):
        per = strides
    else:
        per = (strides,) * len(inputs)
    out = []
    for s, w in zip(per, win):
        if _is_int(s) and s >= 1:
            out.append((int(s),) * len(w))
        else:
            out.append(_int_tuple(s, "strides", len(w)))
    return win, tuple(out)


# --------------------------------------------------------------------------- targets

NormTarget = Union[None, int, Tuple[int, ...], Tensor, List[Tuple[int, ...]]]

_TARGET_FORMS = "None, an int, a tuple of ints, an integer tensor of 1 or N values, or a list of N ints or N tuples"


def _index(value: Any, name: str) -> int:
    if isinstance(value, Tensor) and value.numel() == 1 and _is_integer_dtype(value.dtype):
        value = value.item()
    if not _is_int(value):
        raise ValueError(f"{name} must hold integer class indices ({_TARGET_FORMS}); got {_describe(value)}")
    if not -_INDEX_LIMIT <= int(value) < _INDEX_LIMIT:
        raise ValueError(f"{name} {value} is out of range for a class index")
    return int(value)


def check_target(target: Any, n: int, name: str = "target") -> NormTarget:
    """Captum's target forms → ``None | int | tuple | LongTensor(N) | list[tuple]`` (len ``N``).

    Integers only (a float or a bool is refused, never truncated); negative indices are
    kept and resolved against the output at the first forward (:func:`resolve_target`).
    """
    if target is None or (isinstance(target, tuple) and len(target) == 0):
        return None
    if isinstance(target, tuple):
        return tuple(_index(t, name) for t in target)
    if isinstance(target, Tensor):
        if not _is_integer_dtype(target.dtype):
            raise ValueError(
                f"{name} must hold integer class indices; got a {target.dtype} tensor "
                f"(convert it with .long() if the values are integral)"
            )
        if target.numel() == 1:
            return _index(target.reshape(()), name)
        if target.dim() == 1 and target.numel() == n:
            return target.detach().long().cpu()
        raise ValueError(
            f"{name} tensor must be a single integer or an integer tensor of shape ({n},); "
            f"got shape {tuple(target.shape)}"
        )
    if isinstance(target, list):
        if len(target) != n:
            raise ValueError(f"{name} list must have length N = {n}; got {len(target)}")
        if all(isinstance(t, tuple) for t in target):
            return [tuple(_index(v, name) for v in t) for t in target]
        return torch.tensor([_index(t, name) for t in target], dtype=torch.long)
    return _index(target, name)


def targets_per_example(target: NormTarget, n: int) -> List[Tuple[int, ...]]:
    """A checked target (:func:`check_target`) → one index tuple per example (``()`` for None)."""
    if target is None:
        return [()] * n
    if isinstance(target, int):
        return [(target,)] * n
    if isinstance(target, tuple):
        return [target] * n
    if isinstance(target, Tensor):
        return [(int(v),) for v in target.tolist()]
    return list(target)


def _resolve_index(t: Tuple[int, ...], shape: Tuple[int, ...], name: str) -> Tuple[int, ...]:
    if len(t) > len(shape):
        raise ValueError(
            f"{name} {t if len(t) > 1 else t[0]} has {len(t)} index(es), but the model output has "
            f"shape {shape} per example"
        )
    out = []
    for v, size in zip(t, shape):
        if not -size <= v < size:
            raise ValueError(
                f"`{name}` {t if len(t) > 1 else t[0]} is out of range for the model output of shape "
                f"{shape} per example (indices 0..{size - 1}, or -{size}..-1 from the end)"
            )
        out.append(v + size if v < 0 else v)
    return tuple(out)


def resolve_targets(
    targets: Sequence[Tuple[int, ...]], example_shape: Sequence[int], name: str = "target"
) -> List[Tuple[int, ...]]:
    """Per-example index tuples checked against the output's per-example shape, negatives
    resolved (``-1`` → ``C − 1``).  Called at the first forward."""
    shape = tuple(int(s) for s in example_shape)
    return [_resolve_index(t, shape, name) for t in targets]


def resolve_target(target: NormTarget, output: Tensor, name: str = "target") -> NormTarget:
    """A checked target resolved against a model output (Captum's selection rules: an int
    or a tuple indexes the axes after the batch axis, a tensor or list of ints the axis 1
    of a 2-D output); raises ``ValueError`` when an index is out of range."""
    shape = tuple(output.shape[1:])
    if target is None:
        return None
    if isinstance(target, int):
        return _resolve_index((target,), shape, name)[0]
    if isinstance(target, tuple):
        return _resolve_index(target, shape, name)
    if isinstance(target, Tensor):
        if output.dim() != 2:
            raise ValueError(
                f"a per-example {name} needs a 2-D model output (N x classes); got shape {tuple(output.shape)}"
            )
        size = shape[0]
        bad = (target < -size) | (target >= size)
        if bool(bad.any()):
            raise ValueError(
                f"`{name}` {int(target[bad][0])} is out of range for the model output of shape "
                f"{shape} per example (indices 0..{size - 1}, or -{size}..-1 from the end)"
            )
        return torch.where(target < 0, target + size, target)
    return [_resolve_index(t, shape, name) for t in target]


def check_class_list(value: Any, n: int, name: str) -> List[int]:
    """``N`` class indices from an int, a list of ``N`` ints or an integer tensor of 1 or ``N``."""
    norm = check_target(value, n, name)
    if norm is None or isinstance(norm, (tuple, list)):
        raise ValueError(
            f"{name} must be an int, a list of {n} ints or an integer tensor of {n} values; got {_describe(value)}"
        )
    return [norm] * n if isinstance(norm, int) else [int(v) for v in norm.tolist()]


def resolve_class_list(values: List[int], n_classes: int, name: str) -> List[int]:
    """Class indices checked against ``n_classes``, negatives counted from the end."""
    return [t[0] for t in resolve_targets([(v,) for v in values], (n_classes,), name)]


def rows_target(target: NormTarget, ex_idx: Tensor) -> NormTarget:
    if isinstance(target, Tensor):
        return target[ex_idx.cpu()]
    if isinstance(target, list):
        return [target[i] for i in ex_idx.tolist()]
    return target


# --------------------------------------------------------------------------- forward args


def format_afa(additional_forward_args: Any) -> Tuple[Any, ...]:
    """Captum's normalisation: ``None`` → ``()``, a tuple as is, anything else → ``(value,)``."""
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def rows_afa(afa: Tuple[Any, ...], ex_idx: Tensor, n: int) -> Tuple[Any, ...]:
    """The forward arguments of the rows of examples ``ex_idx``: tensors whose first axis is
    ``N`` are indexed per example, other arguments are passed as they are."""
    return tuple(
        a.index_select(0, ex_idx.to(a.device)) if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n else a
        for a in afa
    )


# --------------------------------------------------------------------------- model outputs


def as_output(out: Any, rows: int, name: str = "forward_func") -> Tensor:
    """A model's return value → a real tensor with one row per input row, or ``ValueError``."""
    if isinstance(out, np.ndarray) and out.dtype.kind in "biuf":
        out = torch.from_numpy(out)
    if not isinstance(out, Tensor):
        hint = ""
        if isinstance(out, (tuple, list)):
            hint = (
                f" of {len(out)} element(s); if the scores are its first element, pass `lambda *args: model(*args)[0]`"
            )
        raise ValueError(
            f"{name} must return a tensor with one row per input row ({rows}); got {type(out).__name__}{hint}"
        )
    if out.is_complex():
        raise ValueError(f"{name} must return a real tensor; got dtype {out.dtype}")
    if out.dim() == 0 or out.shape[0] != rows:
        raise ValueError(
            f"{name} must return one output row per input row: got shape {tuple(out.shape)} for {rows} input row(s)"
        )
    return out


def check_finite_output(values: Tensor, where: str, what: str = "The model output") -> None:
    """Raise :class:`NonFiniteOutputError` when ``values`` hold NaN or inf."""
    if values.is_floating_point() and not bool(torch.isfinite(values).all()):
        bad = "NaN" if bool(torch.isnan(values).any()) else "inf"
        raise NonFiniteOutputError(f"{what} contains {bad} {where}.")

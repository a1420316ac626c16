"""Input validation shared by the attribution class, the metrics and the harness.

Captum's argument forms (inputs, baselines, targets, feature masks, additional forward
arguments) are checked and normalised here, before any model call, so every entry
point accepts the same forms and refuses the same mistakes with the same message.
"""

from __future__ import annotations

import numbers
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

def as_tuple(x: Any) -> Tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def check_inputs(inputs: Any) -> Tuple[Tuple[Tensor, ...], bool, int]:
    is_tuple = isinstance(inputs, (tuple, list))
    tensors = as_tuple(inputs)
    if len(tensors) == 0 or not all(isinstance(t, Tensor) for t in tensors):
        raise ValueError(
            "inputs must be a tensor of shape N x ... or a tuple of such tensors; "
            f"got {type(inputs).__name__}"
        )
    for t in tensors:
        if t.dim() < 2:
            raise ValueError(
                "inputs must have a batch axis and at least one feature axis "
                f"(N x F or N x C x H x W ...); got shape {tuple(t.shape)}"
            )
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(
            "inputs: all tensors of the tuple must have the same batch size; got "
            f"{[tuple(t.shape) for t in tensors]}"
        )
    if n == 0:
        raise ValueError("inputs: empty batch (N = 0); expected at least one example")
    if any(t[0].numel() == 0 for t in tensors):
        raise ValueError(
            f"inputs: examples have no elements; got shapes {[tuple(t.shape) for t in tensors]}"
        )
    return tuple(t.detach() for t in tensors), is_tuple, n


def check_attributions(attributions: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    attrs = as_tuple(attributions)
    if len(attrs) != len(inputs) or not all(isinstance(a, Tensor) for a in attrs):
        raise ValueError(
            f"attributions must match inputs: expected {len(inputs)} tensor(s), got "
            f"{type(attributions).__name__} with "
            f"{len(attrs) if isinstance(attributions, (tuple, list)) else 1} element(s)"
        )
    out = []
    for a, x in zip(attrs, inputs):
        ok = tuple(a.shape) == tuple(x.shape) or (
            x.dim() >= 3 and tuple(a.shape) == (x.shape[0], 1, *x.shape[2:])
        )
        if not ok:
            extra = ""
            if x.dim() >= 3:
                extra = f" or {(x.shape[0], 1, *x.shape[2:])}"
            raise ValueError(
                "attributions must have the same shape as inputs "
                f"{tuple(x.shape)}{extra}; got {tuple(a.shape)}"
            )
        a = a.detach()
        if not a.is_floating_point():
            a = a.float()
        out.append(a.to(x.device))
    return tuple(out)


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except RuntimeError:
        return False


def check_baselines(baselines: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """Captum forms -> tensors expanded (views) to the input shapes."""
    if baselines is None:
        bl: Tuple[Any, ...] = (0.0,) * len(inputs)
    elif isinstance(baselines, (tuple, list)):
        bl = tuple(baselines)
        if len(bl) != len(inputs):
            raise ValueError(
                f"baselines must have one entry per input tensor ({len(inputs)}); "
                f"got {len(bl)}"
            )
    else:
        bl = (baselines,)
        if len(inputs) != 1:
            raise ValueError(
                f"baselines must be a tuple with one entry per input tensor "
                f"({len(inputs)}); got a single {type(baselines).__name__}"
            )
    out = []
    for b, x in zip(bl, inputs):
        if isinstance(b, numbers.Number):
            out.append(torch.full((), float(b), dtype=x.dtype, device=x.device).expand_as(x))
        elif isinstance(b, Tensor):
            if not broadcasts_to(b.shape, x.shape):
                raise ValueError(
                    "baselines must be a scalar or a tensor broadcastable to one "
                    f"example {tuple(x.shape[1:])} or to the batch {tuple(x.shape)}; "
                    f"got shape {tuple(b.shape)}"
                )
            out.append(b.detach().to(device=x.device, dtype=x.dtype).expand_as(x))
        else:
            raise ValueError(
                f"baselines entries must be numbers or tensors; got {type(b).__name__}"
            )
    return tuple(out)


def check_feature_mask(
    feature_mask: Any, inputs: Tuple[Tensor, ...]
) -> Optional[Tuple[Tensor, ...]]:
    if feature_mask is None:
        return None
    masks = as_tuple(feature_mask)
    if len(masks) != len(inputs) or not all(isinstance(m, Tensor) for m in masks):
        raise ValueError(
            f"feature_mask must be a tensor (or a tuple of {len(inputs)} tensors) "
            f"broadcastable to inputs; got {type(feature_mask).__name__}"
        )
    out = []
    for m, x in zip(masks, inputs):
        if not broadcasts_to(m.shape, x.shape):
            raise ValueError(
                "feature_mask must be broadcastable to inputs "
                f"{tuple(x.shape)} (e.g. 1x1xHxW, Nx1xHxW or HxW); got {tuple(m.shape)}"
            )
        out.append(m.detach().to(x.device).expand_as(x))
    return tuple(out)


NormTarget = Union[None, int, Tuple[int, ...], Tensor, List[Tuple[int, ...]]]


def normalize_target(target: Any, n: int) -> NormTarget:
    """Captum target forms -> None | int | tuple | LongTensor(N) | list[tuple] (len N)."""
    if target is None or isinstance(target, tuple):
        return target
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return int(target)
    if isinstance(target, Tensor):
        if target.numel() == 1 and not target.is_floating_point():
            return int(target.item())
        if target.dim() == 1 and target.numel() == n and not target.is_floating_point():
            return target.detach().long().cpu()
        raise ValueError(
            f"target tensor must be a single integer or an integer tensor of shape "
            f"({n},); got shape {tuple(target.shape)} and dtype {target.dtype}"
        )
    if isinstance(target, list):
        if len(target) != n:
            raise ValueError(f"target list must have length N = {n}; got {len(target)}")
        if all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in target):
            return torch.tensor([int(t) for t in target], dtype=torch.long)
        if all(isinstance(t, tuple) for t in target):
            return list(target)
        raise ValueError("target list must hold only ints or only tuples")
    raise ValueError(
        f"target must be None, an int, a tuple, a list of length N or a tensor; "
        f"got {type(target).__name__}"
    )


def rows_target(target: NormTarget, ex_idx: Tensor) -> NormTarget:
    if isinstance(target, Tensor):
        return target[ex_idx.cpu()]
    if isinstance(target, list):
        return [target[i] for i in ex_idx.tolist()]
    return target


def format_afa(additional_forward_args: Any) -> Tuple[Any, ...]:
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def rows_afa(afa: Tuple[Any, ...], ex_idx: Tensor, n: int) -> Tuple[Any, ...]:
    return tuple(
        a[ex_idx.to(a.device)] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n else a
        for a in afa
    )

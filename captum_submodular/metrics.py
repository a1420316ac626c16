r"""Faithfulness metrics that score any Captum attribution with one protocol.

The module implements the *insertion* and *deletion* curves (Petsiuk et al.,
"RISE", 2018) and the *highest confidence* metric for misclassified examples,
all driven by the same batched curve engine, :func:`perturbation_curves`.

Protocol
--------
Elements
    For an input of shape ``N x C x d1 x ... `` (``inputs.dim() >= 3``) the
    elements are the spatial positions: attributions are summed over the
    channel axis (dim 1) and all channels of a position move together. For
    ``N x F`` inputs every feature is an element. For a tuple of inputs the
    elements of all tensors are concatenated (in tuple order) and ranked
    together.
Ranking
    Elements are sorted by decreasing (channel-summed) attribution with a
    *stable* sort of ``-attribution``; ties therefore break by the lower
    flattened element index first (row-major order over the positions; for a
    tuple, the first tensor's elements come before the second's).
Steps
    With ``E`` elements and ``K = n_steps`` the fraction grid is ``k / K`` for
    ``k = 0 .. K`` (both endpoints, nothing deduplicated). At step ``k`` the
    top ``c_k = floor(k * E / K + 1/2)`` elements (``round`` half up, exact
    integer arithmetic) are changed and the x-axis is the *actual* fraction
    ``x_k = c_k / E``; so ``x_0 = 0`` and ``x_K = 1``.
Region mode
    With ``feature_mask`` (Captum style, broadcastable to the inputs, e.g.
    ``1x1xHxW``, ``Nx1xHxW`` or ``HxW``; ids need not be contiguous) the
    elements are regions. A region's score is the mean attribution over the
    input entries it covers (for masks that are constant over channels this
    is the mean over its positions of the channel-summed attribution divided
    by the constant ``C``, which does not change the order; for region-constant
    maps it is exactly the region value). Regions are sorted by decreasing
    score, ties by the lower region id. Step ``k = 0 .. m`` (``m`` = number of
    regions present in the example) changes the top ``k`` regions; ``n_steps``
    is ignored and ``x_k`` is the cumulative fraction of input entries
    changed. When examples have different numbers of regions the curves are
    padded at the end by repeating the final point ``(1, s_m)``, which adds
    zero area (``CurveResult.lengths`` holds the true point counts).
Curves
    *deletion* starts at the input and replaces the top-ranked elements by the
    deletion substrate; *insertion* starts at the insertion substrate and puts
    the top-ranked elements of the input back. With mask ``M_k`` (1 on the
    changed elements)::

        insertion:  x_ins_k = M_k * x + (1 - M_k) * substrate_ins
        deletion:   x_del_k = M_k * substrate_del + (1 - M_k) * x

    and the score ``s_k = score(f(x_k))[target]``.
Area
    Trapezoid rule on ``[0, 1]``:
    ``A = sum_k (x_{k+1} - x_k) * (s_k + s_{k+1}) / 2``.
Direction
    Given as data in :data:`METRICS`: ``METRICS[name].higher_is_better`` is
    ``True`` for insertion and highest confidence, ``False`` for deletion.

Substrates (``substrate=``)
    ``None`` / ``"baseline"`` (default): the user's ``baselines`` (Captum
    forms: ``None`` -> 0, a scalar, or a tensor broadcastable to one example
    or to the batch) for both curves. ``"blur"`` / ``"rise"``: RISE protocol,
    insertion starts from ``gaussian_blur(x, kernel 11, sigma 5)`` and deletion
    uses the baselines. ``"mean"``: per-example, per-channel mean colour for
    both curves. A callable ``substrate(inputs) -> tensor(s)`` (broadcastable
    to the inputs) is used for both curves.

Scores (``output=``)
    ``"softmax"``: softmax over dim 1 of the model output (logits), at the
    target class. ``"identity"``: the raw output at the target, or the scalar
    output when the model returns ``N`` or ``N x 1``. A callable
    ``output(model_output, target) -> (B,)`` is also accepted.

All results are returned on the CPU as ``float64`` tensors.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum._utils.common import _select_targets

__all__ = [
    "CurveResult",
    "HighestConfidenceResult",
    "MetricInfo",
    "METRICS",
    "SUBSTRATE_PRESETS",
    "OUTPUT_MODES",
    "perturbation_curves",
    "insertion",
    "deletion",
    "highest_confidence",
    "output_scores",
    "curve_area",
]

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]

#: Named substrates accepted by ``substrate=``.
SUBSTRATE_PRESETS: Tuple[str, ...] = ("baseline", "blur", "rise", "mean")
#: Named score transforms accepted by ``output=``.
OUTPUT_MODES: Tuple[str, ...] = ("softmax", "identity")
#: RISE blur parameters (kernel size, sigma).
BLUR_KERNEL_SIZE = 11
BLUR_SIGMA = 5.0
_CURVE_KINDS = ("insertion", "deletion")


# --------------------------------------------------------------------------
# Result containers and registry
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveResult:
    """Insertion or deletion curves of a batch.

    Attributes
    ----------
    area : Tensor, shape (N,)
        Trapezoid area under each curve on ``[0, 1]``.
    fractions : Tensor, shape (N, P)
        Actual fraction of the input changed at each point (``P = K + 1`` in
        pixel mode, ``max_n(m_n) + 1`` in region mode).
    scores : Tensor, shape (N, P)
        Model score at each point.
    lengths : Tensor, shape (N,)
        Number of real points per example (points beyond are padding that
        repeats the final point; always ``P`` in pixel mode).
    kind : str
        ``"insertion"`` or ``"deletion"``.
    """

    area: Tensor
    fractions: Tensor
    scores: Tensor
    lengths: Tensor
    kind: str

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.kind].higher_is_better


@dataclass(frozen=True)
class HighestConfidenceResult:
    """Result of :func:`highest_confidence`.

    Attributes
    ----------
    budgets : tuple of float
        The budgets ``rho``.
    values : Tensor, shape (N, len(budgets))
        ``values[n, j]`` = max softmax probability of the true class over the
        insertion points of example ``n`` whose revealed fraction is
        ``<= budgets[j] + 1e-9``.
    curves : CurveResult
        The underlying insertion curves.
    """

    budgets: Tuple[float, ...]
    values: Tensor
    curves: CurveResult

    def mean(self) -> Tensor:
        """Mean over examples, shape ``(len(budgets),)`` (the reported number)."""
        return self.values.mean(dim=0)


@dataclass(frozen=True)
class MetricInfo:
    """Registry entry: the metric function and which direction is better."""

    name: str
    fn: Callable[..., Any]
    higher_is_better: bool
    description: str = ""


# --------------------------------------------------------------------------
# Validation / normalisation helpers (no model calls)
# --------------------------------------------------------------------------


def _as_tuple(x: Any) -> Tuple[Any, ...]:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _check_inputs(inputs: Any) -> Tuple[Tuple[Tensor, ...], bool, int]:
    is_tuple = isinstance(inputs, (tuple, list))
    tensors = _as_tuple(inputs)
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


def _check_attributions(attributions: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    attrs = _as_tuple(attributions)
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


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def _check_substrate(substrate: Any) -> Union[str, Callable[..., Any]]:
    if substrate is None:
        return "baseline"
    if callable(substrate):
        return substrate
    if isinstance(substrate, str) and substrate in SUBSTRATE_PRESETS:
        return substrate
    raise ValueError(
        f"substrate must be None, a callable or one of the presets "
        f"{list(SUBSTRATE_PRESETS)}; got {substrate!r}"
    )


def _check_output(output: Any) -> Union[str, Callable[..., Any]]:
    if callable(output) or (isinstance(output, str) and output in OUTPUT_MODES):
        return output
    raise ValueError(
        f"output must be one of {list(OUTPUT_MODES)} or a callable; got {output!r}"
    )


def _broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except RuntimeError:
        return False


def _check_baselines(baselines: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
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
            if not _broadcasts_to(b.shape, x.shape):
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


def _check_feature_mask(
    feature_mask: Any, inputs: Tuple[Tensor, ...]
) -> Optional[Tuple[Tensor, ...]]:
    if feature_mask is None:
        return None
    masks = _as_tuple(feature_mask)
    if len(masks) != len(inputs) or not all(isinstance(m, Tensor) for m in masks):
        raise ValueError(
            f"feature_mask must be a tensor (or a tuple of {len(inputs)} tensors) "
            f"broadcastable to inputs; got {type(feature_mask).__name__}"
        )
    out = []
    for m, x in zip(masks, inputs):
        if not _broadcasts_to(m.shape, x.shape):
            raise ValueError(
                "feature_mask must be broadcastable to inputs "
                f"{tuple(x.shape)} (e.g. 1x1xHxW, Nx1xHxW or HxW); got {tuple(m.shape)}"
            )
        out.append(m.detach().to(x.device).expand_as(x))
    return tuple(out)


_NormTarget = Union[None, int, Tuple[int, ...], Tensor, List[Tuple[int, ...]]]


def _normalize_target(target: Any, n: int) -> _NormTarget:
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


def _rows_target(target: _NormTarget, ex_idx: Tensor) -> _NormTarget:
    if isinstance(target, Tensor):
        return target[ex_idx.cpu()]
    if isinstance(target, list):
        return [target[i] for i in ex_idx.tolist()]
    return target


def _format_afa(additional_forward_args: Any) -> Tuple[Any, ...]:
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def _rows_afa(afa: Tuple[Any, ...], ex_idx: Tensor, n: int) -> Tuple[Any, ...]:
    return tuple(
        a[ex_idx.to(a.device)] if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == n else a
        for a in afa
    )


# --------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------


def _select(out: Tensor, target: _NormTarget) -> Tensor:
    if isinstance(target, Tensor):
        if out.dim() != 2:
            raise ValueError(
                f"a per-example target needs a 2D model output; got {tuple(out.shape)}"
            )
        return out.gather(1, target.to(out.device).view(-1, 1)).squeeze(1)
    return _select_targets(out, target)


def output_scores(
    outputs: Tensor, target: Any = None, output: Union[str, Callable[..., Any]] = "softmax"
) -> Tensor:
    """Turn a model output of ``B`` rows into one score per row.

    Parameters
    ----------
    outputs : Tensor
        Model output, shape ``(B, ...)``.
    target : int, tuple, list, Tensor or None
        Captum target forms, with per-example forms of length ``B``.
    output : {"softmax", "identity"} or callable
        ``"softmax"``: ``softmax(outputs, dim=1)[b, target_b]``. ``"identity"``:
        ``outputs[b, target_b]``, or ``outputs[b]`` when the output has shape
        ``(B,)`` or ``(B, 1)``. A callable is called as ``output(outputs, target)``.

    Returns
    -------
    Tensor of shape ``(B,)``.
    """
    output = _check_output(output)
    target = _normalize_target(target, outputs.shape[0])
    if callable(output):
        scores = output(outputs, target)
    elif output == "softmax":
        if outputs.dim() < 2 or outputs.shape[1] < 2:
            raise ValueError(
                "output='softmax' needs class logits of shape (B, C) with C >= 2; "
                f"got model output of shape {tuple(outputs.shape)} (use output='identity')"
            )
        if target is None:
            raise ValueError("output='softmax' needs a target class")
        scores = _select(torch.softmax(outputs, dim=1), target)
    else:
        if outputs.dim() == 1:
            scores = outputs
        elif outputs.dim() == 2 and outputs.shape[1] == 1:
            scores = outputs[:, 0]
        elif target is None:
            raise ValueError(
                "target is required when the model output has more than one value "
                f"per example; got output of shape {tuple(outputs.shape)}"
            )
        else:
            scores = _select(outputs, target)
    if not isinstance(scores, Tensor) or tuple(scores.shape) != (outputs.shape[0],):
        raise ValueError(
            f"the score of each row must be a scalar; got shape "
            f"{tuple(getattr(scores, 'shape', ()))} for {outputs.shape[0]} rows"
        )
    return scores


# --------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------


def _element_ranks(
    attrs: Tuple[Tensor, ...], inputs: Tuple[Tensor, ...], n_steps: int
) -> Tuple[Tuple[Tensor, ...], Tensor, Tensor, Tensor]:
    """Pixel mode: per-tensor rank maps, thresholds (N,K+1), fractions, lengths."""
    n = inputs[0].shape[0]
    flat, grids = [], []
    for a, x in zip(attrs, inputs):
        s = a.sum(dim=1) if x.dim() >= 3 else a
        grids.append(tuple(s.shape[1:]))
        flat.append(s.reshape(n, -1))
    scores = torch.cat(flat, dim=1)
    e = scores.shape[1]
    # Stable ascending sort of -attribution: ties -> lower flattened index first.
    order = torch.sort(-scores, dim=1, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(e, device=order.device).expand(n, e))
    ranks = []
    sizes = [int(torch.Size(g).numel()) for g in grids]
    for r, x, g in zip(rank.split(sizes, dim=1), inputs, grids):
        ranks.append(r.reshape(n, 1, *g) if x.dim() >= 3 else r.reshape(n, *g))
    k = torch.arange(n_steps + 1, dtype=torch.long)
    counts = (2 * k * e + n_steps) // (2 * n_steps)  # floor(k*E/K + 1/2)
    thresholds = counts.expand(n, -1).clone()
    fractions = (counts.double() / e).expand(n, -1).clone()
    lengths = torch.full((n,), n_steps + 1, dtype=torch.long)
    return tuple(ranks), thresholds, fractions, lengths


def _region_ranks(
    attrs: Tuple[Tensor, ...], inputs: Tuple[Tensor, ...], masks: Tuple[Tensor, ...]
) -> Tuple[Tuple[Tensor, ...], Tensor, Tensor, Tensor]:
    """Region mode: per-tensor region-rank maps, thresholds, fractions, lengths."""
    n = inputs[0].shape[0]
    shapes = [tuple(x.shape[1:]) for x in inputs]
    ids = torch.cat([m.reshape(n, -1).cpu() for m in masks], dim=1)
    att = torch.cat(
        [a.expand_as(x).reshape(n, -1).cpu().double() for a, x in zip(attrs, inputs)], dim=1
    )
    t = ids.shape[1]
    uniq, inv = torch.unique(ids, return_inverse=True)  # sorted ascending ids
    u = uniq.numel()
    counts = torch.zeros(n, u, dtype=torch.long).scatter_add_(1, inv, torch.ones_like(inv))
    sums = torch.zeros(n, u, dtype=torch.float64).scatter_add_(1, inv, att)
    amax = torch.zeros(n, u, dtype=torch.float64).scatter_reduce_(
        1, inv, att, reduce="amax", include_self=False
    )
    amin = torch.zeros(n, u, dtype=torch.float64).scatter_reduce_(
        1, inv, att, reduce="amin", include_self=False
    )
    present = counts > 0
    mean = torch.where(amax == amin, amin, sums / counts.clamp(min=1))
    key = torch.where(present, -mean, torch.full_like(mean, float("inf")))
    # Stable sort: ties -> lower region id first; absent regions go last.
    order = torch.sort(key, dim=1, stable=True).indices
    region_rank = torch.empty_like(order)
    region_rank.scatter_(1, order, torch.arange(u).expand(n, u))
    entry_rank = region_rank.gather(1, inv)
    m = present.sum(dim=1)
    p = int(m.max()) + 1
    cum = counts.gather(1, order).cumsum(dim=1).double() / t
    fractions = torch.cat([torch.zeros(n, 1, dtype=torch.float64), cum], dim=1)[:, :p]
    thresholds = torch.arange(p, dtype=torch.long).expand(n, -1).clone()
    sizes = [int(torch.Size(s).numel()) for s in shapes]
    ranks = tuple(
        r.reshape(n, *s).to(x.device)
        for r, s, x in zip(entry_rank.split(sizes, dim=1), shapes, inputs)
    )
    return ranks, thresholds, fractions.contiguous(), m + 1


# --------------------------------------------------------------------------
# Substrates
# --------------------------------------------------------------------------


def _blur(x: Tensor) -> Tensor:
    from torchvision.transforms.functional import gaussian_blur

    k, s = [BLUR_KERNEL_SIZE] * 2, [BLUR_SIGMA] * 2
    if x.dim() == 4:
        return gaussian_blur(x, k, s)
    flat = x.reshape(-1, 1, *x.shape[-2:])
    return gaussian_blur(flat, k, s).reshape(x.shape)


def _substrate_tensors(
    substrate: Union[str, Callable[..., Any]],
    kind: str,
    inputs: Tuple[Tensor, ...],
    baselines: Tuple[Tensor, ...],
    is_tuple: bool,
) -> Tuple[Tensor, ...]:
    if callable(substrate):
        res = substrate(inputs if is_tuple else inputs[0])
        res_t = _as_tuple(res)
        if len(res_t) != len(inputs) or not all(
            isinstance(r, Tensor) and _broadcasts_to(r.shape, x.shape)
            for r, x in zip(res_t, inputs)
        ):
            raise ValueError("substrate callable must return tensor(s) broadcastable to inputs")
        return tuple(r.detach().to(x.device, x.dtype).expand_as(x) for r, x in zip(res_t, inputs))
    if substrate == "baseline" or (substrate in ("blur", "rise") and kind == "deletion"):
        return baselines
    if substrate in ("blur", "rise"):
        for x in inputs:
            if x.dim() < 4 or min(x.shape[-2:]) <= BLUR_KERNEL_SIZE // 2:
                raise ValueError(
                    f"substrate={substrate!r} needs image inputs N x C x H x W with "
                    f"H, W > {BLUR_KERNEL_SIZE // 2}; got {tuple(x.shape)}"
                )
        return tuple(_blur(x) for x in inputs)
    # "mean": per-example per-channel mean colour
    out = []
    for x in inputs:
        dims = tuple(range(2, x.dim())) if x.dim() >= 3 else (1,)
        out.append(x.mean(dim=dims, keepdim=True).expand_as(x))
    return tuple(out)


# --------------------------------------------------------------------------
# Engine
# --------------------------------------------------------------------------


def curve_area(fractions: Tensor, scores: Tensor) -> Tensor:
    """Trapezoid area ``sum_k (x_{k+1} - x_k) (s_k + s_{k+1}) / 2`` along dim 1."""
    return torch.trapezoid(scores, fractions, dim=1)


def perturbation_curves(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    kind: str,
    target: Any = None,
    baselines: Any = None,
    additional_forward_args: Any = None,
    *,
    feature_mask: Any = None,
    n_steps: int = 50,
    substrate: Any = None,
    output: Union[str, Callable[..., Any]] = "softmax",
    perturbations_per_eval: int = 64,
    clean_output: Optional[Tensor] = None,
    show_progress: bool = False,
) -> CurveResult:
    r"""Insertion or deletion curves of a batch (the engine of all metrics).

    Parameters are those of :func:`insertion`, plus:

    kind : {"insertion", "deletion"}
        Which curve.
    clean_output : Tensor, optional
        The model output on the unperturbed ``inputs`` (shape ``N x ...``,
        as returned by ``forward_func(inputs, *additional_forward_args)``).
        When given, the clean point (deletion ``k = 0``, insertion last point)
        is scored from it instead of re-running the model, saving ``N``
        forwards.

    Returns
    -------
    CurveResult
    """
    if kind not in _CURVE_KINDS:
        raise ValueError(f"kind must be one of {list(_CURVE_KINDS)}; got {kind!r}")
    xs, is_tuple, n = _check_inputs(inputs)
    attrs = _check_attributions(attributions, xs)
    n_steps = _check_positive_int(n_steps, "n_steps")
    ppe = _check_positive_int(perturbations_per_eval, "perturbations_per_eval")
    sub = _check_substrate(substrate)
    output = _check_output(output)
    bls = _check_baselines(baselines, xs)
    masks = _check_feature_mask(feature_mask, xs)
    tgt = _normalize_target(target, n)
    if output == "softmax" and tgt is None:
        raise ValueError("target is required with output='softmax' (the class to score)")
    afa = _format_afa(additional_forward_args)
    if clean_output is not None and (
        not isinstance(clean_output, Tensor)
        or clean_output.dim() == 0
        or clean_output.shape[0] != n
    ):
        raise ValueError(
            f"clean_output must be the model output on inputs, with first dimension N = {n}"
        )

    with torch.no_grad():
        subs = _substrate_tensors(sub, kind, xs, bls, is_tuple)
        if masks is None:
            ranks, thresholds, fractions, lengths = _element_ranks(attrs, xs, n_steps)
        else:
            ranks, thresholds, fractions, lengths = _region_ranks(attrs, xs, masks)
        if kind == "insertion":
            changed, kept = xs, subs  # changed elements take values from `changed`
        else:
            changed, kept = subs, xs
        p = thresholds.shape[1]

        scores = torch.zeros(n, p, dtype=torch.float64)
        clean_step = torch.zeros(n, dtype=torch.long) if kind == "deletion" else lengths - 1
        if clean_output is not None:
            scores[torch.arange(n), clean_step] = (
                output_scores(clean_output.detach(), tgt, output).detach().cpu().double()
            )
        steps = torch.arange(p).expand(n, p)
        needed = steps < lengths[:, None]
        if clean_output is not None:
            needed &= steps != clean_step[:, None]
        ex_all, st_all = needed.nonzero(as_tuple=True)

        chunks = range(0, ex_all.numel(), ppe)
        if show_progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc=kind, total=len(chunks))
        for start in chunks:
            ex_c = ex_all[start : start + ppe]
            st_c = st_all[start : start + ppe]
            thr_c = thresholds[ex_c, st_c]
            composed = []
            for r, a, b in zip(ranks, changed, kept):
                ex_d = ex_c.to(r.device)
                thr = thr_c.to(r.device).view(-1, *([1] * (r.dim() - 1)))
                composed.append(torch.where(r[ex_d] < thr, a[ex_d], b[ex_d]))
            out = forward_func(*composed, *_rows_afa(afa, ex_c, n))
            if not isinstance(out, Tensor) or out.dim() == 0 or out.shape[0] != ex_c.numel():
                raise ValueError(
                    f"forward_func must return a tensor with one row per input row "
                    f"({ex_c.numel()}); got {getattr(out, 'shape', type(out))}"
                )
            row_scores = output_scores(out, _rows_target(tgt, ex_c), output)
            scores[ex_c, st_c] = row_scores.detach().cpu().double()

        # Pad (region mode) by repeating the final real point.
        last = scores.gather(1, (lengths - 1)[:, None])
        scores = torch.where(steps < lengths[:, None], scores, last)
        fractions = torch.where(steps < lengths[:, None], fractions, torch.ones_like(fractions))
        area = curve_area(fractions, scores)
    return CurveResult(
        area=area, fractions=fractions, scores=scores, lengths=lengths.clone(), kind=kind
    )


_COMMON_DOC = r"""
    Parameters
    ----------
    forward_func : callable
        The model, called as ``forward_func(*inputs, *additional_forward_args)``.
    inputs : Tensor or tuple of Tensor
        Batch of shape ``N x C x H x W`` (or ``N x F``; any ``N x ...``).
    attributions : Tensor or tuple of Tensor
        Same shape as ``inputs``, or ``N x 1 x H x W`` (broadcast over channels).
        Any Captum attribution works; only the order matters (positive scaling
        changes nothing).
    target : int, tuple, list, Tensor or None
        Captum target forms (an int, a list or tensor of ``N`` ints, ``None``
        for single-output models).
    baselines : scalar, Tensor, tuple or None
        Captum forms (``None`` -> 0); the default substrate.
    additional_forward_args : any, optional
        Extra model arguments; tensors whose first dimension is ``N`` are
        indexed by the example of each composed row, others passed through.
    feature_mask : Tensor or tuple of Tensor, optional
        Region ids broadcastable to the inputs (``1x1xHxW``, ``Nx1xHxW``,
        ``HxW``; ids need not be contiguous). Switches to region mode: one step
        per region, ``n_steps`` ignored.
    n_steps : int
        ``K``, number of steps in pixel mode (``K + 1`` points).
    substrate : None, {"baseline", "blur", "rise", "mean"} or callable
        See the module docstring.
    output : {"softmax", "identity"} or callable
        Score of a model output at the target.
    perturbations_per_eval : int
        Maximum number of composed rows per forward call.
    return_curves : bool
        Return a :class:`CurveResult` instead of the areas.
    show_progress : bool
        Show a tqdm bar over the forward calls.
    clean_output : Tensor, optional
        Model output on ``inputs`` to reuse (saves ``N`` forwards).

    Returns
    -------
    Tensor of shape ``(N,)`` (CPU, float64), or :class:`CurveResult` when
    ``return_curves=True``.

    Raises
    ------
    ValueError
        Before any model call, for an attribution shape mismatch,
        ``n_steps < 1``, an unknown substrate preset, a mask that does not
        broadcast to the inputs, bad baselines/target, or an empty batch.
"""


def insertion(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    target: Any = None,
    baselines: Any = None,
    additional_forward_args: Any = None,
    *,
    feature_mask: Any = None,
    n_steps: int = 50,
    substrate: Any = None,
    output: Union[str, Callable[..., Any]] = "softmax",
    perturbations_per_eval: int = 64,
    return_curves: bool = False,
    show_progress: bool = False,
    clean_output: Optional[Tensor] = None,
) -> Union[Tensor, CurveResult]:
    res = perturbation_curves(
        forward_func, inputs, attributions, "insertion", target, baselines,
        additional_forward_args, feature_mask=feature_mask, n_steps=n_steps,
        substrate=substrate, output=output, perturbations_per_eval=perturbations_per_eval,
        clean_output=clean_output, show_progress=show_progress,
    )  # fmt: skip
    return res if return_curves else res.area


insertion.__doc__ = (
    r"""Insertion area (higher is better).

    Start from the insertion substrate ``b`` (the baselines by default, the
    blurred input for ``substrate="blur"``) and put the top-ranked elements of
    ``x`` back step by step: ``x_k = M_k * x + (1 - M_k) * b`` where ``M_k``
    marks the top ``c_k = floor(k E / K + 1/2)`` elements (pixel mode) or the
    top ``k`` regions (region mode). The area is the trapezoid
    ``A = sum_k (x_{k+1} - x_k) (s_k + s_{k+1}) / 2`` of the scores
    ``s_k = score(f(x_k))`` over the actual fraction ``x_k`` changed, on
    ``[0, 1]``. A faithful attribution makes the score rise early: **higher is
    better** (``METRICS["insertion"].higher_is_better is True``).

    Cost: ``N * (K + 1)`` forward rows (``N * (m + 1)`` in region mode with
    ``m`` regions), in ``ceil(rows / perturbations_per_eval)`` model calls.
"""
    + _COMMON_DOC
)


def deletion(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    target: Any = None,
    baselines: Any = None,
    additional_forward_args: Any = None,
    *,
    feature_mask: Any = None,
    n_steps: int = 50,
    substrate: Any = None,
    output: Union[str, Callable[..., Any]] = "softmax",
    perturbations_per_eval: int = 64,
    return_curves: bool = False,
    show_progress: bool = False,
    clean_output: Optional[Tensor] = None,
) -> Union[Tensor, CurveResult]:
    res = perturbation_curves(
        forward_func, inputs, attributions, "deletion", target, baselines,
        additional_forward_args, feature_mask=feature_mask, n_steps=n_steps,
        substrate=substrate, output=output, perturbations_per_eval=perturbations_per_eval,
        clean_output=clean_output, show_progress=show_progress,
    )  # fmt: skip
    return res if return_curves else res.area


deletion.__doc__ = (
    r"""Deletion area (lower is better).

    Start from ``x`` and replace the top-ranked elements by the deletion
    substrate ``b`` (the baselines, also for ``substrate="blur"``) step by
    step: ``x_k = M_k * b + (1 - M_k) * x`` with ``M_k`` as in
    :func:`insertion`. The area is the trapezoid
    ``A = sum_k (x_{k+1} - x_k) (s_k + s_{k+1}) / 2`` on ``[0, 1]``. A
    faithful attribution makes the score drop early: **lower is better**
    (``METRICS["deletion"].higher_is_better is False``).

    Cost: ``N * (K + 1)`` forward rows (``N * (m + 1)`` in region mode with
    ``m`` regions), in ``ceil(rows / perturbations_per_eval)`` model calls.
"""
    + _COMMON_DOC
)


def highest_confidence(
    forward_func: Callable[..., Any],
    inputs: TensorOrTuple,
    attributions: TensorOrTuple,
    target: Any,
    baselines: Any = None,
    additional_forward_args: Any = None,
    *,
    budgets: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    n_steps: int = 50,
    feature_mask: Any = None,
    substrate: Any = None,
    perturbations_per_eval: int = 64,
    clean_output: Optional[Tensor] = None,
    show_progress: bool = False,
) -> HighestConfidenceResult:
    r"""Highest confidence of the true class within a reveal budget (higher is better).

    Meant for misclassified examples: ``target`` is the TRUE class. The
    insertion curve (softmax score) is computed and, for each budget ``rho``,

    ``HC_n(rho) = max { s_k : x_k <= rho + 1e-9 }``

    i.e. the highest probability of the true class reached while revealing at
    most a fraction ``rho`` of the input (``x_0 = 0`` always qualifies).
    Report the mean over examples (:meth:`HighestConfidenceResult.mean`).
    **Higher is better** (``METRICS["highest_confidence"].higher_is_better``).

    Cost: that of :func:`insertion`, ``N * (K + 1)`` forward rows
    (``N * (m + 1)`` in region mode).

    Parameters
    ----------
    target : int, list or Tensor
        The true class(es); required.
    budgets : sequence of float
        Fractions ``rho >= 0`` of the input that may be revealed.

    Other parameters as in :func:`insertion` (``output`` is fixed to softmax).

    Returns
    -------
    HighestConfidenceResult
        ``.budgets``, ``.values`` of shape ``(N, len(budgets))`` and ``.curves``.
    """
    if target is None:
        raise ValueError("target (the true class) is required for highest_confidence")
    try:
        b = tuple(float(r) for r in budgets)
    except (TypeError, ValueError):
        raise ValueError(f"budgets must be a sequence of numbers; got {budgets!r}") from None
    if len(b) == 0 or any(not (r >= 0.0) for r in b):
        raise ValueError(f"budgets must be a non-empty sequence of fractions >= 0; got {budgets!r}")
    curves = perturbation_curves(
        forward_func, inputs, attributions, "insertion", target, baselines,
        additional_forward_args, feature_mask=feature_mask, n_steps=n_steps,
        substrate=substrate, output="softmax", perturbations_per_eval=perturbations_per_eval,
        clean_output=clean_output, show_progress=show_progress,
    )  # fmt: skip
    rho = torch.tensor(b, dtype=torch.float64)
    allowed = curves.fractions[:, None, :] <= rho[None, :, None] + 1e-9  # N x B x P
    masked = curves.scores[:, None, :].masked_fill(~allowed, float("-inf"))
    values = masked.max(dim=2).values
    return HighestConfidenceResult(budgets=b, values=values, curves=curves)


#: Registry: metric name -> :class:`MetricInfo` (function and direction).
METRICS: Dict[str, MetricInfo] = {
    "insertion": MetricInfo(
        "insertion", insertion, True, "area under the insertion curve"
    ),
    "deletion": MetricInfo(
        "deletion", deletion, False, "area under the deletion curve"
    ),
    "highest_confidence": MetricInfo(
        "highest_confidence",
        highest_confidence,
        True,
        "max p(true class) within a reveal budget (misclassified examples)",
    ),
}

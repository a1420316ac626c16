"""``SubmodularAttribution``: Captum's perturbation contract + a search + an objective."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor, nn

from ._compat import as_tuple, format_additional_forward_args, format_output, is_tuple, log_usage, progress
from .objective import (
    OUTPUT_TYPES,
    ObjectiveWeights,
    angular_distances,
    effectiveness,
    objective_values,
    target_scores,
)
from .regions import default_mask, window_grid_mask
from .search import DEFAULT_SEARCH, SearchStrategy, get_search

__all__ = ["SubmodularAttribution", "SubmodularResult", "NonFiniteOutputError", "ATTRIBUTION_MAPS"]

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]

#: ``"gain"`` (default): the monotone gain map described in :class:`SubmodularAttribution`;
#: ``"rank"``: the region at rank ``i`` (0-based) gets ``m − i``.
ATTRIBUTION_MAPS = ("gain", "rank")


#: How elements inside one region are ordered in the map: ``None`` (all equal) or
#: ``"gradient"`` (by ``∂p/∂x · (x − baseline)``, one extra forward and backward).
WITHIN_REGION = (None, "gradient")


class NonFiniteOutputError(RuntimeError):
    """The model returned NaN or inf; the message says for which input."""


@dataclass
class SubmodularResult:
    """Everything the search found for one example.

    Attributes
    ----------
    order:
        ``(m,)`` region ids (the user's mask ids), most important first.
    insertion_curve:
        ``(m+1,)`` ``p(x[first k regions])`` for ``k = 0..m``.
    deletion_curve:
        ``(m+1,)`` ``p(x[V ∖ first k regions])`` for ``k = 0..m``.
    objective_values:
        ``(m+1,)`` ``F(first k regions)``.
    region_ids:
        ``(m,)`` the distinct mask ids, increasing.
    region_values:
        ``(m,)`` attribution value of each region, aligned with ``region_ids``.
    minimal_subset:
        Region ids of the shortest prefix of ``order`` whose insertion score reaches
        ``threshold``.
    threshold:
        The score the minimal subset must reach (default: the full-input score).
    n_evaluations:
        Model inputs evaluated for this example (each distinct composed input once).
    attributions:
        The map for this example, shaped like the inputs with a batch dimension of 1.
    """

    order: Tensor
    insertion_curve: Tensor
    deletion_curve: Tensor
    objective_values: Tensor
    region_ids: Tensor
    region_values: Tensor
    minimal_subset: Tensor
    threshold: float
    n_evaluations: int
    attributions: TensorOrTuple = field(repr=False)

    @property
    def minimal_subset_size(self) -> int:
        return int(self.minimal_subset.numel())

    @property
    def full_score(self) -> float:
        """Target score on the unperturbed input."""
        return float(self.insertion_curve[-1])

    @property
    def baseline_score(self) -> float:
        """Target score on the baseline (no region kept)."""
        return float(self.insertion_curve[0])


# --------------------------------------------------------------------------- helpers


def _targets_per_example(target: Any, n: int) -> List[Tuple[int, ...]]:
    """Normalise every target form Captum accepts to one index tuple per example."""

    def one(t: Any) -> Tuple[int, ...]:
        if isinstance(t, Tensor):
            if t.numel() != 1:
                raise ValueError(f"`target` elements must be scalars, got a tensor of shape {tuple(t.shape)}.")
            return (int(t.item()),)
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            return (int(t),)
        if isinstance(t, tuple) and all(isinstance(v, (int, np.integer)) for v in t):
            return tuple(int(v) for v in t)
        raise ValueError(f"`target` entries must be int, tuple of int or scalar tensor, got {t!r}.")

    if target is None:
        return [()] * n
    if isinstance(target, Tensor):
        if target.numel() == 1:
            return [one(target)] * n
        if target.dim() == 1 and target.numel() == n:
            return [(int(v),) for v in target.tolist()]
        raise ValueError(
            f"`target` tensor must hold 1 or N={n} values, got shape {tuple(target.shape)}."
        )
    if isinstance(target, list):
        if len(target) != n:
            raise ValueError(f"`target` list must have one entry per example ({n}), got {len(target)}.")
        return [one(t) for t in target]
    return [one(target)] * n


def _check_finite(values: Tensor, where: str) -> None:
    if not torch.isfinite(values).all():
        bad = "NaN" if torch.isnan(values).any() else "inf"
        raise NonFiniteOutputError(f"The model output contains {bad} {where}.")


def _row_keys(rows: Tensor) -> List[bytes]:
    packed = np.packbits(rows.cpu().numpy(), axis=1)
    return [r.tobytes() for r in packed]


def _isotonic_decreasing(values: Tensor) -> Tensor:
    """The non-increasing sequence closest to ``values`` in least squares (pool adjacent violators)."""
    means: List[float] = []
    sizes: List[int] = []
    for v in values.tolist():
        means.append(float(v))
        sizes.append(1)
        while len(means) > 1 and means[-2] < means[-1]:
            n = sizes[-2] + sizes[-1]
            means[-2] = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / n
            sizes[-2] = n
            means.pop()
            sizes.pop()
    return torch.tensor([mu for mu, n in zip(means, sizes) for _ in range(n)], dtype=torch.float64)


def _gain_map(ins: Tensor, dele: Tensor, resolution: float = 0.0) -> Tensor:
    """Region values in selection order (see the class docstring for the formula).

    Differences of the curves at or below ``resolution`` count as exactly zero.
    """
    d_ins = ins[1:].double() - ins[:-1].double()
    d_del = dele[:-1].double() - dele[1:].double()
    d_ins = torch.where(d_ins.abs() <= resolution, torch.zeros_like(d_ins), d_ins)
    d_del = torch.where(d_del.abs() <= resolution, torch.zeros_like(d_del), d_del)
    no_effect = (d_ins == 0) & (d_del == 0)
    pooled = _isotonic_decreasing(0.5 * (d_ins + d_del))
    m = len(pooled)
    out = torch.empty(m, dtype=torch.float64)
    # Runs of equal pooled values are spread strictly inside their own band, so that
    # the map is strictly decreasing along the order and keeps the pooled value's sign.
    starts = [0] + [r for r in range(1, m) if pooled[r] != pooled[r - 1]]
    ends = starts[1:] + [m]
    scale = float(pooled.abs().max()) if m else 0.0
    for i, (a, b) in enumerate(zip(starts, ends)):
        value = float(pooled[a])
        length = b - a
        prev_value = float(pooled[a - 1]) if a > 0 else None
        next_value = float(pooled[b]) if b < m else None
        if value > 0:
            low = max(next_value, 0.0) if next_value is not None else 0.0
            out[a:b] = value - (value - low) * 0.5 * torch.arange(length, dtype=torch.float64) / length
        elif value < 0:
            low = next_value if next_value is not None else 2.0 * value
            out[a:b] = value - (value - low) * 0.5 * torch.arange(length, dtype=torch.float64) / length
        else:
            # A run pooled to exactly 0: its longest stretch of regions without effect keeps
            # exact zeros; regions before it get small positive values, after it negative ones.
            band = 0.5 * min([abs(v) for v in (prev_value, next_value) if v is not None] or [scale or 1.0])
            flags = no_effect[a:b].tolist()
            best_start, best_len, run_start = 0, 0, None
            for j, flag in enumerate(flags + [False]):
                if flag and run_start is None:
                    run_start = j
                elif not flag and run_start is not None:
                    if j - run_start > best_len:
                        best_start, best_len = run_start, j - run_start
                    run_start = None
            if best_len == 0:  # no region without effect: split the run in the middle
                best_start = (length + 1) // 2
            before, after = best_start, length - best_start - best_len
            out[a : a + before] = band * torch.arange(before, 0, -1, dtype=torch.float64) / (before + 1)
            out[a + before : a + before + best_len] = 0.0
            out[b - after : b] = -band * torch.arange(1, after + 1, dtype=torch.float64) / (after + 1)
    return out


def _refine_within_regions(attrs: List[Tensor], ex: "_Example", ranked: Tensor, order: Tensor,
                           saliency: Tuple[Tensor, ...]) -> List[Tensor]:
    """Order elements inside each region by ``saliency`` without crossing region values.

    The region at rank ``r`` with value ``v_r ≠ 0`` spreads its elements over
    ``[v_r − δ_r, v_r]`` by their saliency percentile inside the region (summed over the
    channel axis of ``C×…`` inputs), with ``δ_r`` half the gap to the next lower value
    (``|v_r|/2`` for the last one), so every element of a region stays above every
    element of the next region.  Regions of value 0 stay exactly 0.
    """
    m = len(ranked)
    nxt = torch.cat([ranked[1:], ranked.new_tensor([float("nan")])])
    half_gap = torch.where(torch.isnan(nxt), ranked.abs(), ranked - nxt) * 0.5
    half_gap = torch.where(ranked == 0, torch.zeros_like(half_gap), half_gap)
    delta_by_region = torch.empty(m, dtype=torch.float64)
    delta_by_region[order] = half_gap
    # Channel-summed saliency and region index per element, over all input tensors.
    sal_parts, reg_parts, shapes = [], [], []
    for sal, idx in zip(saliency, ex.idx):
        summed = sal.sum(dim=1, keepdim=True) if sal.dim() >= 3 else sal
        region = torch.broadcast_to(idx, torch.broadcast_shapes(idx.shape, summed.shape))
        summed = torch.broadcast_to(summed, region.shape)
        sal_parts.append(summed.reshape(-1).double().cpu())
        reg_parts.append(region.reshape(-1).cpu())
        shapes.append(region.shape)
    sal_all, reg_all = torch.cat(sal_parts), torch.cat(reg_parts)
    by_sal = torch.sort(sal_all, stable=True).indices
    by_region = by_sal[torch.sort(reg_all[by_sal], stable=True).indices]
    counts = torch.bincount(reg_all, minlength=m)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.empty_like(by_region)
    position[by_region] = torch.arange(len(by_region))
    within = (position - starts[reg_all]).double() / (counts[reg_all] - 1).clamp_min(1).double()
    offsets = delta_by_region[reg_all] * (1.0 - within)
    out, start = [], 0
    for a, shape in zip(attrs, shapes):
        n = int(torch.tensor(shape).prod())
        off = offsets[start : start + n].reshape(shape).to(device=a.device, dtype=a.dtype)
        out.append((a - off).expand_as(a).clone())
        start += n
    return out


@dataclass
class _Example:
    """Per-example state while the searches run."""

    index: int
    delta: Tuple[Tensor, ...]
    base: Tuple[Tensor, ...]
    idx: Tuple[Tensor, ...]
    region_ids: Tensor
    target: Tuple[int, ...]
    cache: Dict[bytes, Tuple[float, float]] = field(default_factory=dict)
    distances: Optional[Tensor] = None
    n_evaluations: int = 0

    @property
    def m(self) -> int:
        return int(self.region_ids.numel())

    def compose(self, rows: Tensor) -> Tuple[Tensor, ...]:
        """``b + (x − b) · keep`` for each bool row (``k×m``) — one batched op per input tensor."""
        out = []
        for delta, base, idx in zip(self.delta, self.base, self.idx):
            keep = rows[:, idx.reshape(-1)].reshape((rows.shape[0],) + tuple(idx.shape[1:]))
            out.append(base + delta * keep.to(delta.dtype))
        return tuple(out)


# --------------------------------------------------------------------------- the class


class SubmodularAttribution(PerturbationAttribution):
    r"""Submodular subset-selection attribution (SMDL, ICLR 2024; LiMA, 2025).

    Instead of scoring regions one at a time, it searches for an *ordered subset* of
    regions: the fewest regions that keep the prediction, ranked by a submodular
    objective (consistency, collaboration, confidence and optionally diversity; see
    :mod:`captum_submodular.objective`).  Regions come from a Captum ``feature_mask``
    (or from Occlusion's ``sliding_window_shapes``), so any model and any input a
    mask can describe work.  A drop-in for ``Occlusion`` / ``FeatureAblation``.

    Composition.  For a subset ``S`` the perturbed input is
    ``baseline + (x − baseline) · mask(S)``, built for many subsets in one batched
    tensor operation on the input's device; each distinct composed input is evaluated
    once per example (the full input, the baseline and any input both search sides
    need are reused).

    Attribution map (``attribution_map="gain"``, default).  With the selection order
    ``o_1..o_m``, ``ins_k = p(x[{o_1..o_k}])`` and ``del_k = p(x[V∖{o_1..o_k}])``, the
    raw gain of the region at rank ``r`` is
    ``s_r = ½ · ((ins_r − ins_{r−1}) + (del_{r−1} − del_r))`` (the raw gains sum to
    ``p(x) − p(baseline)``), with curve differences at or below the output's rounding
    resolution (``8·eps·max(1, |p|)``, ``eps`` of the output dtype) counted as 0.  The map
    is the isotonic (non-increasing) least-squares fit of ``s`` along the order (pool
    adjacent violators), so it keeps the gains' magnitudes and signs where they are
    already ordered and averages them where the order and the gains disagree.  Runs of
    equal fitted values are then spread strictly inside their own band (between the
    value and half-way to the next one, never crossing 0).  Hence:

    (a) sorting the regions by value reproduces the selection order exactly, so the
        pixel-level metrics rank the map exactly like ``attribution_map="rank"`` of the
        same order (with ties only among exact zeros, see (c));
    (b) every region gets a non-zero value, except
    (c) regions whose addition and removal change neither curve, which get exactly 0
        when they form a run where the fitted value is 0 (for example a region the model
        cannot see, placed after the regions that help and before the ones that hurt).

    ``attribution_map="rank"`` gives ``m − r`` to rank ``r`` (0-based) instead.

    Parameters
    ----------
    forward_func:
        The model or any callable ``forward_func(*inputs, *additional_forward_args)``.
    search:
        ``"bidirectional"`` (default: LiMA's two-sided greedy, about m²/1.5 model calls,
        1,608 at m = 49), ``"accelerated"`` (surrogate-screened greedy, about 10·m, 496 at
        m = 49, somewhat less faithful), ``"greedy"`` (exact plain greedy, m(m+1)), or any
        :class:`~captum_submodular.search.SearchStrategy` instance.  BENCHMARKS.md §1–2
        measures the three side by side.
    weights:
        :class:`~captum_submodular.objective.ObjectiveWeights`; defaults 20 / 5 / 0.01 / 0.
    output_type:
        ``"logits"`` (default: softmax over the last dimension), ``"probabilities"`` or
        ``"scalar"`` (one score per example; ``target`` must be ``None``).
    embedding:
        Needed only when ``weights.effectiveness != 0``: either a callable mapping a batch
        of inputs to ``k×d`` embeddings, or an ``nn.Module`` inside ``forward_func``
        whose output is captured by a forward hook (always removed afterwards).
    attribution_map:
        ``"gain"`` (default) or ``"rank"``.
    within_region:
        ``None`` (default): every element of a region carries the region's value.
        ``"gradient"``: elements inside a region are ordered by the input-times-gradient
        saliency ``∂p/∂x · (x − baseline)`` (summed over channels), spread below the region's
        value but above the next region's, so region order and exact zeros are kept while
        pixel-level metrics are no longer decided by ties.  Needs a differentiable model;
        costs one forward and one backward per example.

    Cost
    ----
    About ``2 ×`` the search's subset queries in model inputs (``m(m+1)`` for greedy;
    see :class:`~captum_submodular.search.BidirectionalSearch` and
    :class:`~captum_submodular.search.AcceleratedSearch` for theirs), plus ``m``
    single-region inputs when the diversity term is used.
    """

    def __init__(
        self,
        forward_func: Callable[..., Tensor],
        search: Union[str, SearchStrategy] = DEFAULT_SEARCH,
        weights: Optional[ObjectiveWeights] = None,
        output_type: str = "logits",
        embedding: Union[Callable[..., Tensor], nn.Module, None] = None,
        attribution_map: str = "gain",
        within_region: Optional[str] = None,
    ) -> None:
        PerturbationAttribution.__init__(self, forward_func)
        self.search = get_search(search)
        self.weights = weights if weights is not None else ObjectiveWeights()
        if not isinstance(self.weights, ObjectiveWeights):
            raise ValueError(f"`weights` must be an ObjectiveWeights, got {type(weights).__name__}.")
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"`output_type` must be one of {OUTPUT_TYPES}, got {output_type!r}.")
        self.output_type = output_type
        if self.weights.effectiveness != 0 and embedding is None:
            raise ValueError(
                "`weights.effectiveness` is non-zero but no `embedding` was given: pass a callable "
                "returning k×d embeddings or the nn.Module whose output to use."
            )
        if embedding is not None and not callable(embedding):
            raise ValueError("`embedding` must be a callable or an nn.Module.")
        self.embedding = embedding
        if attribution_map not in ATTRIBUTION_MAPS:
            raise ValueError(f"`attribution_map` must be one of {ATTRIBUTION_MAPS}, got {attribution_map!r}.")
        self.attribution_map = attribution_map
        if within_region not in WITHIN_REGION:
            raise ValueError(f"`within_region` must be one of {WITHIN_REGION}, got {within_region!r}.")
        self.within_region = within_region

    # ------------------------------------------------------------------ public API

    @log_usage()
    @torch.no_grad()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Union[Tensor, Tuple[Tensor, ...], None] = None,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> TensorOrTuple:
        r"""Attribution map shaped like ``inputs`` (tensor in, tensor out; tuple in, tuple out).

        Parameters
        ----------
        inputs:
            ``N×…`` tensor or tuple of tensors sharing the batch size ``N``.  Each example
            is explained on its own; the result equals explaining examples one by one.
        baselines:
            Captum's forms: ``None`` (0), a scalar, a tensor shaped like one example or
            like the batch, or a tuple of those for tuple inputs.  The value that means
            "region absent".
        target:
            Any target form Captum accepts: int, tuple, scalar tensor, tensor or list
            of ``N`` entries, or ``None`` for single-output models.
        additional_forward_args:
            Extra arguments of ``forward_func``; tensors whose first dimension is ``N``
            are indexed per example, others are passed as they are.
        feature_mask:
            Integer mask(s) broadcastable to one example (``1×1×H×W``, ``N×1×H×W``,
            ``H×W`` …); equal ids form one region, also across the tensors of a tuple;
            ids need not be contiguous.  Default (and without ``sliding_window_shapes``):
            a 7×7 grid on ``N×C×H×W`` inputs, one region per last-axis position
            otherwise (see :func:`captum_submodular.regions.default_mask`).
        perturbations_per_eval:
            Most composed inputs per model call (bounds memory).
        show_progress:
            Show a progress bar over model evaluations.
        **kwargs:
            ``sliding_window_shapes`` / ``strides`` (Occlusion's call: windows become a
            grid of non-overlapping tiles, see
            :func:`captum_submodular.regions.window_grid_mask`; a stride different from
            the window triggers a warning) and ``threshold`` (score the minimal subset
            must reach; default: the full-input score).

        Returns
        -------
        Tensor or tuple of tensors
            Same shapes as ``inputs``.
        """
        results, was_tuple = self._explain(
            inputs, baselines, target, additional_forward_args, feature_mask,
            perturbations_per_eval, show_progress, **kwargs,
        )
        n_inputs = len(results[0].attributions) if isinstance(results[0].attributions, tuple) else 1
        stacked = tuple(
            torch.cat([as_tuple(r.attributions)[j] for r in results]) for j in range(n_inputs)
        )
        return format_output(was_tuple, stacked)

    @torch.no_grad()
    def explain(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Union[Tensor, Tuple[Tensor, ...], None] = None,
        perturbations_per_eval: int = 1,
        show_progress: bool = False,
        **kwargs: Any,
    ) -> List[SubmodularResult]:
        """Same arguments as :meth:`attribute`; returns one :class:`SubmodularResult` per example.

        Each result holds the ordered region ids, the insertion and deletion curves
        recorded during the search, the objective values, the minimal interpretable
        subset, the number of model evaluations and the map.
        """
        results, _ = self._explain(
            inputs, baselines, target, additional_forward_args, feature_mask,
            perturbations_per_eval, show_progress, **kwargs,
        )
        return results

    # ------------------------------------------------------------------ validation

    @staticmethod
    def _format_baselines(baselines: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        if baselines is None:
            baselines = tuple(0.0 for _ in inputs)
        elif not isinstance(baselines, tuple):
            baselines = (baselines,)
        if (len(baselines) != len(inputs) and len(baselines) == inputs[0].dim() - 1
                and all(isinstance(v, int) and not isinstance(v, bool) for v in baselines)):
            raise ValueError(
                f"`baselines` got {baselines!r}, which looks like Occlusion's positional "
                "`sliding_window_shapes`; SubmodularAttribution.attribute takes `baselines` second, "
                "so pass the window by keyword: `sliding_window_shapes=...`."
            )
        if len(baselines) != len(inputs):
            raise ValueError(
                f"`baselines` must have one entry per input tensor ({len(inputs)}), got {len(baselines)}."
            )
        out = []
        for j, (b, x) in enumerate(zip(baselines, inputs)):
            if isinstance(b, (int, float)):
                out.append(torch.full((1,) * x.dim(), float(b), dtype=x.dtype, device=x.device))
                continue
            if not isinstance(b, Tensor):
                raise ValueError(f"`baselines` entries must be numbers or tensors, got {type(b).__name__}.")
            b = b.to(device=x.device, dtype=x.dtype)
            if b.dim() == x.dim() - 1:
                b = b.unsqueeze(0)
            ok = b.dim() == x.dim() and b.shape[0] in (1, x.shape[0])
            if ok:
                try:
                    ok = torch.broadcast_shapes(b.shape[1:], x.shape[1:]) == x.shape[1:]
                except RuntimeError:
                    ok = False
            if not ok:
                raise ValueError(
                    f"`baselines` for input {j} has shape {tuple(b.shape)}; expected a number or a "
                    f"tensor broadcastable to one example {tuple(x.shape[1:])} or to the batch "
                    f"{tuple(x.shape)}."
                )
            out.append(b)
        return tuple(out)

    @staticmethod
    def _format_masks(
        feature_mask: Any, inputs: Tuple[Tensor, ...], kwargs: Dict[str, Any]
    ) -> Tuple[Tensor, ...]:
        windows = kwargs.pop("sliding_window_shapes", None)
        strides = kwargs.pop("strides", None)
        if feature_mask is not None and windows is not None:
            raise ValueError("Pass either `feature_mask` or `sliding_window_shapes`, not both.")
        if feature_mask is None:
            masks = []
            offset = 0
            if windows is not None:
                windows_t = windows if (len(inputs) > 1 and isinstance(windows[0], tuple)) else (windows,)
                if len(windows_t) != len(inputs):
                    raise ValueError(
                        f"`sliding_window_shapes` must have one window per input tensor ({len(inputs)})."
                    )
                strides_t = (strides if (len(inputs) > 1 and isinstance(strides, tuple)
                                         and strides and isinstance(strides[0], tuple)) else (strides,) * len(inputs))
                for x, w, s in zip(inputs, windows_t, strides_t):
                    if s is not None:
                        s_t = (s,) * len(w) if isinstance(s, int) else tuple(s)
                        if tuple(s_t) != tuple(w):
                            warnings.warn(
                                f"`strides`={s} differs from `sliding_window_shapes`={w}: overlapping "
                                "windows are not a partition, so SubmodularAttribution uses "
                                "non-overlapping tiles of the window size and ignores the stride.",
                                stacklevel=6,
                            )
                    mask = window_grid_mask(x.shape[1:], w, device=x.device).unsqueeze(0)
                    masks.append(mask + offset)
                    offset = int(mask.max()) + 1 + offset
            else:
                for x in inputs:
                    mask = default_mask(x.shape[1:], device=x.device)
                    mask = mask.reshape((1,) * (x.dim() - mask.dim()) + tuple(mask.shape))
                    masks.append(mask + offset)
                    offset = int(mask.max()) + 1 + offset
            return tuple(masks)
        if strides is not None:
            warnings.warn("`strides` is ignored when `feature_mask` is given.", stacklevel=6)
        masks_in = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        if len(masks_in) != len(inputs):
            raise ValueError(
                f"`feature_mask` must have one mask per input tensor ({len(inputs)}), got {len(masks_in)}."
            )
        masks = []
        for j, (mask, x) in enumerate(zip(masks_in, inputs)):
            if not isinstance(mask, Tensor) or mask.dtype.is_floating_point or mask.dtype == torch.bool:
                raise ValueError(f"`feature_mask` {j} must be an integer tensor.")
            if mask.dim() > x.dim():
                raise ValueError(
                    f"`feature_mask` {j} has shape {tuple(mask.shape)}, more dimensions than the input "
                    f"{tuple(x.shape)}."
                )
            if mask.dim() < x.dim():
                mask = mask.reshape((1,) * (x.dim() - mask.dim()) + tuple(mask.shape))
            ok = mask.shape[0] in (1, x.shape[0])
            if ok:
                try:
                    ok = torch.broadcast_shapes(mask.shape[1:], x.shape[1:]) == x.shape[1:]
                except RuntimeError:
                    ok = False
            if not ok:
                raise ValueError(
                    f"`feature_mask` {j} has shape {tuple(mask.shape)}, which does not broadcast to the "
                    f"input {tuple(x.shape)}; expected e.g. 1×1×H×W, N×1×H×W or H×W for images."
                )
            masks.append(mask.to(x.device))
        return tuple(masks)

    # ------------------------------------------------------------------ the engine

    def _explain(
        self,
        inputs: TensorOrTuple,
        baselines: Any,
        target: Any,
        additional_forward_args: Any,
        feature_mask: Any,
        perturbations_per_eval: int,
        show_progress: bool,
        **kwargs: Any,
    ) -> Tuple[List[SubmodularResult], bool]:
        was_tuple = is_tuple(inputs)
        xs = as_tuple(inputs)
        if len(xs) == 0 or not all(isinstance(x, Tensor) for x in xs):
            raise ValueError("`inputs` must be a tensor or a non-empty tuple of tensors.")
        n = xs[0].shape[0] if xs[0].dim() > 0 else 0
        if xs[0].dim() == 0 or n == 0:
            raise ValueError("`inputs` is an empty batch: the first dimension must be ≥ 1.")
        if any(x.shape[0] != n for x in xs):
            raise ValueError("All `inputs` tensors must share the batch size (first dimension).")
        if not isinstance(perturbations_per_eval, int) or perturbations_per_eval < 1:
            raise ValueError(f"`perturbations_per_eval` must be an int ≥ 1, got {perturbations_per_eval!r}.")
        kwargs = dict(kwargs)
        threshold = kwargs.pop("threshold", None)
        masks = self._format_masks(feature_mask, xs, kwargs)
        if kwargs:
            raise TypeError(f"attribute() got unexpected keyword arguments {sorted(kwargs)}.")
        bases = self._format_baselines(baselines, xs)
        targets = _targets_per_example(target, n)
        if self.output_type == "scalar" and any(t for t in targets):
            raise ValueError("output_type='scalar' models have one output per example: `target` must be None.")
        add_args = format_additional_forward_args(additional_forward_args)

        examples: List[_Example] = []
        for i in range(n):
            masks_i = [m[i : i + 1] if m.shape[0] > 1 else m for m in masks]
            ids = torch.unique(torch.cat([m.reshape(-1) for m in masks_i]))
            self.search.check_regions(int(ids.numel()))
            idx = tuple(torch.searchsorted(ids, m.contiguous()) for m in masks_i)
            x_i = tuple(x[i : i + 1] for x in xs)
            b_i = tuple(b[i : i + 1] if b.shape[0] > 1 else b for b in bases)
            delta = tuple((x - b).expand_as(x) for x, b in zip(x_i, b_i))
            examples.append(_Example(i, delta, b_i, idx, ids, targets[i]))

        evaluator = _Evaluator(self, examples, add_args, n, perturbations_per_eval, show_progress)
        try:
            # First forward: the unperturbed inputs (validates the target, fills the cache).
            evaluator.evaluate([(e, torch.ones(1, e.m, dtype=torch.bool)) for e in examples],
                               where="on the unperturbed input")
            if self.weights.effectiveness != 0:
                evaluator.embed(examples)
            outcomes = evaluator.run_searches(examples)
            results = [self._finish(e, outcome.order, evaluator, threshold) for e, outcome in zip(examples, outcomes)]
        finally:
            evaluator.close()
        return results, was_tuple

    def _finish(self, ex: _Example, order: List[int], evaluator: "_Evaluator",
                threshold: Optional[float]) -> SubmodularResult:
        m = ex.m
        if sorted(order) != list(range(m)):
            raise RuntimeError(f"search {self.search!r} returned an order that is not a permutation of {m} regions.")
        prefixes = torch.zeros(m + 1, m, dtype=torch.bool)
        order_t = torch.tensor(order)
        for k in range(1, m + 1):
            prefixes[k, order_t[:k]] = True
        ins, dele, conf = evaluator.lookup(ex, prefixes, where="while recording the curves")
        div = effectiveness(prefixes, ex.distances) if ex.distances is not None else None
        values = objective_values(self.weights, ins, dele, conf, div)
        if self.attribution_map == "gain":
            ranked = _gain_map(ins, dele, evaluator.resolution(ins, dele))
        else:
            ranked = torch.arange(m, 0, -1, dtype=torch.float64)
        region_values = torch.empty(m, dtype=torch.float64)
        region_values[order_t] = ranked
        thr = float(ins[-1]) if threshold is None else float(threshold)
        reach = (ins >= thr).nonzero().flatten()
        k_min = int(reach[0]) if len(reach) else m
        minimal = ex.region_ids[order_t[:k_min]]
        attrs = []
        for delta, idx in zip(ex.delta, ex.idx):
            dtype = delta.dtype if delta.dtype.is_floating_point else torch.float32
            vals = region_values.to(device=delta.device, dtype=dtype)
            attrs.append(vals[idx].expand_as(delta).clone())
        if self.within_region == "gradient":
            attrs = _refine_within_regions(attrs, ex, ranked, order_t, evaluator.gradient_saliency(ex))
        return SubmodularResult(
            order=ex.region_ids[order_t].cpu(),
            insertion_curve=ins,
            deletion_curve=dele,
            objective_values=values,
            region_ids=ex.region_ids.cpu(),
            region_values=region_values,
            minimal_subset=minimal.cpu(),
            threshold=thr,
            n_evaluations=ex.n_evaluations,
            attributions=tuple(attrs) if len(attrs) > 1 else attrs[0],
        )


class _Evaluator:
    """Evaluates composed inputs for many examples in shared, bounded model calls."""

    def __init__(self, owner: SubmodularAttribution, examples: List[_Example], add_args: Any,
                 n: int, batch: int, show_progress: bool) -> None:
        self.owner = owner
        self.add_args = add_args
        self.n = n
        self.batch = batch
        self.output_eps = 0.0  # machine epsilon of the model outputs seen (see `resolution`)
        self.bar = None
        if show_progress:
            total = self._expected_total(examples)
            self.bar = progress(desc=f"{type(owner).__name__} attribution", total=total, unit="evals")

    def _expected_total(self, examples: List[_Example]) -> Optional[int]:
        counts = [self.owner.search.expected_evaluations(e.m) for e in examples]
        return None if any(c is None for c in counts) else int(sum(counts))

    def close(self) -> None:
        if self.bar is not None:
            if self.bar.total is not None and self.bar.n != self.bar.total:
                self.bar.total = self.bar.n  # reuse made the estimate high: end at 100 %
                self.bar.refresh()
            self.bar.close()

    # ---------------------------------------------------------------- model calls

    def _forward(self, jobs: List[Tuple[_Example, Tensor]]) -> Tensor:
        """One model call on the composed inputs of ``jobs`` (≤ batch rows); returns raw output."""
        parts = [e.compose(rows) for e, rows in jobs]
        n_inputs = len(parts[0])
        inputs = tuple(torch.cat([p[j] for p in parts]) for j in range(n_inputs))
        example_idx = torch.cat([torch.full((rows.shape[0],), e.index, dtype=torch.long) for e, rows in jobs])
        args = self._args_for(example_idx)
        with torch.inference_mode():
            out = self.owner.forward_func(*inputs, *args)
        if not isinstance(out, Tensor):
            out = torch.as_tensor(out)
        if out.dim() == 0 or out.shape[0] != example_idx.shape[0]:
            raise ValueError(
                f"`forward_func` must return one output row per input row: got shape {tuple(out.shape)} "
                f"for {example_idx.shape[0]} inputs."
            )
        return out

    def _args_for(self, example_idx: Tensor) -> Tuple[Any, ...]:
        """``additional_forward_args`` for rows of the given examples."""
        if self.add_args is None:
            return ()
        expanded = []
        for a in self.add_args:
            if isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == self.n:
                expanded.append(a.index_select(0, example_idx.to(a.device)))
            else:
                expanded.append(a)
        return tuple(expanded)

    def gradient_saliency(self, e: _Example) -> Tuple[Tensor, ...]:
        """``∂p/∂x · (x − baseline)`` for one example (one forward and one backward)."""
        with torch.enable_grad():
            xs = tuple((b + d).detach().requires_grad_(True) for b, d in zip(e.base, e.delta))
            out = self.owner.forward_func(*xs, *self._args_for(torch.tensor([e.index])))
            p, _ = target_scores(out, (e.target,), self.owner.output_type)
            grads = torch.autograd.grad(p.sum(), xs, allow_unused=True)
        e.n_evaluations += 1
        return tuple(torch.zeros_like(d) if g is None else (g.detach() * d) for g, d in zip(grads, e.delta))

    def evaluate(self, requests: List[Tuple[_Example, Tensor]], where: str) -> None:
        """Make sure every row of every request is in its example's cache."""
        pending: List[Tuple[_Example, Tensor, bytes]] = []
        queued = set()
        for e, rows in requests:
            for row, key in zip(rows, _row_keys(rows)):
                if key not in e.cache and (e.index, key) not in queued:
                    queued.add((e.index, key))
                    pending.append((e, row, key))
        for start in range(0, len(pending), self.batch):
            chunk = pending[start : start + self.batch]
            # group consecutive rows of one example to compose them in one op
            groups: List[Tuple[_Example, List[Tensor]]] = []
            for e, row, _ in chunk:
                if groups and groups[-1][0] is e:
                    groups[-1][1].append(row)
                else:
                    groups.append((e, [row]))
            out = self._forward([(e, torch.stack(rows)) for e, rows in groups])
            _check_finite(out, self._describe(where, chunk))
            if out.is_floating_point():
                self.output_eps = max(self.output_eps, float(torch.finfo(out.dtype).eps))
            row_targets = tuple(e.target for e, _, _ in chunk)
            try:
                p, conf = target_scores(out, row_targets, self.owner.output_type)
            except (IndexError, RuntimeError) as err:
                raise ValueError(
                    f"`target` {sorted(set(row_targets))} is out of range for the model output of shape "
                    f"{tuple(out.shape[1:])} per example ({err})."
                ) from None
            _check_finite(p, self._describe(where, chunk))
            for (e, _, key), pv, cv in zip(chunk, p.tolist(), conf.tolist()):
                e.cache[key] = (pv, cv)
                e.n_evaluations += 1
            if self.bar is not None:
                self.bar.update(len(chunk))

    def resolution(self, *curves: Tensor) -> float:
        """Score differences at or below this are rounding, not effect: ``8·eps·max(1, |scores|)``.

        ``eps`` is the machine epsilon of the model's output dtype: the same input can score
        differently in its last bits depending on the batch it was evaluated in.
        """
        scale = max([1.0] + [float(c.abs().max()) for c in curves if c.numel()])
        return 8.0 * self.output_eps * scale

    @staticmethod
    def _describe(where: str, chunk: List[Tuple[_Example, Tensor, bytes]]) -> str:
        examples = sorted({e.index for e, _, _ in chunk})
        return f"{where} (example(s) {examples})"

    def lookup(self, e: _Example, rows: Tensor, where: str) -> Tuple[Tensor, Tensor, Tensor]:
        """``p(x[S])``, ``p(x[V∖S])`` and ``conf(x[S])`` for each row (evaluates what is missing)."""
        self.evaluate([(e, torch.cat([rows, ~rows]))], where)
        return self.read(e, rows)

    @staticmethod
    def read(e: _Example, rows: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Like :meth:`lookup` for rows whose inputs are already in the cache."""
        keys = _row_keys(rows)
        ckeys = _row_keys(~rows)
        p = torch.tensor([e.cache[k][0] for k in keys], dtype=torch.float64)
        c = torch.tensor([e.cache[k][1] for k in keys], dtype=torch.float64)
        pc = torch.tensor([e.cache[k][0] for k in ckeys], dtype=torch.float64)
        return p, pc, c

    # ---------------------------------------------------------------- diversity

    def embed(self, examples: List[_Example]) -> None:
        """Embeddings of the single-region inputs ``x[{i}]`` → pairwise distances per example."""
        emb = self.owner.embedding
        for e in examples:
            singles = torch.eye(e.m, dtype=torch.bool)
            chunks = []
            for start in range(0, e.m, self.batch):
                rows = singles[start : start + self.batch]
                if isinstance(emb, nn.Module):
                    captured: List[Tensor] = []

                    def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
                        captured.append((out[0] if isinstance(out, tuple) else out).detach())

                    handle = emb.register_forward_hook(hook)
                    try:
                        self._forward([(e, rows)])
                    finally:
                        handle.remove()
                    if not captured:
                        raise ValueError("`embedding` module was not called by `forward_func`.")
                    chunks.append(captured[-1].reshape(rows.shape[0], -1))
                else:
                    chunks.append(torch.as_tensor(emb(*e.compose(rows))).reshape(rows.shape[0], -1))
                e.n_evaluations += rows.shape[0]
            e.distances = angular_distances(torch.cat(chunks).cpu())

    # ---------------------------------------------------------------- searches

    def run_searches(self, examples: List[_Example]) -> list:
        """Run every example's search concurrently, batching their requests together."""
        weights = self.owner.weights
        gens = {e.index: self.owner.search.search(e.m) for e in examples}
        outcomes: Dict[int, Any] = {}
        requests: Dict[int, Tensor] = {}
        for e in examples:
            try:
                requests[e.index] = next(gens[e.index])
            except StopIteration as stop:
                outcomes[e.index] = stop.value
        by_index = {e.index: e for e in examples}
        while requests:
            batch = [(by_index[i], torch.cat([z, ~z])) for i, z in requests.items()]
            self.evaluate(batch, where="on a perturbed input")
            new_requests: Dict[int, Tensor] = {}
            for i, z in requests.items():
                e = by_index[i]
                p, pc, c = self.read(e, z)  # evaluated together with the other examples above
                div = effectiveness(z, e.distances) if e.distances is not None else None
                values = objective_values(weights, p, pc, c, div)
                try:
                    new_requests[i] = gens[i].send(values)
                except StopIteration as stop:
                    outcomes[i] = stop.value
            requests = new_requests
        return [outcomes[e.index] for e in examples]

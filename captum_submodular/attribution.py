"""``SubmodularAttribution``: Captum's perturbation contract + a search + an objective."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor, nn

from ._compat import as_tuple, format_additional_forward_args, format_output, is_tuple, log_usage
from ._evaluator import Evaluator, Example, NonFiniteOutputError
from .maps import ATTRIBUTION_MAPS, WITHIN_REGION, gain_map, rank_map, refine_within_regions
from .objective import OUTPUT_TYPES, ObjectiveWeights, effectiveness, objective_values
from .regions import default_mask, window_grid_mask
from .search import DEFAULT_SEARCH, SearchStrategy, get_search, minimum_evaluations

__all__ = ["SubmodularAttribution", "SubmodularResult", "NonFiniteOutputError", "ATTRIBUTION_MAPS"]

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]

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

    Attribution map (``attribution_map="gain"``, default; formula in
    :mod:`captum_submodular.maps`).  The isotonic fit of each region's gain
    ``½ · (Δinsertion + Δdeletion)`` at its own step along the order, made strictly
    decreasing: sorting the regions by value reproduces the selection order, every
    region gets a non-zero value, and only regions that change neither curve can get
    exactly 0.  ``attribution_map="rank"`` gives ``m − r`` to rank ``r`` (0-based).

    Parameters
    ----------
    forward_func:
        The model or any callable ``forward_func(*inputs, *additional_forward_args)``.
    search:
        ``"bidirectional"`` (default: LiMA's two-sided greedy, about m²/1.5 model calls,
        1,608 at m = 49), ``"refined"`` (neighbour-screened greedy plus exact swap
        refinement, at most 10·m), ``"accelerated"`` (surrogate-screened greedy, about 10·m,
        496 at m = 49), ``"phasewin"`` (PhaseWin, with its own objective weights 1 / 1
        unless ``weights`` is given), ``"greedy"`` (exact plain greedy, m(m+1)), or any
        :class:`~captum_submodular.search.SearchStrategy` instance.  BENCHMARKS.md §1–2
        measures them side by side.
    weights:
        :class:`~captum_submodular.objective.ObjectiveWeights`; defaults 20 / 5 / 0.01 / 0
        (or the search's ``default_weights``, e.g. PhaseWin's 1 / 1 / 0 / 0).
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
    max_evaluations:
        ``None`` (default) or the most model evaluations per example, everything counted
        as in :attr:`SubmodularResult.n_evaluations` (the search, the final curves, and the
        embeddings and the gradient when used).  The search trades quality for cost and
        never exceeds it; the order is still a full permutation with exact curves.  It
        must be at least ``2m`` (the curves of any order; ``+ m`` with the diversity term,
        ``+ 1`` with ``within_region="gradient"``), else ``ValueError`` before any model
        call.  Every built-in search supports it (see :mod:`captum_submodular.search`).

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
        max_evaluations: Optional[int] = None,
    ) -> None:
        PerturbationAttribution.__init__(self, forward_func)
        self.search = get_search(search)
        if weights is None:  # a search may bring its published objective (e.g. PhaseWin's 1 / 1)
            weights = self.search.default_weights
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
        if max_evaluations is not None and (
            isinstance(max_evaluations, bool) or not isinstance(max_evaluations, (int, np.integer))
            or max_evaluations < 1
        ):
            raise ValueError(f"`max_evaluations` must be None or an int ≥ 1, got {max_evaluations!r}.")
        if max_evaluations is not None and not self.search.accepts_context():
            raise ValueError(
                f"`max_evaluations` needs a search that takes a budget (`search(m, context=None)`); "
                f"{type(self.search).__name__}.search(m) does not."
            )
        self.max_evaluations = None if max_evaluations is None else int(max_evaluations)

    def minimum_evaluations(self, m: int) -> int:
        """Smallest ``max_evaluations`` for an example with ``m`` regions."""
        return (minimum_evaluations(m) + (m if self.weights.effectiveness != 0 else 0)
                + (1 if self.within_region == "gradient" else 0))

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

        examples: List[Example] = []
        for i in range(n):
            masks_i = [m[i : i + 1] if m.shape[0] > 1 else m for m in masks]
            ids = torch.unique(torch.cat([m.reshape(-1) for m in masks_i]))
            self.search.check_regions(int(ids.numel()))
            if self.max_evaluations is not None and self.max_evaluations < self.minimum_evaluations(int(ids.numel())):
                m_i = int(ids.numel())
                raise ValueError(
                    f"`max_evaluations`={self.max_evaluations} is below the minimum of "
                    f"{self.minimum_evaluations(m_i)} model evaluations for example {i} with {m_i} regions "
                    f"(2m to record the curves of any order"
                    + (", + m for the diversity embeddings" if self.weights.effectiveness != 0 else "")
                    + (", + 1 for the gradient" if self.within_region == "gradient" else "") + ")."
                )
            idx = tuple(torch.searchsorted(ids, m.contiguous()) for m in masks_i)
            x_i = tuple(x[i : i + 1] for x in xs)
            b_i = tuple(b[i : i + 1] if b.shape[0] > 1 else b for b in bases)
            delta = tuple((x - b).expand_as(x) for x, b in zip(x_i, b_i))
            examples.append(Example(i, delta, b_i, idx, ids, targets[i]))

        evaluator = Evaluator(self, examples, add_args, n, perturbations_per_eval, show_progress)
        try:
            # First forward: the unperturbed inputs (validates the target, fills the cache).
            evaluator.evaluate([(e, torch.ones(1, e.m, dtype=torch.bool)) for e in examples],
                               where="on the unperturbed input")
            if self.weights.effectiveness != 0:
                evaluator.embed(examples)
            budget = self.max_evaluations
            if budget is not None and self.within_region == "gradient":
                budget -= 1  # the saliency's forward comes after the search
            outcomes = evaluator.run_searches(examples, budget)
            results = [self._finish(e, outcome.order, evaluator, threshold) for e, outcome in zip(examples, outcomes)]
        finally:
            evaluator.close()
        return results, was_tuple

    def _finish(self, ex: Example, order: List[int], evaluator: Evaluator,
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
            ranked = gain_map(ins, dele, evaluator.resolution(ins, dele))
        else:
            ranked = rank_map(m)
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
            attrs = refine_within_regions(attrs, ex.idx, ranked, order_t, evaluator.gradient_saliency(ex))
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

"""``SubmodularAttribution``: Captum's perturbation contract + a search + an objective."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from captum.attr._utils.attribution import PerturbationAttribution
from torch import Tensor, nn

from ._compat import format_output, log_usage
from ._evaluator import Evaluator, Example
from ._inputs import (
    NonFiniteOutputError,
    as_tuple,
    check_baselines,
    check_feature_mask,
    check_inputs,
    check_positive_int,
    check_real,
    check_target,
    check_windows,
    format_afa,
    targets_per_example,
)
from ._model_state import TRAIN_MODES, model_guard
from .maps import ATTRIBUTION_MAPS, WITHIN_REGION, gain_map, rank_map, refine_within_regions
from .objective import OUTPUT_TYPES, ObjectiveWeights, effectiveness, objective_values
from .regions import default_mask, window_grid_mask
from .search import DEFAULT_SEARCH, SearchStrategy, get_search, minimum_evaluations

__all__ = [
    "SubmodularAttribution",
    "SubmodularResult",
    "NonFiniteOutputError",
    "ATTRIBUTION_MAPS",
    "auto_perturbations_per_eval",
    "AUTO_PROGRESS_EVALUATIONS",
]

#: Composed-input memory one automatic model call may use (``perturbations_per_eval=None``).
AUTO_BATCH_BYTES = 64 * 2**20
#: Most composed inputs per automatic call: on the CPU, larger batches are no faster per input.
AUTO_BATCH_CPU = 16
AUTO_BATCH_ACCELERATOR = 64
#: ``show_progress=None`` shows a bar when a call is expected to need at least this many
#: model evaluations (a few seconds for an ImageNet classifier on a CPU).
AUTO_PROGRESS_EVALUATIONS = 256


def auto_perturbations_per_eval(inputs: Union[Tensor, Tuple[Tensor, ...]]) -> int:
    """The automatic ``perturbations_per_eval``: composed inputs per model call.

    As many as fit in ``AUTO_BATCH_BYTES`` (64 MiB) of input memory, at most
    ``AUTO_BATCH_CPU`` (16) on the CPU, where bigger batches are no faster per input, and
    ``AUTO_BATCH_ACCELERATOR`` (64) on a GPU; at least 1.
    """
    xs = inputs if isinstance(inputs, tuple) else (inputs,)
    row = sum(int(x[0].numel()) * x.element_size() for x in xs if isinstance(x, Tensor) and x.dim() > 0)
    cap = AUTO_BATCH_CPU if xs[0].device.type == "cpu" else AUTO_BATCH_ACCELERATOR
    return int(max(1, min(cap, AUTO_BATCH_BYTES // max(1, row))))


TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]


def map_dtype(input_dtype: torch.dtype) -> torch.dtype:
    """The map's dtype: the input's for float32 / float64, float32 for every other dtype.

    Half precision (float16 / bfloat16) cannot hold the map's guarantees (strictly
    decreasing values along the order, non-zero values next to exact zeros), and integer
    or bool inputs have no fractional values at all.
    """
    return input_dtype if input_dtype in (torch.float32, torch.float64) else torch.float32


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
    n_rounds:
        Sequential rounds of model evaluation for this example: each round is the set of
        new inputs one step needed (the unperturbed input, a search step, the final
        curves, the embeddings, the gradient), which one model call evaluates when
        ``perturbations_per_eval`` is at least its size.  A step whose inputs were all
        evaluated before costs no round.  On an accelerator, rounds rather than
        evaluations set the wall time.
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
    n_rounds: int = 0

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
    ``where(mask(S), x, baseline)``, built for many subsets in one batched tensor
    operation on the input's device: a select, so kept elements equal ``x`` and removed
    ones equal the baseline exactly, in any dtype (floating point, integer or bool).
    Each distinct composed input is evaluated once per example (the full input, the
    baseline and any input both search sides need are reused).

    Attribution map (``attribution_map="gain"``, default; formula and contract in
    :mod:`captum_submodular.maps`).  A region gets exactly 0 if and only if adding it
    (its insertion step) and removing it (its deletion step) at its place in the order
    both left the score unchanged, so a region the model cannot see always gets 0;
    every other region gets the isotonic fit of its gain ``½ · (Δinsertion + Δdeletion)``
    along the order, made strictly decreasing, so sorting the non-zero values reproduces
    their selection order.  ``attribution_map="rank"`` gives ``m − r`` to rank ``r``
    (0-based): a ranking of every region, including those without effect.
    Score differences within the rounding resolution of the model's output dtype count
    as ties and zeros, so the exact zeros and the order do not depend on the batch an
    input was evaluated in (``perturbations_per_eval``, the other examples).  The map has
    the input's dtype for float32 / float64 inputs and float32 otherwise (see
    :func:`map_dtype`).

    The model is never changed.  Every model call runs without gradients (except the
    one gradient of ``within_region="gradient"``) with the model in eval mode, and
    afterwards every module's own ``training`` flag and every buffer are restored
    bitwise (:mod:`captum_submodular._model_state`).  A model found in training mode (a
    BatchNorm, Dropout or other module whose behaviour depends on the mode, in training
    mode) is evaluated as ``model.eval()`` would and gets a ``UserWarning``, or a
    ``ValueError`` before any call with ``train_mode="error"``: in training mode
    BatchNorm would overwrite its running statistics with those of the perturbed inputs
    (and fail on a batch of one) and Dropout would make identical calls differ, while the
    search needs one score per input.  Warning by default keeps a model someone forgot
    to put in eval mode working, with the answer it was meant to give.

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
        ``"scalar"`` (one score per example; ``target`` must be ``None``).  Score
        differences below the output's rounding resolution are ties and zeros; a scalar
        computed as a small difference of much larger internal values (a saturated
        log-probability, say) rounds above that resolution, so prefer returning logits or
        probabilities for such a model, or pass ``perturbations_per_eval=1``.
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
    train_mode:
        What to do with a model in training mode: ``"warn"`` (default; evaluate it in
        eval mode, restore its modes, warn) or ``"error"`` (``ValueError`` before any
        model call).
    max_evaluations:
        ``None`` (default) or the most model evaluations per example, everything counted
        as in :attr:`SubmodularResult.n_evaluations` (the search, the final curves, and the
        embeddings and the gradient when used).  The search trades quality for cost and
        never exceeds it; the order is still a full permutation with exact curves.  It
        must be at least ``2m`` (the curves of any order; ``+ m`` with the diversity term,
        ``+ 1`` with ``within_region="gradient"``), else ``ValueError`` before any model
        call.  Every built-in search supports it (see :mod:`captum_submodular.search`).

    Raises
    ------
    ValueError
        For an argument of the wrong form, shape, dtype or value, naming it and what was
        expected, before any model call; for an output that does not fit ``output_type``
        or ``target`` (an index out of range, one output per example with
        ``output_type="logits"`` …), at the first model call (the unperturbed inputs).
    TypeError
        For unexpected keyword arguments of :meth:`attribute`.
    NonFiniteOutputError
        When the model (or the embedding) returns NaN or inf; the message says on
        which input (inputs and baselines are checked finite before any call).

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
        train_mode: str = "warn",
    ) -> None:
        PerturbationAttribution.__init__(self, forward_func)
        self.search = get_search(search)
        if weights is None:  # a search may bring its published objective (e.g. PhaseWin's 1 / 1)
            weights = self.search.default_weights
        self.weights = weights if weights is not None else ObjectiveWeights()
        if not isinstance(self.weights, ObjectiveWeights):
            raise ValueError(f"`weights` must be an ObjectiveWeights, got {type(weights).__name__}.")
        if not isinstance(output_type, str) or output_type not in OUTPUT_TYPES:
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
        if not isinstance(attribution_map, str) or attribution_map not in ATTRIBUTION_MAPS:
            raise ValueError(f"`attribution_map` must be one of {ATTRIBUTION_MAPS}, got {attribution_map!r}.")
        self.attribution_map = attribution_map
        if not (within_region is None or isinstance(within_region, str)) or within_region not in WITHIN_REGION:
            raise ValueError(f"`within_region` must be one of {WITHIN_REGION}, got {within_region!r}.")
        self.within_region = within_region
        if max_evaluations is not None and (
            isinstance(max_evaluations, bool)
            or not isinstance(max_evaluations, (int, np.integer))
            or max_evaluations < 1
        ):
            raise ValueError(f"`max_evaluations` must be None or an int ≥ 1, got {max_evaluations!r}.")
        if max_evaluations is not None and not self.search.accepts_context():
            raise ValueError(
                f"`max_evaluations` needs a search that takes a budget (`search(m, context=None)`); "
                f"{type(self.search).__name__}.search(m) does not."
            )
        self.max_evaluations = None if max_evaluations is None else int(max_evaluations)
        if train_mode not in TRAIN_MODES:
            raise ValueError(f"`train_mode` must be one of {TRAIN_MODES}, got {train_mode!r}.")
        self.train_mode = train_mode

    def minimum_evaluations(self, m: int) -> int:
        """Smallest ``max_evaluations`` for an example with ``m`` regions."""
        return (
            minimum_evaluations(m)
            + (m if self.weights.effectiveness != 0 else 0)
            + (1 if self.within_region == "gradient" else 0)
        )

    # ------------------------------------------------------------------ public API

    @log_usage()
    @torch.no_grad()
    def attribute(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Union[Tensor, Tuple[Tensor, ...], None] = None,
        perturbations_per_eval: Optional[int] = None,
        show_progress: Optional[bool] = None,
        **kwargs: Any,
    ) -> TensorOrTuple:
        r"""Attribution map shaped like ``inputs`` (tensor in, tensor out; tuple in, tuple out).

        Parameters
        ----------
        inputs:
            ``N×…`` tensor or tuple of tensors sharing the batch size ``N`` (a list is
            refused, as in Captum: pass a tuple), floating point, integer or bool, finite.
            Each example is explained on its own; the result equals explaining examples
            one by one.
        baselines:
            Captum's forms: ``None`` (0), a scalar, a tensor shaped like one example or
            like the batch, or a tuple of those for tuple inputs.  The value that means
            "region absent", cast to the input's dtype, which must hold it exactly (an
            integral value for integer inputs, 0/1 for bool inputs); finite.
        target:
            Any target form Captum accepts: int, tuple, scalar tensor, tensor or list
            of ``N`` entries, or ``None`` for single-output models.  Integer class
            indices only (a float is refused, not truncated); negative indices count from
            the last class, as in Captum, and are checked against the output at the
            first model call.
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
            Most composed inputs per model call (Captum's meaning; bounds memory).  Any int
            ≥ 1 is honoured.  Default ``None``: automatic, :func:`auto_perturbations_per_eval`
            (as many composed inputs as fit in 64 MiB, at most 16 per call on the CPU and 64
            on an accelerator).  The result does not depend on it.
        show_progress:
            ``True`` / ``False``: a progress bar over model evaluations on stderr, or none.
            Default ``None``: a bar only when the call is expected to take more than a few
            seconds (an expected :data:`AUTO_PROGRESS_EVALUATIONS` model evaluations or more),
            so short calls print nothing.
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
            inputs,
            baselines,
            target,
            additional_forward_args,
            feature_mask,
            perturbations_per_eval,
            show_progress,
            **kwargs,
        )
        n_inputs = len(results[0].attributions) if isinstance(results[0].attributions, tuple) else 1
        stacked = tuple(torch.cat([as_tuple(r.attributions)[j] for r in results]) for j in range(n_inputs))
        return format_output(was_tuple, stacked)

    @torch.no_grad()
    def explain(
        self,
        inputs: TensorOrTuple,
        baselines: Any = None,
        target: Any = None,
        additional_forward_args: Any = None,
        feature_mask: Union[Tensor, Tuple[Tensor, ...], None] = None,
        perturbations_per_eval: Optional[int] = None,
        show_progress: Optional[bool] = None,
        **kwargs: Any,
    ) -> List[SubmodularResult]:
        """Same arguments as :meth:`attribute`; returns one :class:`SubmodularResult` per example.

        Each result holds the ordered region ids, the insertion and deletion curves
        recorded during the search, the objective values, the minimal interpretable
        subset, the number of model evaluations and the map.
        """
        results, _ = self._explain(
            inputs,
            baselines,
            target,
            additional_forward_args,
            feature_mask,
            perturbations_per_eval,
            show_progress,
            **kwargs,
        )
        return results

    # ------------------------------------------------------------------ validation

    @staticmethod
    def _region_masks(feature_mask: Any, inputs: Tuple[Tensor, ...], kwargs: Dict[str, Any]) -> Tuple[Tensor, ...]:
        """The checked ``feature_mask``, or masks built from ``sliding_window_shapes``, or the default."""
        windows = kwargs.pop("sliding_window_shapes", None)
        strides = kwargs.pop("strides", None)
        if feature_mask is not None and windows is not None:
            raise ValueError("Pass either `feature_mask` or `sliding_window_shapes`, not both.")
        if feature_mask is not None:
            if strides is not None:
                warnings.warn("`strides` is ignored when `feature_mask` is given.", stacklevel=6)
            checked = check_feature_mask(feature_mask, inputs)
            assert checked is not None  # a mask was given
            return checked
        masks = []
        offset = 0
        if windows is not None:
            windows_t, strides_t = check_windows(windows, strides, inputs)
            for x, w, st in zip(inputs, windows_t, strides_t):
                if st is not None and st != w:
                    warnings.warn(
                        f"`strides`={st} differs from `sliding_window_shapes`={w}: overlapping "
                        "windows are not a partition, so SubmodularAttribution uses "
                        "non-overlapping tiles of the window size and ignores the stride.",
                        stacklevel=6,
                    )
                mask = window_grid_mask(x.shape[1:], w, device=x.device).unsqueeze(0)
                masks.append(mask + offset)
                offset = int(mask.max()) + 1 + offset
        else:
            if strides is not None:
                warnings.warn("`strides` is ignored without `sliding_window_shapes`.", stacklevel=6)
            for x in inputs:
                mask = default_mask(x.shape[1:], device=x.device)
                mask = mask.reshape((1,) * (x.dim() - mask.dim()) + tuple(mask.shape))
                masks.append(mask + offset)
                offset = int(mask.max()) + 1 + offset
        return tuple(masks)

    def _examples(
        self,
        inputs: Any,
        baselines: Any,
        target: Any,
        feature_mask: Any,
        perturbations_per_eval: Any,
        kwargs: Dict[str, Any],
    ) -> Tuple[List[Example], bool, int, Any]:
        """Every argument checked (before any model call) → per-example state."""
        xs, was_tuple, n = check_inputs(inputs)
        ppe = (
            auto_perturbations_per_eval(xs)
            if perturbations_per_eval is None
            else check_positive_int(perturbations_per_eval, "perturbations_per_eval", none="automatic")
        )
        kwargs = dict(kwargs)
        threshold = check_real(kwargs.pop("threshold", None), "threshold")
        masks = self._region_masks(feature_mask, xs, kwargs)
        if kwargs:
            raise TypeError(f"attribute() got unexpected keyword arguments {sorted(kwargs)}.")
        bases = check_baselines(baselines, xs)
        targets = targets_per_example(check_target(target, n), n)
        if self.output_type == "scalar" and any(t for t in targets):
            raise ValueError("output_type='scalar' models have one output per example: `target` must be None.")
        if self.within_region == "gradient":
            bad = [str(x.dtype) for x in xs if not x.is_floating_point()]
            if bad:
                raise ValueError(
                    f"within_region='gradient' differentiates the model with respect to the inputs, "
                    f"which must be floating point; got {', '.join(bad)} inputs (use within_region=None)"
                )
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
                    + (", + 1 for the gradient" if self.within_region == "gradient" else "")
                    + ")."
                )
            idx = tuple(torch.searchsorted(ids, m.contiguous()) for m in masks_i)
            x_i = tuple(x[i : i + 1] for x in xs)
            b_i = tuple(b[i : i + 1] if b.shape[0] > 1 else b for b in bases)
            examples.append(Example(i, x_i, b_i, idx, ids, targets[i]))
        return examples, was_tuple, ppe, threshold

    # ------------------------------------------------------------------ the engine

    def _explain(
        self,
        inputs: TensorOrTuple,
        baselines: Any,
        target: Any,
        additional_forward_args: Any,
        feature_mask: Any,
        perturbations_per_eval: Optional[int],
        show_progress: Optional[bool],
        **kwargs: Any,
    ) -> Tuple[List[SubmodularResult], bool]:
        examples, was_tuple, ppe, threshold = self._examples(
            inputs, baselines, target, feature_mask, perturbations_per_eval, kwargs
        )
        if show_progress is not None and not isinstance(show_progress, bool):
            raise ValueError(f"`show_progress` must be None (automatic), True or False, got {show_progress!r}.")
        add_args = format_afa(additional_forward_args)
        with model_guard(
            self.forward_func,
            self.embedding,
            train_mode=self.train_mode,
            caller=type(self).__name__,
            hint=" (or pass train_mode='error' to refuse it)",
        ):
            evaluator = Evaluator(
                self, examples, add_args, len(examples), ppe, show_progress, AUTO_PROGRESS_EVALUATIONS
            )
            try:
                # First forward: the unperturbed inputs (checks the output and the target, fills the cache).
                evaluator.evaluate(
                    [(e, torch.ones(1, e.m, dtype=torch.bool)) for e in examples], where="on the unperturbed input"
                )
                # Everything else that can fail on the model comes before the search too.
                saliency = (
                    {e.index: evaluator.gradient_saliency(e) for e in examples}
                    if self.within_region == "gradient"
                    else {}
                )
                if self.weights.effectiveness != 0:
                    evaluator.embed(examples)
                outcomes = evaluator.run_searches(examples, self.max_evaluations)
                results = [
                    self._finish(e, outcome.order, evaluator, threshold, saliency.get(e.index))
                    for e, outcome in zip(examples, outcomes)
                ]
            finally:
                evaluator.close()
        return results, was_tuple

    def _finish(
        self,
        ex: Example,
        order: List[int],
        evaluator: Evaluator,
        threshold: Optional[float],
        saliency: Optional[Tuple[Tensor, ...]],
    ) -> SubmodularResult:
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
            ranked = gain_map(ins, dele, evaluator.resolution(ins, dele, example=ex))
        else:
            ranked = rank_map(m)
        region_values = torch.empty(m, dtype=torch.float64)
        region_values[order_t] = ranked
        thr = float(ins[-1]) if threshold is None else float(threshold)
        reach = (ins >= thr).nonzero().flatten()
        k_min = int(reach[0]) if len(reach) else m
        minimal = ex.region_ids[order_t[:k_min]]
        attrs = []
        for x, idx in zip(ex.inputs, ex.idx):
            vals = region_values.to(device=x.device, dtype=map_dtype(x.dtype))
            attrs.append(vals[idx].expand_as(x).clone())
        if saliency is not None:
            attrs = refine_within_regions(attrs, ex.idx, ranked, order_t, saliency)
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
            n_rounds=ex.n_rounds,
            attributions=tuple(attrs) if len(attrs) > 1 else attrs[0],
        )

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

Registry
    :data:`METRICS` declares every metric once (name, function, direction,
    curve, fixed substrate, the class it explains, table header);
    :func:`register_metric` adds one and :class:`Faithfulness` binds the
    metrics to a model and a batch (clean outputs computed once).

Orders (``order=``)
    ``"morf"`` (default): the most relevant elements are changed first.
    ``"lerf"``: the least relevant first (a faithful map keeps a LeRF deletion
    curve high). ROAD's combined score is the LeRF area minus the MoRF area.

Substrates (``substrate=``)
    ``None`` / ``"baseline"`` (default): the user's ``baselines`` (Captum
    forms: ``None`` -> 0, a scalar, or a tensor broadcastable to one example
    or to the batch) for both curves. ``"blur"`` / ``"rise"``: RISE protocol,
    insertion starts from ``gaussian_blur(x, kernel 11, sigma 5)`` and deletion
    uses the baselines. ``"mean"``: per-example, per-channel mean colour for
    both curves. ``"road"`` (or a :class:`RoadSubstrate`): ROAD's noisy linear
    imputation of whatever is not shown, step by step (images only). A callable
    ``substrate(inputs) -> tensor(s)`` (broadcastable to the inputs) is used for
    both curves. ``docs/metrics.md`` says which to use for which question.

Scores (``output=``)
    ``"softmax"``: softmax over dim 1 of the model output (logits), at the
    target class. ``"identity"``: the raw output at the target, or the scalar
    output when the model returns ``N`` or ``N x 1``. A callable
    ``output(model_output, target) -> (B,)`` is also accepted.

All results are returned on the CPU as ``float64`` tensors.
"""

from .curves import (
    CURVE_KINDS,
    OUTPUT_MODES,
    CurveResult,
    HighestConfidenceResult,
    curve_area,
    deletion,
    highest_confidence,
    insertion,
    output_scores,
    perturbation_curves,
)
from .ranking import ORDERS
from .registry import (
    HC_BUDGETS,
    METRICS,
    Faithfulness,
    Metric,
    MetricInfo,
    MetricResult,
    register_metric,
    resolve_metrics,
)
from .substrates import BLUR_KERNEL_SIZE, BLUR_SIGMA, SUBSTRATE_PRESETS, RoadSubstrate

__all__ = [
    "CurveResult",
    "HighestConfidenceResult",
    "Metric",
    "MetricInfo",
    "MetricResult",
    "METRICS",
    "HC_BUDGETS",
    "Faithfulness",
    "register_metric",
    "resolve_metrics",
    "SUBSTRATE_PRESETS",
    "RoadSubstrate",
    "ORDERS",
    "OUTPUT_MODES",
    "CURVE_KINDS",
    "BLUR_KERNEL_SIZE",
    "BLUR_SIGMA",
    "perturbation_curves",
    "insertion",
    "deletion",
    "highest_confidence",
    "output_scores",
    "curve_area",
]

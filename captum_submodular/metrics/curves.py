"""The curve engine: insertion, deletion and highest confidence for any attribution.

See :mod:`captum_submodular.metrics` for the protocol (elements, ranking, steps, region
mode, curves, area, substrates, scores).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .._compat import select_targets
from .._inputs import (
    NormTarget,
    as_output,
    check_attributions,
    check_baselines,
    check_feature_mask,
    check_finite_output,
    check_inputs,
    check_positive_int,
    check_target,
    format_afa,
    resolve_target,
    rows_afa,
    rows_target,
)
from .._model_state import model_guard
from .ranking import ORDERS, element_ranks, region_ranks
from .substrates import RoadSubstrate, check_substrate, substrate_tensors

__all__ = [
    "CurveResult",
    "HighestConfidenceResult",
    "OUTPUT_MODES",
    "CURVE_KINDS",
    "output_scores",
    "curve_area",
    "perturbation_curves",
    "insertion",
    "deletion",
    "highest_confidence",
]

TensorOrTuple = Union[Tensor, Tuple[Tensor, ...]]

#: Named score transforms accepted by ``output=``.
OUTPUT_MODES: Tuple[str, ...] = ("softmax", "identity")
#: The two perturbation curves.
CURVE_KINDS = ("insertion", "deletion")


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
        """``True`` for insertion curves, ``False`` for deletion curves."""
        return self.kind == "insertion"


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


def check_output(output: Any) -> Union[str, Callable[..., Any]]:
    if callable(output) or (isinstance(output, str) and output in OUTPUT_MODES):
        return output
    raise ValueError(f"output must be one of {list(OUTPUT_MODES)} or a callable; got {output!r}")


def _select(out: Tensor, target: NormTarget) -> Tensor:
    if isinstance(target, Tensor):
        if out.dim() != 2:
            raise ValueError(f"a per-example target needs a 2D model output; got {tuple(out.shape)}")
        return out.gather(1, target.to(out.device).view(-1, 1)).squeeze(1)
    return select_targets(out, target)


def output_scores(outputs: Tensor, target: Any = None, output: Union[str, Callable[..., Any]] = "softmax") -> Tensor:
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
    output = check_output(output)
    target = check_target(target, outputs.shape[0])
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
        logits = outputs if outputs.is_floating_point() else outputs.float()
        scores = _select(torch.softmax(logits, dim=1), resolve_target(target, outputs))
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
            scores = _select(outputs, resolve_target(target, outputs))
    if not isinstance(scores, Tensor) or tuple(scores.shape) != (outputs.shape[0],):
        raise ValueError(
            f"the score of each row must be a scalar; got shape "
            f"{tuple(getattr(scores, 'shape', ()))} for {outputs.shape[0]} rows"
        )
    return scores


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
    order: str = "morf",
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

    Every argument is checked before any model call; the target's range is checked
    against ``clean_output`` when given, else at the first model call.  A model in
    training mode is evaluated in eval mode (with a warning) and restored, bitwise
    (see :class:`~captum_submodular.SubmodularAttribution`); a model output with NaN or
    inf raises :class:`~captum_submodular.NonFiniteOutputError`.
    """
    if not isinstance(kind, str) or kind not in CURVE_KINDS:
        raise ValueError(f"kind must be one of {list(CURVE_KINDS)}; got {kind!r}")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {list(ORDERS)} (most / least relevant first); got {order!r}")
    xs, is_tuple, n = check_inputs(inputs)
    attrs = check_attributions(attributions, xs)
    n_steps = check_positive_int(n_steps, "n_steps")
    ppe = check_positive_int(perturbations_per_eval, "perturbations_per_eval")
    sub = check_substrate(substrate)
    output = check_output(output)
    bls = tuple(b.expand_as(x) for b, x in zip(check_baselines(baselines, xs), xs))
    masks = check_feature_mask(feature_mask, xs)
    if masks is not None:
        masks = tuple(m.expand_as(x) for m, x in zip(masks, xs))
    if sub == "mean" and not all(x.is_floating_point() for x in xs):
        raise ValueError(
            "substrate='mean' needs floating-point inputs (the mean colour of integer or bool "
            f"inputs is not a value of their dtype); got {[str(x.dtype) for x in xs]}: pass "
            "baselines=<a tensor> with substrate=None, or convert the inputs"
        )
    tgt = check_target(target, n)
    if output == "softmax" and tgt is None:
        raise ValueError("target is required with output='softmax' (the class to score)")
    afa = format_afa(additional_forward_args)
    if clean_output is not None:
        if isinstance(clean_output, Tensor) and clean_output.dim() > 0 and clean_output.shape[0] == n:
            clean_output = as_output(clean_output.detach(), n, "clean_output")
            check_finite_output(clean_output, "in clean_output", "clean_output")
            if not callable(output):
                output_scores(clean_output, tgt, output)  # the target's range, before any model call
        else:
            raise ValueError(f"clean_output must be the model output on inputs, with first dimension N = {n}")

    road = sub if isinstance(sub, RoadSubstrate) else None
    if road is not None:
        road.check(xs)
        keys = [road.example_keys(x) for x in xs]
    with torch.no_grad(), model_guard(forward_func, caller=kind):
        subs = substrate_tensors(sub, kind, xs, bls, is_tuple)
        if masks is None:
            ranks, thresholds, fractions, lengths = element_ranks(attrs, xs, n_steps, order)
        else:
            ranks, thresholds, fractions, lengths = region_ranks(attrs, xs, masks, order)
        if kind == "insertion":
            changed, kept = xs, subs  # changed elements take values from `changed`
        else:
            changed, kept = subs, xs
        p = thresholds.shape[1]

        scores = torch.zeros(n, p, dtype=torch.float64)
        clean_step = torch.zeros(n, dtype=torch.long) if kind == "deletion" else lengths - 1
        if clean_output is not None:
            clean_scores = output_scores(clean_output, tgt, output)
            check_finite_output(clean_scores, "on clean_output", "The score of the model output")
            scores[torch.arange(n), clean_step] = clean_scores.detach().cpu().double()
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
            for j, (r, a, b) in enumerate(zip(ranks, changed, kept)):
                ex_d = ex_c.to(r.device)
                thr = thr_c.to(r.device).view(-1, *([1] * (r.dim() - 1)))
                if road is None:
                    composed.append(torch.where(r[ex_d] < thr, a[ex_d], b[ex_d]))
                    continue
                # ROAD: what is not shown (the changed elements of a deletion, the not yet
                # inserted ones of an insertion) is imputed from what is shown.
                changed_here = r[ex_d] < thr
                if changed_here.shape[1] != 1:
                    if not (changed_here == changed_here[:, :1]).all():
                        raise ValueError(
                            "substrate='road' imputes whole pixels: feature_mask must be the same "
                            "on every channel (e.g. 1x1xHxW)"
                        )
                    changed_here = changed_here[:, :1]
                shown = ~changed_here if kind == "deletion" else changed_here
                composed.append(
                    road.compose(xs[j][ex_d], shown, bls[j][ex_d], [keys[j][i] for i in ex_c.tolist()], st_c.tolist())
                )
            out = as_output(forward_func(*composed, *rows_afa(afa, ex_c, n)), ex_c.numel())
            where = (
                f"at {kind} curve step(s) {sorted(set(st_c.tolist()))[:8]} of example(s) "
                f"{sorted(set(ex_c.tolist()))[:8]}"
            )
            check_finite_output(out, where)
            row_scores = output_scores(out, rows_target(tgt, ex_c), output)
            check_finite_output(row_scores, where, "The score of the model output")
            scores[ex_c, st_c] = row_scores.detach().cpu().double()

        # Pad (region mode) by repeating the final real point.
        last = scores.gather(1, (lengths - 1)[:, None])
        scores = torch.where(steps < lengths[:, None], scores, last)
        fractions = torch.where(steps < lengths[:, None], fractions, torch.ones_like(fractions))
        area = curve_area(fractions, scores)
    return CurveResult(area=area, fractions=fractions, scores=scores, lengths=lengths.clone(), kind=kind)


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
    substrate : None, {"baseline", "blur", "rise", "mean", "road"}, RoadSubstrate or callable
        See :mod:`captum_submodular.metrics.substrates`.
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
    order : {"morf", "lerf"}
        ``"morf"`` (default): the most relevant elements first; ``"lerf"``: the least
        relevant first (ROAD's second order; a faithful map keeps a LeRF deletion
        curve high).

    Returns
    -------
    Tensor of shape ``(N,)`` (CPU, float64), or :class:`CurveResult` when
    ``return_curves=True``.

    Raises
    ------
    ValueError
        Before any model call, naming the argument: an attribution shape
        mismatch or NaN, ``n_steps < 1``, an unknown substrate preset (or
        ``"mean"`` on integer inputs), a mask that is not an integer tensor
        broadcastable to the inputs, baselines that are not finite or not
        representable in the inputs' dtype, a target that is not an integer
        class index, a list where a tuple is expected, an empty batch.  At the
        first model call (before any with ``clean_output``): a target out of
        range (negative indices count from the end, as in Captum) or an output
        that does not fit ``output``.
    NonFiniteOutputError
        When the model output contains NaN or inf (the message says where).

    The model is evaluated in eval mode and restored exactly (a model in
    training mode gets a warning); see
    :class:`~captum_submodular.SubmodularAttribution`.
"""


def _curve_metric(kind: str, summary: str) -> Callable[..., Union[Tensor, CurveResult]]:
    """The Captum-style free function of one curve (:func:`insertion`, :func:`deletion`)."""

    def metric(
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
        order: str = "morf",
    ) -> Union[Tensor, CurveResult]:
        res = perturbation_curves(
            forward_func, inputs, attributions, kind, target, baselines,
            additional_forward_args, feature_mask=feature_mask, n_steps=n_steps,
            substrate=substrate, output=output, perturbations_per_eval=perturbations_per_eval,
            clean_output=clean_output, show_progress=show_progress, order=order,
        )  # fmt: skip
        return res if return_curves else res.area

    metric.__name__ = metric.__qualname__ = kind
    metric.__doc__ = summary + _COMMON_DOC
    return metric


insertion = _curve_metric(
    "insertion",
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
""",
)

deletion = _curve_metric(
    "deletion",
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
""",
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
    The parameters not listed below are those of :func:`insertion` (``output`` is fixed to
    softmax).
    **Higher is better** (``METRICS["highest_confidence"].higher_is_better``).

    Cost: that of :func:`insertion`, ``N * (K + 1)`` forward rows
    (``N * (m + 1)`` in region mode).

    Parameters
    ----------
    target : int, list or Tensor
        The true class(es); required.
    budgets : sequence of float
        Fractions ``rho >= 0`` of the input that may be revealed.

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

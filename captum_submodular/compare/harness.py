"""The harness: explain every example with every method, then score all maps with one protocol.

See :mod:`captum_submodular.compare` for the protocol.
"""

from __future__ import annotations

import inspect
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._model_state import model_guard
from ..counting import count_evaluations
from ..metrics import METRICS, Faithfulness, Metric, resolve_metrics
from .result import Comparison

__all__ = ["Method", "compare", "explain_one", "to_input_shape"]


@dataclass
class Method:
    """One attribution method of a comparison.

    Attributes
    ----------
    name:
        Unique label (table row, legend, JSON key).
    attribution:
        A Captum attribution instance (``Occlusion(model)``,
        ``LayerGradCam(model, layer)``, ``SubmodularAttribution(model)`` …).
    kwargs:
        Keyword arguments of every ``attribute`` call (``target`` is set by the
        harness).
    kwargs_fn:
        Optional ``kwargs_fn(i, x_i) -> dict`` for per-example arguments (e.g. a
        SLIC ``feature_mask``); ``i`` is the example index and ``x_i`` its
        ``1×…`` input. Merged over ``kwargs``.
    postprocess:
        Optional callable applied to the raw ``attribute`` output (e.g.
        ``torch.abs``) before it is brought to the input's shape.
    """

    name: str
    attribution: Any
    kwargs: dict[str, Any] | None = None
    kwargs_fn: Callable[[int, Tensor], dict[str, Any]] | None = None
    postprocess: Callable[[Any], Any] | None = None

    def call_kwargs(self, i: int, x_i: Tensor) -> dict[str, Any]:
        kw = dict(self.kwargs or {})
        if self.kwargs_fn is not None:
            extra = self.kwargs_fn(i, x_i)
            if not isinstance(extra, Mapping):
                raise ValueError(f"methods: kwargs_fn of {self.name!r} must return a dict, got {type(extra).__name__}")
            kw.update(extra)
        return kw


def to_input_shape(attribution: Any, x: Tensor, name: str = "method") -> Tensor:
    """Bring one example's map to ``x``'s shape (``1×C×…``) or ``1×1×…``.

    * a 1-tuple is unpacked; an ``H×W`` or ``1×H×W`` map of an ``N×C×H×W`` input
      gains the missing axes;
    * a map whose spatial shape differs is upsampled with
      ``LayerAttribution.interpolate`` (bilinear for 2-D, linear / trilinear
      for 1-D / 3-D);
    * a channel count other than the input's or 1 is summed to one channel.
    """
    from captum.attr import LayerAttribution

    if isinstance(attribution, (tuple, list)):
        if len(attribution) != 1:
            raise ValueError(f"methods: {name!r} returned {len(attribution)} tensors; expected one")
        attribution = attribution[0]
    if not isinstance(attribution, Tensor):
        raise ValueError(f"methods: {name!r} returned {type(attribution).__name__}; expected a tensor")
    a = attribution.detach()
    if not a.is_floating_point():
        a = a.float()
    if tuple(a.shape) == tuple(x.shape):
        return a
    if x.dim() < 3:
        raise ValueError(f"methods: {name!r} returned shape {tuple(a.shape)} for an input of shape {tuple(x.shape)}")
    spatial = tuple(x.shape[2:])
    while a.dim() < x.dim():
        a = a.unsqueeze(0)
    if a.dim() != x.dim() or a.shape[0] != 1:
        raise ValueError(
            f"methods: {name!r} returned shape {tuple(attribution.shape)}, which cannot be brought to "
            f"the input shape {tuple(x.shape)}"
        )
    if tuple(a.shape[2:]) != spatial:
        mode = {1: "linear", 2: "bilinear", 3: "trilinear"}.get(len(spatial))
        if mode is None:
            raise ValueError(f"methods: cannot upsample {name!r}'s map to {spatial}")
        a = LayerAttribution.interpolate(a, spatial, interpolate_mode=mode)
    if a.shape[1] not in (1, x.shape[1]):
        a = a.sum(dim=1, keepdim=True)
    return a


def _check_methods(methods: Any) -> list[Method]:
    if not isinstance(methods, (list, tuple)) or len(methods) == 0:
        raise ValueError("methods must be a non-empty list of Method; got an empty or non-list value")
    seen = set()
    for m in methods:
        if not isinstance(m, Method):
            raise ValueError(f"methods must hold Method instances; got {type(m).__name__}")
        if not isinstance(m.name, str) or not m.name:
            raise ValueError(f"methods: every Method needs a non-empty name; got {m.name!r}")
        if m.name in seen:
            raise ValueError(f"methods: duplicate method name {m.name!r}")
        seen.add(m.name)
        if not callable(getattr(m.attribution, "attribute", None)):
            raise ValueError(f"methods: {m.name!r} has no attribute() method; expected a Captum attribution")
    return list(methods)


def _check_metrics(metrics: Any, labels: Any) -> tuple[list[Metric], list[Metric]]:
    """The curve metrics asked for, and the label metrics (asked for, or implied by ``labels``)."""
    chosen = resolve_metrics(metrics)
    label_metrics = [m for m in chosen if m.explains == "label"]
    if label_metrics and labels is None:
        raise ValueError(f"labels: the {label_metrics[0].name} metric needs the true labels (labels=...)")
    if labels is not None:
        label_metrics = [m for m in METRICS.values() if m.explains == "label"]
    return [m for m in chosen if m.explains != "label"], label_metrics


def _example_baselines(baselines: Any, i: int, n: int) -> Any:
    if isinstance(baselines, Tensor) and baselines.dim() > 0 and baselines.shape[0] == n and n > 1:
        return baselines[i : i + 1]
    return baselines


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def explain_one(
    method: Method, inputs: Tensor, i: int, target: Any, baselines: Any = None
) -> tuple[Tensor, int, float]:
    """Explain example ``i`` of ``inputs`` with ``method`` for ``target`` (one ``attribute`` call).

    ``baselines`` go to a method whose ``attribute`` accepts them unless its kwargs set
    some; a method with ``show_progress`` gets ``False``.  Returns the map brought to the
    example's shape (:func:`to_input_shape`, on the CPU), the evaluations (input rows the
    method's forward functions saw) and the seconds of the call.
    """
    n = int(inputs.shape[0])
    x_i = inputs[i : i + 1]
    kw = method.call_kwargs(i, x_i)
    if baselines is not None and "baselines" not in kw and _accepts(method.attribution.attribute, "baselines"):
        kw["baselines"] = _example_baselines(baselines, i, n)
    kw["target"] = target
    if "show_progress" not in kw and _accepts(method.attribution.attribute, "show_progress"):
        kw["show_progress"] = False  # the harness shows one bar of its own
    with count_evaluations(method.attribution) as counter:
        start = time.perf_counter()
        raw = method.attribution.attribute(x_i, **kw)
        elapsed = time.perf_counter() - start
    if method.postprocess is not None:
        raw = method.postprocess(raw)
    return to_input_shape(raw, x_i, method.name).cpu(), counter.rows, elapsed


def compare(
    model: Callable[..., Tensor],
    inputs: Tensor,
    targets: Any,
    methods: Sequence[Method],
    *,
    baselines: Any = None,
    metrics: Sequence[str] = ("insertion", "deletion"),
    n_steps: int = 50,
    substrate: Any = None,
    labels: Any = None,
    names: Sequence[str] | None = None,
    output: str | Callable[..., Any] = "softmax",
    perturbations_per_eval: int = 64,
    show_progress: bool = True,
) -> Comparison:
    r"""Explain every example with every method and score the maps with one protocol.

    Parameters
    ----------
    model:
        The classifier (``N×…`` in, ``N×classes`` logits out); used for the
        clean predictions and the metrics. The methods hold their own
        references (normally the same model).
    inputs:
        ``N×C×H×W`` batch (any ``N×…`` tensor works when no layer maps or
        figure are needed).
    targets:
        Class explained per example: an int, a list / tensor of ``N`` ints, or
        ``None`` for the clean predicted class.
    methods:
        Non-empty list of :class:`Method` with unique names.
    baselines:
        Captum forms (``None`` → 0, scalar, tensor of one example or the
        batch): the metrics' substrate, also passed to methods that accept
        ``baselines`` and do not set them.
    metrics:
        Names from :data:`captum_submodular.metrics.METRICS` (``"insertion"``,
        ``"deletion"``, ``"insertion_blur"``, ``"highest_confidence"``, …).  Metrics
        that explain the true class (highest confidence) are computed whenever
        ``labels`` are given.
    n_steps:
        Steps ``K`` of the pixel-mode curves.
    substrate:
        Substrate of the metrics without a fixed one (see
        :mod:`captum_submodular.metrics`); ``"insertion_blur"`` always uses the blur.
    labels:
        True labels (int list/tensor of ``N``); enables highest confidence on
        the misclassified examples.
    names:
        Example names for the table files and figure.
    output:
        Score of the metrics (``"softmax"`` of the target by default).
    perturbations_per_eval:
        Rows per model call of the clean pass and the metrics.
    show_progress:
        tqdm bar over methods × examples, then over methods × metrics.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        Naming the argument, for an empty method list, duplicate method names,
        an unknown metric, bad targets / labels, or missing labels for
        highest confidence.
    """
    methods = _check_methods(methods)
    curve_metrics, label_metrics = _check_metrics(metrics, labels)
    if not isinstance(inputs, Tensor) or inputs.dim() < 2 or inputs.shape[0] == 0:
        raise ValueError(
            f"inputs must be a non-empty N×… tensor; got {getattr(inputs, 'shape', type(inputs).__name__)}"
        )
    n = int(inputs.shape[0])
    if names is not None and len(names) != n:
        raise ValueError(f"names must have one entry per example ({n}); got {len(names)}")
    if any(m.substrate == "blur" for m in curve_metrics) and (inputs.dim() != 4 or min(inputs.shape[-2:]) <= 5):
        raise ValueError(f"metrics: insertion_blur needs N×C×H×W images with H, W > 5; got {tuple(inputs.shape)}")
    inputs = inputs.detach()
    # Clean predictions: one pass, reused by every metric.
    bound = Faithfulness(
        model,
        inputs,
        targets,
        baselines,
        labels=labels,
        n_steps=n_steps,
        substrate=substrate,
        output=output,
        perturbations_per_eval=perturbations_per_eval,
    )
    target_list = bound.targets
    hc_examples = bound.misclassified if label_metrics else []

    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(methods) * (n + len(hc_examples)), desc="compare", unit="expl", file=sys.stderr)

    values: dict[str, dict[str, np.ndarray]] = {}
    maps: dict[str, Tensor] = {}
    label_maps: dict[str, Tensor] = {}
    # Every method runs with the model in eval mode, its modes and buffers restored afterwards
    # (Captum's own methods do not guard the model; ours does).
    with model_guard(model, *[m.attribution for m in methods], caller="compare"):
        try:
            for method in methods:
                evals = np.zeros(n)
                secs = np.zeros(n)
                per_example: list[Tensor] = []

                for i in range(n):
                    if bar is not None:
                        bar.set_postfix_str(f"{method.name} #{i}")
                    a, evals[i], secs[i] = explain_one(method, inputs, i, target_list[i], baselines)
                    per_example.append(a)
                    if bar is not None:
                        bar.update(1)
                shapes = {tuple(a.shape) for a in per_example}
                if len(shapes) > 1:
                    per_example = [a.sum(dim=1, keepdim=True) if a.dim() > 2 else a for a in per_example]
                maps[method.name] = torch.cat(per_example)
                values[method.name] = {"evaluations": evals, "seconds": secs}
                # Label metrics score a map of the TRUE class; its extra call is not counted.
                rows = []
                for i in hc_examples:
                    same = bound.labels[i] == target_list[i]
                    if same:
                        rows.append(maps[method.name][i : i + 1])
                    else:
                        rows.append(explain_one(method, inputs, i, bound.labels[i], baselines)[0])
                    if bar is not None:
                        bar.update(1)
                if rows:
                    label_maps[method.name] = torch.cat(rows)
        finally:
            if bar is not None:
                bar.close()

    # Metrics: batched over examples, clean output reused.
    curves: dict[str, dict[str, Any]] = {m.name: {} for m in methods}
    budgeted: dict[str, dict[str, np.ndarray]] = {m.name: {} for m in methods}
    jobs = len(methods) * (len(curve_metrics) + (len(label_metrics) if hc_examples else 0))
    bar = None
    if show_progress and jobs:
        from tqdm.auto import tqdm

        bar = tqdm(total=jobs, desc="metrics", unit="curve", file=sys.stderr)
    try:
        for method in methods:
            cache: dict[str, Any] = {}  # derived metrics reuse their components' results
            for metric in curve_metrics + label_metrics:
                if metric.explains == "label":
                    if not hc_examples:
                        budgeted[method.name][metric.name] = np.zeros((0, len(metric.columns)))
                        continue
                    res = bound.evaluate(metric, label_maps[method.name], hc_examples)
                else:
                    res = bound.evaluate(metric, maps[method.name], cache=cache)
                if res.curves is not None:
                    curves[method.name][metric.name] = res.curves
                if metric.kind != "budgeted" and metric.explains != "label":
                    values[method.name][metric.name] = res.values[:, 0]
                else:
                    budgeted[method.name][metric.name] = res.values
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()

    return Comparison(
        methods=[m.name for m in methods],
        metrics=[m.name for m in curve_metrics],
        values=values,
        budgeted=budgeted if label_metrics else {},
        hc_examples=list(hc_examples),
        curves=curves,
        maps=maps,
        inputs=inputs.cpu(),
        targets=target_list,
        labels=bound.labels,
        predictions=bound.predictions,
        names=list(names) if names is not None else [f"example {i}" for i in range(n)],
        target_probabilities=torch.softmax(bound.clean.double(), dim=1)[
            torch.arange(n), torch.tensor(target_list).to(bound.clean.device)
        ]
        .cpu()
        .tolist(),
        n_steps=n_steps,
        substrate=substrate if isinstance(substrate, str) or substrate is None else "callable",
    )

"""The metric registry and :class:`Faithfulness`, metrics bound to one model and batch.

Every metric is declared once, as a :class:`Metric` in :data:`METRICS`: its name, its
function, its direction, the curve it reads, a fixed substrate if it has one, which
class it explains, and its table header.  The comparison harness, the dataset runner,
the per-image pipeline and the command line all loop over :data:`METRICS`, so a new
metric is one :func:`register_metric` call plus its function.

:class:`Faithfulness` (Xplique's shape) binds ``(model, inputs, targets)`` once: the
clean outputs are computed once and reused by every metric and every map it scores.

>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).eval()
>>> images = torch.rand(2, 3, 4, 4)
>>> bound = Faithfulness(model, images, targets=None, n_steps=4)   # targets=None: the predictions
>>> maps = torch.rand(2, 3, 4, 4)                                   # any attribution shaped like the inputs
>>> bound.evaluate("insertion", maps).values.shape                  # one area per example
(2, 1)
>>> sorted(bound.score(maps, ("insertion", "deletion")))
['deletion', 'insertion']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

from .._inputs import (
    as_output,
    check_baselines,
    check_class_list,
    check_finite_output,
    check_inputs,
    check_positive_int,
    format_afa,
    resolve_class_list,
    rows_afa,
)
from .._model_state import model_guard
from .curves import CURVE_KINDS, CurveResult, check_output, deletion, highest_confidence, insertion, output_scores
from .substrates import check_substrate

__all__ = [
    "Metric",
    "MetricInfo",
    "MetricResult",
    "METRICS",
    "register_metric",
    "resolve_metrics",
    "Faithfulness",
    "HC_BUDGETS",
]

#: Reveal budgets of the highest-confidence metric.
HC_BUDGETS: Tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class MetricResult:
    """What one metric gives for the examples it scored.

    ``values`` is ``n×len(metric.columns)`` (one area per example for a curve metric,
    one value per budget for a budgeted one), ``examples`` the indices of the scored
    examples in the bound batch, ``curves`` the underlying curves (``None`` for a
    derived metric).
    """

    metric: Metric
    values: np.ndarray
    examples: List[int]
    curves: Optional[CurveResult]


@dataclass(frozen=True)
class Metric:
    """One faithfulness metric, declared once.

    Attributes
    ----------
    name:
        Registry key, also the column key of a curve metric.
    fn:
        The free function (Captum-style signature), e.g. :func:`insertion`.
    higher_is_better:
        The metric's direction, as data.
    description:
        One line for help texts and docs.
    kind:
        ``"curve"`` (one area per example), ``"budgeted"`` (one value per budget) or
        ``"derived"`` (one value per example computed from two other metrics:
        ``components[0] − components[1]``, e.g. ROAD's LeRF area − MoRF area) or ``"llm"``
        (language-model metrics of :mod:`captum_submodular.text.metrics`, registered when
        that module is imported; ``fn(scorer, attributions)`` with an ``LLMScorer``).
    curve:
        The perturbation curve it reads: ``"insertion"`` or ``"deletion"``.
    substrate:
        A fixed substrate (``"blur"`` for blurred insertion, ``"road"`` for ROAD's
        imputation), or ``None`` for the substrate the caller gives.
    order:
        ``"morf"`` (most relevant first) or ``"lerf"`` (least relevant first).
    label:
        Table header.
    title:
        Plot title (e.g. ``"Blurred insertion"``).
    explains:
        ``"target"`` (the explained class) or ``"label"`` (the true class, on the
        misclassified examples only, with a map of the true class).
    budgets, short:
        Budgeted metrics: the budgets and the short name of their columns
        (``f"{short}@{budget:g}"``).
    components:
        Derived metrics: the two metrics whose difference this is.
    """

    name: str
    fn: Callable[..., Any]
    higher_is_better: bool
    description: str = ""
    kind: str = "curve"
    curve: str = "insertion"
    substrate: Optional[str] = None
    label: str = ""
    title: str = ""
    explains: str = "target"
    budgets: Tuple[float, ...] = ()
    short: str = ""
    order: str = "morf"
    components: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("curve", "budgeted", "derived", "llm"):
            raise ValueError(
                f"Metric {self.name!r}: kind must be 'curve', 'budgeted', 'derived' or 'llm', got {self.kind!r}"
            )
        if self.kind == "derived" and len(self.components) != 2:
            raise ValueError(f"Metric {self.name!r}: a derived metric names two components")
        if self.curve not in CURVE_KINDS:
            raise ValueError(f"Metric {self.name!r}: curve must be one of {CURVE_KINDS}, got {self.curve!r}")
        if self.explains not in ("target", "label"):
            raise ValueError(f"Metric {self.name!r}: explains must be 'target' or 'label'")

    @property
    def columns(self) -> Tuple[str, ...]:
        """Column keys of this metric in tables, CSV files and records."""
        if self.kind != "budgeted":
            return (self.name,)
        return tuple(f"{self.short or self.name}@{b:g}" for b in self.budgets)

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"

    def compute(
        self,
        bound: Faithfulness,
        attributions: Tensor,
        examples: Sequence[int],
        cache: Optional[Dict[str, MetricResult]] = None,
    ) -> MetricResult:
        """Score ``attributions`` (maps of ``examples``, in that order) on the bound batch."""
        if self.kind == "llm":
            raise ValueError(
                f"metrics: {self.name} scores language-model attributions; call "
                f"METRICS[{self.name!r}].fn(LLMScorer(...), attributions) (captum_submodular.text)"
            )
        if self.kind == "derived":
            first, second = (bound.evaluate(c, attributions, examples, cache=cache) for c in self.components)
            return MetricResult(self, first.values - second.values, list(examples), None)
        idx = torch.as_tensor(list(examples), dtype=torch.long)
        targets = bound.labels if self.explains == "label" else bound.targets
        if targets is None:
            raise ValueError(f"metrics: {self.name} needs the true labels (labels=...)")
        on = idx.to(bound.inputs.device)
        common = dict(
            feature_mask=None,
            n_steps=bound.n_steps,
            substrate=self.substrate if self.substrate is not None else bound.substrate,
            perturbations_per_eval=bound.perturbations_per_eval,
            clean_output=bound.clean[on] if bound.reuse_clean_output else None,
        )
        args = (
            bound.model,
            bound.inputs[on],
            attributions,
            [targets[i] for i in examples],
            bound.baselines[on],
            rows_afa(bound.additional_forward_args, idx, bound.n),
        )
        if self.kind == "curve":
            res = self.fn(*args, output=bound.output, return_curves=True, order=self.order, **common)
            return MetricResult(self, res.area.numpy()[:, None], list(examples), res)
        hc = self.fn(*args, budgets=self.budgets, **common)
        return MetricResult(self, hc.values.numpy(), list(examples), hc.curves)


#: Registry: metric name → :class:`Metric`.
METRICS: Dict[str, Metric] = {}

#: The old name of :class:`Metric`.
MetricInfo = Metric


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to :data:`METRICS` (its name must be new) and return it."""
    if metric.name in METRICS:
        raise ValueError(f"a metric named {metric.name!r} is already registered")
    METRICS[metric.name] = metric
    return metric


register_metric(
    Metric(
        "insertion",
        insertion,
        True,
        "area under the insertion curve",
        curve="insertion",
        label="insertion ↑",
        title="Insertion",
    )
)
register_metric(
    Metric(
        "deletion",
        deletion,
        False,
        "area under the deletion curve",
        curve="deletion",
        label="deletion ↓",
        title="Deletion",
    )
)
register_metric(
    Metric(
        "insertion_blur",
        insertion,
        True,
        "area under the insertion curve from the blurred input",
        curve="insertion",
        substrate="blur",
        label="blur insertion ↑",
        title="Blurred insertion",
    )
)
register_metric(
    Metric(
        "deletion_lerf",
        deletion,
        True,
        "area under the deletion curve removing the LEAST relevant elements first",
        curve="deletion",
        order="lerf",
        label="deletion LeRF ↑",
        title="Deletion, least relevant first",
    )
)
register_metric(
    Metric(
        "deletion_combined",
        deletion,
        True,
        "deletion LeRF area − MoRF area (baseline substrate)",
        kind="derived",
        components=("deletion_lerf", "deletion"),
        label="deletion LeRF−MoRF ↑",
    )
)
register_metric(
    Metric(
        "road_morf",
        deletion,
        False,
        "ROAD: area under the deletion curve with noisy linear imputation, most relevant first",
        curve="deletion",
        substrate="road",
        label="ROAD MoRF ↓",
        title="ROAD deletion (MoRF)",
    )
)
register_metric(
    Metric(
        "road_lerf",
        deletion,
        True,
        "ROAD: area under the deletion curve with noisy linear imputation, least relevant first",
        curve="deletion",
        substrate="road",
        order="lerf",
        label="ROAD LeRF ↑",
        title="ROAD deletion (LeRF)",
    )
)
register_metric(
    Metric(
        "road_combined",
        deletion,
        True,
        "ROAD's combined score: LeRF area − MoRF area",
        kind="derived",
        components=("road_lerf", "road_morf"),
        label="ROAD LeRF−MoRF ↑",
    )
)
register_metric(
    Metric(
        "highest_confidence",
        highest_confidence,
        True,
        "max p(true class) within a reveal budget (misclassified examples)",
        kind="budgeted",
        curve="insertion",
        label="HC",
        title="True-class insertion",
        explains="label",
        budgets=HC_BUDGETS,
        short="hc",
    )
)


def resolve_metrics(names: Union[str, Sequence[str]], argument: str = "metrics") -> List[Metric]:
    """Registry entries for ``names`` (a name, a comma-separated string or a sequence), checked."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    try:
        names = list(names)
    except TypeError:
        raise ValueError(f"{argument} must be a sequence of names; got {names!r}") from None
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"{argument}: unknown metric(s) {unknown}; choose from {list(METRICS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{argument}: duplicate names in {names}")
    return [METRICS[n] for n in names]


def _one_tensor(attributions: Any) -> Tensor:
    """The maps of a :class:`Faithfulness` batch: one tensor (a 1-tuple is unpacked)."""
    if isinstance(attributions, tuple) and len(attributions) == 1:
        attributions = attributions[0]
    if not isinstance(attributions, Tensor):
        raise ValueError(f"attributions: Faithfulness scores one N×… tensor of maps; got {type(attributions).__name__}")
    return attributions


@dataclass
class Faithfulness:
    """Faithfulness metrics bound to one model and one batch.

    Parameters
    ----------
    model:
        The classifier (``N×…`` in, ``N×classes`` out).
    inputs:
        ``N×C×H×W`` batch (any ``N×…`` tensor for the curve metrics without blur).
    targets:
        The class scored per example (int, list / tensor of ``N`` ints), or ``None``
        for the clean predicted class.
    baselines:
        Captum forms; the substrate of every metric without a fixed one.
    labels:
        True labels (``N`` ints); needed by the metrics that explain the label
        (highest confidence), which score the misclassified examples only.
    n_steps, substrate, output, perturbations_per_eval, additional_forward_args:
        As in :func:`~captum_submodular.metrics.insertion`.
    reuse_clean_output:
        ``True`` (default): the clean outputs, computed once at construction in
        ``⌈N / perturbations_per_eval⌉`` model calls, are every curve's clean point.
        ``False``: each curve evaluates its clean point itself, so every area equals the
        free function's (:func:`~captum_submodular.metrics.insertion` …) to the last bit;
        costs ``N`` more rows per curve.
    """

    model: Callable[..., Tensor]
    inputs: Tensor
    targets: Any = None
    baselines: Any = None
    labels: Any = None
    n_steps: int = 50
    substrate: Any = None
    output: Union[str, Callable[..., Any]] = "softmax"
    perturbations_per_eval: int = 64
    additional_forward_args: Any = None
    reuse_clean_output: bool = True
    clean: Tensor = field(init=False, repr=False)
    predictions: List[int] = field(init=False)
    misclassified: List[int] = field(init=False)

    def __post_init__(self) -> None:
        (xs, _, self.n) = check_inputs(self.inputs)
        if len(xs) != 1:
            raise ValueError("inputs: Faithfulness takes one N×… tensor")
        self.inputs = xs[0]
        self.n_steps = check_positive_int(self.n_steps, "n_steps")
        self.perturbations_per_eval = check_positive_int(self.perturbations_per_eval, "perturbations_per_eval")
        self.substrate = None if self.substrate is None else check_substrate(self.substrate)
        if self.substrate == "mean" and not self.inputs.is_floating_point():
            raise ValueError(
                f"substrate='mean' needs floating-point inputs; got {self.inputs.dtype}: pass "
                f"baselines=<a tensor> with substrate=None, or convert the inputs"
            )
        self.output = check_output(self.output)
        self.baselines = check_baselines(self.baselines, (self.inputs,))[0].expand_as(self.inputs)
        self.additional_forward_args = format_afa(self.additional_forward_args)
        label_list = None if self.labels is None else check_class_list(self.labels, self.n, "labels")
        target_list = None if self.targets is None else check_class_list(self.targets, self.n, "targets")
        ppe = self.perturbations_per_eval
        outs = []
        with torch.no_grad(), model_guard(self.model, caller="Faithfulness"):
            for s in range(0, self.n, ppe):
                rows = torch.arange(s, min(s + ppe, self.n))
                out = as_output(
                    self.model(self.inputs[s : s + ppe], *rows_afa(self.additional_forward_args, rows, self.n)),
                    rows.numel(),
                    "model",
                )
                outs.append(out.detach())
        clean = torch.cat(outs)
        if clean.dim() != 2:
            raise ValueError(f"model must return N×classes outputs; got shape {tuple(clean.shape)}")
        if self.output == "softmax" and clean.shape[1] < 2:
            raise ValueError(
                f"output='softmax' needs class logits with 2 or more classes; the model returns shape "
                f"{tuple(clean.shape)} (use output='identity')"
            )
        check_finite_output(clean, "on the clean inputs")
        self.clean = clean
        self.predictions = clean.argmax(dim=1).cpu().tolist()
        n_classes = int(clean.shape[1])
        self.targets = (
            self.predictions[:] if target_list is None else resolve_class_list(target_list, n_classes, "targets")
        )
        label_list = None if label_list is None else resolve_class_list(label_list, n_classes, "labels")
        self.labels = label_list
        self.misclassified = (
            [] if label_list is None else [i for i in range(self.n) if label_list[i] != self.predictions[i]]
        )

    @property
    def target_scores(self) -> List[float]:
        """Clean score of each example's target (softmax probability by default)."""
        return output_scores(self.clean.double(), torch.tensor(self.targets), self.output).cpu().tolist()

    def examples_for(self, metric: Union[str, Metric]) -> List[int]:
        """The examples ``metric`` scores: all, or the misclassified ones for label metrics."""
        metric = METRICS[metric] if isinstance(metric, str) else metric
        return list(self.misclassified) if metric.explains == "label" else list(range(self.n))

    def evaluate(
        self,
        metric: Union[str, Metric],
        attributions: Tensor,
        examples: Optional[Sequence[int]] = None,
        *,
        cache: Optional[Dict[str, MetricResult]] = None,
    ) -> MetricResult:
        """Score maps with one metric.

        ``attributions`` holds the maps of ``examples`` (default
        :meth:`examples_for`), in that order, shaped like the inputs (or with one
        channel).  For a label metric they must explain the true class.  ``cache``
        (a dict, for one set of maps) keeps each metric's result, so a derived metric
        reuses the components already computed and the other way round.
        """
        metric = resolve_metrics([metric])[0] if isinstance(metric, str) else metric
        examples = self.examples_for(metric) if examples is None else [int(i) for i in examples]
        if metric.explains == "label" and self.labels is None:
            raise ValueError(f"labels: the {metric.name} metric needs the true labels (labels=...)")
        attrs = _one_tensor(attributions).to(self.inputs.device)
        if attrs.shape[0] != len(examples):
            raise ValueError(f"attributions: expected {len(examples)} map(s) for {metric.name}, got {attrs.shape[0]}")
        if cache is not None and metric.name in cache:
            return cache[metric.name]
        result = metric.compute(self, attrs, examples, cache)
        if cache is not None:
            cache[metric.name] = result
        return result

    def score(
        self,
        attributions: Tensor,
        metrics: Sequence[str] = ("insertion", "deletion"),
        label_attributions: Optional[Tensor] = None,
    ) -> Dict[str, MetricResult]:
        """Every metric of ``metrics`` on the maps of all ``N`` examples.

        Label metrics use ``label_attributions`` (maps of the true class of the
        misclassified examples, in :attr:`misclassified` order) when given, else the
        rows of ``attributions`` of those examples.
        """
        out: Dict[str, MetricResult] = {}
        caches: Dict[str, Dict[str, MetricResult]] = {"target": {}, "label": {}}
        attributions = _one_tensor(attributions)
        for metric in resolve_metrics(metrics):
            examples = self.examples_for(metric)
            if metric.explains == "label" and label_attributions is not None:
                maps = label_attributions
            else:
                maps = attributions[torch.as_tensor(examples, dtype=torch.long)]
            out[metric.name] = self.evaluate(metric, maps, examples, cache=caches[metric.explains])
        return out

"""The per-image pipeline behind ``explain``, ``explain-dataset`` and the demo.

:func:`explain_image` takes one image through every step:

1. ``x = preprocess(image)[None]`` and one forward: the predicted class;
2. the target: the prediction, the image's label, or a fixed class;
3. the regions: :func:`captum_submodular.regions.build_regions` (or a callable);
4. :meth:`SubmodularAttribution.explain` with the configured search and weights;
5. optionally Captum's ``Occlusion`` at its tutorial settings, for comparison;
6. the metrics of :data:`captum_submodular.metrics.METRICS` named in the config, on
   every map (each area equals the metric function's on that map).

It returns an :class:`ImageExplanation`; the command line's JSON
(:meth:`ImageExplanation.to_json`) and the dataset runner's Parquet records
(:func:`captum_submodular.dataset.records.record_from_explanation`) are both built from
it, so they cannot drift apart.  Every output states its evaluation counts by kind
(classification, search, metrics, Occlusion).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from .counting import CountingForward
from .metrics import METRICS, CurveResult, Faithfulness, resolve_metrics
from .regions import REGION_BUILDERS, build_regions, describe_regions
from .search import DEFAULT_SEARCH, get_search

__all__ = [
    "ExplainConfig",
    "MethodRun",
    "ImageExplanation",
    "explain_image",
    "OCCLUSION_WINDOW",
    "OCCLUSION_STRIDES",
    "check_curve_metrics",
    "RegionCountError",
]


class RegionCountError(ValueError):
    """The regions built for an image are too few or too many for the search.

    ``count`` is what the builder gave, ``requested`` the ``n_regions`` asked for,
    ``limit`` the search's maximum and ``search`` its name; the command line words the
    message in its flags.
    """

    def __init__(self, count: int, requested: int, limit: int, search: str, regions: str) -> None:
        self.count, self.requested, self.limit, self.search, self.regions = count, requested, limit, search, regions
        if count < 2:
            why = "a subset search needs at least 2 (is the image uniform?); ask for more regions or a grid"
        else:
            why = f"more than the {limit:,} that search {search!r} takes; ask for fewer regions or another search"
        super().__init__(f"the {regions} regions of this image are {count} (n_regions={requested}): {why}")


#: Captum's Occlusion tutorial settings (ImageNet models).
OCCLUSION_WINDOW = (3, 15, 15)
OCCLUSION_STRIDES = (3, 8, 8)

RegionsSpec = Union[str, Callable[[Tensor, Any, int], Tensor]]


def check_curve_metrics(metrics: Sequence[str], argument: str = "metrics") -> Tuple[str, ...]:
    """Names of registered curve metrics that score the explained class (checked)."""
    specs = resolve_metrics(list(metrics), argument)
    bad = [m.name for m in specs if m.kind != "curve" or m.explains != "target"]
    if bad:
        usable = [m.name for m in METRICS.values() if m.kind == "curve" and m.explains == "target"]
        raise ValueError(f"{argument}: {bad} cannot be recorded per image; choose from {usable}")
    return tuple(m.name for m in specs)


@dataclass(frozen=True)
class ExplainConfig:
    """Settings of :func:`explain_image` (shared by ``demo``, ``explain`` and ``explain-dataset``).

    Attributes
    ----------
    search, weights:
        Passed to :class:`~captum_submodular.SubmodularAttribution`.
    regions:
        A :data:`~captum_submodular.regions.REGION_BUILDERS` name, or a callable
        ``regions(x, loaded_model, target) -> feature_mask``.
    n_regions, grid, compactness:
        Passed to :func:`~captum_submodular.regions.build_regions`.
    target:
        ``"predicted"`` (default), ``"label"`` (the image's label) or a class index.
    metrics:
        Curve metrics of :data:`~captum_submodular.metrics.METRICS` to record for every
        map (``()`` for none).
    n_steps:
        Steps of the pixel-grid metric curves.
    perturbations_per_eval:
        Most perturbed inputs per model call (search, Occlusion and metrics); ``None``
        (default): automatic, :func:`captum_submodular.attribution.auto_perturbations_per_eval`.
    baselines:
        The value that means "absent" (model input space), for the search and the metrics.
    occlusion:
        Also run Captum's Occlusion (window 3×15×15, stride 3×8×8) for comparison.
    show_progress:
        Progress bars for the search and Occlusion.
    """

    search: Any = DEFAULT_SEARCH
    weights: Any = None
    regions: RegionsSpec = "slic"
    n_regions: int = 49
    grid: Optional[int] = None
    compactness: float = 10.0
    target: Union[str, int] = "predicted"
    metrics: Tuple[str, ...] = ("insertion", "deletion")
    n_steps: int = 50
    perturbations_per_eval: Optional[int] = None
    baselines: float = 0.0
    occlusion: bool = False
    show_progress: bool = False

    def __post_init__(self) -> None:
        # Everything that needs no model is checked here, before any model is loaded.
        if isinstance(self.regions, str):
            if self.regions not in REGION_BUILDERS:
                raise ValueError(f"regions must be one of {sorted(REGION_BUILDERS)}, got {self.regions!r}")
        elif not callable(self.regions):
            raise ValueError("regions must be a region kind or a callable (x, loaded_model, target) -> mask")
        for name in ("n_steps", "perturbations_per_eval"):
            value = getattr(self, name)
            if value is None and name == "perturbations_per_eval":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if isinstance(self.n_regions, bool) or not isinstance(self.n_regions, int) or self.n_regions < 2:
            raise ValueError(
                f"n_regions must be an int ≥ 2 (a subset search needs two regions), got {self.n_regions!r}"
            )
        if self.grid is not None and (not isinstance(self.grid, int) or self.grid < 1):
            raise ValueError(f"grid must be None or an int ≥ 1, got {self.grid!r}")
        if not (
            self.target in ("predicted", "label")
            or (isinstance(self.target, int) and not isinstance(self.target, bool) and self.target >= 0)
        ):
            raise ValueError(f"target must be 'predicted', 'label' or a class index ≥ 0, got {self.target!r}")
        object.__setattr__(self, "metrics", check_curve_metrics(self.metrics))
        get_search(self.search)

    @property
    def regions_name(self) -> str:
        """``"slic:49"``-style description of the regions setting."""
        if isinstance(self.regions, str):
            return f"{self.regions}:{self.n_regions}"
        return f"callable:{getattr(self.regions, '__name__', None) or type(self.regions).__name__}"

    @property
    def search_name(self) -> str:
        return self.search if isinstance(self.search, str) else type(self.search).__name__


@dataclass
class MethodRun:
    """One attribution method on one image, with its metric curves."""

    method: str
    attributions: Tensor  # 1×C×H×W, on the CPU
    seconds: float
    n_evaluations: int
    curves: Dict[str, CurveResult] = field(default_factory=dict)

    def area(self, metric: str) -> float:
        return float(self.curves[metric].area[0]) if metric in self.curves else float("nan")


@dataclass
class ImageExplanation:
    """Everything :func:`explain_image` found for one image.

    Attributes
    ----------
    name:
        The image's name (file stem, bundled name or dataset id).
    x:
        The preprocessed input, ``1×C×H×W`` on the CPU.
    probabilities:
        Softmax of the clean output, ``(classes,)``.
    target, target_source, predicted, label:
        The explained class, where it came from (``"predicted"``, ``"label"``,
        ``"fixed"``), the predicted class and the label (or ``None``).
    mask, regions, regions_description:
        The feature mask (``1×1×H×W``, CPU), its setting and a description.
    result:
        The :class:`~captum_submodular.SubmodularResult`.
    submodular, occlusion:
        The runs of the two methods (Occlusion only when configured).
    evaluations:
        Model evaluations by kind: ``classification``, ``search``, ``metrics``
        and ``occlusion`` (when run); ``total`` sums them.
    seconds:
        Wall time of the whole image.
    image_size:
        ``(width, height)`` of the image before the model's preprocessing (which may
        resize and crop it: ``x`` is what the model saw).
    """

    name: str
    x: Tensor
    probabilities: Tensor
    target: int
    target_source: str
    predicted: int
    label: Optional[int]
    mask: Tensor
    regions: str
    regions_description: str
    search: str
    result: Any
    submodular: MethodRun
    occlusion: Optional[MethodRun]
    metrics: Tuple[str, ...]
    n_steps: int
    evaluations: Dict[str, int]
    seconds: float
    image_size: Optional[Tuple[int, int]] = None

    @property
    def runs(self) -> List[MethodRun]:
        return [self.submodular] + ([self.occlusion] if self.occlusion is not None else [])

    @property
    def minimal_subset_score(self) -> float:
        return float(self.result.insertion_curve[self.result.minimal_subset_size])

    def to_json(self, class_names: Sequence[str] = (), model_name: str = "") -> Dict[str, Any]:
        """The command line's JSON record (plain Python; see the ``explain`` help for the fields)."""
        names = list(class_names)

        def cname(i: Optional[int]) -> Optional[str]:
            return None if i is None else (names[i] if 0 <= i < len(names) else str(i))

        def method(run: MethodRun) -> Dict[str, Any]:
            rec: Dict[str, Any] = {"n_evaluations": run.n_evaluations, "seconds": run.seconds}
            for metric, c in run.curves.items():
                key = (
                    "insertion_auc"
                    if metric == "insertion"
                    else "deletion_auc"
                    if metric == "deletion"
                    else f"{metric}_auc"
                )
                rec[key] = float(c.area[0])
                rec[f"{metric}_curve"] = {"fractions": c.fractions[0].tolist(), "scores": c.scores[0].tolist()}
            return rec

        r = self.result
        sub = method(self.submodular)
        sub.update(
            {
                "search": self.search,
                "order": r.order.tolist(),
                "region_ids": r.region_ids.tolist(),
                "region_values": r.region_values.tolist(),
                "minimal_subset": r.minimal_subset.tolist(),
                "minimal_subset_size": r.minimal_subset_size,
                "minimal_subset_score": self.minimal_subset_score,
                "threshold": r.threshold,
                "search_insertion_curve": r.insertion_curve.tolist(),
                "search_deletion_curve": r.deletion_curve.tolist(),
                "objective_values": r.objective_values.tolist(),
            }
        )
        record: Dict[str, Any] = {
            "name": self.name,
            "model": model_name,
            "input_shape": list(self.x.shape[1:]),
            "image_size": None if self.image_size is None else list(self.image_size),
            "target": self.target,
            "target_source": self.target_source,
            "class_name": cname(self.target),
            "probability": float(self.probabilities[self.target]),
            "predicted": self.predicted,
            "predicted_name": cname(self.predicted),
            "label": self.label,
            "label_name": cname(self.label),
            "regions": {
                "kind": self.regions.split(":")[0],
                "n_regions": int(r.region_ids.numel()),
                "description": self.regions_description,
            },
            "methods": {"SubmodularAttribution": sub},
            "metric_protocol": (
                {
                    "kind": "pixel grid",
                    "metrics": list(self.metrics),
                    "n_steps": self.n_steps,
                    "baseline": 0.0,
                    "output": "softmax",
                }
                if self.metrics
                else None
            ),
            "n_evaluations": dict(self.evaluations),
            "seconds": self.seconds,
        }
        if self.occlusion is not None:
            record["methods"]["Occlusion"] = dict(
                method(self.occlusion),
                sliding_window_shapes=list(OCCLUSION_WINDOW),
                strides=list(OCCLUSION_STRIDES),
                baselines=0.0,
            )
        return _finite(record)


def _finite(value: Any) -> Any:
    """NaN / inf → ``None`` so the JSON is valid."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _occlusion(model: Any, x: Tensor, target: int, cfg: ExplainConfig, ppe: int) -> MethodRun:
    from captum.attr import Occlusion

    # Captum's own bar counts something else than model inputs; count them ourselves.
    total = 1 + math.prod(
        math.ceil((size - w) / s) + 1 for size, w, s in zip(x.shape[1:], OCCLUSION_WINDOW, OCCLUSION_STRIDES)
    )
    forward = CountingForward(model, progress="Occlusion" if cfg.show_progress else None, total=total)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            attrs = Occlusion(forward).attribute(
                x,
                sliding_window_shapes=OCCLUSION_WINDOW,
                strides=OCCLUSION_STRIDES,
                baselines=cfg.baselines,
                target=target,
                perturbations_per_eval=ppe,
            )
    finally:
        forward.close()
    return MethodRun("Occlusion", attrs.detach().cpu(), time.perf_counter() - start, forward.rows)


def explain_image(
    loaded: Any,
    image: Any,
    config: ExplainConfig = ExplainConfig(),
    *,
    name: str = "",
    label: Optional[int] = None,
    explainer: Any = None,
    log: Callable[[str], None] = lambda message: None,
) -> ImageExplanation:
    """Explain one image (steps in the module docstring).

    Parameters
    ----------
    loaded:
        A :class:`~captum_submodular.models.LoadedModel`-like object: ``.model`` and
        ``.preprocess`` (PIL image → ``C×H×W`` tensor); ``.class_names`` for the log.
    image:
        A PIL image.
    config:
        :class:`ExplainConfig`.
    name, label:
        The image's name and label (``None`` when unknown).
    explainer:
        A :class:`~captum_submodular.SubmodularAttribution` to reuse across images
        (default: built from ``config``).
    log:
        Called with one line on the explained class.
    """
    from .attribution import NonFiniteOutputError, SubmodularAttribution, auto_perturbations_per_eval

    start = time.perf_counter()
    model = loaded.model
    x = loaded.preprocess(image)
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(
            f"the model's preprocess must return a C×H×W tensor, got {getattr(x, 'shape', type(x).__name__)}"
        )
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    x = x[None].to(params[0].device if params else "cpu")
    ppe = config.perturbations_per_eval or auto_perturbations_per_eval(x)
    targets: Any = int(config.target) if isinstance(config.target, int) else None
    if config.target == "label":
        if label is None:
            raise ValueError("target='label' but the image has no label")
        targets = int(label)
    counting = CountingForward(model)
    # Curves evaluate their own clean point: every recorded area equals the metric function's.
    bound = Faithfulness(
        counting,
        x,
        targets,
        config.baselines,
        n_steps=config.n_steps,
        perturbations_per_eval=ppe,
        reuse_clean_output=False,
    )
    classified = counting.rows
    if not torch.isfinite(bound.clean).all():
        raise NonFiniteOutputError("the model output on the image contains NaN or inf")
    probs = torch.softmax(bound.clean.double(), dim=-1)[0].cpu()
    predicted = bound.predictions[0]
    target = bound.targets[0]
    if not 0 <= target < probs.numel():
        raise ValueError(f"target {target} is out of range for a model with {probs.numel()} outputs")
    source = config.target if isinstance(config.target, str) else "fixed"
    names = list(getattr(loaded, "class_names", []) or [])
    tname = names[target] if target < len(names) else str(target)
    log(
        f"{name}: target {target} {tname!r} (p = {float(probs[target]):.3f}"
        + (
            ", predicted)"
            if target == predicted
            else f"; predicted {names[predicted] if predicted < len(names) else predicted!r})"
        )
    )

    if isinstance(config.regions, str):
        mask = build_regions(
            config.regions,
            x,
            config.n_regions,
            model=model,
            target=target,
            grid=config.grid,
            compactness=config.compactness,
        )
        description = describe_regions(config.regions, mask)
    else:
        mask = torch.as_tensor(config.regions(x, loaded, target)).to(x.device)
        description = f"{int(torch.unique(mask).numel())} regions: {config.regions_name}"
    if explainer is None:
        explainer = SubmodularAttribution(model, search=config.search, weights=config.weights)
    count = int(torch.unique(mask).numel())
    if not 2 <= count <= explainer.search.max_regions:
        raise RegionCountError(
            count,
            config.n_regions,
            explainer.search.max_regions,
            config.search_name,
            config.regions if isinstance(config.regions, str) else config.regions_name,
        )
    t0 = time.perf_counter()
    (result,) = explainer.explain(
        x,
        baselines=config.baselines,
        target=target,
        feature_mask=mask,
        perturbations_per_eval=ppe,
        show_progress=config.show_progress,
    )
    sub = MethodRun(
        "SubmodularAttribution", result.attributions.detach().cpu(), time.perf_counter() - t0, int(result.n_evaluations)
    )
    occ = _occlusion(model, x, target, config, ppe) if config.occlusion else None
    evaluations = {"classification": classified, "search": sub.n_evaluations}
    if occ is not None:
        evaluations["occlusion"] = occ.n_evaluations
    for run in [sub] + ([occ] if occ is not None else []):
        for metric in config.metrics:
            curves = bound.evaluate(metric, run.attributions.to(x.device)).curves
            assert curves is not None  # Faithfulness.evaluate records the curves
            run.curves[metric] = curves
    evaluations["metrics"] = counting.rows - classified
    evaluations["total"] = sum(evaluations.values())
    return ImageExplanation(
        name=name,
        x=x.detach().cpu(),
        probabilities=probs,
        target=target,
        target_source=source,
        predicted=predicted,
        label=label,
        mask=mask.detach().cpu(),
        regions=config.regions_name,
        regions_description=description,
        search=config.search_name,
        result=result,
        submodular=sub,
        occlusion=occ,
        metrics=config.metrics,
        n_steps=config.n_steps,
        evaluations=evaluations,
        seconds=time.perf_counter() - start,
        image_size=tuple(getattr(image, "size", ())) or None,
    )

"""The usual line-up of attribution methods on an image classifier (:func:`standard_methods`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..search import DEFAULT_SEARCH
from .harness import Method

__all__ = ["SharedRegions", "standard_methods", "STANDARD_METHODS", "DEFAULT_LINEUP", "PUBLISHED_SEGMENTS"]


class SharedRegions:
    """``kwargs_fn`` giving each example its feature mask, built once and shared by the methods.

    The mask is :func:`~captum_submodular.regions.build_regions` of ``kind`` with about
    ``n_regions`` regions (a kind that reads the model, such as ``"prior"``, is not
    available here: the harness's ``kwargs_fn`` sees only the example).
    """

    def __init__(self, n_regions: int, kind: str = "slic") -> None:
        from ..regions import REGION_BUILDERS

        builder = REGION_BUILDERS.get(kind)
        if builder is None or builder.needs_model:
            usable = sorted(k for k, b in REGION_BUILDERS.items() if not b.needs_model)
            raise ValueError(f"regions: the line-up shares masks of one of {usable}, got {kind!r}")
        self.kind = kind
        self.n_regions = n_regions
        self._cache: dict[int, tuple[Tensor, Tensor]] = {}

    def __call__(self, i: int, x_i: Tensor) -> dict[str, Any]:
        from ..regions import build_regions

        hit = self._cache.get(i)
        if hit is None or not torch.equal(hit[0], x_i):
            hit = (x_i.detach().clone(), build_regions(self.kind, x_i, self.n_regions))
            self._cache[i] = hit
        return {"feature_mask": hit[1]}


#: Names accepted by :func:`standard_methods`.
STANDARD_METHODS = (
    "ours",
    "Occlusion",
    "FeatureAblation",
    "KernelShap",
    "Lime",
    "IntegratedGradients",
    "LayerGradCam",
    "published",
    "refined",
    "phasewin",
)
#: The line-up :func:`standard_methods` builds when ``include`` is not given (the slow
#: ``Lime`` and ``published`` rows are opt-in).
DEFAULT_LINEUP = ("ours", "Occlusion", "FeatureAblation", "KernelShap", "IntegratedGradients", "LayerGradCam")
#: Superpixels of the published method's setting (the reference work uses about 49 on 224² images).
PUBLISHED_SEGMENTS = 49


def standard_methods(
    model: nn.Module,
    *,
    include: Sequence[str] = DEFAULT_LINEUP,
    n_segments: int = 49,
    search: str = DEFAULT_SEARCH,
    occlusion_window: tuple[int, ...] = (3, 15, 15),
    occlusion_stride: tuple[int, ...] = (3, 8, 8),
    shap_samples: int = 500,
    lime_samples: int = 500,
    ig_steps: int = 32,
    layer: nn.Module | None = None,
    published_segments: int = PUBLISHED_SEGMENTS,
    perturbations_per_eval: int = 64,
    regions: str = "slic",
) -> list[Method]:
    """The usual line-up on an image classifier, sharing one SLIC mask per example.

    - ``ours``: :class:`SubmodularAttribution` with ``search`` and default weights.
    - ``Occlusion``: ``occlusion_window`` / ``occlusion_stride``.
    - ``FeatureAblation``, ``KernelShap`` (``shap_samples``) and ``Lime``
      (``lime_samples``, Captum's default Lasso surrogate; needs scikit-learn) on the
      SLIC mask of ``n_segments`` regions, the same mask as ``ours``.
    - ``IntegratedGradients``: ``ig_steps`` steps, internal batch ``ig_steps``.
    - ``LayerGradCam`` on ``layer`` (default: :func:`last_conv_layer`).
    - ``published``: the stand-in for the published method (SMDL/LiMA):
      ``search="bidirectional"`` with the published weights 20/5/0.01/0 on its own SLIC
      mask of ``published_segments`` regions.
    - ``refined`` and ``phasewin``: :class:`SubmodularAttribution` with those searches (the
      budgeted refined search; PhaseWin with its own 1/1 objective) on the shared mask.

    ``regions`` is the :func:`~captum_submodular.regions.build_regions` kind of the
    shared mask (default SLIC).  ``include`` picks and orders the rows (default :data:`DEFAULT_LINEUP`; any of
    :data:`STANDARD_METHODS`).
    """
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, LayerGradCam, Lime, Occlusion

    from ..attribution import SubmodularAttribution
    from ..objective import ObjectiveWeights
    from ..regions import last_conv_layer

    unknown = [m for m in include if m not in STANDARD_METHODS]
    if unknown:
        raise ValueError(f"include: unknown method(s) {unknown}; choose from {list(STANDARD_METHODS)}")
    slic = SharedRegions(n_segments, regions)
    published_slic = slic if published_segments == n_segments else SharedRegions(published_segments, "slic")
    ppe = perturbations_per_eval
    build: dict[str, Callable[[], Method]] = {
        "ours": lambda: Method("ours", SubmodularAttribution(model, search=search),
                               {"perturbations_per_eval": ppe}, kwargs_fn=slic),
        "Occlusion": lambda: Method("Occlusion", Occlusion(model),
                                    {"sliding_window_shapes": tuple(occlusion_window),
                                     "strides": tuple(occlusion_stride), "perturbations_per_eval": ppe}),
        "FeatureAblation": lambda: Method("FeatureAblation", FeatureAblation(model),
                                          {"perturbations_per_eval": ppe}, kwargs_fn=slic),
        "KernelShap": lambda: Method("KernelShap", KernelShap(model),
                                     {"n_samples": shap_samples, "perturbations_per_eval": ppe}, kwargs_fn=slic),
        "Lime": lambda: Method("Lime", Lime(model),
                               {"n_samples": lime_samples, "perturbations_per_eval": ppe}, kwargs_fn=slic),
        "IntegratedGradients": lambda: Method("IntegratedGradients", IntegratedGradients(model),
                                              {"n_steps": ig_steps, "internal_batch_size": ig_steps}),
        "LayerGradCam": lambda: Method("LayerGradCam",
                                       LayerGradCam(model, layer if layer is not None else last_conv_layer(model))),
        "published": lambda: Method("published", SubmodularAttribution(model, search="bidirectional",
                                                                       weights=ObjectiveWeights()),
                                    {"perturbations_per_eval": ppe}, kwargs_fn=published_slic),
        "refined": lambda: Method("refined", SubmodularAttribution(model, search="refined"),
                                  {"perturbations_per_eval": ppe}, kwargs_fn=slic),
        "phasewin": lambda: Method("phasewin", SubmodularAttribution(model, search="phasewin"),
                                   {"perturbations_per_eval": ppe}, kwargs_fn=slic),
    }  # fmt: skip
    return [build[name]() for name in include]

"""The per-image worker of :func:`~captum_submodular.dataset.explain_dataset`.

:class:`DatasetExplainer` builds the model once and turns rows (``image_id``, ``path``,
optional ``label`` / ``bytes``) into records; the work on each image is
:func:`captum_submodular.pipeline.explain_image`, the pipeline the command line uses,
and the record is built from its result by
:func:`~captum_submodular.dataset.records.record_from_explanation`.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from .records import record_from_explanation, to_table
from .sources import row_id

__all__ = ["RegionsConfig", "DatasetExplainer", "default_model_factory", "load_row_image"]


@dataclass(frozen=True)
class RegionsConfig:
    """How each image is cut into regions.

    Attributes
    ----------
    kind:
        ``"slic"`` (SLIC superpixels, :func:`~captum_submodular.regions.slic_mask`,
        about ``n`` regions), ``"grid"`` (a ``g×g`` grid with ``g = round(√n)``,
        :func:`~captum_submodular.regions.grid_mask`) or ``"prior"`` (Grad-CAM of the
        target on the model's last conv layer, pooled to a ``g×g`` grid with
        ``g = max(10, ⌈√n⌉)`` and grouped into about ``n`` regions,
        :func:`~captum_submodular.regions.prior_guided_mask`).
    n:
        Number of regions asked for (≥ 2).
    compactness:
        SLIC's colour/space trade-off (``kind="slic"`` only).
    grid:
        Cells per side for ``"grid"`` and ``"prior"`` (default: derived from ``n``).

    The mask is :func:`captum_submodular.regions.build_regions` of these settings, the
    same function ``explain`` and ``compare`` use, so one setting gives one mask.
    """

    kind: str = "slic"
    n: int = 49
    compactness: float = 10.0
    grid: Optional[int] = None

    def __post_init__(self) -> None:
        from ..regions import REGION_BUILDERS

        if self.kind not in REGION_BUILDERS:
            raise ValueError(f"RegionsConfig.kind must be one of {sorted(REGION_BUILDERS)}, got {self.kind!r}")
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"RegionsConfig.n must be an int ≥ 2, got {self.n!r}")

    def describe(self) -> str:
        return f"{self.kind}:{self.n}"

    def build(self, x: Tensor, loaded: Any, target: int) -> Tensor:
        """A ``1×1×H×W`` feature mask for the single image ``x`` (``1×C×H×W``):
        :func:`~captum_submodular.regions.build_regions`, as everywhere else."""
        from ..regions import build_regions

        return build_regions(
            self.kind,
            x,
            self.n,
            model=getattr(loaded, "model", None),
            target=target,
            compactness=self.compactness,
            grid=self.grid,
        )


RegionsSpec = Union[RegionsConfig, Callable[[Tensor, Any, int], Tensor]]


def default_model_factory(name: str = "efficientnet_lite0", factory: Optional[str] = None) -> Any:
    """Build a model on the worker: ``load_model(name)``, or the callable ``factory``
    (``"package.module:function"`` / ``"path/to/file.py:function"``, called without
    arguments) when given.  Pass it as ``functools.partial(default_model_factory, "resnet50")``."""
    if factory:
        from ..models import load_model_factory

        return load_model_factory(factory)()
    from ..models import load_model

    return load_model(name, "cpu")


@dataclass(frozen=True)
class _Config:
    regions: RegionsSpec
    search: Any
    weights: Any
    target: Union[str, int]
    label_fn: Optional[Callable[[str], Optional[int]]]
    metrics: Tuple[str, ...]
    metric_steps: int
    perturbations_per_eval: Optional[int]
    device: str


def load_row_image(row: Dict[str, Any]) -> Any:
    """A PIL RGB image from a row's ``bytes`` (if any) or ``path``; ``ImageLoadError`` otherwise."""
    from ..data import ImageLoadError, _read_image, load_image

    data = row.get("bytes")
    if data is None:
        path = row.get("path")
        if not path:
            raise ImageLoadError(f"{row.get('image_id')}: the row has neither a 'path' nor 'bytes'")
        return load_image(path).image
    name = row.get("path") or row.get("image_id")
    try:
        from PIL import Image, UnidentifiedImageError

        try:
            return _read_image(io.BytesIO(bytes(data)))  # type: ignore[arg-type]
        except UnidentifiedImageError:
            raise ImageLoadError(f"{name}: not a recognised image file (expected a JPEG or PNG image)") from None
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(f"{name}: image too large to load safely ({exc})") from None
    except ImageLoadError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{name}: could not decode image ({exc})") from None


class DatasetExplainer:
    """The per-image work of :func:`explain_dataset` (also Ray Data's class-based UDF).

    ``DatasetExplainer(model_factory, config)`` builds the model once; calling it on a
    batch (a ``pyarrow.Table`` or a list of row dicts with ``image_id``, ``path`` and
    optionally ``label`` / ``bytes``) returns a ``pyarrow.Table`` of records.
    """

    def __init__(self, model_factory: Callable[[], Any], config: _Config) -> None:
        from ..attribution import SubmodularAttribution
        from ..pipeline import ExplainConfig

        self.config = config
        self.loaded = model_factory()
        for attr in ("model", "preprocess"):
            if not hasattr(self.loaded, attr):
                raise ValueError(
                    f"model_factory returned a {type(self.loaded).__name__} without .{attr}; return a "
                    "LoadedModel-like object with .model, .preprocess (PIL image -> C×H×W tensor) and "
                    "optionally .name"
                )
        if config.device == "auto":
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            device = torch.device(config.device)
        model = self.loaded.model
        if isinstance(model, nn.Module):
            model = model.eval()
            params = list(model.parameters())
            if params and params[0].device != device:
                model = model.to(device)
        self.device = device
        self.model = model
        self.model_name = str(getattr(self.loaded, "name", type(model).__name__))
        self.explainer = SubmodularAttribution(model, search=config.search, weights=config.weights)
        regions = config.regions
        self.pipeline_config = ExplainConfig(
            search=config.search,
            weights=config.weights,
            regions=regions.kind if isinstance(regions, RegionsConfig) else regions,
            n_regions=regions.n if isinstance(regions, RegionsConfig) else 49,
            compactness=regions.compactness if isinstance(regions, RegionsConfig) else 10.0,
            grid=regions.grid if isinstance(regions, RegionsConfig) else None,
            target=config.target,
            metrics=config.metrics,
            n_steps=config.metric_steps,
            perturbations_per_eval=config.perturbations_per_eval,
            baselines=0.0,
        )

    # ------------------------------------------------------------------ batches

    def __call__(self, batch: Any) -> Any:
        rows = batch.to_pylist() if hasattr(batch, "to_pylist") else list(batch)
        return to_table([self.explain_row(r) for r in rows], self.config.metrics)

    # ------------------------------------------------------------------ one image

    def explain_row(self, row: Dict[str, Any]) -> Dict[str, Any]:
        """One record (a dict with the :data:`RECORD_FIELDS`) for one row; never raises
        for a bad image or a failing model (the record says ``"failed"`` and why)."""
        cfg = self.config
        start = time.perf_counter()
        path = row.get("path")
        image_id = row_id(row)
        record: Dict[str, Any] = {
            "image_id": image_id,
            "path": None if path is None else str(path),
            "status": "failed",
            "model": self.model_name,
            "regions": self.pipeline_config.regions_name,
            "search": self.pipeline_config.search_name,
            "target_source": cfg.target if isinstance(cfg.target, str) else "fixed",
        }
        try:
            label = row.get("label")
            if label is None and cfg.label_fn is not None and path is not None:
                label = cfg.label_fn(str(path))
            record["label"] = None if label is None else int(label)
            image = load_row_image(row)
            record.update(self._explain_image(image, record["label"]))
            record["status"] = "ok"
        except Exception as exc:  # a bad image or model error must not stop the job
            message = str(exc) or type(exc).__name__
            if path is not None and message.startswith(f"{path}: "):
                message = message[len(str(path)) + 2 :]
            record["error"] = f"{type(exc).__name__}: {message}"
        record["seconds"] = time.perf_counter() - start
        return record

    @torch.no_grad()
    def _explain_image(self, image: Any, label: Optional[int]) -> Dict[str, Any]:
        from ..pipeline import explain_image

        explanation = explain_image(self.loaded, image, self.pipeline_config, label=label, explainer=self.explainer)
        return record_from_explanation(explanation)

"""Explain whole image datasets, in this process or on a Ray cluster, into Parquet records.

:func:`explain_dataset` runs :class:`~captum_submodular.SubmodularAttribution` on
every image of a folder, a list of paths or a Ray Dataset and writes **one record per
image** to Parquet part files under ``OUT_DIR/records/``.  It is the engine behind
``captum-submodular explain-dataset``.

Modes
-----
In-process (default)
    One process, one model, batches of ``batch_size`` images one after the other.
    Needs only ``pyarrow`` (for Parquet).
Ray (``ray=True``, ``ray_address=...`` or a Ray Dataset as ``images``)
    Ray Data ``map_batches`` with an actor pool: each actor calls ``model_factory()``
    once and then explains batch after batch; ``num_gpus`` per actor when GPUs exist;
    the pool size is ``concurrency``.  The records come back to the driver, which
    writes them, so the output folder need only be writable by the driver; the image
    files (folder / list input) must be readable by the workers (a shared file
    system on a cluster), or pass a Ray Dataset with a ``bytes`` column (e.g.
    ``ray.data.read_binary_files(..., include_paths=True)``).

Both modes run exactly the same per-image code (:class:`DatasetExplainer`), so they
write the same records (up to floating-point rounding when the number of torch
threads differs, and the ``seconds`` column).

Per image
---------
1. Read the image (:func:`captum_submodular.data.load_image` rules: any size or
   colour mode → RGB).  An unreadable file becomes a ``"failed"`` record with the
   reason; the job goes on.
2. ``x = preprocess(image)[None]``; one forward gives the predicted class.
3. Target: ``"predicted"`` (the argmax), ``"label"`` (the image's label, see below)
   or a fixed class index.
4. Regions: :class:`RegionsConfig` (SLIC superpixels, a grid, or Grad-CAM-guided
   cells) or a callable ``regions(x, loaded_model, target) -> feature_mask``.
5. ``SubmodularAttribution(model, search=...).explain(x, target, feature_mask,
   baselines=0, perturbations_per_eval)`` — one image per call.
6. Optionally the pixel-grid metrics :func:`captum_submodular.metrics.insertion` /
   :func:`~captum_submodular.metrics.deletion` (baseline 0, softmax at the target,
   ``metric_steps`` steps) of the attribution map.

Labels
------
A Ray Dataset's ``label`` column when there is one, else ``label_fn(path)``.  The
default :func:`parse_imagenet_label` reads ImageNet-style file names
``imagenet_<index>_<label>.jpg`` (also ``.jpeg`` / ``.png``, any case), e.g.
``imagenet_03_990.jpg`` → 990, and returns ``None`` for any other name.  With
``target="label"`` an image without a label becomes a failed record.

Records (one row per image; see :data:`RECORD_FIELDS` for every column)
-----------------------------------------------------------------------
``image_id``, ``path``, ``status`` (``"ok"`` / ``"failed"``), ``error`` (the reason,
``None`` when ok), ``target``, ``label``, ``predicted``; ``order`` (region ids, most
important first), ``region_ids`` / ``region_values`` (the attribution value of every
region), ``minimal_subset`` and ``minimal_subset_size``; **two kinds of curves**:

* ``search_insertion_curve`` / ``search_deletion_curve`` — the search's own
  region-level curves (``m + 1`` points: softmax probability of the target after
  inserting / deleting the first ``k`` regions of ``order``, ``k = 0..m``, baseline
  0), with areas ``search_insertion_area`` / ``search_deletion_area`` (trapezoid
  over ``x = k / m``);
* ``insertion_*`` / ``deletion_*`` — the pixel-grid metric curves of
  :mod:`captum_submodular.metrics` (``fractions`` and ``scores``, ``metric_steps + 1``
  points) and their ``insertion_area`` / ``deletion_area`` (``None`` when the metric
  was not requested);

``n_evaluations`` (model inputs of the search), ``metric_evaluations`` (of the
metrics), ``seconds`` (whole image: read, regions, search, metrics) and
``attribution``: ``np.savez_compressed`` bytes holding the region mask (``H×W``,
smallest unsigned integer type), ``region_ids`` and ``region_values`` — the map is
region-constant, so :func:`decode_attribution` rebuilds it exactly.

Resume and crashes
------------------
Records are written as they are produced, one Parquet part file per batch (written
to a temporary name, then renamed), so a crash loses at most the batches in flight.
At start the ids already present under ``OUT_DIR/records`` are read and skipped
(``retry_failed=True`` re-runs the failed ones; :func:`read_records` keeps the
newest record of an id).  Image ids are the path relative to the folder (folder
input), the path as given (list input), or the ``image_id`` / ``id`` / ``path``
column (Ray Dataset).
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import logging
import math
import os
import re
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from .search import DEFAULT_SEARCH

__all__ = [
    "IMAGE_EXTENSIONS",
    "RECORD_FIELDS",
    "RegionsConfig",
    "DatasetSummary",
    "DatasetExplainer",
    "explain_dataset",
    "list_images",
    "parse_imagenet_label",
    "read_records",
    "decode_attribution",
    "default_model_factory",
]

#: File extensions picked up when ``images`` is a folder (case-insensitive).
IMAGE_EXTENSIONS: Tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

_IMAGENET_NAME = re.compile(r"^imagenet_(\d+)_(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)
_RECORDS_DIR = "records"
_CONFIG_FILE = "config.json"


# --------------------------------------------------------------------------- pyarrow / schema


def _require_pyarrow() -> Any:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:  # pragma: no cover - exercised with a monkeypatched import
        raise ImportError(
            "explain_dataset writes Parquet records and needs pyarrow: pip install pyarrow "
            "(or pip install 'captum_submodular[ray]', which also brings Ray Data)"
        ) from exc
    import pyarrow

    return pyarrow


def _schema() -> Any:
    pa = _require_pyarrow()
    ints, floats = pa.list_(pa.int64()), pa.list_(pa.float64())
    return pa.schema([
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("model", pa.string()),
        ("target", pa.int64()),
        ("target_source", pa.string()),
        ("label", pa.int64()),
        ("predicted", pa.int64()),
        ("predicted_score", pa.float64()),
        ("target_score", pa.float64()),
        ("regions", pa.string()),
        ("n_regions", pa.int64()),
        ("search", pa.string()),
        ("order", ints),
        ("region_ids", ints),
        ("region_values", floats),
        ("minimal_subset", ints),
        ("minimal_subset_size", pa.int64()),
        ("search_insertion_curve", floats),
        ("search_deletion_curve", floats),
        ("search_insertion_area", pa.float64()),
        ("search_deletion_area", pa.float64()),
        ("insertion_area", pa.float64()),
        ("insertion_fractions", floats),
        ("insertion_scores", floats),
        ("deletion_area", pa.float64()),
        ("deletion_fractions", floats),
        ("deletion_scores", floats),
        ("n_evaluations", pa.int64()),
        ("metric_evaluations", pa.int64()),
        ("seconds", pa.float64()),
        ("input_height", pa.int64()),
        ("input_width", pa.int64()),
        ("attribution", pa.binary()),
    ])


#: Every column of a record, in order.
RECORD_FIELDS: Tuple[str, ...] = (
    "image_id", "path", "status", "error", "model", "target", "target_source", "label", "predicted",
    "predicted_score", "target_score", "regions", "n_regions", "search", "order", "region_ids",
    "region_values", "minimal_subset", "minimal_subset_size", "search_insertion_curve",
    "search_deletion_curve", "search_insertion_area", "search_deletion_area", "insertion_area",
    "insertion_fractions", "insertion_scores", "deletion_area", "deletion_fractions", "deletion_scores",
    "n_evaluations", "metric_evaluations", "seconds", "input_height", "input_width", "attribution",
)


def _to_table(records: List[Dict[str, Any]]) -> Any:
    pa = _require_pyarrow()
    schema = _schema()
    rows = [{k: r.get(k) for k in RECORD_FIELDS} for r in records]
    return pa.Table.from_pylist(rows, schema=schema)


# --------------------------------------------------------------------------- labels, regions, models


def parse_imagenet_label(path: Optional[str]) -> Optional[int]:
    """The label of an ImageNet-style file name, else ``None``.

    ``imagenet_<index>_<label>.jpg`` (or ``.jpeg`` / ``.png``, any case; the folder
    part is ignored): ``".../imagenet_03_990.jpg"`` → ``990``.  These are the names of
    the bundled samples (:func:`captum_submodular.data.imagenet_samples`).
    """
    if not path:
        return None
    match = _IMAGENET_NAME.match(os.path.basename(str(path)))
    return int(match.group(2)) if match else None


REGION_KINDS = ("slic", "grid", "prior")


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
    """

    kind: str = "slic"
    n: int = 49
    compactness: float = 10.0

    def __post_init__(self) -> None:
        if self.kind not in REGION_KINDS:
            raise ValueError(f"RegionsConfig.kind must be one of {REGION_KINDS}, got {self.kind!r}")
        if not isinstance(self.n, int) or self.n < 2:
            raise ValueError(f"RegionsConfig.n must be an int ≥ 2, got {self.n!r}")

    def describe(self) -> str:
        return f"{self.kind}:{self.n}"

    def build(self, x: Tensor, loaded: Any, target: int) -> Tensor:
        """A ``1×1×H×W`` feature mask for the single image ``x`` (``1×C×H×W``)."""
        from .regions import grid_mask, prior_guided_mask, relabel, slic_mask

        h, w = int(x.shape[-2]), int(x.shape[-1])
        if self.kind == "slic":
            return slic_mask(x[0].detach().cpu(), n_segments=self.n, compactness=self.compactness).to(x.device)
        if self.kind == "grid":
            g = min(max(2, round(math.sqrt(self.n))), h, w)
            return grid_mask(h, w, grid=g, device=x.device)
        from .demo import gradcam_prior

        g = min(max(10, math.ceil(math.sqrt(self.n))), h, w)
        cells = max(1, math.ceil(g * g / self.n))
        prior = gradcam_prior(loaded, x, target)
        mask = prior_guided_mask(prior.detach().cpu(), grid=g, cells_per_region=cells, size=(h, w))
        return relabel(mask).to(x.device)


RegionsSpec = Union[RegionsConfig, Callable[[Tensor, Any, int], Tensor]]


def default_model_factory(name: str = "efficientnet_lite0", factory: Optional[str] = None) -> Any:
    """Build a model on the worker: ``load_model(name)``, or the callable ``factory``
    (``"package.module:function"`` / ``"path/to/file.py:function"``, called without
    arguments) when given.  Pass it as ``functools.partial(default_model_factory, "resnet50")``."""
    if factory:
        from .demo import load_model_factory

        return load_model_factory(factory)()
    from .models import load_model

    return load_model(name, "cpu")


def _regions_name(regions: RegionsSpec) -> str:
    if isinstance(regions, RegionsConfig):
        return regions.describe()
    name = getattr(regions, "__name__", None) or type(regions).__name__
    return f"callable:{name}"


def _search_name(search: Any) -> str:
    return search if isinstance(search, str) else type(search).__name__


# --------------------------------------------------------------------------- attribution blobs


def _encode_attribution(mask: Tensor, region_ids: Tensor, region_values: Tensor) -> bytes:
    m = mask.detach().cpu()
    while m.dim() > 2 and m.shape[0] == 1:
        m = m[0]
    arr = m.numpy()
    lo, hi = int(arr.min()), int(arr.max())
    if lo >= 0:
        dtype = np.uint8 if hi < 2**8 else np.uint16 if hi < 2**16 else np.uint32 if hi < 2**32 else np.int64
    else:
        dtype = np.int64
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        mask=arr.astype(dtype),
        region_ids=region_ids.detach().cpu().numpy().astype(np.int64),
        region_values=region_values.detach().cpu().numpy().astype(np.float64),
    )
    return buf.getvalue()


def decode_attribution(blob: bytes, with_mask: bool = False) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
    """Rebuild the attribution map of a record from its ``attribution`` bytes.

    Returns the ``H×W`` float64 map (``region_values`` painted on the mask; the map
    :meth:`SubmodularAttribution.explain` returns is this map repeated over channels),
    and also the region mask when ``with_mask=True``.
    """
    with np.load(io.BytesIO(blob)) as data:
        mask = data["mask"].astype(np.int64)
        ids = data["region_ids"]
        values = data["region_values"]
    amap = values[np.searchsorted(ids, mask)]
    return (amap, mask) if with_mask else amap


# --------------------------------------------------------------------------- the per-image worker


@dataclass(frozen=True)
class _Config:
    regions: RegionsSpec
    search: Any
    weights: Any
    target: Union[str, int]
    label_fn: Optional[Callable[[str], Optional[int]]]
    metrics: Tuple[str, ...]
    metric_steps: int
    perturbations_per_eval: int
    device: str


class _Counting:
    def __init__(self, model: Callable[..., Tensor]) -> None:
        self.model = model
        self.count = 0

    def __call__(self, x: Tensor, *args: Any) -> Tensor:
        self.count += int(x.shape[0])
        return self.model(x, *args)


def _load_row_image(row: Dict[str, Any]) -> Any:
    """A PIL RGB image from a row's ``bytes`` (if any) or ``path``; ``ImageLoadError`` otherwise."""
    from .data import ImageLoadError, _read_image, load_image

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


def _trapezoid(curve: Tensor) -> float:
    m = len(curve) - 1
    if m < 1:
        return float("nan")
    y = curve.double()
    return float(((y[1:] + y[:-1]) / 2).sum() / m)


def _floats(t: Tensor) -> List[float]:
    return [float(v) for v in t.detach().cpu().double().reshape(-1).tolist()]


def _ints(t: Tensor) -> List[int]:
    return [int(v) for v in t.detach().cpu().reshape(-1).tolist()]


class DatasetExplainer:
    """The per-image work of :func:`explain_dataset` (also Ray Data's class-based UDF).

    ``DatasetExplainer(model_factory, config)`` builds the model once; calling it on a
    batch (a ``pyarrow.Table`` or a list of row dicts with ``image_id``, ``path`` and
    optionally ``label`` / ``bytes``) returns a ``pyarrow.Table`` of records.
    """

    def __init__(self, model_factory: Callable[[], Any], config: _Config) -> None:
        from .attribution import SubmodularAttribution

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

    # ------------------------------------------------------------------ batches

    def __call__(self, batch: Any) -> Any:
        rows = batch.to_pylist() if hasattr(batch, "to_pylist") else list(batch)
        return _to_table([self.explain_row(r) for r in rows])

    # ------------------------------------------------------------------ one image

    def explain_row(self, row: Dict[str, Any]) -> Dict[str, Any]:
        """One record (a dict with the :data:`RECORD_FIELDS`) for one row; never raises
        for a bad image or a failing model (the record says ``"failed"`` and why)."""
        cfg = self.config
        start = time.perf_counter()
        path = row.get("path")
        image_id = _row_id(row)
        record: Dict[str, Any] = {
            "image_id": image_id, "path": None if path is None else str(path), "status": "failed",
            "model": self.model_name, "regions": _regions_name(cfg.regions), "search": _search_name(cfg.search),
            "target_source": cfg.target if isinstance(cfg.target, str) else "fixed",
        }
        try:
            label = row.get("label")
            if label is None and cfg.label_fn is not None and path is not None:
                label = cfg.label_fn(str(path))
            record["label"] = None if label is None else int(label)
            image = _load_row_image(row)
            record.update(self._explain_image(image, record["label"]))
            record["status"] = "ok"
        except Exception as exc:  # a bad image or model error must not stop the job
            message = str(exc) or type(exc).__name__
            if path is not None and message.startswith(f"{path}: "):
                message = message[len(str(path)) + 2:]
            record["error"] = f"{type(exc).__name__}: {message}"
        record["seconds"] = time.perf_counter() - start
        return record

    @torch.no_grad()
    def _explain_image(self, image: Any, label: Optional[int]) -> Dict[str, Any]:
        from . import metrics as metrics_mod
        from .attribution import NonFiniteOutputError

        cfg = self.config
        x = self.loaded.preprocess(image)
        if not isinstance(x, Tensor) or x.dim() != 3:
            raise ValueError(f"preprocess must return a C×H×W tensor, got {getattr(x, 'shape', type(x))}")
        x = x[None].to(self.device)
        logits = self.model(x)
        if not torch.isfinite(logits).all():
            raise NonFiniteOutputError("the model output on the image contains NaN or inf")
        probs = torch.softmax(logits.double(), dim=-1)[0].cpu()
        predicted = int(probs.argmax())
        if cfg.target == "predicted":
            target = predicted
        elif cfg.target == "label":
            if label is None:
                raise ValueError("target='label' but the image has no label (label_fn returned None)")
            target = int(label)
        else:
            target = int(cfg.target)
        if not 0 <= target < probs.numel():
            raise ValueError(f"target {target} is out of range for a model with {probs.numel()} outputs")

        if isinstance(cfg.regions, RegionsConfig):
            with torch.enable_grad():
                mask = cfg.regions.build(x, self.loaded, target)
        else:
            mask = cfg.regions(x, self.loaded, target)
        mask = torch.as_tensor(mask).to(self.device)
        (res,) = self.explainer.explain(
            x, baselines=0.0, target=target, feature_mask=mask,
            perturbations_per_eval=cfg.perturbations_per_eval,
        )
        out: Dict[str, Any] = {
            "target": target,
            "predicted": predicted,
            "predicted_score": float(probs[predicted]),
            "target_score": float(probs[target]),
            "n_regions": int(res.region_ids.numel()),
            "order": _ints(res.order),
            "region_ids": _ints(res.region_ids),
            "region_values": _floats(res.region_values),
            "minimal_subset": _ints(res.minimal_subset),
            "minimal_subset_size": int(res.minimal_subset_size),
            "search_insertion_curve": _floats(res.insertion_curve),
            "search_deletion_curve": _floats(res.deletion_curve),
            "search_insertion_area": _trapezoid(res.insertion_curve),
            "search_deletion_area": _trapezoid(res.deletion_curve),
            "n_evaluations": int(res.n_evaluations),
            "input_height": int(x.shape[-2]),
            "input_width": int(x.shape[-1]),
            "attribution": _encode_attribution(mask, res.region_ids, res.region_values),
        }
        counting = _Counting(self.model)
        for kind in cfg.metrics:
            fn = metrics_mod.insertion if kind == "insertion" else metrics_mod.deletion
            curves = fn(counting, x, res.attributions, target=target, baselines=0.0, n_steps=cfg.metric_steps,
                        perturbations_per_eval=cfg.perturbations_per_eval, return_curves=True)
            out[f"{kind}_area"] = float(curves.area[0])
            out[f"{kind}_fractions"] = _floats(curves.fractions[0])
            out[f"{kind}_scores"] = _floats(curves.scores[0])
        out["metric_evaluations"] = counting.count if cfg.metrics else 0
        return out


def _row_id(row: Dict[str, Any]) -> str:
    for key in ("image_id", "id", "path"):
        value = row.get(key)
        if value is not None and value != "":
            return str(value)
    raise ValueError("every row needs an 'image_id', 'id' or 'path' column")


class _NotDone:
    """Ray Data filter: keep the rows whose id has no record yet."""

    def __init__(self, done: Iterable[str]) -> None:
        self.done = frozenset(done)

    def __call__(self, row: Dict[str, Any]) -> bool:
        return _row_id(row) not in self.done


# --------------------------------------------------------------------------- inputs


def list_images(folder: Union[str, os.PathLike], extensions: Sequence[str] = IMAGE_EXTENSIONS) -> List[str]:
    """Image files under ``folder`` (recursive, sorted, hidden files and folders skipped),
    chosen by extension only — a corrupt file with an image extension is listed (and
    becomes a failed record); other files are ignored."""
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise ValueError(f"{root}: not a folder")
    exts = tuple(e.lower() for e in extensions)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(exts):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def _items_from(images: Any, extensions: Sequence[str]) -> List[Dict[str, Any]]:
    """Folder / file / list of paths → rows ``{"image_id", "path", "label": None}``."""
    if isinstance(images, (str, os.PathLike)):
        root = os.fspath(images)
        if os.path.isdir(root):
            paths = list_images(root, extensions)
            ids = [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]
        elif os.path.exists(root):
            paths, ids = [root], [os.path.normpath(root)]
        else:
            raise ValueError(f"{root}: no such folder or file")
    else:
        try:
            paths = [os.fspath(p) for p in images]
        except TypeError:
            raise TypeError(
                "`images` must be a folder, a list of paths or a Ray Dataset, "
                f"got {type(images).__name__}"
            ) from None
        ids = [os.path.normpath(p) for p in paths]
    items, seen = [], set()
    for image_id, path in zip(ids, paths):
        if image_id in seen:
            warnings.warn(f"{path}: listed twice; explained once", stacklevel=3)
            continue
        seen.add(image_id)
        items.append({"image_id": image_id, "path": path, "label": None})
    return items


def _is_ray_dataset(obj: Any) -> bool:
    mod = type(obj).__module__ or ""
    return mod.startswith("ray.data") and hasattr(obj, "map_batches")


# --------------------------------------------------------------------------- output folder


def _part_files(out_dir: str) -> List[str]:
    rec = os.path.join(out_dir, _RECORDS_DIR)
    if not os.path.isdir(rec):
        return []
    return sorted(os.path.join(rec, f) for f in os.listdir(rec) if f.startswith("part-") and f.endswith(".parquet"))


def _existing_status(out_dir: str) -> Dict[str, str]:
    """``image_id → status`` of the newest record of each id already written."""
    import pyarrow.parquet as pq

    status: Dict[str, str] = {}
    for path in _part_files(out_dir):
        try:
            table = pq.read_table(path, columns=["image_id", "status"])
        except Exception as exc:  # a damaged part file: its images are simply redone
            warnings.warn(f"{path}: unreadable part file ignored ({exc})", stacklevel=3)
            continue
        for image_id, st in zip(table.column("image_id").to_pylist(), table.column("status").to_pylist()):
            if st == "ok" or status.get(image_id) != "ok":
                status[image_id] = st
    return status


def read_records(out_dir: Union[str, os.PathLike], columns: Optional[Sequence[str]] = None,
                 latest_only: bool = True) -> Any:
    """All records under ``out_dir`` as one ``pyarrow.Table``.

    With ``latest_only`` (default) each ``image_id`` appears once: its newest ``"ok"``
    record, else its newest record.  Unreadable part files are skipped with a warning.
    """
    pa = _require_pyarrow()
    import pyarrow.parquet as pq

    cols = list(columns) if columns is not None else None
    if cols is not None:
        cols = list(dict.fromkeys(["image_id", "status"] + cols))
    tables = []
    for path in _part_files(os.fspath(out_dir)):
        try:
            tables.append(pq.read_table(path, columns=cols, schema=None))
        except Exception as exc:
            warnings.warn(f"{path}: unreadable part file ignored ({exc})", stacklevel=2)
    if not tables:
        schema = _schema()
        if cols is not None:
            schema = pa.schema([schema.field(c) for c in cols])
        return schema.empty_table()
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    if not latest_only:
        return table
    ids = table.column("image_id").to_pylist()
    ok = [s == "ok" for s in table.column("status").to_pylist()]
    keep: Dict[str, int] = {}
    for i, (image_id, good) in enumerate(zip(ids, ok)):
        j = keep.get(image_id)
        if j is None or good or not ok[j]:
            keep[image_id] = i
    return table.take(sorted(keep.values()))


class _PartWriter:
    """Writes one Parquet part per batch: temp file then an atomic rename."""

    def __init__(self, out_dir: str) -> None:
        self.dir = os.path.join(out_dir, _RECORDS_DIR)
        os.makedirs(self.dir, exist_ok=True)
        self.run = time.strftime("%Y%m%dT%H%M%S") + f"-{uuid.uuid4().hex[:8]}"
        self.seq = 0
        self.files: List[str] = []

    def write(self, table: Any) -> Optional[str]:
        import pyarrow.parquet as pq

        if table.num_rows == 0:
            return None
        name = f"part-{self.run}-{self.seq:06d}.parquet"
        self.seq += 1
        final = os.path.join(self.dir, name)
        tmp = os.path.join(self.dir, f".{name}.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, final)
        self.files.append(final)
        return final


def _check_config_file(out_dir: str, cfg: _Config) -> None:
    desc = {
        "regions": _regions_name(cfg.regions), "search": _search_name(cfg.search),
        "weights": None if cfg.weights is None else repr(cfg.weights),
        "target": cfg.target, "metrics": list(cfg.metrics), "metric_steps": cfg.metric_steps,
    }
    path = os.path.join(out_dir, _CONFIG_FILE)
    if os.path.exists(path):
        try:
            with open(path) as fh:
                old = json.load(fh)
        except (OSError, ValueError):
            old = None
        if old != desc:
            warnings.warn(
                f"{out_dir} holds records made with another configuration ({old} vs {desc}); existing "
                "records are kept and their images skipped", stacklevel=3)
        return
    with open(path, "w") as fh:
        json.dump(desc, fh, indent=2)


# --------------------------------------------------------------------------- summary


@dataclass
class DatasetSummary:
    """What :func:`explain_dataset` did.

    ``done`` / ``failed``: records written by this run; ``skipped``: images that
    already had a record (``None`` for a Ray Dataset input, whose rows are filtered
    lazily); ``images_per_minute`` counts done + failed over the wall time of the call
    (model loading and Ray start-up included).
    """

    out_dir: str
    mode: str
    workers: int
    total: Optional[int]
    done: int
    failed: int
    skipped: Optional[int]
    seconds: float
    parts: List[str] = dataclasses.field(default_factory=list)

    @property
    def images_per_minute(self) -> float:
        n = self.done + self.failed
        return 60.0 * n / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        skipped = "?" if self.skipped is None else str(self.skipped)
        return (f"done {self.done}, failed {self.failed}, skipped {skipped} in {self.seconds:.1f} s "
                f"({self.images_per_minute:.1f} images/min, {self.mode}, {self.workers} worker(s)); "
                f"records in {os.path.join(self.out_dir, _RECORDS_DIR)}")

    __str__ = line


# --------------------------------------------------------------------------- the function


def _progress_bar(total: Optional[int], enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="img", desc="explain-dataset", file=sys.stderr)


def explain_dataset(
    images: Any,
    model_factory: Optional[Callable[[], Any]] = None,
    *,
    out_dir: Union[str, os.PathLike],
    regions: RegionsSpec = RegionsConfig(),
    search: Any = DEFAULT_SEARCH,
    weights: Any = None,
    target: Union[str, int] = "predicted",
    label_fn: Optional[Callable[[str], Optional[int]]] = parse_imagenet_label,
    metrics: Sequence[str] = ("insertion", "deletion"),
    metric_steps: int = 50,
    perturbations_per_eval: int = 64,
    ray: bool = False,
    ray_address: Optional[str] = None,
    batch_size: int = 4,
    concurrency: Union[int, Tuple[int, int], None] = None,
    num_gpus: Optional[float] = None,
    num_cpus: Optional[float] = None,
    device: str = "auto",
    retry_failed: bool = False,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    progress: bool = True,
    on_batch: Optional[Callable[[Any], None]] = None,
) -> DatasetSummary:
    """Explain every image of a dataset and write one Parquet record per image.

    Parameters
    ----------
    images:
        A folder (searched recursively for :data:`IMAGE_EXTENSIONS`), one image file, a
        list of paths, or a Ray Dataset with a ``path`` and/or ``bytes`` column
        (optional ``image_id`` / ``id`` and ``label`` columns).
    model_factory:
        A picklable callable (top-level function, class or ``functools.partial``) that
        takes no arguments and returns a LoadedModel-like object (``.model``,
        ``.preprocess``: PIL image → ``C×H×W`` tensor, optional ``.name``).  Called
        once per worker.  Default: :func:`default_model_factory` (EfficientNet-Lite0).
    out_dir:
        Output folder; records go to ``out_dir/records/part-*.parquet`` and the
        configuration to ``out_dir/config.json``.
    regions:
        A :class:`RegionsConfig` or a callable ``regions(x, loaded_model, target)``
        returning a feature mask for ``x`` (``1×C×H×W``).
    search, weights:
        Passed to :class:`~captum_submodular.SubmodularAttribution`.
    target:
        ``"predicted"`` (default), ``"label"`` or a class index.
    label_fn:
        ``path → label or None``; default :func:`parse_imagenet_label`.
    metrics:
        Pixel-grid metrics to record: any of ``"insertion"``, ``"deletion"``
        (``()`` for none; each costs ``metric_steps + 1`` model inputs per image).
    metric_steps:
        Steps of the metric curves.
    perturbations_per_eval:
        Most perturbed inputs per model call.
    ray, ray_address:
        Use Ray Data (``ray_address`` implies ``ray=True``; ``None`` → a local Ray, or
        the one already initialised).  A Ray Dataset as ``images`` also uses Ray.
    batch_size:
        Images per batch = per part file (a crash loses at most the batches in flight).
        Capped at ``⌈n / workers⌉`` so every worker gets work.
    concurrency:
        Ray actor-pool size: an int, or ``(min, max)`` for an autoscaling pool.  Default:
        as many actors as the cluster's free CPUs (``num_cpus`` each) or GPUs
        (``num_gpus`` each) allow.  In-process mode has one worker.
    num_gpus, num_cpus:
        Resources per Ray actor (``num_gpus`` only where GPUs exist).
    device:
        ``"auto"`` (CUDA when the worker sees a GPU, else CPU), ``"cpu"``, ``"cuda"``…
    retry_failed:
        Re-run the images whose existing record failed.
    progress:
        Show a tqdm bar on stderr.
    on_batch:
        Called with each ``pyarrow.Table`` of records after it is written.

    Returns
    -------
    DatasetSummary
    """
    _require_pyarrow()
    start = time.perf_counter()
    if model_factory is None:
        model_factory = default_model_factory
    if not callable(model_factory):
        raise TypeError("model_factory must be a callable returning a LoadedModel-like object")
    if not (isinstance(regions, RegionsConfig) or callable(regions)):
        raise TypeError("regions must be a RegionsConfig or a callable (x, loaded_model, target) -> mask")
    if not (target in ("predicted", "label") or (isinstance(target, int) and not isinstance(target, bool))):
        raise ValueError(f"target must be 'predicted', 'label' or a class index, got {target!r}")
    metrics = tuple(metrics)
    bad = [m for m in metrics if m not in ("insertion", "deletion")]
    if bad:
        raise ValueError(f"metrics must be among ('insertion', 'deletion'), got {bad}")
    for name, value in (("batch_size", batch_size), ("metric_steps", metric_steps),
                        ("perturbations_per_eval", perturbations_per_eval)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
    from .search import get_search

    get_search(search)  # validate early (raises ValueError)
    cfg = _Config(regions=regions, search=search, weights=weights, target=target, label_fn=label_fn,
                  metrics=metrics, metric_steps=metric_steps, perturbations_per_eval=perturbations_per_eval,
                  device=device)

    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    _check_config_file(out, cfg)
    existing = _existing_status(out)
    done_ids = {i for i, s in existing.items() if s == "ok" or not retry_failed}

    use_ray = bool(ray) or ray_address is not None or _is_ray_dataset(images)
    if _is_ray_dataset(images):
        todo_items: Optional[List[Dict[str, Any]]] = None
        total, skipped = None, None
    else:
        items = _items_from(images, extensions)
        todo_items = [it for it in items if it["image_id"] not in done_ids]
        total, skipped = len(items), len(items) - len(todo_items)

    writer = _PartWriter(out)
    counts = {"ok": 0, "failed": 0}

    def consume(table: Any, bar: Any) -> None:
        writer.write(table)
        statuses = table.column("status").to_pylist()
        counts["ok"] += sum(s == "ok" for s in statuses)
        counts["failed"] += sum(s != "ok" for s in statuses)
        if bar is not None:
            bar.update(table.num_rows)
            bar.set_postfix(failed=counts["failed"], refresh=False)
        if on_batch is not None:
            on_batch(table)

    if not use_ray:
        workers = 1
        if device != "auto":
            from .demo import check_device

            check_device(device)
        bar = _progress_bar(len(todo_items), progress and bool(todo_items)) if todo_items else None
        try:
            if todo_items:
                worker = DatasetExplainer(model_factory, cfg)
                for s in range(0, len(todo_items), batch_size):
                    consume(worker(todo_items[s:s + batch_size]), bar)
        finally:
            if bar is not None:
                bar.close()
        mode = "in-process"
    else:
        workers = _run_ray(images, todo_items, model_factory, cfg, consume, done_ids, ray_address=ray_address,
                           batch_size=batch_size, concurrency=concurrency, num_gpus=num_gpus, num_cpus=num_cpus,
                           progress=progress)
        mode = "ray"
    return DatasetSummary(out_dir=out, mode=mode, workers=workers, total=total, done=counts["ok"],
                          failed=counts["failed"], skipped=skipped, seconds=time.perf_counter() - start,
                          parts=list(writer.files))


def _run_ray(images: Any, todo_items: Optional[List[Dict[str, Any]]], model_factory: Callable[[], Any],
             cfg: _Config, consume: Callable[[Any, Any], None], done_ids: set, *, ray_address: Optional[str],
             batch_size: int, concurrency: Union[int, Tuple[int, int], None], num_gpus: Optional[float],
             num_cpus: Optional[float], progress: bool) -> int:
    try:
        import ray as ray_mod
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "ray=True needs Ray Data: pip install 'captum_submodular[ray]' (or pip install 'ray[data]'); "
            "without Ray, explain_dataset runs in-process"
        ) from exc

    if todo_items is not None and not todo_items:
        return 0
    started = False
    if not ray_mod.is_initialized():
        init_kwargs: Dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
        if ray_address is not None:
            init_kwargs["address"] = ray_address
        ray_mod.init(**init_kwargs)
        started = True
    try:
        resources = ray_mod.cluster_resources()
        gpus_here = float(resources.get("GPU", 0.0))
        actor_gpus = num_gpus if (num_gpus and gpus_here > 0) else None
        if num_gpus and gpus_here == 0:
            warnings.warn("num_gpus was given but the Ray cluster has no GPU; the actors run on CPUs",
                          stacklevel=3)
        if concurrency is None:
            if actor_gpus:
                n_workers = max(1, int(gpus_here // actor_gpus))
            else:
                n_workers = max(1, int(float(resources.get("CPU", 1.0)) // (num_cpus or 1.0)))
        else:
            n_workers = concurrency if isinstance(concurrency, int) else int(concurrency[1])
        if todo_items is not None:
            n = len(todo_items)
            if isinstance(concurrency, int) or concurrency is None:
                n_workers = max(1, min(n_workers, n))
            batch_size = max(1, min(batch_size, math.ceil(n / n_workers)))
            n_blocks = math.ceil(n / batch_size)
            try:
                ds = ray_mod.data.from_items(todo_items, override_num_blocks=n_blocks)
            except TypeError:  # Ray < 2.10
                ds = ray_mod.data.from_items(todo_items, parallelism=n_blocks)
            total = n
        else:
            ds = images.filter(_NotDone(done_ids)) if done_ids else images
            total = None
        if isinstance(concurrency, tuple):
            compute = ray_mod.data.ActorPoolStrategy(min_size=int(concurrency[0]), max_size=int(concurrency[1]))
        else:
            compute = ray_mod.data.ActorPoolStrategy(size=n_workers)
        remote: Dict[str, Any] = {}
        if actor_gpus:
            remote["num_gpus"] = actor_gpus
        if num_cpus:
            remote["num_cpus"] = num_cpus
        out = ds.map_batches(
            DatasetExplainer, fn_constructor_args=(model_factory, cfg), batch_size=batch_size,
            batch_format="pyarrow", compute=compute, **remote,
        )
        # Our own tqdm bar replaces Ray Data's progress bars and its periodic progress logs.
        ctx = ray_mod.data.DataContext.get_current()
        old_bars = ctx.enable_progress_bars
        ctx.enable_progress_bars = False
        data_logger = logging.getLogger("ray.data")
        old_level = data_logger.level
        data_logger.setLevel(logging.WARNING)
        bar = _progress_bar(total, progress)
        try:
            for table in out.iter_batches(batch_size=None, batch_format="pyarrow"):
                consume(table, bar)
        finally:
            ctx.enable_progress_bars = old_bars
            data_logger.setLevel(old_level)
            if bar is not None:
                bar.close()
        return n_workers
    finally:
        if started:
            ray_mod.shutdown()

r"""DiFull and GridPG in the harness: every method explains every chosen cell of every mosaic.

>>> from captum_submodular.compare import compare_grids
>>> res = compare_grids(classifier, cells, setting="difull")     # doctest: +SKIP
>>> print(res.table())                                           # doctest: +SKIP
>>> res.figure("aggatt.png")                                     # doctest: +SKIP

``cells`` are ``(G·n²)×C×H×W`` ordinary model inputs, mosaic by mosaic
(:func:`~captum_submodular.grids.make_grids`).  The class of a cell is what ``classifier``
predicts for its image alone (one clean pass).  Settings (:mod:`captum_submodular.grids`):

* ``"difull"``: the methods attribute :class:`~captum_submodular.grids.DisconnectedModel`
  (the classifier on every cell separately, per-cell log-softmax concatenated); target
  ``k·K + c`` for class ``c`` of cell ``k``.  Any attribution outside cell ``k`` is wrong.
* ``"gridpg"``: the methods attribute the classifier on the whole mosaic; target ``c``.

The line-up (:func:`grid_methods`): Captum's Occlusion, FeatureAblation, KernelShap, Lime,
IntegratedGradients and Grad-CAM, and ``SubmodularAttribution`` with each registered
search (``"ours:<search>"``).  The region methods share one feature mask of tiles aligned
with the cells (:func:`~captum_submodular.grids.cell_tiles_mask`); Occlusion slides a
window of one tile with a stride of half a tile, so some of its windows straddle a cell
border (Captum's usual overlapping windows); Grad-CAM uses the classifier's last conv
layer (in DiFull, each cell's layer output computed by its own copy, stitched into one
mosaic, then upsampled bilinearly like every layer map of the harness).

Each (mosaic, cell) pair is one ``attribute`` call with a batch of one, counted like
:func:`~captum_submodular.compare.compare` counts (one evaluation = one mosaic row).
Scores: :func:`~captum_submodular.grids.localisation` per call; the table gives the mean
and sample standard deviation over mosaics of each mosaic's mean, and the cost per mosaic
(the sum over its explained cells).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._model_state import model_guard
from ..grids import (
    AGGATT_BINS,
    AggAtt,
    DisconnectedModel,
    aggatt,
    cell_tiles_mask,
    difull_target,
    localisation,
    make_grids,
    plot_aggatt,
    select_grid_images,
)
from .harness import Method, _check_methods, explain_one

__all__ = [
    "GRID_SETTINGS",
    "GRID_CAPTUM_METHODS",
    "GridComparison",
    "compare_grids",
    "grid_lineup",
    "grid_methods",
    "grid_model",
    "pick_grid_cells",
]

#: The evaluation settings of :func:`compare_grids`.
GRID_SETTINGS = ("difull", "gridpg")
#: Captum's methods of the grid line-up (:func:`grid_methods`).
GRID_CAPTUM_METHODS = ("Occlusion", "FeatureAblation", "KernelShap", "Lime", "IntegratedGradients", "LayerGradCam")
_OURS = "ours:"
_FORMAT = "captum_submodular.compare_grids/1"


def grid_lineup() -> tuple[str, ...]:
    """Every method :func:`grid_methods` knows: Captum's, then ``"ours:<search>"`` for each
    registered search (:data:`captum_submodular.search.SEARCHES`)."""
    from ..search import SEARCHES

    return GRID_CAPTUM_METHODS + tuple(_OURS + s for s in SEARCHES)


def _check_setting(setting: Any) -> str:
    if setting not in GRID_SETTINGS:
        raise ValueError(f"setting: expected one of {list(GRID_SETTINGS)}, got {setting!r}")
    return str(setting)


def grid_model(classifier: nn.Module, setting: str, n: int = 2, layer: nn.Module | None = None) -> nn.Module:
    """The model the methods attribute: a :class:`~captum_submodular.grids.DisconnectedModel`
    for ``"difull"`` (exposing ``layer``, by default the classifier's last conv layer, for
    Grad-CAM), the classifier itself for ``"gridpg"``."""
    from ..regions import last_conv_layer

    if _check_setting(setting) == "gridpg":
        return classifier
    if layer is None and any(isinstance(m, nn.Conv2d) for m in classifier.modules()):
        layer = last_conv_layer(classifier)
    return DisconnectedModel(classifier, n, layer=layer)


def grid_methods(
    model: nn.Module,
    example_shape: Sequence[int],
    *,
    n: int = 2,
    include: Sequence[str] | None = None,
    tiles_per_cell: int = 2,
    occlusion_window: int | None = None,
    occlusion_stride: int | None = None,
    shap_samples: int = 64,
    lime_samples: int = 64,
    ig_steps: int = 16,
    layer: nn.Module | None = None,
    perturbations_per_eval: int = 16,
    device: torch.device | str | None = None,
) -> list[Method]:
    """The grid line-up on ``model`` (from :func:`grid_model`) for ``C×(n·H)×(n·W)`` mosaics.

    Parameters
    ----------
    model:
        What the methods attribute.
    example_shape:
        ``(C, n·H, n·W)``: one mosaic's shape.
    n, tiles_per_cell:
        Cells per side; tiles per cell side of the shared feature mask
        (:func:`~captum_submodular.grids.cell_tiles_mask`, ``n²·t²`` regions).
    include:
        Names from :func:`grid_lineup` (default: all of them).
    occlusion_window, occlusion_stride:
        Occlusion's square window and stride in pixels (default: one tile, half a tile).
    shap_samples, lime_samples, ig_steps:
        KernelShap / Lime samples, IntegratedGradients steps.
    layer:
        Grad-CAM's layer (default: ``model.mosaic_layer`` of a disconnected model, else the
        last conv layer of ``model``).
    perturbations_per_eval:
        Rows per model call of the perturbation methods.
    device:
        Where the shared feature mask lives (the inputs' device; default CPU).

    Returns
    -------
    list of Method
    """
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap, LayerGradCam, Lime, Occlusion

    from ..attribution import SubmodularAttribution
    from ..regions import last_conv_layer

    known = grid_lineup()
    names = list(known if include is None else include)
    unknown = [m for m in names if m not in known]
    if unknown or not names:
        raise ValueError(f"include: unknown method(s) {unknown or names}; choose from {list(known)}")
    if len(example_shape) != 3:
        raise ValueError(f"example_shape: expected (C, n·H, n·W), got {tuple(example_shape)}")
    c, hh, ww = (int(v) for v in example_shape)
    mask = cell_tiles_mask(n, hh, ww, tiles_per_cell).to(device or "cpu")
    tile = min(hh // n, ww // n) // tiles_per_cell
    window = occlusion_window or tile
    stride = occlusion_stride or max(1, math.ceil(tile / 2))
    ppe = perturbations_per_eval

    def gradcam_layer() -> nn.Module:
        if layer is not None:
            return layer
        if isinstance(model, DisconnectedModel):
            if model.layer is None:
                raise ValueError("layer: the disconnected model exposes no layer for Grad-CAM (build it with layer=)")
            return model.mosaic_layer
        return last_conv_layer(model)

    def build(name: str) -> Method:
        if name.startswith(_OURS):
            search = name[len(_OURS) :]
            return Method(
                name, SubmodularAttribution(model, search=search), {"feature_mask": mask, "perturbations_per_eval": ppe}
            )
        if name == "Occlusion":
            return Method(
                name,
                Occlusion(model),
                {
                    "sliding_window_shapes": (c, window, window),
                    "strides": (c, stride, stride),
                    "perturbations_per_eval": ppe,
                },
            )
        if name == "FeatureAblation":
            return Method(name, FeatureAblation(model), {"feature_mask": mask, "perturbations_per_eval": ppe})
        if name == "KernelShap":
            return Method(
                name,
                KernelShap(model),
                {"feature_mask": mask, "n_samples": shap_samples, "perturbations_per_eval": ppe},
            )
        if name == "Lime":
            return Method(
                name, Lime(model), {"feature_mask": mask, "n_samples": lime_samples, "perturbations_per_eval": ppe}
            )
        if name == "IntegratedGradients":
            return Method(name, IntegratedGradients(model), {"n_steps": ig_steps, "internal_batch_size": ig_steps})
        return Method(name, LayerGradCam(model, gradcam_layer()))

    return [build(name) for name in names]


def pick_grid_cells(
    classifier: Callable[[Tensor], Tensor],
    images: Tensor,
    n_grids: int,
    n: int = 2,
    min_confidence: float = 0.5,
    batch_size: int = 32,
) -> list[list[int]]:
    """Choose the images of ``n_grids`` mosaics (``n²`` confidently classified images of
    different predicted classes each; :func:`~captum_submodular.grids.select_grid_images`)
    from one clean pass of ``classifier`` over ``images`` (``M×C×H×W``).  Returns the image
    indices per mosaic."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError("images: expected a non-empty M×C×H×W tensor")
    with model_guard(classifier, caller="pick_grid_cells"), torch.no_grad():
        probs = torch.cat(
            [
                torch.softmax(classifier(images[i : i + batch_size]).double(), dim=1)
                for i in range(0, images.shape[0], batch_size)
            ]
        )
    conf, pred = probs.max(dim=1)
    return select_grid_images(pred.tolist(), conf.tolist(), n_grids, n, min_confidence)


def _stats(v: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite entries (NaN: undefined, left out)."""
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


@dataclass
class GridComparison:
    """The result of :func:`compare_grids`.

    Attributes
    ----------
    setting, n:
        ``"difull"`` or ``"gridpg"``; cells per side.
    methods:
        Method names, in order.
    localisation, absolute, evaluations, seconds:
        ``[method]``: ``(E,)`` arrays, one entry per explained (mosaic, cell) pair:
        :func:`~captum_submodular.grids.localisation` of the positive mass (NaN for a map
        without positive value) and of the absolute mass, the evaluations and seconds.
    grid_index, cells, classes, targets:
        Per explained pair: its mosaic, its cell, the cell's class and the target index the
        methods explained.
    confidences:
        Per explained pair: the classifier's softmax probability of the cell's class on the
        cell alone.
    names:
        Per mosaic, the names of its cells' images.
    maps:
        ``[method]``: ``E×1×(n·H)×(n·W)`` channel-summed maps (CPU, float32).
    inputs:
        ``G×C×(n·H)×(n·W)`` mosaics (CPU), when kept.
    """

    setting: str
    n: int
    methods: list[str]
    localisation: dict[str, np.ndarray]
    absolute: dict[str, np.ndarray]
    evaluations: dict[str, np.ndarray]
    seconds: dict[str, np.ndarray]
    grid_index: list[int]
    cells: list[int]
    classes: list[int]
    targets: list[int]
    confidences: list[float] = field(default_factory=list)
    names: list[list[str]] = field(default_factory=list)
    maps: dict[str, Tensor] = field(default_factory=dict)
    inputs: Tensor | None = None

    @property
    def n_grids(self) -> int:
        return len(set(self.grid_index))

    def per_grid(self, values: np.ndarray, reduce: str = "mean") -> np.ndarray:
        """``(G,)``: ``values`` (one per explained pair) reduced over each mosaic's cells
        (``"mean"`` of the finite values, NaN when none; or ``"sum"``), mosaics in order of
        first appearance."""
        grids = list(dict.fromkeys(self.grid_index))
        idx = np.asarray(self.grid_index)
        v = np.asarray(values, dtype=np.float64)
        out = []
        for g in grids:
            part = v[idx == g]
            if reduce == "sum":
                out.append(float(part.sum()))
            else:
                finite = part[np.isfinite(part)]
                out.append(float(finite.mean()) if finite.size else float("nan"))
        return np.asarray(out, dtype=np.float64)

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per method: ``localisation`` and ``absolute`` (mean, std over mosaics of each
        mosaic's mean), ``min`` (the worst cell's localisation), ``perfect`` (cells at
        exactly 1.0), ``undefined`` (maps without positive value), ``evaluations`` and
        ``seconds`` per mosaic (mean, std)."""
        out: dict[str, dict[str, Any]] = {}
        for m in self.methods:
            loc = np.asarray(self.localisation[m], dtype=np.float64)
            finite = loc[np.isfinite(loc)]
            out[m] = {
                "localisation": _stats(self.per_grid(loc)),
                "absolute": _stats(self.per_grid(self.absolute[m])),
                "min": float(finite.min()) if finite.size else float("nan"),
                "perfect": int((loc == 1.0).sum()),
                "undefined": int(np.isnan(loc).sum()),
                "evaluations": _stats(self.per_grid(self.evaluations[m], "sum")),
                "seconds": _stats(self.per_grid(self.seconds[m], "sum")),
            }
        return out

    def table(self, digits: int = 3) -> str:
        """Markdown table: one row per method; localisation (positive mass, the paper's
        score) and the share of absolute mass inside the cell, mean ± std over mosaics; the
        worst cell; cells at exactly 1.0; maps without positive value; evaluations and
        seconds per mosaic."""
        s = self.summary()
        e = len(self.grid_index)

        def pm(v: tuple[float, float]) -> str:
            return "n/a" if math.isnan(v[0]) else f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"

        lines = [
            f"| method | {self.setting} localisation ↑ (mean ± std over {self.n_grids} grids) | "
            f"\\|mass\\| inside ↑ | worst cell | cells at 1.0 (of {e}) | no positive value | "
            "evaluations/grid | seconds/grid |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m in self.methods:
            r = s[m]
            worst = "n/a" if math.isnan(r["min"]) else f"{r['min']:.{digits}f}"
            lines.append(
                f"| {m} | {pm(r['localisation'])} | {pm(r['absolute'])} | {worst} | {r['perfect']} | "
                f"{r['undefined']} | {r['evaluations'][0]:,.0f} | {r['seconds'][0]:.1f} |"
            )
        return "\n".join(lines)

    def aggatt(self, bins: Sequence[tuple[float, float]] = AGGATT_BINS) -> dict[str, AggAtt]:
        """AggAtt of every method over all explained pairs (:func:`~captum_submodular.grids.aggatt`)."""
        missing = [m for m in self.methods if m not in self.maps]
        if missing:
            raise ValueError(f"maps: no maps kept for {missing}")
        return {m: aggatt(self.maps[m], self.localisation[m], self.cells, self.n, bins) for m in self.methods}

    def figure(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        title: str | None = None,
        bins: Sequence[tuple[float, float]] = AGGATT_BINS,
    ) -> Any:
        """The AggAtt figure of every method (:func:`~captum_submodular.grids.plot_aggatt`)."""
        if title is None:
            title = (
                f"AggAtt, {self.setting}: {len(self.grid_index)} maps per method ({self.n_grids} grids), "
                f"bins of maps sorted by localisation, best first"
            )
        return plot_aggatt(self.aggatt(bins), path, title=title)

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict[str, Any]:
        """Every number per explained cell as plain Python (NaN as ``None``), for JSON."""

        def floats(v: np.ndarray) -> list[float | None]:
            return [None if math.isnan(float(x)) else float(x) for x in np.asarray(v, dtype=np.float64)]

        return {
            "format": _FORMAT, "setting": self.setting, "n": self.n, "grid_index": list(self.grid_index),
            "cells": list(self.cells), "classes": list(self.classes), "targets": list(self.targets),
            "confidences": list(self.confidences), "names": [list(v) for v in self.names],
            "methods": {m: {"localisation": floats(self.localisation[m]), "absolute": floats(self.absolute[m]),
                            "evaluations": floats(self.evaluations[m]), "seconds": floats(self.seconds[m])}
                        for m in self.methods},
        }  # fmt: skip

    def to_json(self, path: str | os.PathLike[str]) -> str:
        """Write :meth:`to_dict` as JSON; returns the path."""
        import json

        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1, ensure_ascii=False)
        return path

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write everything (maps included, inputs not) with ``torch.save``; returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

        def tensors(values: dict[str, np.ndarray]) -> dict[str, Tensor]:
            return {m: torch.from_numpy(np.asarray(v, dtype=np.float64)) for m, v in values.items()}

        data = {
            "format": _FORMAT, "setting": self.setting, "n": self.n, "methods": list(self.methods),
            "localisation": tensors(self.localisation),
            "absolute": tensors(self.absolute),
            "evaluations": tensors(self.evaluations),
            "seconds": tensors(self.seconds),
            "grid_index": list(self.grid_index), "cells": list(self.cells), "classes": list(self.classes),
            "targets": list(self.targets), "confidences": list(self.confidences),
            "names": [list(v) for v in self.names], "maps": dict(self.maps),
        }  # fmt: skip
        torch.save(data, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> GridComparison:
        """Read a file written by :meth:`save`."""
        data = torch.load(os.fspath(path), weights_only=True)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"path: {path} is not a grid comparison file")
        return cls(
            setting=data["setting"], n=int(data["n"]), methods=list(data["methods"]),
            localisation={m: v.numpy() for m, v in data["localisation"].items()},
            absolute={m: v.numpy() for m, v in data["absolute"].items()},
            evaluations={m: v.numpy() for m, v in data["evaluations"].items()},
            seconds={m: v.numpy() for m, v in data["seconds"].items()},
            grid_index=list(data["grid_index"]), cells=list(data["cells"]), classes=list(data["classes"]),
            targets=list(data["targets"]), confidences=list(data["confidences"]),
            names=[list(v) for v in data["names"]], maps=dict(data["maps"]),
        )  # fmt: skip

    @classmethod
    def merge(cls, parts: Sequence[GridComparison]) -> GridComparison:
        """One comparison from runs of different methods on the same examples (e.g. one
        process per method); methods keep the order of ``parts``."""
        parts = list(parts)
        if not parts:
            raise ValueError("parts: expected at least one GridComparison")
        first = parts[0]
        for i, p in enumerate(parts[1:], 1):
            for attr in ("setting", "n", "grid_index", "cells", "classes", "targets"):
                if getattr(p, attr) != getattr(first, attr):
                    raise ValueError(f"parts[{i}]: {attr} differs from parts[0]'s")
        methods = [m for p in parts for m in p.methods]
        if len(set(methods)) != len(methods):
            raise ValueError(f"parts: a method appears in several parts ({methods})")
        return cls(
            setting=first.setting, n=first.n, methods=methods,
            localisation={m: p.localisation[m] for p in parts for m in p.methods},
            absolute={m: p.absolute[m] for p in parts for m in p.methods},
            evaluations={m: p.evaluations[m] for p in parts for m in p.methods},
            seconds={m: p.seconds[m] for p in parts for m in p.methods},
            grid_index=list(first.grid_index), cells=list(first.cells), classes=list(first.classes),
            targets=list(first.targets), confidences=list(first.confidences), names=list(first.names),
            maps={m: p.maps[m] for p in parts for m in p.methods if m in p.maps}, inputs=first.inputs,
        )  # fmt: skip


def _explained_cells(explain: Any, n_grids: int, n: int) -> list[list[int]]:
    if explain == "all":
        return [list(range(n * n)) for _ in range(n_grids)]
    if explain == "rotate":
        return [[g % (n * n)] for g in range(n_grids)]
    if not isinstance(explain, (list, tuple)) or len(explain) != n_grids:
        raise ValueError(
            f"explain: expected 'all', 'rotate' or one list of cells per grid ({n_grids}), got {explain!r}"
        )
    out = []
    for cells in explain:
        if (
            not isinstance(cells, (list, tuple))
            or not cells
            or any(isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n * n for k in cells)
        ):
            raise ValueError(f"explain: every grid needs a non-empty list of cells in [0, {n * n}), got {cells!r}")
        out.append([int(k) for k in cells])
    return out


def compare_grids(
    classifier: nn.Module,
    cells: Tensor,
    *,
    setting: str,
    methods: Sequence[str] | Callable[[nn.Module], Sequence[Method]] | None = None,
    n: int = 2,
    explain: str | Sequence[Sequence[int]] = "all",
    names: Sequence[str] | None = None,
    keep_inputs: bool = True,
    show_progress: bool = True,
    **lineup: Any,
) -> GridComparison:
    r"""Score methods on DiFull or GridPG mosaics.

    Parameters
    ----------
    classifier:
        Image classifier, ``M×C×H×W → M×K`` logits, accepting ``C×(n·H)×(n·W)`` inputs too
        for GridPG (global pooling).  Evaluated in eval mode; modes and buffers restored.
    cells:
        ``(G·n²)×C×H×W``: the cells of ``G`` mosaics, mosaic by mosaic, row-major.
    setting:
        ``"difull"`` or ``"gridpg"`` (module docstring).
    methods:
        Names from :func:`grid_lineup` (default: all), built by :func:`grid_methods` with
        ``**lineup``; or a callable ``model -> list of Method`` (``model`` is what the
        methods must attribute: :func:`grid_model`'s result).
    n:
        Cells per side.
    explain:
        Which cells to explain: ``"all"`` (every cell of every mosaic), ``"rotate"`` (cell
        ``g mod n²`` of mosaic ``g``), or one list of cells per mosaic.
    names:
        ``G·n²`` image names (default ``image i``).
    keep_inputs:
        Keep the mosaics in the result.
    show_progress:
        tqdm bar over methods × explained cells.
    \*\*lineup:
        Keyword arguments of :func:`grid_methods` (``tiles_per_cell``, ``shap_samples``, …).

    Returns
    -------
    GridComparison

    Raises
    ------
    ValueError
        Naming the argument, before any model call: an unknown setting or method, cells
        that do not fill whole mosaics, bad ``explain`` or ``names``.
    """
    setting = _check_setting(setting)
    grids = make_grids(cells.detach() if isinstance(cells, Tensor) else cells, n)
    n_grids = grids.shape[0]
    explained = _explained_cells(explain, n_grids, n)
    if names is not None and len(names) != cells.shape[0]:
        raise ValueError(f"names: expected one name per cell image ({cells.shape[0]}), got {len(names)}")
    cell_names = list(names) if names is not None else [f"image {i}" for i in range(cells.shape[0])]
    layer = lineup.pop("layer", None)  # DiFull: the classifier's layer to expose; GridPG: Grad-CAM's layer
    model = grid_model(classifier, setting, n, layer if setting == "difull" else None)
    if callable(methods):
        chosen = _check_methods(list(methods(model)))
    else:
        chosen = _check_methods(
            grid_methods(
                model,
                tuple(grids.shape[1:]),
                n=n,
                include=methods,
                layer=None if setting == "difull" else layer,
                device=lineup.pop("device", grids.device),
                **lineup,
            )
        )

    with model_guard(model, *[m.attribution for m in chosen], caller="compare_grids"):
        with torch.no_grad():
            logits = classifier(cells.detach())
        probs = torch.softmax(logits.double(), dim=1)
        n_classes = int(logits.shape[1])
        conf, pred = probs.max(dim=1)
        grid_index, which, classes, targets, confidences = [], [], [], [], []
        for g, ks in enumerate(explained):
            for k in ks:
                c = int(pred[g * n * n + k])
                grid_index.append(g)
                which.append(k)
                classes.append(c)
                confidences.append(float(conf[g * n * n + k]))
                targets.append(difull_target(k, c, n_classes) if setting == "difull" else c)
        inputs = grids[torch.as_tensor(grid_index)]
        e = len(targets)
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(chosen) * e, desc=f"compare {setting}", unit="expl", file=sys.stderr)
        loc: dict[str, np.ndarray] = {}
        absolute: dict[str, np.ndarray] = {}
        evals: dict[str, np.ndarray] = {}
        secs: dict[str, np.ndarray] = {}
        maps: dict[str, Tensor] = {}
        try:
            for method in chosen:
                ev, sc, per = np.zeros(e), np.zeros(e), []
                for i in range(e):
                    if bar is not None:
                        bar.set_postfix_str(f"{method.name} grid {grid_index[i]} cell {which[i]}")
                    a, ev[i], sc[i] = explain_one(method, inputs, i, targets[i])
                    per.append(a.sum(dim=1, keepdim=True).float())
                    if bar is not None:
                        bar.update(1)
                maps[method.name] = torch.cat(per)
                loc[method.name] = localisation(maps[method.name], which, n).numpy()
                absolute[method.name] = localisation(maps[method.name], which, n, mass="absolute").numpy()
                evals[method.name], secs[method.name] = ev, sc
        finally:
            if bar is not None:
                bar.close()
    return GridComparison(
        setting=setting, n=n, methods=[m.name for m in chosen], localisation=loc, absolute=absolute,
        evaluations=evals, seconds=secs,
        grid_index=grid_index, cells=which, classes=classes, targets=targets, confidences=confidences,
        names=[cell_names[g * n * n : (g + 1) * n * n] for g in range(n_grids)], maps=maps,
        inputs=grids.cpu() if keep_inputs else None,
    )  # fmt: skip

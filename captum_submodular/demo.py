"""The work behind the ``captum-submodular`` command line: explain, score and draw.

This module holds everything the CLI does that is not argument parsing, so that it
can also be used from Python:

* :func:`resolve_model` — the default offline model, a torchvision model from the
  local cache, or a user factory (``module:function`` / ``path.py:function``);
* :func:`build_mask` — SLIC / grid / prior-guided (Grad-CAM) regions for one image;
* :func:`resolve_target` — a class index from an int, a class name or the prediction;
* :func:`explain_submodular`, :func:`explain_occlusion`, :func:`score_curves` — the
  two attribution methods and the pixel-grid insertion / deletion protocol;
* :func:`draw_figure` — one row per image (original, maps, minimal subset, curves),
  written as a PNG on matplotlib's Agg canvas (helpers from :mod:`.plotting`);
* :func:`analyse_image` — all of the above for one image, as a figure row and a
  JSON-ready record.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from .models import DEFAULT_MODEL, LoadedModel, load_model, resolve_device
from .search import DEFAULT_SEARCH

__all__ = [
    "REGION_KINDS",
    "OCCLUSION_WINDOW",
    "OCCLUSION_STRIDES",
    "CountingForward",
    "MethodRun",
    "ImageRow",
    "check_device",
    "load_model_factory",
    "resolve_model",
    "resolve_target",
    "build_mask",
    "predict",
    "explain_submodular",
    "explain_occlusion",
    "score_curves",
    "draw_figure",
    "to_jsonable",
    "gradcam_prior",
    "AnalysisConfig",
    "Analysis",
    "analyse_image",
]

#: Region builders accepted by :func:`build_mask`.
REGION_KINDS = ("slic", "grid", "prior")
#: Captum's Occlusion tutorial settings (ImageNet models).
OCCLUSION_WINDOW = (3, 15, 15)
OCCLUSION_STRIDES = (3, 8, 8)

#: Colours of the two methods in the curve panels.
_COLOURS = {"SubmodularAttribution": "#d95f02", "Occlusion": "#1b9e77"}


# --------------------------------------------------------------------------- models


def check_device(device: str) -> torch.device:
    """Parse ``device`` and make sure it exists here (``ValueError`` otherwise).

    :func:`captum_submodular.models.resolve_device`, restricted to CPU, CUDA and MPS.
    """
    dev = resolve_device(device)
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


def load_model_factory(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` or ``path/to/file.py:function`` (``ValueError`` on failure)."""
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise ValueError(f"--model-factory must look like 'package.module:function' or "
                         f"'path/to/file.py:function', got {spec!r}")
    try:
        if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
            if not os.path.isfile(module_part):
                raise ValueError(f"--model-factory: file not found: {module_part}")
            name = "_captum_submodular_factory_" + str(abs(hash(os.path.abspath(module_part))))
            mod_spec = importlib.util.spec_from_file_location(name, module_part)
            if mod_spec is None or mod_spec.loader is None:
                raise ValueError(f"--model-factory: cannot import {module_part}")
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_part)
    except ValueError:
        raise
    except Exception as exc:  # ImportError, SyntaxError, errors raised while importing
        raise ValueError(f"--model-factory: cannot import {module_part!r} "
                         f"({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ValueError(f"--model-factory: {module_part!r} has no callable {attr!r}")
    return factory


def _from_factory(spec: str, dev: torch.device) -> LoadedModel:
    factory = load_model_factory(spec)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    out = factory(device=str(dev)) if "device" in params else factory()
    missing = [a for a in ("model", "preprocess", "class_names") if not hasattr(out, a)]
    if missing:
        raise ValueError(f"--model-factory {spec!r} returned a {type(out).__name__} without "
                         f"{', '.join(missing)}; return a LoadedModel-like object with model, "
                         "preprocess, class_names (and optionally name, mean, std)")
    model = out.model
    if isinstance(model, nn.Module):
        model = model.eval().to(dev)
    mean = tuple(float(v) for v in getattr(out, "mean", (0.0, 0.0, 0.0)))
    std = tuple(float(v) for v in getattr(out, "std", (1.0, 1.0, 1.0)))
    return LoadedModel(model=model, preprocess=out.preprocess, class_names=list(out.class_names),
                       name=str(getattr(out, "name", spec)), mean=mean, std=std)  # type: ignore[arg-type]


def resolve_model(name: Optional[str], device: str, factory: Optional[str] = None) -> LoadedModel:
    """The model to explain: a user factory if given, else :func:`load_model` by name."""
    dev = check_device(device)
    if factory:
        return _from_factory(factory, dev)
    return load_model(name or DEFAULT_MODEL, dev)


class CountingForward:
    """Wraps a model; counts the inputs (rows) it is called on, optionally with a progress bar."""

    def __init__(self, model: Callable[..., Tensor], desc: Optional[str] = None,
                 total: Optional[int] = None) -> None:
        self.model = model
        self.count = 0
        self.bar = None
        if desc is not None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="evals", file=sys.stderr, mininterval=0.5,
                            leave=False)

    def __call__(self, x: Tensor, *args: Any) -> Tensor:
        out = self.model(x, *args)
        self.count += int(x.shape[0])
        if self.bar is not None:
            self.bar.update(int(x.shape[0]))
        return out

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# --------------------------------------------------------------------------- targets


def predict(lm: LoadedModel, x: Tensor) -> Tensor:
    """Softmax probabilities of one preprocessed batch (on the CPU)."""
    with torch.no_grad():
        return torch.softmax(lm.model(x).float(), dim=-1).cpu()


def resolve_target(spec: Optional[str], class_names: Sequence[str]) -> Optional[int]:
    """``None`` (use the prediction), an index, or a class name.

    Names match case-insensitively, first exactly, then as a unique substring.
    """
    if spec is None:
        return None
    text = str(spec).strip()
    n = len(class_names)
    try:
        index = int(text)
    except ValueError:
        index = None
    if index is not None:
        if not 0 <= index < n:
            raise ValueError(f"--target {index} is out of range: the model has {n} classes (0..{n - 1})")
        return index
    key = text.lower()
    lowered = [c.lower() for c in class_names]
    exact = [i for i, c in enumerate(lowered) if c == key]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        listed = ", ".join(f"{i} ({class_names[i]})" for i in exact)
        raise ValueError(f"--target {text!r} names several classes: {listed}; pass the index instead")
    partial = [i for i, c in enumerate(lowered) if key in c]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        shown = ", ".join(f"{class_names[i]!r} ({i})" for i in partial[:10])
        more = f" and {len(partial) - 10} more" if len(partial) > 10 else ""
        raise ValueError(f"--target {text!r} is ambiguous; it matches {shown}{more}. "
                         "Use a longer name or the class index")
    close = difflib.get_close_matches(key, lowered, n=5, cutoff=0.6)
    hint = ("; did you mean " + ", ".join(repr(class_names[lowered.index(c)]) for c in close) + "?"
            if close else "; pass a class index (0..%d) or a class name" % (n - 1))
    raise ValueError(f"unknown class name {text!r}{hint}")


# --------------------------------------------------------------------------- regions


def _last_conv(model: nn.Module) -> Optional[nn.Module]:
    last = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            last = module
    return last


def gradcam_prior(lm: LoadedModel, x: Tensor, target: int) -> Tensor:
    """Grad-CAM (Captum ``LayerGradCam`` on the last conv layer), upsampled to the input.

    Falls back to Captum ``Saliency`` (summed over channels) for models without a conv layer.
    """
    from captum.attr import LayerAttribution, LayerGradCam, Saliency

    layer = _last_conv(lm.model) if isinstance(lm.model, nn.Module) else None
    with torch.enable_grad():
        if layer is not None:
            cam = LayerGradCam(lm.model, layer).attribute(x, target=target)
            prior = LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), "bilinear")
        else:
            prior = Saliency(lm.model).attribute(x, target=target).detach().sum(1, keepdim=True)
    return prior[0].float()


def _slic_near(image: Tensor, n_regions: int, attempts: int = 3) -> Tensor:
    """SLIC with ``n_segments`` adjusted so that the merged mask has about ``n_regions`` regions
    (SLIC often returns fewer segments than asked for, and tiny ones are merged)."""
    from .regions import slic_mask

    best, best_gap, n_seg = None, None, n_regions
    for _ in range(attempts):
        mask = slic_mask(image, n_segments=n_seg)
        m = int(torch.unique(mask).numel())
        gap = abs(m - n_regions)
        if best_gap is None or gap < best_gap:
            best, best_gap = mask, gap
        if gap <= max(1, n_regions // 10):
            break
        n_seg = max(2, round(n_seg * n_regions / max(m, 1)))
    return best


def build_mask(kind: str, lm: LoadedModel, x: Tensor, target: int, n_regions: int,
               grid: Optional[int] = None) -> Tuple[Tensor, str]:
    """A ``1×1×H×W`` feature mask for the single image ``x`` (``1×C×H×W``) and a description."""
    from .regions import grid_mask, prior_guided_mask, relabel

    if n_regions < 2:
        raise ValueError(f"--n-regions must be at least 2, got {n_regions}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if kind == "slic":
        mask = _slic_near(x[0].cpu(), n_regions)
        desc = "SLIC superpixels"
    elif kind == "grid":
        g = grid if grid is not None else max(2, round(math.sqrt(n_regions)))
        if not 1 <= g <= min(h, w):
            raise ValueError(f"--grid {g} does not fit a {h}×{w} input")
        mask = grid_mask(h, w, grid=g)
        desc = f"{g}×{g} grid"
    elif kind == "prior":
        g = grid if grid is not None else max(10, math.ceil(math.sqrt(n_regions)))
        if not 1 <= g <= min(h, w):
            raise ValueError(f"--grid {g} does not fit a {h}×{w} input")
        cells = max(1, math.ceil(g * g / n_regions))
        prior = gradcam_prior(lm, x, target)
        mask = prior_guided_mask(prior.cpu(), grid=g, cells_per_region=cells, size=(h, w))
        mask = relabel(mask)
        desc = f"Grad-CAM-guided, {g}×{g} cells"
    else:
        raise ValueError(f"--regions must be one of {', '.join(REGION_KINDS)}, got {kind!r}")
    mask = mask.to(x.device)
    m = int(torch.unique(mask).numel())
    return mask, f"{m} regions: {desc}"


# --------------------------------------------------------------------------- methods


@dataclass
class MethodRun:
    """One attribution method on one image, with its pixel-grid insertion / deletion curves."""

    method: str
    attributions: Tensor            # 1×C×H×W, on the CPU
    seconds: float
    n_evaluations: int
    insertion: float = float("nan")
    deletion: float = float("nan")
    insertion_curve: Optional[Tuple[List[float], List[float]]] = None
    deletion_curve: Optional[Tuple[List[float], List[float]]] = None
    extra: Dict[str, Any] = field(default_factory=dict)


def explain_submodular(lm: LoadedModel, x: Tensor, target: int, mask: Tensor, search: str,
                       batch_size: int, show_progress: bool) -> Tuple[MethodRun, Any]:
    """Run :class:`SubmodularAttribution`; returns the run and the ``SubmodularResult``."""
    from .attribution import SubmodularAttribution

    explainer = SubmodularAttribution(lm.model, search=search)
    start = time.perf_counter()
    result = explainer.explain(x, target=target, feature_mask=mask, perturbations_per_eval=batch_size,
                               show_progress=show_progress)[0]
    seconds = time.perf_counter() - start
    run = MethodRun("SubmodularAttribution", result.attributions.detach().cpu(), seconds,
                    int(result.n_evaluations))
    return run, result


def explain_occlusion(lm: LoadedModel, x: Tensor, target: int, batch_size: int,
                      show_progress: bool) -> MethodRun:
    """Captum ``Occlusion`` at the tutorial settings (window 3×15×15, stride 3×8×8, baseline 0)."""
    from captum.attr import Occlusion

    # Captum's own bar counts something else than model inputs; count them ourselves.
    total = 1 + math.prod(math.ceil((size - w) / s) + 1 for size, w, s in
                          zip(x.shape[1:], OCCLUSION_WINDOW, OCCLUSION_STRIDES))
    forward = CountingForward(lm.model, "Occlusion" if show_progress else None, total)
    start = time.perf_counter()
    try:
        with torch.no_grad():
            attrs = Occlusion(forward).attribute(
                x, sliding_window_shapes=OCCLUSION_WINDOW, strides=OCCLUSION_STRIDES, baselines=0.0,
                target=target, perturbations_per_eval=batch_size)
    finally:
        forward.close()
    seconds = time.perf_counter() - start
    return MethodRun("Occlusion", attrs.detach().cpu(), seconds, forward.count)


def score_curves(lm: LoadedModel, x: Tensor, target: int, runs: Sequence[MethodRun], n_steps: int,
                 batch_size: int, show_progress: bool = False) -> int:
    """Pixel-grid insertion / deletion (``metrics.insertion`` / ``deletion``, baseline 0) for
    every run, filled in place; returns the number of model evaluations spent."""
    from . import metrics

    forward = CountingForward(lm.model, "insertion/deletion" if show_progress else None,
                              1 + 2 * len(runs) * n_steps)
    try:
        with torch.no_grad():
            clean = forward(x)
        for run in runs:
            attrs = run.attributions.to(x.device)
            for kind, fn in (("insertion", metrics.insertion), ("deletion", metrics.deletion)):
                res = fn(forward, x, attrs, target=target, n_steps=n_steps, return_curves=True,
                         perturbations_per_eval=batch_size, clean_output=clean)
                setattr(run, kind, float(res.area[0]))
                curve = ([float(v) for v in res.fractions[0]], [float(v) for v in res.scores[0]])
                setattr(run, f"{kind}_curve", curve)
    finally:
        forward.close()
    return forward.count


# --------------------------------------------------------------------------- figure


@dataclass
class ImageRow:
    """What one row of the figure shows."""

    name: str
    image: np.ndarray                 # H×W×3 in [0, 1]
    target: int
    target_name: str
    probability: float
    label_name: Optional[str]
    mask: np.ndarray                  # H×W region ids
    region_desc: str
    submodular: MethodRun
    minimal_subset: List[int]
    minimal_score: float
    search_curves: Tuple[List[float], List[float]]   # region-level insertion, deletion
    occlusion: Optional[MethodRun] = None


def _subset_view(ax: Any, image: np.ndarray, mask: np.ndarray, subset: Sequence[int]) -> float:
    """The minimal subset on the image: other regions dimmed, outline in yellow, ranks numbered."""
    import matplotlib.patheffects as pe
    from skimage.segmentation import find_boundaries

    keep = np.isin(mask, np.asarray(list(subset), dtype=mask.dtype))
    shown = np.where(keep[..., None], image, 0.18 * image + 0.1).copy()
    outline = find_boundaries(keep.astype(np.int64), mode="inner")
    inner = find_boundaries(mask, mode="inner") & keep & ~outline
    shown[inner] = (1.0, 1.0, 1.0)
    shown[outline] = (1.0, 0.85, 0.1)
    ax.imshow(np.clip(shown, 0, 1))
    if len(subset) <= 12:
        size = max(mask.shape)
        for rank, rid in enumerate(subset, 1):
            ys, xs = np.nonzero(mask == rid)
            if len(ys) == 0:
                continue
            # the region's pixel nearest to its centroid, so the label sits on the region
            j = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
            ax.text(xs[j], ys[j], str(rank), ha="center", va="center", fontsize=8 if size > 64 else 6,
                    color="white", fontweight="bold",
                    path_effects=[pe.withStroke(linewidth=2, foreground="black")])
    return float(keep.mean())


def _curve_panel(ax: Any, kind: str, runs: Sequence[MethodRun]) -> None:
    from .plotting import plot_curves

    runs = [r for r in runs if getattr(r, f"{kind}_curve") is not None]
    curves = {_short(r.method): getattr(r, f"{kind}_curve") for r in runs}
    areas = {_short(r.method): getattr(r, kind) for r in runs}
    colours = {_short(r.method): _COLOURS.get(r.method, f"C{i}") for i, r in enumerate(runs)}
    better = "higher is better" if kind == "insertion" else "lower is better"
    plot_curves(ax, curves, areas=areas, colors=colours, title=f"{kind.capitalize()} ({better})",
                xlabel="fraction of pixels " + ("inserted" if kind == "insertion" else "deleted"),
                legend_loc="lower right" if kind == "insertion" else "upper right")
    for r in runs:
        f, sc = getattr(r, f"{kind}_curve")
        ax.fill_between(f, sc, color=colours[_short(r.method)], alpha=0.07)
    ax.set_ylim(0, 1.02)
    ax.set_box_aspect(1)


def _search_curve_panel(ax: Any, curves: Tuple[List[float], List[float]]) -> None:
    ins, dele = curves
    k = np.arange(len(ins))
    ax.plot(k, ins, color="#d95f02", lw=2, label="insertion (keep top k)")
    ax.plot(k, dele, color="#7570b3", lw=2, ls="--", label="deletion (remove top k)")
    ax.set_title("Search curves (regions)", fontsize=10)
    ax.set_xlabel("k regions", fontsize=8)
    ax.set_ylabel("p(target)", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="center right", framealpha=0.85)
    ax.set_box_aspect(1)


def _short(method: str) -> str:
    return "Submodular" if method == "SubmodularAttribution" else method


def draw_figure(rows: Sequence[ImageRow], path: str, title: Optional[str] = None) -> str:
    """Write the figure (one row per image) to ``path`` as a PNG (Agg canvas); returns ``path``."""
    from .plotting import new_figure, overlay

    with_occlusion = any(r.occlusion is not None for r in rows)
    with_metrics = any(r.submodular.insertion_curve is not None for r in rows)
    n_cols = 3 + (1 if with_occlusion else 0) + (2 if with_metrics else 1)
    fig = new_figure((2.75 * n_cols, 3.05 * len(rows) + (0.45 if title else 0.1)))
    axes = np.asarray(fig.subplots(len(rows), n_cols, squeeze=False))
    for r, row in enumerate(rows):
        ax = axes[r]
        label = f"\nlabel: {row.label_name}" if row.label_name else ""
        ax[0].imshow(row.image)
        ax[0].set_title(f"{row.name}\n{row.target_name} (p = {row.probability:.2f}){label}", fontsize=9)
        overlay(ax[1], row.image, row.submodular.attributions[0], fontsize=9,
                title=f"SubmodularAttribution\n{row.region_desc}\n"
                      f"{row.submodular.n_evaluations:,} evals, {row.submodular.seconds:.0f} s")
        m = int(np.unique(row.mask).size)
        frac = _subset_view(ax[2], row.image, row.mask, row.minimal_subset)
        ax[2].set_title(f"Minimal subset: {len(row.minimal_subset)}/{m} regions\n"
                        f"{100 * frac:.0f}% of the image, p = {row.minimal_score:.2f}", fontsize=9)
        col = 3
        if with_occlusion:
            if row.occlusion is not None:
                overlay(ax[col], row.image, row.occlusion.attributions[0], fontsize=9,
                        title=f"Occlusion (15×15, stride 8)\n"
                              f"{row.occlusion.n_evaluations:,} evals, {row.occlusion.seconds:.0f} s")
            col += 1
        for a in ax[:col]:
            a.set_xticks([])
            a.set_yticks([])
        runs = [row.submodular] + ([row.occlusion] if row.occlusion is not None else [])
        if with_metrics:
            _curve_panel(ax[col], "insertion", runs)
            _curve_panel(ax[col + 1], "deletion", runs)
        else:
            _search_curve_panel(ax[col], row.search_curves)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------- JSON


def to_jsonable(value: Any, digits: int = 6) -> Any:
    """Tensors, arrays and numpy scalars → plain lists / numbers (floats rounded)."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), digits)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return round(v, digits) if math.isfinite(v) else None
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, digits) for v in value]
    return value


# --------------------------------------------------------------------------- one image


@dataclass
class AnalysisConfig:
    """Settings shared by ``demo`` and ``explain``."""

    search: str = DEFAULT_SEARCH
    regions: str = "slic"
    n_regions: int = 49
    grid: Optional[int] = None
    n_steps: int = 50
    batch_size: int = 32
    show_progress: bool = True
    occlusion: bool = False
    metrics: bool = True


@dataclass
class Analysis:
    """The result of :func:`analyse_image`: a figure row, a JSON record and the cost."""

    row: ImageRow
    record: Dict[str, Any]
    n_evaluations: int          # every model input, attribution and metrics together
    seconds: float


def analyse_image(lm: LoadedModel, name: str, image: Any, cfg: AnalysisConfig,
                  target: Optional[int] = None, label: Optional[int] = None,
                  log: Callable[[str], None] = lambda s: None) -> Analysis:
    """Explain one PIL image with SubmodularAttribution (and Occlusion when ``cfg.occlusion``)."""
    start = time.perf_counter()
    device = lm.device
    x = lm.preprocess(image)
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"the model's preprocess must return a C×H×W tensor, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")
    x = x[None].to(device)
    probs = predict(lm, x)[0]
    predicted = int(probs.argmax())
    tgt = predicted if target is None else int(target)
    if not 0 <= tgt < probs.numel():
        raise ValueError(f"target {tgt} is out of range for a model with {probs.numel()} outputs")
    names = lm.class_names
    tname = names[tgt] if tgt < len(names) else str(tgt)
    log(f"{name}: target {tgt} {tname!r} (p = {float(probs[tgt]):.3f}"
        + (", predicted)" if tgt == predicted else f"; predicted {names[predicted]!r})"))
    mask, region_desc = build_mask(cfg.regions, lm, x, tgt, cfg.n_regions, cfg.grid)
    sub, result = explain_submodular(lm, x, tgt, mask, cfg.search, cfg.batch_size, cfg.show_progress)
    evals = 1 + sub.n_evaluations
    occ = None
    if cfg.occlusion:
        occ = explain_occlusion(lm, x, tgt, cfg.batch_size, cfg.show_progress)
        evals += occ.n_evaluations
    runs = [sub] + ([occ] if occ is not None else [])
    metric_evals = 0
    if cfg.metrics:
        metric_evals = score_curves(lm, x, tgt, runs, cfg.n_steps, cfg.batch_size, cfg.show_progress)
        evals += metric_evals
    k_min = int(result.minimal_subset.numel())
    ins = result.insertion_curve
    minimal_score = float(ins[k_min])
    display = lm.to_display(x[0].cpu())
    mask_np = mask[0, 0].cpu().numpy()
    label_name = names[label] if label is not None and 0 <= label < len(names) else None
    row = ImageRow(
        name=name, image=display, target=tgt, target_name=tname, probability=float(probs[tgt]),
        label_name=label_name, mask=mask_np, region_desc=region_desc, submodular=sub,
        minimal_subset=[int(v) for v in result.minimal_subset], minimal_score=minimal_score,
        search_curves=([float(v) for v in ins], [float(v) for v in result.deletion_curve]),
        occlusion=occ,
    )

    def method_record(run: MethodRun) -> Dict[str, Any]:
        rec: Dict[str, Any] = {"n_evaluations": run.n_evaluations, "seconds": run.seconds}
        if run.insertion_curve is not None:
            rec["insertion_auc"] = run.insertion
            rec["deletion_auc"] = run.deletion
            rec["insertion_curve"] = {"fractions": run.insertion_curve[0], "scores": run.insertion_curve[1]}
            rec["deletion_curve"] = {"fractions": run.deletion_curve[0], "scores": run.deletion_curve[1]}
        return rec

    sub_rec = method_record(sub)
    sub_rec.update({
        "search": cfg.search,
        "order": result.order,
        "region_values": result.region_values[torch.searchsorted(result.region_ids, result.order)],
        "minimal_subset": result.minimal_subset,
        "minimal_subset_size": k_min,
        "minimal_subset_score": minimal_score,
        "threshold": result.threshold,
        "search_insertion_curve": ins,
        "search_deletion_curve": result.deletion_curve,
        "objective_values": result.objective_values,
    })
    record: Dict[str, Any] = {
        "name": name,
        "model": lm.name,
        "input_shape": list(x.shape[1:]),
        "target": tgt,
        "class_name": tname,
        "probability": float(probs[tgt]),
        "predicted": predicted,
        "predicted_name": names[predicted] if predicted < len(names) else str(predicted),
        "label": label,
        "label_name": label_name,
        "regions": {"kind": cfg.regions, "n_regions": int(torch.unique(mask).numel()),
                    "description": region_desc},
        "methods": {"SubmodularAttribution": sub_rec},
        "metric_protocol": ({"kind": "pixel grid", "n_steps": cfg.n_steps, "baseline": 0.0,
                             "output": "softmax", "n_evaluations": metric_evals}
                            if cfg.metrics else None),
    }
    if occ is not None:
        record["methods"]["Occlusion"] = dict(
            method_record(occ), sliding_window_shapes=list(OCCLUSION_WINDOW),
            strides=list(OCCLUSION_STRIDES), baselines=0.0)
    seconds = time.perf_counter() - start
    record["seconds"] = seconds
    record["n_evaluations"] = evals
    return Analysis(row=row, record=to_jsonable(record), n_evaluations=evals, seconds=seconds)

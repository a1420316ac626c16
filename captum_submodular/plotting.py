"""Plotting: helpers shared by the comparison harness and the command line, and the
per-image figure of ``explain`` and the demo (:func:`explanation_figure`).

All functions draw on a Matplotlib ``Axes`` handed in by the caller and never
choose a backend or create figures themselves (except :func:`new_figure`, which
uses the non-interactive Agg canvas), so they work headless.

Conventions
-----------
* Images are ``H×W×3`` float arrays in ``[0, 1]`` (see :func:`to_image`).
* Attribution maps are reduced to ``H×W`` by summing the channel axis
  (:func:`heatmap`), the same reduction the faithfulness metrics use.
* Overlays use a diverging red/blue colour map centred on 0: red supports the
  target, blue opposes it, transparent is neutral.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = ["to_image", "heatmap", "overlay", "plot_curves", "mean_curve", "new_figure", "explanation_figure"]

#: Colours of the methods in the per-image curve panels.
_COLOURS = {"SubmodularAttribution": "#d95f02", "Occlusion": "#1b9e77"}

ArrayLike = Union[torch.Tensor, np.ndarray]


def _numpy(x: ArrayLike) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def to_image(tensor: ArrayLike, to_display: Optional[Callable[[Any], Any]] = None) -> np.ndarray:
    """An ``H×W×3`` float image in ``[0, 1]`` for :func:`matplotlib.axes.Axes.imshow`.

    Parameters
    ----------
    tensor:
        ``C×H×W`` or ``1×C×H×W`` image (any value range), or ``H×W`` / ``H×W×C``
        array.
    to_display:
        Optional callable undoing the model's normalisation (e.g.
        :meth:`captum_submodular.models.LoadedModel.to_display`); it receives
        ``tensor`` unchanged and must return ``H×W×3`` (or ``H×W``) values in
        ``[0, 1]``. Without it the image is min–max scaled.
    """
    if to_display is not None:
        img = _numpy(to_display(tensor))
        if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = img.transpose(1, 2, 0)
    else:
        img = _numpy(tensor)
        if img.ndim == 4 and img.shape[0] == 1:
            img = img[0]
        if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
            img = img.transpose(1, 2, 0)
        lo, hi = float(np.min(img)), float(np.max(img))
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"to_image: expected an image, got an array of shape {img.shape}")
    return np.clip(img, 0.0, 1.0)


def heatmap(attribution: ArrayLike) -> np.ndarray:
    """``H×W`` map: the channel sum of a ``C×H×W`` / ``1×C×H×W`` attribution (``H×W`` passes through)."""
    a = _numpy(attribution)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3:
        a = a.sum(axis=0)
    if a.ndim != 2:
        raise ValueError(f"heatmap: expected a C×H×W or H×W attribution, got shape {a.shape}")
    return a


def overlay(
    ax: Any,
    image: np.ndarray,
    attribution: ArrayLike,
    *,
    title: Optional[str] = None,
    percentile: float = 99.5,
    cmap: str = "RdBu_r",
    fontsize: float = 8,
    key: bool = False,
) -> float:
    """Draw ``image`` in muted colours with the attribution map on top.

    The map (channel-summed) is divided by the ``percentile``-th percentile of
    its absolute values, clipped to ``[-1, 1]`` and shown with ``cmap``
    centred on 0 (red: supports the target, blue: opposes it); opacity grows
    with ``|value|``. With ``key=True`` a colour key in the map's own units is
    drawn beside it (:func:`colour_key`). Returns the scale used.
    """
    import matplotlib

    heat = heatmap(attribution)
    img = np.asarray(image, dtype=np.float64)
    grey = img.mean(axis=2, keepdims=True)
    ax.imshow(np.clip(0.35 * img + 0.35 * grey + 0.15, 0.0, 1.0))
    finite = np.abs(heat[np.isfinite(heat)])
    scale = float(np.percentile(finite, percentile)) if finite.size else 0.0
    if scale <= 0.0:
        scale = float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    norm = np.clip(np.nan_to_num(heat / scale), -1.0, 1.0)
    rgba = matplotlib.colormaps[cmap]((norm + 1.0) / 2.0)
    rgba[..., 3] = 0.85 * np.abs(norm) ** 0.8
    ax.imshow(rgba)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=fontsize)
    if key:
        colour_key(ax, scale, cmap=cmap, fontsize=fontsize - 1.5)
    return scale


def colour_key(
    ax: Any,
    scale: float,
    *,
    cmap: str = "RdBu_r",
    fontsize: float = 6.5,
    label: Optional[str] = None,
    orientation: str = "vertical",
) -> Any:
    """A colour key for an :func:`overlay`, centred at 0: ``−scale`` (blue, opposes the target)
    to ``+scale`` (red, supports it).  ``ax`` is the map's axes (the key steals a slim strip
    beside it) or an empty axes made for the key.  Returns the colour bar."""
    import matplotlib
    from matplotlib.cm import ScalarMappable

    fig = ax.figure
    mappable = ScalarMappable(norm=matplotlib.colors.Normalize(-scale, scale), cmap=matplotlib.colormaps[cmap])
    if not ax.images:  # an empty axes made for the key: draw into it
        bar = fig.colorbar(mappable, cax=ax, orientation=orientation, ticks=[-scale, 0.0, scale])
    else:  # the map's axes: steal a slim strip beside it
        bar = fig.colorbar(
            mappable, ax=ax, orientation=orientation, fraction=0.046, pad=0.02, ticks=[-scale, 0.0, scale]
        )
    bar.ax.tick_params(labelsize=fontsize)
    names = [f"{-scale:.2g}\nopposes", "0", f"{scale:.2g}\nsupports"]
    if orientation == "vertical":
        bar.ax.set_yticklabels(names)
    else:
        bar.ax.set_xticklabels([n.replace("\n", " ") for n in names])
    if label:
        bar.set_label(label, fontsize=fontsize)
        if orientation == "horizontal":
            bar.ax.xaxis.set_label_position("top")
    return bar


def mean_curve(fractions: ArrayLike, scores: ArrayLike, grid_size: int = 201) -> Tuple[np.ndarray, np.ndarray]:
    """Mean of ``N`` curves (``N×P`` fractions and scores).

    When all examples share the same fractions (pixel mode) the scores are
    averaged point by point; otherwise every curve is linearly interpolated
    onto ``grid_size`` equally spaced fractions first.
    """
    f = np.atleast_2d(_numpy(fractions))
    s = np.atleast_2d(_numpy(scores))
    if f.shape != s.shape:
        raise ValueError(f"mean_curve: fractions {f.shape} and scores {s.shape} differ in shape")
    if np.all(f == f[:1]):
        return f[0].copy(), s.mean(axis=0)
    grid = np.linspace(0.0, 1.0, grid_size)
    return grid, np.mean([np.interp(grid, fi, si) for fi, si in zip(f, s)], axis=0)


def _legend_below(ax: Any, fontsize: float) -> None:
    """The legend under the axes, where it cannot hide a curve."""
    ax.legend(fontsize=fontsize, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)


def plot_curves(
    ax: Any,
    curves: Mapping[str, Tuple[ArrayLike, ArrayLike]],
    *,
    areas: Optional[Mapping[str, float]] = None,
    title: Optional[str] = None,
    xlabel: str = "fraction of the input changed",
    ylabel: str = "p(target)",
    colors: Optional[Mapping[str, Any]] = None,
    legend_loc: str = "below",
    fontsize: float = 8,
) -> None:
    """One line per name: ``curves[name] = (fractions, scores)`` (1-D, or ``N×P`` to average).

    ``areas[name]``, when given, is appended to the legend entry as ``AUC``.  The legend
    goes below the axes (``legend_loc="below"``, default) so it never hides a curve, or at
    any Matplotlib location.
    """
    for i, (name, (fr, sc)) in enumerate(curves.items()):
        f, s = _numpy(fr), _numpy(sc)
        if f.ndim == 2:
            f, s = mean_curve(f, s)
        label = name if areas is None or name not in areas else f"{name}  AUC {areas[name]:.3f}"
        color = (colors or {}).get(name, f"C{i % 10}")
        ax.plot(f, s, color=color, lw=1.8, label=label)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel(xlabel, fontsize=fontsize)
    ax.set_ylabel(ylabel, fontsize=fontsize)
    ax.tick_params(labelsize=fontsize - 1)
    ax.grid(alpha=0.3)
    if title is not None:
        ax.set_title(title, fontsize=fontsize + 1)
    if curves and legend_loc == "below":
        _legend_below(ax, fontsize - 1)
    elif curves:
        ax.legend(fontsize=fontsize - 1, loc=legend_loc, framealpha=0.85)


def new_figure(figsize: Sequence[float]) -> Any:
    """A Matplotlib figure on the Agg canvas (no display needed, pyplot state untouched)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(float(figsize[0]), float(figsize[1])))
    FigureCanvasAgg(fig)
    return fig


# --------------------------------------------------------------------------- per-image figure


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
            ax.text(
                xs[j],
                ys[j],
                str(rank),
                ha="center",
                va="center",
                fontsize=8 if size > 64 else 6,
                color="white",
                fontweight="bold",
                path_effects=[pe.withStroke(linewidth=2, foreground="black")],
            )
    return float(keep.mean())


def _curve_panel(ax: Any, metric: str, runs: Sequence[Any]) -> None:
    from .metrics import METRICS

    spec = METRICS[metric]
    runs = [r for r in runs if metric in r.curves]
    curves = {_short(r.method): (r.curves[metric].fractions[0], r.curves[metric].scores[0]) for r in runs}
    areas = {_short(r.method): r.area(metric) for r in runs}
    colours = {_short(r.method): _COLOURS.get(r.method, f"C{i}") for i, r in enumerate(runs)}
    better = "higher is better" if spec.higher_is_better else "lower is better"
    plot_curves(
        ax,
        curves,
        areas=areas,
        colors=colours,
        title=f"{spec.title or metric} ({better})",
        xlabel="fraction of pixels " + ("inserted" if spec.curve == "insertion" else "deleted"),
    )
    for r in runs:
        ax.fill_between(
            _numpy(r.curves[metric].fractions[0]),
            _numpy(r.curves[metric].scores[0]),
            color=colours[_short(r.method)],
            alpha=0.07,
        )
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
    _legend_below(ax, 7.5)
    ax.set_box_aspect(1)


def _short(method: str) -> str:
    return "Submodular" if method == "SubmodularAttribution" else method


def explanation_figure(
    explanations: Sequence[Any],
    path: str,
    to_display: Callable[[Any], Any],
    class_names: Sequence[str] = (),
    title: Optional[str] = None,
) -> str:
    """One row per :class:`~captum_submodular.pipeline.ImageExplanation`: the image, the
    SubmodularAttribution map, the minimal subset, Occlusion's map (when run) and the metric
    curves (or the search's own curves without metrics).  Written to ``path`` as a PNG
    (Agg canvas); returns ``path``."""
    import os

    names = list(class_names)
    with_occlusion = any(e.occlusion is not None for e in explanations)
    panels = list(explanations[0].metrics) if explanations else []
    n_cols = 3 + (1 if with_occlusion else 0) + (len(panels) if panels else 1)
    fig = new_figure((2.75 * n_cols, 3.05 * len(explanations) + (0.45 if title else 0.1)))
    axes = np.asarray(fig.subplots(len(explanations), n_cols, squeeze=False))
    for r, e in enumerate(explanations):
        ax = axes[r]
        image = to_image(e.x[0], to_display)
        tname = names[e.target] if e.target < len(names) else str(e.target)
        label = f"\nlabel: {names[e.label] if e.label < len(names) else e.label}" if e.label is not None else ""
        ax[0].imshow(image)
        h, w = int(e.x.shape[-2]), int(e.x.shape[-1])
        # two short lines: one long line is wider than the image and the first column's title
        # ran off the figure's left edge
        seen = (
            ""
            if e.image_size is None or tuple(e.image_size) == (w, h)
            else f"\n{w}×{h} centre crop\nof the {e.image_size[0]}×{e.image_size[1]} photo"
        )
        ax[0].set_title(f"{e.name}\n{tname} (p = {float(e.probabilities[e.target]):.2f}){label}{seen}", fontsize=9)
        overlay(
            ax[1],
            image,
            e.submodular.attributions[0],
            fontsize=9,
            key=True,
            title=f"SubmodularAttribution\n{e.regions_description}\n"
            f"{e.submodular.n_evaluations:,} evals, {e.submodular.seconds:.0f} s",
        )
        mask = e.mask[0, 0].numpy()
        subset = e.result.minimal_subset.tolist()
        frac = _subset_view(ax[2], image, mask, subset)
        ax[2].set_title(
            f"Minimal subset: {len(subset)}/{int(np.unique(mask).size)} regions\n"
            f"{100 * frac:.0f}% of the image, p = {e.minimal_subset_score:.2f}",
            fontsize=9,
        )
        col = 3
        if with_occlusion:
            if e.occlusion is not None:
                overlay(
                    ax[col],
                    image,
                    e.occlusion.attributions[0],
                    fontsize=9,
                    key=True,
                    title=f"Occlusion (15×15, stride 8)\n"
                    f"{e.occlusion.n_evaluations:,} evals, {e.occlusion.seconds:.0f} s",
                )
            col += 1
        for a in ax[:col]:
            a.set_xticks([])
            a.set_yticks([])
        if panels:
            for j, metric in enumerate(panels):
                _curve_panel(ax[col + j], metric, e.runs)
        else:
            _search_curve_panel(
                ax[col], ([float(v) for v in e.result.insertion_curve], [float(v) for v in e.result.deletion_curve])
            )
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # "tight" grows the saved canvas to whatever the titles, keys and legends need, so nothing
    # drawn is ever cut at the figure's edges
    fig.savefig(path, dpi=110, bbox_inches="tight", pad_inches=0.08)
    return path

r"""The seed paper's systematic evaluations: DiFull, GridPG and AggAtt.

Rao, Böhle & Schiele, "Better Understanding Differences in Attribution Methods via
Systematic Evaluations" (TPAMI 2023; GridPG from CVPR 2022).  Every function here works
with any image classifier and any attribution map (Captum's or ours): the maps are plain
tensors.  :func:`captum_submodular.compare.compare_grids` runs whole line-ups.

Grids
-----
An ``n×n`` mosaic of ordinary model inputs (:func:`make_grids`): with ``224²`` cells a
``2×2`` mosaic is ``448²``.  Cells are numbered row-major, ``k = row·n + col``.

DiFull (disconnected)
---------------------
:class:`DisconnectedModel` applies the classifier to every cell separately, so the output
for cell ``k`` is a function of cell ``k`` alone, whatever the weights: any attribution
outside cell ``k`` is provably wrong.  It returns, for each mosaic, the concatenation over
cells of each cell's ``log_softmax``, a vector of ``n²·C`` values (``C`` classes), and the
target for cell ``k`` and class ``c`` is ``k·C + c`` (:func:`difull_target`).  Why log
probabilities: a method that attributes the raw output then explains ``log p_kc``, which
depends on cell ``k`` only; and a method that applies a softmax over the whole output (as
``SubmodularAttribution`` does with its default ``output_type="logits"``) gets
``exp(log p_kc) / Σ_j Σ_c' p_jc' = p_kc / n²`` (every cell's probabilities sum to 1), again
a function of cell ``k`` alone.  Concatenating raw logits instead would let the other
cells' logits into a global softmax's denominator, and the ground truth would be lost.

GridPG (connected)
------------------
The same mosaics with the classifier applied to the whole mosaic (a classifier with
global pooling accepts the larger input as is); the target for cell ``k`` is the class of
cell ``k``'s image.  The model may really use context here, so it has no ground truth:
it measures how well a method points at the cell whose class it explains.

Localisation
------------
:func:`localisation`: the map is summed over its channel axis, its positive part taken,
and the score is the positive mass inside the target's cell divided by the total positive
mass (1.0 is perfect).  A map with no positive value anywhere has no localisation: the
score is NaN (undefined), not 0 and not 1.  In DiFull such a map may be exactly right
(every value outside the cell 0, the ones inside negative), so scoring it 0 would call a
correct map wrong, and scoring it 1 would reward an all-zero map; the harness reports
these maps as a count of their own and leaves them out of the means.  With
``mass="absolute"`` the share of ``|a|`` is measured instead, which also catches negative
values outside the cell (any non-zero value outside the cell is wrong in DiFull).

AggAtt
------
:func:`aggatt` sorts a set's maps by localisation (best first), splits them into
percentile bins (:data:`AGGATT_BINS`: 0–2, 2–5, 5–50, 50–95, 95–98, 98–100 %) and averages
each bin's maps, after moving every target cell to the top-left corner (a cyclic shift by
whole cells) and scaling every map by its largest absolute value.  :func:`plot_aggatt`
draws one row per method.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "AGGATT_BINS",
    "AggAtt",
    "DisconnectedModel",
    "aggatt",
    "aggatt_bins",
    "align_to_cell",
    "cell_box",
    "cell_mask",
    "cell_tiles_mask",
    "difull_target",
    "MASSES",
    "localisation",
    "make_grids",
    "plot_aggatt",
    "select_grid_images",
    "split_cells",
]

#: AggAtt's percentile bins (in %, best-localised first), as in the seed paper.
AGGATT_BINS: tuple[tuple[float, float], ...] = ((0, 2), (2, 5), (5, 50), (50, 95), (95, 98), (98, 100))


def _check_n(n: Any) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n: the grid needs at least 2×2 cells (an integer n ≥ 2), got {n!r}")
    return n


# --------------------------------------------------------------------------- mosaics


def make_grids(images: Tensor, n: int = 2) -> Tensor:
    """Tile images into ``n×n`` mosaics.

    Parameters
    ----------
    images:
        ``(G·n²)×C×H×W``: the cells of ``G`` mosaics, mosaic by mosaic, each mosaic's
        cells row-major (cell ``k`` at row ``k // n``, column ``k % n``).
    n:
        Cells per side (≥ 2).

    Returns
    -------
    Tensor
        ``G×C×(n·H)×(n·W)``, a new tensor (``images`` is not modified).
    """
    n = _check_n(n)
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            f"images: expected a non-empty (G·n²)×C×H×W tensor, got "
            f"{tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__}"
        )
    if images.shape[0] % (n * n):
        raise ValueError(
            f"images: {images.shape[0]} images do not fill whole {n}×{n} grids (a multiple of {n * n} is needed)"
        )
    g = images.shape[0] // (n * n)
    c, h, w = images.shape[1:]
    return images.reshape(g, n, n, c, h, w).permute(0, 3, 1, 4, 2, 5).reshape(g, c, n * h, n * w)


def split_cells(grids: Tensor, n: int = 2) -> Tensor:
    """The inverse of :func:`make_grids`: ``G×C×(n·H)×(n·W)`` mosaics to ``(G·n²)×C×H×W`` cells."""
    n = _check_n(n)
    if not isinstance(grids, Tensor) or grids.dim() != 4:
        raise ValueError(
            f"grids: expected a G×C×(n·H)×(n·W) tensor, got "
            f"{tuple(grids.shape) if isinstance(grids, Tensor) else type(grids).__name__}"
        )
    g, c, hh, ww = grids.shape
    if hh % n or ww % n:
        raise ValueError(f"grids: a {hh}×{ww} mosaic does not split into {n}×{n} equal cells")
    h, w = hh // n, ww // n
    return grids.reshape(g, c, n, h, n, w).permute(0, 2, 4, 1, 3, 5).reshape(g * n * n, c, h, w)


def cell_box(k: int, n: int, height: int, width: int) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` pixel bounds (end exclusive) of cell ``k`` of an ``n×n``
    grid over a ``height×width`` mosaic (both divisible by ``n``)."""
    n = _check_n(n)
    if height % n or width % n:
        raise ValueError(f"height, width: a {height}×{width} mosaic does not split into {n}×{n} equal cells")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < n * n:
        raise ValueError(f"cell: expected an integer in [0, {n * n}), got {k!r}")
    h, w = height // n, width // n
    r, c = divmod(int(k), n)
    return r * h, (r + 1) * h, c * w, (c + 1) * w


def cell_mask(k: int, n: int, height: int, width: int) -> Tensor:
    """``height×width`` bool tensor, true inside cell ``k``."""
    top, bottom, left, right = cell_box(k, n, height, width)
    out = torch.zeros(height, width, dtype=torch.bool)
    out[top:bottom, left:right] = True
    return out


def cell_tiles_mask(n: int, height: int, width: int, tiles_per_cell: int = 2) -> Tensor:
    """A feature mask of tiles aligned with the cells (no tile crosses a cell border).

    Every cell is split into ``tiles_per_cell × tiles_per_cell`` near-equal tiles.  Ids run
    cell by cell: the tiles of cell ``k`` are ``k·t² … (k+1)·t² − 1`` (``t = tiles_per_cell``),
    row-major inside the cell.

    Returns
    -------
    Tensor
        ``1×1×height×width`` long tensor with ``n²·t²`` ids.
    """
    from .regions import grid_mask

    n = _check_n(n)
    if height % n or width % n:
        raise ValueError(f"height, width: a {height}×{width} mosaic does not split into {n}×{n} equal cells")
    h, w = height // n, width // n
    if isinstance(tiles_per_cell, bool) or not isinstance(tiles_per_cell, int) or not 1 <= tiles_per_cell <= min(h, w):
        raise ValueError(
            f"tiles_per_cell: expected an integer between 1 and the cell side {min(h, w)}, got {tiles_per_cell!r}"
        )
    tiles = grid_mask(h, w, grid=tiles_per_cell)[0, 0]
    t2 = tiles_per_cell * tiles_per_cell
    cells = torch.stack([tiles + k * t2 for k in range(n * n)])  # n²×h×w
    return make_grids(cells[:, None], n)[0:1]


def difull_target(cell: int, cls: int, n_classes: int) -> int:
    """The output index of class ``cls`` of cell ``cell`` in :class:`DisconnectedModel`'s output:
    ``cell · n_classes + cls``."""
    for name, v in (("cell", cell), ("cls", cls), ("n_classes", n_classes)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {v!r}")
    if not cls < n_classes:
        raise ValueError(f"cls: class {cls} out of range for {n_classes} classes")
    return int(cell) * int(n_classes) + int(cls)


class DisconnectedModel(nn.Module):
    r"""DiFull's model: the classifier applied to every cell of a mosaic on its own.

    ``forward(x)`` takes ``N×C×(n·H)×(n·W)`` mosaics and returns ``N×(n²·K)``: for each
    mosaic, the concatenation over cells (row-major) of each cell's ``log_softmax`` over
    the classifier's ``K`` classes.  Entry ``k·K + c`` (:func:`difull_target`) is
    ``log p_kc``, a function of cell ``k`` alone; a softmax over the whole row gives
    ``p_kc / n²``, also a function of cell ``k`` alone (module docstring).  The cells of all
    mosaics go through the classifier in one batch of ``N·n²``; in eval mode (the usual
    case, and what the harness sets) each cell's output does not depend on the others.

    Parameters
    ----------
    classifier:
        ``M×C×H×W → M×K`` logits (an ``nn.Module`` or a callable); not modified.
    n:
        Cells per side (≥ 2).
    layer:
        Optional module inside ``classifier`` (usually its last conv layer) to expose as a
        mosaic for layer methods such as Grad-CAM: during every forward a hook re-tiles the
        layer's per-cell outputs ``(N·n²)×D×h×w`` into ``N×D×(n·h)×(n·w)``, passes them
        through the identity module :attr:`mosaic_layer` and splits them back (values are
        unchanged).  ``LayerGradCam(model, model.mosaic_layer)`` then returns one map per
        mosaic, each cell's part computed from its own copy of the classifier, as in the
        seed paper.  The hook exists only while the forward runs.
    """

    def __init__(
        self, classifier: nn.Module | Callable[[Tensor], Tensor], n: int = 2, layer: nn.Module | None = None
    ) -> None:
        super().__init__()
        if not callable(classifier):
            raise ValueError(f"classifier: expected an nn.Module or a callable, got {type(classifier).__name__}")
        self.n = _check_n(n)
        self.classifier = classifier
        if layer is not None:
            if (
                not isinstance(layer, nn.Module)
                or not isinstance(classifier, nn.Module)
                or not any(m is layer for m in classifier.modules())
            ):
                raise ValueError("layer: expected a module inside `classifier` (e.g. its last conv layer)")
        self.layer = layer
        #: The identity module the mosaic-shaped layer output passes through (when ``layer`` is given).
        self.mosaic_layer = nn.Identity()

    def _retile(self, module: nn.Module, inputs: Any, output: Any) -> Tensor:
        if not isinstance(output, Tensor) or output.dim() != 4 or output.shape[0] % (self.n * self.n):
            raise ValueError(
                f"layer: expected a 4-D tensor output with one row per cell, got "
                f"{tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__}"
            )
        return split_cells(self.mosaic_layer(make_grids(output, self.n)), self.n)

    def forward(self, x: Tensor) -> Tensor:
        cells = split_cells(x, self.n)
        handle = self.layer.register_forward_hook(self._retile) if self.layer is not None else None
        try:
            logits = self.classifier(cells)
        finally:
            if handle is not None:
                handle.remove()
        if not isinstance(logits, Tensor) or logits.dim() != 2 or logits.shape[0] != cells.shape[0]:
            raise ValueError(
                f"classifier: expected M×K logits for M cells, got "
                f"{tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__}"
            )
        return torch.log_softmax(logits, dim=1).reshape(x.shape[0], -1)


# --------------------------------------------------------------------------- localisation


def _as_maps(attributions: Any, name: str = "attributions") -> Tensor:
    """``N×H×W`` float64 maps: the channel sum of ``N×C×H×W`` (``N×H×W`` passes through)."""
    if not isinstance(attributions, Tensor) or attributions.dim() not in (3, 4) or attributions.shape[0] == 0:
        got = tuple(attributions.shape) if isinstance(attributions, Tensor) else type(attributions).__name__
        raise ValueError(f"{name}: expected a non-empty N×C×H×W or N×H×W tensor, got {got}")
    a = attributions.detach().to("cpu", torch.float64)
    if a.dim() == 4:
        a = a.sum(dim=1)
    if not torch.isfinite(a).all():
        raise ValueError(f"{name}: the maps hold non-finite values")
    return a


def _as_cells(cells: Any, count: int, n: int) -> list[int]:
    if isinstance(cells, Tensor):
        cells = cells.tolist()
    if isinstance(cells, (int, np.integer)) and not isinstance(cells, bool):
        cells = [int(cells)] * count
    if not isinstance(cells, (list, tuple)) or len(cells) != count:
        raise ValueError(f"cells: expected an int or one cell index per map ({count}), got {cells!r}")
    out = []
    for k in cells:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < n * n:
            raise ValueError(f"cells: cell indices must be integers in [0, {n * n}), got {k!r}")
        out.append(int(k))
    return out


#: What :func:`localisation` counts: ``"positive"`` (the seed paper's score) or ``"absolute"``.
MASSES = ("positive", "absolute")


def localisation(
    attributions: Tensor, cells: int | Sequence[int] | Tensor, n: int = 2, mass: str = "positive"
) -> Tensor:
    """Share of the attribution mass that lies inside the target's cell.

    Parameters
    ----------
    attributions:
        ``N×C×H×W`` (summed over the channel axis first) or ``N×H×W`` maps of ``n×n``
        mosaics; ``H`` and ``W`` divisible by ``n``.
    cells:
        The target's cell per map (an int for all, or ``N`` ints in ``[0, n²)``).
    n:
        Cells per side.
    mass:
        ``"positive"`` (default, the seed paper's localisation): ``max(a, 0)``;
        ``"absolute"``: ``|a|``, which also sees negative values outside the cell (in
        DiFull, any non-zero value outside the cell is wrong, whatever its sign).

    Returns
    -------
    Tensor
        ``(N,)`` float64: ``Σ_{cell} mass / Σ_{all} mass``; NaN for a map without mass
        (module docstring).
    """
    n = _check_n(n)
    if mass not in MASSES:
        raise ValueError(f"mass: expected one of {list(MASSES)}, got {mass!r}")
    a = _as_maps(attributions)
    idx = _as_cells(cells, a.shape[0], n)
    h, w = a.shape[1:]
    if h % n or w % n:
        raise ValueError(f"attributions: a {h}×{w} map does not split into {n}×{n} equal cells")
    weight = a.clamp_min(0.0) if mass == "positive" else a.abs()
    total = weight.sum(dim=(1, 2))
    inside = torch.stack([weight[i][cell_mask(k, n, h, w)].sum() for i, k in enumerate(idx)])
    return torch.where(
        total > 0, inside / torch.where(total > 0, total, torch.ones_like(total)), torch.full_like(total, float("nan"))
    )


# --------------------------------------------------------------------------- AggAtt


def aggatt_bins(
    scores: Sequence[float] | Tensor | np.ndarray, bins: Sequence[tuple[float, float]] = AGGATT_BINS
) -> list[np.ndarray]:
    """Which maps fall in which percentile bin.

    The maps are sorted by ``scores``, highest first (ties keep their index order, NaN
    scores, maps without localisation, come last); the
    map at sorted position ``i`` of ``N`` covers the percentile interval
    ``[100·i/N, 100·(i+1)/N)`` and belongs to every bin ``[a, b)`` that interval overlaps
    (with positive length).  On a large set this is the paper's split (only the maps on a
    bin edge are shared by two bins); on a small set no bin is empty: the ``0–2 %`` bin
    holds at least the best map and the ``98–100 %`` bin at least the worst.

    Returns
    -------
    list of numpy.ndarray
        For each bin, the indices (into ``scores``) of its maps, best first.
    """
    s = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0 or np.isinf(s).any():
        raise ValueError(f"scores: expected a non-empty 1-D sequence of finite numbers or NaN, got {s!r}")
    checked = []
    for b in bins:
        if len(b) != 2 or not 0 <= float(b[0]) < float(b[1]) <= 100:
            raise ValueError(f"bins: every bin is a pair 0 ≤ a < b ≤ 100 (percent), got {b!r}")
        checked.append((float(b[0]), float(b[1])))
    if not checked:
        raise ValueError("bins: expected at least one bin")
    order = np.argsort(-np.where(np.isnan(s), -np.inf, s), kind="stable")
    n = s.size
    pos = np.arange(n)
    return [order[(100.0 * pos < b * n) & (100.0 * (pos + 1) > a * n)] for a, b in checked]


def align_to_cell(maps: Tensor, cells: int | Sequence[int] | Tensor, n: int = 2) -> Tensor:
    """Shift every ``N×H×W`` map cyclically by whole cells so that its target's cell is the
    top-left one (cell 0); the cells keep their neighbours (cyclically)."""
    n = _check_n(n)
    a = _as_maps(maps, "maps")
    idx = _as_cells(cells, a.shape[0], n)
    h, w = a.shape[1:]
    if h % n or w % n:
        raise ValueError(f"maps: a {h}×{w} map does not split into {n}×{n} equal cells")
    out = []
    for i, k in enumerate(idx):
        r, c = divmod(k, n)
        out.append(torch.roll(a[i], shifts=(-r * (h // n), -c * (w // n)), dims=(0, 1)))
    return torch.stack(out)


@dataclass
class AggAtt:
    """AggAtt of one method on one set (:func:`aggatt`).

    Attributes
    ----------
    bins:
        The percentile bins ``(a, b)``.
    means:
        ``B×H×W`` float64: each bin's mean map (aligned, each map scaled by its largest
        ``|value|``, so values lie in ``[-1, 1]``).
    members:
        Per bin, the indices of its maps, best first.
    scores:
        Per bin, the mean localisation of its maps (NaN scores left out; NaN if all are).
    n:
        Cells per side.
    """

    bins: list[tuple[float, float]]
    means: np.ndarray
    members: list[np.ndarray]
    scores: list[float]
    n: int


def aggatt(
    maps: Tensor,
    scores: Sequence[float] | Tensor | np.ndarray,
    cells: int | Sequence[int] | Tensor,
    n: int = 2,
    bins: Sequence[tuple[float, float]] = AGGATT_BINS,
) -> AggAtt:
    """AggAtt: average a set's maps by localisation percentile bin.

    Parameters
    ----------
    maps:
        ``N×C×H×W`` or ``N×H×W`` maps of ``n×n`` mosaics (channel-summed).
    scores:
        ``(N,)`` localisation of each map (:func:`localisation`).
    cells:
        Target cell of each map; every map is moved so that it is the top-left cell
        (:func:`align_to_cell`).
    n, bins:
        Cells per side; percentile bins (:data:`AGGATT_BINS`, split by :func:`aggatt_bins`).

    Returns
    -------
    AggAtt
    """
    aligned = align_to_cell(maps, cells, n)
    s = np.asarray(scores.detach().cpu() if isinstance(scores, Tensor) else scores, dtype=np.float64)
    if s.shape != (aligned.shape[0],):
        raise ValueError(f"scores: expected one score per map ({aligned.shape[0]}), got shape {s.shape}")
    members = aggatt_bins(s, bins)
    peak = aligned.abs().amax(dim=(1, 2), keepdim=True)
    scaled = torch.where(
        peak > 0, aligned / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(aligned)
    )
    means = np.stack([scaled[torch.as_tensor(m)].mean(dim=0).numpy() for m in members])
    return AggAtt(
        bins=[(float(a), float(b)) for a, b in bins],
        means=means,
        members=members,
        scores=[float(np.nanmean(s[m])) if np.isfinite(s[m]).any() else float("nan") for m in members],
        n=n,
    )


def plot_aggatt(
    results: Mapping[str, AggAtt],
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    panel: float = 1.35,
    dpi: int = 130,
) -> Any:
    """Draw AggAtt: one row per method, one column per percentile bin.

    Each panel is the bin's mean map (red positive, blue negative; every map scaled by its
    largest ``|value|`` before averaging, so the colour key runs from −1 to 1), with the
    cell borders in grey and the target's cell (top-left after alignment) outlined in
    black; below it, the bin's mean localisation ``L`` (``n/a`` when no map of the bin has a
    positive value) and its number of maps.  Saved as
    PNG when ``path`` is given.  Returns the Matplotlib figure (Agg canvas).
    """
    from matplotlib.patches import Rectangle

    from . import plotting

    if not results:
        raise ValueError("results: expected at least one method's AggAtt")
    first = next(iter(results.values()))
    for name, agg in results.items():
        if not isinstance(agg, AggAtt) or agg.bins != first.bins or agg.n != first.n:
            raise ValueError(f"results: {name!r} is not an AggAtt with the same bins and grid as the others")
    rows, cols = len(results), len(first.bins)
    label_w = 1.3
    fig = plotting.new_figure((label_w + panel * cols, 0.9 + (panel + 0.35) * rows + 0.6))
    width, height = fig.get_size_inches()
    gs = fig.add_gridspec(
        rows + 1,
        cols,
        height_ratios=[1.0] * rows + [0.12],
        hspace=0.45,
        wspace=0.08,
        left=label_w / width,
        right=0.98,
        top=1.0 - (0.75 if title else 0.4) / height,
        bottom=0.3 / height,
    )
    for r, (name, res) in enumerate(results.items()):
        panels = zip(res.bins, res.means, res.members, res.scores, strict=True)
        for c, ((a, b), mean, members, score) in enumerate(panels):
            ax = fig.add_subplot(gs[r, c])
            ax.imshow(mean, cmap="RdBu_r", vmin=-1.0, vmax=1.0, interpolation="nearest")
            h, w = mean.shape
            for i in range(1, res.n):
                ax.axhline(i * h / res.n - 0.5, color="0.55", lw=0.6)
                ax.axvline(i * w / res.n - 0.5, color="0.55", lw=0.6)
            ax.add_patch(Rectangle((-0.5, -0.5), w / res.n, h / res.n, fill=False, ec="black", lw=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{a:g}–{b:g} %", fontsize=8.5)
            shown = "n/a" if np.isnan(score) else f"{score:.2f}"
            ax.set_xlabel(f"L={shown} ({len(members)})", fontsize=7.5, labelpad=2)
            if c == 0:
                ax.set_ylabel(name, fontsize=8.5, rotation=0, ha="right", va="center", labelpad=6)
    key = fig.add_subplot(gs[rows, :].subgridspec(1, 3, width_ratios=[1, 2, 1])[0, 1])
    plotting.colour_key(
        key,
        1.0,
        orientation="horizontal",
        fontsize=7,
        label="mean of maps scaled by their max |value|; target cell outlined (top-left)",
    )
    if title:
        fig.suptitle(title, fontsize=9.5, y=1.0 - 0.12 / height)
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fig.savefig(path, dpi=dpi)
    return fig


# --------------------------------------------------------------------------- choosing images


def select_grid_images(
    predictions: Sequence[int], confidences: Sequence[float], n_grids: int, n: int = 2, min_confidence: float = 0.5
) -> list[list[int]]:
    """Pick the images of ``n_grids`` mosaics: ``n²`` confidently classified images of
    ``n²`` different predicted classes per mosaic.

    The pool is the images whose confidence is at least ``min_confidence``, in their given
    order (``P`` of them).  Mosaic ``g`` walks the pool cyclically from position
    ``s = g·n² + ⌊g·n² / P⌋`` (mod ``P``) and takes every image whose predicted class is not
    yet in the mosaic, until it has ``n²``.  So when the pool is small images are reused, and
    each further pass over the pool starts one image later, so that it does not repeat the
    mosaics of the pass before.

    Returns
    -------
    list of list of int
        Per mosaic, the ``n²`` image indices in cell order.

    Raises
    ------
    ValueError
        When fewer than ``n²`` distinct classes are predicted confidently, or for
        mismatched lengths.
    """
    n = _check_n(n)
    if len(predictions) != len(confidences):
        raise ValueError(f"confidences: expected one per prediction ({len(predictions)}), got {len(confidences)}")
    if isinstance(n_grids, bool) or not isinstance(n_grids, int) or n_grids < 1:
        raise ValueError(f"n_grids: expected a positive integer, got {n_grids!r}")
    pool = [i for i, p in enumerate(confidences) if float(p) >= min_confidence]
    classes = {int(predictions[i]) for i in pool}
    if len(classes) < n * n:
        raise ValueError(
            f"min_confidence: only {len(classes)} distinct classes are predicted with confidence "
            f"≥ {min_confidence}; a {n}×{n} grid needs {n * n}"
        )
    grids = []
    for g in range(n_grids):
        chosen: list[int] = []
        seen: set = set()
        for j in _cycle(len(pool), g * n * n + (g * n * n) // len(pool)):
            i = pool[j]
            if int(predictions[i]) not in seen:
                chosen.append(i)
                seen.add(int(predictions[i]))
                if len(chosen) == n * n:
                    break
        grids.append(chosen)
    return grids


def _cycle(size: int, start: int) -> Iterator[int]:
    for j in range(size):
        yield (start + j) % size

"""Sub-region builders: each returns a Captum-style ``feature_mask``.

A feature mask is an integer tensor that broadcasts to one example of the input;
elements sharing an id form one region.  Every builder here returns a mask of
shape ``1×1×H×W`` (one map shared by all channels and examples) except
:func:`window_grid_mask`, which follows Occlusion's window shape and so may tile
channels too.

Builders
--------
- :func:`grid_mask` — non-overlapping rectangular tiles.
- :func:`window_grid_mask` — tiles of Occlusion's ``sliding_window_shapes``.
- :func:`slic_mask` — SLIC superpixels (scikit-image) with tiny regions merged.
- :func:`prior_guided_mask` — SMDL's division: cells of an N×N grid sorted by a prior
  attribution map (e.g. :func:`gradcam_prior`) and grouped d at a time (cells of a
  region need not touch).

The registry
------------
:func:`build_regions` (``kind``, one image, about ``n`` regions) is the one entry point
the command line, the dataset runner, the comparison harness and the tutorials use;
:data:`REGION_BUILDERS` lists the kinds (``"slic"``, ``"grid"``, ``"prior"``) and
:func:`register_regions` adds one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "REGION_BUILDERS",
    "RegionBuilder",
    "build_regions",
    "register_regions",
    "describe_regions",
    "gradcam_prior",
    "last_conv_layer",
    "grid_mask",
    "window_grid_mask",
    "slic_mask",
    "prior_guided_mask",
    "default_mask",
    "relabel",
]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _pair(value: Any, name: str) -> Tuple[int, int]:
    """``g`` or ``(gh, gw)`` of integers → ``(gh, gw)``; anything else → ``ValueError`` naming ``name``."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"grid_mask: `{name}` must be an integer or a pair (rows, cols) of integers, got {value!r}.")


def _axis_ids(length: int, n_cells: int, device: Optional[torch.device]) -> Tensor:
    """Cell index of each position when ``length`` is split into ``n_cells`` near-equal cells."""
    return torch.div(torch.arange(length, device=device) * n_cells, length, rounding_mode="floor")


def grid_mask(
    height: int,
    width: int,
    grid: Union[int, Tuple[int, int], None] = None,
    tile_size: Union[int, Tuple[int, int], None] = None,
    device: Optional[torch.device] = None,
) -> Tensor:
    """Non-overlapping rectangular tiles.

    Give either ``grid`` (number of tiles per side, ``g`` or ``(gh, gw)``; tiles are as
    equal as integer sizes allow) or ``tile_size`` (pixels per tile, ``t`` or ``(th, tw)``;
    tiles start at the top-left corner and the last row/column is truncated).

    Returns
    -------
    Tensor
        ``1×1×H×W`` long tensor; ids run row-major from 0 to ``gh·gw − 1``.
    """
    if (grid is None) == (tile_size is None):
        raise ValueError("grid_mask: give exactly one of `grid` or `tile_size`.")
    if not (_is_int(height) and _is_int(width)) or height < 1 or width < 1:
        raise ValueError(f"grid_mask: `height` and `width` must be integers ≥ 1, got {height!r}×{width!r}.")
    height, width = int(height), int(width)
    if grid is not None:
        gh, gw = _pair(grid, "grid")
        if gh < 1 or gw < 1 or gh > height or gw > width:
            raise ValueError(
                f"grid_mask: `grid` must be between 1 and the image size per side, got {grid} "
                f"for a {height}×{width} image."
            )
        rows = _axis_ids(height, gh, device)
        cols = _axis_ids(width, gw, device)
    else:
        th, tw = _pair(tile_size, "tile_size")
        if th < 1 or tw < 1:
            raise ValueError(f"grid_mask: `tile_size` must be ≥ 1, got {tile_size}.")
        rows = torch.div(torch.arange(height, device=device), th, rounding_mode="floor")
        cols = torch.div(torch.arange(width, device=device), tw, rounding_mode="floor")
        gw = math.ceil(width / tw)
    return (rows[:, None] * gw + cols[None, :]).reshape(1, 1, height, width)


def window_grid_mask(
    example_shape: Sequence[int],
    sliding_window_shapes: Sequence[int],
    device: Optional[torch.device] = None,
) -> Tensor:
    """Occlusion's windows turned into a partition.

    The example (shape without the batch dimension, e.g. ``C×H×W``) is cut into
    non-overlapping tiles of ``sliding_window_shapes``, anchored at index 0 of every
    axis; tiles at the far border are truncated.  Strides are not used: overlapping
    windows are not a partition.  A window spanning all channels (``(3, 15, 15)`` on an
    RGB image) gives one region per spatial tile.

    Returns
    -------
    Tensor
        Long tensor of ``example_shape`` with ids ``0..n_tiles − 1`` (row-major over tiles).
    """
    shape = tuple(int(s) for s in example_shape)
    window = tuple(int(w) for w in sliding_window_shapes)
    if len(window) != len(shape):
        raise ValueError(
            f"`sliding_window_shapes` must have one entry per input dimension after the "
            f"batch dimension ({len(shape)} for an example of shape {shape}), got {window}."
        )
    if any(w < 1 for w in window):
        raise ValueError(f"`sliding_window_shapes` entries must be ≥ 1, got {window}.")
    ids = torch.zeros(shape, dtype=torch.long, device=device)
    for axis, (size, w) in enumerate(zip(shape, window)):
        n_tiles = math.ceil(size / w)
        axis_ids = torch.div(torch.arange(size, device=device), w, rounding_mode="floor")
        view = [1] * len(shape)
        view[axis] = size
        ids = ids * n_tiles + axis_ids.reshape(view)
    return ids


def default_mask(example_shape: Sequence[int], device: Optional[torch.device] = None) -> Tensor:
    """The partition used when no ``feature_mask`` is given.

    - An image-like example ``C×H×W`` (3 dimensions): a 7×7 grid of tiles shared by all
      channels (49 regions, the reference setting), or ``min(7, H)×min(7, W)`` for tiny
      images.
    - Any other shape: one region per position along the last axis (all leading axes of a
      position move together), e.g. one region per feature of an ``N×F`` table.

    Returns a mask that broadcasts to one example.
    """
    shape = tuple(int(s) for s in example_shape)
    if len(shape) == 3:
        _, h, w = shape
        return grid_mask(h, w, grid=(min(7, h), min(7, w)), device=device)[0]
    if len(shape) == 0:
        raise ValueError("Inputs must have a batch dimension and at least one feature.")
    last = shape[-1]
    return torch.arange(last, device=device).reshape((1,) * (len(shape) - 1) + (last,))


def relabel(mask: Tensor) -> Tensor:
    """Map the ids of ``mask`` to ``0..m−1`` in increasing id order (same shape)."""
    _, inverse = torch.unique(mask, return_inverse=True)
    return inverse.reshape(mask.shape)


def _to_hwc_float(image: Union[Tensor, np.ndarray]) -> np.ndarray:
    if isinstance(image, Tensor):
        if image.is_complex():
            raise ValueError(f"slic_mask: `image` must be real, got dtype {image.dtype}.")
        arr: Any = image.detach().double().cpu()
        if arr.dim() == 4:
            if arr.shape[0] != 1:
                raise ValueError("slic_mask: pass one image (C×H×W or 1×C×H×W), not a batch.")
            arr = arr[0]
        if arr.dim() == 2:
            arr = arr[None]
        if arr.dim() != 3:
            raise ValueError(f"slic_mask: `image` must be C×H×W, got shape {tuple(image.shape)}.")
        arr = arr.permute(1, 2, 0).numpy()
    else:
        if not isinstance(image, np.ndarray) or image.dtype.kind not in "biuf":
            raise ValueError(
                f"slic_mask: `image` must be a C×H×W tensor or an H×W×C numeric array, got {type(image).__name__}."
            )
        arr = np.asarray(image, dtype=np.float64)
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3:
            raise ValueError(f"slic_mask: `image` must be H×W×C, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"slic_mask: `image` is empty, got shape {arr.shape}.")
    if not np.isfinite(arr).all():
        bad = "NaN" if np.isnan(arr).any() else "inf"
        raise ValueError(f"slic_mask: `image` contains {bad}; superpixels need finite pixel values.")
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr, dtype=np.float64)


def _merge_small_regions(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Merge every region smaller than ``min_size`` into the neighbour it shares most border with."""
    labels = labels.copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        small = ids[counts < min_size]
        if len(small) == 0 or len(ids) == 1:
            return labels
        target = small[np.argmin(counts[counts < min_size])]
        region = labels == target
        # Pixels 4-adjacent to the region, and their labels.
        border = np.zeros_like(region)
        border[1:, :] |= region[:-1, :]
        border[:-1, :] |= region[1:, :]
        border[:, 1:] |= region[:, :-1]
        border[:, :-1] |= region[:, 1:]
        border &= ~region
        neighbours, shared = np.unique(labels[border], return_counts=True)
        if len(neighbours) == 0:
            return labels
        labels[region] = neighbours[np.argmax(shared)]


def slic_mask(
    image: Union[Tensor, np.ndarray],
    n_segments: int = 49,
    compactness: float = 10.0,
    min_size_fraction: float = 0.25,
    match_count: bool = True,
    device: Optional[torch.device] = None,
    **slic_kwargs: Any,
) -> Tensor:
    """SLIC superpixels as a feature mask.

    Parameters
    ----------
    image:
        ``C×H×W`` tensor (any value range, e.g. a normalised model input; it is min–max
        scaled to [0, 1] for segmentation only) or an ``H×W×C`` array.
    n_segments:
        Number of regions wanted (the reference work uses about 49 on 224²).
    compactness:
        SLIC's colour/space trade-off.
    min_size_fraction:
        Regions smaller than ``min_size_fraction · H·W / n_segments`` pixels are merged
        into the neighbour they share the longest border with, so every region is
        meaningful.
    match_count:
        scikit-image's SLIC often returns far fewer segments than asked (about 33 for
        49 on ImageNet photos).  With ``True`` (default) SLIC's own ``n_segments`` is
        adjusted (up to 8 tries, bisecting) until the region count after merging is within 5 % of
        ``n_segments``; SLIC's count is not monotone in its parameter, so the closest of the
        tries is kept (typically within 10 %).  ``False`` runs SLIC once.
    slic_kwargs:
        Passed to :func:`skimage.segmentation.slic`.

    Returns
    -------
    Tensor
        ``1×1×H×W`` long tensor with contiguous ids ``0..m−1``.
    """
    from skimage.segmentation import slic

    if not _is_int(n_segments) or n_segments < 2:
        raise ValueError(f"slic_mask: `n_segments` must be an integer ≥ 2, got {n_segments!r}.")
    if (
        not isinstance(min_size_fraction, (int, float, np.floating))
        or isinstance(min_size_fraction, bool)
        or not 0 <= float(min_size_fraction) < 1e6
    ):
        raise ValueError(f"slic_mask: `min_size_fraction` must be a number ≥ 0, got {min_size_fraction!r}.")
    arr = _to_hwc_float(image)
    h, w, c = arr.shape
    min_size = int(min_size_fraction * h * w / n_segments)

    def segment(n_try: int) -> np.ndarray:
        if c > 1:
            labels = slic(arr, n_segments=n_try, compactness=compactness, start_label=0, channel_axis=-1, **slic_kwargs)
        else:
            labels = slic(
                arr[..., 0], n_segments=n_try, compactness=compactness, start_label=0, channel_axis=None, **slic_kwargs
            )
        return _merge_small_regions(labels, min_size) if min_size > 1 else labels

    n_try = n_segments
    best, best_count = None, 0
    below, above = None, None  # SLIC parameters known to give too few / too many regions
    for _ in range(8 if match_count else 1):
        labels = segment(n_try)
        count = len(np.unique(labels))
        if best is None or abs(count - n_segments) < abs(best_count - n_segments):
            best, best_count = labels, count
        if abs(count - n_segments) <= max(1, 0.05 * n_segments):
            break
        if count < n_segments:
            below = n_try if below is None else max(below, n_try)
        else:
            above = n_try if above is None else min(above, n_try)
        if below is not None and above is not None:
            if above - below <= 1:
                break
            n_next = (below + above) // 2
        else:
            n_next = max(2, round(n_try * n_segments / max(count, 1)))
            if n_next == n_try:
                n_next += 1 if count < n_segments else -1
        n_try = n_next
    mask = relabel(torch.as_tensor(best, dtype=torch.long))
    return mask.reshape(1, 1, h, w).to(device)


def prior_guided_mask(
    prior: Tensor,
    grid: int = 10,
    cells_per_region: int = 4,
    size: Optional[Tuple[int, int]] = None,
) -> Tensor:
    """SMDL's prior-guided division.

    The prior map (any cheap attribution: Grad-CAM, a Captum map summed over channels…)
    is average-pooled to a ``grid×grid`` map.  Cells are sorted by prior value, high to
    low (ties: row-major order), and consecutive runs of ``cells_per_region`` cells form
    one region, giving ``ceil(grid² / cells_per_region)`` regions.  Region 0 holds the
    highest-prior cells.  Reference settings: ``grid=10, cells_per_region=4`` → 25
    regions; faces ``28, 8`` → 98.

    Parameters
    ----------
    prior:
        ``H×W``, ``C×H×W`` or ``1×C×H×W`` tensor; channels are summed.
    size:
        Output ``(H, W)``; defaults to the prior's spatial size.

    Returns
    -------
    Tensor
        ``1×1×H×W`` long tensor.
    """
    if grid < 1 or cells_per_region < 1:
        raise ValueError("prior_guided_mask: `grid` and `cells_per_region` must be ≥ 1.")
    p = prior.detach().float()
    if p.dim() == 4:
        if p.shape[0] != 1:
            raise ValueError("prior_guided_mask: pass one prior map, not a batch.")
        p = p[0]
    if p.dim() == 3:
        p = p.sum(0)
    if p.dim() != 2:
        raise ValueError(f"prior_guided_mask: `prior` must be H×W or C×H×W, got {tuple(prior.shape)}.")
    out_h, out_w = size if size is not None else p.shape
    if grid > min(out_h, out_w):
        raise ValueError(f"prior_guided_mask: `grid`={grid} exceeds the output size {out_h}×{out_w}.")
    cells = F.adaptive_avg_pool2d(p[None, None], grid)[0, 0].flatten()
    order = torch.sort(-cells, stable=True).indices
    cell_region = torch.empty_like(order)
    cell_region[order] = torch.div(
        torch.arange(len(order), device=order.device), cells_per_region, rounding_mode="floor"
    )
    rows = _axis_ids(out_h, grid, cell_region.device)
    cols = _axis_ids(out_w, grid, cell_region.device)
    mask = cell_region[rows[:, None] * grid + cols[None, :]]
    return mask.reshape(1, 1, out_h, out_w)


# --------------------------------------------------------------------------- priors


def last_conv_layer(model: nn.Module) -> nn.Module:
    """The last ``nn.Conv2d`` in ``model.modules()`` order (Grad-CAM's usual layer)."""
    last = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            last = module
    if last is None:
        raise ValueError(f"`model` ({type(model).__name__}) has no nn.Conv2d layer")
    return last


def gradcam_prior(model: Callable[..., Tensor], x: Tensor, target: int) -> Tensor:
    """A cheap prior map for :func:`prior_guided_mask`: Grad-CAM of ``target``.

    Captum's ``LayerGradCam`` on :func:`last_conv_layer`, upsampled bilinearly to the
    input; for a model without a conv layer (or a plain callable), Captum's
    ``Saliency`` summed over channels.  ``x`` is one example (``1×C×H×W``); returns a
    ``1×H×W`` float map.  One forward and one backward.  The model is not changed.
    """
    from captum.attr import LayerAttribution, LayerGradCam, Saliency

    layer = None
    if isinstance(model, nn.Module):
        try:
            layer = last_conv_layer(model)
        except ValueError:
            layer = None
    with torch.enable_grad():
        if layer is not None:
            cam = LayerGradCam(model, layer).attribute(x, target=target)
            prior = LayerAttribution.interpolate(cam.detach(), tuple(x.shape[-2:]), "bilinear")
        else:
            prior = Saliency(model).attribute(x, target=target).detach().sum(1, keepdim=True)
    return prior[0].float()


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class RegionBuilder:
    """One entry of :data:`REGION_BUILDERS`.

    ``build(x, n, model, target, **options)`` returns a ``1×1×H×W`` mask for the single
    image ``x`` (``1×C×H×W``) with about ``n`` regions; ``needs_model`` says whether it
    reads ``model`` and ``target``; ``help`` is the description the command line shows
    and ``label`` the short name figures use.
    """

    name: str
    build: Callable[..., Tensor]
    help: str
    label: str
    needs_model: bool = False


#: Region builders by name: what ``build_regions(kind, ...)``, ``--regions KIND`` and
#: the dataset runner accept.  Add one with :func:`register_regions`.
REGION_BUILDERS: Dict[str, RegionBuilder] = {}


def register_regions(
    name: str,
    help: str,
    label: str,
    needs_model: bool = False,
) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator adding a builder ``fn(x, n, model, target, **options) -> mask`` to :data:`REGION_BUILDERS`."""

    def add(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        REGION_BUILDERS[name] = RegionBuilder(name, fn, help, label, needs_model)
        return fn

    return add


def _grid_side(n: int, grid: Optional[int], h: int, w: int, minimum: int) -> int:
    g = grid if grid is not None else max(minimum, round(math.sqrt(n)))
    if not 1 <= g <= min(h, w):
        raise ValueError(f"`grid` {g} does not fit a {h}×{w} input (1 to {min(h, w)} cells per side)")
    return g


@register_regions("slic", "SLIC superpixels (scikit-image), about n regions, tiny ones merged", "SLIC superpixels")
def _slic_regions(
    x: Tensor, n: int, model: Any = None, target: Optional[int] = None, compactness: float = 10.0, **_: Any
) -> Tensor:
    return slic_mask(x[0].detach().cpu(), n_segments=n, compactness=compactness)


@register_regions("grid", "a g×g grid of tiles, g = round(√n) unless `grid` is given", "grid tiles")
def _grid_regions(
    x: Tensor, n: int, model: Any = None, target: Optional[int] = None, grid: Optional[int] = None, **_: Any
) -> Tensor:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    g = _grid_side(n, grid, h, w, minimum=2)
    return grid_mask(h, w, grid=g)


@register_regions(
    "prior",
    "SMDL's prior-guided division: g×g cells (g = max(10, ⌈√n⌉) unless `grid` is "
    "given) ranked by Grad-CAM of the target and grouped into about n regions",
    "Grad-CAM-guided cells",
    needs_model=True,
)
def _prior_regions(
    x: Tensor, n: int, model: Any = None, target: Optional[int] = None, grid: Optional[int] = None, **_: Any
) -> Tensor:
    h, w = int(x.shape[-2]), int(x.shape[-1])
    g = grid if grid is not None else min(max(10, math.ceil(math.sqrt(n))), h, w)
    g = _grid_side(n, g, h, w, minimum=10)
    cells = max(1, math.ceil(g * g / n))
    if target is None:
        raise ValueError("regions 'prior' read Grad-CAM of the target: pass `target`")
    prior = gradcam_prior(model, x, int(target))
    return relabel(prior_guided_mask(prior.cpu(), grid=g, cells_per_region=cells, size=(h, w)))


def build_regions(
    kind: str,
    x: Tensor,
    n: int,
    model: Optional[Callable[..., Tensor]] = None,
    target: Optional[int] = None,
    **options: Any,
) -> Tensor:
    """The feature mask of ``kind`` (a :data:`REGION_BUILDERS` name) for one image.

    Parameters
    ----------
    kind:
        ``"slic"``, ``"grid"``, ``"prior"`` or any registered name.
    x:
        One image, ``1×C×H×W`` (or ``C×H×W``), in the model's input space.
    n:
        Number of regions asked for (≥ 2); SLIC and the prior division get close to it,
        the grid rounds it to a square.
    model, target:
        Needed by builders that read the model (``"prior"``: Grad-CAM of ``target``).
    **options:
        Builder options: ``grid`` (cells per side for ``"grid"`` and ``"prior"``),
        ``compactness`` (``"slic"``).

    Returns
    -------
    Tensor
        ``1×1×H×W`` long mask with ids ``0..m−1``, on ``x``'s device.  The same arguments
        give the same mask in ``explain``, ``explain-dataset``, ``compare`` and the
        tutorials: they all call this function.
    """
    builder = REGION_BUILDERS.get(kind)
    if builder is None:
        raise ValueError(f"`regions` must be one of {sorted(REGION_BUILDERS)}, got {kind!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"`n_regions` must be an int ≥ 2, got {n!r}")
    if not isinstance(x, Tensor) or x.dim() not in (3, 4) or (x.dim() == 4 and x.shape[0] != 1):
        raise ValueError(f"`x` must be one image, C×H×W or 1×C×H×W, got {getattr(x, 'shape', type(x).__name__)}")
    x = x if x.dim() == 4 else x[None]
    if builder.needs_model and (model is None or target is None):
        raise ValueError(f"regions {kind!r} read the model: pass `model` and `target`")
    mask = builder.build(x, n, model, target, **options)
    return relabel(mask).to(x.device)


def describe_regions(kind: str, mask: Tensor) -> str:
    """``"49 regions: SLIC superpixels …"``: the count and the builder's description."""
    m = int(torch.unique(mask).numel())
    builder = REGION_BUILDERS.get(kind)
    return f"{m} region{'s' if m != 1 else ''}: {builder.label if builder is not None else kind}"

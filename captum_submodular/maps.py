"""Attribution maps: from the searched order and its curves to one value per region.

The contract of the default map, checkable from any result: **a region gets exactly 0
if and only if, at its place in the searched order, adding it (its step of the insertion
curve) and removing it (its step of the deletion curve) both changed the target score by
no more than the output's rounding resolution; sorting the non-zero values reproduces
the searched order of those regions.**  :func:`no_effect` computes the first part from
a result's curves.

What "cannot change the output" means here.  The map is built from the two curves of
the result, so it judges a region in the two contexts those curves show: the regions
before it in the order (insertion) and the regions after it (deletion).  A region the
model cannot see changes neither, so it always gets exactly 0, whatever the search, the
batch or the saturation of the score.  A region the model can see but that changed
neither curve at its place (for example because the score is saturated at 1.0 or 0.0 in
the output's dtype there) also gets 0: the map credits only effects that its own curves
show.  Effects the search met in other contexts while searching are not used: they are
not part of the result, so nobody could check them, and they would make the map depend
on the search's path rather than on the order it returns.

The gain map (``attribution_map="gain"``, the default of
:class:`~captum_submodular.SubmodularAttribution`).  With the selection order
``o_1..o_m``, ``ins_k = p(x[{o_1..o_k}])`` and ``del_k = p(x[V∖{o_1..o_k}])``, the raw
gain of the region at rank ``r`` is ``s_r = ½ · ((ins_r − ins_{r−1}) + (del_{r−1} − del_r))``
(the raw gains sum to ``p(x) − p(baseline)``), with curve differences at or below the
output's rounding resolution counted as 0.  Regions whose two differences are both 0
get exactly 0 and are left out of the fit.  The other regions get the isotonic
(non-increasing) least-squares fit of their ``s`` along the order (pool adjacent
violators): it keeps the gains' magnitudes and signs where they are already ordered and
averages them where the order and the gains disagree.  Runs of equal fitted values are
then spread strictly inside their own band (from the value to half-way to the next one,
never reaching or crossing 0; a run fitted to exactly 0 becomes small positive values
then small negative ones).  Hence

- every region with an effect gets a non-zero value, and sorting those values
  reproduces their selection order exactly (the zeros sit between the positive and the
  negative values, so the pixel ranking of the map differs from the order only by where
  the regions without effect go);
- the only ties are the exact zeros.

The rank map (``attribution_map="rank"``) gives ``m − r`` to the region at rank ``r``
(0-based).  It is a ranking by definition: it ranks every region, those without effect
included, and gives no region 0, so it does not satisfy the first part of the contract.
Use it to reproduce the order's own curves at pixel level, not as an attribution of
what the model uses.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

__all__ = [
    "ATTRIBUTION_MAPS",
    "WITHIN_REGION",
    "gain_map",
    "no_effect",
    "rank_map",
    "isotonic_decreasing",
    "refine_within_regions",
]

#: ``"gain"`` (default): the gain map of the module docstring;
#: ``"rank"``: the region at rank ``i`` (0-based) gets ``m − i``.
ATTRIBUTION_MAPS = ("gain", "rank")


#: How elements inside one region are ordered in the map: ``None`` (all equal) or
#: ``"gradient"`` (by ``∂p/∂x · (x − baseline)``, one extra forward and backward).
WITHIN_REGION = (None, "gradient")


def isotonic_decreasing(values: Tensor) -> Tensor:
    """The non-increasing sequence closest to ``values`` in least squares (pool adjacent violators)."""
    means: List[float] = []
    sizes: List[int] = []
    for v in values.tolist():
        means.append(float(v))
        sizes.append(1)
        while len(means) > 1 and means[-2] < means[-1]:
            n = sizes[-2] + sizes[-1]
            means[-2] = (means[-2] * sizes[-2] + means[-1] * sizes[-1]) / n
            sizes[-2] = n
            means.pop()
            sizes.pop()
    return torch.tensor([mu for mu, n in zip(means, sizes) for _ in range(n)], dtype=torch.float64)


def _spread(pooled: Tensor) -> Tensor:
    """Spread runs of equal values of a non-increasing ``pooled`` strictly inside their band.

    A run of value ``v > 0`` takes values in ``(max(next, 0) + (v − max(next, 0))/2, v]``, a
    run of ``v < 0`` in ``(v − (v − next)/2, v]`` (``next = 2v`` for the last run), and a run
    pooled to exactly 0 is split: its first half gets small positive values, the rest small
    negative ones, within half the smallest neighbouring magnitude.  The result is strictly
    decreasing, never 0, and keeps every non-zero pooled value's sign.
    """
    m = len(pooled)
    out = torch.empty(m, dtype=torch.float64)
    starts = [0] + [r for r in range(1, m) if pooled[r] != pooled[r - 1]]
    ends = starts[1:] + [m]
    scale = float(pooled.abs().max()) if m else 0.0
    for a, b in zip(starts, ends):
        value, length = float(pooled[a]), b - a
        steps = torch.arange(length, dtype=torch.float64) / length
        next_value = float(pooled[b]) if b < m else None
        if value > 0:
            low = max(next_value, 0.0) if next_value is not None else 0.0
            out[a:b] = value - (value - low) * 0.5 * steps
        elif value < 0:
            low = next_value if next_value is not None else 2.0 * value
            out[a:b] = value - (value - low) * 0.5 * steps
        else:
            prev_value = float(pooled[a - 1]) if a > 0 else None
            band = 0.5 * min([abs(v) for v in (prev_value, next_value) if v is not None] or [scale or 1.0])
            before = (length + 1) // 2
            after = length - before
            out[a : a + before] = band * torch.arange(before, 0, -1, dtype=torch.float64) / (before + 1)
            out[a + before : b] = -band * torch.arange(1, after + 1, dtype=torch.float64) / (after + 1)
    return out


def _steps(ins: Tensor, dele: Tensor, resolution: float) -> Tuple[Tensor, Tensor]:
    """Per rank: the insertion gain and the deletion drop, with differences at or below
    ``resolution`` set to exactly 0."""
    d_ins = ins[1:].double() - ins[:-1].double()
    d_del = dele[:-1].double() - dele[1:].double()
    zero = torch.zeros_like(d_ins)
    return torch.where(d_ins.abs() <= resolution, zero, d_ins), torch.where(d_del.abs() <= resolution, zero, d_del)


def no_effect(ins: Tensor, dele: Tensor, resolution: float = 0.0) -> Tensor:
    """Per rank: whether adding the region (insertion step) and removing it (deletion step)
    both changed the score by at most ``resolution``.

    ``ins`` and ``dele`` are the curves of length ``m + 1`` recorded along the order
    (:attr:`SubmodularResult.insertion_curve` / ``deletion_curve``); returns a ``bool``
    tensor of length ``m`` in rank order.  These are the regions the gain map sets to
    exactly 0.
    """
    d_ins, d_del = _steps(ins, dele, resolution)
    return (d_ins == 0) & (d_del == 0)


def gain_map(ins: Tensor, dele: Tensor, resolution: float = 0.0) -> Tensor:
    """Region values in selection order (the gain map; formula in the module docstring).

    Differences of the curves at or below ``resolution`` count as exactly zero; a region
    whose two differences are both zero gets exactly 0 and takes no part in the fit.
    """
    d_ins, d_del = _steps(ins, dele, resolution)
    out = torch.zeros(len(d_ins), dtype=torch.float64)
    effect = (~((d_ins == 0) & (d_del == 0))).nonzero().flatten()
    if len(effect):
        out[effect] = _spread(isotonic_decreasing(0.5 * (d_ins + d_del)[effect]))
    return out


def rank_map(m: int) -> Tensor:
    """Region values in selection order for the rank map: ``m, m − 1, …, 1``."""
    return torch.arange(m, 0, -1, dtype=torch.float64)


def refine_within_regions(
    attrs: List[Tensor], region_index: Tuple[Tensor, ...], ranked: Tensor, order: Tensor, saliency: Tuple[Tensor, ...]
) -> List[Tensor]:
    """Order elements inside each region by ``saliency`` without crossing region values.

    The region at rank ``r`` with value ``v_r ≠ 0`` spreads its elements over
    ``[v_r − δ_r, v_r]`` by their saliency percentile inside the region (summed over the
    channel axis of ``C×…`` inputs), with ``δ_r`` half the gap to the next lower value of
    any region (to 0 for a positive value whose next lower value is negative; ``|v_r|/2``
    for the lowest), so every element of a region stays above every element of the
    next lower region and keeps the region's sign.  Regions of value 0 stay exactly 0.
    """
    m = len(ranked)
    values = torch.unique(ranked)  # ascending
    below = torch.searchsorted(values, ranked) - 1  # the next lower value of each region, if any
    lower = torch.where(below >= 0, values[below.clamp_min(0)], 2.0 * ranked)
    lower = torch.where(ranked > 0, lower.clamp_min(0.0), lower)  # positive regions stay positive
    half_gap = torch.where(ranked == 0, torch.zeros_like(ranked), 0.5 * (ranked - lower))
    delta_by_region = torch.empty(m, dtype=torch.float64)
    delta_by_region[order] = half_gap
    # Channel-summed saliency and region index per element, over all input tensors.
    sal_parts, reg_parts, shapes = [], [], []
    for sal, idx in zip(saliency, region_index):
        summed = sal.sum(dim=1, keepdim=True) if sal.dim() >= 3 else sal
        region = torch.broadcast_to(idx, torch.broadcast_shapes(idx.shape, summed.shape))
        summed = torch.broadcast_to(summed, region.shape)
        sal_parts.append(summed.reshape(-1).double().cpu())
        reg_parts.append(region.reshape(-1).cpu())
        shapes.append(region.shape)
    sal_all, reg_all = torch.cat(sal_parts), torch.cat(reg_parts)
    by_sal = torch.sort(sal_all, stable=True).indices
    by_region = by_sal[torch.sort(reg_all[by_sal], stable=True).indices]
    counts = torch.bincount(reg_all, minlength=m)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.empty_like(by_region)
    position[by_region] = torch.arange(len(by_region))
    within = (position - starts[reg_all]).double() / (counts[reg_all] - 1).clamp_min(1).double()
    offsets = delta_by_region[reg_all] * (1.0 - within)
    out, start = [], 0
    for a, shape in zip(attrs, shapes):
        n = int(torch.tensor(shape).prod())
        off = offsets[start : start + n].reshape(shape).to(device=a.device, dtype=a.dtype)
        out.append((a - off).expand_as(a).clone())
        start += n
    return out

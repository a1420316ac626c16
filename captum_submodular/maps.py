"""Attribution maps: from the searched order and its curves to one value per region.

A map must (a) reproduce the selection order when regions are sorted by value, so that
pixel-level metrics rank the map exactly like the order, and (b) give exactly 0 only to
regions that cannot change the output.

The gain map (``attribution_map="gain"``, the default of
:class:`~captum_submodular.SubmodularAttribution`).  With the selection order
``o_1..o_m``, ``ins_k = p(x[{o_1..o_k}])`` and ``del_k = p(x[V∖{o_1..o_k}])``, the raw
gain of the region at rank ``r`` is ``s_r = ½ · ((ins_r − ins_{r−1}) + (del_{r−1} − del_r))``
(the raw gains sum to ``p(x) − p(baseline)``), with curve differences at or below the
output's rounding resolution counted as 0.  The map is the isotonic (non-increasing)
least-squares fit of ``s`` along the order (pool adjacent violators): it keeps the gains'
magnitudes and signs where they are already ordered and averages them where the order
and the gains disagree.  Runs of equal fitted values are then spread strictly inside
their own band (from the value to half-way to the next one, never crossing 0).  Hence

- sorting the regions by value reproduces the selection order exactly;
- every region gets a non-zero value, except regions whose addition and removal change
  neither curve, which get exactly 0 when they form a run whose fitted value is 0 (for
  example a region the model cannot see, between the regions that help and those that
  hurt); those are the only ties.

The rank map (``attribution_map="rank"``) gives ``m − r`` to the region at rank ``r``
(0-based).
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor

__all__ = ["ATTRIBUTION_MAPS", "WITHIN_REGION", "gain_map", "rank_map", "isotonic_decreasing",
           "refine_within_regions"]

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


def gain_map(ins: Tensor, dele: Tensor, resolution: float = 0.0) -> Tensor:
    """Region values in selection order (the gain map; formula in the module docstring).

    Differences of the curves at or below ``resolution`` count as exactly zero.
    """
    d_ins = ins[1:].double() - ins[:-1].double()
    d_del = dele[:-1].double() - dele[1:].double()
    d_ins = torch.where(d_ins.abs() <= resolution, torch.zeros_like(d_ins), d_ins)
    d_del = torch.where(d_del.abs() <= resolution, torch.zeros_like(d_del), d_del)
    no_effect = (d_ins == 0) & (d_del == 0)
    pooled = isotonic_decreasing(0.5 * (d_ins + d_del))
    m = len(pooled)
    out = torch.empty(m, dtype=torch.float64)
    # Runs of equal pooled values are spread strictly inside their own band, so that
    # the map is strictly decreasing along the order and keeps the pooled value's sign.
    starts = [0] + [r for r in range(1, m) if pooled[r] != pooled[r - 1]]
    ends = starts[1:] + [m]
    scale = float(pooled.abs().max()) if m else 0.0
    for i, (a, b) in enumerate(zip(starts, ends)):
        value = float(pooled[a])
        length = b - a
        prev_value = float(pooled[a - 1]) if a > 0 else None
        next_value = float(pooled[b]) if b < m else None
        if value > 0:
            low = max(next_value, 0.0) if next_value is not None else 0.0
            out[a:b] = value - (value - low) * 0.5 * torch.arange(length, dtype=torch.float64) / length
        elif value < 0:
            low = next_value if next_value is not None else 2.0 * value
            out[a:b] = value - (value - low) * 0.5 * torch.arange(length, dtype=torch.float64) / length
        else:
            # A run pooled to exactly 0: its longest stretch of regions without effect keeps
            # exact zeros; regions before it get small positive values, after it negative ones.
            band = 0.5 * min([abs(v) for v in (prev_value, next_value) if v is not None] or [scale or 1.0])
            flags = no_effect[a:b].tolist()
            best_start, best_len, run_start = 0, 0, None
            for j, flag in enumerate(flags + [False]):
                if flag and run_start is None:
                    run_start = j
                elif not flag and run_start is not None:
                    if j - run_start > best_len:
                        best_start, best_len = run_start, j - run_start
                    run_start = None
            if best_len == 0:  # no region without effect: split the run in the middle
                best_start = (length + 1) // 2
            before, after = best_start, length - best_start - best_len
            out[a : a + before] = band * torch.arange(before, 0, -1, dtype=torch.float64) / (before + 1)
            out[a + before : a + before + best_len] = 0.0
            out[b - after : b] = -band * torch.arange(1, after + 1, dtype=torch.float64) / (after + 1)
    return out


def rank_map(m: int) -> Tensor:
    """Region values in selection order for the rank map: ``m, m − 1, …, 1``."""
    return torch.arange(m, 0, -1, dtype=torch.float64)


def refine_within_regions(attrs: List[Tensor], region_index: Tuple[Tensor, ...], ranked: Tensor, order: Tensor,
                          saliency: Tuple[Tensor, ...]) -> List[Tensor]:
    """Order elements inside each region by ``saliency`` without crossing region values.

    The region at rank ``r`` with value ``v_r ≠ 0`` spreads its elements over
    ``[v_r − δ_r, v_r]`` by their saliency percentile inside the region (summed over the
    channel axis of ``C×…`` inputs), with ``δ_r`` half the gap to the next lower value
    (``|v_r|/2`` for the last one), so every element of a region stays above every
    element of the next region.  Regions of value 0 stay exactly 0.
    """
    m = len(ranked)
    nxt = torch.cat([ranked[1:], ranked.new_tensor([float("nan")])])
    half_gap = torch.where(torch.isnan(nxt), ranked.abs(), ranked - nxt) * 0.5
    half_gap = torch.where(ranked == 0, torch.zeros_like(half_gap), half_gap)
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

"""Ranking: which elements a metric changes at each step (pixel mode and region mode).

``order="morf"`` (most relevant first, the default) ranks by decreasing attribution,
``order="lerf"`` (least relevant first) by increasing attribution; ties go to the lower
element index (region id) in both orders.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["ORDERS", "element_ranks", "region_ranks"]

#: Removal orders: most relevant first, least relevant first.
ORDERS = ("morf", "lerf")


def element_ranks(
    attrs: Tuple[Tensor, ...], inputs: Tuple[Tensor, ...], n_steps: int, order: str = "morf"
) -> Tuple[Tuple[Tensor, ...], Tensor, Tensor, Tensor]:
    """Pixel mode: per-tensor rank maps, thresholds (N,K+1), fractions, lengths."""
    n = inputs[0].shape[0]
    flat, grids = [], []
    for a, x in zip(attrs, inputs):
        s = a.sum(dim=1) if x.dim() >= 3 else a
        grids.append(tuple(s.shape[1:]))
        flat.append(s.reshape(n, -1))
    scores = torch.cat(flat, dim=1)
    e = scores.shape[1]
    # Stable ascending sort of -attribution (MoRF) or +attribution (LeRF): ties -> lower index first.
    key = -scores if order == "morf" else scores
    ranked = torch.sort(key, dim=1, stable=True).indices
    rank = torch.empty_like(ranked)
    rank.scatter_(1, ranked, torch.arange(e, device=ranked.device).expand(n, e))
    ranks = []
    sizes = [int(torch.Size(g).numel()) for g in grids]
    for r, x, g in zip(rank.split(sizes, dim=1), inputs, grids):
        ranks.append(r.reshape(n, 1, *g) if x.dim() >= 3 else r.reshape(n, *g))
    k = torch.arange(n_steps + 1, dtype=torch.long)
    counts = (2 * k * e + n_steps) // (2 * n_steps)  # floor(k*E/K + 1/2)
    thresholds = counts.expand(n, -1).clone()
    fractions = (counts.double() / e).expand(n, -1).clone()
    lengths = torch.full((n,), n_steps + 1, dtype=torch.long)
    return tuple(ranks), thresholds, fractions, lengths


def region_ranks(
    attrs: Tuple[Tensor, ...], inputs: Tuple[Tensor, ...], masks: Tuple[Tensor, ...], order: str = "morf"
) -> Tuple[Tuple[Tensor, ...], Tensor, Tensor, Tensor]:
    """Region mode: per-tensor region-rank maps, thresholds, fractions, lengths."""
    n = inputs[0].shape[0]
    shapes = [tuple(x.shape[1:]) for x in inputs]
    ids = torch.cat([m.reshape(n, -1).cpu() for m in masks], dim=1)
    att = torch.cat([a.expand_as(x).reshape(n, -1).cpu().double() for a, x in zip(attrs, inputs)], dim=1)
    t = ids.shape[1]
    uniq, inv = torch.unique(ids, return_inverse=True)  # sorted ascending ids
    u = uniq.numel()
    counts = torch.zeros(n, u, dtype=torch.long).scatter_add_(1, inv, torch.ones_like(inv))
    sums = torch.zeros(n, u, dtype=torch.float64).scatter_add_(1, inv, att)
    amax = torch.zeros(n, u, dtype=torch.float64).scatter_reduce_(1, inv, att, reduce="amax", include_self=False)
    amin = torch.zeros(n, u, dtype=torch.float64).scatter_reduce_(1, inv, att, reduce="amin", include_self=False)
    present = counts > 0
    mean = torch.where(amax == amin, amin, sums / counts.clamp(min=1))
    key = torch.where(present, -mean if order == "morf" else mean, torch.full_like(mean, float("inf")))
    # Stable sort: ties -> lower region id first; absent regions go last.
    ranked = torch.sort(key, dim=1, stable=True).indices
    region_rank = torch.empty_like(ranked)
    region_rank.scatter_(1, ranked, torch.arange(u).expand(n, u))
    entry_rank = region_rank.gather(1, inv)
    m = present.sum(dim=1)
    p = int(m.max()) + 1
    cum = counts.gather(1, ranked).cumsum(dim=1).double() / t
    fractions = torch.cat([torch.zeros(n, 1, dtype=torch.float64), cum], dim=1)[:, :p]
    thresholds = torch.arange(p, dtype=torch.long).expand(n, -1).clone()
    sizes = [int(torch.Size(s).numel()) for s in shapes]
    ranks = tuple(r.reshape(n, *s).to(x.device) for r, s, x in zip(entry_rank.split(sizes, dim=1), shapes, inputs))
    return ranks, thresholds, fractions.contiguous(), m + 1

"""Surrogate-screened greedy (:class:`AcceleratedSearch`)."""

from __future__ import annotations

import math
from typing import List, Optional

import torch
from torch import Tensor

from ._base import (
    SearchContext,
    SearchGenerator,
    SearchOutcome,
    SearchStrategy,
    _Additive,
    _best,
    _complete,
    _ranked,
    _rows,
)


class AcceleratedSearch(SearchStrategy):
    """Surrogate-screened greedy: plain greedy's choices from a few exact queries per step.

    Plain greedy scores *every* remaining region at every step.  This search scores
    only a short list of ``K`` candidates per step and picks the best of those by the
    exact objective; a cheap surrogate fitted to every value seen so far decides which
    regions make the list.

    Algorithm
    ---------
    1. *Warm start* (greedy's exact first step): query ``F({c})`` for every region
       ``c``, and ``F(V∖{c})`` alongside.  The complement rows cost no extra model
       calls: the attribution class evaluates ``x[S]`` and ``x[V∖S]`` for every query
       anyway, so ``F(V∖S)`` is built from the same two model outputs.  Append the
       best singleton.
    2. *Surrogate*: a ridge regression ``F(T) ≈ b + Σ_{i∈T} w_i`` fitted (closed form,
       ``(m+1)×(m+1)`` normal equations updated incrementally) on every subset the
       search has queried so far — the singletons, their complements, and every
       ``S ∪ {c}`` with its complement ``V∖(S ∪ {c})``, i.e. both the insertion and the
       deletion side of each query.  ``w_c`` is the region's average effect over the
       contexts seen, which rises as the regions it cooperates with are tried.
    3. *Screened greedy step* with the selected list ``S`` (``t = |S|`` regions chosen,
       ``r`` left): the short list has ``K_t = max(K, ⌈head · r / (t + 1)⌉)`` regions —
       wide at the head of the order, where a wrong choice costs the insertion and
       deletion curves most, and ``K`` in the tail.  A share ``stale_share`` of it (at
       least ``n_stale``) goes to the regions with the largest last measured gain
       ``F(S' ∪ {c}) − F(S')`` (typically the runners-up of earlier steps, whose gain
       usually grows as neighbours arrive); the rest are the remaining regions of largest
       surrogate weight ``w_c``.  Query ``F(S ∪ {c})`` (and ``F(V∖(S ∪ {c}))``) for the
       list only, append the best (ties: lower index), refit.
    4. When ``K`` or fewer regions remain, the step is plain exact greedy.

    Ties (within the context's resolution) go to the lower index, in the exact choices
    and in the screens.  With a budget, once a step no longer fits, the order is finished
    by :func:`_complete` ranked by the surrogate weights.

    On a modular function ``F(S) = Σ_{i∈S} w_i`` the surrogate is exact after the warm
    start, so the order is the optimal (descending-weight) order.  In general the
    result is a greedy order in which each step chose among ``K`` screened regions
    instead of all remaining ones; every prefix ``S ∪ {c}`` it appends was queried, so
    the insertion/deletion curves of the final order need no further model calls.

    Cost
    ----
    Queries (rows yielded): ``2m + Σ_{r=2}^{m−1} 2·K_t`` (see :meth:`expected_queries`).
    Half of them are complements of the other half, so in
    :class:`~captum_submodular.SubmodularAttribution` (two model inputs per subset,
    shared between a subset and its complement, cached per example) the model
    evaluations equal the queries minus 2: with the defaults m=25 → 230, m=49 → 496,
    m=100 → 934, m=196 → 1,658, m=400 → 3,668 (plain greedy ``m(m+1)``: 650, 2,450,
    10,100, 38,612; the two-sided search: 504, 1,608, 5,866, 20,938).  Going from 49 to
    196 regions costs 3.3×.
    Surrogate cost: one ``(m+1)²`` linear solve per step (for ``m > 256`` every
    ``⌈m/64⌉`` steps), small next to the model calls up to ``max_regions``.

    Parameters
    ----------
    n_candidates:
        ``K``, exact queries per step.  Default ``None``: ``K(m) = clip(round(4·√(49/m)),
        2, 4)`` — 4 up to about 49 regions, 3 at 100, 2 from about 200 on.  Fewer
        candidates at large ``m`` because a region is then a small part of the input, so
        a step that misses greedy's choice moves the curves less.
    n_stale:
        How many of the ``K`` places go to the regions with the largest last measured
        gain (the rest follow the surrogate).
    ridge:
        Ridge penalty of the surrogate (tiny: only to keep the normal equations
        well-posed while fewer than ``m+1`` independent subsets have been seen).
    head:
        Width of the head screens (``K_t`` above); 0 gives ``K`` at every step.  Default
        0.5: on imagenet_00 with 54 SLIC regions, insertion / deletion 0.761 / 0.087 at
        556 evaluations against 0.419 / 0.236 with ``head=0`` (516) and 0.772 / 0.067 for
        plain greedy (2,966); see BENCHMARKS.md.
    stale_share:
        Share of each short list given to the largest last measured gains (default 0.5).
    """

    adaptive = False  # the count depends on m alone: expected_evaluations is exact

    max_regions = 1024

    def __init__(
        self,
        n_candidates: Optional[int] = None,
        n_stale: int = 1,
        ridge: float = 1e-6,
        head: float = 0.5,
        stale_share: float = 0.5,
    ) -> None:
        if n_candidates is not None and (not isinstance(n_candidates, int) or n_candidates < 1):
            raise ValueError(f"`n_candidates` must be None or an int ≥ 1, got {n_candidates!r}.")
        if not isinstance(n_stale, int) or n_stale < 0 or (n_candidates is not None and n_stale > n_candidates):
            raise ValueError(f"`n_stale` must be an int between 0 and n_candidates, got {n_stale!r}.")
        if not ridge > 0:
            raise ValueError(f"`ridge` must be > 0, got {ridge!r}.")
        self.n_candidates = n_candidates
        self.n_stale = n_stale
        self.ridge = float(ridge)
        if not head >= 0:
            raise ValueError(f"`head` must be ≥ 0, got {head!r}.")
        self.head = float(head)
        if not 0.0 <= stale_share <= 1.0:
            raise ValueError(f"`stale_share` must be in [0, 1], got {stale_share!r}.")
        self.stale_share = float(stale_share)

    def step_width(self, m: int, step: int, remaining: int) -> int:
        """Exact queries at ``step`` (regions selected so far) with ``remaining`` regions left."""
        k = self.candidates_per_step(m)
        return int(min(remaining, max(k, math.ceil(self.head * remaining / (step + 1)))))

    def candidates_per_step(self, m: int) -> int:
        """``K`` for ``m`` regions (``n_candidates`` or the default ``K(m)``)."""
        if self.n_candidates is not None:
            return self.n_candidates
        return int(min(4, max(2, round(4.0 * math.sqrt(49.0 / m)))))

    def expected_queries(self, m: int) -> int:
        return 2 * m + sum(2 * self.step_width(m, m - r, r) for r in range(2, m))

    def search(self, m: int, context: Optional[SearchContext] = None) -> SearchGenerator:
        ctx = context if context is not None else SearchContext(m)
        tol = ctx.resolution
        k = self.candidates_per_step(m)
        n_stale = min(self.n_stale, k)
        surrogate = _Additive(m, self.ridge)
        selected = torch.zeros(m, dtype=torch.bool)
        last_gain = torch.full((m,), float("-inf"), dtype=torch.float64)
        order: List[int] = []
        n_queries = 0
        current = 0.0
        cands = torch.arange(m)
        refit_every = 1 if m <= 256 else math.ceil(m / 64)
        w: Optional[Tensor] = None
        while True:
            remaining = (~selected).nonzero().flatten()
            if len(remaining) == 1:
                order.append(int(remaining[0]))
                break
            front = _rows(m, selected, cands)
            rows = torch.cat([front, ~front])
            if not ctx.affords(rows, order, []):
                proxy = w if w is not None else last_gain
                order, extra = yield from _complete(m, ctx, order, [], proxy, refresh=w is None)
                return SearchOutcome(order, n_queries + extra)
            values = yield rows
            n_queries += len(rows)
            values = values.double()
            surrogate.observe(rows, values)
            gains = values[: len(cands)]
            best_pos = _best(gains, cands, tol)
            best = int(cands[best_pos])
            last_gain[cands] = gains - current
            current = float(gains[best_pos])
            order.append(best)
            selected[best] = True
            last_gain[best] = float("-inf")
            remaining = (~selected).nonzero().flatten()
            if len(remaining) <= 1:
                if len(remaining) == 1:
                    order.append(int(remaining[0]))
                break
            k = self.step_width(m, len(order), len(remaining))
            if len(remaining) <= k:
                cands = remaining
                continue
            if len(order) % refit_every == 0 or w is None:
                w = surrogate.weights()
            chosen: List[int] = []
            stale = last_gain[remaining]
            n_st = min(k, max(n_stale, round(self.stale_share * k)))
            for i in _ranked(stale, remaining, tol, k=n_st):
                if math.isfinite(float(stale[i])):
                    chosen.append(int(remaining[i]))
            for i in _ranked(w[remaining], remaining, tol, k=k + len(chosen)):
                if len(chosen) >= k:
                    break
                if int(remaining[i]) not in chosen:
                    chosen.append(int(remaining[i]))
            cands = torch.tensor(sorted(chosen))
        return SearchOutcome(order, n_queries)

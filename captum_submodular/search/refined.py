"""The refined search: budgeted, screened, neighbour-aware, with exact swap refinement."""

from __future__ import annotations

import math
from typing import Dict, Generator, List, Optional, Tuple

import torch
from torch import Tensor

from ._base import (
    SearchContext,
    SearchGenerator,
    SearchOutcome,
    _Additive,
    _best,
    _complete,
    _order_prefixes,
    _PerRegionBudget,
    _ranked,
    _row_keys,
    _rows,
)


class RefinedSearch(_PerRegionBudget):
    """Budgeted search of the best area under the objective curve: neighbour-screened greedy
    steps on gain per element, then exact refinement of the order by adjacent swaps.

    What it optimises.  The area under the score ``g(S) = F(S) − β · F(V∖S)`` along the
    order, ``A = Σ_k (x_k − x_{k−1}) · (g(S_{k−1}) + g(S_k)) / 2``, where ``S_k`` is the
    first ``k`` regions and ``x_k`` the share of the input they cover (the context's
    ``region_sizes``; equal shares on synthetic set functions).  With ``β = 0`` and the
    default objective this is ``λ_cons`` × the insertion area plus ``λ_colla`` ×
    (1 − the deletion area) of the order's own curves, weighted by region size as
    pixel-level metrics weight them; ``β > 0`` also asks the complement of each prefix to
    score low (it costs nothing: ``x[S]`` and ``x[V∖S]`` are the two inputs of every
    query).  For an additive ``g`` the best order sorts regions by gain per element
    ``g_c / s_c`` (the exchange argument of Smith's rule), so every choice below compares
    densities ``(g(S ∪ {c}) − g(S)) / s_c``, not raw gains.

    Algorithm (budget ``B``; ties within the context's resolution go to the lower index)
    ---------
    1. *Screen*: ``F({c})`` and ``F(V∖{c})`` for every region, and ``F(∅)``, ``F(V)``:
       ``2m + 1`` evaluations (a subset and its complement share their two inputs).  It
       decides the first step.
    2. *Front*: greedy steps that score ``g(S ∪ {c})`` only for a short list: the
       ``n_candidates`` regions of largest last measured density, and the unplaced
       neighbours of the region placed last (the context's ``adjacency``: gains grow when
       neighbours arrive, so those are the stale densities most likely to be out of date).
       Without adjacency the list is filled up to ``max(n_candidates, ⌈head · r / (t+1)⌉)``
       (``t`` placed, ``r`` left) by the largest densities of an additive surrogate
       ``F(T) ≈ b + Σ_{i∈T} w_i`` fitted to every value seen (as in
       :class:`AcceleratedSearch`).  The best density is appended.  The steps stop when
       the budget left is the refinement's share plus 2 evaluations per unplaced region.
    3. *Tail*: the unplaced regions follow by the density of the screen's complements,
       ``(F(V) − F(V∖{c})) / s_c`` (least important last; no query), or with
       ``tail="screen"`` by one screen ``g(S ∪ {c})`` of all of them (by the surrogate's
       densities when the budget does not allow that screen).
    4. *Refinement*: the prefixes of the order not yet scored are scored (the curves need
       them anyway), so ``A`` is known exactly.  Swapping the regions at ranks ``k`` and
       ``k + 1`` changes one prefix set, so its exact change of ``A`` costs one query (two
       evaluations, none if that set was scored already).  Swaps are tried in order of
       their estimated gain (the additive estimate from the measured marginals of the two
       regions) and kept when ``A`` grows, until no swap is estimated to help or the
       budget is spent.

    Every prefix of the returned order has been scored, so its curves are exact and cost
    nothing more.  On an additive ``F`` the screen measures every region's gain exactly,
    so the order is the optimal one (descending weight for equal region sizes, descending
    weight per element otherwise) and no swap helps.

    Cost
    ----
    At most ``B`` model evaluations, everything counted (the screen, the steps, the
    curves): ``B = max_evaluations`` when a budget is given, else
    ``⌈evaluations_per_region · m⌉``: m=25 → 250, m=49 → 490, m=54 → 540, m=100 → 1,000,
    m=196 → 1,960.  It spends fewer when the refinement runs out of swaps estimated to
    help.  A larger budget buys longer short lists' worth of steps before the refinement
    and more swaps.

    Parameters
    ----------
    evaluations_per_region:
        The search's budget per region when no ``max_evaluations`` is given (default 10).
    refine_share:
        Share of ``B`` kept for the refinement (default 0.1).
    n_candidates:
        Regions of largest last measured density in each short list (default 2).
    head:
        Width of the surrogate-filled short lists without adjacency (default 0.5).
    complement_weight:
        ``β`` above (default 0.1).
    tail:
        ``"end"`` (default) or ``"screen"`` (step 3).
    neighbours:
        Use the context's adjacency in the short lists (default ``True``).
    ridge:
        Ridge penalty of the surrogate.
    """

    max_regions = 1024

    def __init__(
        self,
        evaluations_per_region: float = 10.0,
        refine_share: float = 0.1,
        n_candidates: int = 2,
        head: float = 0.5,
        complement_weight: float = 0.1,
        tail: str = "end",
        neighbours: bool = True,
        ridge: float = 1e-6,
    ) -> None:
        if not evaluations_per_region >= 2:
            raise ValueError(f"`evaluations_per_region` must be ≥ 2, got {evaluations_per_region!r}.")
        if not 0.0 <= refine_share < 1.0:
            raise ValueError(f"`refine_share` must be in [0, 1), got {refine_share!r}.")
        if not isinstance(n_candidates, int) or n_candidates < 1:
            raise ValueError(f"`n_candidates` must be an int ≥ 1, got {n_candidates!r}.")
        if not head >= 0 or not ridge > 0:
            raise ValueError("`head` must be ≥ 0 and `ridge` > 0.")
        if not 0.0 <= complement_weight <= 1.0:
            raise ValueError(f"`complement_weight` must be in [0, 1], got {complement_weight!r}.")
        if tail not in ("screen", "end"):
            raise ValueError(f"`tail` must be 'screen' or 'end', got {tail!r}.")
        self.evaluations_per_region = float(evaluations_per_region)
        self.refine_share = float(refine_share)
        self.n_candidates = n_candidates
        self.head = float(head)
        self.complement_weight = float(complement_weight)
        self.tail = tail
        self.neighbours = bool(neighbours)
        self.ridge = float(ridge)

    def search(self, m: int, context: Optional[SearchContext] = None) -> SearchGenerator:
        outer = context if context is not None else SearchContext(m)
        ctx = outer.limit(self.budget(m, outer.max_evaluations))  # the budget it plans with
        sizes = ctx.region_sizes.double().clamp_min(1e-12)
        # rounding of a score F(S) − β·F(V∖S), and of a density (score gain per element)
        tol_score = (1.0 + self.complement_weight) * ctx.resolution
        tol = 2.0 * tol_score / float(sizes.min())
        adjacency = ctx.adjacency if self.neighbours else None
        known: Dict[bytes, float] = {}
        n_queries = 0
        surrogate = _Additive(m, self.ridge)

        beta = self.complement_weight

        def score(key: bytes, complement: bytes) -> float:
            return known[key] - beta * known[complement]

        def ask(rows: Tensor) -> Generator[Tensor, Tensor, Tensor]:
            """Scores of ``rows`` (F of them and of their complements: the same inputs)."""
            nonlocal n_queries
            both = torch.cat([rows, ~rows])
            values = (yield both).double()
            n_queries += len(both)
            keys = _row_keys(both)
            for key, v in zip(keys, values.tolist()):
                known[key] = v
            surrogate.observe(both, values)
            n = len(rows)
            return torch.tensor([score(keys[i], keys[n + i]) for i in range(n)], dtype=torch.float64)

        def value(row: Tensor) -> Optional[float]:
            key, complement = _row_keys(torch.stack([row, ~row]))
            return score(key, complement) if key in known else None

        # 1. screen (and F(∅), F(V))
        full = torch.ones(1, m, dtype=torch.bool)
        eye = torch.eye(m, dtype=torch.bool)
        screen_rows = torch.cat([~full, eye])
        if not ctx.affords_query(screen_rows, [], []):
            completed, n_more = yield from _complete(m, ctx, [], [], torch.full((m,), -math.inf))
            return SearchOutcome(completed, n_queries + n_more)
        vals = yield from ask(screen_rows)
        f_full = known[_row_keys(full)[0]]
        singles = vals[1:]
        stale = torch.empty(m, dtype=torch.float64)  # last measured density of each region (step 1 sets all)
        refine_reserve = int(self.refine_share * (ctx.max_evaluations or 0))

        # 2. front
        selected = torch.zeros(m, dtype=torch.bool)
        order: List[int] = []
        f_s = float(vals[0])  # score of S
        # the first step is free: every singleton is scored
        cands = torch.arange(m)
        gains = singles
        while True:
            dens = (gains - f_s) / sizes[cands]
            best = int(cands[_best(dens, cands, tol)])
            stale[cands] = dens
            order.append(best)
            selected[best] = True
            f_s = float(gains[int((cands == best).nonzero())])
            remaining = (~selected).nonzero().flatten()
            r = len(remaining)
            if r <= 1:
                break
            spare = ctx.slack(order, []) - refine_reserve - 2 * (r - 1)  # keep the tail screen
            cap = min(r, 1 + max(0, int(spare)) // 2)
            if cap <= 1:
                break
            chosen = [int(remaining[i]) for i in _ranked(stale[remaining], remaining, tol, k=self.n_candidates)]
            if adjacency is not None:
                near = remaining[adjacency[best, remaining]]
                extra = [int(c) for c in near[_ranked(stale[near], near, tol)] if int(c) not in chosen]
            else:
                t = len(order)
                width = max(self.n_candidates, math.ceil(self.head * r / (t + 1)))
                w = surrogate.weights()
                extra = [
                    int(remaining[i])
                    for i in _ranked(w[remaining] / sizes[remaining], remaining, tol, k=width)
                    if int(remaining[i]) not in chosen
                ][: max(0, width - len(chosen))]
            chosen = (chosen + extra)[:cap]
            cands = torch.tensor(sorted(chosen))
            rows = _rows(m, selected, cands)
            gains = yield from ask(rows)

        # 3. tail
        remaining = (~selected).nonzero().flatten()
        if len(remaining) > 1:
            rows = _rows(m, selected, remaining)
            if self.tail == "screen" and ctx.affords(rows, order, []):
                dens = ((yield from ask(rows)) - f_s) / sizes[remaining]
            elif self.tail == "end":
                end = torch.tensor([known[k] for k in _row_keys(~eye[remaining])], dtype=torch.float64)
                dens = (f_full - end) / sizes[remaining]
            else:
                dens = surrogate.weights()[remaining] / sizes[remaining]
            order += remaining[_ranked(dens, remaining, tol)].tolist()
        elif len(remaining) == 1:
            order.append(int(remaining[0]))

        # 4. curves, then swaps
        prefixes = _order_prefixes(order)
        missing = [k for k in range(1, m) if value(prefixes[k]) is None]
        if missing:
            yield from ask(prefixes[missing])
        keys = _row_keys(torch.cat([prefixes, ~prefixes]))
        f = [score(keys[k], keys[m + 1 + k]) for k in range(m + 1)]
        s_of = sizes.tolist()

        def estimate(k: int) -> Tuple[float, Optional[float]]:
            """(area change of swapping ranks k and k+1 (1-based), exact F of the new prefix or None)."""
            a, b = order[k - 1], order[k]
            row = prefixes[k - 1].clone()
            row[b] = True
            exact = value(row)
            f_new = exact if exact is not None else f[k - 1] + (f[k + 1] - f[k])
            before = s_of[a] * (f[k - 1] + f[k]) + s_of[b] * (f[k] + f[k + 1])
            after = s_of[b] * (f[k - 1] + f_new) + s_of[a] * (f_new + f[k + 1])
            return 0.5 * (after - before), exact

        gain = {k: estimate(k) for k in range(1, m)}
        while True:
            k = max(gain, key=lambda j: (gain[j][0], -j)) if gain else None
            if k is None:
                break
            est, exact = gain[k]
            a, b = order[k - 1], order[k]
            if est <= 2.0 * tol_score * (s_of[a] + s_of[b]):
                break
            row = prefixes[k - 1].clone()
            row[b] = True
            if exact is None:
                if not ctx.affords_query(row[None], order, []):
                    break
                yield from ask(row[None])
                gain[k] = estimate(k)
                continue
            # exact gain > 0: swap
            order[k - 1], order[k] = b, a
            prefixes[k] = row
            f[k] = exact
            for j in (k - 1, k, k + 1):
                if 1 <= j <= m - 1:
                    gain[j] = estimate(j)
        return SearchOutcome(order, n_queries)

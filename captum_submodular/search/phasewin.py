"""PhaseWin (CVPR 2026): phased window search, from the paper's description."""

from __future__ import annotations

import math
from typing import Dict, Generator, List, Optional, Sequence

import torch
from torch import Tensor

from ..objective import ObjectiveWeights
from ._base import (
    SearchContext,
    SearchGenerator,
    SearchOutcome,
    SearchStrategy,
    _best,
    _complete,
    _ranked,
    _rows,
)


class PhaseWinSearch(SearchStrategy):
    """PhaseWin (Gu, Chen et al., "PhaseWin Search Framework Enable Efficient Object-Level
    Interpretation", CVPR 2026, arXiv 2511.10914): greedy in phases, with pruning and windows.

    Implemented from the paper's description of its phases (no code copied).  The value of a
    candidate ``c`` is ``F(S ∪ {c})`` itself (not a difference).

    Algorithm
    ---------
    0. Optional warm start: ``n_greedy`` exact greedy steps.  The window size is
       ``w = max(1, ⌊window · r⌋)`` with ``r`` the regions left after it.
    1. Phase start: score every region of the pool, append the best to ``S``.
    2. Score the pool again (given the new ``S``); ``G`` = the largest value.  Regions
       below ``beta_del · G`` go to the pruned pool; those at or above ``alpha_sel · G``,
       sorted by value, form the phase's list; the band in between waits.
    3. Window: the first ``w`` of the list.  Score the window; accept, in descending
       order of value, every candidate at or above ``max(alpha_sel · G,
       beta_win · window max)`` ("batch accept").  Before each acceptance the early
       exit test runs on the last accepted values ``g″, g′`` and the new one ``g``:
       if ``g′/g − g″/g′ > exit_threshold``, the phase ends — after accepting ``g``
       when ``g ≥ exit_keep · g′``, before it otherwise.  (The phase start's value is
       the first ``g′`` of a phase.)  Refill the window from the list and repeat until
       nothing is accepted.  A refill defers a candidate of value ``g_c`` to the end of
       the list with probability ``σ((alpha_sel · G − g_c) / T)`` (at most once per
       phase), with ``T = defer_temperature`` multiplied by ``defer_decay`` after every
       phase; the draws come from a generator seeded with ``seed``, so runs repeat.
    4. The window's rest, the list's tail and the waiting band form the next pool.
       Phases repeat until the pool is empty or the phase start's best value is ≤ 0.
    5. What is left of the pool is scored once more and appended by value; then the
       pruned pool is scored once (given everything before it) and appended by value.

    Ties (within the context's resolution, also in the thresholds and the exit test) go
    to the lower region index.

    Objective.  PhaseWin's published objective for classifiers is
    ``F(S) = p(x[S]) + (1 − p(x[V∖S]))`` (weights 1 / 1, no confidence or diversity
    term), and its thresholds are ratios of such values.  So :attr:`default_weights` is
    ``ObjectiveWeights(1, 1, 0, 0)``: ``SubmodularAttribution(model, search="phasewin")``
    uses PhaseWin's objective unless ``weights=`` is given explicitly (then those are
    used, e.g. the package's 20 / 5 / 0.01 to compare searches on one objective).

    Cost
    ----
    Data-dependent (the pruning and the windows decide): per phase, two scorings of
    the pool plus one scoring of the window per refill, then two final scorings; each
    query of a new subset costs two model inputs, and repeated queries of the same
    subset (e.g. the first window, scored in step 2 already) are free, so the count is
    below the forward passes the authors report for the same run.  Regions
    accepted in a batch and the final appended pools do not have their own prefixes
    queried, so recording the curves costs up to 2 inputs per such region.  With a
    budget, once a scoring no longer fits, the order is finished by :func:`_complete`
    ranked by each region's last value.

    Parameters
    ----------
    window:
        Window size as a share of the regions (published: 0.3).
    beta_del, alpha_sel, beta_win:
        Pruning, selection and batch-acceptance ratios (published: 0.05, 0.6, 0.99).
    n_greedy:
        Exact greedy steps before the phases (published: 0 for classifiers).
    exit_threshold, exit_keep:
        The early exit test above (published defaults: 0.02 and 0.98).
    defer_temperature, defer_decay:
        Initial temperature of the random deferrals and its decay per phase
        (published: 0.5, 0.85); ``defer_temperature=0`` turns deferral off.
    seed:
        Seed of the deferral draws.
    """

    max_regions = 1024
    default_weights = ObjectiveWeights(1.0, 1.0, 0.0, 0.0)

    def __init__(
        self,
        window: float = 0.3,
        beta_del: float = 0.05,
        alpha_sel: float = 0.6,
        beta_win: float = 0.99,
        n_greedy: int = 0,
        exit_threshold: float = 0.02,
        exit_keep: float = 0.98,
        defer_temperature: float = 0.5,
        defer_decay: float = 0.85,
        seed: int = 0,
    ) -> None:
        if not 0.0 < window <= 1.0:
            raise ValueError(f"`window` must be in (0, 1], got {window!r}.")
        if not 0.0 < beta_del < 1.0:
            raise ValueError(f"`beta_del` must be in (0, 1), got {beta_del!r}.")
        if not 0.0 < alpha_sel < 1.0:
            raise ValueError(f"`alpha_sel` must be in (0, 1), got {alpha_sel!r}.")
        if not 0.0 < beta_win <= 1.0:
            raise ValueError(f"`beta_win` must be in (0, 1], got {beta_win!r}.")
        if not isinstance(n_greedy, int) or n_greedy < 0:
            raise ValueError(f"`n_greedy` must be an int ≥ 0, got {n_greedy!r}.")
        if not exit_threshold > 0:
            raise ValueError(f"`exit_threshold` must be > 0, got {exit_threshold!r}.")
        if not defer_temperature >= 0 or not 0.0 < defer_decay <= 1.0:
            raise ValueError("`defer_temperature` must be ≥ 0 and `defer_decay` in (0, 1].")
        self.window = float(window)
        self.beta_del = float(beta_del)
        self.alpha_sel = float(alpha_sel)
        self.beta_win = float(beta_win)
        self.n_greedy = n_greedy
        self.exit_threshold = float(exit_threshold)
        self.exit_keep = float(exit_keep)
        self.defer_temperature = float(defer_temperature)
        self.defer_decay = float(defer_decay)
        self.seed = int(seed)

    def search(self, m: int, context: Optional[SearchContext] = None) -> SearchGenerator:
        ctx = context if context is not None else SearchContext(m)
        tol = ctx.resolution
        gen = torch.Generator().manual_seed(self.seed)
        selected = torch.zeros(m, dtype=torch.bool)
        last = torch.full((m,), -math.inf, dtype=torch.float64)
        order: List[int] = []
        n_queries = 0

        def ask(cands: List[int], places: bool) -> Generator[Tensor, Tensor, Optional[Dict[int, float]]]:
            """Values ``F(S ∪ {c})`` of ``cands`` (None when the budget cannot pay for them).

            ``places``: the step then appends one of them (the phase start)."""
            nonlocal n_queries
            idx = torch.tensor(sorted(cands), dtype=torch.long)
            rows = _rows(m, selected, idx)
            fits = ctx.affords(rows, order, []) if places else ctx.affords_query(rows, order, [])
            if not fits:
                return None
            values = (yield rows).double()
            n_queries += len(idx)
            last[idx] = values
            return dict(zip(idx.tolist(), values.tolist()))

        def accept(c: int) -> None:
            order.append(c)
            selected[c] = True

        def best_of(vals: Dict[int, float]) -> int:
            keys = torch.tensor(list(vals))
            return int(keys[_best(torch.tensor(list(vals.values())), keys, tol)])

        def by_value(vals: Dict[int, float], cands: Sequence[int]) -> List[int]:
            cands = list(cands)
            keys = torch.tensor(cands, dtype=torch.long)
            return [cands[i] for i in _ranked(torch.tensor([vals[c] for c in cands], dtype=torch.float64), keys, tol)]

        def exit_action(g2: Optional[float], g1: Optional[float], g: float) -> str:
            if g2 is None or g1 is None:
                return "none"
            eps = 1e-12
            delta = g1 / max(eps, g) - g2 / max(eps, g1)
            # rounding of the three values moves delta by at most this much
            slack = tol * (1 / max(eps, g) + g1 / max(eps, g) ** 2 + 1 / max(eps, g1) + g2 / max(eps, g1) ** 2)
            if delta > self.exit_threshold + slack:
                return "exit_accept" if g >= self.exit_keep * g1 - tol else "exit_reject"
            return "none"

        def out_of_budget() -> Generator[Tensor, Tensor, SearchOutcome]:
            final, extra = yield from _complete(m, ctx, order, [], last)
            return SearchOutcome(final, n_queries + extra)

        # 0. warm start
        pool = list(range(m))
        for _ in range(min(self.n_greedy, m - 1)):
            vals = yield from ask(pool, places=True)
            if vals is None:
                return (yield from out_of_budget())
            c = best_of(vals)
            accept(c)
            pool.remove(c)
        w = max(1, int(math.floor(self.window * len(pool))))
        pruned: List[int] = []
        temperature = self.defer_temperature

        while pool:
            # 1. phase start
            vals = yield from ask(pool, places=True)
            if vals is None:
                return (yield from out_of_budget())
            top = best_of(vals)
            if vals[top] <= tol:
                break
            accept(top)
            pool.remove(top)
            g2: Optional[float] = None
            g1: Optional[float] = vals[top]
            if not pool:
                break
            # 2. screening, pruning, the phase's list
            vals = yield from ask(pool, places=False)
            if vals is None:
                return (yield from out_of_budget())
            big = max(vals.values())
            if big <= tol:
                temperature *= self.defer_decay
                continue
            tau_del, tau_sel = self.beta_del * big, self.alpha_sel * big
            pruned += [c for c in pool if vals[c] < tau_del - tol]
            kept = [c for c in pool if vals[c] >= tau_del - tol]
            listed = by_value(vals, [c for c in kept if vals[c] >= tau_sel - tol])
            band = [c for c in kept if vals[c] < tau_sel - tol]
            screen = vals
            window_list = listed[:w]
            tail = listed[w:]
            deferred: set = set()

            def refill() -> None:
                while len(window_list) < w and tail:
                    c = tail.pop(0)
                    if temperature > 0 and c not in deferred:
                        x = (tau_sel - screen[c]) / temperature
                        p = 1.0 / (1.0 + math.exp(-max(-40.0, min(40.0, x))))
                        if float(torch.rand(1, generator=gen)) < p:
                            deferred.add(c)
                            tail.append(c)
                            continue
                    window_list.append(c)

            # 3. windows
            ended = False
            while window_list and not ended:
                refill()
                vals = yield from ask(window_list, places=False)
                if vals is None:
                    return (yield from out_of_budget())
                cut = max(tau_sel, self.beta_win * max(vals.values()))
                accepted = by_value(vals, [c for c in window_list if vals[c] >= cut - tol])
                if not accepted:
                    break
                for c in accepted:
                    action = exit_action(g2, g1, vals[c])
                    if action == "exit_reject":
                        ended = True
                        break
                    accept(c)
                    window_list.remove(c)
                    g2, g1 = g1, vals[c]
                    if action == "exit_accept":
                        ended = True
                        break
                if not ended:
                    refill()
            # 4. the next pool
            pool = sorted(window_list + tail + band)
            temperature *= self.defer_decay

        # 5. what is left, then the pruned pool, each scored once and appended by value
        for rest in (pool, pruned):
            if not rest:
                continue
            vals = yield from ask(rest, places=False)
            if vals is None:
                return (yield from out_of_budget())
            for c in by_value(vals, rest):
                accept(c)
        return SearchOutcome(order, n_queries)

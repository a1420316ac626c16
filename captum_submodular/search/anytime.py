"""The anytime search: a screened two-sided greedy, then exact refinement by batched moves."""

from __future__ import annotations

import math
from typing import Callable, Dict, Generator, List, Optional, Sequence, Tuple

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
from .greedy import BidirectionalSearch

#: ``ask(rows)``: one round of queries; returns ``(F(rows), F(complements))``.
Ask = Callable[[Tensor], Generator[Tensor, Tensor, Tuple[Tensor, Tensor]]]


def bidirectional_rounds(m: int, n_pending: int = 8) -> int:
    """Rounds of queries of the two-sided search (:class:`BidirectionalSearch`) on ``m`` regions."""
    return BidirectionalSearch(n_pending).expected_rounds(m)


class AnytimeSearch(_PerRegionBudget):
    """Budgeted search of the largest area under the score curve: a screened two-sided
    greedy that places two regions per round, then exact refinement by moves of one region,
    many moves per round.

    What it optimises.  The area under a score along the order,
    ``A = Σ_k s_{o_k} · (g(S_{k−1}) + g(S_k)) / 2``, where ``S_k`` is the first ``k``
    regions and ``s_c`` the share of the input that region ``c`` covers (the context's
    ``region_sizes``): the step widths of pixel-level insertion and deletion curves.  The
    score of a set is ``g(S) = F(S) − β · F(V∖S)`` (``β = refine_weight``), read off the
    two inputs, ``x[S]`` and ``x[V∖S]``, that every query evaluates anyway.  With ``β = 1``
    and the default weights, ``g = 25 · (p(x[S]) − p(x[V∖S]))`` plus a constant (and the
    small confidence term): ``A`` is then 25 × (the insertion area − the deletion area)
    of the order, the two curves at equal weight, as the metrics read them.  For an
    additive score the best order sorts regions by gain per element (Smith's rule), so
    every greedy choice below compares densities.

    Algorithm (budget ``B``; ties within the context's resolution go to the lower index)
    ---------
    1. *Screen* (one round): ``F({c})`` and ``F(V∖{c})`` for every region, ``F(∅)`` and
       ``F(V)``: ``2m + 1`` evaluations.  It decides the first region of each end.
    2. *Two-sided greedy* (one round per step, two regions placed per round).  The front
       appends the region of largest density of ``F(S) − β_f · F(V∖S)``
       (``β_f = complement_weight``); the back prepends to the end of the order the region
       whose removal from the late prefix ``P`` loses the least density of
       ``α · F(P) − F(V∖P)`` (``α = back_insertion``; with ``α = 1`` and the default
       weights this is 25 × (insertion − deletion) of ``P``: the end of the order is chosen
       with the deletion curve at full weight, since the insertion curve has mostly
       saturated there while the deletion curve is still falling).  Each side scores a
       short list: its ``n_candidates`` best last measured densities and the unplaced
       neighbours of the region it placed last (the context's ``adjacency``; without it,
       an additive surrogate's best).  The first
       ``full_steps`` front steps score every unplaced region.  The steps stop when they
       have spent ``head_share`` of what the screen and the curves leave, or two rounds
       before the round limit; the regions left (only under a small budget) follow by
       their last back density (at first the screen's ``α·(F(V) − F(V∖{c})) + F({c}) −
       F(∅)`` per element: what removing ``c`` from everything and keeping it alone show).
    3. *Curves* (one round): every prefix of the order not yet scored, so ``A`` is exact.
    4. *Refinement* (the remaining rounds and budget).  A move takes the region at rank
       ``i`` to rank ``j`` (``|i − j| ≤ max_shift``) and changes only the ``|i − j|``
       prefixes between them, so its exact effect on ``A`` costs ``|i − j|`` queries.  Each
       round estimates every move (the region's marginal gain interpolated between its
       single-region value, its measured gain at its rank, and its gain on the full
       input), takes the best-estimated moves whose rank intervals are disjoint (their
       effects add), queries all their changed prefixes in one batch, and applies every
       move that raises the exact ``A``.  When no move is estimated to help it tries the
       best-estimated untried moves anyway (``explore``), so a larger budget keeps buying
       exact improvements until it or the rounds run out.

    Every prefix of the returned order has been scored, so its curves cost nothing more.
    On an additive ``F`` the screen measures every gain exactly and the order is the
    optimal one (descending gain per element); no move helps.

    Cost
    ----
    Evaluations: at most ``B``, everything counted (the full input, the screen, the steps,
    the curves, the moves): ``B = max_evaluations`` when a budget is given, else
    ``⌈evaluations_per_region · m⌉`` (16 per region: m=25 → 400, m=49 → 784, m=196 →
    3,136, four times the cost at 49).  The screen is ``2m + 1`` of it and the curves at
    most ``2m``.  Without a budget the refinement may stop earlier, when no move is left to
    try within the round limit.  Below about ``4m`` the screen does not fit and the order
    is finished by screened greedy steps (:func:`_complete`, one round per step).

    Rounds: at most :func:`bidirectional_rounds` ``(m)``, the two-sided search's own
    count (``max_rounds`` sets another limit; it binds whenever the screen fits): one for
    the screen, one per two placed regions, one for the curves, the rest for the
    refinement.  Each round is one batch, so on an accelerator the wall time follows the
    rounds, not the evaluations.

    Anytime.  Every extra evaluation buys more greedy steps (the head share of a larger
    budget) or more exact moves, and a move is applied only when it raises the exact area,
    so on a given order the refinement never makes it worse.  The order is complete and its
    curves exact at any budget.

    Parameters
    ----------
    evaluations_per_region:
        The budget per region when no ``max_evaluations`` is given.
    complement_weight, back_insertion, refine_weight:
        ``β_f``, ``α`` and ``β`` above.
    n_candidates:
        Best last measured densities in each side's short list.
    head_share:
        Share of the budget left after the screen and the curves that the greedy may use.
    full_steps:
        Number of front steps after the first that score every unplaced region.
    max_shift:
        Longest move of the refinement, in ranks.
    explore:
        Try untried moves when none is estimated to help.
    neighbours:
        Use the context's adjacency in the short lists.
    head, ridge:
        Width factor and ridge penalty of the surrogate's short lists without adjacency.
    max_rounds:
        Round limit (default: the two-sided search's rounds for ``m``).
    """

    max_regions = 1024

    def __init__(
        self,
        evaluations_per_region: float = 16.0,
        complement_weight: float = 0.1,
        back_insertion: float = 1.0,
        refine_weight: float = 1.0,
        n_candidates: int = 2,
        head_share: float = 0.8,
        full_steps: int = 0,
        max_shift: int = 4,
        explore: bool = True,
        neighbours: bool = True,
        head: float = 0.5,
        ridge: float = 1e-6,
        max_rounds: Optional[int] = None,
    ) -> None:
        if not evaluations_per_region >= 2:
            raise ValueError(f"`evaluations_per_region` must be ≥ 2, got {evaluations_per_region!r}.")
        for name, value in (("complement_weight", complement_weight), ("refine_weight", refine_weight)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be in [0, 1], got {value!r}.")
        if not back_insertion >= 0.0:
            raise ValueError(f"`back_insertion` must be ≥ 0, got {back_insertion!r}.")
        if not 0.0 <= head_share <= 1.0:
            raise ValueError(f"`head_share` must be in [0, 1], got {head_share!r}.")
        for name, value, low in (
            ("n_candidates", n_candidates, 1),
            ("max_shift", max_shift, 1),
            ("full_steps", full_steps, 0),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"`{name}` must be an int ≥ {low}, got {value!r}.")
        if max_rounds is not None and (not isinstance(max_rounds, int) or max_rounds < 2):
            raise ValueError(f"`max_rounds` must be None or an int ≥ 2, got {max_rounds!r}.")
        if not head >= 0 or not ridge > 0:
            raise ValueError("`head` must be ≥ 0 and `ridge` > 0.")
        self.evaluations_per_region = float(evaluations_per_region)
        self.complement_weight = float(complement_weight)
        self.back_insertion = float(back_insertion)
        self.refine_weight = float(refine_weight)
        self.n_candidates = n_candidates
        self.head_share = float(head_share)
        self.full_steps = full_steps
        self.max_shift = max_shift
        self.explore = bool(explore)
        self.neighbours = bool(neighbours)
        self.head = float(head)
        self.ridge = float(ridge)
        self.max_rounds = max_rounds

    def round_limit(self, m: int) -> int:
        """Most rounds of queries on ``m`` regions (the final curves cost none: all are scored)."""
        if self.max_rounds is not None:
            return self.max_rounds
        return max(2, bidirectional_rounds(m))

    def _short_list(
        self,
        stale: Tensor,
        remaining: Tensor,
        last: Optional[int],
        adjacency: Optional[Tensor],
        surrogate: _Additive,
        sizes: Tensor,
        tol: float,
        largest: bool,
    ) -> List[int]:
        """The regions a step scores: the ``n_candidates`` best stale densities and the unplaced
        neighbours of the region the same side placed last (without adjacency: the surrogate's best)."""
        chosen = [int(remaining[i]) for i in _ranked(stale, remaining, tol, k=self.n_candidates, descending=largest)]
        if adjacency is not None:
            if last is not None:
                near = remaining[adjacency[last, remaining]].tolist()
                chosen += [int(c) for c in near if int(c) not in chosen]
            return chosen
        width = max(self.n_candidates, math.ceil(self.head * math.sqrt(len(remaining))))
        w = surrogate.weights()[remaining] / sizes[remaining]
        extra = [int(remaining[i]) for i in _ranked(w, remaining, tol, k=width, descending=largest)]
        return (chosen + [c for c in extra if c not in chosen])[:width]

    def search(self, m: int, context: Optional[SearchContext] = None) -> SearchGenerator:
        outer = context if context is not None else SearchContext(m)
        ctx = outer.limit(self.budget(m, outer.max_evaluations))
        budget = int(ctx.max_evaluations or 0)
        sizes = ctx.region_sizes.double().clamp_min(1e-12)
        beta, alpha = self.complement_weight, self.back_insertion
        tol = 2.0 * (1.0 + max(1.0, alpha)) * ctx.resolution / float(sizes.min())  # densities closer are ties
        adjacency = ctx.adjacency if self.neighbours else None
        known: Dict[bytes, float] = {}
        surrogate = _Additive(m, self.ridge)
        state = {"queries": 0, "rounds": self.round_limit(m)}

        def ask(rows: Tensor) -> Generator[Tensor, Tensor, Tuple[Tensor, Tensor]]:
            both = torch.cat([rows, ~rows])
            values = (yield both).double()
            state["queries"] += len(both)
            state["rounds"] -= 1
            for key, v in zip(_row_keys(both), values.tolist()):
                known[key] = v
            surrogate.observe(both, values)
            return values[: len(rows)], values[len(rows) :]

        # 1. screen: F({c}), F(V∖{c}) for every region; F(∅), F(V)
        full = torch.ones(1, m, dtype=torch.bool)
        eye = torch.eye(m, dtype=torch.bool)
        screen_rows = torch.cat([~full, eye])
        if not ctx.affords_query(screen_rows, [], []):
            completed, n_more = yield from _complete(m, ctx, [], [], torch.full((m,), -math.inf))
            return SearchOutcome(completed, n_more)
        fs, fc = yield from ask(screen_rows)
        f_empty, f_full = float(fs[0]), float(fc[0])
        f_one, f_all_but = fs[1:], fc[1:]  # F({c}), F(V∖{c})

        # 2. two-sided screened greedy
        head_limit = ctx.used + self.head_share * max(0.0, budget - ctx.used - ctx.curve_cost([], []))
        placed = torch.zeros(m, dtype=torch.bool)
        front: List[int] = []
        back: List[int] = []
        in_front = torch.zeros(m, dtype=torch.bool)  # S, the front prefix
        late = torch.ones(m, dtype=torch.bool)  # P = V ∖ (the back), the late prefix
        g_s = f_empty - beta * f_full  # front score of S
        h_p = alpha * f_full - f_empty  # back score of P
        up = ((f_one - beta * f_all_but) - g_s) / sizes  # last front density (gain of adding c to S)
        down = (h_p - (alpha * f_all_but - f_one)) / sizes  # last back density (loss of removing c from P)
        f_cands = b_cands = torch.arange(m)
        f_vals, b_vals = f_one - beta * f_all_but, alpha * f_all_but - f_one
        while True:
            if len(f_cands):
                dens = (f_vals - g_s) / sizes[f_cands]
                up[f_cands] = dens
                pos = _best(dens, f_cands, tol)
                c = int(f_cands[pos])
                front.append(c)
                placed[c] = in_front[c] = True
                g_s = float(f_vals[pos])
            if len(b_cands):
                loss = (h_p - b_vals) / sizes[b_cands]
                down[b_cands] = loss
                free = ~placed[b_cands]
                if bool(free.any()) and int((~placed).sum()) > 1:
                    pos = _best(loss[free], b_cands[free], tol, largest=False)
                    c = int(b_cands[free][pos])
                    back.append(c)
                    placed[c] = True
                    late[c] = False
                    h_p = float(b_vals[free][pos])
            remaining = (~placed).nonzero().flatten()
            if len(remaining) <= 1 or state["rounds"] <= 2:  # a round for the curves, one for a move
                break
            if len(front) <= self.full_steps:
                f_list = remaining.tolist()
            else:
                f_list = self._short_list(up[remaining], remaining, front[-1], adjacency, surrogate, sizes, tol, True)
            b_list: List[int] = []
            if len(remaining) > 2:
                b_list = self._short_list(down[remaining], remaining, back[-1], adjacency, surrogate, sizes, tol, False)
            f_cands = torch.tensor(sorted(f_list), dtype=torch.long)
            b_cands = torch.tensor(sorted(b_list), dtype=torch.long)
            rows = torch.cat([_rows(m, in_front, f_cands), ~_rows(m, ~late, b_cands)])
            if ctx.used + ctx.cost(rows) > head_limit or not ctx.affords_query(rows, front, back):
                break
            fs, fc = yield from ask(rows)
            n = len(f_cands)
            f_vals, b_vals = fs[:n] - beta * fc[:n], alpha * fs[n:] - fc[n:]
        remaining = (~placed).nonzero().flatten()
        # the regions left (a budget too small for the steps) by their last measured loss from
        # the late prefix: at first the screen's occlusion density
        order = front + remaining[_ranked(down[remaining], remaining, tol)].tolist() + back[::-1]

        # 3. the curves: every prefix of the order
        prefixes = _order_prefixes(order)
        keys = _row_keys(prefixes)
        missing = [k for k in range(1, m) if keys[k] not in known]
        if missing:
            _ = yield from ask(prefixes[missing])

        # 4. refinement
        rbeta = self.refine_weight
        single = (f_one - rbeta * f_all_but) - (f_empty - rbeta * f_full)
        last = (f_full - rbeta * f_empty) - (f_all_but - rbeta * f_one)
        order = yield from refine(
            ctx,
            order,
            known,
            ask,
            lambda: state["rounds"],
            rbeta,
            single,
            last,
            self.max_shift,
            self.explore,
            (1.0 + rbeta) * ctx.resolution,
        )
        return SearchOutcome(order, state["queries"])


def refine(
    ctx: SearchContext,
    order: List[int],
    known: Dict[bytes, float],
    ask: Ask,
    rounds_left: Callable[[], int],
    beta: float,
    single: Tensor,
    last: Tensor,
    max_shift: int,
    explore: bool,
    tol: float,
) -> Generator[Tensor, Tensor, List[int]]:
    """Raise the area of ``g(S) = F(S) − β·F(V∖S)`` along ``order`` by batched moves of one region.

    ``known`` maps row keys to ``F`` and must hold every prefix of ``order`` and its
    complement; ``ask`` queries a batch in one round and fills ``known``.  ``single`` and
    ``last`` are each region's gain of ``g`` on the empty and on the almost full set.
    Spends until ``ctx.max_evaluations`` (no budget: until no move helps) or ``rounds_left()``
    is 0.  Every prefix of the returned order is in ``known``.
    """
    m = len(order)
    s = ctx.region_sizes.double().tolist()
    budget = math.inf if ctx.max_evaluations is None else ctx.max_evaluations
    prefixes = _order_prefixes(order)

    def g_of(rows: Tensor) -> List[float]:
        return [known[k] - beta * known[c] for k, c in zip(_row_keys(rows), _row_keys(~rows))]

    gv = g_of(prefixes)
    single_l, last_l = single.tolist(), last.tolist()

    def margin(c: int, at: int, u: int) -> float:
        """Estimated gain of ``c`` (at rank ``at``) added to a prefix of length ``u``."""
        here = gv[at + 1] - gv[at]
        if u <= at:
            return single_l[c] + (here - single_l[c]) * (u / at if at else 0.0)
        span = m - 1 - at
        return here + (last_l[c] - here) * ((u - at) / span if span else 0.0)

    def area(elems: Sequence[int], vals: Sequence[float]) -> float:
        return 0.5 * sum(s[e] * (vals[k] + vals[k + 1]) for k, e in enumerate(elems))

    def move(i: int, j: int) -> Tuple[int, List[int], List[int], List[float]]:
        """Rank ``i`` to rank ``j``: (first changed rank, new elements of ranks lo..hi, the
        changed prefix lengths, their estimated ``g``)."""
        c = order[i]
        if j < i:  # promote: prefixes j+1..i gain c
            lengths = list(range(j + 1, i + 1))
            return j, [c] + order[j:i], lengths, [gv[t - 1] + margin(c, i, t - 1) for t in lengths]
        lengths = list(range(i + 1, j + 1))  # demote: prefixes i+1..j lose c
        return i, order[i + 1 : j + 1] + [c], lengths, [gv[t + 1] - margin(c, i, t) for t in lengths]

    def move_rows(i: int, j: int, lengths: Sequence[int]) -> Tensor:
        c = order[i]
        if j < i:
            rows = prefixes[[t - 1 for t in lengths]].clone()
            rows[:, c] = True
        else:
            rows = prefixes[[t + 1 for t in lengths]].clone()
            rows[:, c] = False
        return rows

    def gain(lo: int, hi: int, elems: Sequence[int], vals: Sequence[float]) -> float:
        return area(elems, [gv[lo]] + list(vals) + [gv[hi + 1]]) - area(order[lo : hi + 1], gv[lo : hi + 2])

    shift = min(max_shift, m - 1)
    while rounds_left() >= 1 and ctx.used < budget:
        proposals: List[Tuple[float, int, int]] = []
        for i in range(m):
            for j in range(max(0, i - shift), min(m, i + shift + 1)):
                if j == i or j == i + 1:  # i → i+1 is the swap i+1 → i
                    continue
                lo, elems, _, est = move(i, j)
                proposals.append((gain(lo, max(i, j), elems, est), i, j))
        proposals.sort(key=lambda p: (-p[0], p[1], p[2]))
        taken: List[Tuple[int, int, List[int], Tensor]] = []
        fresh_rows: List[Tensor] = []
        for exploring in (False, True):
            busy = torch.zeros(m, dtype=torch.bool)
            for est_gain, i, j in proposals:
                lo, hi = min(i, j), max(i, j)
                threshold = tol * sum(s[lo : hi + 1])
                if not exploring and est_gain <= threshold:
                    break
                if bool(busy[lo : hi + 1].any()):
                    continue
                _, elems, lengths, _ = move(i, j)
                rows = move_rows(i, j, lengths)
                fresh = [r for r, k in zip(rows, _row_keys(rows)) if k not in known]
                if not fresh:
                    if gain(lo, hi, elems, g_of(rows)) <= threshold:
                        continue  # known not to help
                elif ctx.cost(torch.stack(fresh_rows + fresh)) > budget - ctx.used:
                    continue
                taken.append((lo, hi, elems, rows))
                fresh_rows += fresh
                busy[lo : hi + 1] = True
            if taken or not explore:
                break
        if not taken:
            break
        if fresh_rows:
            _ = yield from ask(torch.stack(fresh_rows))
        for lo, hi, elems, rows in taken:
            exact = g_of(rows)
            if gain(lo, hi, elems, exact) > tol * sum(s[lo : hi + 1]):
                order[lo : hi + 1] = elems
                prefixes[lo + 1 : hi + 1] = rows
                gv[lo + 1 : hi + 1] = exact
    return order

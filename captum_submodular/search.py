"""Search strategies: order regions by a batched set function.

A strategy knows nothing about models.  It asks for the values of a set function
``F`` on batches of subsets of ``V = {0..m−1}`` and returns an ordering of ``V``.

The interface is a generator, so the caller decides how to evaluate requests: a
plain driver (:func:`run_search`) for synthetic set functions, or the attribution
class, which interleaves the searches of many examples and pushes their perturbed
inputs through the model together.

Protocol
--------
``strategy.search(m)`` returns a generator.  Each value it yields is a boolean
tensor ``Z`` of shape ``k×m`` (row r is the indicator of one subset); the caller
sends back ``F(Z)`` as a float tensor of shape ``(k,)``.  When the generator
returns, its ``StopIteration.value`` is a :class:`SearchOutcome`.

To add a strategy, subclass :class:`SearchStrategy`, implement ``search``, and
pass an instance as ``search=`` to :class:`~captum_submodular.SubmodularAttribution`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import Callable, Dict, Generator, List, Optional, Type, Union

import torch
from torch import Tensor

__all__ = [
    "SearchOutcome",
    "SearchStrategy",
    "GreedySearch",
    "BidirectionalSearch",
    "AcceleratedSearch",
    "run_search",
    "get_search",
    "SEARCHES",
    "DEFAULT_SEARCH",
]

SearchGenerator = Generator[Tensor, Tensor, "SearchOutcome"]


@dataclass(frozen=True)
class SearchOutcome:
    """What a search returns.

    Attributes
    ----------
    order:
        All ``m`` region indices, most important first.
    n_queries:
        Number of subsets whose value the search requested (rows of all yielded ``Z``).
    """

    order: List[int]
    n_queries: int


class SearchStrategy(abc.ABC):
    """Base class of search strategies (see the module docstring for the protocol)."""

    #: Largest number of regions the strategy accepts; beyond it the attribution class
    #: raises before any model call and asks the user to coarsen the mask.
    max_regions: int = 256

    @abc.abstractmethod
    def search(self, m: int) -> SearchGenerator:
        """Order ``m`` regions; yields ``k×m`` bool batches, receives ``(k,)`` values."""

    def expected_queries(self, m: int) -> Optional[int]:
        """Number of subset queries for ``m`` regions when known in advance (for progress bars)."""
        return None

    def expected_evaluations(self, m: int) -> Optional[int]:
        """Approximate model inputs for ``m`` regions (progress bars only).

        Default: two inputs per query (``x[S]`` and ``x[V∖S]``) plus the full and empty
        inputs.  Strategies that query complements explicitly override it.
        """
        q = self.expected_queries(m)
        return None if q is None else 2 * q + 2

    def check_regions(self, m: int) -> None:
        """Raise ``ValueError`` when ``m`` is outside what this strategy supports."""
        if m < 2:
            raise ValueError(
                f"`feature_mask` defines {m} region(s); a subset search needs at least 2."
            )
        if m > self.max_regions:
            raise ValueError(
                f"`feature_mask` defines {m} regions, more than the {self.max_regions} that "
                f"search={type(self).__name__} supports. Coarsen the mask (fewer regions) or "
                f"pick another search."
            )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _rows(m: int, base: Tensor, candidates: Tensor) -> Tensor:
    """Indicator rows ``base ∪ {c}`` for every ``c`` in ``candidates``."""
    z = base.unsqueeze(0).repeat(len(candidates), 1)
    z[torch.arange(len(candidates)), candidates] = True
    return z


class GreedySearch(SearchStrategy):
    """Exact plain greedy (SMDL).

    At each step every remaining region ``c`` is scored as ``F(S ∪ {c})`` and the best
    is appended to ``S``; ties go to the lower index.  Queries: ``m(m+1)/2`` subsets
    (each costs two model inputs, ``x[S]`` and its complement, so about ``m(m+1)``
    forwards).
    """

    max_regions = 256

    def expected_queries(self, m: int) -> int:
        return m * (m + 1) // 2

    def search(self, m: int) -> SearchGenerator:
        selected = torch.zeros(m, dtype=torch.bool)
        order: List[int] = []
        n_queries = 0
        while len(order) < m:
            remaining = (~selected).nonzero().flatten()
            values = yield _rows(m, selected, remaining)
            n_queries += len(remaining)
            best = int(remaining[int(torch.argmax(values))])
            order.append(best)
            selected[best] = True
        return SearchOutcome(order, n_queries)


class BidirectionalSearch(SearchStrategy):
    """LiMA's two-sided greedy search.

    Grows the most-important list ``S`` from the front and the least-important list
    ``D`` from the back.  Each round scores every remaining region ``c`` as
    ``F(S ∪ {c})`` and appends the best, ``c⁺``, to ``S``.  While more than
    ``n_pending`` regions remain, the ``n_pending`` regions that scored lowest in that
    same step (excluding ``c⁺``) are re-scored as ``F(D ∪ {c})`` and the lowest,
    ``c⁻``, is appended to ``D``.  The final order is ``S + reversed(D)``.

    Queries: with ``r`` regions left, a round costs ``r`` (+ ``n_pending`` while
    ``r > n_pending``) and ranks two regions (one in the end game).  For
    ``n_pending = 8``: m=25 → 252, m=49 → 804, m=64 → 1,295, m=100 → 2,933 subsets
    (the reference counts in ALGORITHMS.md also include the m single-region inputs and
    the full, empty and one more input: 1,660 at m=49).

    Parameters
    ----------
    n_pending:
        Number of low-scoring candidates screened for the back of the order (reference:
        8; the reference used 12 for plain classifiers).
    """

    max_regions = 256

    def __init__(self, n_pending: int = 8) -> None:
        if n_pending < 1:
            raise ValueError(f"`n_pending` must be ≥ 1, got {n_pending}.")
        self.n_pending = int(n_pending)

    def expected_queries(self, m: int) -> int:
        total, r = 0, m
        while r > 1:
            total += r
            if r > self.n_pending:
                total += self.n_pending
                r -= 2
            else:
                r -= 1
        return total

    def search(self, m: int) -> SearchGenerator:
        front = torch.zeros(m, dtype=torch.bool)
        back = torch.zeros(m, dtype=torch.bool)
        order_front: List[int] = []
        order_back: List[int] = []
        n_queries = 0
        while True:
            remaining = (~(front | back)).nonzero().flatten()
            r = len(remaining)
            if r == 0:
                break
            if r == 1:
                order_front.append(int(remaining[0]))
                break
            values = yield _rows(m, front, remaining)
            n_queries += r
            best_pos = int(torch.argmax(values))
            best = int(remaining[best_pos])
            if r > self.n_pending:
                others = torch.cat([torch.arange(best_pos), torch.arange(best_pos + 1, r)])
                # The n_pending lowest proxies (ties: lower index first).
                lowest = others[torch.sort(values[others], stable=True).indices[: self.n_pending]]
                pending = remaining[lowest]
                back_values = yield _rows(m, back, pending)
                n_queries += len(pending)
                worst = int(pending[int(torch.argmin(back_values))])
                order_back.append(worst)
                back[worst] = True
            order_front.append(best)
            front[best] = True
        return SearchOutcome(order_front + order_back[::-1], n_queries)


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

    max_regions = 1024

    def __init__(self, n_candidates: Optional[int] = None, n_stale: int = 1, ridge: float = 1e-6,
                 head: float = 0.5, stale_share: float = 0.5) -> None:
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

    def expected_evaluations(self, m: int) -> int:
        # complements are queried explicitly and share the two inputs of their subset
        return self.expected_queries(m)

    def search(self, m: int) -> SearchGenerator:
        k = self.candidates_per_step(m)
        n_stale = min(self.n_stale, k)
        # Normal equations of the surrogate F(z) ≈ w·z + b (last column: intercept).
        gram = torch.zeros(m + 1, m + 1, dtype=torch.float64)
        rhs = torch.zeros(m + 1, dtype=torch.float64)
        penalty = torch.full((m + 1,), self.ridge, dtype=torch.float64)
        penalty[-1] = 0.0

        def observe(rows: Tensor, values: Tensor) -> None:
            xa = torch.cat([rows.double(), torch.ones(len(rows), 1, dtype=torch.float64)], 1)
            gram.add_(xa.T @ xa)
            rhs.add_(xa.T @ values.double())

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
            values = yield rows
            n_queries += len(rows)
            values = values.double()
            observe(rows, values)
            gains = values[: len(cands)]
            best_pos = int(torch.argmax(gains))
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
                w = torch.linalg.solve(gram + torch.diag(penalty), rhs)[:m]
            chosen: List[int] = []
            stale = last_gain[remaining]
            n_st = min(k, max(n_stale, round(self.stale_share * k)))
            for i in torch.sort(-stale, stable=True).indices[:n_st].tolist():
                if math.isfinite(float(stale[i])):
                    chosen.append(int(remaining[i]))
            for i in torch.sort(-w[remaining], stable=True).indices.tolist():
                if len(chosen) >= k:
                    break
                if int(remaining[i]) not in chosen:
                    chosen.append(int(remaining[i]))
            cands = torch.tensor(sorted(chosen))
        return SearchOutcome(order, n_queries)


SetFunction = Callable[[Tensor], Tensor]


def run_search(strategy: SearchStrategy, m: int, set_function: SetFunction) -> SearchOutcome:
    """Run ``strategy`` on ``m`` elements against a plain batched ``set_function``.

    ``set_function`` maps a ``k×m`` bool tensor to a ``(k,)`` tensor of values.
    """
    gen = strategy.search(m)
    try:
        request = next(gen)
        while True:
            values = torch.as_tensor(set_function(request), dtype=torch.float64).reshape(-1)
            if values.shape[0] != request.shape[0]:
                raise ValueError(
                    f"set_function returned {values.shape[0]} values for {request.shape[0]} subsets."
                )
            request = gen.send(values)
    except StopIteration as stop:
        return stop.value


#: The search used when none is given (by the attribution class, the CLI, the harness
#: and the dataset runner).  LiMA's two-sided search: on the 20 labelled ImageNet images
#: it beat the accelerated search by +0.044 insertion and −0.033 deletion (BENCHMARKS.md
#: §2), at 3.2× its model evaluations; ``search="accelerated"`` is the fast option.
DEFAULT_SEARCH = "bidirectional"

SEARCHES: Dict[str, Type[SearchStrategy]] = {
    "greedy": GreedySearch,
    "bidirectional": BidirectionalSearch,
    "accelerated": AcceleratedSearch,
}


def get_search(search: Union[str, SearchStrategy]) -> SearchStrategy:
    """Resolve a search name (see :data:`SEARCHES`) or pass an instance through."""
    if isinstance(search, SearchStrategy):
        return search
    if isinstance(search, str) and search in SEARCHES:
        return SEARCHES[search]()
    raise ValueError(
        f"`search` must be one of {sorted(SEARCHES)} or a SearchStrategy instance, got {search!r}."
    )

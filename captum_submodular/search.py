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
from dataclasses import dataclass
from typing import Callable, Dict, Generator, List, Optional, Type, Union

import torch
from torch import Tensor

__all__ = [
    "SearchOutcome",
    "SearchStrategy",
    "GreedySearch",
    "BidirectionalSearch",
    "run_search",
    "get_search",
    "SEARCHES",
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


SEARCHES: Dict[str, Type[SearchStrategy]] = {
    "greedy": GreedySearch,
    "bidirectional": BidirectionalSearch,
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

"""Search strategies: order regions by a batched set function.

A strategy knows nothing about models.  It asks for the values of a set function
``F`` on batches of subsets of ``V = {0..m−1}`` and returns an ordering of ``V``.

The interface is a generator, so the caller decides how to evaluate requests: a
plain driver (:func:`run_search`) for synthetic set functions, or the attribution
class, which interleaves the searches of many examples and pushes their perturbed
inputs through the model together.

Protocol
--------
``strategy.search(m)`` (or ``strategy.search(m, context=ctx)`` for strategies whose
``search`` takes a ``context`` argument) returns a generator.  Each value it yields is a
boolean tensor ``Z`` of shape ``k×m`` (row r is the indicator of one subset); the caller
sends back ``F(Z)`` as a float tensor of shape ``(k,)``.  When the generator returns,
its ``StopIteration.value`` is a :class:`SearchOutcome`.

The :class:`SearchContext` tells a search what the caller knows: the evaluation budget
(``max_evaluations``), how many evaluations are spent, what a batch of rows would cost
given what is already evaluated, and the resolution of ``F`` (values closer than that
are ties).

Evaluations are counted the way
:attr:`~captum_submodular.SubmodularResult.n_evaluations` counts them: each distinct
composed input once per example.  A query of ``S`` needs two inputs, ``x[S]`` and
``x[V∖S]``, and shares them with a query of ``V∖S``; the full input is evaluated before
the search, and the curves of the returned order (every prefix and its complement) are
evaluated after it.  Recording the curves of any order costs at most ``2m``
evaluations, the smallest budget accepted.

Budgets.  Every built-in search keeps this invariant: the evaluations spent plus the
most the final curves can still cost never exceed ``max_evaluations``.  When its next
step does not fit, it finishes the order with screened greedy steps (:func:`_complete`):
each appends the best of the few regions its own proxy ranks highest (the last measured
values, or a surrogate) and that the remaining budget can pay for, at least one, whose
prefix the curves need anyway.  So a larger budget buys more exact steps, and the
returned order is always a full permutation whose curves are exact.

Ties.  Model outputs differ in their last bits with the batch they were evaluated in.
Every built-in search treats values within ``context.resolution`` of the best as ties and
breaks them by the lower region index, so ``perturbations_per_eval`` does not change the
order (:func:`run_search` uses resolution 0 unless given).

To add a strategy, subclass :class:`SearchStrategy`, implement ``search``, and
pass an instance as ``search=`` to :class:`~captum_submodular.SubmodularAttribution`.
A ``search(m)`` without a ``context`` argument works as before, but cannot be given a
budget.
"""

from __future__ import annotations

from typing import Dict, Type, Union

from ._base import (
    SearchContext,
    SearchOutcome,
    SearchStrategy,
    SetFunction,
    minimum_evaluations,
    run_search,
    start_search,
)
from .accelerated import AcceleratedSearch
from .anytime import AnytimeSearch
from .greedy import BidirectionalSearch, GreedySearch
from .phasewin import PhaseWinSearch
from .refined import RefinedSearch

__all__ = [
    "SearchOutcome",
    "SearchContext",
    "SearchStrategy",
    "GreedySearch",
    "BidirectionalSearch",
    "AcceleratedSearch",
    "PhaseWinSearch",
    "RefinedSearch",
    "AnytimeSearch",
    "run_search",
    "start_search",
    "get_search",
    "minimum_evaluations",
    "SEARCHES",
    "DEFAULT_SEARCH",
    "SetFunction",
]


#: The search used when none is given (by the attribution class, the CLI, the harness
#: and the dataset runner).  LiMA's two-sided search.  ``search="anytime"`` costs at most
#: half of its evaluations and fewer rounds, and inserts and deletes at least as well on
#: every evaluation set, but gives up blurred insertion on one of them (BENCHMARKS.md §10),
#: so the default stays; ``"anytime"`` is the choice when evaluations or rounds are the
#: budget, and ``max_evaluations`` caps any search.
DEFAULT_SEARCH = "bidirectional"

SEARCHES: Dict[str, Type[SearchStrategy]] = {
    "greedy": GreedySearch,
    "bidirectional": BidirectionalSearch,
    "accelerated": AcceleratedSearch,
    "phasewin": PhaseWinSearch,
    "refined": RefinedSearch,
    "anytime": AnytimeSearch,
}


def get_search(search: Union[str, SearchStrategy]) -> SearchStrategy:
    """Resolve a search name (see :data:`SEARCHES`) or pass an instance through."""
    if isinstance(search, SearchStrategy):
        return search
    if isinstance(search, str) and search in SEARCHES:
        return SEARCHES[search]()
    raise ValueError(f"`search` must be one of {sorted(SEARCHES)} or a SearchStrategy instance, got {search!r}.")

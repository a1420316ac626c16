"""Searches on synthetic set functions: no model involved."""

import pytest
import torch

from captum_submodular.search import (
    BidirectionalSearch,
    GreedySearch,
    SearchOutcome,
    SearchStrategy,
    get_search,
    run_search,
)


class Counting:
    """Wraps a set function and counts the subsets it is asked about."""

    def __init__(self, fn):
        self.fn = fn
        self.rows = 0

    def __call__(self, z):
        self.rows += z.shape[0]
        return self.fn(z)


def modular(weights):
    w = torch.as_tensor(weights, dtype=torch.float64)
    return lambda z: z.double() @ w


def coverage(universe_sets):
    """F(S) = |∪_{i∈S} A_i| — a monotone submodular function."""

    def f(z):
        out = []
        for row in z.tolist():
            covered = set()
            for i, keep in enumerate(row):
                if keep:
                    covered |= universe_sets[i]
            out.append(float(len(covered)))
        return torch.tensor(out)

    return f


def reference_greedy(m, f_of_set):
    """Plain textbook greedy on Python sets, ties to the lower index."""
    chosen, order = set(), []
    while len(order) < m:
        best, best_val = None, None
        for c in range(m):
            if c in chosen:
                continue
            val = f_of_set(chosen | {c})
            if best_val is None or val > best_val:
                best, best_val = c, val
        order.append(best)
        chosen.add(best)
    return order


@pytest.mark.parametrize("search", [GreedySearch(), BidirectionalSearch(), BidirectionalSearch(n_pending=3)])
@pytest.mark.parametrize("m", [2, 3, 9, 20])
def test_modular_function_gives_the_optimal_order(search, m):
    g = torch.Generator().manual_seed(m)
    w = torch.randperm(5 * m, generator=g)[:m].double() - 2.0 * m  # distinct, some negative
    outcome = run_search(search, m, modular(w))
    assert outcome.order == torch.argsort(w, descending=True).tolist()


@pytest.mark.parametrize("seed", range(6))
def test_greedy_matches_brute_force_reference_on_coverage_functions(seed):
    g = torch.Generator().manual_seed(seed)
    m = 8
    sets = [
        set(torch.randperm(30, generator=g)[: int(torch.randint(1, 9, (1,), generator=g))].tolist()) for _ in range(m)
    ]
    f = coverage(sets)

    def f_of_set(s):
        return f(torch.tensor([[i in s for i in range(m)]]))[0].item()

    assert run_search(GreedySearch(), m, f).order == reference_greedy(m, f_of_set)


def test_greedy_matches_reference_on_facility_location():
    g = torch.Generator().manual_seed(3)
    m, n_clients = 10, 15
    sim = torch.rand(m, n_clients, generator=g).double()

    def f(z):
        vals = torch.where(z[:, :, None], sim[None], torch.zeros(()).double()).amax(dim=1)
        return vals.sum(-1)

    def f_of_set(s):
        return f(torch.tensor([[i in s for i in range(m)]]))[0].item()

    assert run_search(GreedySearch(), m, f).order == reference_greedy(m, f_of_set)


def bidirectional_formula(m, p):
    """Closed form of LiMA's query count, written independently of the implementation."""
    two_sided_rounds = max(0, (m - p + 1) // 2)  # rounds with r > p, r = m, m−2, …
    rs = [m - 2 * i for i in range(two_sided_rounds)]
    r_end = m - 2 * two_sided_rounds
    return sum(rs) + p * len(rs) + sum(range(2, r_end + 1))


@pytest.mark.parametrize("m", [2, 5, 8, 9, 25, 49, 64, 100])
def test_query_counts_match_the_formulas(m):
    f = Counting(modular(torch.arange(m, dtype=torch.float64)))
    out = run_search(GreedySearch(), m, f)
    assert out.n_queries == f.rows == m * (m + 1) // 2
    f = Counting(modular(torch.arange(m, dtype=torch.float64)))
    out = run_search(BidirectionalSearch(8), m, f)
    assert out.n_queries == f.rows == bidirectional_formula(m, 8) == BidirectionalSearch(8).expected_queries(m)


def test_reference_counts_at_49_and_100_regions():
    # Model inputs = 2 per query; the published greedy count m(m+1) → 2,450 and 10,100.
    assert 2 * GreedySearch().expected_queries(49) == 2450
    assert 2 * GreedySearch().expected_queries(100) == 10100
    assert BidirectionalSearch(8).expected_queries(49) == 804


def test_bidirectional_back_side_uses_the_lowest_candidates():
    # F(S) = Σ w_i except that region 0 looks worst alone but best for the back side
    # is irrelevant: on a modular function the back list is the ascending tail.
    w = torch.tensor([5.0, -3.0, 2.0, -1.0, 4.0, 0.5, -2.0, 1.0, 3.0, -4.0])
    out = run_search(BidirectionalSearch(n_pending=2), 10, modular(w))
    assert out.order[-3:] == [6, 1, 9]


def test_custom_strategy_plugs_in():
    class Reverse(SearchStrategy):
        def search(self, m):
            values = yield torch.eye(m, dtype=torch.bool)
            return SearchOutcome(torch.argsort(values).tolist(), m)

    out = run_search(Reverse(), 4, modular([1.0, 3.0, 2.0, 0.0]))
    assert out.order == [3, 0, 2, 1]
    assert get_search(Reverse()).__class__ is Reverse


def test_unknown_search_name():
    with pytest.raises(ValueError, match="`search` must be one of"):
        get_search("nope")


def test_region_limits_are_checked():
    with pytest.raises(ValueError, match="at least 2"):
        GreedySearch().check_regions(1)
    with pytest.raises(ValueError, match="Coarsen the mask"):
        GreedySearch().check_regions(GreedySearch.max_regions + 1)


def test_ties_go_to_the_lower_index():
    out = run_search(GreedySearch(), 4, lambda z: torch.zeros(z.shape[0]))
    assert out.order == [0, 1, 2, 3]

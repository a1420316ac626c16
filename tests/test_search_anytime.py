"""AnytimeSearch: optimal on additive functions, counts as documented, budget, equivalences,
and the refinement on its own."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_search_budget import interacting, tiny_cnn
from test_search_refined import chain, modular

from captum_submodular import SubmodularAttribution
from captum_submodular.regions import grid_mask
from captum_submodular.search import SEARCHES, AnytimeSearch, SearchContext, run_search
from captum_submodular.search._base import _order_prefixes, _row_keys
from captum_submodular.search.anytime import bidirectional_rounds, refine
from conftest import CountingModel

pytestmark = pytest.mark.usefixtures("single_thread")


def area(f, order, sizes, beta=0.0):
    p = _order_prefixes(order)
    v = f(p) - beta * f(~p)
    return float((sizes[torch.tensor(order)] * (v[1:] + v[:-1]) / 2).sum())


class Rounds:
    """A set function that counts its calls (each call is one round of the search)."""

    def __init__(self, f):
        self.f, self.calls = f, 0

    def __call__(self, z):
        self.calls += 1
        return self.f(z)


def test_registered():
    assert SEARCHES["anytime"] is AnytimeSearch


@pytest.mark.parametrize("m", [2, 3, 7, 20, 49])
@pytest.mark.parametrize("neighbours", [False, True])
@pytest.mark.parametrize("budget", [None, "4m"])
def test_modular_functions_give_the_optimal_order(m, neighbours, budget):
    g = torch.Generator().manual_seed(m)
    w = torch.randperm(5 * m, generator=g)[:m].double() - 2.0 * m  # distinct, some negative
    max_evaluations = None if budget is None else 4 * m + 1
    out = run_search(
        AnytimeSearch(), m, modular(w), adjacency=chain(m) if neighbours else None, max_evaluations=max_evaluations
    )
    assert out.order == torch.argsort(w, descending=True).tolist()


def test_unequal_regions_are_ordered_by_gain_per_element():
    g = torch.Generator().manual_seed(1)
    m = 12
    w = torch.rand(m, generator=g, dtype=torch.float64) + 0.1
    sizes = torch.rand(m, generator=g, dtype=torch.float64) + 0.2
    sizes = sizes / sizes.sum()
    out = run_search(AnytimeSearch(), m, modular(w), region_sizes=sizes)
    by_density = torch.argsort(w / sizes, descending=True).tolist()
    assert out.order == by_density != torch.argsort(w, descending=True).tolist()


def test_hand_counted_evaluations():
    # m = 2: the full input, the screen (∅ and the two singletons, whose complements are each
    # other) = 4 = 2m; both ends are placed by the screen and the curves need nothing more.
    assert run_search(AnytimeSearch(), 2, modular([1.0, 2.0])).n_evaluations == 4
    # m = 3: full, ∅, three singletons and their complements = 8; the screen places the
    # first and the last region and every prefix of the order is among them.
    out = run_search(AnytimeSearch(), 3, modular([1.0, 3.0, 2.0]))
    assert out.order == [1, 2, 0] and out.n_evaluations == 8


@pytest.mark.parametrize("m", [4, 9, 25, 49, 64])
def test_default_budget_and_rounds_as_documented(m):
    search = AnytimeSearch()
    assert search.budget(m) == max(2 * m, math.ceil(16 * m)) == search.evaluation_bound(m)
    assert search.round_limit(m) == bidirectional_rounds(m)
    f = Rounds(interacting(m, 0))
    out = run_search(search, m, f, adjacency=chain(m))
    assert sorted(out.order) == list(range(m))
    assert out.n_evaluations <= search.budget(m)
    assert f.calls <= bidirectional_rounds(m)


@pytest.mark.parametrize("m", [5, 12, 30])
def test_bidirectional_rounds_is_the_two_sided_search_rounds(m):
    f = Rounds(interacting(m, 1))
    run_search(SEARCHES["bidirectional"](), m, f)
    assert f.calls == bidirectional_rounds(m)


def test_max_rounds_bounds_the_rounds():
    m = 30
    for limit in (2, 3, 5, 12):
        f = Rounds(interacting(m, 2))
        out = run_search(AnytimeSearch(max_rounds=limit), m, f, adjacency=chain(m))
        assert sorted(out.order) == list(range(m)) and f.calls <= limit


@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(2, 30),
    seed=st.integers(0, 10_000),
    frac=st.floats(0.0, 1.5),
    neighbours=st.booleans(),
    shift=st.integers(1, 30),
)
def test_the_budget_is_never_exceeded(m, seed, frac, neighbours, shift):
    budget = 2 * m + int(frac * 16 * m)
    out = run_search(
        AnytimeSearch(max_shift=shift),
        m,
        interacting(m, seed),
        max_evaluations=budget,
        adjacency=chain(m) if neighbours else None,
    )
    assert sorted(out.order) == list(range(m))
    assert out.n_evaluations <= budget


def test_more_budget_never_lowers_the_area_on_a_fixed_path():
    # The refinement only applies moves that raise the exact area: an unlimited refinement
    # started from any order of an additive function ends at the optimal order.
    m = 15
    g = torch.Generator().manual_seed(3)
    w = torch.rand(m, generator=g, dtype=torch.float64)
    f = modular(w)
    start = torch.randperm(m, generator=g).tolist()
    out = _refine_from(f, start, m)
    assert out == torch.argsort(w, descending=True).tolist()


def _refine_from(f, start, m, budget=None, beta=0.0, max_shift=None, sizes=None):
    known = {}

    def ask(rows):
        both = torch.cat([rows, ~rows])
        values = yield both
        for k, v in zip(_row_keys(both), values.tolist()):
            known[k] = v
        return values[: len(rows)], values[len(rows) :]

    ctx = SearchContext(m, max_evaluations=budget, region_sizes=sizes)
    p = _order_prefixes(start)
    for k, v in zip(_row_keys(torch.cat([p, ~p])), f(torch.cat([p, ~p])).tolist()):
        known[k] = v
    eye = torch.eye(m, dtype=torch.bool)
    full = torch.ones(m, dtype=torch.bool)
    g = lambda z: f(z) - beta * f(~z)  # noqa: E731
    single = g(eye) - g(~full[None])
    last = g(full[None]) - g(~eye)
    gen = refine(ctx, list(start), known, ask, lambda: 10_000, beta, single, last, max_shift or m, True, 0.0)
    try:
        req = next(gen)
        while True:
            req = gen.send(f(req))
    except StopIteration as stop:
        return stop.value


@settings(max_examples=30, deadline=None)
@given(m=st.integers(3, 14), seed=st.integers(0, 10_000), beta=st.sampled_from([0.0, 0.1, 1.0]))
def test_refinement_never_lowers_the_exact_area(m, seed, beta):
    f = interacting(m, seed)
    g = torch.Generator().manual_seed(seed)
    sizes = torch.rand(m, generator=g, dtype=torch.float64) + 0.1
    sizes = sizes / sizes.sum()
    start = torch.randperm(m, generator=g).tolist()
    out = _refine_from(f, start, m, budget=6 * m, beta=beta, max_shift=4, sizes=sizes)
    assert sorted(out) == list(range(m))
    assert area(f, out, sizes, beta) >= area(f, start, sizes, beta) - 1e-12


def test_batched_equals_one_by_one_and_any_batch_size():
    model = tiny_cnn(7)
    mask = grid_mask(8, 8, grid=3)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    targets = [0, 3, 1]
    sa = SubmodularAttribution(model, search="anytime")
    batched = sa.explain(x, target=targets, feature_mask=mask, perturbations_per_eval=7)
    for i, t in enumerate(targets):
        for ppe in (1, 64):
            (one,) = sa.explain(x[i : i + 1], target=t, feature_mask=mask, perturbations_per_eval=ppe)
            assert one.order.tolist() == batched[i].order.tolist()
            assert one.n_evaluations == batched[i].n_evaluations
            assert one.n_rounds == batched[i].n_rounds
            assert torch.allclose(one.attributions, batched[i].attributions, atol=1e-6)  # curves differ in ulps


@pytest.mark.parametrize("grid", [3, 5])
def test_fewer_rounds_and_evaluations_than_the_two_sided_search_on_a_model(grid):
    model = CountingModel(tiny_cnn(8))
    mask = grid_mask(8, 8, grid=grid)
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(6))
    (ours,) = SubmodularAttribution(model, search="anytime").explain(
        x, target=2, feature_mask=mask, perturbations_per_eval=10_000
    )
    assert ours.n_rounds == len(model.calls)
    (two,) = SubmodularAttribution(model, search="bidirectional").explain(
        x, target=2, feature_mask=mask, perturbations_per_eval=10_000
    )
    m = grid * grid
    assert ours.n_rounds <= two.n_rounds
    assert ours.n_evaluations <= AnytimeSearch().budget(m)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(evaluations_per_region=1),
        dict(complement_weight=2.0),
        dict(refine_weight=-0.1),
        dict(back_insertion=-1.0),
        dict(head_share=1.5),
        dict(n_candidates=0),
        dict(max_shift=0),
        dict(full_steps=-1),
        dict(max_rounds=1),
        dict(ridge=0.0),
    ],
)
def test_bad_arguments_name_themselves(kwargs):
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=name if name != "ridge" else "ridge"):
        AnytimeSearch(**kwargs)

"""RefinedSearch: optimal on additive functions (by gain per element), budget, equivalences."""

import pytest
import torch
from test_search_budget import Counting, interacting, tiny_cnn

from captum_submodular import SubmodularAttribution
from captum_submodular.regions import grid_mask
from captum_submodular.search import SEARCHES, RefinedSearch, run_search


def modular(weights):
    w = torch.as_tensor(weights, dtype=torch.float64)
    return lambda z: z.double() @ w


def chain(m):
    adj = torch.zeros(m, m, dtype=torch.bool)
    adj[torch.arange(m - 1), torch.arange(1, m)] = True
    return adj | adj.T


def objective_area(f, order, sizes):
    prefixes = torch.zeros(len(order) + 1, len(order), dtype=torch.bool)
    for k, c in enumerate(order):
        prefixes[k + 1 :, c] = True
    v = f(prefixes)
    return float((sizes[torch.tensor(order)] * (v[1:] + v[:-1]) / 2).sum())


def test_registered():
    assert SEARCHES["refined"] is RefinedSearch


@pytest.mark.parametrize("m", [2, 3, 7, 20, 49])
@pytest.mark.parametrize("neighbours", [False, True])
def test_modular_functions_give_the_optimal_order(m, neighbours):
    g = torch.Generator().manual_seed(m)
    w = torch.randperm(5 * m, generator=g)[:m].double() - 2.0 * m  # distinct, some negative
    adj = chain(m) if neighbours else None
    out = run_search(RefinedSearch(), m, modular(w), adjacency=adj)
    assert out.order == torch.argsort(w, descending=True).tolist()
    assert out.n_evaluations <= RefinedSearch().budget(m)


def test_unequal_regions_are_ordered_by_gain_per_element():
    # Smith's rule: for an additive F the area is largest in order of w / size.
    g = torch.Generator().manual_seed(1)
    m = 12
    w = torch.rand(m, generator=g, dtype=torch.float64) + 0.1
    sizes = torch.rand(m, generator=g, dtype=torch.float64) + 0.2
    sizes = sizes / sizes.sum()
    out = run_search(RefinedSearch(), m, modular(w), region_sizes=sizes)
    by_density = torch.argsort(w / sizes, descending=True).tolist()
    by_weight = torch.argsort(w, descending=True).tolist()
    assert out.order == by_density != by_weight
    assert objective_area(modular(w), by_density, sizes) > objective_area(modular(w), by_weight, sizes)


def test_hand_counted_evaluations():
    # m = 2: the screen (x[∅] and the two singletons, whose complements are each other)
    # and the full input: 4 = 2m, and the curves need nothing more.
    assert run_search(RefinedSearch(), 2, modular([1.0, 2.0])).n_evaluations == 4
    # m = 3: full, ∅, three singletons and their three complements = 8; the first step is
    # decided by the screen, the second step's candidates {a, c} are complements already
    # scored, and every prefix of the order is among them: 8 in all.
    out = run_search(RefinedSearch(), 3, modular([1.0, 3.0, 2.0]))
    assert out.order == [1, 2, 0] and out.n_evaluations == 8


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("m", [9, 25, 40])
def test_never_more_than_its_budget(seed, m):
    f = interacting(m, seed)
    own = RefinedSearch().budget(m)
    assert own == 10 * m
    out = run_search(RefinedSearch(), m, f, adjacency=chain(m))
    assert sorted(out.order) == list(range(m)) and out.n_evaluations <= own
    for budget in (3 * m, 20 * m):
        out_b = run_search(RefinedSearch(), m, f, max_evaluations=budget, adjacency=chain(m))
        assert sorted(out_b.order) == list(range(m)) and out_b.n_evaluations <= budget
    assert run_search(RefinedSearch(), m, f, max_evaluations=own, adjacency=chain(m)) == out
    assert RefinedSearch(evaluations_per_region=4).budget(m) == 4 * m
    assert RefinedSearch().budget(m, max_evaluations=7 * m) == 7 * m


def test_refinement_improves_the_area_of_its_own_construction():
    # Swaps are kept only when they raise the exact area, so the refined order's area is at
    # least that of the same search without a refinement budget.
    m = 30
    for seed in range(3):
        f = interacting(m, seed)
        sizes = torch.full((m,), 1.0 / m, dtype=torch.float64)
        with_swaps = run_search(RefinedSearch(), m, f, adjacency=chain(m))
        without = run_search(RefinedSearch(refine_share=0.0, evaluations_per_region=2.0), m, f, adjacency=chain(m))
        assert objective_area(f, with_swaps.order, sizes) >= objective_area(f, without.order, sizes) - 1e-12


def test_batch_equals_single_calls_and_batch_size_does_not_matter():
    model = tiny_cnn(1)
    x = torch.randn(3, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    mask = grid_mask(9, 9, grid=3)
    sa = SubmodularAttribution(model, search="refined")
    batched = sa.explain(x, target=[0, 3, 1], feature_mask=mask, perturbations_per_eval=16)
    for i, t in enumerate([0, 3, 1]):
        for ppe in (1, 7):
            (single,) = sa.explain(x[i : i + 1], target=t, feature_mask=mask, perturbations_per_eval=ppe)
            assert single.order.tolist() == batched[i].order.tolist()
            assert single.n_evaluations == batched[i].n_evaluations
            torch.testing.assert_close(single.insertion_curve, batched[i].insertion_curve, rtol=0, atol=1e-6)


def test_attribution_reports_the_rows_the_model_saw():
    model = Counting(tiny_cnn(2))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(5))
    results = SubmodularAttribution(model, search="refined").explain(
        x, target=[1, 2], feature_mask=grid_mask(8, 8, grid=4)
    )
    assert sum(r.n_evaluations for r in results) == model.rows
    assert all(r.n_evaluations <= 160 for r in results)


def test_rejects_bad_arguments():
    for kwargs in (
        {"evaluations_per_region": 1},
        {"refine_share": 1.0},
        {"n_candidates": 0},
        {"tail": "nope"},
        {"complement_weight": 2.0},
    ):
        with pytest.raises(ValueError):
            RefinedSearch(**kwargs)

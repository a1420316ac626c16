"""The contract every registered search strategy must keep (parametrized over ``SEARCHES``).

A new strategy added to :data:`captum_submodular.search.SEARCHES` is tested here without
a line of its own: full permutations, honest query counts, the optimal order on modular
functions, and exact evaluation accounting through SubmodularAttribution.
"""

import pytest
import torch

from captum_submodular import SubmodularAttribution
from captum_submodular.regions import grid_mask
from captum_submodular.search import SEARCHES, get_search, run_search
from conftest import CountingModel, CountingSetFunction, modular, tiny_cnn

NAMES = sorted(SEARCHES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("m", [2, 3, 7, 16])
def test_order_is_a_permutation_and_queries_are_counted(name, m):
    gen = torch.Generator().manual_seed(m)
    w = torch.randn(m, generator=gen, dtype=torch.float64)
    f = CountingSetFunction(lambda z: torch.sigmoid(z.double() @ w) + 0.1 * (z.sum(1) > 1).double())
    out = run_search(get_search(name), m, f)
    assert sorted(out.order) == list(range(m))
    assert out.n_queries == f.rows


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("m", [2, 5, 12, 30])
def test_modular_functions_give_the_descending_weight_order(name, m):
    gen = torch.Generator().manual_seed(100 + m)
    w = torch.randperm(m, generator=gen).double() - m / 3 + 0.25 * torch.rand(m, generator=gen, dtype=torch.float64)
    out = run_search(get_search(name), m, modular(w))
    assert out.order == torch.argsort(w, descending=True).tolist()


@pytest.mark.parametrize("name", NAMES)
def test_expected_queries_match_when_announced(name):
    strategy = get_search(name)
    for m in (4, 9, 20):
        expected = strategy.expected_queries(m)
        if expected is None:
            continue
        f = CountingSetFunction(modular(torch.linspace(1.0, 2.0, m)))
        assert run_search(strategy, m, f).n_queries == expected


@pytest.mark.parametrize("name", NAMES)
def test_evaluations_are_the_rows_the_model_saw_and_batch_equals_singles(name):
    model = CountingModel(tiny_cnn(4))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    mask = grid_mask(8, 8, grid=3)
    sa = SubmodularAttribution(model, search=name)
    batched = sa.explain(x, target=[1, 3], feature_mask=mask, perturbations_per_eval=7)
    assert sum(r.n_evaluations for r in batched) == model.rows
    assert max(model.calls) <= 7
    for i, t in enumerate([1, 3]):
        (single,) = sa.explain(x[i : i + 1], target=t, feature_mask=mask, perturbations_per_eval=1)
        assert single.order.tolist() == batched[i].order.tolist()
        assert single.n_evaluations == batched[i].n_evaluations
        torch.testing.assert_close(single.insertion_curve, batched[i].insertion_curve, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_too_few_regions_is_refused_before_any_model_call(name):
    model = CountingModel(tiny_cnn(5))
    with pytest.raises(ValueError, match="feature_mask"):
        SubmodularAttribution(model, search=name).explain(
            torch.randn(1, 3, 4, 4), target=0, feature_mask=torch.zeros(1, 1, 4, 4, dtype=torch.long)
        )
    assert model.rows == 0


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("effectiveness", [0.0, 0.05])
def test_progress_total_is_exact_from_the_start(name, effectiveness, capsys):
    model = CountingModel(tiny_cnn(6))
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(6))
    from captum_submodular import ObjectiveWeights

    kw = dict(embedding=model.net[3]) if effectiveness else {}
    sa = SubmodularAttribution(model, search=name, weights=ObjectiveWeights(effectiveness=effectiveness), **kw)
    (r,) = sa.explain(x, target=2, feature_mask=grid_mask(12, 12, grid=4), show_progress=True)
    err = capsys.readouterr().err
    exact = sa.search.expected_evaluations(16)
    if exact is None:  # an adaptive search: no total is announced, the label gives the bound
        assert f"/{r.n_evaluations}" not in err
        bound = sa.search.evaluation_bound(16)
        if bound is not None:
            assert f"at most {bound + (16 if effectiveness else 0):,} evals" in err
    else:  # the total shown from the first frame is the count reached at the end
        total = exact + (16 if effectiveness else 0)
        assert total == r.n_evaluations
        frames = [f for f in err.replace("\r", "\n").splitlines() if "evals" in f]
        assert frames and all(f"/{total} " in f for f in frames)


def test_dry_run_counts_are_the_counts_of_real_value_functions():
    for name in NAMES:
        strategy = get_search(name)
        for m in (5, 12, 30):
            expected = strategy.expected_evaluations(m)
            if expected is None:
                continue
            for seed in range(3):
                gen = torch.Generator().manual_seed(seed)
                w = torch.randn(m, generator=gen, dtype=torch.float64)
                pair = torch.randn(m, m, generator=gen, dtype=torch.float64)
                f = lambda z: torch.sigmoid(z.double() @ w + 0.1 * ((z.double() @ pair) * z.double()).sum(1))  # noqa
                assert run_search(strategy, m, f).n_evaluations == expected, (name, m, seed)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("over", [-40, 0, 150])
def test_progress_bound_holds_under_any_budget(name, over, capsys):
    """The bound a progress bar announces is never exceeded, with budgets below, at and above
    the search's own allowance (a larger budget may raise what a search spends)."""
    model = CountingModel(tiny_cnn(6))
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(7))
    own = get_search(name).evaluation_bound(16)
    budget = max(80, (own if own is not None else 300) + over)
    sa = SubmodularAttribution(model, search=name, max_evaluations=budget)
    (r,) = sa.explain(x, target=1, feature_mask=grid_mask(12, 12, grid=4), show_progress=True)
    err = capsys.readouterr().err.replace("\r", "\n")
    assert r.n_evaluations <= budget
    if sa.search.expected_evaluations(16) is None:
        label = [f for f in err.splitlines() if "at most" in f][0]
        announced = int(label.split("at most ")[1].split(" evals")[0].replace(",", ""))
        assert r.n_evaluations <= announced <= budget


@pytest.mark.parametrize("name", sorted(n for n in NAMES if SEARCHES[n].budget_is_allowance))
def test_a_budget_above_the_allowance_is_announced_and_may_be_spent(name, capsys):
    """For searches whose ``max_evaluations`` replaces their own allowance, a larger budget is
    spent beyond that allowance, and the progress label announces the budget, not the allowance."""
    search = SEARCHES[name](evaluations_per_region=3.0)
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(8))
    own = search.evaluation_bound(16)
    sa = SubmodularAttribution(CountingModel(tiny_cnn(6)), search=search, max_evaluations=4 * own)
    (r,) = sa.explain(x, target=1, feature_mask=grid_mask(12, 12, grid=4), show_progress=True)
    err = capsys.readouterr().err
    assert own < r.n_evaluations <= 4 * own
    assert f"at most {4 * own:,} evals" in err

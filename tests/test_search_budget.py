"""`max_evaluations` on every search, and ties within the score resolution."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from captum_submodular import ObjectiveWeights, SubmodularAttribution
from captum_submodular.regions import grid_mask
from captum_submodular.search import (
    SEARCHES,
    SearchOutcome,
    SearchStrategy,
    minimum_evaluations,
    run_search,
)

NAMES = sorted(SEARCHES)


def interacting(m, seed):
    """A set function with synergies between regions and a deletion side: far from modular."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(m, generator=g, dtype=torch.float64)
    pair = torch.randn(m, m, generator=g, dtype=torch.float64) * 0.3

    def f(z):
        zd = z.double()
        keep = torch.sigmoid(zd @ a + ((zd @ pair) * zd).sum(1) - 1)
        gone = torch.sigmoid((~z).double() @ a - 1)
        return keep + 0.25 * (1 - gone)

    return f


def distinct_inputs(queried_rows, order):
    """Independent count: the full input, x[S] and x[V∖S] of every query, and the curves."""
    m = len(order)
    keys = {tuple([True] * m)}
    for row in queried_rows:
        keys.add(tuple(row))
        keys.add(tuple(not v for v in row))
    prefix = [False] * m
    keys.add(tuple(prefix))
    for c in order:
        prefix[c] = True
        keys.add(tuple(prefix))
        keys.add(tuple(not v for v in prefix))
    return len(keys)


@settings(max_examples=30, deadline=None)
@given(m=st.integers(2, 12), seed=st.integers(0, 10_000), name=st.sampled_from(NAMES), share=st.floats(0.0, 1.2))
def test_budget_is_never_exceeded_and_the_order_is_a_permutation(m, seed, name, share):
    f = interacting(m, seed)
    unlimited = run_search(SEARCHES[name](), m, f)
    budget = minimum_evaluations(m) + int(share * (unlimited.n_evaluations - minimum_evaluations(m)))
    rows = []

    def recording(z):
        rows.extend(z.tolist())
        return f(z)

    out = run_search(SEARCHES[name](), m, recording, max_evaluations=budget)
    assert sorted(out.order) == list(range(m))
    assert out.n_evaluations == distinct_inputs(rows, out.order) <= budget
    assert out.n_queries == len(rows)
    # A budget that does not bind changes nothing (PhaseWin's batch-accepted prefixes are
    # counted as unknown in the reserve, so it needs 2m more to be sure not to bind; the
    # refined search plans with its own budget, so a smaller one binds).
    free = unlimited.n_evaluations + (2 * m if name == "phasewin" else 0)
    if name == "refined":  # it plans with the budget it is given, so only its own one is neutral
        free = math.inf if budget != SEARCHES[name]().budget(m) else 0
    if budget >= free:
        assert out.order == unlimited.order


@pytest.mark.parametrize("name", NAMES)
def test_more_budget_buys_a_better_objective_area(name):
    # Smooth trade: the area under F along the order grows with the budget (on average).
    m = 16
    areas = {}
    for budget in (2 * m, 4 * m, 8 * m, 20 * m):
        total = 0.0
        for seed in range(8):
            f = interacting(m, seed)
            out = run_search(SEARCHES[name](), m, f, max_evaluations=budget)
            prefixes = torch.zeros(m + 1, m, dtype=torch.bool)
            for k, c in enumerate(out.order):
                prefixes[k + 1 :, c] = True
            total += float(f(prefixes).mean())
        areas[budget] = total
    assert areas[2 * m] < min(areas[4 * m], areas[8 * m], areas[20 * m])
    assert areas[4 * m] < max(areas[8 * m], areas[20 * m])


def test_too_small_a_budget_is_a_clear_error():
    with pytest.raises(ValueError, match=r"`max_evaluations`=9 is below the minimum of 10"):
        run_search(SEARCHES["greedy"](), 5, interacting(5, 0), max_evaluations=9)


class Counting(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.net(x)


def tiny_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 4)
    ).eval()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("budget", [32, 40, 57, 90])
def test_attribution_budget_with_exact_curves(name, budget):
    model = Counting(tiny_cnn(1))
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    mask = grid_mask(8, 8, grid=4)  # 16 regions: minimum 32
    sa = SubmodularAttribution(model, search=name, max_evaluations=budget)
    results = sa.explain(x, target=[1, 2], feature_mask=mask, perturbations_per_eval=5)
    assert model.rows == sum(r.n_evaluations for r in results)
    for i, res in enumerate(results):
        assert res.n_evaluations <= budget
        assert sorted(res.order.tolist()) == list(range(16))
        keep = torch.zeros(17, 16)
        for k in range(1, 17):
            keep[k, res.order[:k]] = 1.0
        keep_img = keep.reshape(17, 4, 4).repeat_interleave(2, 1).repeat_interleave(2, 2)[:, None]
        with torch.no_grad():
            p_ins = torch.softmax(model.net(x[i : i + 1] * keep_img), -1)[:, [1, 2][i]]
            p_del = torch.softmax(model.net(x[i : i + 1] * (1 - keep_img)), -1)[:, [1, 2][i]]
        torch.testing.assert_close(res.insertion_curve, p_ins.double(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(res.deletion_curve, p_del.double(), rtol=1e-5, atol=1e-6)


def test_budget_counts_the_gradient_and_the_embeddings():
    model = Counting(tiny_cnn(2))
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    mask = grid_mask(8, 8, grid=4)
    sa = SubmodularAttribution(model, search="greedy", within_region="gradient", max_evaluations=40)
    (res,) = sa.explain(x, target=0, feature_mask=mask)
    assert res.n_evaluations <= 40 and model.rows == res.n_evaluations
    weights = ObjectiveWeights(effectiveness=0.05)
    sa = SubmodularAttribution(
        model, search="bidirectional", weights=weights, embedding=model.net[3], max_evaluations=60
    )
    (res,) = sa.explain(x, target=0, feature_mask=mask)
    assert res.n_evaluations <= 60 and sorted(res.order.tolist()) == list(range(16))


def test_too_small_a_budget_fails_before_any_model_call():
    model = Counting(tiny_cnn())
    x = torch.randn(1, 3, 8, 8)
    mask = grid_mask(8, 8, grid=4)
    with pytest.raises(ValueError, match=r"`max_evaluations`=31 is below the minimum of 32"):
        SubmodularAttribution(model, max_evaluations=31).explain(x, target=0, feature_mask=mask)
    with pytest.raises(ValueError, match=r"minimum of 48 .*diversity"):
        SubmodularAttribution(
            model, weights=ObjectiveWeights(effectiveness=1.0), embedding=model.net[3], max_evaluations=47
        ).explain(x, target=0, feature_mask=mask)
    with pytest.raises(ValueError, match=r"minimum of 33 .*gradient"):
        SubmodularAttribution(model, within_region="gradient", max_evaluations=32).explain(
            x, target=0, feature_mask=mask
        )
    assert model.rows == 0
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="max_evaluations"):
            SubmodularAttribution(model, max_evaluations=bad)


def test_a_custom_search_without_context_cannot_take_a_budget():
    class Reverse(SearchStrategy):
        def search(self, m):
            values = yield torch.eye(m, dtype=torch.bool)
            return SearchOutcome(torch.argsort(values).tolist(), m)

    with pytest.raises(ValueError, match="max_evaluations"):
        SubmodularAttribution(tiny_cnn(), search=Reverse(), max_evaluations=100)
    with pytest.raises(ValueError, match="max_evaluations"):
        run_search(Reverse(), 4, lambda z: z.double().sum(1), max_evaluations=100)
    weights = torch.tensor([1.0, 3.0, 2.0, 0.0], dtype=torch.float64)
    assert run_search(Reverse(), 4, lambda z: z.double() @ weights).order == [3, 0, 2, 1]


# ----------------------------------------------------------------- ties


def noisy_ties(m, seed, noise):
    """Modular with pairs of equal weights, plus noise below the resolution on every call."""
    w = torch.arange(m // 2, dtype=torch.float64).repeat_interleave(2)[:m].flip(0) - 1.0
    g = torch.Generator().manual_seed(seed)

    def f(z):
        return z.double() @ w + noise * torch.rand(z.shape[0], generator=g, dtype=torch.float64)

    return f, w


@pytest.mark.parametrize("name", NAMES)
def test_values_within_the_resolution_are_ties_broken_by_the_lower_index(name):
    m = 12
    kwargs = {"defer_temperature": 0.0} if name == "phasewin" else {}
    expected = None
    flipped = False
    for seed in range(5):
        f, w = noisy_ties(m, seed, noise=1e-9)
        out = run_search(SEARCHES[name](**kwargs), m, f, resolution=1e-8)
        # equal weights come out in index order: the order of the noiseless function
        exact = run_search(SEARCHES[name](**kwargs), m, lambda z: z.double() @ w)
        assert out.order == exact.order
        expected = exact.order if expected is None else expected
        flipped |= run_search(SEARCHES[name](**kwargs), m, f).order != exact.order
    assert flipped  # without the resolution the noise decides between equal regions


class BatchDependent(nn.Module):
    """Logits ``[s, −s]`` of the sum of the input per 2×2 tile (equal tiles tie exactly), with
    rounding-sized changes that depend on the row's position in its batch (as real kernels do)."""

    def forward(self, x):
        k = x.shape[0]
        tiles = x.reshape(k, 1, 2, 2, 2, 2).sum(dim=(1, 3, 5)).reshape(k, 4)
        s = tiles @ torch.tensor([1.0, 1.0, 0.5, 0.5]) - 1.0
        jitter = 1.0 + 2.0**-22 * ((torch.arange(k) + k) % 3 - 1).float()
        return torch.stack([s, -s], 1) * jitter[:, None]


@pytest.mark.parametrize("name", NAMES)
def test_batch_size_does_not_change_the_order(name):
    x = torch.ones(1, 1, 4, 4) * 0.3
    mask = grid_mask(4, 4, grid=2)
    sa = SubmodularAttribution(BatchDependent(), search=name)
    one = sa.explain(x, target=0, feature_mask=mask, perturbations_per_eval=1)[0]
    seven = sa.explain(x, target=0, feature_mask=mask, perturbations_per_eval=7)[0]
    assert one.order.tolist() == seven.order.tolist()
    assert one.order.tolist()[:2] == [0, 1]  # the two strong tiles, the lower index first
    assert one.n_evaluations == seven.n_evaluations

"""``SubmodularResult.n_rounds``: sequential rounds of model evaluation, for every search."""

from __future__ import annotations

import pytest
import torch

from captum_submodular import ObjectiveWeights, SubmodularAttribution
from captum_submodular.regions import grid_mask
from captum_submodular.search import SEARCHES
from conftest import CountingModel, tiny_cnn

pytestmark = pytest.mark.usefixtures("single_thread")

MASK = grid_mask(8, 8, grid=3)  # 9 regions


@pytest.mark.parametrize("search", sorted(SEARCHES))
@pytest.mark.parametrize("extras", ["none", "gradient", "diversity"])
def test_rounds_are_the_model_calls_of_an_unbounded_batch(search, extras):
    # With a batch large enough for any round, every round is exactly one model call.
    model = CountingModel(tiny_cnn(4))
    kwargs = {}
    if extras == "gradient":
        kwargs["within_region"] = "gradient"
    if extras == "diversity":
        kwargs.update(weights=ObjectiveWeights(20, 5, 0.01, 0.05), embedding=model.net[3])
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    (r,) = SubmodularAttribution(model, search=search, **kwargs).explain(
        x, target=1, feature_mask=MASK, perturbations_per_eval=10_000
    )
    assert r.n_rounds == len(model.calls)
    assert sum(model.calls) == r.n_evaluations


@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_rounds_do_not_depend_on_the_batch_or_the_other_examples(search):
    model = tiny_cnn(5)
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    sa = SubmodularAttribution(model, search=search)
    batched = sa.explain(x, target=[0, 2, 4], feature_mask=MASK, perturbations_per_eval=5)
    for i, t in enumerate([0, 2, 4]):
        counting = CountingModel(model)
        (single,) = SubmodularAttribution(counting, search=search).explain(
            x[i : i + 1], target=t, feature_mask=MASK, perturbations_per_eval=10_000
        )
        assert batched[i].n_rounds == single.n_rounds == len(counting.calls)


def test_greedy_rounds_closed_form():
    # The unperturbed input; one round per greedy step with at least three candidates left
    # (m − 2 of them: the step with two left asks for V∖{c} and {c}, all seen in the first
    # step); then the baseline for the curves (the empty prefix, never asked for): m rounds.
    model = CountingModel(tiny_cnn(6))
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    (r,) = SubmodularAttribution(model, search="greedy").explain(
        x, target=0, feature_mask=MASK, perturbations_per_eval=10_000
    )
    assert model.calls == [1] + [2 * k for k in range(9, 2, -1)] + [1]
    assert r.n_rounds == 9

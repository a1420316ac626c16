"""The progress bar's total is exact and the bar ends on it: every model evaluation advances it.

Regression: the gradient of ``within_region="gradient"`` (one forward per example) and the
single-region inputs of the diversity term (``m`` per example) were counted in the total and
in ``n_evaluations`` but never advanced the bar, which ended at 2,503 of 2,504.
"""

from __future__ import annotations

from typing import List, Optional

import pytest
import torch

import captum_submodular._evaluator as evaluator_module
from captum_submodular import ObjectiveWeights, SubmodularAttribution
from captum_submodular.regions import grid_mask
from conftest import CountingModel, tiny_cnn


class RecordingBar:
    """Stands in for Captum's tqdm bar: keeps the total and every update."""

    made: List[RecordingBar] = []

    def __init__(self, desc: str = "", total: Optional[int] = None, unit: str = "") -> None:
        self.total = total
        self.n = 0
        self.closed = False
        RecordingBar.made.append(self)

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    RecordingBar.made = []
    monkeypatch.setattr(evaluator_module, "progress", RecordingBar)
    return RecordingBar.made


@pytest.mark.parametrize("search", ["greedy", "bidirectional", "accelerated"])  # the non-adaptive ones
@pytest.mark.parametrize("within_region", [None, "gradient"])
@pytest.mark.parametrize("effectiveness", [0.0, 0.05])
def test_bar_ends_on_its_exact_total(bars, search, within_region, effectiveness):
    model = CountingModel(tiny_cnn(6))
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(6))
    kw = dict(embedding=model.net[3]) if effectiveness else {}
    sa = SubmodularAttribution(
        model, search=search, weights=ObjectiveWeights(effectiveness=effectiveness), within_region=within_region, **kw
    )
    assert sa.search.expected_evaluations(16) is not None
    results = sa.explain(x, target=[2, 4], feature_mask=grid_mask(12, 12, grid=4), show_progress=True)
    (bar,) = bars
    counted = sum(r.n_evaluations for r in results)
    # 16 single-region inputs per example for the diversity term, one gradient forward per example
    extra = 2 * (16 * (effectiveness != 0) + (within_region == "gradient"))
    assert bar.total == 2 * sa.search.expected_evaluations(16) + extra
    assert bar.n == bar.total == counted
    assert bar.closed


def test_adaptive_search_bar_counts_every_evaluation(bars):
    model = CountingModel(tiny_cnn(6))
    x = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(7))
    sa = SubmodularAttribution(
        model,
        search="refined",
        within_region="gradient",
        weights=ObjectiveWeights(effectiveness=0.05),
        embedding=model.net[3],
    )
    (r,) = sa.explain(x, target=1, feature_mask=grid_mask(12, 12, grid=4), show_progress=True)
    (bar,) = bars
    assert bar.total is None
    assert bar.n == r.n_evaluations

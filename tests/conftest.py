"""Shared helpers and tiny models of the test suite.

Import them by name (``from conftest import CountingModel, tiny_cnn``): pytest puts this
folder on ``sys.path``.  Everything here is deterministic and small enough for CI.
"""

from __future__ import annotations

from typing import Callable, Iterator, List

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("single_thread")``):
    tiny models run fastest on one thread and are immune to CPU contention."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class CountingModel(nn.Module):
    """Wraps a model; ``rows`` counts the input rows it saw, ``calls`` lists each call's batch size."""

    def __init__(self, net: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.rows = 0
        self.calls: List[int] = []

    def forward(self, *args):
        self.rows += args[0].shape[0]
        self.calls.append(int(args[0].shape[0]))
        return self.net(*args)


class CountingSetFunction:
    """Wraps a batched set function ``f(Z) -> (k,)`` and counts the subsets (rows) it is asked about."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn
        self.rows = 0

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        self.rows += z.shape[0]
        return self.fn(z)


def modular(weights) -> Callable[[torch.Tensor], torch.Tensor]:
    """``F(S) = Σ_{i∈S} w_i``: greedy's order (descending weights) is optimal."""
    w = torch.as_tensor(weights, dtype=torch.float64)
    return lambda z: z.double() @ w


def tiny_cnn(seed: int = 0, classes: int = 5) -> nn.Module:
    """One conv, 2×2 pooling, a linear head: ``N×3×H×W → N×classes`` logits."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, classes)
    ).eval()


def tiny_net(seed: int = 0, classes: int = 5) -> nn.Module:
    """Two convs, 2×2 pooling, a linear head: ``N×3×H×W → N×classes`` logits."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, classes),
    ).eval()


# --------------------------------------------------------------------------- hypothesis profiles
#
# The property-based suite (tests/test_reliability.py) runs under one of two profiles:
#
# - ``ci`` (default): derandomized (a fixed seed: every run draws the same cases), a
#   bounded number of examples per test, no deadline; the whole suite stays under 60 s.
# - ``thorough``: the same, with 10× the examples, for a local run before a release:
#   ``CAPTUM_SUBMODULAR_PROFILE=thorough pytest tests/test_reliability.py``.
# - ``explore``: like ``thorough`` but randomized (new cases on every run; pass
#   ``--hypothesis-seed=N`` to replay one), to look beyond the fixed cases.
#
# Select one with the environment variable ``CAPTUM_SUBMODULAR_PROFILE``.

import os  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

CI_EXAMPLES = 120
settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("thorough", parent=settings.get_profile("ci"), max_examples=10 * CI_EXAMPLES)
settings.register_profile("explore", parent=settings.get_profile("thorough"), derandomize=False)
settings.load_profile(os.environ.get("CAPTUM_SUBMODULAR_PROFILE", "ci"))

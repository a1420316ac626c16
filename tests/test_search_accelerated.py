"""AcceleratedSearch: validity, exactness on modular functions, query accounting, curves."""

import torch
from torch import nn

from captum_submodular import SubmodularAttribution
from captum_submodular.search import (
    SEARCHES,
    AcceleratedSearch,
    GreedySearch,
    get_search,
    run_search,
)


class Counting:
    """Wraps a set function and counts the subsets (rows) it is asked about."""

    def __init__(self, fn):
        self.fn = fn
        self.rows = 0

    def __call__(self, z):
        self.rows += z.shape[0]
        return self.fn(z)


def modular(weights):
    w = torch.as_tensor(weights, dtype=torch.float64)
    return lambda z: z.double() @ w


def test_registered_under_accelerated():
    assert SEARCHES["accelerated"] is AcceleratedSearch
    assert isinstance(get_search("accelerated"), AcceleratedSearch)
    assert AcceleratedSearch.max_regions >= 1024


def test_modular_function_gives_descending_weight_order():
    gen = torch.Generator().manual_seed(3)
    for m in (2, 3, 7, 49):
        w = torch.randperm(m, generator=gen).double() + 0.5 * torch.rand(m, generator=gen, dtype=torch.float64)
        out = run_search(AcceleratedSearch(), m, modular(w))
        assert out.order == torch.argsort(w, descending=True).tolist()


def test_modular_with_negative_weights():
    w = torch.tensor([0.3, -2.0, 5.0, -0.1, 1.7, 0.0, -7.5, 2.2])
    out = run_search(AcceleratedSearch(), len(w), modular(w))
    assert out.order == [2, 7, 4, 0, 5, 3, 1, 6]


def test_n_queries_counts_rows_and_beats_greedy():
    m = 49
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(m, generator=gen, dtype=torch.float64)
    pair = torch.rand(m, m, generator=gen, dtype=torch.float64) * 0.05

    def nonmodular(z):  # modular plus pairwise synergy, then a squashing non-linearity
        zd = z.double()
        return torch.sigmoid(zd @ a - 5 + ((zd @ pair) * zd).sum(1))

    counter = Counting(nonmodular)
    strategy = AcceleratedSearch()
    out = run_search(strategy, m, counter)
    assert sorted(out.order) == list(range(m))
    assert out.n_queries == counter.rows
    assert out.n_queries == strategy.expected_queries(m)
    assert out.n_queries < GreedySearch().expected_queries(m) == m * (m + 1) // 2


def test_deterministic():
    m = 20
    f = lambda z: torch.sigmoid(z.double().sum(1) * torch.linspace(0.1, 1, z.shape[0]).double())  # noqa: E731
    w = torch.linspace(-1, 2, m).double().flip(0)
    g = lambda z: torch.tanh(z.double() @ w) + 0.1 * z.double()[:, ::2].sum(1) ** 2  # noqa: E731
    assert run_search(AcceleratedSearch(), m, g).order == run_search(AcceleratedSearch(), m, g).order
    del f


class TinyNet(nn.Module):
    """Fixed-weight 2-class model on 1×4×4 inputs with an interaction (so not modular)."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.w1 = torch.randn(16, 8, generator=gen)
        self.w2 = torch.randn(8, 2, generator=gen)

    def forward(self, x):
        return torch.tanh(x.reshape(x.shape[0], -1) @ self.w1) @ self.w2


def test_valid_permutation_and_exact_curves():
    model = TinyNet()
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 1, 4, 4, generator=gen)
    mask = torch.arange(16).reshape(1, 1, 4, 4)  # 16 regions
    attr = SubmodularAttribution(model, search="accelerated")
    results = attr.explain(x, target=[0, 1], feature_mask=mask, perturbations_per_eval=7)
    for i, res in enumerate(results):
        assert sorted(res.order.tolist()) == list(range(16))
        # curves evaluated directly on the prefixes of the returned order
        keep = torch.zeros(17, 16)
        for k in range(1, 17):
            keep[k, res.order[:k]] = 1.0
        keep_img = keep.reshape(17, 1, 4, 4)
        with torch.no_grad():
            p_ins = torch.softmax(model(x[i : i + 1] * keep_img), -1)[:, i]
            p_del = torch.softmax(model(x[i : i + 1] * (1 - keep_img)), -1)[:, i]
        torch.testing.assert_close(res.insertion_curve, p_ins.double(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(res.deletion_curve, p_del.double(), rtol=1e-5, atol=1e-6)
        # sorting the non-zero values reproduces the order of those regions (the zeros are the
        # regions that changed neither curve at their place)
        vals = res.region_values[res.order]
        nz = vals[vals != 0]
        assert torch.all(nz[:-1] > nz[1:])
        # fewer model evaluations than plain greedy (m(m+1) + 2)
        assert res.n_evaluations < 16 * 17


def test_rejects_bad_arguments():
    import pytest

    with pytest.raises(ValueError):
        AcceleratedSearch(n_candidates=0)
    with pytest.raises(ValueError):
        AcceleratedSearch(n_candidates=2, n_stale=3)
    with pytest.raises(ValueError):
        AcceleratedSearch(ridge=0.0)

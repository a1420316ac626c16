"""ROAD in the metrics: the substrate, both removal orders, the combined score, the registry."""

import pytest
import torch
from torch import nn

from captum_submodular.imputation import road_impute
from captum_submodular.metrics import METRICS, Faithfulness, RoadSubstrate, deletion, insertion
from conftest import CountingModel, tiny_net


class Linear(nn.Module):
    """f(x) = Σ w·x per example (identity output: one scalar per example)."""

    def __init__(self, w):
        super().__init__()
        self.register_buffer("w", w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


def images(n=2, size=10, seed=0):
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_road_curve_points_are_the_imputed_images():
    net = tiny_net(1)
    x = images(1)
    attr = torch.randn(1, 1, 10, 10, generator=torch.Generator().manual_seed(3))
    road = RoadSubstrate(noise_std=0.0)
    res = deletion(net, x, attr, 2, n_steps=4, substrate=road, return_curves=True)
    order = torch.argsort(-attr.flatten(), stable=True)
    for k in range(5):
        c = (2 * k * 100 + 4) // 8
        removed = torch.zeros(100, dtype=torch.bool)
        removed[order[:c]] = True
        z = road_impute(x, removed.reshape(1, 1, 10, 10), noise_std=0.0)
        expected = torch.softmax(net(z), 1)[0, 2].item()
        assert res.scores[0, k].item() == pytest.approx(expected, abs=1e-6)
    # insertion: the not-yet-inserted elements are imputed from the inserted ones; nothing
    # inserted gives the baselines.
    ins = insertion(net, x, attr, 2, baselines=0.5, n_steps=4, substrate=road, return_curves=True)
    assert ins.scores[0, 0].item() == pytest.approx(
        torch.softmax(net(torch.full_like(x, 0.5)), 1)[0, 2].item(), abs=1e-6
    )
    assert ins.scores[0, 4].item() == pytest.approx(torch.softmax(net(x), 1)[0, 2].item(), abs=1e-6)


@pytest.mark.parametrize("noise_std", [0.0, 0.01])
def test_batched_equals_one_by_one_and_noise_is_seed_stable(noise_std):
    net = tiny_net(2)
    x = images(3, seed=1)
    attr = torch.randn(3, 3, 10, 10, generator=torch.Generator().manual_seed(4))
    road = RoadSubstrate(noise_std=noise_std, seed=7)
    batched = deletion(
        net, x, attr, [0, 1, 2], n_steps=6, substrate=road, perturbations_per_eval=64, return_curves=True
    )
    for i in range(3):
        single = deletion(
            net,
            x[i : i + 1],
            attr[i : i + 1],
            i,
            n_steps=6,
            substrate=road,
            perturbations_per_eval=1,
            return_curves=True,
        )
        torch.testing.assert_close(single.scores[0], batched.scores[i], rtol=0, atol=1e-6)
    again = deletion(net, x, attr, [0, 1, 2], n_steps=6, substrate=road, return_curves=True)
    torch.testing.assert_close(again.scores, batched.scores, rtol=0, atol=0)
    other = deletion(
        net, x, attr, [0, 1, 2], n_steps=6, substrate=RoadSubstrate(noise_std=noise_std, seed=8), return_curves=True
    )
    if noise_std == 0:
        torch.testing.assert_close(other.scores, batched.scores, rtol=0, atol=0)
    else:
        assert not torch.equal(other.scores[:, 1:-1], batched.scores[:, 1:-1])


def test_morf_of_a_perfect_attribution_is_minimal_and_lerf_maximal():
    # Isolated bright pixels on a flat background, an additive model that reads only them:
    # removing one takes it to about the background, so w·x is the perfect attribution.
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(1, 1, 16, 16)
    w = torch.zeros(1, 1, 16, 16)
    spots = [(r, c) for r in range(1, 16, 4) for c in range(1, 16, 4)]
    weights = torch.randperm(len(spots), generator=gen).double() + 1.0
    for (r, c), v in zip(spots, weights):
        x[0, 0, r, c] = 1.0
        w[0, 0, r, c] = float(v)
    model = Linear(w)
    perfect = w * x
    road = RoadSubstrate(noise_std=0.0)
    kw = dict(n_steps=64, substrate=road, output="identity")
    morf = deletion(model, x, perfect, **kw).item()
    lerf = deletion(model, x, perfect, order="lerf", **kw).item()
    for seed in range(20):
        other = torch.rand(perfect.shape, generator=torch.Generator().manual_seed(seed)) * (x > 0)
        assert morf <= deletion(model, x, other, **kw).item() + 1e-9
        assert lerf >= deletion(model, x, other, order="lerf", **kw).item() - 1e-9
    assert morf < lerf


def test_lerf_is_morf_of_the_negated_map():
    net = tiny_net(3)
    x = images(2, seed=5)
    attr = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(6))
    for substrate in (None, RoadSubstrate(noise_std=0.0)):
        a = deletion(net, x, attr, [1, 2], n_steps=5, substrate=substrate, order="lerf")
        b = deletion(net, x, -attr, [1, 2], n_steps=5, substrate=substrate)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)


def test_registry_declares_road_and_both_orders_with_their_directions():
    assert METRICS["road_morf"].higher_is_better is False and METRICS["road_morf"].substrate == "road"
    assert METRICS["road_lerf"].higher_is_better is True and METRICS["road_lerf"].order == "lerf"
    assert METRICS["road_combined"].components == ("road_lerf", "road_morf")
    assert METRICS["deletion_lerf"].higher_is_better is True
    net = tiny_net(4)
    x = images(2, seed=9)
    attr = torch.randn(2, 1, 10, 10, generator=torch.Generator().manual_seed(10))
    bound = Faithfulness(net, x, [0, 3], n_steps=5)
    scores = bound.score(attr, ("road_morf", "road_lerf", "road_combined"))
    combined = scores["road_lerf"].values - scores["road_morf"].values
    assert (scores["road_combined"].values == combined).all()
    direct = deletion(net, x, attr, [0, 3], n_steps=5, substrate="road")
    torch.testing.assert_close(torch.as_tensor(scores["road_morf"].values[:, 0]), direct.double(), rtol=0, atol=1e-9)


def test_bad_road_inputs_are_refused_before_any_model_call():
    model = CountingModel(tiny_net(5))
    x = images(1)
    attr = torch.rand(1, 3, 10, 10)
    with pytest.raises(ValueError, match="substrate"):
        deletion(model, x, attr, 0, substrate="imputed")
    with pytest.raises(ValueError, match="N x C x H x W"):
        deletion(model, torch.rand(2, 5), torch.rand(2, 5), 0, substrate="road")
    with pytest.raises(ValueError, match="feature_mask"):
        deletion(model, x, attr, 0, substrate="road", feature_mask=torch.zeros(1, 1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="order"):
        deletion(model, x, attr, 0, order="random")
    with pytest.raises(ValueError, match="noise_std"):
        RoadSubstrate(noise_std=-1.0)
    assert model.rows == 0


@pytest.mark.parametrize("substrate", [None, RoadSubstrate(noise_std=0.0)], ids=["baseline", "road"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lerf_deletion_is_the_insertion_curve_read_backwards(seed, substrate):
    # Removing the least relevant k/n of the elements leaves the most relevant (n-k)/n shown
    # and the rest filled by the substrate: the insertion curve's point n-k, for a constant
    # baseline and for ROAD alike (no ties in a continuous map, and k·E/n integral here, so
    # the step sets match exactly).  BENCHMARKS §2 and docs/metrics.md rely on it.
    net = tiny_net(seed)
    x = images(2, seed=seed)
    attr = torch.randn(2, 1, 10, 10, generator=torch.Generator().manual_seed(10 + seed))
    kw = dict(n_steps=4, baselines=0.5, substrate=substrate, return_curves=True)
    ins = insertion(net, x, attr, [1, 3], **kw)
    lerf = deletion(net, x, attr, [1, 3], order="lerf", **kw)
    morf = deletion(net, x, attr, [1, 3], **kw)
    torch.testing.assert_close(lerf.scores, ins.scores.flip(1), rtol=0, atol=1e-6)
    assert not torch.allclose(morf.scores[:, 1:-1], ins.scores.flip(1)[:, 1:-1], atol=1e-4)

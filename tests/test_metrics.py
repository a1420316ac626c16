"""Tests for captum_submodular.metrics (insertion / deletion / highest confidence)."""

import math

import pytest
import torch
from torch import nn
from torchvision.transforms.functional import gaussian_blur

from captum_submodular.metrics import (
    METRICS,
    CurveResult,
    HighestConfidenceResult,
    deletion,
    highest_confidence,
    insertion,
    perturbation_curves,
)
from conftest import CountingModel as Counting

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread (conftest)


class LinearScore(nn.Module):
    """f(x) = sum(w * x) + bias, one scalar per example (shape (N,))."""

    def __init__(self, w, bias=0.0):
        super().__init__()
        self.w = torch.as_tensor(w, dtype=torch.float64)
        self.bias = bias

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1) + self.bias


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).eval()


def trapezoid(xs, ss):
    return sum((xs[i + 1] - xs[i]) * (ss[i] + ss[i + 1]) / 2 for i in range(len(xs) - 1))


def reference_curve(model, x, attr, target, baseline, kind, n_steps=None, mask=None):
    """Plain reference for ONE example x (C x H x W): loops, one forward per step.

    Pixel mode: positions ranked by channel-summed attribution, ties by lower
    index, c_k = floor(k E / K + 1/2). Region mode: regions ranked by the mean
    of the channel-summed attribution over their positions, ties by lower id.
    """
    C, H, W = x.shape
    E = H * W
    s = attr.sum(0).flatten().tolist()
    if mask is None:
        order = sorted(range(E), key=lambda i: (-s[i], i))
        steps = []
        for k in range(n_steps + 1):
            c = (2 * k * E + n_steps) // (2 * n_steps)
            steps.append(order[:c])
    else:
        m = mask.flatten().tolist()
        ids = sorted(set(m))
        score = {}
        for r in ids:
            pos = [i for i in range(E) if m[i] == r]
            score[r] = sum(s[i] for i in pos) / len(pos)
        order = sorted(ids, key=lambda r: (-score[r], r))
        steps = []
        for k in range(len(ids) + 1):
            steps.append([i for i in range(E) if m[i] in order[:k]])
    fracs, scores = [], []
    for revealed in steps:
        if kind == "insertion":
            comp, src = baseline.clone(), x
        else:
            comp, src = x.clone(), baseline
        for i in revealed:
            h, w = divmod(i, W)
            comp[:, h, w] = src[:, h, w]
        with torch.no_grad():
            p = torch.softmax(model(comp[None]), dim=1)[0, target].item()
        fracs.append(len(revealed) / E)
        scores.append(p)
    return fracs, scores, trapezoid(fracs, scores)


# --------------------------------------------------------------------------
# analytic linear model
# --------------------------------------------------------------------------


def test_analytic_2x2_hand_values():
    w = torch.tensor([[[[3.0, 1.0], [4.0, 2.0]]]], dtype=torch.float64)
    model = LinearScore(w)
    x = torch.ones_like(w)
    kw = dict(output="identity", n_steps=4)
    # perfect order 4,3,2,1: S = 0,4,7,9,10 -> (1/4)(0/2+4+7+9+10/2) = 25/4
    assert insertion(model, x, w, **kw).item() == pytest.approx(25 / 4, abs=1e-6)
    # deletion: 10,6,3,1,0 -> (1/4)(10/2+6+3+1+0/2) = 15/4
    assert deletion(model, x, w, **kw).item() == pytest.approx(15 / 4, abs=1e-6)
    # reversed: insertion 0,1,3,6,10 -> 15/4 ; deletion 10,9,7,4,0 -> 25/4
    assert insertion(model, x, -w, **kw).item() == pytest.approx(15 / 4, abs=1e-6)
    assert deletion(model, x, -w, **kw).item() == pytest.approx(25 / 4, abs=1e-6)
    res = insertion(model, x, w, return_curves=True, **kw)
    assert isinstance(res, CurveResult)
    assert res.scores[0].tolist() == [0.0, 4.0, 7.0, 9.0, 10.0]
    assert res.fractions[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]


def _closed_form_linear_areas(n_el, n_steps):
    """w = permutation of 1..E, x = 1, b = 0, K | E, counts c_k = k E / K.

    Top-c sum of the weights: T(c) = c E - c (c - 1) / 2 ; total = E (E + 1) / 2.
    Trapezoid on a uniform grid: A = (1/K) (sum_k S_k - (S_0 + S_K) / 2).
    """
    total = n_el * (n_el + 1) / 2
    top = lambda c: c * n_el - c * (c - 1) / 2  # noqa: E731
    bottom = lambda c: c * (c + 1) / 2  # noqa: E731
    cs = [k * n_el // n_steps for k in range(n_steps + 1)]

    def area(seq):
        return (sum(seq) - (seq[0] + seq[-1]) / 2) / n_steps

    ins_perfect = area([top(c) for c in cs])
    del_perfect = area([total - top(c) for c in cs])
    ins_reversed = area([bottom(c) for c in cs])
    del_reversed = area([total - bottom(c) for c in cs])
    return total, ins_perfect, del_perfect, ins_reversed, del_reversed


@pytest.mark.parametrize("n_steps", [16, 8])
def test_analytic_4x4_closed_form_and_mirror(n_steps):
    g = torch.Generator().manual_seed(1)
    w = (torch.randperm(16, generator=g) + 1).double().view(1, 1, 4, 4)
    model = LinearScore(w)
    x = torch.ones_like(w)
    total, ip, dp, ir, dr = _closed_form_linear_areas(16, n_steps)
    assert (total, ip) == (136.0, 89.25) or n_steps != 16
    kw = dict(output="identity", n_steps=n_steps, return_curves=True)
    ins_p = insertion(model, x, w, **kw)
    del_p = deletion(model, x, w, **kw)
    ins_r = insertion(model, x, -w, **kw)
    del_r = deletion(model, x, -w, **kw)
    assert ins_p.area.item() == pytest.approx(ip, abs=1e-6)
    assert del_p.area.item() == pytest.approx(dp, abs=1e-6)
    assert ins_r.area.item() == pytest.approx(ir, abs=1e-6)
    assert del_r.area.item() == pytest.approx(dr, abs=1e-6)
    # Mirror identity (symmetric grid, any model): the reversed insertion curve
    # is the perfect deletion curve read backwards, so ins(rev) == del(perfect).
    assert torch.equal(ins_r.scores.flip(1), del_p.scores)
    assert ins_r.area.item() == pytest.approx(del_p.area.item(), abs=1e-9)
    # Linear identity: x_ins_k + x_del_k = x + b, so ins + del = f(x) + f(b).
    assert ins_p.area.item() + del_p.area.item() == pytest.approx(total, abs=1e-6)

    # A random attribution lies strictly between perfect and reversed.
    rnd = torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64)
    assert not torch.equal(rnd.flatten().argsort(), w.flatten().argsort())
    ins_rnd = insertion(model, x, rnd, output="identity", n_steps=n_steps).item()
    del_rnd = deletion(model, x, rnd, output="identity", n_steps=n_steps).item()
    assert ir < ins_rnd < ip
    assert dp < del_rnd < dr


def test_linear_identity_with_bias_baseline_and_uneven_grid():
    # ins(A) + del(A) = f(x) + f(b) for an affine model, any A, any grid.
    g = torch.Generator().manual_seed(2)
    w = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)
    model = LinearScore(w[0], bias=0.7)
    x = torch.randn(2, 2, 3, 3, generator=g, dtype=torch.float64)
    b = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)  # one-example shape
    attr = torch.randn(2, 1, 3, 3, generator=g, dtype=torch.float64)  # N x 1 x H x W
    kw = dict(baselines=b, output="identity", n_steps=5, return_curves=True)
    ins = insertion(model, x, attr, **kw)
    dele = deletion(model, x, attr, **kw)
    expect = model(x) + model(b.expand_as(x))
    assert torch.allclose(ins.area + dele.area, expect, atol=1e-9)
    # actual fractions: c_k = floor(k * 9 / 5 + 1/2) = 0,2,4,5,7,9
    assert ins.fractions[0].tolist() == [c / 9 for c in (0, 2, 4, 5, 7, 9)]


def test_scale_invariance():
    net = small_net()
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 3, 6, 6, generator=g)
    attr = torch.randn(3, 3, 6, 6, generator=g)
    mask = torch.arange(36).view(1, 1, 6, 6) // 5
    for kw in (dict(n_steps=9), dict(feature_mask=mask)):
        for fn in (insertion, deletion):
            a = fn(net, x, attr, target=[0, 1, 2], return_curves=True, **kw)
            b = fn(net, x, attr * 3.7, target=[0, 1, 2], return_curves=True, **kw)
            assert torch.equal(a.scores, b.scores)
            assert torch.equal(a.area, b.area)


# --------------------------------------------------------------------------
# ties, region ordering, N x F
# --------------------------------------------------------------------------


def test_ties_lowest_index_first():
    w = torch.tensor([[[[1.0, 10.0], [100.0, 1000.0]]]], dtype=torch.float64)
    model = LinearScore(w)
    x = torch.ones_like(w)
    const = torch.full_like(w, 0.5)
    ins = insertion(model, x, const, output="identity", n_steps=4, return_curves=True)
    assert ins.scores[0].tolist() == [0.0, 1.0, 11.0, 111.0, 1111.0]
    dele = deletion(model, x, const, output="identity", n_steps=4, return_curves=True)
    assert dele.scores[0].tolist() == [1111.0, 1110.0, 1100.0, 1000.0, 0.0]
    # many ties (16 x 16, one region-free tie class): flattened order 0, 1, 2, ...
    w = torch.arange(256, dtype=torch.float64).view(1, 1, 16, 16)
    big = insertion(
        LinearScore(w), torch.ones_like(w), torch.zeros_like(w), output="identity", n_steps=256, return_curves=True
    )
    assert big.scores[0].tolist() == [k * (k - 1) / 2 for k in range(257)]
    # partial ties: positions 1 and 3 tie at the top -> 1 first, then 3
    attr = torch.tensor([[[[0.0, 2.0], [1.0, 2.0]]]], dtype=torch.float64)
    ins = insertion(model, x, attr, output="identity", n_steps=4, return_curves=True)
    assert ins.scores[0].tolist() == [0.0, 10.0, 1010.0, 1110.0, 1111.0]


def test_region_mode_ties_by_lower_id_and_fractions():
    w = torch.tensor([[[[1.0, 10.0], [100.0, 1000.0]]]], dtype=torch.float64)
    model = LinearScore(w)
    x = torch.ones_like(w)
    mask = torch.tensor([[7, 7], [2, 5]])  # plain H x W, non-contiguous ids
    res = insertion(model, x, torch.zeros_like(w), output="identity", feature_mask=mask, return_curves=True)
    # all regions tie -> ids 2, 5, 7: positions {2}, {3}, {0, 1}
    assert res.scores[0].tolist() == [0.0, 100.0, 1100.0, 1111.0]
    assert res.fractions[0].tolist() == [0.0, 0.25, 0.5, 1.0]
    # region score = MEAN attribution (not the sum): region 5 (2.0) > region 7
    # (mean 1.25, sum 2.5) > region 2 (1.0)
    attr = torch.tensor([[[[2.5, 0.0], [1.0, 2.0]]]], dtype=torch.float64)
    res = insertion(model, x, attr, output="identity", feature_mask=mask, return_curves=True)
    assert res.scores[0].tolist() == [0.0, 1000.0, 1011.0, 1111.0]
    assert res.fractions[0].tolist() == [0.0, 0.25, 0.75, 1.0]
    # a region-constant map (N x 1 x H x W) ranks by the region values
    attr = torch.tensor([[[[0.3, 0.3], [0.1, 0.2]]]], dtype=torch.float32)
    res = deletion(model, x, attr, output="identity", feature_mask=mask[None, None], return_curves=True)
    assert res.scores[0].tolist() == [1111.0, 1100.0, 100.0, 0.0]


def test_nxf_features_are_elements():
    w = torch.tensor([[5.0, 1.0, 3.0]], dtype=torch.float64)
    model = LinearScore(w)
    x = torch.ones(1, 3, dtype=torch.float64)
    res = insertion(model, x, w, output="identity", n_steps=3, return_curves=True)
    assert res.scores[0].tolist() == [0.0, 5.0, 8.0, 9.0]


def test_tuple_inputs_ranked_jointly():
    wa = torch.tensor([[[[3.0, 1.0], [4.0, 2.0]]]], dtype=torch.float64)
    wb = torch.tensor([[5.0, 0.5, 2.5]], dtype=torch.float64)

    def model(a, b):
        return (a * wa).flatten(1).sum(1) + (b * wb).sum(1)

    xs = (torch.ones_like(wa), torch.ones_like(wb))
    res = insertion(model, xs, (wa, wb), output="identity", n_steps=7, return_curves=True)
    # order 5, 4, 3, 2.5, 2, 1, 0.5 -> S = 0, 5, 9, 12, 14.5, 16.5, 17.5, 18
    assert res.scores[0].tolist() == [0.0, 5.0, 9.0, 12.0, 14.5, 16.5, 17.5, 18.0]
    assert res.area.item() == pytest.approx((92.5 - 9.0) / 7, abs=1e-9)


# --------------------------------------------------------------------------
# batching and reference implementation
# --------------------------------------------------------------------------


def test_batched_equals_unbatched_and_reference_pixel_mode():
    net = small_net()
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 3, 6, 6, generator=g)
    attr = torch.randn(3, 3, 6, 6, generator=g)
    target = torch.tensor([1, 4, 0])
    base = torch.rand(3, 6, 6, generator=g)
    for fn, kind in ((insertion, "insertion"), (deletion, "deletion")):
        kw = dict(n_steps=7, return_curves=True)
        one = fn(net, x, attr, target, base, perturbations_per_eval=1, **kw)
        big = fn(net, x, attr, target, base, perturbations_per_eval=1000, **kw)
        assert torch.equal(one.fractions, big.fractions)
        torch.testing.assert_close(one.scores, big.scores, rtol=0, atol=1e-7)
        assert one.scores.shape == (3, 8)
        for n in range(3):
            fr, sc, area = reference_curve(net, x[n], attr[n], int(target[n]), base, kind, n_steps=7)
            assert big.fractions[n].tolist() == pytest.approx(fr, abs=1e-12)
            assert big.scores[n].tolist() == pytest.approx(sc, abs=1e-6)
            assert big.area[n].item() == pytest.approx(area, abs=1e-6)


def test_batched_equals_unbatched_and_reference_region_mode():
    net = small_net()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 6, 6, generator=g)
    attr = torch.randn(2, 3, 6, 6, generator=g)
    target = [2, 3]
    mask = torch.empty(2, 1, 6, 6, dtype=torch.long)
    quad = torch.tensor([[3, 10], [42, 7]]).repeat_interleave(3, 0).repeat_interleave(3, 1)
    mask[0, 0] = quad  # 4 regions
    mask[1, 0] = torch.tensor([100, 100, 5, 5, 3, 3]).repeat(6, 1)  # 3 stripes
    for fn, kind in ((insertion, "insertion"), (deletion, "deletion")):
        kw = dict(feature_mask=mask, return_curves=True)
        one = fn(net, x, attr, target, perturbations_per_eval=1, **kw)
        big = fn(net, x, attr, target, perturbations_per_eval=1000, **kw)
        torch.testing.assert_close(one.scores, big.scores, rtol=0, atol=1e-7)
        assert big.lengths.tolist() == [5, 4]
        assert big.scores.shape == (2, 5)
        for n in range(2):
            fr, sc, area = reference_curve(net, x[n], attr[n], target[n], torch.zeros(3, 6, 6), kind, mask=mask[n, 0])
            L = len(fr)
            assert big.fractions[n, :L].tolist() == pytest.approx(fr, abs=1e-12)
            assert big.scores[n, :L].tolist() == pytest.approx(sc, abs=1e-6)
            assert big.area[n].item() == pytest.approx(area, abs=1e-6)
            # padding repeats the final point and adds no area
            assert big.fractions[n, L:].tolist() == [1.0] * (5 - L)
            assert big.scores[n, L:].tolist() == [big.scores[n, L - 1].item()] * (5 - L)


def test_cost_chunking_and_clean_output_reuse():
    net = small_net()
    g = torch.Generator().manual_seed(6)
    x = torch.rand(3, 3, 6, 6, generator=g)
    attr = torch.randn(3, 3, 6, 6, generator=g)
    model = Counting(net)
    res = deletion(model, x, attr, 0, n_steps=4, perturbations_per_eval=4, return_curves=True)
    assert model.rows == 3 * 5 and len(model.calls) == math.ceil(15 / 4)
    # region mode: N * (m + 1) rows
    model = Counting(net)
    mask = torch.arange(36).view(6, 6) // 12  # 3 regions
    insertion(model, x, attr, 0, feature_mask=mask, perturbations_per_eval=64)
    assert model.rows == 3 * 4 and len(model.calls) == 1
    # reuse clean predictions: N fewer rows, same curve
    with torch.no_grad():
        clean = net(x)
    for fn in (insertion, deletion):
        model = Counting(net)
        ref = fn(net, x, attr, 0, n_steps=4, return_curves=True)
        reused = fn(model, x, attr, 0, n_steps=4, clean_output=clean, return_curves=True)
        assert model.rows == 3 * 4
        torch.testing.assert_close(reused.scores, ref.scores, rtol=0, atol=1e-7)
    assert torch.equal(res.scores[:, 0], torch.softmax(clean, 1)[:, 0].double())


def test_additional_forward_args_expanded_per_row():
    net = small_net()
    g = torch.Generator().manual_seed(7)
    x = torch.rand(3, 3, 6, 6, generator=g)
    attr = torch.randn(3, 3, 6, 6, generator=g)
    scale = torch.tensor([0.5, 2.0, -1.0])

    def model(inp, s, offset):
        return net(inp) * s[:, None] + offset

    got = insertion(
        model, x, attr, [1, 2, 3], None, (scale, 0.25), n_steps=5, perturbations_per_eval=4, return_curves=True
    )
    for n in range(3):
        single = insertion(
            lambda inp: net(inp) * scale[n] + 0.25,
            x[n : n + 1],
            attr[n : n + 1],
            [1, 2, 3][n],
            n_steps=5,
            return_curves=True,
        )
        torch.testing.assert_close(got.scores[n], single.scores[0], rtol=0, atol=1e-7)


def test_target_forms_agree_and_inputs_untouched():
    net = small_net()
    g = torch.Generator().manual_seed(8)
    x = torch.rand(2, 3, 6, 6, generator=g)
    attr = torch.randn(2, 3, 6, 6, generator=g)
    x0, a0 = x.clone(), attr.clone()
    base = torch.rand(2, 3, 6, 6, generator=g)
    b0 = base.clone()
    r_int = insertion(net, x, attr, 3, base, n_steps=4)
    r_list = insertion(net, x, attr, [3, 3], base, n_steps=4)
    r_tensor = insertion(net, x, attr, torch.tensor([3, 3]), base, n_steps=4)
    assert torch.equal(r_int, r_list) and torch.equal(r_int, r_tensor)
    assert r_int.shape == (2,)
    assert torch.equal(x, x0) and torch.equal(attr, a0) and torch.equal(base, b0)


# --------------------------------------------------------------------------
# substrates
# --------------------------------------------------------------------------


def test_substrate_presets():
    net = small_net()
    g = torch.Generator().manual_seed(9)
    x = torch.rand(2, 3, 8, 8, generator=g)
    attr = torch.randn(2, 3, 8, 8, generator=g)
    t = torch.tensor([0, 2])

    def p(inp):
        with torch.no_grad():
            return torch.softmax(net(inp), 1)[torch.arange(2), t].double()

    blurred = gaussian_blur(x, [11, 11], [5.0, 5.0])
    for preset in ("blur", "rise"):
        ins = insertion(net, x, attr, t, substrate=preset, n_steps=4, return_curves=True)
        torch.testing.assert_close(ins.scores[:, 0], p(blurred), rtol=0, atol=1e-7)
        torch.testing.assert_close(ins.scores[:, -1], p(x), rtol=0, atol=1e-7)
        dele = deletion(net, x, attr, t, substrate=preset, n_steps=4, return_curves=True)
        torch.testing.assert_close(dele.scores[:, -1], p(torch.zeros_like(x)), rtol=0, atol=1e-7)
    mean = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
    for fn, idx in ((insertion, 0), (deletion, -1)):
        res = fn(net, x, attr, t, substrate="mean", n_steps=4, return_curves=True)
        torch.testing.assert_close(res.scores[:, idx], p(mean), rtol=0, atol=1e-7)
    # default substrate = baselines for both curves; Captum baseline forms
    for bl, full in (
        (0.5, torch.full_like(x, 0.5)),
        (x[0], x[0].expand_as(x)),
        (x.flip(0), x.flip(0)),
    ):
        ins = insertion(net, x, attr, t, bl, n_steps=4, return_curves=True)
        dele = deletion(net, x, attr, t, bl, n_steps=4, return_curves=True)
        torch.testing.assert_close(ins.scores[:, 0], p(full), rtol=0, atol=1e-7)
        torch.testing.assert_close(dele.scores[:, -1], p(full), rtol=0, atol=1e-7)


# --------------------------------------------------------------------------
# highest confidence
# --------------------------------------------------------------------------


def test_highest_confidence_known_values():
    w = torch.tensor([2.0, -1.0, 1.0, 0.5], dtype=torch.float64)

    def model(inp):  # logits [sum(w x), 0] -> p(class 0) = sigmoid(sum(w x))
        z = (inp * w).sum(1)
        return torch.stack([z, torch.zeros_like(z)], dim=1)

    x = torch.ones(2, 4, dtype=torch.float64)
    attr = torch.stack([w, -w])
    res = highest_confidence(model, x, attr, 0, budgets=(0.0, 0.25, 0.3, 0.5, 0.75, 1.0), n_steps=4)
    assert isinstance(res, HighestConfidenceResult)
    s = torch.sigmoid
    # ex 0 logits along insertion: 0, 2, 3, 3.5, 2.5 ; ex 1: 0, -1, -0.5, 0.5, 2.5
    t = lambda v: s(torch.tensor(v, dtype=torch.float64)).item()  # noqa: E731
    expected = torch.tensor(
        [
            [t(0), t(2), t(2), t(3), t(3.5), t(3.5)],
            [t(0), t(0), t(0), t(0), t(0.5), t(2.5)],
        ],
        dtype=torch.float64,
    )
    assert res.budgets == (0.0, 0.25, 0.3, 0.5, 0.75, 1.0)
    torch.testing.assert_close(res.values, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.mean(), expected.mean(0), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------
# bad input and registry
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(attributions=torch.zeros(2, 3, 5, 6)), "attributions"),
        (dict(attributions=torch.zeros(2, 2, 6, 6)), "attributions"),
        (dict(n_steps=0), "n_steps"),
        (dict(substrate="gauss"), "substrate"),
        (dict(feature_mask=torch.zeros(5, 5, dtype=torch.long)), "feature_mask"),
        (dict(inputs=torch.zeros(0, 3, 6, 6), attributions=torch.zeros(0, 3, 6, 6)), "inputs"),
        (dict(baselines=torch.zeros(4, 6)), "baselines"),
        (dict(perturbations_per_eval=0), "perturbations_per_eval"),
        (dict(target=[0, 1, 2]), "target"),
        (
            dict(substrate="blur", inputs=torch.zeros(2, 3, 4, 4), attributions=torch.zeros(2, 3, 4, 4)),
            "substrate",
        ),
    ],
)
@pytest.mark.parametrize("fn", [insertion, deletion, highest_confidence])
def test_bad_input_raises_before_model_call(fn, kwargs, name):
    model = Counting(small_net())
    args = dict(inputs=torch.rand(2, 3, 6, 6), attributions=torch.rand(2, 3, 6, 6), target=[0, 1])
    args.update(kwargs)
    if fn is deletion and kwargs.get("substrate") == "blur":
        # deletion under the RISE protocol uses the baselines: no blur, no error
        fn(model, args.pop("inputs"), args.pop("attributions"), args.pop("target"), **args)
        assert len(model.calls) > 0
        return
    with pytest.raises(ValueError, match=name) as err:
        fn(model, args.pop("inputs"), args.pop("attributions"), args.pop("target"), **args)
    assert len(model.calls) == 0
    if name == "substrate" and kwargs["substrate"] == "gauss":
        for preset in ("baseline", "blur", "rise", "mean"):
            assert preset in str(err.value)


def test_registry_directions():
    assert METRICS["insertion"].higher_is_better is True
    assert METRICS["deletion"].higher_is_better is False
    assert METRICS["highest_confidence"].higher_is_better is True
    assert METRICS["insertion"].fn is insertion and METRICS["deletion"].fn is deletion
    w = torch.ones(1, 1, 2, 2)
    res = perturbation_curves(LinearScore(w), torch.ones_like(w), w, "deletion", output="identity", n_steps=2)
    assert res.higher_is_better is False

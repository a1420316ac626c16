"""SubmodularAttribution on tiny models with known answers."""

import warnings

import pytest
import torch
from torch import nn

from captum_submodular import NonFiniteOutputError, ObjectiveWeights, SubmodularAttribution
from captum_submodular.objective import angular_distances, effectiveness, objective_values, target_scores
from captum_submodular.regions import grid_mask
from captum_submodular.search import SEARCHES
from conftest import CountingModel as Counting
from conftest import tiny_cnn


class RegionSum(nn.Module):
    """Scalar model: weighted sum of the input, weights constant per 2×2 tile of a 4×4 image."""

    def __init__(self, tile_weights):
        super().__init__()
        w = torch.as_tensor(tile_weights, dtype=torch.float32).reshape(2, 2)
        self.register_buffer("w", w.repeat_interleave(2, 0).repeat_interleave(2, 1)[None, None])

    def forward(self, x):
        return (x * self.w).sum(dim=(1, 2, 3))


MASK4 = grid_mask(4, 4, grid=2)  # 1×1×4×4, ids 0..3


# ----------------------------------------------------------------- closed-form results


def test_closed_form_curves_order_and_minimal_subset():
    model = RegionSum([3.0, 0.0, 1.0, 0.0])
    x = torch.ones(1, 1, 4, 4)
    sa = SubmodularAttribution(model, search="greedy", output_type="scalar")
    (res,) = sa.explain(x, feature_mask=MASK4)
    # Each tile has 4 pixels: region values 12, 0, 4, 0.
    assert res.order[:2].tolist() == [0, 2]
    assert res.insertion_curve.tolist() == [0.0, 12.0, 16.0, 16.0, 16.0]
    assert res.deletion_curve.tolist() == [16.0, 4.0, 0.0, 0.0, 0.0]
    assert res.minimal_subset.tolist() == [0, 2]
    # F = 20·p(S) + 5·(1 − p(V∖S)) (scalar models have no confidence term)
    expected_f = [20 * i + 5 * (1 - d) for i, d in zip(res.insertion_curve.tolist(), res.deletion_curve.tolist())]
    assert torch.allclose(res.objective_values, torch.tensor(expected_f, dtype=torch.float64))
    # Gain map: ½(Δins + Δdel) = 12 and 4 for the live tiles, exactly 0 for dummies.
    assert res.region_values.tolist() == [12.0, 0.0, 4.0, 0.0]
    a = sa.attribute(x, feature_mask=MASK4)
    assert a.shape == x.shape
    assert a[0, 0, 0, 0].item() == 12.0 and a[0, 0, 0, 3].item() == 0.0


def test_minimal_subset_threshold():
    model = RegionSum([3.0, 0.0, 1.0, 0.0])
    (res,) = SubmodularAttribution(model, search="greedy", output_type="scalar").explain(
        torch.ones(1, 1, 4, 4), feature_mask=MASK4, threshold=10.0
    )
    assert res.minimal_subset.tolist() == [0]
    assert res.threshold == 10.0


def test_rank_map():
    model = RegionSum([3.0, 0.0, 1.0, 2.0])
    sa = SubmodularAttribution(model, search="greedy", output_type="scalar", attribution_map="rank")
    (res,) = sa.explain(torch.ones(1, 1, 4, 4), feature_mask=MASK4)
    assert res.order.tolist() == [0, 3, 2, 1]
    assert res.region_values.tolist() == [4.0, 1.0, 2.0, 3.0]


def test_objective_terms_closed_form():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    p, conf = target_scores(logits, ((0,), (0,)), "logits")
    assert torch.allclose(p, torch.tensor([0.25, 1.0]))
    assert torch.allclose(conf, torch.tensor([0.0, 1.0]), atol=1e-6)
    probs = torch.tensor([[0.5, 0.5]])
    p, conf = target_scores(probs, ((1,),), "probabilities")
    assert p.item() == 0.5 and abs(conf.item()) < 1e-7
    # Three embeddings: e0 ⟂ e1, e2 = -e0 → distances 0.5, 1.0, 0.5.
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    d = angular_distances(e)
    assert torch.allclose(d, torch.tensor([[0, 0.5, 1], [0.5, 0, 0.5], [1, 0.5, 0]], dtype=torch.float64), atol=1e-7)
    z = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0]], dtype=torch.bool)
    # row 0: min distances 0.5, 0.5, 0.5 → 1.5; row 1: 1 + 1 → 2; single element → 0
    assert torch.allclose(effectiveness(z, d), torch.tensor([1.5, 2.0, 0.0], dtype=torch.float64))
    w = ObjectiveWeights(2.0, 3.0, 5.0, 7.0)
    f = objective_values(w, torch.tensor([0.5]), torch.tensor([0.25]), torch.tensor([0.1]), torch.tensor([2.0]))
    assert f.item() == pytest.approx(2 * 0.5 + 3 * 0.75 + 5 * 0.1 + 7 * 2.0)


# ----------------------------------------------------------------- evaluations


@pytest.mark.parametrize("search", ["greedy", "bidirectional"])
def test_reported_evaluations_equal_rows_the_model_saw(search):
    model = Counting(tiny_cnn())
    x = torch.randn(2, 3, 8, 8)
    results = SubmodularAttribution(model, search=search).explain(
        x, target=[1, 2], feature_mask=grid_mask(8, 8, grid=3), perturbations_per_eval=7
    )
    assert sum(r.n_evaluations for r in results) == model.rows
    assert max(model.calls) <= 7
    # Each query needs x[S] and x[V∖S]; distinct inputs are evaluated once.
    m = 9
    queries = m * (m + 1) // 2 if search == "greedy" else 8 + 9 + 7 + 6 + 5 + 4 + 3 + 2 + 8
    for r in results:
        assert r.n_evaluations <= 2 * queries + 2
        assert r.n_evaluations >= m + 1


# ----------------------------------------------------------------- disconnected grid


class DisconnectedGrid(nn.Module):
    """Head k sees only cell k of a 2×2 grid of an 8×8 image; independent sigmoid heads."""

    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.heads = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(64, 1)) for _ in range(4)]
        )

    def forward(self, x):
        cells = [x[:, :, :4, :4], x[:, :, :4, 4:], x[:, :, 4:, :4], x[:, :, 4:, 4:]]
        return torch.sigmoid(torch.cat([h(c) for h, c in zip(self.heads, cells)], dim=1))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", [0, 1, 2, 3])
@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_disconnected_grid_localisation(seed, target, search):
    model = DisconnectedGrid(seed).eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(seed + 10))
    sa = SubmodularAttribution(model, search=search, output_type="probabilities")
    a = sa.attribute(x, target=target, feature_mask=grid_mask(8, 8, grid=4), perturbations_per_eval=32)
    cell = torch.zeros(8, 8, dtype=torch.bool)
    r, c = divmod(target, 2)
    cell[4 * r : 4 * r + 4, 4 * c : 4 * c + 4] = True
    pos = a[0].sum(0).clamp_min(0)
    assert pos.sum() > 0
    assert (a[0][:, ~cell] == 0).all()  # localisation exactly 1.0: nothing outside the cell, of either sign


@pytest.mark.parametrize("search", sorted(SEARCHES))
def test_invisible_regions_get_exact_zeros_at_every_batch_size(search):
    # The other heads' cells cannot change the target's output: exact 0 whatever the batch.
    model = DisconnectedGrid(0).eval()
    x = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(10))
    mask = grid_mask(8, 8, grid=4)
    cell = [i for i in range(16) if (i // 4) // 2 * 2 + (i % 4) // 2 == 1]
    others = [i for i in range(16) if i not in cell]
    runs = [
        SubmodularAttribution(model, search=search, output_type="probabilities").explain(
            x, target=1, feature_mask=mask, perturbations_per_eval=ppe
        )[0]
        for ppe in (1, 7, 32)
    ]
    for r in runs:
        assert (r.region_values[others] == 0).all()
        assert (r.region_values[cell] != 0).all()
        assert r.order.tolist() == runs[0].order.tolist()


# ----------------------------------------------------------------- the gain map


def test_gain_map_is_the_gains_when_they_are_ordered():
    # Additive scalar model: region effects 12, 0, 4, −8 (4 pixels per tile).
    model = RegionSum([3.0, 0.0, 1.0, -2.0])
    x = torch.ones(1, 1, 4, 4)
    (r,) = SubmodularAttribution(model, search="greedy", output_type="scalar").explain(x, feature_mask=MASK4)
    assert r.order.tolist() == [0, 2, 1, 3]
    assert r.region_values.tolist() == [12.0, 0.0, 4.0, -8.0]


def test_gain_map_pools_gains_that_rise_along_the_order():
    from captum_submodular.maps import gain_map as _gain_map

    # Raw gains 1, 4, 1 along the order: the isotonic fit pools the first two to 2.5, then
    # spreads the pool strictly between 2.5 and half-way to the next value (1).
    ins = torch.tensor([0.0, 1.0, 5.0, 6.0], dtype=torch.float64)
    dele = torch.tensor([6.0, 5.0, 1.0, 0.0], dtype=torch.float64)
    assert _gain_map(ins, dele).tolist() == [2.5, 2.125, 1.0]
    # Regions without effect get exactly 0 wherever they sit in the order, and take no
    # part in the fit; differences below the resolution are no effect.  Raw gains
    # 2, (none), 1, (1e-9: none), −1.
    ins = torch.tensor([0.0, 2.0, 2.0, 3.0, 3.0, 1.0], dtype=torch.float64)
    dele = torch.tensor([3.0, 1.0, 1.0, 0.0, 1e-9, 0.0], dtype=torch.float64)
    assert _gain_map(ins, dele, resolution=1e-8).tolist() == [2.0, 0.0, 1.0, 0.0, -1.0]


def test_gain_map_ranks_pixels_exactly_like_the_rank_map():
    from captum_submodular import metrics as M

    model = tiny_cnn(3)
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(5))
    mask = grid_mask(12, 12, grid=4)
    gain = SubmodularAttribution(model, search="greedy")
    rank = SubmodularAttribution(model, search="greedy", attribution_map="rank")
    a_gain = gain.attribute(x, target=[1, 2], feature_mask=mask, perturbations_per_eval=8)
    a_rank = rank.attribute(x, target=[1, 2], feature_mask=mask, perturbations_per_eval=8)
    assert (a_gain != 0).all()
    for metric in (M.insertion, M.deletion):
        torch.testing.assert_close(
            metric(model, x, a_gain, [1, 2], n_steps=13, return_curves=True).scores,
            metric(model, x, a_rank, [1, 2], n_steps=13, return_curves=True).scores,
            rtol=0,
            atol=0,
        )


# ----------------------------------------------------------------- equivalences


@pytest.mark.parametrize("search", ["greedy", "bidirectional"])
def test_batch_equals_single_calls_and_batch_size_does_not_matter(search):
    model = tiny_cnn(1)
    x = torch.randn(3, 3, 9, 9, generator=torch.Generator().manual_seed(0))
    mask = grid_mask(9, 9, grid=3)
    sa = SubmodularAttribution(model, search=search)
    batched = sa.explain(x, target=[0, 3, 4], feature_mask=mask, perturbations_per_eval=16)
    for i, t in enumerate([0, 3, 4]):
        (single,) = sa.explain(x[i : i + 1], target=t, feature_mask=mask, perturbations_per_eval=1)
        assert single.order.tolist() == batched[i].order.tolist()
        torch.testing.assert_close(single.insertion_curve, batched[i].insertion_curve, rtol=0, atol=1e-6)
        torch.testing.assert_close(single.deletion_curve, batched[i].deletion_curve, rtol=0, atol=1e-6)
        torch.testing.assert_close(single.attributions, batched[i].attributions, rtol=0, atol=1e-6)
        assert single.n_evaluations == batched[i].n_evaluations
    a16 = sa.attribute(x, target=[0, 3, 4], feature_mask=mask, perturbations_per_eval=16)
    a1 = sa.attribute(x, target=[0, 3, 4], feature_mask=mask, perturbations_per_eval=1)
    torch.testing.assert_close(a1, a16, rtol=0, atol=1e-6)


def test_map_order_equals_returned_order():
    model = tiny_cnn(2)
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(2))
    mask = grid_mask(12, 12, grid=4)
    for r in SubmodularAttribution(model).explain(x, target=1, feature_mask=mask):
        vals = r.region_values[torch.searchsorted(r.region_ids, r.order)]
        nonzero = vals != 0
        # strictly decreasing among non-zero values
        nz = vals[nonzero]
        assert (nz[:-1] > nz[1:]).all()
        # the map broadcast over the image carries the same values
        a = r.attributions[0, 0]
        for rid, v in zip(r.region_ids.tolist(), r.region_values.tolist()):
            assert torch.allclose(a[mask[0, 0] == rid], torch.tensor(v, dtype=a.dtype))


def test_tuple_inputs_and_shared_region_ids():
    torch.manual_seed(0)
    lin_a, lin_b = nn.Linear(4, 3), nn.Linear(2, 3)

    def f(a, b):
        return lin_a(a) + lin_b(b)

    a = torch.randn(2, 4)
    b = torch.randn(2, 2)
    mask_a = torch.tensor([[0, 0, 1, 2]])
    mask_b = torch.tensor([[2, 3]])  # id 2 spans both tensors
    sa = SubmodularAttribution(f, search="greedy")
    out = sa.attribute((a, b), target=1, feature_mask=(mask_a, mask_b))
    assert isinstance(out, tuple) and out[0].shape == a.shape and out[1].shape == b.shape
    res = sa.explain((a, b), target=1, feature_mask=(mask_a, mask_b))
    assert res[0].region_ids.tolist() == [0, 1, 2, 3]
    assert torch.equal(out[0][:, 3], out[1][:, 0])  # region 2 carries one value in both tensors
    # the curves are those of keeping both parts of region 2 together
    r = res[0]
    keep = set(r.order[:1].tolist())
    ka = torch.tensor([[int(v) in keep for v in mask_a[0]]], dtype=a.dtype)
    kb = torch.tensor([[int(v) in keep for v in mask_b[0]]], dtype=b.dtype)
    p = torch.softmax(f(a[:1] * ka, b[:1] * kb), -1)[0, 1].item()
    assert r.insertion_curve[1].item() == pytest.approx(p, abs=1e-6)


def test_target_forms_agree():
    model = tiny_cnn(3)
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    mask = grid_mask(6, 6, grid=3)
    sa = SubmodularAttribution(model)
    ref = sa.attribute(x, target=2, feature_mask=mask)
    for t in (torch.tensor(2), [2, 2], torch.tensor([2, 2]), (2,)):
        torch.testing.assert_close(sa.attribute(x, target=t, feature_mask=mask), ref, rtol=0, atol=1e-6)
    mixed = sa.attribute(x, target=[2, 4], feature_mask=mask)
    single = sa.attribute(x[1:], target=4, feature_mask=mask)
    torch.testing.assert_close(mixed[1:], single, rtol=0, atol=1e-6)


def test_tuple_target_on_3d_output():
    model = tiny_cnn(4, classes=6)

    def f(x):
        return model(x).reshape(-1, 2, 3)

    x = torch.randn(1, 3, 6, 6)
    mask = grid_mask(6, 6, grid=2)
    (r,) = SubmodularAttribution(f).explain(x, target=(1, 2), feature_mask=mask)
    expected = torch.softmax(f(x)[0, 1], -1)[2].item()
    assert r.full_score == pytest.approx(expected, abs=1e-6)


def test_mask_broadcast_forms_and_noncontiguous_ids():
    model = tiny_cnn(5)
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(5))
    mask = grid_mask(6, 6, grid=3)
    sa = SubmodularAttribution(model)
    ref = sa.attribute(x, target=0, feature_mask=mask)
    for form in (mask[0, 0], mask.expand(2, 1, 6, 6), mask.expand(1, 3, 6, 6), mask * 10 + 7):
        torch.testing.assert_close(sa.attribute(x, target=0, feature_mask=form), ref, rtol=0, atol=1e-6)
    res = sa.explain(x, target=0, feature_mask=mask * 10 + 7)
    assert res[0].region_ids.tolist() == [7 + 10 * i for i in range(9)]


def test_per_example_masks():
    model = tiny_cnn(6)
    x = torch.randn(2, 3, 6, 6)
    masks = torch.cat([grid_mask(6, 6, grid=2), grid_mask(6, 6, grid=3)])
    res = SubmodularAttribution(model).explain(x, target=0, feature_mask=masks)
    assert len(res[0].order) == 4 and len(res[1].order) == 9


def test_default_partition_is_a_7x7_grid():
    model = tiny_cnn(7)
    x = torch.randn(1, 3, 14, 14)
    (r,) = SubmodularAttribution(model).explain(x, target=0, perturbations_per_eval=128)
    assert r.region_ids.numel() == 49
    a = r.attributions[0]
    assert torch.equal(a[:, :2, :2], a[0, 0, 0].expand(3, 2, 2))


def test_occlusion_style_call():
    model = tiny_cnn(8)
    x = torch.randn(1, 3, 10, 10)
    sa = SubmodularAttribution(model)
    with pytest.warns(UserWarning, match="overlapping"):
        a = sa.attribute(x, target=1, sliding_window_shapes=(3, 5, 5), strides=(3, 2, 2), baselines=0)
    assert a.shape == x.shape
    (r,) = sa.explain(x, target=1, sliding_window_shapes=(3, 5, 5))
    assert r.region_ids.numel() == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sa.attribute(x, target=1, sliding_window_shapes=(3, 5, 5), strides=(3, 5, 5))
    # Occlusion's positional window lands in `baselines` here: a clear error, no model call.
    counting = Counting(model)
    with pytest.raises(ValueError, match="looks like Occlusion's positional `sliding_window_shapes`"):
        SubmodularAttribution(counting).attribute(x, (3, 5, 5), target=1)
    assert counting.rows == 0


def test_baselines_forms():
    model = tiny_cnn(9)
    x = torch.randn(2, 3, 6, 6)
    mask = grid_mask(6, 6, grid=2)
    sa = SubmodularAttribution(model)
    ref = sa.attribute(x, target=0, feature_mask=mask, baselines=0.5)
    for b in (
        torch.full((3, 6, 6), 0.5),
        torch.full((1, 3, 6, 6), 0.5),
        torch.full((2, 3, 6, 6), 0.5),
        torch.full((1, 3, 1, 1), 0.5),
    ):
        torch.testing.assert_close(sa.attribute(x, target=0, feature_mask=mask, baselines=b), ref)
    (r,) = sa.explain(x[:1], target=0, feature_mask=mask, baselines=0.5)
    p = torch.softmax(model(torch.full((1, 3, 6, 6), 0.5)), -1)[0, 0].item()
    assert r.baseline_score == pytest.approx(p, abs=1e-6)


def test_additional_forward_args_are_indexed_per_example():
    torch.manual_seed(0)
    net = tiny_cnn(10)

    def f(x, shift):
        return net(x) + shift

    x = torch.randn(2, 3, 6, 6)
    shift = torch.randn(2, 5) * 3
    mask = grid_mask(6, 6, grid=2)
    sa = SubmodularAttribution(f)
    both = sa.explain(x, target=0, additional_forward_args=(shift,), feature_mask=mask)
    one = sa.explain(x[1:], target=0, additional_forward_args=(shift[1:],), feature_mask=mask)
    torch.testing.assert_close(both[1].insertion_curve, one[0].insertion_curve, rtol=0, atol=1e-6)


# ----------------------------------------------------------------- diversity term


def test_embedding_module_hook_is_removed_and_term_used():
    model = tiny_cnn(11)
    layer = model[3]  # Flatten: 16-d embedding
    x = torch.randn(1, 3, 6, 6)
    mask = grid_mask(6, 6, grid=2)
    w = ObjectiveWeights(effectiveness=0.05)
    sa = SubmodularAttribution(model, search="greedy", weights=w, embedding=layer)
    (r,) = sa.explain(x, target=0, feature_mask=mask)
    assert len(layer._forward_hooks) == 0
    # objective values include the diversity term computed from the singleton embeddings
    singles = torch.stack([x[0] * (mask[0] == i) for i in range(4)])
    emb = model[:4](singles)
    d = angular_distances(emb)
    prefixes = torch.zeros(5, 4, dtype=torch.bool)
    for k in range(1, 5):
        prefixes[k, r.order[:k]] = True
    div = effectiveness(prefixes, d)
    base = SubmodularAttribution(model, search="greedy").explain(x, target=0, feature_mask=mask)[0]
    # same curves (same order or not, F differs exactly by 0.05·div along the prefixes of r.order)
    (plain,) = SubmodularAttribution(
        model, search="greedy", weights=ObjectiveWeights(), attribution_map="gain"
    ).explain(x, target=0, feature_mask=mask)
    del base, plain
    f_no_div = objective_values(
        ObjectiveWeights(),
        r.insertion_curve,
        r.deletion_curve,
        target_scores(model(torch.stack([x[0] * prefixes[k][mask[0, 0]] for k in range(5)])), ((0,),) * 5, "logits")[1],
    )
    torch.testing.assert_close(r.objective_values, f_no_div + 0.05 * div, rtol=0, atol=1e-5)
    # m singleton inputs for the embedding are counted
    assert r.n_evaluations >= 4


def test_embedding_callable_and_missing_embedding():
    model = tiny_cnn(12)
    calls = []

    def embed(x):
        calls.append(x.shape[0])
        return x.flatten(1)

    sa = SubmodularAttribution(model, weights=ObjectiveWeights(effectiveness=1.0), embedding=embed)
    sa.attribute(torch.randn(1, 3, 6, 6), target=0, feature_mask=grid_mask(6, 6, grid=2))
    assert sum(calls) == 4
    with pytest.raises(ValueError, match="embedding"):
        SubmodularAttribution(model, weights=ObjectiveWeights(effectiveness=0.05))


# ----------------------------------------------------------------- captum interop


def test_captum_interop():
    from captum.attr import NoiseTunnel
    from captum.attr import visualization as viz
    from captum.metrics import infidelity, sensitivity_max

    model = tiny_cnn(13)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(13))
    mask = grid_mask(8, 8, grid=2)
    sa = SubmodularAttribution(model, search="greedy")
    a = sa.attribute(x, target=1, feature_mask=mask)
    fig, _ = viz.visualize_image_attr(
        a[0].permute(1, 2, 0).numpy(),
        x[0].permute(1, 2, 0).numpy(),
        method="blended_heat_map",
        sign="all",
        use_pyplot=False,
    )
    assert fig is not None

    def perturb(inputs):
        noise = torch.randn_like(inputs) * 0.01
        return noise, inputs - noise

    inf = infidelity(model, perturb, x, a, target=1, n_perturb_samples=2)
    assert inf.shape == (2,) and torch.isfinite(inf).all()
    sens = sensitivity_max(sa.attribute, x, target=1, feature_mask=mask, n_perturb_samples=2)
    assert sens.shape == (2,) and torch.isfinite(sens).all()
    nt = NoiseTunnel(sa).attribute(x, nt_type="smoothgrad", nt_samples=2, stdevs=0.01, target=1, feature_mask=mask)
    assert nt.shape == x.shape
    assert hasattr(SubmodularAttribution.attribute, "__wrapped__")


def test_attribute_runs_without_grad():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = tiny_cnn(14)

        def forward(self, x):
            seen.append(torch.is_grad_enabled())
            return self.net(x)

    SubmodularAttribution(Probe()).attribute(torch.randn(1, 3, 6, 6), target=0, feature_mask=grid_mask(6, 6, grid=2))
    assert seen and not any(seen)


# ----------------------------------------------------------------- bad input


def test_bad_inputs_raise_before_any_model_call():
    model = Counting(tiny_cnn(15))
    sa = SubmodularAttribution(model)
    x = torch.randn(2, 3, 6, 6)
    cases = [
        (dict(feature_mask=torch.zeros(5, 5, dtype=torch.long)), "feature_mask"),
        (dict(feature_mask=torch.zeros(1, 1, 6, 6, dtype=torch.long)), "at least 2"),
        (dict(baselines=torch.zeros(3, 5, 5)), "baselines"),
        (dict(feature_mask=grid_mask(6, 6, grid=2).float()), "integer"),
        (dict(perturbations_per_eval=0), "perturbations_per_eval"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(ValueError, match=msg):
            sa.attribute(x, target=0, **kwargs)
    with pytest.raises(ValueError, match="empty batch"):
        sa.attribute(torch.randn(0, 3, 6, 6), target=0)
    with pytest.raises(ValueError, match=r"Coarsen the mask \(fewer regions\) or pick another search"):
        SubmodularAttribution(model, search="greedy").attribute(
            torch.randn(1, 3, 20, 20), target=0, feature_mask=torch.arange(400).reshape(20, 20)
        )
    assert model.rows == 0


def test_target_out_of_range_is_caught_at_the_first_forward():
    model = Counting(tiny_cnn(16))
    with pytest.raises(ValueError, match="`target`.*out of range"):
        SubmodularAttribution(model).attribute(
            torch.randn(2, 3, 6, 6), target=7, feature_mask=grid_mask(6, 6, grid=2), perturbations_per_eval=1
        )
    assert model.calls == [1]  # only the first unperturbed example went through (ppe=1)


def test_nan_output_says_where():
    class NaNAfterFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.n = 0

        def forward(self, x):
            self.n += 1
            out = torch.zeros(x.shape[0], 3)
            return out if self.n == 1 else out + float("nan")

    with pytest.raises(NonFiniteOutputError, match="NaN on a perturbed input"):
        SubmodularAttribution(NaNAfterFirst()).attribute(
            torch.randn(1, 3, 6, 6), target=0, feature_mask=grid_mask(6, 6, grid=2)
        )

    def inf_model(x):
        return torch.full((x.shape[0], 3), float("inf"))

    with pytest.raises(NonFiniteOutputError, match="inf on the unperturbed input"):
        SubmodularAttribution(inf_model).attribute(
            torch.randn(1, 3, 6, 6), target=0, feature_mask=grid_mask(6, 6, grid=2)
        )


def test_nothing_is_changed_behind_the_users_back():
    model = tiny_cnn(17).train()
    x = torch.randn(2, 3, 6, 6)
    b = torch.rand(1, 3, 6, 6)
    mask = grid_mask(6, 6, grid=2)
    copies = (x.clone(), b.clone(), mask.clone())
    SubmodularAttribution(model).attribute(x, baselines=b, target=0, feature_mask=mask)
    assert model.training
    assert torch.equal(x, copies[0]) and torch.equal(b, copies[1]) and torch.equal(mask, copies[2])


def test_scalar_output_rejects_a_target():
    with pytest.raises(ValueError, match="target"):
        SubmodularAttribution(RegionSum([1, 1, 1, 1]), output_type="scalar").attribute(
            torch.ones(1, 1, 4, 4), target=0, feature_mask=MASK4
        )


def test_constructor_validation():
    with pytest.raises(ValueError, match="output_type"):
        SubmodularAttribution(tiny_cnn(), output_type="softmax")
    with pytest.raises(ValueError, match="attribution_map"):
        SubmodularAttribution(tiny_cnn(), attribution_map="heat")
    with pytest.raises(ValueError, match="search"):
        SubmodularAttribution(tiny_cnn(), search="fast")


def test_progress_bar(capsys):
    model = Counting(tiny_cnn(18))
    SubmodularAttribution(model, search="greedy").attribute(
        torch.randn(1, 3, 6, 6), target=0, feature_mask=grid_mask(6, 6, grid=2), show_progress=True
    )
    err = capsys.readouterr().err
    assert "SubmodularAttribution attribution" in err
    # greedy at m=4: the total is the exact count from the first frame (issue 16), not an estimate
    assert f"0/{model.rows} " in err and f"{model.rows}/{model.rows} " in err


def test_within_region_gradient_order_keeps_region_order_and_zeros():
    model = RegionSum([3.0, 0.0, 1.0, 2.0])
    # x varies inside the tiles so the gradient×input saliency orders the pixels
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4) + 1.0
    plain = SubmodularAttribution(model, search="greedy", output_type="scalar")
    refined = SubmodularAttribution(model, search="greedy", output_type="scalar", within_region="gradient")
    (r0,) = plain.explain(x, feature_mask=MASK4)
    (r1,) = refined.explain(x, feature_mask=MASK4)
    assert r1.order.tolist() == r0.order.tolist()
    a = r1.attributions[0, 0]
    tiles = MASK4[0, 0]
    # the dummy tile stays exactly 0
    assert (a[tiles == 1] == 0).all()
    # every pixel of a region ranks above every pixel of the next region
    for hi, lo in zip(r1.order[:-2].tolist(), r1.order[1:-1].tolist()):
        assert a[tiles == hi].min() > a[tiles == lo].max()
    # inside a region, pixels follow w·x (larger x → larger saliency)
    top = r1.order[0].item()
    vals = a[tiles == top]
    xs = x[0, 0][tiles == top]
    assert torch.equal(torch.argsort(vals), torch.argsort(xs))
    assert a[tiles == top].max().item() == r0.region_values[top].item()
    assert r1.n_evaluations == r0.n_evaluations + 1
    with pytest.raises(ValueError, match="within_region"):
        SubmodularAttribution(model, within_region="noise")

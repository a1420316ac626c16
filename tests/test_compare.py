"""Tests for captum_submodular.compare (the side-by-side harness) and plotting."""

import csv
import json

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel
from torch import nn

from captum_submodular import SubmodularAttribution
from captum_submodular import metrics as M
from captum_submodular.compare import (
    COMPARE_METRICS,
    Comparison,
    Method,
    compare,
    count_evaluations,
    to_input_shape,
)
from captum_submodular.regions import grid_mask
from conftest import CountingModel as Counting
from conftest import tiny_net

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread (conftest)


H = W = 12
MASK = grid_mask(H, W, grid=3)  # 1×1×12×12, 9 regions
N_STEPS = 8


def images(n=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return 2.0 * torch.randn(n, 3, H, W, generator=g)


def methods_for(net):
    mask_fn = lambda i, x: {"feature_mask": MASK}  # noqa: E731
    return [
        Method("ours", SubmodularAttribution(net, search="greedy"), {"perturbations_per_eval": 16}, kwargs_fn=mask_fn),
        Method("FA", FeatureAblation(net), {"feature_mask": MASK}),
        Method("IG", IntegratedGradients(net), {"n_steps": 4}),
        Method("GradCAM", LayerGradCam(net, net[2])),
    ]


@pytest.fixture(scope="module")
def setup():
    net = tiny_net()
    x = images()
    methods = methods_for(net)
    res = compare(
        net, x, None, methods, metrics=("insertion", "deletion", "insertion_blur"), n_steps=N_STEPS, show_progress=False
    )
    return net, x, methods, res


# ----------------------------------------------------------------- numbers


def test_areas_equal_direct_metric_calls(setup):
    net, x, methods, res = setup
    with torch.no_grad():
        clean = net(x)
    targets = clean.argmax(1).tolist()
    assert res.targets == targets == res.predictions
    for m in methods:
        a = res.maps[m.name]
        assert a.shape[0] == 3 and a.shape[2:] == x.shape[2:]
        ins = M.insertion(net, x, a, targets, n_steps=N_STEPS, clean_output=clean)
        dele = M.deletion(net, x, a, targets, n_steps=N_STEPS, clean_output=clean)
        blur = M.insertion(net, x, a, targets, n_steps=N_STEPS, substrate="blur", clean_output=clean)
        assert np.array_equal(res.values[m.name]["insertion"], ins.numpy())
        assert np.array_equal(res.values[m.name]["deletion"], dele.numpy())
        assert np.array_equal(res.values[m.name]["insertion_blur"], blur.numpy())
        # Without reusing the clean output: the same up to float noise.
        assert torch.allclose(M.insertion(net, x, a, targets, n_steps=N_STEPS), ins, atol=1e-6)
        assert torch.equal(res.curves[m.name]["deletion"].area, dele)


def test_maps_are_the_methods_outputs(setup):
    net, x, methods, res = setup
    t = res.targets
    fa = FeatureAblation(net).attribute(x[1:2], target=t[1], feature_mask=MASK)
    assert torch.equal(res.maps["FA"][1:2], fa)
    (r,) = SubmodularAttribution(net, search="greedy").explain(
        x[0:1], target=t[0], feature_mask=MASK, perturbations_per_eval=16
    )  # as in methods_for
    assert torch.equal(res.maps["ours"][0:1], r.attributions)
    cam = LayerGradCam(net, net[2]).attribute(x[2:3], target=t[2])
    assert cam.shape == (1, 1, H, W)  # the layer keeps the spatial size: no upsampling here
    assert torch.allclose(res.maps["GradCAM"][2:3], cam)


def test_layer_maps_are_upsampled_bilinearly():
    x = torch.zeros(1, 3, H, W)
    small = torch.arange(9.0).reshape(1, 1, 3, 3)
    up = to_input_shape(small, x)
    assert up.shape == (1, 1, H, W)
    assert torch.equal(up, LayerAttribution.interpolate(small, (H, W), interpolate_mode="bilinear"))
    many = torch.rand(1, 7, 3, 3)
    summed = to_input_shape(many, x)
    assert summed.shape == (1, 1, H, W)
    assert torch.allclose(summed, LayerAttribution.interpolate(many, (H, W), "bilinear").sum(1, keepdim=True))
    assert to_input_shape((torch.ones(1, 3, H, W),), x).shape == (1, 3, H, W)
    assert to_input_shape(torch.ones(H, W), x).shape == (1, 1, H, W)
    with pytest.raises(ValueError, match="returned 2 tensors"):
        to_input_shape((small, small), x)


# ----------------------------------------------------------------- evaluation counts


def test_evaluation_counts_and_forward_restored(setup):
    net, x, methods, res = setup
    k = int(MASK.unique().numel())
    # Captum FeatureAblation: one forward on the input, then one row per feature.
    assert res.values["FA"]["evaluations"].tolist() == [k + 1] * 3
    for i in range(3):
        (r,) = SubmodularAttribution(net, search="greedy").explain(
            x[i : i + 1], target=res.targets[i], feature_mask=MASK, perturbations_per_eval=16
        )
        assert res.values["ours"]["evaluations"][i] == r.n_evaluations
    assert res.values["IG"]["evaluations"].tolist() == [4] * 3  # n_steps rows (forward rows only)
    assert res.values["GradCAM"]["evaluations"].tolist() == [1] * 3
    assert (res.values["ours"]["seconds"] > 0).all()
    for m in methods:
        assert m.attribution.forward_func is net  # identity restored
        assert "forward_func" in vars(m.attribution)


def test_counting_nested_attributions_and_restore_on_error():
    net = tiny_net()
    ig = IntegratedGradients(net)
    nt = NoiseTunnel(ig)
    with count_evaluations(nt) as counter:
        nt.attribute(images(1), nt_type="smoothgrad", nt_samples=3, n_steps=4, target=0)
    assert counter.rows == 12  # nt_samples × n_steps rows through the inner method
    assert nt.forward_func is net and ig.forward_func is net

    class Boom(FeatureAblation):
        def attribute(self, *a, **kw):
            self.forward_func(images(2))
            raise RuntimeError("boom")

    boom = Boom(net)
    with pytest.raises(RuntimeError, match="boom"):
        compare(net, images(2), None, [Method("boom", boom)], show_progress=False)
    assert boom.forward_func is net


def test_clean_predictions_computed_once():
    net = tiny_net()
    counting = Counting(net)
    x = images(3)
    methods = methods_for(net)[1:3]  # the methods hold the plain net: their calls are not counted here
    res = compare(
        counting,
        x,
        None,
        methods,
        metrics=("insertion", "deletion"),
        n_steps=N_STEPS,
        perturbations_per_eval=64,
        show_progress=False,
    )
    # One clean pass of N rows, then each curve needs N·K rows (the clean point is reused).
    assert counting.calls == [3] + [3 * N_STEPS] * (len(methods) * 2)
    assert res.values["FA"]["evaluations"].tolist() == [10, 10, 10]


def test_baselines_passed_to_methods_and_metrics():
    net = tiny_net()
    x = images(2)
    base = 0.5
    res = compare(
        net,
        x,
        [1, 2],
        [Method("FA", FeatureAblation(net), {"feature_mask": MASK})],
        baselines=base,
        n_steps=N_STEPS,
        show_progress=False,
    )
    fa = FeatureAblation(net).attribute(x[:1], baselines=base, target=1, feature_mask=MASK)
    assert torch.equal(res.maps["FA"][:1], fa)
    with torch.no_grad():
        clean = net(x)
    ins = M.insertion(net, x, res.maps["FA"], [1, 2], base, n_steps=N_STEPS, clean_output=clean)
    assert np.array_equal(res.values["FA"]["insertion"], ins.numpy())
    assert res.targets == [1, 2]


def test_highest_confidence_on_misclassified_examples():
    net = tiny_net()
    x = images(3)
    with torch.no_grad():
        clean = net(x)
    pred = clean.argmax(1).tolist()
    labels = [pred[0], (pred[1] + 1) % 5, pred[2]]  # example 1 is misclassified
    fa = Method("FA", FeatureAblation(net), {"feature_mask": MASK})
    res = compare(net, x, None, [fa], labels=labels, n_steps=N_STEPS, show_progress=False)
    assert res.hc_examples == [1]
    # The map for HC explains the TRUE class.
    a = FeatureAblation(net).attribute(x[1:2], target=labels[1], feature_mask=MASK)
    hc = M.highest_confidence(net, x[1:2], a, [labels[1]], n_steps=N_STEPS, clean_output=clean[1:2])
    assert np.array_equal(res.highest_confidence["FA"], hc.values.numpy())
    assert res.values["FA"]["evaluations"].tolist() == [10, 10, 10]  # extra HC call not counted
    assert "HC@25% ↑ (n=1)" in res.table().splitlines()[0]


# ----------------------------------------------------------------- outputs


def test_table_json_csv_figure(setup, tmp_path):
    net, x, methods, res = setup
    lines = res.table().splitlines()
    assert lines[0] == (
        "| method | insertion ↑ | deletion ↓ | blur insertion ↑ | evaluations/example | seconds/example |"
    )
    assert lines[1] == "|---|---:|---:|---:|---:|---:|"
    assert len(lines) == 2 + len(methods)
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == [m.name for m in methods]
    mean, std = res.summary()["FA"]["insertion"]
    assert f"{mean:.3f} ± {std:.3f}" in lines[3]
    # One example: the value alone, no "± 0.000" spread.
    single = compare(net, x[:1], None, methods[:1], n_steps=N_STEPS, show_progress=False)
    row = single.table().splitlines()[2]
    assert "±" not in row
    assert f"{single.summary()[methods[0].name]['insertion'][0]:.3f}" in row

    js = res.to_json(tmp_path / "r.json")
    data = json.load(open(js, encoding="utf-8"))
    for m in methods:
        for key in ("insertion", "deletion", "insertion_blur", "evaluations", "seconds"):
            assert data["methods"][m.name][key] == res.values[m.name][key].tolist()
    back = Comparison.from_json(js)
    assert back.table() == res.table()
    assert torch.equal(back.curves["IG"]["insertion"].scores, res.curves["IG"]["insertion"].scores)

    path = res.to_csv(tmp_path / "r.csv")
    rows = list(csv.DictReader(open(path, newline="", encoding="utf-8")))
    assert len(rows) == len(methods) * 3
    for row in rows:
        for key in ("insertion", "deletion", "insertion_blur", "evaluations", "seconds"):
            assert float(row[key]) == res.values[row["method"]][key][int(row["example"])]

    png = tmp_path / "fig.png"
    fig = res.figure(png, examples=[0, 2])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(fig.axes) == 2 * (1 + len(methods)) + 3 + 1  # maps + one curve panel per metric + the colour key


# ----------------------------------------------------------------- region mode vs. the search


def _region_ranking(values: torch.Tensor, ids: torch.Tensor) -> list:
    """Metrics' region ranking: decreasing value, ties by lower id."""
    return [int(ids[j]) for j in sorted(range(len(ids)), key=lambda j: (-float(values[j]), int(ids[j])))]


class Blind(nn.Module):
    """``net`` on an input whose top-left 4×4 tile (region 0 of MASK) is zeroed: that region is invisible."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        blind = torch.ones(1, 1, H, W)
        blind[..., :4, :4] = 0.0
        self.register_buffer("blind", blind)

    def forward(self, x):
        return self.net(x * self.blind)


@pytest.mark.parametrize("search", ["greedy", "bidirectional"])
@pytest.mark.parametrize("attribution_map", ["gain", "rank"])
@pytest.mark.parametrize("seeds", [(3, 4), (0, 0)])
@pytest.mark.parametrize("blind", [False, True])  # True: region 0 cannot change the output
def test_region_mode_reproduces_search_curves(search, attribution_map, seeds, blind):
    net = tiny_net(seed=seeds[0])
    if blind:
        net = Blind(net).eval()
    x = images(2, seed=seeds[1])
    with torch.no_grad():
        targets = net(x).argmax(1).tolist()
    sa = SubmodularAttribution(net, search=search, attribution_map=attribution_map)
    results = sa.explain(x, target=targets, feature_mask=MASK, perturbations_per_eval=32)
    attr = torch.cat([r.attributions for r in results])
    ins = M.insertion(net, x, attr, targets, feature_mask=MASK, return_curves=True)
    dele = M.deletion(net, x, attr, targets, feature_mask=MASK, return_curves=True)
    for n, r in enumerate(results):
        m = int(r.region_ids.numel())
        assert int(ins.lengths[n]) == m + 1
        ranking = _region_ranking(r.region_values, r.region_ids)
        order = r.order.tolist()
        zero = (r.region_values == 0).nonzero().flatten().tolist()
        if attribution_map == "gain":
            # Exact zeros only for the region the model cannot see; every other region gets
            # a non-zero value, and the non-zero values sort into the searched order.
            assert set(zero) == ({0} if blind else set())
            assert [i for i in ranking if i not in zero] == [i for i in order if i not in zero]
        else:
            assert ranking == order

        # The region-mode metric replays the search's own curves along the map's ranking:
        # where the gain map moved the blind region to the zeros, the curve at each step is
        # the search's curve at the same number of visible regions (the blind one changes
        # nothing).
        def visible_count(seq: list, k: int) -> int:
            return sum(1 for i in seq[:k] if i not in zero)

        first_at = {}
        for k in range(m + 1):
            first_at.setdefault(visible_count(order, k), k)
        steps = [first_at[visible_count(ranking, k)] for k in range(m + 1)]
        torch.testing.assert_close(ins.scores[n, : m + 1], r.insertion_curve[steps], rtol=0, atol=1e-6)
        torch.testing.assert_close(dele.scores[n, : m + 1], r.deletion_curve[steps], rtol=0, atol=1e-6)


# ----------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    net = tiny_net()
    x = images(2)
    fa = Method("FA", FeatureAblation(net), {"feature_mask": MASK})
    with pytest.raises(ValueError, match="metrics.*unknown.*'aopc'"):
        compare(net, x, None, [fa], metrics=("insertion", "aopc"), show_progress=False)
    with pytest.raises(ValueError, match="methods"):
        compare(net, x, None, [], show_progress=False)
    with pytest.raises(ValueError, match="methods: duplicate method name 'FA'"):
        compare(net, x, None, [fa, Method("FA", IntegratedGradients(net))], show_progress=False)
    with pytest.raises(ValueError, match="labels"):
        compare(net, x, None, [fa], metrics=("highest_confidence",), show_progress=False)
    with pytest.raises(ValueError, match="targets"):
        compare(net, x, [1, 2, 3], [fa], show_progress=False)
    with pytest.raises(ValueError, match="methods"):
        compare(net, x, None, [Method("x", object())], show_progress=False)
    assert set(COMPARE_METRICS) >= {"insertion", "deletion", "insertion_blur", "highest_confidence"}


# ----------------------------------------------------------------- shards and the line-up


def test_concat_of_shards_equals_one_run(setup):
    net, x, methods, res = setup
    parts = [
        compare(
            net,
            x[:1],
            None,
            methods,
            metrics=("insertion", "deletion", "insertion_blur"),
            n_steps=N_STEPS,
            show_progress=False,
        ),
        compare(
            net,
            x[1:],
            None,
            methods,
            metrics=("insertion", "deletion", "insertion_blur"),
            n_steps=N_STEPS,
            show_progress=False,
        ),
    ]
    joined = Comparison.concat(parts)
    assert joined.targets == res.targets and joined.predictions == res.predictions
    assert joined.target_probabilities == pytest.approx(res.target_probabilities, abs=1e-6)
    for m in methods:
        for key in ("insertion", "deletion", "insertion_blur", "evaluations"):
            assert np.allclose(joined.values[m.name][key], res.values[m.name][key], atol=1e-6), (m.name, key)
        assert torch.allclose(joined.maps[m.name], res.maps[m.name], atol=1e-6)
        assert torch.allclose(
            joined.curves[m.name]["deletion"].scores, res.curves[m.name]["deletion"].scores, atol=1e-6
        )
    assert torch.equal(joined.inputs, res.inputs)
    with pytest.raises(ValueError, match="parts\\[1\\]: methods"):
        Comparison.concat(
            [
                parts[0],
                compare(net, x[1:], None, methods[:1], metrics=("insertion",), n_steps=N_STEPS, show_progress=False),
            ]
        )
    with pytest.raises(ValueError, match="parts: expected"):
        Comparison.concat([])


def test_concat_pads_region_curves_with_their_last_point():
    from captum_submodular.compare.result import _concat_curves
    from captum_submodular.metrics import CurveResult

    a = CurveResult(
        area=torch.tensor([0.5]),
        fractions=torch.tensor([[0.0, 0.5, 1.0]]),
        scores=torch.tensor([[0.2, 0.6, 0.9]]),
        lengths=torch.tensor([3]),
        kind="insertion",
    )
    b = CurveResult(
        area=torch.tensor([0.4]),
        fractions=torch.tensor([[0.0, 1.0]]),
        scores=torch.tensor([[0.1, 0.7]]),
        lengths=torch.tensor([2]),
        kind="insertion",
    )
    c = _concat_curves([a, b])
    assert torch.equal(c.scores, torch.tensor([[0.2, 0.6, 0.9], [0.1, 0.7, 0.7]]))
    assert torch.equal(c.fractions, torch.tensor([[0.0, 0.5, 1.0], [0.0, 1.0, 1.0]]))
    assert c.lengths.tolist() == [3, 2] and c.area.tolist() == pytest.approx([0.5, 0.4])


def test_standard_methods_lineup_and_published_stand_in():
    from captum.attr import Lime

    from captum_submodular.compare import DEFAULT_LINEUP, STANDARD_METHODS, standard_methods
    from captum_submodular.objective import ObjectiveWeights

    net = tiny_net()
    assert [m.name for m in standard_methods(net)] == list(DEFAULT_LINEUP)
    built = {
        m.name: m
        for m in standard_methods(net, include=STANDARD_METHODS, n_segments=4, published_segments=6, lime_samples=7)
    }
    assert list(built) == list(STANDARD_METHODS)
    assert isinstance(built["Lime"].attribution, Lime) and built["Lime"].kwargs["n_samples"] == 7
    pub = built["published"].attribution
    assert isinstance(pub, SubmodularAttribution) and type(pub.search).__name__ == "BidirectionalSearch"
    assert pub.weights == ObjectiveWeights(20.0, 5.0, 0.01, 0.0)
    x = torch.rand(1, 3, 32, 32)
    ours_mask = built["ours"].call_kwargs(0, x)["feature_mask"]
    assert torch.equal(built["Lime"].call_kwargs(0, x)["feature_mask"], ours_mask)
    pub_mask = built["published"].call_kwargs(0, x)["feature_mask"]
    assert len(torch.unique(pub_mask)) > len(torch.unique(ours_mask))
    with pytest.raises(ValueError, match="include: unknown"):
        standard_methods(net, include=["nope"])


def test_compare_leaves_a_training_mode_model_unchanged():
    from captum.attr import Occlusion

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 5),
    ).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    methods = [
        Method("Occlusion", Occlusion(net), {"sliding_window_shapes": (3, 4, 4), "strides": (3, 4, 4)}),
        Method("ours", SubmodularAttribution(net), kwargs_fn=lambda i, x: {"feature_mask": MASK}),
    ]
    with pytest.warns(UserWarning, match="training mode"):
        compare(net, images(2), None, methods, n_steps=N_STEPS, show_progress=False)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training and all(m.training for m in net.modules())

"""DiFull, GridPG and AggAtt (captum_submodular.grids, compare_grids, the CLI's grid settings)."""

from __future__ import annotations

import json
import math
import os
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from captum.attr import FeatureAblation, IntegratedGradients, LayerGradCam  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from captum_submodular import SubmodularAttribution  # noqa: E402
from captum_submodular.cli import main  # noqa: E402
from captum_submodular.compare import GridComparison, compare_grids, grid_lineup  # noqa: E402
from captum_submodular.grids import (  # noqa: E402
    AGGATT_BINS,
    DisconnectedModel,
    aggatt,
    aggatt_bins,
    align_to_cell,
    cell_box,
    cell_tiles_mask,
    difull_target,
    localisation,
    make_grids,
    plot_aggatt,
    select_grid_images,
    split_cells,
)
from captum_submodular.search import SEARCHES  # noqa: E402
from conftest import CountingModel, tiny_net  # noqa: E402

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny models: one thread (conftest)

CLASSES = 5
S = 8  # cell side of the tiny tests: mosaics are 16×16


def cells(count: int = 8, seed: int = 0, side: int = S) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(count, 3, side, side, generator=g)


# ----------------------------------------------------------------- mosaics


def test_make_grids_places_cell_k_at_row_k_div_n_col_k_mod_n_and_split_inverts_it():
    x = cells(18, side=4)  # two 3×3 mosaics
    g = make_grids(x, 3)
    assert g.shape == (2, 3, 12, 12)
    for m in range(2):
        for k in range(9):
            top, bottom, left, right = cell_box(k, 3, 12, 12)
            assert (top, left) == ((k // 3) * 4, (k % 3) * 4) and (bottom - top, right - left) == (4, 4)
            assert torch.equal(g[m, :, top:bottom, left:right], x[m * 9 + k])
    assert torch.equal(split_cells(g, 3), x)


def test_cell_tiles_never_cross_a_cell_border():
    mask = cell_tiles_mask(2, 16, 16, tiles_per_cell=3)[0, 0]
    assert mask.shape == (16, 16) and int(mask.max()) + 1 == 36 and len(mask.unique()) == 36
    for k in range(4):
        top, bottom, left, right = cell_box(k, 2, 16, 16)
        inside = mask[top:bottom, left:right]
        assert set(inside.unique().tolist()) == set(range(9 * k, 9 * (k + 1)))


# ----------------------------------------------------------------- DiFull's model


def test_disconnected_model_is_the_per_cell_log_softmax():
    net = tiny_net(seed=1, classes=CLASSES)
    x = cells(8)
    dm = DisconnectedModel(net, 2)
    grids = make_grids(x, 2)
    with torch.no_grad():
        out = dm(grids)
        per_cell = torch.log_softmax(net(x), dim=1)
    assert out.shape == (2, 4 * CLASSES)
    torch.testing.assert_close(out, per_cell.reshape(2, -1), rtol=0, atol=1e-6)
    # A softmax over the whole row gives p_kc / n², whatever the other cells hold.
    probs = torch.softmax(out.double(), dim=1)
    torch.testing.assert_close(probs, torch.softmax(net(x).double(), dim=1).reshape(2, -1) / 4)
    assert difull_target(3, 2, CLASSES) == 3 * CLASSES + 2


@pytest.mark.parametrize("k", range(4))
def test_cell_k_output_is_unchanged_when_every_other_cell_changes(k):
    net = tiny_net(seed=2, classes=CLASSES)
    dm = DisconnectedModel(net, 2, layer=net[2])
    x = make_grids(cells(4, seed=3), 2)
    y = make_grids(cells(4, seed=4), 2)
    top, bottom, left, right = cell_box(k, 2, 2 * S, 2 * S)
    y[..., top:bottom, left:right] = x[..., top:bottom, left:right]  # same cell k, other cells differ
    with torch.no_grad():
        a, b = dm(x), dm(y)
    block = slice(k * CLASSES, (k + 1) * CLASSES)
    assert torch.equal(a[:, block], b[:, block])
    rest = [j for j in range(4 * CLASSES) if not block.start <= j < block.stop]
    assert not torch.equal(a[:, rest], b[:, rest])
    # The gradient of cell k's score is zero outside cell k.
    xg = x.clone().requires_grad_(True)
    dm(xg)[0, k * CLASSES + 1].backward()
    outside = torch.ones(2 * S, 2 * S, dtype=torch.bool)
    outside[top:bottom, left:right] = False
    assert xg.grad is not None and bool((xg.grad[..., outside] == 0).all()) and bool(xg.grad.abs().sum() > 0)


def test_mosaic_layer_retiles_values_unchanged_and_leaves_no_hook():
    net = tiny_net(seed=5, classes=CLASSES)
    x = make_grids(cells(8, seed=6), 2)
    plain = DisconnectedModel(net, 2)
    seen = []
    exposed = DisconnectedModel(net, 2, layer=net[2])
    exposed.mosaic_layer.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone()))
    with torch.no_grad():
        assert torch.equal(plain(x), exposed(x))
        layer_out = net[:3](split_cells(x, 2))
    assert len(seen) == 1 and torch.equal(seen[0], make_grids(layer_out, 2))
    assert not net[2]._forward_hooks  # the classifier is left as it was


def test_gradcam_on_the_mosaic_layer_is_grad_cam_of_the_stitched_layer():
    net = tiny_net(seed=7, classes=CLASSES)
    dm = DisconnectedModel(net, 2, layer=net[2])
    x = make_grids(cells(4, seed=8), 2)
    target = difull_target(1, 3, CLASSES)
    cam = LayerGradCam(dm, dm.mosaic_layer).attribute(x, target=target)
    acts = make_grids(net[:3](split_cells(x, 2)), 2).detach().requires_grad_(True)
    # the same forward from the stitched activations on
    logits = net[3:](split_cells(acts, 2))
    score = torch.log_softmax(logits, dim=1).reshape(1, -1)[0, target]
    (grad,) = torch.autograd.grad(score, acts)
    assert bool((grad[..., :S, :S] == 0).all()) and bool((grad[..., S:, :] == 0).all())  # only cell 1's block
    expected = (grad.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1, keepdim=True)
    torch.testing.assert_close(cam, expected.detach(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- localisation


def test_localisation_of_hand_made_maps():
    a = torch.zeros(5, 2, 4, 4)
    a[0, 0, :2, :2] = 1.5  # cell 0: +3 per pixel after the channel sum
    a[0, 1, :2, :2] = 1.5
    a[0, :, 2:, 2:] = 0.5  # cell 3: +1 per pixel
    a[0, :, :2, 2:] = -4.0  # cell 1: negative, left out
    a[1, 0, 0, 0] = -1.0  # only negative values: undefined
    a[3, 0, 3, 0] = 2.0  # everything in cell 2
    a[4, 0, 0, 0], a[4, 0, 0, 3] = 1.0, -3.0  # positive inside cell 0, a negative value in cell 1
    loc = localisation(a, [0, 0, 1, 2, 0], 2)
    assert loc[0].item() == 0.75 and math.isnan(loc[1].item()) and math.isnan(loc[2].item())
    assert loc[3].item() == 1.0 and loc[4].item() == 1.0
    assert localisation(a, 3, 2)[0].item() == 0.25 and localisation(a, 1, 2)[0].item() == 0.0
    absolute = localisation(a, [0, 0, 1, 2, 0], 2, mass="absolute")
    assert absolute[0].item() == 12 / (12 + 4 + 32) and absolute[1].item() == 1.0 and absolute[4].item() == 0.25
    # N×H×W maps pass through without a channel sum
    assert localisation(a.sum(1), [0, 0, 1, 2, 0], 2)[0].item() == 0.75


# ----------------------------------------------------------------- AggAtt


def test_aggatt_bins_are_the_papers_percentiles_on_100_maps():
    scores = np.arange(100)[::-1] / 100.0  # map i has the (i+1)-th best score
    bins = aggatt_bins(scores)
    assert [b.tolist() for b in bins] == [
        [0, 1],
        [2, 3, 4],
        list(range(5, 50)),
        list(range(50, 95)),
        [95, 96, 97],
        [98, 99],
    ]


def test_aggatt_bins_on_a_small_set_share_the_edge_maps_and_are_never_empty():
    scores = [0.1, 0.9, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4]  # best first: 1, 6, 4, 2, 7, 3, 5, 0
    bins = aggatt_bins(scores)
    assert [b.tolist() for b in bins] == [[1], [1], [1, 6, 4, 2], [7, 3, 5, 0], [0], [0]]
    # 32 maps: sorted position i covers [3.125 i, 3.125 (i + 1)) %
    ranked = aggatt_bins(np.arange(32)[::-1].astype(float))
    assert [b.tolist() for b in ranked] == [[0], [0, 1], list(range(1, 16)), list(range(16, 31)), [30, 31], [31]]
    # NaN (no localisation) sorts last; ties keep their index order
    assert aggatt_bins([float("nan"), 0.5, 0.5], bins=[(0, 50), (50, 100)])[1].tolist() == [2, 0]


def test_aggatt_aligns_the_target_cell_scales_and_averages():
    maps = torch.zeros(4, 1, 4, 4)
    maps[0, 0, 0, 0] = 2.0  # cell 0, top-left pixel
    maps[1, 0, 2, 2] = 5.0  # cell 3, top-left pixel of the cell
    maps[2, 0, 0, 2], maps[2, 0, 2, 0] = 1.0, -4.0  # cell 1 is the target; a negative value in cell 2
    aligned = align_to_cell(maps, [0, 3, 1, 0], 2)
    assert aligned[1, 0, 0].item() == 5.0 and aligned[2, 0, 0].item() == 1.0 and aligned[2, 2, 2].item() == -4.0
    res = aggatt(maps, [1.0, 1.0, 0.2, float("nan")], [0, 3, 1, 0], 2, bins=[(0, 50), (50, 100)])
    assert [m.tolist() for m in res.members] == [[0, 1], [2, 3]]
    expected_first = torch.zeros(4, 4)
    expected_first[0, 0] = 1.0  # both maps scaled to 1 at the aligned top-left pixel
    assert np.array_equal(res.means[0], expected_first.numpy())
    expected_second = torch.zeros(4, 4)
    expected_second[0, 0], expected_second[2, 2] = 0.25 / 2, -1.0 / 2  # map 2 / 4, averaged with the empty map 3
    assert np.array_equal(res.means[1], expected_second.numpy())
    assert res.scores == [1.0, 0.2]


def test_plot_aggatt_draws_one_row_per_method(tmp_path):
    maps = torch.randn(8, 1, 8, 8)
    scores = localisation(maps, 0, 2)
    results = {"a": aggatt(maps, scores, 0, 2), "b": aggatt(-maps, scores, 0, 2)}
    path = tmp_path / "aggatt.png"
    fig = plot_aggatt(results, path, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len([ax for ax in fig.axes if ax.images]) == 2 * len(AGGATT_BINS)


# ----------------------------------------------------------------- choosing images


def test_select_grid_images_takes_confident_images_of_different_classes():
    preds = [0, 0, 1, 2, 3, 1, 4, 5]
    conf = [0.9, 0.8, 0.95, 0.2, 0.7, 0.99, 0.6, 0.9]
    grids = select_grid_images(preds, conf, n_grids=3, n=2, min_confidence=0.5)
    pool = [0, 1, 2, 4, 5, 6, 7]
    assert grids[0] == [0, 2, 4, 6]  # walk from pool position 0, skipping image 1 (class 0 again)
    assert grids[1] == [5, 6, 7, 0]  # from pool position 4
    assert grids[2] == [2, 4, 6, 7]  # second pass over the pool: from position 8 + 1 = 9 ≡ 2, skipping image 5
    for g in grids:
        assert len({preds[i] for i in g}) == 4 and all(i in pool for i in g)
    with pytest.raises(ValueError, match="min_confidence"):
        select_grid_images(preds, conf, n_grids=1, n=2, min_confidence=0.95)


# ----------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    net = CountingModel(tiny_net(classes=CLASSES))
    x = cells(8)
    with pytest.raises(ValueError, match="n:"):
        make_grids(x, 1)
    with pytest.raises(ValueError, match="images:"):
        make_grids(x[:6], 2)
    with pytest.raises(ValueError, match="grids:"):
        split_cells(torch.zeros(1, 3, 5, 6), 2)
    with pytest.raises(ValueError, match="cells:"):
        localisation(torch.ones(2, 1, 4, 4), [0, 4], 2)
    with pytest.raises(ValueError, match="cells:"):
        localisation(torch.ones(2, 1, 4, 4), [0], 2)
    with pytest.raises(ValueError, match="attributions:"):
        localisation(torch.ones(2, 1, 5, 4), 0, 2)
    with pytest.raises(ValueError, match="mass:"):
        localisation(torch.ones(2, 1, 4, 4), 0, 2, mass="negative")
    with pytest.raises(ValueError, match="tiles_per_cell:"):
        cell_tiles_mask(2, 8, 8, tiles_per_cell=5)
    with pytest.raises(ValueError, match="bins:"):
        aggatt_bins([0.1, 0.2], bins=[(5, 2)])
    with pytest.raises(ValueError, match="scores:"):
        aggatt(torch.ones(2, 1, 4, 4), [0.5], 0, 2)
    with pytest.raises(ValueError, match="layer:"):
        DisconnectedModel(net, 2, layer=nn.Conv2d(3, 3, 1))
    with pytest.raises(ValueError, match="cls:"):
        difull_target(0, CLASSES, CLASSES)
    with pytest.raises(ValueError, match="setting:"):
        compare_grids(net, x, setting="grid", show_progress=False)
    with pytest.raises(ValueError, match="include:"):
        compare_grids(net, x, setting="difull", methods=["Saliency"], show_progress=False)
    with pytest.raises(ValueError, match="explain:"):
        compare_grids(net, x, setting="gridpg", explain=[[0]], show_progress=False)
    with pytest.raises(ValueError, match="images:"):
        compare_grids(net, x[:5], setting="gridpg", show_progress=False)
    assert net.rows == 0  # every error before any model call


# ----------------------------------------------------------------- the harness


@pytest.fixture(scope="module")
def difull_run():
    net = tiny_net(seed=3, classes=CLASSES)
    x = cells(8, seed=9)
    methods = ["FeatureAblation", "IntegratedGradients", "Occlusion", "LayerGradCam"] + [f"ours:{s}" for s in SEARCHES]
    res = compare_grids(net, x, setting="difull", methods=methods, show_progress=False, tiles_per_cell=2)
    return net, x, res


def test_difull_exact_methods_put_nothing_outside_the_cell(difull_run):
    """FeatureAblation, IntegratedGradients and every search of ours, default map: every value
    outside the target's cell is exactly 0 (absolute share 1.0), and the paper's localisation
    is 1.0 wherever the map has a positive value (a map without one has none: NaN)."""
    _, _, res = difull_run
    assert len(res.cells) == 8 and res.cells == [0, 1, 2, 3] * 2
    for name in ["FeatureAblation", "IntegratedGradients"] + [f"ours:{s}" for s in SEARCHES]:
        absolute = res.absolute[name]
        assert np.all(absolute[~np.isnan(absolute)] == 1.0), name
        loc = res.localisation[name]
        assert np.all(loc[~np.isnan(loc)] == 1.0), name
        if name.startswith("ours"):
            assert not np.isnan(absolute).any(), name  # never an all-zero map


def test_harness_maps_are_the_direct_calls_and_targets_are_difull_indices(difull_run):
    net, x, res = difull_run
    with torch.no_grad():
        classes = net(x).argmax(1)
    grids = make_grids(x, 2)
    dm = DisconnectedModel(net, 2)
    mask = cell_tiles_mask(2, 2 * S, 2 * S, 2)
    for i, (g, k) in enumerate(zip(res.grid_index, res.cells, strict=True)):
        assert res.classes[i] == int(classes[g * 4 + k]) and res.targets[i] == k * CLASSES + res.classes[i]
        fa = FeatureAblation(dm).attribute(
            grids[g : g + 1], target=res.targets[i], feature_mask=mask, perturbations_per_eval=16
        )
        torch.testing.assert_close(res.maps["FeatureAblation"][i : i + 1], fa.sum(1, keepdim=True))
        ours = SubmodularAttribution(dm, search="bidirectional").attribute(
            grids[g : g + 1], target=res.targets[i], feature_mask=mask, perturbations_per_eval=16
        )
        torch.testing.assert_close(res.maps["ours:bidirectional"][i : i + 1], ours.sum(1, keepdim=True))
        assert res.localisation["FeatureAblation"][i] == localisation(fa, k, 2)[0].item() or math.isnan(
            res.localisation["FeatureAblation"][i]
        )
    ig = IntegratedGradients(dm).attribute(grids[0:1], target=res.targets[0], n_steps=16, internal_batch_size=16)
    torch.testing.assert_close(res.maps["IntegratedGradients"][0:1], ig.sum(1, keepdim=True))
    summary = res.summary()
    assert summary["FeatureAblation"]["evaluations"][0] == 4 * (16 + 1)  # 16 tiles + the full input, 4 cells
    assert "ours:greedy" in res.table() and "| FeatureAblation |" in res.table()


def test_gridpg_targets_are_the_cells_classes_and_results_round_trip(tmp_path):
    net = tiny_net(seed=4, classes=CLASSES)
    x = cells(8, seed=10)
    res = compare_grids(
        net,
        x,
        setting="gridpg",
        methods=["FeatureAblation", "LayerGradCam"],
        explain="rotate",
        names=[f"im{i}" for i in range(8)],
        show_progress=False,
    )
    with torch.no_grad():
        classes = net(x).argmax(1)
    assert res.cells == [0, 1] and res.targets == [int(classes[0]), int(classes[5])]
    assert res.names == [[f"im{i}" for i in range(4)], [f"im{i}" for i in range(4, 8)]]
    grids = make_grids(x, 2)
    fa = FeatureAblation(net).attribute(grids[1:2], target=res.targets[1], feature_mask=cell_tiles_mask(2, 16, 16, 2))
    torch.testing.assert_close(res.maps["FeatureAblation"][1:2], fa.sum(1, keepdim=True))
    res.save(tmp_path / "r.pt")
    back = GridComparison.load(tmp_path / "r.pt")
    assert back.methods == res.methods and back.targets == res.targets
    for m in res.methods:
        assert np.array_equal(back.localisation[m], res.localisation[m], equal_nan=True)
        assert torch.equal(back.maps[m], res.maps[m])
    a = GridComparison.merge(
        [
            compare_grids(net, x, setting="gridpg", methods=["FeatureAblation"], explain="rotate", show_progress=False),
            compare_grids(net, x, setting="gridpg", methods=["LayerGradCam"], explain="rotate", show_progress=False),
        ]
    )
    assert a.methods == res.methods
    for m in res.methods:
        assert np.array_equal(a.localisation[m], res.localisation[m], equal_nan=True)
    data = json.loads(json.dumps(res.to_dict()))
    expected = [None if math.isnan(v) else float(v) for v in res.localisation["FeatureAblation"]]
    assert data["methods"]["FeatureAblation"]["localisation"] == expected
    fig = res.figure(tmp_path / "agg.png")
    assert len([ax for ax in fig.axes if ax.images]) == 2 * len(AGGATT_BINS)


def test_lineup_has_every_registered_search():
    assert [m for m in grid_lineup() if m.startswith("ours:")] == [f"ours:{s}" for s in SEARCHES]


# ----------------------------------------------------------------- the command line


class _Preprocess:
    """PIL image -> 3×16×16 tensor in [-1, 1]."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        arr = np.asarray(image.convert("RGB").resize((16, 16)), dtype=np.float32) / 255.0
        return (torch.from_numpy(arr).permute(2, 0, 1) - 0.5) / 0.5


def colour_model(device: str = "cpu") -> SimpleNamespace:
    """``--model-factory`` of the CLI test: a tiny CNN whose large head weights make it
    predict five classes confidently on the bundled photos."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 10)
    )
    with torch.no_grad():
        model[4].weight.mul_(60.0)
    return SimpleNamespace(
        model=model.eval().to(device),
        preprocess=_Preprocess(),
        class_names=[f"class {i}" for i in range(10)],
        name="colour",
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
    )


FACTORY = f"{os.path.abspath(__file__)}:colour_model"


@pytest.mark.parametrize("setting", ["difull", "gridpg"])
def test_cli_compare_grid_settings(setting, tmp_path, capsys):
    pytest.importorskip("skimage")
    out = tmp_path / "o"
    rc = main(
        [
            "compare",
            "--setting",
            setting,
            "--model-factory",
            FACTORY,
            "--grids",
            "2",
            "--min-confidence",
            "0.3",
            "--methods",
            "FeatureAblation,ours:refined",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert f"{setting} localisation" in captured.out and "| ours:refined |" in captured.out
    assert {"table.md", "results.json", "aggatt.png"} <= set(os.listdir(out))
    data = json.loads((out / "results.json").read_text())
    assert (
        data["setting"] == setting
        and len(data["cells"]) == 2
        and set(data["methods"]) == {"FeatureAblation", "ours:refined"}
    )
    if setting == "difull":
        assert all(v == 1.0 for v in data["methods"]["ours:refined"]["absolute"] if v is not None)


def test_cli_grid_settings_bad_input(tmp_path, capsys):
    rc = main(
        [
            "compare",
            "--setting",
            "difull",
            "--model-factory",
            FACTORY,
            "--methods",
            "Saliency",
            "--no-progress",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "--methods" in err
    rc = main(
        [
            "compare",
            "--setting",
            "gridpg",
            "--model-factory",
            FACTORY,
            "--min-confidence",
            "1.5",
            "--no-progress",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--min-confidence" in err


# ----------------------------------------------------------------- the real model


def test_difull_on_the_bundled_model_default_map_localises_exactly():
    """One 2×2 mosaic of four bundled images (cells of 64² so the test stays short), 2×2 tiles per
    cell, the default SubmodularAttribution: nothing outside the target's cell, for each cell."""
    from captum_submodular.compare import pick_grid_cells
    from captum_submodular.data import DataUnavailableError, imagenet_samples
    from captum_submodular.models import ModelUnavailableError, load_model

    try:
        lm = load_model()
        samples = imagenet_samples()
    except (ModelUnavailableError, DataUnavailableError, ImportError) as exc:
        pytest.skip(f"bundled model or images not installed: {exc}")
    x = torch.stack([lm.preprocess(s.image) for s in samples])
    x = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True, align_corners=False)
    chosen = pick_grid_cells(lm.model, x, n_grids=1, n=2, min_confidence=0.5)[0]
    grid = make_grids(x[chosen], 2)
    dm = DisconnectedModel(lm.model, 2)
    with torch.no_grad():
        classes = lm.model(x[chosen]).argmax(1).tolist()
    mask = cell_tiles_mask(2, 128, 128, tiles_per_cell=2)
    sa = SubmodularAttribution(dm)
    for k in (0, 3):
        target = difull_target(k, classes[k], 1000)
        a = sa.attribute(grid, target=target, feature_mask=mask)
        assert localisation(a, k, 2).item() == 1.0
        assert localisation(a, k, 2, mass="absolute").item() == 1.0


def test_occlusion_leaks_only_through_windows_that_straddle_the_cell_border():
    """Why Occlusion misses 1.0 on DiFull: a window that covers part of cell k spreads the change of
    cell k's score over all its pixels, the neighbour's included.  Windows aligned with the cells
    leak nothing."""
    from captum.attr import Occlusion

    net = tiny_net(seed=6, classes=CLASSES)
    dm = DisconnectedModel(net, 2)
    x = make_grids(cells(4, seed=11), 2)
    k = 3
    target = difull_target(k, 1, CLASSES)
    top, bottom, left, right = cell_box(k, 2, 2 * S, 2 * S)
    straddling = Occlusion(dm).attribute(x, target=target, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2))
    reach = torch.zeros(2 * S, 2 * S, dtype=torch.bool)  # pixels of windows that overlap cell k
    for r in range(0, 2 * S - 4 + 1, 2):
        for c in range(0, 2 * S - 4 + 1, 2):
            if r < bottom and r + 4 > top and c < right and c + 4 > left:
                reach[r : r + 4, c : c + 4] = True
    outside = torch.ones(2 * S, 2 * S, dtype=torch.bool)
    outside[top:bottom, left:right] = False
    heat = straddling.sum(dim=(0, 1))
    assert bool((heat[outside & ~reach] == 0).all()) and bool((heat[outside & reach] != 0).any())
    aligned = Occlusion(dm).attribute(x, target=target, sliding_window_shapes=(3, 4, 4), strides=(3, 4, 4))
    assert bool((aligned.sum(dim=(0, 1))[outside] == 0).all())
    assert localisation(aligned, k, 2, mass="absolute").item() == 1.0

"""One regression test per numbered item of issue 13 (reliability).

Items 1–6 were silent wrong results, items 7–19 unclear errors.  Each test states the
contract now kept.  "Before any model call" is proven with a counting wrapper.
"""

import warnings

import pytest
import torch
from torch import nn

from captum_submodular import NonFiniteOutputError, ObjectiveWeights, SubmodularAttribution
from captum_submodular.metrics import Faithfulness, deletion, highest_confidence, insertion
from captum_submodular.regions import grid_mask, slic_mask
from conftest import CountingModel as Counting
from conftest import tiny_cnn

MASK = grid_mask(4, 4, grid=2)  # 1×1×4×4, 4 regions


def lin_model(features=4, classes=3, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(features, classes).eval()


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(model, saved):
    now = model.state_dict()
    return set(now) == set(saved) and all(torch.equal(now[k], saved[k]) for k in saved)


class BNDropNet(nn.Module):
    """Conv, BatchNorm, Dropout, linear head: N×3×4×4 → N×3 logits."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.5)
        self.head = nn.Linear(16, 3)
        with torch.no_grad():  # non-trivial running statistics
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        return self.head(self.drop(nn.functional.adaptive_avg_pool2d(h, 2).flatten(1)))


# ============================================================ silent wrong results


def test_1_model_in_train_mode_is_never_changed_and_gives_the_eval_answer():
    model = BNDropNet().train()
    model.head.eval()  # a mix of modes, restored module by module
    modes = {name: m.training for name, m in model.named_modules()}
    saved = state(model)
    x = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    sa = SubmodularAttribution(model)
    with pytest.warns(UserWarning, match="training mode.*BatchNorm2d.*Dropout"):
        a1 = sa.attribute(x, target=0, feature_mask=MASK)  # ppe=1: chunks of one input
    with pytest.warns(UserWarning, match="training mode"):
        a2 = sa.attribute(x, target=0, feature_mask=MASK)
    assert same_state(model, saved)  # running statistics and num_batches_tracked bitwise unchanged
    assert {name: m.training for name, m in model.named_modules()} == modes
    assert torch.equal(a1, a2)  # Dropout does not make identical calls differ
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(sa.attribute(x, target=0, feature_mask=MASK), a1)  # = the eval model's map
    # the metrics keep the same contract
    model.train()
    with pytest.warns(UserWarning, match="training mode"):
        insertion(model, x, a1, target=0, n_steps=4)
    assert same_state(model, saved) and model.training
    # train_mode="error": refused before any model call
    counting = Counting(model)
    with pytest.raises(ValueError, match="training mode.*train_mode='error'"):
        SubmodularAttribution(counting, train_mode="error").attribute(x, target=0, feature_mask=MASK)
    assert counting.rows == 0
    with pytest.raises(ValueError, match="train_mode"):
        SubmodularAttribution(model, train_mode="eval")


def test_1_modules_behind_a_lambda_are_found_and_no_hook_is_left():
    model = BNDropNet().train()
    saved = state(model)
    x = torch.randn(1, 3, 4, 4)
    emb = model.conv
    sa = SubmodularAttribution(lambda t: model(t), weights=ObjectiveWeights(effectiveness=0.05), embedding=emb)
    with pytest.warns(UserWarning, match="training mode"):
        sa.attribute(x, target=1, feature_mask=MASK)
    assert same_state(model, saved) and model.training and model.bn.training
    assert not emb._forward_hooks and not model._forward_hooks


def test_1_buffers_a_model_changes_are_restored_with_a_warning_and_scripted_models_too():
    class Counter(nn.Module):
        def __init__(self, replace):
            super().__init__()
            self.replace = replace
            self.register_buffer("n", torch.zeros(()))
            self.lin = lin_model(4)

        def forward(self, x):
            if self.replace:
                self.n = self.n + 1  # a new tensor
            else:
                self.n += 1  # in place
            return self.lin(x)

    x = torch.randn(2, 4)
    for replace in (False, True):
        model = Counter(replace)
        original = model.n
        with pytest.warns(UserWarning, match="changed its buffers.*Counter.n"):
            SubmodularAttribution(model).attribute(x, target=0)
        assert model.n is original and model.n.item() == 0
    scripted = torch.jit.script(nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Dropout(0.2)).train())
    saved = state(scripted)
    with pytest.warns(UserWarning, match="training mode.*BatchNorm1d"):
        SubmodularAttribution(scripted).attribute(x, target=0)
    assert same_state(scripted, saved) and all(m.training for m in scripted.modules())


def test_2_one_output_per_example_with_logits_names_output_type_scalar():
    lin = nn.Linear(16, 3)
    x = torch.randn(2, 1, 4, 4)
    for f in (lambda t: lin(t.flatten(1))[:, 0], lambda t: lin(t.flatten(1))[:, :1]):
        counting = Counting(f)
        with pytest.raises(ValueError, match="output_type='scalar'"):
            SubmodularAttribution(counting).attribute(
                x, target=0 if f(x).dim() == 2 else None, feature_mask=MASK, perturbations_per_eval=1
            )
        assert counting.calls == [1]  # at the first forward of the clean input
    counting = Counting(lambda t: torch.sigmoid(lin(t.flatten(1))[:, :1]))
    with pytest.raises(ValueError, match="output_type='probabilities' needs at least 2 classes.*'scalar'"):
        SubmodularAttribution(counting, output_type="probabilities").attribute(
            x, target=0, feature_mask=MASK, perturbations_per_eval=1
        )
    assert counting.calls == [1]
    # the scalar reading is batch-independent and not all zero
    sa = SubmodularAttribution(lambda t: lin(t.flatten(1))[:, 0], output_type="scalar")
    a1 = sa.attribute(x, feature_mask=MASK, perturbations_per_eval=1)
    a7 = sa.attribute(x, feature_mask=MASK, perturbations_per_eval=7)
    torch.testing.assert_close(a1, a7, rtol=0, atol=1e-5)
    assert (a1 != 0).any()


class Blind(nn.Module):
    """A tiny CNN that cannot see the pixels where ``visible`` is 0."""

    def __init__(self, visible, seed=0, classes=4):
        super().__init__()
        self.net = tiny_cnn(seed, classes)
        self.register_buffer("visible", visible)

    def forward(self, x):
        return self.net(x * self.visible)


@pytest.mark.parametrize("search", ["greedy", "bidirectional", "accelerated"])
def test_3_exact_zeros_and_order_do_not_depend_on_the_batch_size(search):
    mask = grid_mask(6, 6, grid=3)  # 9 regions
    visible = (mask != 4) & (mask != 7) & (mask != 2)
    n_zeros = 0
    for seed in range(3):
        model = Blind(visible.float(), seed)
        x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
        sa = SubmodularAttribution(model, search=search)
        runs = [sa.explain(x, target=[1, 3], feature_mask=mask, perturbations_per_eval=ppe) for ppe in (1, 7, 32)]
        for i in range(2):
            ref = runs[0][i]
            for r in (run[i] for run in runs):
                assert r.order.tolist() == ref.order.tolist()
                assert torch.equal(r.region_values == 0, ref.region_values == 0)
                torch.testing.assert_close(r.region_values, ref.region_values, rtol=1e-4, atol=1e-6)
            zeros = (ref.region_values == 0).nonzero().flatten().tolist()
            assert set(zeros) <= {2, 4, 7}  # only regions it cannot see can be exactly 0
            n_zeros += len(zeros)
        # one example alone equals the batch
        (single,) = sa.explain(x[1:], target=3, feature_mask=mask, perturbations_per_eval=7)
        assert single.order.tolist() == runs[1][1].order.tolist()
        assert torch.equal(single.region_values == 0, runs[1][1].region_values == 0)
    assert n_zeros >= 6  # the zeros are there (those the gain map gives them, see maps.py)


def test_4_dtypes_compose_exactly_and_bad_combinations_are_refused():
    seen = []

    def recorder(t):
        seen.append(t.clone())
        return lin_model(4)(t.double().float() if t.dtype != torch.float32 else t)

    # float16 inputs next to a large baseline: the unperturbed input is x exactly
    x16 = torch.tensor([[0.1, 0.2, 0.3, 0.4]], dtype=torch.float16)
    fm = torch.arange(4)
    (r,) = SubmodularAttribution(recorder).explain(x16, baselines=300.0, target=0, feature_mask=fm)
    assert torch.equal(seen[0], x16) and seen[0].dtype == torch.float16
    expected = torch.softmax(recorder(x16), -1)[0, 0].item()
    assert r.full_score == pytest.approx(expected, abs=1e-7)
    removed = [t for t in seen if t.dtype == torch.float16 and (t == 300).all()]
    assert removed  # the baseline input is the baseline exactly
    # float32 baseline 1e8: the full input is not lost
    seen.clear()
    x = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    SubmodularAttribution(recorder).explain(x, baselines=1e8, target=0, feature_mask=fm)
    assert torch.equal(seen[0], x)
    # integer inputs: an integral baseline works and is exact; 0.5 / NaN are refused by name
    xi = torch.tensor([[3, 1, 4, 1]])
    seen.clear()
    a = SubmodularAttribution(recorder).attribute(xi, baselines=2, target=0, feature_mask=fm)
    assert a.dtype == torch.float32 and torch.equal(seen[0], xi) and any((t == 2).all() for t in seen)
    counting = Counting(recorder)
    sa = SubmodularAttribution(counting)
    for bl in (0.5, float("nan"), torch.tensor([0.5, 0.0, 0.0, 0.0]), torch.full((4,), float("nan"))):
        with pytest.raises(ValueError, match="baselines"):
            sa.attribute(xi, baselines=bl, target=0, feature_mask=fm)
    # a float target is refused, not truncated
    for t in (torch.tensor(1.7), 1.7, [1.0]):
        with pytest.raises(ValueError, match="target"):
            sa.attribute(x, target=t, feature_mask=fm)
    assert counting.rows == 0


def test_5_embedding_with_nan_or_wrong_rows_is_an_error():
    model = lin_model(4)
    x = torch.randn(1, 4)
    w = ObjectiveWeights(effectiveness=0.05)

    def nan_emb(t):
        return torch.full((t.shape[0], 2), float("nan"))

    counting = Counting(model)
    with pytest.raises(NonFiniteOutputError, match="embedding.*NaN"):
        SubmodularAttribution(counting, weights=w, embedding=nan_emb).attribute(x, target=0)
    assert counting.rows == 1  # the clean input only: before the search
    for ppe in (1, 2):  # the same error whatever the batch (it was reshaped silently at ppe=1)
        for emb in (lambda t: model(t).flatten(), lambda t: torch.ones(t.shape[0] + 1, 3)):
            counting = Counting(model)
            with pytest.raises(ValueError, match="embedding must return one output row per input row"):
                SubmodularAttribution(counting, weights=w, embedding=emb).attribute(
                    x, target=0, perturbations_per_eval=ppe
                )
            assert counting.rows == 1


def test_6_metrics_refuse_nan_and_slic_refuses_nan_pixels():
    model = lin_model(4)
    counting = Counting(model)
    x, a = torch.randn(2, 4), torch.randn(2, 4)
    for fn in (insertion, deletion):
        with pytest.raises(ValueError, match="baselines"):
            fn(counting, x, a, target=0, baselines=float("nan"))
        with pytest.raises(ValueError, match="baselines"):
            fn(counting, x, a, target=0, baselines=torch.tensor([0.0, float("inf"), 0.0, 0.0]))
        bad = a.clone()
        bad[0, 1] = float("nan")
        with pytest.raises(ValueError, match="attributions contain NaN"):
            fn(counting, x, bad, target=0)
    assert counting.rows == 0
    nan_model = Counting(lambda t: model(t) * torch.where(t[:, :1] == 0, float("nan"), 1.0))
    with pytest.raises(NonFiniteOutputError, match="NaN"):
        insertion(nan_model, x, a, target=0, perturbations_per_eval=64)
    assert len(nan_model.calls) == 1
    img = torch.rand(3, 8, 8)
    img[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="slic_mask.*NaN"):
        slic_mask(img, n_segments=4)


# ============================================================ unclear errors


def test_7_bool_inputs_are_supported_exactly():
    seen = []

    def f(t):
        seen.append(t.clone())
        return lin_model(4)(t.float())

    xb = torch.tensor([[True, False, True, True]])
    a = SubmodularAttribution(f).attribute(xb, target=1, feature_mask=torch.arange(4))
    assert a.dtype == torch.float32 and a.shape == xb.shape and torch.isfinite(a).all()
    assert all(t.dtype == torch.bool for t in seen) and torch.equal(seen[0], xb)
    area = insertion(f, xb, a, target=1, n_steps=4)
    assert torch.isfinite(area).all()
    with pytest.raises(ValueError, match="baselines.*0/1"):
        SubmodularAttribution(f).attribute(xb, baselines=0.5, target=1)


def test_8_nan_or_inf_baseline_blames_the_baseline_not_the_model():
    counting = Counting(tiny_cnn())
    for bl in (float("nan"), float("inf"), torch.full((3, 6, 6), float("nan"))):
        with pytest.raises(ValueError, match="baselines.*finite"):
            SubmodularAttribution(counting).attribute(torch.randn(1, 3, 6, 6), baselines=bl, target=0)
    assert counting.rows == 0


def test_9_huge_target():
    counting = Counting(tiny_cnn())
    for t in (10**20, [10**20], (0, 10**20)):
        with pytest.raises(ValueError, match="target"):
            SubmodularAttribution(counting).attribute(torch.randn(1, 3, 6, 6), target=t)
    with pytest.raises(ValueError, match="target"):
        insertion(counting, torch.randn(1, 3, 6, 6), torch.randn(1, 3, 6, 6), target=10**20)
    assert counting.rows == 0


def test_10_sliding_window_shapes_int():
    counting = Counting(tiny_cnn())
    for w in (2, (2, 2), (3, 2.5, 2), (3, 0, 2)):
        with pytest.raises(ValueError, match="sliding_window_shapes"):
            SubmodularAttribution(counting).attribute(torch.randn(1, 3, 6, 6), target=0, sliding_window_shapes=w)
    with pytest.raises(ValueError, match="strides"):
        SubmodularAttribution(counting).attribute(
            torch.randn(1, 3, 6, 6), target=0, sliding_window_shapes=(3, 3, 3), strides="a"
        )
    assert counting.rows == 0


def test_11_zero_size_feature_axis():
    counting = Counting(lambda t: torch.zeros(t.shape[0], 3))
    with pytest.raises(ValueError, match="inputs.*no elements"):
        SubmodularAttribution(counting).attribute(torch.randn(2, 0), target=0)
    with pytest.raises(ValueError, match="inputs.*no elements"):
        insertion(counting, torch.randn(2, 3, 0), torch.randn(2, 3, 0), target=0)
    assert counting.rows == 0


def test_12_a_list_of_inputs_is_refused_everywhere_before_any_call():
    counting = Counting(lambda a, b: lin_model(4)(torch.cat([a, b], 1)))
    a, b = torch.randn(1, 2), torch.randn(1, 2)
    sa = SubmodularAttribution(counting)
    with pytest.raises(ValueError, match=r"inputs must be a tensor or a tuple.*tuple\(inputs\)"):
        sa.attribute([a, b], target=0)
    with pytest.raises(ValueError, match="inputs must be a tensor or a tuple"):
        sa.explain([a, b], target=0)
    with pytest.raises(ValueError, match="inputs must be a tensor or a tuple"):
        insertion(counting, [a, b], (a, b), target=0)
    with pytest.raises(ValueError, match="attributions must be a tensor or a tuple"):
        insertion(counting, (a, b), [a, b], target=0)
    with pytest.raises(ValueError, match="baselines must be a tensor or a tuple"):
        sa.attribute((a, b), baselines=[0, 0], target=0)
    assert counting.rows == 0
    assert len(sa.explain((a, b), target=0)) == 1  # the tuple works


def test_13_threshold_is_checked_first():
    counting = Counting(tiny_cnn())
    for thr in ("abc", float("nan"), True):
        with pytest.raises(ValueError, match="threshold"):
            SubmodularAttribution(counting).attribute(torch.randn(1, 3, 6, 6), target=0, threshold=thr)
    assert counting.rows == 0


def test_14_within_region_gradient_fails_before_the_search():
    lin = lin_model(4)
    counting = Counting(lin)
    with pytest.raises(ValueError, match="within_region='gradient'.*floating point"):
        SubmodularAttribution(counting, within_region="gradient").attribute(torch.tensor([[1, 2, 3, 4]]), target=0)
    assert counting.rows == 0
    x = torch.randn(2, 4)
    for f, msg in (
        (lambda t: torch.from_numpy(lin(t).numpy()), "failed on inputs that require grad"),
        (lambda t: lin(t).detach().numpy(), "return a torch tensor"),
        (lambda t: lin(t).detach(), "does not depend on the inputs"),
    ):
        counting = Counting(f)
        with pytest.raises(ValueError, match=f"within_region='gradient'.*{msg}"):
            SubmodularAttribution(counting, within_region="gradient").attribute(x, target=0)
        assert counting.rows == 2 + 1  # the clean inputs and the one gradient: no search


def test_15_model_returning_a_tuple():
    model = lin_model(4)
    counting = Counting(lambda t: (model(t),))
    with pytest.raises(ValueError, match=r"forward_func must return a tensor.*tuple of 1 element.*\[0\]"):
        SubmodularAttribution(counting).attribute(torch.randn(1, 4), target=0)
    assert counting.calls == [1]
    with pytest.raises(ValueError, match="forward_func must return a tensor"):
        insertion(counting, torch.randn(1, 4), torch.randn(1, 4), target=0)


def test_16_grid_mask_arguments():
    for kwargs in (dict(grid=2.5), dict(grid=(2,)), dict(grid="2"), dict(tile_size=1.5)):
        with pytest.raises(ValueError, match="grid_mask"):
            grid_mask(4, 4, **kwargs)
    for h, w in ((4.0, 4), (4, 4.5), (0, 4)):
        with pytest.raises(ValueError, match="height.*width"):
            grid_mask(h, w, grid=2)
    assert grid_mask(4, 4, grid=(2, 2)).unique().tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("fn", [insertion, deletion, highest_confidence])
def test_17_metric_target_out_of_range_is_a_value_error_at_the_first_call(fn):
    counting = Counting(lin_model(4, classes=3))
    x, a = torch.randn(2, 4), torch.randn(2, 4)
    for t in (7, [0, 7], torch.tensor([3, 0]), -4):
        with pytest.raises(ValueError, match="`target` .* out of range"):
            fn(counting, x, a, t, n_steps=4)
    assert counting.calls == [10] * 4  # one call each (all rows fit perturbations_per_eval=64)
    # with the clean output given: before any model call
    counting.calls.clear()
    with pytest.raises(ValueError, match="out of range"):
        fn(counting, x, a, 7, n_steps=4, clean_output=counting.net(x))
    assert counting.calls == []


def test_18_mean_substrate_on_integer_inputs():
    counting = Counting(lambda t: lin_model(4)(t.float()))
    xi = torch.randint(0, 5, (2, 4))
    with pytest.raises(ValueError, match="substrate='mean'.*floating-point"):
        insertion(counting, xi, torch.randn(2, 4), target=0, substrate="mean")
    assert counting.rows == 0
    with pytest.raises(ValueError, match="substrate='mean'"):
        Faithfulness(counting, xi, substrate="mean")
    assert counting.rows == 0


def test_19_negative_targets_count_from_the_end_as_in_captum():
    model = tiny_cnn(3, classes=5)
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(3))
    mask = grid_mask(6, 6, grid=2)
    sa = SubmodularAttribution(model)
    ref = sa.attribute(x, target=4, feature_mask=mask)
    for t in (-1, torch.tensor(-1), [-1, 4], torch.tensor([4, -1])):
        torch.testing.assert_close(sa.attribute(x, target=t, feature_mask=mask), ref, rtol=0, atol=0)
    counting = Counting(model)
    with pytest.raises(ValueError, match=r"`target` -6 is out of range.*-5\.\.-1"):
        SubmodularAttribution(counting).attribute(x, target=-6, feature_mask=mask, perturbations_per_eval=1)
    assert counting.calls == [1]
    a = torch.randn(2, 3, 6, 6)
    for fn in (insertion, deletion):
        ref_area = fn(model, x, a, target=4, n_steps=4)
        for t in (-1, [-1, -1], torch.tensor([-1, 4])):
            assert torch.equal(fn(model, x, a, target=t, n_steps=4), ref_area)
    bound = Faithfulness(model, x, targets=-1)
    assert bound.targets == [4, 4]


# ----------------------------------------------------------------- issue 20, part 3


class HiddenDropout(nn.Module):
    """Eval-mode top level whose Dropout is registered (``registered``), held in a plain
    list where ``model.eval()`` does not reach it (``list``), or both."""

    def __init__(self, where: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(16, 8)
        self.head = nn.Linear(8, 3)
        self.drop = nn.Dropout(0.5)
        self.hidden = [nn.Dropout(0.5)]
        self.where = where

    def forward(self, x):
        h = torch.relu(self.lin(x.flatten(1)))
        if self.where in ("registered", "both"):
            h = self.drop(h)
        if self.where in ("list", "both"):
            h = self.hidden[0](h)
        return self.head(h)


@pytest.mark.parametrize("where", ["registered", "list", "both"])
@pytest.mark.parametrize("wrap", ["module", "lambda_default"])
def test_guard_sees_every_module_mode(where, wrap):
    model = HiddenDropout(where).eval()
    model.drop.train()  # a submodule left in training mode under an eval-mode top level
    assert model.hidden[0].training  # model.eval() never reached it
    forward = model if wrap == "module" else (lambda x, net=model: net(x))
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    mask = torch.arange(16).reshape(1, 1, 4, 4) // 4
    sa = SubmodularAttribution(forward)
    with pytest.warns(UserWarning, match="training mode.*Dropout"):
        runs = [sa.explain(x, target=0, feature_mask=mask, perturbations_per_eval=ppe) for ppe in (1, 1, 7)]
    for rs in runs[1:]:
        for a, b in zip(runs[0], rs):
            assert a.order.tolist() == b.order.tolist()
            torch.testing.assert_close(a.insertion_curve, b.insertion_curve, rtol=0, atol=1e-6)
    assert model.drop.training and model.hidden[0].training and not model.training  # modes restored


def test_non_finite_output_on_the_baseline_blames_the_baseline():
    # A finite baseline the model cannot evaluate (its activations overflow): the error
    # names `baselines`, not the embedding or the model, for the embedding and the model.
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.arange(16).reshape(1, 1, 4, 4) // 4
    w = ObjectiveWeights(20, 5, 0.01, 0.05)
    with pytest.raises(NonFiniteOutputError, match=r"The embedding contains inf on the baseline itself.*`baselines`"):
        SubmodularAttribution(net, weights=w, embedding=lambda z: net[1](z.flatten(1)) * 1e10).attribute(
            x, baselines=3e38, target=0, feature_mask=mask
        )
    with pytest.raises(NonFiniteOutputError, match=r"The model output contains .* on the baseline itself"):
        SubmodularAttribution(lambda z: net(z) * 1e10).attribute(x, baselines=3e38, target=0, feature_mask=mask)
    # Finite on the input and on the baseline, but not on a mix of them: the hint names `baselines`.
    with pytest.raises(
        NonFiniteOutputError,
        match=r"on a perturbed input.*cannot evaluate inputs that mix it with "
        r"`baselines`",
    ):
        SubmodularAttribution(
            lambda z: net(z) * torch.where((z == 0).any() & (z != 0).any(), float("inf"), 1.0)
        ).attribute(x, target=0, feature_mask=mask)
    # A model that is non-finite on the input itself keeps the old message.
    with pytest.raises(NonFiniteOutputError, match=r"The model output contains NaN on the unperturbed input"):
        SubmodularAttribution(lambda z: net(z) * torch.where(z.abs().sum() > 0, float("nan"), 1.0)).attribute(
            x, target=0, feature_mask=mask
        )


def test_float16_outputs_with_zero_probabilities_keep_a_finite_objective():
    # The confidence term's entropy underflowed to 0·log 0 = NaN in float16, and the search
    # then crashed in an argmin over no candidates.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    with torch.no_grad():
        net[3].weight.mul_(200.0)  # logits far apart: some probabilities are exactly 0 in float16
    net = net.half()
    x = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0)).half()
    mask = torch.arange(16).reshape(1, 1, 4, 4) // 4
    with torch.no_grad():
        assert (torch.softmax(net(x), 1) == 0).any()
    (r,) = SubmodularAttribution(net).explain(x, target=0, feature_mask=mask)
    assert torch.isfinite(r.objective_values).all()
    assert sorted(r.order.tolist()) == [0, 1, 2, 3]

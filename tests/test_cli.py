"""End-to-end tests of the ``captum-submodular`` command line (tiny injected model)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402

from captum_submodular.cli import main  # noqa: E402
from captum_submodular.models import resolve_target  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY_CLASSES = ["tabby cat", "tiger cat", "dog", "goose", "sports car", "crane", "crane"]


# --------------------------------------------------------------------------- the tiny model


class _TinyPreprocess:
    """PIL image -> 3×32×32 tensor in [-1, 1]."""

    def __call__(self, image: Image.Image) -> torch.Tensor:
        arr = np.asarray(image.convert("RGB").resize((32, 32)), dtype=np.float32) / 255.0
        return (torch.from_numpy(arr).permute(2, 0, 1) - 0.5) / 0.5


def tiny_model(device: str = "cpu") -> SimpleNamespace:
    """The ``--model-factory`` used by these tests: a small random CNN, 7 classes."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
        nn.Linear(128, len(TINY_CLASSES)),
    ).to(device)
    return SimpleNamespace(
        model=model,
        preprocess=_TinyPreprocess(),
        class_names=list(TINY_CLASSES),
        name="tiny",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )


FACTORY = f"{os.path.abspath(__file__)}:tiny_model"
FAST = ["--model-factory", FACTORY, "--n-regions", "6", "--n-steps", "5", "--no-progress"]


@pytest.fixture
def image_file(tmp_path):
    rng = np.random.default_rng(0)
    arr = (rng.random((40, 48, 3)) * 255).astype(np.uint8)
    arr[10:30, 12:36] = (220, 120, 40)
    path = tmp_path / "photo.png"
    Image.fromarray(arr).save(path)
    return str(path)


def _check_png(path: str) -> None:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    with Image.open(path) as im:
        im.load()
        assert im.size[0] > 100 and im.size[1] > 100
    assert mpimg.imread(path).ndim == 3


def _check_clean_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2
    assert "Traceback" not in err
    assert err.startswith("error: ") or "\nerror: " in err
    for needle in needles:
        assert needle.lower() in err.lower(), err


# --------------------------------------------------------------------------- help


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "explain", "compare"):
        assert command in out
    if importlib.util.find_spec("captum_submodular._dataset_cli") is not None:
        assert "explain-dataset" in out
    assert "examples:" in out


@pytest.mark.parametrize("command", ["demo", "explain"])
def test_command_help(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "--model-factory" in out and "--out" in out and "--device" in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().err


def test_console_script_help():
    exe = shutil.which("captum-submodular", path=os.path.dirname(sys.executable)) or shutil.which("captum-submodular")
    assert exe is not None, "console script missing: run `pip install -e . --no-deps`"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for command in ("demo", "explain", "compare"):
        assert command in proc.stdout


# --------------------------------------------------------------------------- explain


def test_explain_end_to_end(image_file, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["explain", image_file, "--out", str(out), "--target", "Tiger", *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    png, js = out / "photo.png", out / "photo.json"
    _check_png(str(png))
    record = json.loads(js.read_text())
    for key in (
        "order",
        "minimal_subset",
        "minimal_subset_size",
        "n_evaluations",
        "seconds",
        "search_insertion_curve",
        "search_deletion_curve",
        "insertion_curve",
        "deletion_curve",
        "insertion_auc",
        "deletion_auc",
    ):
        assert key in record["methods"]["SubmodularAttribution"], key
    assert record["target"] == 1 and record["class_name"] == "tiger cat"
    assert record["model"] == "tiny" and record["image"] == os.path.abspath(image_file)
    sub = record["methods"]["SubmodularAttribution"]
    m = record["regions"]["n_regions"]
    assert sorted(sub["order"]) == list(range(m))
    assert len(sub["search_insertion_curve"]) == m + 1
    assert set(sub["minimal_subset"]) <= set(sub["order"])
    assert sub["n_evaluations"] > 0 and sub["seconds"] >= 0
    assert "Done: wrote 2 file(s)" in captured.out
    assert "model evaluations" in captured.out.splitlines()[-1]
    assert "Traceback" not in captured.err


@pytest.mark.parametrize("regions", ["grid", "prior"])
def test_explain_other_regions(regions, image_file, tmp_path, capsys):
    out = tmp_path / regions
    rc = main(["explain", image_file, "--out", str(out), "--regions", regions, "--target", "2", "--no-metrics", *FAST])
    assert rc == 0, capsys.readouterr().err
    record = json.loads((out / "photo.json").read_text())
    assert record["target"] == 2 and record["regions"]["kind"] == regions
    assert "insertion_auc" not in record["methods"]["SubmodularAttribution"]
    _check_png(str(out / "photo.png"))


# --------------------------------------------------------------------------- demo


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = main(["demo", "--images", "1", "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    _check_png(str(out / "demo.png"))
    data = json.loads((out / "demo.json").read_text())
    assert {"images", "mean", "config", "n_evaluations", "seconds", "model"} <= set(data)
    assert len(data["images"]) == 1
    methods = data["images"][0]["methods"]
    assert set(methods) == {"SubmodularAttribution", "Occlusion"}
    for rec in methods.values():
        assert {
            "insertion_auc",
            "deletion_auc",
            "n_evaluations",
            "seconds",
            "insertion_curve",
            "deletion_curve",
        } <= set(rec)
        assert 0.0 <= rec["insertion_auc"] <= 1.0 and 0.0 <= rec["deletion_auc"] <= 1.0
    # The table: a header with the expected columns, one row per method and image, and means.
    lines = captured.out.splitlines()
    header = next(line for line in lines if line.startswith("| image"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[0:2] == ["image", "method"]
    assert columns[2].startswith("insertion") and columns[3].startswith("deletion")
    assert columns[4:] == ["evaluations", "seconds"]
    rows = [line for line in lines if line.startswith("| ") and line is not header]
    assert any("SubmodularAttribution" in r and "imagenet_00" in r for r in rows)
    assert any("Occlusion" in r and r.startswith("| mean") for r in rows)
    assert len({len(r) for r in rows}) == 1  # aligned
    assert f"Figure: {out / 'demo.png'}" in captured.out
    assert "Done: wrote 2 file(s)" in lines[-1] and "model evaluations" in lines[-1]


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path, capsys):
    rc = main(["explain", str(tmp_path / "nope.jpg"), "--out", str(tmp_path / "o"), *FAST])
    _check_clean_error(rc, capsys.readouterr().err, "nope.jpg", "not found")


def test_non_image_file(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not an image")
    rc = main(["explain", str(bad), "--out", str(tmp_path / "o"), *FAST])
    _check_clean_error(rc, capsys.readouterr().err, "notes.jpg", "not a recognised image")


def test_unknown_model(image_file, tmp_path, capsys):
    rc = main(["explain", image_file, "--model", "no_such_net", "--out", str(tmp_path / "o"), "--no-progress"])
    _check_clean_error(rc, capsys.readouterr().err, "no_such_net", "efficientnet_lite0")


def test_uncached_torchvision_model(image_file, tmp_path, capsys, monkeypatch):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        rc = main(["explain", image_file, "--model", "resnet18", "--out", str(tmp_path / "o"), "--no-progress"])
    finally:
        torch.hub.set_dir(old)
    _check_clean_error(rc, capsys.readouterr().err, "resnet18", "efficientnet_lite0")


def test_bad_model_factory(image_file, tmp_path, capsys):
    rc = main(["explain", image_file, "--model-factory", "no_such_module_xyz:make", "--out", str(tmp_path)])
    _check_clean_error(rc, capsys.readouterr().err, "no_such_module_xyz")


def test_unknown_class_name(image_file, tmp_path, capsys):
    rc = main(["explain", image_file, "--target", "tigr cat", "--out", str(tmp_path / "o"), *FAST])
    _check_clean_error(rc, capsys.readouterr().err, "unknown class name", "tiger cat")


def test_ambiguous_class_name(image_file, tmp_path, capsys):
    rc = main(["explain", image_file, "--target", "cat", "--out", str(tmp_path / "o"), *FAST])
    _check_clean_error(rc, capsys.readouterr().err, "ambiguous", "tabby cat", "tiger cat")


def test_unknown_bundled_image(tmp_path, capsys):
    rc = main(["demo", "--images", "imagenet_99", "--out", str(tmp_path / "o"), *FAST])
    _check_clean_error(rc, capsys.readouterr().err, "imagenet_99")


def test_device_cuda(image_file, tmp_path, capsys):
    out = tmp_path / "cuda"
    rc = main(["explain", image_file, "--device", "cuda", "--out", str(out), *FAST])
    captured = capsys.readouterr()
    if not torch.cuda.is_available():
        _check_clean_error(rc, captured.err, "cuda", "not available")
        assert not out.exists()  # fails before doing any work
    else:
        assert rc == 0, captured.err
        _check_png(str(out / "photo.png"))


def test_invalid_device(image_file, tmp_path, capsys):
    rc = main(["explain", image_file, "--device", "tpu9", "--out", str(tmp_path / "o"), *FAST])
    _check_clean_error(rc, capsys.readouterr().err, "device")


def test_bad_option_value(capsys):
    rc = main(["explain", "x.jpg", "--n-regions", "zero"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "--n-regions" in err


def test_compare(capsys):
    rc = main(["compare", "--help"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if importlib.util.find_spec("captum_submodular.compare") is None:
        _check_clean_error(rc, captured.err, "not available yet")
    else:
        assert rc == 0, captured.err
        assert "usage: captum-submodular compare" in captured.out
        rc = main(["compare", "--no-such-option"])
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err and "--no-such-option" in err


# --------------------------------------------------------------------------- targets


def test_resolve_target():
    names = ["Tabby cat", "tiger cat", "dog", "crane", "crane"]
    assert resolve_target(None, names) is None
    assert resolve_target("2", names) == 2
    assert resolve_target("TABBY CAT", names) == 0
    assert resolve_target("tig", names) == 1
    assert resolve_target(" Dog ", names) == 2
    with pytest.raises(ValueError, match="out of range"):
        resolve_target("5", names)
    with pytest.raises(ValueError, match="several classes"):
        resolve_target("crane", names)
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_target("cat", names)
    with pytest.raises(ValueError, match="did you mean 'dog'"):
        resolve_target("dgo", names)


# --------------------------------------------------------------------------- what the user reads


def test_explain_writes_the_good_images_and_fails_on_the_bad(image_file, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_text("not an image")
    out = tmp_path / "mixed"
    rc = main(["explain", image_file, str(bad), "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == 1  # some failed
    assert (out / "photo.png").exists() and (out / "photo.json").exists()
    assert "broken.jpg" in captured.err and "not a recognised image" in captured.err
    assert "1 of 2 image(s) failed" in captured.err
    assert "Traceback" not in captured.err


def test_summary_line_says_what_the_evaluations_include(image_file, tmp_path, capsys):
    rc = main(["explain", image_file, "--out", str(tmp_path / "o"), *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    last = captured.out.splitlines()[-1]
    assert "(classification 1, search " in last and ", metrics " in last
    record = json.loads((tmp_path / "o" / "photo.json").read_text())
    counts = record["n_evaluations"]
    assert counts["total"] == counts["classification"] + counts["search"] + counts["metrics"]
    assert counts["search"] == record["methods"]["SubmodularAttribution"]["n_evaluations"]
    assert f"{counts['total']:,} model evaluations" in last
    sub = record["methods"]["SubmodularAttribution"]
    # region values are aligned with region ids; the order is separate
    assert len(sub["region_values"]) == len(sub["region_ids"]) == len(sub["order"])
    values = dict(zip(sub["region_ids"], sub["region_values"]))
    ranked = sorted(values, key=lambda rid: -values[rid])
    assert ranked == sub["order"]


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--n-regions", "1"], ["--n-regions", "at least 2"]),
        (["--n-regions", "5000", "--search", "bidirectional"], ["--n-regions 5000", "--search bidirectional"]),
    ],
)
def test_region_limits_are_refused_in_the_flags_words_before_the_model_loads(
    argv, needles, image_file, tmp_path, capsys
):
    rc = main(["explain", image_file, "--out", str(tmp_path / "o"), "--model-factory", FACTORY, *argv])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err and "error: " in err
    for needle in needles:
        assert needle in err, err
    assert "model tiny" not in err  # refused before the model was loaded
    assert "feature_mask" not in err and "BidirectionalSearch" not in err


def test_help_shows_the_region_limits(capsys):
    assert main(["explain", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "at most 256" in out and "at most 1,024" in out


def test_old_flag_spellings_still_work_with_a_deprecation_message(image_file, tmp_path, capsys):
    rc = main(
        [
            "explain",
            image_file,
            "--out",
            str(tmp_path / "o"),
            "--batch-size",
            "3",
            *[a for a in FAST if a != "--no-progress"],
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "--batch-size is deprecated" in captured.err and "--perturbations-per-eval" in captured.err
    from captum_submodular.cli import build_parser

    args = build_parser().parse_args(["compare", "--regions", "36", "--steps", "7"])
    assert (args.regions, args.n_regions, args.n_steps) == ("slic", 36, 7)
    assert "deprecated" in capsys.readouterr().err


def test_console_entry_restarts_once_with_the_allocator_tuned(monkeypatch):
    import platform

    from captum_submodular import cli

    calls = []

    def fake_execve(exe, argv, env):
        calls.append((exe, argv, env))
        raise OSError("not in a test")

    monkeypatch.setattr(os, "execve", fake_execve)
    monkeypatch.setattr(cli, "main", lambda argv=None: 0)
    monkeypatch.setattr(sys, "argv", ["captum-submodular", "demo", "--images", "1"])
    for key in (*cli.ALLOCATOR_ENV, "CAPTUM_SUBMODULAR_KEEP_MALLOC"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(SystemExit):
        cli.entry()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        ((exe, argv, env),) = calls
        assert argv[1:] == ["-m", "captum_submodular.cli", "demo", "--images", "1"]
        assert all(env[k] == v for k, v in cli.ALLOCATOR_ENV.items())
    calls.clear()
    monkeypatch.setenv("CAPTUM_SUBMODULAR_KEEP_MALLOC", "1")
    with pytest.raises(SystemExit):
        cli.entry()
    assert calls == []  # left alone when asked
